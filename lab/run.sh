#!/usr/bin/env bash
# The lab: a standard KVM host (AMD SVM with nested paging) and vivid, the kernel's V4L2 test driver, on any
# machine. Boots Debian's stock 6.12 kernel under QEMU TCG with an emulated EPYC that has SVM and NPT, loads
# kvm_amd and vivid, shares this machine's root over 9p and runs CMD inside at the same path, with the same
# environment and /dev/kvm. CMD's output comes back on stdout and its exit code is this script's.
#
#   lab/run.sh [--mem MiB] [--cpus N] [--timeout SECONDS] [--vivid-params 'k=v ...'] -- CMD [ARG...]
#   lab/run.sh --print-image      build (or find) the cached kernel and initramfs, print their directory
#   lab/run.sh --arch arm64 ...   the aarch64 lab instead (an arm64 KVM host under qemu-system-aarch64): run-arm64.sh
#
# Exit codes: CMD's own; 124 when the lab ran out of time; 125 when the lab itself failed (the L1 kernel's console
# is then printed from its log). Inside, VMM_LAB=1 is set. See lab/README.md for what the lab is and costs.
set -euo pipefail
LAB_DIR=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
CACHE=${VMM_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmm-lab}

log() { printf '[lab] %s\n' "$*" >&2; }
die() { printf 'lab: %s\n' "$*" >&2; exit 125; }
# shellcheck source=lab/lib.sh
. "$LAB_DIR/lib.sh"

# Options: --mem, --cpus, --timeout and --print-image are lab_common_option's (lib.sh), with its defaults (one CPU).
VIVID_PARAMS=""
ARGS=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --arch)
      case "${2:-}" in
        x86_64 | amd64 | x64) shift 2 ;;
        arm64 | aarch64) exec bash "$LAB_DIR/run-arm64.sh" "${ARGS[@]}" ;;
        *) die "unknown --arch $2 (x86_64 or arm64)" ;;
      esac ;;
    --vivid-params) VIVID_PARAMS=$2; shift 2 ;;
    --) shift; break ;;
    -*)
      lab_common_option "$@" || die "unknown option $1 (usage: lab/run.sh [--mem MiB] [--cpus N] [--timeout S] -- CMD...)"
      shift "$LAB_SHIFT" ;;
    *) break ;;
  esac
done
lab_check_run "$PRINT_IMAGE" $# "lab/run.sh [options] -- CMD..." "$MEM" "$CPUS" "$TIMEOUT"

# Debian packages the lab needs on this machine. The guest kernel is downloaded and unpacked, never installed.
ensure_packages() {
  bash "$LAB_DIR/../scripts/ensure-apt-packages.sh" qemu-system-x86 busybox-static kmod xz-utils cpio
}

# Modules the lab loads, by name; their dependencies come from the kernel's own modules.dep, in load order.
LAB_MODULES=(kvm-amd vivid 9p 9pnet_virtio virtio-rng)

# Builds the kernel + initramfs into $CACHE/<hash> (hash of the kernel package version, busybox and this
# directory's scripts, lib.sh included) and prints that directory.
build_image() {
  local pkg version busybox_version key dir
  pkg=$(lab_kernel_package amd64)
  version=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
  busybox_version=$(dpkg-query -W -f='${Version}' busybox-static)
  key=$( { echo "$pkg $version busybox $busybox_version ${LAB_MODULES[*]}"; cat "$LAB_DIR/run.sh" "$LAB_LIB" "$LAB_DIR/init.sh"; } \
         | sha256sum | cut -c1-16)
  dir=$CACHE/$key
  if [ -f "$dir/initramfs.cpio" ] && [ -f "$dir/vmlinuz" ]; then echo "$dir"; return; fi

  log "building the lab image ($pkg $version) into $dir"
  local t0=$SECONDS tmp
  tmp=$(mktemp -d)
  chmod 755 "$tmp"
  lab_download "$tmp/deb" "$pkg=$version"
  local kver
  kver=$(lab_unpack_kernel "$tmp"/deb/*.deb "$tmp/k")

  local root=$tmp/root
  mkdir -p "$root"/{bin,dev,proc,sys,host,lib/modules,tmp}
  cp /bin/busybox "$root/bin/busybox"
  cp "$LAB_DIR/init.sh" "$root/init"
  chmod 755 "$root/init"
  lab_unpack_modules "$tmp/k" "$kver" "$root/lib/modules" "${LAB_MODULES[@]}"
  lab_cpio "$root" > "$tmp/initramfs.cpio"
  mkdir -p "$CACHE"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  cp "$tmp/k/boot/vmlinuz-$kver" "$dir.tmp/vmlinuz"
  mv "$tmp/initramfs.cpio" "$dir.tmp/"
  cp "$root/lib/modules/order" "$dir.tmp/modules.order"
  echo "$pkg $version" > "$dir.tmp/kernel-package"
  rm -rf "$tmp" "$dir" && mv "$dir.tmp" "$dir"
  log "lab image built in $((SECONDS - t0)) s"
  echo "$dir"
}

ensure_packages
IMAGE=$(build_image)
if [ "$PRINT_IMAGE" = 1 ]; then echo "$IMAGE"; exit 0; fi

lab_make_work
{
  echo '#!/bin/bash'
  export -p | grep -v -E '^declare -x (OLDPWD|SHLVL|_|TERM)='
  echo 'export VMM_LAB=1'
  # vstest talks to its testhost over loopback; TCG is slow enough that its 90 s default has timed out.
  echo 'export VSTEST_CONNECTION_TIMEOUT=${VSTEST_CONNECTION_TIMEOUT:-600}'
  printf 'cd %q || exit 125\n' "$PWD"
  # Through a pipe, as a command run from a script sees its output: no terminal colours or progress redraws.
  echo 'set -o pipefail'
  printf '%q ' "$@"
  echo '2>&1 | cat'
  echo 'exit "${PIPESTATUS[0]}"'
  echo
} > "$WORK/cmd.sh"
chmod 755 "$WORK/cmd.sh"

# clocksource=hpet: on the TSC (TCG's, with KVM's nested TSC offsets in play), the lab's CLOCK_MONOTONIC once
# jumped 135 hours forward during a run of the integration tests, which timed a test out at once.
# EPYC with SVM and nested paging; the features TCG cannot emulate are switched off so QEMU does not warn about them.
LAB_CPU=EPYC,+svm,+npt,-rdseed,-sha-ni,-fxsr-opt,-misalignsse,-3dnowprefetch,-osvw,-topoext,-nrip-save,-xsavec
# Under the lab's timeout, woken when idle; QEMU's standard input goes to ttyS1 (see lab_run_qemu in lib.sh).
log "booting the lab (QEMU TCG, EPYC with SVM+NPT, $CPUS vCPUs, $MEM MiB): $*"
lab_run_qemu qemu-system-x86_64 \
  -accel tcg,thread=single -cpu "$LAB_CPU" -smp "$CPUS" -m "$MEM" \
  -nodefaults -no-user-config -display none -no-reboot \
  -kernel "$IMAGE/vmlinuz" -initrd "$IMAGE/initramfs.cpio" \
  -append "console=ttyS0 panic=-1 loglevel=4 clocksource=hpet lab.work=$WORK lab.vivid=${VIVID_PARAMS// /,}" \
  -serial "file:$WORK/console.log" -serial stdio \
  -device virtio-rng-pci \
  -virtfs local,path=/,mount_tag=host,security_model=passthrough,multidevs=remap
log "done in ${LAB_ELAPSED} s (lab boot to power-off), command exit code $LAB_RC"
exit "$LAB_RC"
