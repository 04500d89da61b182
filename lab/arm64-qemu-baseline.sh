#!/bin/sh
# The QEMU baseline in the aarch64 lab: boots the arm64 L2 test guest (firmware/arm64-guest) under the lab's own
# KVM with QEMU as the VMM, and reports how long QEMU took from its start to "ARM64-GUEST-INIT" (and the RNG test).
# Runs inside the lab (busybox sh, arm64), so the guest is built first, on this machine:
#
#   dir=$(firmware/arm64-guest/build.sh --print-dir)
#   lab/run.sh --arch arm64 --with-qemu -- lab/arm64-qemu-baseline.sh "$dir" [--smp N] [--append 'more words']
#
# Every line of the guest's console comes back prefixed with the seconds since QEMU started (L1 clock).
set -u
dir=${1:?usage: arm64-qemu-baseline.sh GUEST_DIR [--smp N] [--append WORDS] [--initrd FILE]}
shift
smp=1
extra=""
initrd=$dir/initramfs.cpio.gz
while [ $# -gt 0 ]; do
  case "$1" in
    --smp) smp=$2; shift 2 ;;
    --append) extra=$2; shift 2 ;;
    --initrd) initrd=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
command -v qemu-system-aarch64 > /dev/null || { echo "no qemu-system-aarch64: run the lab with --with-qemu" >&2; exit 125; }

# The kernel and initramfs are copied to /dev/shm first: read over 9p, the 44 MB Image alone costs seconds of QEMU
# start-up that have nothing to do with the VMM. The copy is timed separately.
c0=$(cut -d' ' -f1 /proc/uptime)
mkdir -p /dev/shm/arm64-guest
cp "$dir/Image" /dev/shm/arm64-guest/Image
cp "$initrd" /dev/shm/arm64-guest/initrd
c1=$(cut -d' ' -f1 /proc/uptime)
echo "BASELINE copying Image and initramfs to /dev/shm: $(awk "BEGIN { printf \"%.2f\", $c1 - $c0 }") s"
dir=/dev/shm/arm64-guest
initrd=$dir/initrd

t0=$(cut -d' ' -f1 /proc/uptime)
# -nodefaults -nic none: no default NIC (its option ROM is not in the lab's root). gic-version=3: the lab's GIC is
# a GICv3 without the GICv2 compatibility interface, so KVM can only give a guest a GICv3.
qemu-system-aarch64 -M virt,gic-version=3 -enable-kvm -cpu host -smp "$smp" -m 512 -nographic -nodefaults \
  -nic none -serial stdio -no-reboot \
  -kernel "$dir/Image" -initrd "$initrd" \
  -append "console=ttyAMA0 panic=-1 rngtest $extra" \
  -device virtio-rng-pci 2>&1 \
| awk -v t0="$t0" '
    # One process for all lines: /proc/uptime is read with getline, no fork per line (a fork costs the lab ~50 ms).
    function now(  u) { getline u < "/proc/uptime"; close("/proc/uptime"); split(u, f, " "); return f[1] - t0 }
    { sub(/\r$/, ""); t = now(); printf "%6.2f %s\n", t, $0 }
    /^ARM64-GUEST-INIT/ { printf "BASELINE qemu start to ARM64-GUEST-INIT: %.2f s\n", t }
    { fflush() }'
t1=$(cut -d' ' -f1 /proc/uptime)
echo "BASELINE qemu start to exit: $(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }") s"
