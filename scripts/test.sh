#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests and the end-to-end tests that start their
# own pcscd with the vpcd virtual reader. Installs what is missing first. Leaves no process.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test

cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
# Every target, the benches included in their quick mode (no --bench): each still runs and
# checks its scenario. One invocation, so the dependencies are built once.
cargo test --locked --workspace --all-targets
cargo test --locked --workspace --doc
# Every fuzz target on its seeds and 20 000 more inputs (fuzz/README.md).
scripts/fuzz-smoke.sh

# The tests stop everything they start; prove it. Only this tree's processes count: cargo
# runs the tests in this folder and their children inherit it as working directory, while
# other checkouts' tests on the same machine run elsewhere and are none of ours. Reported,
# never killed: a leftover is a bug to fix in the test that left it.
leftover=""
for pid in $(pgrep -f 'pcscd --foreground -c /tmp/beid-pcscd-|beid-agent (simulate-card|serve)|chromedriver --port|systemd-nspawn .*debian13-root' || true); do
  if [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$PWD" ]; then
    leftover="$leftover $pid"
  fi
done
if [ -n "$leftover" ]; then
  echo "tests left processes behind:" >&2
  ps -o pid,args -p $leftover >&2 || true
  exit 1
fi
