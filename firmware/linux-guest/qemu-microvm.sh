#!/usr/bin/env bash
# Boot the Vmm test guest kit in QEMU microvm (reference for boot times).
#
#   qemu-microvm.sh [options] [-- extra qemu args]
#     --kit DIR        kit dir (default: the output of ./build.sh --print-dir)
#     --initrd WHICH   busybox (initramfs.cpio, default) | min (initramfs-min.cpio) | PATH
#     --smp N          vCPUs (default 1)
#     --mem MB         memory (default 64)
#     --test NAME      add vmmtest=NAME (busybox image runs /tests/NAME.sh)
#     --append ARGS    extra kernel command-line arguments
#     --timeout S      kill QEMU after S seconds (default 120)
#     --stamp          prefix each console line with the elapsed wall time
#   VMM_GUEST_CMDLINE  replaces the base kernel command line (see below)
#
# Prints the guest console on stdout; on stderr it prints the time from QEMU
# start to the "VMM-GUEST: init reached" line and to VM exit.  Exit status:
# the guest's debug-exit code V (QEMU's isa-debug-exit reports (V<<1)|1),
# 124 on timeout, 125 if the VM ended without using the exit port.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KIT= INITRD=busybox SMP=1 MEM=64 TEST= APPEND= TIMEOUT=120 STAMP=0
while [ $# -gt 0 ]; do
	case "$1" in
	--kit) KIT=$2; shift 2 ;;
	--initrd) INITRD=$2; shift 2 ;;
	--smp) SMP=$2; shift 2 ;;
	--mem) MEM=$2; shift 2 ;;
	--test) TEST=$2; shift 2 ;;
	--append) APPEND=$2; shift 2 ;;
	--timeout) TIMEOUT=$2; shift 2 ;;
	--stamp) STAMP=1; shift ;;
	--) shift; break ;;
	-h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "qemu-microvm.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
[ -n "$KIT" ] || KIT=$("$HERE/build.sh" --print-dir | tail -n 1)
case "$INITRD" in
busybox) INITRD=$KIT/initramfs.cpio ;;
min) INITRD=$KIT/initramfs-min.cpio ;;
esac
[ -f "$KIT/vmlinux" ] && [ -f "$INITRD" ] || { echo "missing $KIT/vmlinux or $INITRD" >&2; exit 2; }

# Guest command line for a software-virtualised (PVM) KVM host; see README.md.
# VMM_GUEST_CMDLINE replaces this base (console, vmmtest and --append still added).
BASE="noxsave clearcpuid=popcnt,smap,erms,fsrm,fsgsbase,clwb"
BASE+=" rodata=off quiet panic=-1 reboot=k no_int3_selftest percpu_alloc=page noreplace-smp"
# Keep glibc (busybox) off AVX: noxsave means the guest kernel does not
# preserve YMM/ZMM state (see README.md, "AVX in guest userspace").
BASE+=" GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX,-AVX2,-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD,-AVX_Fast_Unaligned_Load,-FMA,-F16C"
CMDLINE="console=ttyS0 ${VMM_GUEST_CMDLINE:-$BASE}"
[ -z "$TEST" ] || CMDLINE+=" vmmtest=$TEST"
[ -z "$APPEND" ] || CMDLINE+=" $APPEND"

# -cpu host and -cpu max make QEMU write MSR 0x10a (ARCH_CAPABILITIES), which
# this host's KVM refuses; max without arch-capabilities works.
QEMU=(qemu-system-x86_64
	-M microvm,x-option-roms=off,isa-serial=on,rtc=off
	-enable-kvm -cpu max,-arch-capabilities -smp "$SMP" -m "$MEM"
	-nodefaults -no-user-config -display none -serial stdio -no-reboot
	-device isa-debug-exit,iobase=0x501,iosize=1
	-kernel "$KIT/vmlinux" -initrd "$INITRD" -append "$CMDLINE" "$@")

echo "qemu-microvm: ${QEMU[*]}" >&2
start=$EPOCHREALTIME
elapsed() { awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }
marker=
seen=$(mktemp); trap 'rm -f "$seen"' EXIT
set +e
timeout --foreground -k 5 "$TIMEOUT" "${QEMU[@]}" 2>&1 </dev/null | {
	while IFS= read -r line; do
		line=${line%$'\r'}
		if [ $STAMP = 1 ]; then
			printf '%8s %s\n' "$(elapsed)" "$line"
		else
			printf '%s\n' "$line"
		fi
		if [ -z "$marker" ] && [ "$line" = "VMM-GUEST: init reached" ]; then
			marker=1
			echo 1 > "$seen"
			echo "qemu-microvm: init reached after $(elapsed) s" >&2
		fi
	done
	[ -n "$marker" ] || echo "qemu-microvm: init marker not seen" >&2
}
rc=${PIPESTATUS[0]}
set -e
echo "qemu-microvm: VM ended after $(elapsed) s, qemu status $rc" >&2
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
	echo "qemu-microvm: timeout after ${TIMEOUT}s" >&2
	exit 124
elif [ $((rc & 1)) = 1 ] && { [ "$rc" != 1 ] || [ -s "$seen" ]; }; then
	# status 1 is also QEMU's own error status: trust it only after the marker
	echo "qemu-microvm: guest exit code $((rc >> 1))" >&2
	exit $((rc >> 1))
fi
echo "qemu-microvm: VM ended without the debug-exit port" >&2
exit 125
