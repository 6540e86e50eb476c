#!/usr/bin/env bash
# Installs the Debian packages beid-agent needs, only those missing (apt-get, with sudo
# when not root). A fresh machine has the PC/SC runtime library but not the rest.
#   install-deps.sh run    what the agent needs to run with its simulated card
#   install-deps.sh test   that, plus what the tests use (OpenSC as independent reader,
#                          openssl for test keys, Chromium and its WebDriver for the pages,
#                          axe-core from npm for the kiosk page, node for the polkit rule,
#                          systemd-analyze for the unit, cargo-deb with dpkg-dev and
#                          binutils for the Debian package, procps for kill and pgrep,
#                          debootstrap and systemd-container for the booted Debian 13 of
#                          tests/debian13.rs, npm for the OpenAPI linter of
#                          tests/openapi_lint.rs, prometheus for promtool in
#                          tests/monitoring.rs)
#   install-deps.sh speech what scripts/kiosk-speech.sh needs to make the kiosk's speech
#                          clips (espeak-ng, opusenc); the tests never need it
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

packages=(pcscd libpcsclite-dev pkgconf vsmartcard-vpcd util-linux coreutils)
# The README's API example.
packages+=(curl jq)
if [ "${1:-test}" = test ]; then
  packages+=(opensc openssl chromium chromium-driver fonts-dejavu-core
    nodejs systemd dpkg-dev binutils procps)
  packages+=(debootstrap systemd-container)
  # npm: Debian's package, unless a node distribution that carries its own (NodeSource's)
  # is installed.
  command -v npm >/dev/null || packages+=(npm)
  # promtool (check metrics, check and test rules). The package also brings a Prometheus
  # server; where systemd runs, its postinst starts it on :9090 (stop it if unwanted).
  packages+=(prometheus)
  # tests/readme.rs: a private network namespace with its loopback up (ip), and vpcd's
  # port seen listening (ss).
  packages+=(iproute2)
fi
if [ "${1:-test}" = speech ]; then
  packages+=(espeak-ng opus-tools)
fi

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "cargo is missing: install the Rust toolchain (https://rustup.rs) and run again" >&2
  exit 1
fi

# scripts/fuzz-smoke.sh runs the fuzz targets with cargo-fuzz.
if [ "${1:-test}" = test ] && ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing: cargo-fuzz 0.13.2" >&2
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

# tests/packaging.rs builds the Debian package with this exact cargo-deb.
if [ "${1:-test}" = test ] && ! cargo deb --version >/dev/null 2>&1; then
  echo "installing: cargo-deb 3.8.0" >&2
  cargo install cargo-deb --version 3.8.0 --locked
fi

# tests/openapi_lint.rs lints the agent's OpenAPI document with this exact @redocly/cli
# (scripts/openapi-lint/package-lock.json), installed into target/tools/openapi-lint rather
# than globally; once there, the test needs no network.
if [ "${1:-test}" = test ]; then
  lint="$root/target/tools/openapi-lint"
  if ! cmp -s "$root/scripts/openapi-lint/package-lock.json" "$lint/package-lock.json" \
    || [ ! -x "$lint/node_modules/.bin/redocly" ]; then
    echo "installing: @redocly/cli into $lint" >&2
    mkdir -p "$lint"
    cp "$root/scripts/openapi-lint/package.json" "$root/scripts/openapi-lint/package-lock.json" "$lint/"
    npm ci --prefix "$lint" --ignore-scripts --no-audit --no-fund --loglevel=error
  fi
fi

# tests/kiosk.rs checks every state of the kiosk page with this exact axe-core (injected
# through WebDriver, so the page's CSP stays as it is), installed globally with npm.
AXE_CORE_VERSION=4.11.0
if [ "${1:-test}" = test ]; then
  installed=$(node -p "require('$(npm root --global)/axe-core/package.json').version" 2>/dev/null || true)
  if [ "$installed" != "$AXE_CORE_VERSION" ]; then
    echo "installing: axe-core $AXE_CORE_VERSION (npm, global)" >&2
    npm install --global --no-fund --no-audit "axe-core@$AXE_CORE_VERSION" >/dev/null
  fi
fi
