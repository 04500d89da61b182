#!/bin/sh
# Boots firmware/out/media-stream.elf under QEMU (-M pc, PVH via -kernel) and checks the transport path
# against QEMU's own modern virtio-rng-pci, plus the failure paths' exit codes. Needs qemu-system-x86_64.
# Usage: firmware/tests/qemu-smoke.sh [kvm|tcg]   (default: kvm if /dev/kvm is usable, else tcg)
# QEMU's isa-debug-exit turns a guest exit code V into (V << 1) | 1, so success (V = 0) is QEMU status 1.
set -u

here=$(cd "$(dirname "$0")/.." && pwd)
elf="$here/out/media-stream.elf"
[ -f "$elf" ] || { echo "qemu-smoke: $elf missing, run firmware/build.sh" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || { echo "qemu-smoke: qemu-system-x86_64 not installed" >&2; exit 2; }

accel=${1:-}
if [ -z "$accel" ]; then
    if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then accel=kvm; else accel=tcg; fi
fi
# -cpu host/max set MSR 0x10a (ARCH_CAPABILITIES), which this project's hosts refuse; drop that feature.
cpu="max,-arch-capabilities"

failures=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

run() { # run <expected guest exit code> <expected line regex> <append>
    expect_code=$1; expect_line=$2; append=$3
    timeout 120 qemu-system-x86_64 -M pc -accel "$accel" -cpu "$cpu" -m 128 -nographic -no-reboot -net none \
        -kernel "$elf" -append "$append" \
        -device virtio-rng-pci,disable-legacy=on -device isa-debug-exit,iobase=0x501,iosize=1 >"$log" 2>&1
    status=$?
    want=$(( (expect_code << 1) | 1 ))
    if [ "$status" -ne "$want" ]; then
        echo "FAIL [$append]: QEMU status $status, want $want (guest code $expect_code)"; tail -5 "$log"
        failures=$((failures + 1)); return
    fi
    if ! tr -d '\r' <"$log" | grep -Eq "$expect_line"; then
        echo "FAIL [$append]: no line matching '$expect_line'"; tail -5 "$log"
        failures=$((failures + 1)); return
    fi
    echo "ok   [$append] -> guest code $expect_code: $(tr -d '\r' <"$log" | grep -E "$expect_line" | head -1)"
}

run 0 '^RESULT mode=rng bytes=65536 requests=64$' "mode=rng rng_bytes=65536"
run 0 '^VIRTQ 0 size=4 \(device max 8\)' "mode=rng queue_size=4 rng_bytes=100"
run 4 '^FAIL code=4: no PCI function 1af4:1070' "mode=media frames=10"
run 2 "^FAIL code=2: unknown parameter 'bogus'" "mode=rng bogus=1"
run 2 '^FAIL code=2: parameter width needs a number' "width=12x"
run 2 '^FAIL code=2: queue_size must be a power of two' "mode=rng queue_size=12"

echo "accel=$accel failures=$failures"
[ "$failures" -eq 0 ]
