#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests and the end-to-end tests that start their
# own pcscd with the vpcd virtual reader. Installs what is missing first. Leaves no process.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test

# Every process the tests start inherits this marker, so the check at the end finds what
# this run left behind and nothing of another run on the same machine.
export BEID_TEST_RUN="test-sh.$$.$RANDOM"

cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
# Every target, the benches included in their quick mode (no --bench): each still runs and
# checks its scenario. One invocation, so the dependencies are built once.
cargo test --locked --workspace --all-targets
cargo test --locked --workspace --doc
# Every fuzz target on its seeds and 20 000 more inputs (fuzz/README.md).
scripts/fuzz-smoke.sh

# The tests stop everything they start; prove it (and stop only what this run started).
leftover=""
for environ in /proc/[0-9]*/environ; do
  pid=${environ#/proc/}
  pid=${pid%/environ}
  if { tr '\0' '\n' <"$environ"; } 2>/dev/null | grep -qx "BEID_TEST_RUN=$BEID_TEST_RUN"; then
    case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
      pcscd | beid-agent | chromedriver | chrome* | chromium* | systemd-nspawn) leftover="$leftover $pid" ;;
    esac
  fi
done
if [ -n "$leftover" ]; then
  echo "tests left processes behind:" >&2
  ps -o pid,args -p $leftover >&2 || true
  exit 1
fi
