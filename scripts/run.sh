#!/usr/bin/env bash
# Runs beid-agent with its embedded default: a simulated Belgian eID in a private pcscd
# (vpcd virtual reader) and the simulated rule service; the card is read, verified against
# the TEST roots, advised on and diagnosed exactly as on a counter PC. Needs no hardware
# and leaves any system pcscd alone. Installs what is missing first.
#   scripts/run.sh [CARD]   CARD: a folder under fixtures/cards (default gen-1.8-ec)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh run
cargo build --locked --quiet
agent=target/debug/beid-agent
card="fixtures/cards/${1:-gen-1.8-ec}"

work=$(mktemp -d /tmp/beid-pcscd-run-XXXXXX)
port=$(( 30000 + RANDOM % 20000 ))
mkdir -p "$work/run" "$work/conf"
cat > "$work/conf/vpcd" <<CONF
FRIENDLYNAME "Virtual PCD"
DEVICENAME   /dev/null:$(printf '0x%04X' "$port")
LIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so
CHANNELID    $(printf '0x%04X' "$port")
CONF
as_root=(--mount --propagation private)
[ "$(id -u)" -eq 0 ] || as_root=(--user --map-root-user "${as_root[@]}")
unshare "${as_root[@]}" sh -c "mkdir -p /run/pcscd && mount --bind '$work/run' /run/pcscd && exec pcscd --foreground -c '$work/conf'" 2>"$work/pcscd.log" &
pcscd_pid=$!
cleanup() {
  kill "${card_pid:-}" "$pcscd_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export PCSCLITE_CSOCK_NAME="$work/run/pcscd.comm"
for _ in $(seq 100); do [ -S "$PCSCLITE_CSOCK_NAME" ] && break; sleep 0.05; done

"$agent" simulate-card --card "$card" --vpcd "127.0.0.1:$port" &
card_pid=$!
echo "== beid-agent readers"
"$agent" readers --wait-for card --reader "Virtual PCD 00 00" --timeout 10
echo "== beid-agent read --trust-test-roots"
"$agent" read --trust-test-roots || true
echo "== beid-agent advice --use-case uitpas-kansentarief --simulate"
"$agent" advice --use-case uitpas-kansentarief --simulate || true
echo "== beid-agent diagnose"
"$agent" diagnose
