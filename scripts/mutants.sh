#!/usr/bin/env bash
# Mutation testing of the code that carries the product's promises (docs/testing.md): each
# group's files are mutated by cargo-mutants, and each mutant must make a test of that group
# fail. Too slow for CI (hours on 2 cores); run it before resolving a change to these files.
#
#   scripts/mutants.sh            every group
#   scripts/mutants.sh upstream   one group (names below)
#
# Output: mutants.out/<group>/ (cargo-mutants' own reports: caught.txt, missed.txt, ...),
# and a summary on stdout. Needs cargo-mutants (cargo install cargo-mutants --locked).
# Runs in place on a scratch copy of the tree (git worktree) so the working tree is never
# touched; pass MUTANTS_TREE=DIR to reuse a copy (and its warm target dir).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if ! cargo mutants --version >/dev/null 2>&1; then
  echo "mutants: cargo-mutants is not installed: cargo install cargo-mutants --locked" >&2
  exit 2
fi

# group | package | files (space-separated) | cargo test arguments | timeout (s)
# The timeout bounds one mutant's tests (not its build): a few times what they take on a
# loaded 2-core machine, since a mutant that loops forever costs the whole timeout.
groups=(
  "upstream|beid-agent|src/advice/http.rs|--lib --test upstream|300"
  "guards|beid-agent|src/api/guard.rs src/api/clients.rs|--lib --test api --test fuzz_regressions|300"
  "decide|beid-agent|src/session/decide.rs src/session/outcome.rs src/session/ids.rs|--lib --test api|300"
  "trust|beid-agent|src/trust/signature.rs src/trust/rrn_certificate.rs src/trust/roots.rs|--lib --test trust|300"
  "core|beid-core|crates/beid-core/src/national_number.rs crates/beid-core/src/text.rs crates/beid-core/src/contract.rs|--lib|90"
  "audit|beid-core|crates/beid-core/src/audit/verify.rs crates/beid-core/src/audit/walk.rs crates/beid-core/src/audit/verify_seals.rs crates/beid-core/src/audit/sealing.rs|--lib|90"
)

tree=${MUTANTS_TREE:-}
if [ -z "$tree" ]; then
  tree=$(mktemp -d /tmp/beid-mutants.XXXXXX)
  git worktree add --detach "$tree" HEAD >/dev/null
  trap 'git -C "$root" worktree remove --force "$tree"' EXIT
fi
mkdir -p "$root/mutants.out"

started=$(date +%s)
for group in "${groups[@]}"; do
  IFS='|' read -r name package files args timeout <<<"$group"
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then
    continue
  fi
  file_args=()
  for file in $files; do
    [ -f "$tree/$file" ] && file_args+=(--file "$file")
  done
  test_args=()
  for arg in $args; do
    # For every cargo invocation: the build then compiles only the tests that run.
    test_args+=(--cargo-arg="$arg")
  done
  echo "mutants: $name ($files)"
  (cd "$tree" && cargo mutants --in-place --no-shuffle --package "$package" \
    "${file_args[@]}" "${test_args[@]}" --timeout "$timeout" --output "$root/mutants.out/$name") || true
done
elapsed=$(( $(date +%s) - started ))

echo
echo "group       mutants  caught  missed  timeout  unviable"
for group in "${groups[@]}"; do
  IFS='|' read -r name _ _ _ _ <<<"$group"
  out="$root/mutants.out/$name/mutants.out"
  [ -d "$out" ] || continue
  # grep -c prints 0 and fails on an empty file: one number either way.
  count() { local n=0; [ -f "$out/$1" ] && n=$(grep -c . "$out/$1" || true); echo "${n:-0}"; }
  total=$(( $(count caught.txt) + $(count missed.txt) + $(count timeout.txt) + $(count unviable.txt) ))
  printf '%-10s %8s %7s %7s %8s %9s\n' "$name" "$total" "$(count caught.txt)" \
    "$(count missed.txt)" "$(count timeout.txt)" "$(count unviable.txt)"
done
echo "time: ${elapsed}s"
missed=$(cat "$root"/mutants.out/*/mutants.out/missed.txt 2>/dev/null | grep -c . || true)
if [ "${missed:-0}" -gt 0 ]; then
  echo "missed mutants (each needs a test, or an entry in docs/testing.md's equivalent list):"
  cat "$root"/mutants.out/*/mutants.out/missed.txt
  exit 1
fi
