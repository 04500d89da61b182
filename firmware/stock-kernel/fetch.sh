#!/usr/bin/env bash
# Fetches Debian's stock 6.12 kernel (linux-image-6.12.*-amd64-unsigned) without installing it: the .deb is
# downloaded with apt-get and unpacked into a cache directory. Prints the path of the bzImage (vmlinuz) as the last
# line of stdout. Used by the slow tests: a stock kernel reaches /init on an ordinary host (or the lab) and
# stops with a crash report on a PVM host.
set -euo pipefail
CACHE=${VMM_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmm-guest}/stock-kernel
pkg=$(apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' 2>/dev/null | awk '{print $1}' | sort -V | tail -n 1)
if [ -z "$pkg" ]; then
  apt-get update -qq >&2
  pkg=$(apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' | awk '{print $1}' | sort -V | tail -n 1)
fi
[ -n "$pkg" ] || { echo "fetch.sh: no linux-image-6.12.*-amd64-unsigned package in the apt lists" >&2; exit 1; }
dir=$CACHE/$pkg
if ! ls "$dir"/boot/vmlinuz-* >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  chmod 777 "$tmp"  # apt downloads as the _apt user
  (cd "$tmp" && apt-get download "$pkg" >&2)
  mkdir -p "$dir.tmp"
  dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -x -C "$dir.tmp" ./boot
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
ls "$dir"/boot/vmlinuz-* | tail -n 1
