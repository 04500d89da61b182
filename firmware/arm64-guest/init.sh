#!/bin/busybox sh
# /init of the arm64 L2 test guest (firmware/arm64-guest/build.sh): mounts proc, sysfs and devtmpfs, loads the
# modules in /lib/modules/order, reports the online CPUs, optionally reads 1 MiB from the virtio RNG (kernel command
# line word "rngtest") and powers off (poweroff -f: PSCI SYSTEM_OFF on arm64). Markers, one a line, on the console:
#   ARM64-GUEST-INIT cpus=N
#   RNG-OK bytes=N  |  RNG-FAIL bytes=N <reason>     (with rngtest only; RNG-TIME seconds=S follows RNG-OK)
#   ARM64-GUEST-IRQ <a /proc/interrupts line of a virtio vector>     (one per vector)
#   ARM64-GUEST-DONE
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

while read -r m; do
  insmod "/lib/modules/$m" || echo "ARM64-GUEST-WARN insmod $m failed"
done < /lib/modules/order

# /sys/devices/system/cpu/online is a list of ranges such as "0-3" or "0,2-3".
cpus=0
for r in $(tr ',' ' ' < /sys/devices/system/cpu/online 2>/dev/null); do
  cpus=$((cpus + ${r#*-} - ${r%-*} + 1))
done
[ "$cpus" -gt 0 ] || cpus=$(nproc)
echo "ARM64-GUEST-INIT cpus=$cpus"

if grep -qw rngtest /proc/cmdline; then
  if [ ! -c /dev/hwrng ]; then
    echo "RNG-FAIL bytes=0 no /dev/hwrng"
  else
    t0=$(cut -d' ' -f1 /proc/uptime)
    # fullblock: the RNG may return short reads; dd's count must still mean 1 MiB.
    bytes=$(dd if=/dev/hwrng bs=65536 count=16 iflag=fullblock 2>/tmp/dd.err | wc -c)
    t1=$(cut -d' ' -f1 /proc/uptime)
    if [ "$bytes" -eq 1048576 ]; then
      echo "RNG-OK bytes=$bytes"
      echo "RNG-TIME seconds=$(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }") rng=$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)"
    else
      echo "RNG-FAIL bytes=$bytes $(tr '\n' ' ' < /tmp/dd.err) rng=$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)"
    fi
  fi
fi

# Which interrupt chip each virtio vector is on (ITS-PCI-MSIX when the ITS translates its MSIs) and how often it fired.
grep virtio /proc/interrupts 2>/dev/null | while read -r line; do echo "ARM64-GUEST-IRQ $line"; done

echo "ARM64-GUEST-DONE"
poweroff -f
