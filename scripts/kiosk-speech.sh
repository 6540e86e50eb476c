#!/usr/bin/env bash
# Makes the kiosk's speech clips from its message catalogue (assets/kiosk/messages.json):
# one Ogg Opus clip per spoken message and language under assets/kiosk/speech/<lang>/, the
# manifest of the texts they were made from, and src/api/kiosk/clips.rs, which embeds them
# in the binary. Run it after changing a text; commit what it changed. A test fails while
# a clip is missing or stale.
#   scripts/kiosk-speech.sh          make the clips whose text or settings changed
#   scripts/kiosk-speech.sh --all    make every clip again
# Needs espeak-ng and opusenc (scripts/install-deps.sh speech installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in espeak-ng opusenc; do
  if ! command -v "$tool" >/dev/null; then
    echo "$tool is missing: run scripts/install-deps.sh speech" >&2
    exit 1
  fi
done
cargo run --quiet --example kiosk_speech -- "$@"
