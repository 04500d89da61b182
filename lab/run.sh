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
PATH=$PATH:/usr/sbin:/sbin   # depmod and modprobe
CACHE=${VMM_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmm-lab}

log() { printf '[lab] %s\n' "$*" >&2; }
die() { printf 'lab: %s\n' "$*" >&2; exit 125; }

MEM=8192
# One CPU: with two, nested guests stalled at random points of early boot (a spinlock never released, seen
# under vmm and QEMU alike: 0 of 6 and 1 of 2 runs reached /init); with one, every run did. TCG runs one vCPU at a
# time anyway (thread=single), so a second CPU buys no speed.
CPUS=1
TIMEOUT=4800
VIVID_PARAMS=""
PRINT_IMAGE=0
ARGS=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --arch)
      case "${2:-}" in
        x86_64 | amd64 | x64) shift 2 ;;
        arm64 | aarch64) exec bash "$LAB_DIR/run-arm64.sh" "${ARGS[@]}" ;;
        *) die "unknown --arch $2 (x86_64 or arm64)" ;;
      esac ;;
    --mem) MEM=$2; shift 2 ;;
    --cpus) CPUS=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --vivid-params) VIVID_PARAMS=$2; shift 2 ;;
    --print-image) PRINT_IMAGE=1; shift ;;
    --) shift; break ;;
    -*) die "unknown option $1 (usage: lab/run.sh [--mem MiB] [--cpus N] [--timeout S] -- CMD...)" ;;
    *) break ;;
  esac
done
[ "$PRINT_IMAGE" = 1 ] || [ $# -gt 0 ] || die "no command given (usage: lab/run.sh [options] -- CMD...)"
# Root: QEMU shares / with the lab as it is (security_model=passthrough), and the command runs as root inside.
[ "$(id -u)" -eq 0 ] || die "the lab needs root (it shares this machine's / with QEMU's 9p passthrough); run it with sudo"
for n in "$MEM" "$CPUS" "$TIMEOUT"; do [[ "$n" =~ ^[0-9]+$ ]] || die "not a number: $n"; done

# Debian packages the lab needs on this machine. The guest kernel is downloaded and unpacked, never installed.
ensure_packages() {
  bash "$LAB_DIR/../scripts/ensure-apt-packages.sh" qemu-system-x86 busybox-static kmod xz-utils cpio
}

kernel_package() {
  local re='^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' pkg
  pkg=$(apt-cache search --names-only "$re" 2>/dev/null | awk '{print $1}' | sort -V | tail -n 1)
  if [ -z "$pkg" ]; then
    apt-get update -qq >&2
    pkg=$(apt-cache search --names-only "$re" | awk '{print $1}' | sort -V | tail -n 1)
  fi
  [ -n "$pkg" ] || die "no linux-image-6.12.*+deb12-amd64-unsigned package in the apt lists"
  echo "$pkg"
}

# Modules the lab loads, by name; their dependencies come from the kernel's own modules.dep, in load order.
LAB_MODULES=(kvm-amd vivid 9p 9pnet_virtio virtio-rng)

# Builds the kernel + initramfs into $CACHE/<hash> (hash of the kernel package version, busybox and this
# directory's scripts) and prints that directory.
build_image() {
  local pkg version busybox_version key dir
  pkg=$(kernel_package)
  version=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
  busybox_version=$(dpkg-query -W -f='${Version}' busybox-static)
  key=$( { echo "$pkg $version busybox $busybox_version ${LAB_MODULES[*]}"; cat "$LAB_DIR/run.sh" "$LAB_DIR/init.sh"; } \
         | sha256sum | cut -c1-16)
  dir=$CACHE/$key
  if [ -f "$dir/initramfs.cpio" ] && [ -f "$dir/vmlinuz" ]; then echo "$dir"; return; fi

  log "building the lab image ($pkg $version) into $dir"
  local t0=$SECONDS tmp
  tmp=$(mktemp -d)
  chmod 755 "$tmp"
  mkdir -m 777 "$tmp/deb"   # apt downloads as the _apt user
  (cd "$tmp/deb" && apt-get download "$pkg=$version" >&2)
  mkdir "$tmp/k"
  dpkg-deb -x "$tmp"/deb/*.deb "$tmp/k"
  local kver
  kver=$(ls "$tmp/k/lib/modules")
  depmod -b "$tmp/k" "$kver"

  local root=$tmp/root
  mkdir -p "$root"/{bin,dev,proc,sys,host,lib/modules,tmp}
  cp /bin/busybox "$root/bin/busybox"
  cp "$LAB_DIR/init.sh" "$root/init"
  chmod 755 "$root/init"
  # Load order: each module after its dependencies, each once.
  local m line path seen=" "
  : > "$root/lib/modules/order"
  for m in "${LAB_MODULES[@]}"; do
    while read -r line; do
      [[ "$line" == insmod* ]] || continue
      path=$(awk '{print $2}' <<<"$line")
      case "$seen" in *" $path "*) continue ;; esac
      seen="$seen$path "
      local name
      name=$(basename "$path" .xz)
      xz -dc "$path" > "$root/lib/modules/$name"
      echo "$name" >> "$root/lib/modules/order"
    done < <(modprobe -d "$tmp/k" -S "$kver" --show-depends "$m")
  done
  (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$tmp/initramfs.cpio"
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

# The work directory holds the command script and the L1 console log; it is on this machine and reached over 9p.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmm-lab.XXXXXX")
chmod 755 "$WORK"
trap 'rm -rf "$WORK"' EXIT
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
# A lab that fell asleep for good is woken. Under TCG with nested SVM the L1 has been seen halted, QEMU using no CPU
# at all and no timer armed (a lost timer interrupt), while a test waited for it: the run then sat until the lab's
# timeout. Any interrupt wakes it and its timers run again, so when QEMU has used no CPU for WAKE_AFTER seconds one
# byte goes to the L1's second serial port (ttyS1: the command's output; nobody reads its input). Each wake-up is
# logged: a lab that is merely idle keeps its timer ticking and so costs QEMU some CPU.
WAKE_AFTER=30
mkfifo "$WORK/serial-in"
exec 4<>"$WORK/serial-in"
wake_when_idle() {
  local tpid=$1 qpid="" last="" now idle=0 wakes=0
  while sleep 5; do
    [ -n "$qpid" ] || qpid=$(pgrep -P "$tpid" | head -n 1) || true
    [ -n "$qpid" ] || continue
    now=$(awk '{print $14 + $15}' "/proc/$qpid/stat" 2>/dev/null) || return 0
    if [ "$now" = "$last" ]; then idle=$((idle + 5)); else idle=0; fi
    last=$now
    if [ "$idle" -ge "$WAKE_AFTER" ]; then
      wakes=$((wakes + 1))
      log "QEMU used no CPU for ${idle} s: the lab is asleep with no timer armed; sending it an interrupt (wake-up $wakes)"
      printf '\r' >&4
      idle=0
    fi
  done
}

log "booting the lab (QEMU TCG, EPYC with SVM+NPT, $CPUS vCPUs, $MEM MiB): $*"
t0=$SECONDS
set +e
timeout --foreground -k 10 "$TIMEOUT" qemu-system-x86_64 \
  -accel tcg,thread=single -cpu "$LAB_CPU" -smp "$CPUS" -m "$MEM" \
  -nodefaults -no-user-config -display none -no-reboot \
  -kernel "$IMAGE/vmlinuz" -initrd "$IMAGE/initramfs.cpio" \
  -append "console=ttyS0 panic=-1 loglevel=4 clocksource=hpet lab.work=$WORK lab.vivid=${VIVID_PARAMS// /,}" \
  -serial "file:$WORK/console.log" -serial stdio \
  -device virtio-rng-pci \
  -virtfs local,path=/,mount_tag=host,security_model=passthrough,multidevs=remap \
  < "$WORK/serial-in" &
tpid=$!
wake_when_idle "$tpid" &
wpid=$!
wait "$tpid"
qrc=$?
kill "$wpid" 2>/dev/null
wait "$wpid" 2>/dev/null
exec 4>&-
set -e
elapsed=$((SECONDS - t0))
rc=$(sed -n 's/^LAB-EXIT \([0-9]*\).*/\1/p' "$WORK/console.log" 2>/dev/null | tail -n 1)
if [ "$qrc" = 124 ]; then
  log "the lab ran out of time after ${TIMEOUT} s; the L1 console's last lines:"
  tail -n 30 "$WORK/console.log" >&2 || true
  exit 124
fi
if [ -z "$rc" ]; then
  log "the lab stopped without the command's exit code (QEMU exit $qrc); the L1 console's last lines:"
  tail -n 40 "$WORK/console.log" >&2 || true
  exit 125
fi
log "done in ${elapsed} s (lab boot to power-off), command exit code $rc"
exit "$rc"
