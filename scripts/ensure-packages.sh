#!/usr/bin/env bash
# Installs the named Debian packages that are missing (as root), or says which are missing.
# Usage: bash scripts/ensure-packages.sh [--backports] WHAT PACKAGE...
# --backports takes them from bookworm-backports (Incus 6.0 LTS lives there), adding that suite
# to the apt sources first if it is not there yet.
set -euo pipefail
backports=
if [ "${1:-}" = --backports ]; then backports=1; shift; fi
what=$1
shift
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "Missing Debian packages (install them as root): ${missing[*]}" >&2
  exit 1
fi
echo "Installing $what: ${missing[*]}"
target=()
if [ -n "$backports" ]; then
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo 'deb http://deb.debian.org/debian bookworm-backports main' >/etc/apt/sources.list.d/bookworm-backports.list
  fi
  target=(-t bookworm-backports)
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${target[@]}" "${missing[@]}" >/dev/null
