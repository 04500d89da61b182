#!/usr/bin/env bash
# Time from process start to the test guest's "VMM-GUEST: init reached" marker, our vmm against QEMU microvm,
# run alternately (vmm, qemu, vmm, qemu, …) on the same kernel, initramfs, memory and command line, so that drift in
# host load hits both equally. Prints every run and the medians.
#   benchmarks/boot/compare-qemu-microvm.sh [RUNS] [initramfs-min|initramfs]
# vmm is `dotnet $VMM_DLL` (default: the Release build), or the NativeAOT binary named by VMM_BIN.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=${1:-5}
IMAGE=${2:-initramfs-min}
KIT=${VMM_GUEST_DIR:-$(bash "$ROOT/firmware/linux-guest/build.sh" --print-dir | tail -n 1)}
VMM=${VMM_DLL:-$ROOT/src/Vmm.Cli/bin/Release/net10.0/vmm.dll}
[ -f "$VMM" ] || dotnet build "$ROOT/src/Vmm.Cli" -c Release -nologo -v quiet >&2
command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 missing (apt-get install qemu-system-x86)" >&2; exit 2; }
MARK="VMM-GUEST: init reached"
# One command line for both (qemu-microvm.sh takes it through VMM_GUEST_CMDLINE and adds console=ttyS0). On a PVM
# host it carries the host profile's masks (vmm adds the same ones, so they change nothing); on an ordinary host,
# or in the lab (lab/run.sh -- benchmarks/boot/compare-qemu-microvm.sh), only what both VMMs need.
if [ -d /sys/module/kvm_pvm ] && [ -d /sys/class/misc/kvm ]; then
  BASE="noxsave clearcpuid=popcnt,smap,erms,fsrm,fsgsbase,clwb rodata=off quiet panic=-1 reboot=k"
  BASE+=" no_int3_selftest percpu_alloc=page noreplace-smp"
  BASE+=" GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX,-AVX2,-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD,-AVX_Fast_Unaligned_Load,-FMA,-F16C"
else
  BASE="panic=-1 reboot=k"
fi
CMDLINE="console=ttyS0 $BASE"
export VMM_GUEST_CMDLINE=$BASE

# Runs "$@", prints seconds until the marker appears on its stdout (or "timeout").
time_to_marker() {
  local start end line
  start=$EPOCHREALTIME
  while IFS= read -r line; do
    if [[ $line == *"$MARK"* ]]; then
      end=$EPOCHREALTIME
      echo "$start $end" | awk '{printf "%.2f\n", $2 - $1}'
      cat >/dev/null
      return
    fi
  done < <(timeout 300 "$@" </dev/null 2>/dev/null)
  echo timeout
}

if [ -n "${VMM_BIN:-}" ]; then vmm_cmd=("$VMM_BIN"); else vmm_cmd=(dotnet "$VMM"); fi
vmm=() qemu=()
for i in $(seq 1 "$RUNS"); do
  v=$(time_to_marker "${vmm_cmd[@]}" run --kernel "$KIT/vmlinux" --initrd "$KIT/$IMAGE.cpio" --mem 128 --cmdline "$CMDLINE")
  q=$(time_to_marker bash "$ROOT/firmware/linux-guest/qemu-microvm.sh" --kit "$KIT" --initrd "$KIT/$IMAGE.cpio" --mem 128)
  echo "run $i: vmm ${v} s   qemu-microvm ${q} s"
  vmm+=("$v") qemu+=("$q")
done
median() { printf '%s\n' "$@" | grep -v timeout | sort -n | awk '{a[NR]=$1} END {if (NR) print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2); else print "n/a"}'; }
mv=$(median "${vmm[@]}") mq=$(median "${qemu[@]}")
echo "median to '$MARK' ($IMAGE, $RUNS runs each): vmm $mv s, qemu-microvm $mq s, ratio vmm/qemu $(awk -v a="$mv" -v b="$mq" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
