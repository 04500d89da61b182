#!/bin/sh
# Runs inside the aarch64 lab (lab/run.sh --arch arm64), on its arm64 KVM, for Arm64LabTests: each scenario's
# output goes to OUTDIR/NAME.log with every line prefixed by the lab's uptime in seconds, and ends with "EXIT rc".
#   lab-scenarios.sh OUTDIR VMM GUEST_DIR ARM64_FIRMWARE X86_KERNEL
# Logs are written to /dev/shm first: a VM console streamed to the 9p-shared root stalls the guest (lab/README.md).
set -u
out=$1 vmm=$2 guest=$3 firmware=$4 x86_kernel=$5
work=/dev/shm/arm64-lab-scenarios
rm -rf "$work"
mkdir -p "$work" "$out"

stamp() {
  while IFS= read -r line; do
    echo "$(cut -d' ' -f1 /proc/uptime) $line"
  done
}

run() {
  name=$1
  shift
  echo "$(cut -d' ' -f1 /proc/uptime) START $*" > "$work/$name.log"
  { "$@" 2>&1 < /dev/null; echo "EXIT $?"; } | stamp >> "$work/$name.log"
  cp "$work/$name.log" "$out/"
}

linux="--kernel $guest/Image --initrd $guest/initramfs.cpio.gz --mem 512 --cpus 2"
# Boot to /init and power off, twice each under vmm and (when the lab image has it) QEMU: the boot-time ratio.
for i in 1 2; do
  run "vmm-boot-$i" "$vmm" run $linux
  if command -v qemu-system-aarch64 > /dev/null; then
    run "qemu-boot-$i" qemu-system-aarch64 -M virt,gic-version=3 -enable-kvm -cpu host -smp 2 -m 512 -nographic \
      -no-reboot -kernel "$guest/Image" -initrd "$guest/initramfs.cpio.gz" -append "console=ttyAMA0 panic=-1"
  fi
done
run rng "$vmm" run $linux --rng --cmdline "console=ttyAMA0 rngtest"
run hvc "$vmm" run $linux --console virtio
run stream "$vmm" demo --firmware "$firmware" --width 640 --height 480 --frames 60 --fps 30
run wrong-arch "$vmm" run --kernel "$x86_kernel"
