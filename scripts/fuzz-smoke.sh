#!/usr/bin/env bash
# A short run of every cargo-fuzz target (fuzz/README.md): builds them, runs each on its
# seeds (fuzz/seeds/<target>/) and then on FUZZ_RUNS more inputs (default 20000).
# Exit 0 only when no target crashed, failed a property or timed out; the input that
# did is left in fuzz/artifacts/<target>/.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and nothing else: the stable
# toolchain with RUSTC_BOOTSTRAP=1 (libFuzzer's coverage flags are unstable), no sanitizer.
# Installs nothing. FUZZ_TARGET_DIR builds elsewhere than fuzz/target.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-smoke: cargo-fuzz is not installed; install it with: cargo install cargo-fuzz --locked" >&2
  exit 2
fi

runs=${FUZZ_RUNS:-20000}
targets=(tlv apdu_response dump_verification config api_bodies)
target_dir=()
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then
  target_dir=(--target-dir "$FUZZ_TARGET_DIR")
fi
export RUSTC_BOOTSTRAP=1

cargo fuzz build -s none "${target_dir[@]}"

scratch=$(mktemp -d /tmp/beid-fuzz-smoke.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
failed=()
for target in "${targets[@]}"; do
  mkdir -p "$scratch/$target"
  log="$scratch/$target.log"
  # New inputs go to a scratch corpus: the smoke leaves fuzz/corpus alone.
  if cargo fuzz run -s none "${target_dir[@]}" "$target" "$scratch/$target" "seeds/$target" -- \
    -runs="$runs" -max_total_time=300 -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1; then
    echo "fuzz-smoke: $target: $(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)"
  else
    echo "fuzz-smoke: $target FAILED; the end of its log:" >&2
    tail -n 40 "$log" >&2
    failed+=("$target")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz-smoke: failed: ${failed[*]} (inputs in fuzz/artifacts/; replay with" \
    "cargo fuzz run -s none TARGET fuzz/artifacts/TARGET/FILE)" >&2
  exit 1
fi
echo "fuzz-smoke: all ${#targets[@]} targets passed $runs runs each"
