#!/usr/bin/env bash
# One entry point for people and CI. On a fresh Debian 12 machine with the .NET 10 SDK:
#   ./build.sh demo    build everything needed and stream from the built-in test-pattern camera in a VM
#   ./build.sh test    build the guest kit and firmware, then run every test (KVM integration tests included)
# Other verbs: build (dotnet build), guest (test guest kernel kit), firmware (guest payloads), bench (benchmarks).
# Installs missing Debian packages with apt-get (needs root or sudo). Caches the guest kernel by input hash.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"
ROOT=$PWD

log() { printf '[build.sh] %s\n' "$*" >&2; }

# Debian packages the build and the tests need (the guest kit script installs its own kernel-build packages).
APT_PACKAGES=(gcc make binutils cpio busybox-static zstd xz-utils lz4 bzip2 lzma)

ensure_apt_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
}

build_guest() {
  # Prints the kit directory (vmlinux, bzImage, initramfs images) on stdout.
  bash firmware/linux-guest/build.sh --print-dir | tail -n 1
}

build_firmware() {
  bash firmware/build.sh >&2
  echo "$ROOT/firmware/out"
}

dotnet_build() {
  dotnet build Vmm.sln -c Release -nologo -v quiet "$@" >&2
}

case "${1:-}" in
  build)
    dotnet_build
    ;;
  guest)
    ensure_apt_packages "${APT_PACKAGES[@]}"
    build_guest
    ;;
  firmware)
    ensure_apt_packages "${APT_PACKAGES[@]}"
    build_firmware
    ;;
  demo)
    ensure_apt_packages "${APT_PACKAGES[@]}"
    fw=$(build_firmware)
    dotnet_build
    shift
    exec dotnet src/Vmm.Cli/bin/Release/net10.0/vmm.dll demo --firmware "$fw/media-stream.elf" "$@"
    ;;
  test)
    ensure_apt_packages "${APT_PACKAGES[@]}"
    VMM_GUEST_DIR=$(build_guest)
    VMM_FIRMWARE_DIR=$(build_firmware)
    VMM_STOCK_KERNEL=$(bash firmware/stock-kernel/fetch.sh | tail -n 1)
    export VMM_GUEST_DIR VMM_FIRMWARE_DIR VMM_STOCK_KERNEL
    log "guest kit: $VMM_GUEST_DIR"
    log "firmware:  $VMM_FIRMWARE_DIR"
    dotnet_build
    shift
    dotnet test Vmm.sln -c Release --no-build -nologo "$@"
    ;;
  bench)
    shift
    dotnet run -c Release --project benchmarks/Vmm.Benchmarks -- "$@"
    ;;
  *)
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
