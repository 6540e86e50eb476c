#!/usr/bin/env bash
# Builds the Debian package of the agent: the release binary, then what the binary writes
# from its own command line (the man pages, and the bash, zsh and fish completions), then
# `cargo deb` ([package.metadata.deb] in Cargo.toml) packs it all without building again.
# Prints where the .deb is. Needs cargo-deb (scripts/install-deps.sh test installs it).
#   scripts/package.sh [cargo deb options, e.g. --output DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
echo "building beid-agent (release)..." >&2
cargo build --locked --release
generated=target/release/generated
rm -rf "$generated"
target/release/beid-agent generate man --gzip "$generated/man"
target/release/beid-agent generate completions "$generated/completions"
cargo deb --locked --no-build "$@"
