#!/usr/bin/env bash
# Installs the Debian packages named that are not installed yet (apt-get, as root or through sudo), from this
# machine's own apt sources. Quiet when nothing is missing.
#   scripts/ensure-apt-packages.sh PKG...
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
printf '[apt] installing Debian packages: %s\n' "${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
