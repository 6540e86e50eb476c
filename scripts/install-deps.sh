#!/usr/bin/env bash
# Installs the Debian packages beid-agent needs, only those missing (apt-get, with sudo
# when not root). A fresh machine has the PC/SC runtime library but not the rest.
#   install-deps.sh run    what the agent needs to run with its simulated card
#   install-deps.sh test   that, plus what the tests use (OpenSC as independent reader,
#                          openssl for test keys, Chromium and its WebDriver for the pages,
#                          node for the polkit rule, systemd-analyze for the unit, cargo-deb
#                          with dpkg-dev and binutils for the Debian package, procps for
#                          kill and pgrep, debootstrap and systemd-container for the
#                          booted Debian 13 of tests/debian13.rs)
set -euo pipefail

packages=(pcscd libpcsclite-dev pkgconf vsmartcard-vpcd util-linux coreutils)
# The README's API example.
packages+=(curl jq)
if [ "${1:-test}" = test ]; then
  packages+=(opensc openssl chromium chromium-driver fonts-dejavu-core
    nodejs systemd dpkg-dev binutils procps)
  packages+=(debootstrap systemd-container)
  # tests/readme.rs: a private network namespace with its loopback up (ip), and vpcd's
  # port seen listening (ss).
  packages+=(iproute2)
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
