#!/usr/bin/env bash
# Unpacks a Debian suite's v4l-utils and every library it needs into a cache directory, without installing
# anything on this machine, and prints that directory (a root for build-initramfs.sh --v4l-utils-root).
#   fetch-v4l-utils.sh [SUITE]     (default: trixie)
# Why: Debian 12's v4l2-compliance 1.22.1 predates kernel 6.12, whose format descriptions it checks
# (NV12 is "Y/UV 4:2:0" since 6.x; 1.22.1 expects "Y/CbCr 4:2:0"), so it reports one failure for any NV12 device.
set -euo pipefail
SUITE=${1:-trixie}
CACHE=${VMM_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmm-guest}/v4l-utils-$SUITE
ROOT=$CACHE/root
if [ -x "$ROOT/usr/bin/v4l2-compliance" ]; then echo "$ROOT"; exit 0; fi
A=$CACHE/apt
mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/debs"
# The same Debian mirror this machine's apt uses for its own release, another suite: the archive that serves
# this machine's "<codename> main" is asked for "$SUITE main" (and keeps its signing key).
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT) $(IDENTIFIER)' \
           | awk -v c="$codename" '$2 == c && $3 == "main" && $4 == "Packages" { print $1; exit }')
[ -n "$mirror" ] || { echo "fetch-v4l-utils.sh: no '$codename main' archive in this machine's apt sources" >&2; exit 1; }
echo "deb $mirror $SUITE main" > "$A/sources.list"
APTO=(-o "Dir::Etc::sourcelist=$A/sources.list" -o Dir::Etc::sourceparts=/dev/null -o "Dir::State::lists=$A/lists"
      -o "Dir::Cache=$A/cache" -o Dir::State::status=/dev/null -o APT::Get::List-Cleanup=0)
apt-get "${APTO[@]}" update -qq >&2
pkgs=$(apt-cache "${APTO[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
         --no-replaces --no-enhances --no-pre-depends v4l-utils | grep -E '^[a-z0-9]' | sort -u)
chmod 777 "$A/debs"  # apt downloads as the _apt user
(cd "$A/debs" && apt-get "${APTO[@]}" download $pkgs >&2)
rm -rf "$ROOT.tmp" && mkdir -p "$ROOT.tmp"
for d in "$A"/debs/*.deb; do dpkg-deb -x "$d" "$ROOT.tmp"; done
rm -rf "$ROOT" && mv "$ROOT.tmp" "$ROOT"
"$ROOT/usr/bin/v4l2-compliance" --version >/dev/null 2>&1 || true
echo "$ROOT"
