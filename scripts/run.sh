#!/usr/bin/env bash
# Runs beid-agent with its embedded default: two simulated readers holding the fixture
# cards, the simulated rule service, the TEST roots trusted, and a demo API token. Needs no
# hardware and no configuration; it prints the kiosk page's URL and the token's file, in a
# folder only this user can enter: $XDG_RUNTIME_DIR/beid-agent-demo, else
# /tmp/beid-agent-UID/beid-agent-demo (README.md, "Two commands").
# Insert and remove cards from the page's simulator panel or with /v1/simulator/*.
# Installs what is missing first. Stop it with Ctrl-C.
#   scripts/run.sh [serve options, e.g. --listen 127.0.0.1:8100]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh run
# cargo shows its progress: the first build takes a few minutes, later ones a moment.
echo "building beid-agent..." >&2
cargo build --locked
exec target/debug/beid-agent serve --simulate "$@"
