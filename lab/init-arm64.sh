#!/bin/busybox sh
# shellcheck shell=dash
# /init of the aarch64 lab's L1 guest (see run-arm64.sh). The initramfs is the root: an arm64 userland unpacked from
# Debian packages. Loads 9p, mounts this machine's / at /host, bind-mounts the directories run-arm64.sh listed in
# $WORK/binds at their own paths, runs the command script with its output on the virtio-serial port lab.out and reports
# the exit code on the console (ttyAMA0) as "LAB-EXIT N".
/bin/busybox --install -s /bin
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

fail() { echo "LAB-FAIL $*"; echo "LAB-EXIT 125"; sync; poweroff -f; }

arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p" | tail -n 1; }
WORK=$(arg lab.work)

while read -r m; do
  insmod "/lib/modules/lab/$m" || fail "insmod $m"
done < /lib/modules/lab/order
# KVM is built into Debian's arm64 kernel; it registers /dev/kvm when the kernel was entered at EL2.
[ -c /dev/kvm ] || fail "no /dev/kvm (was the kernel booted at EL2, -M virt,virtualization=on?)"

ip link set lo up || fail "loopback"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose host /host || fail "9p mount"
[ -f "/host$WORK/binds" ] || fail "no $WORK/binds on the shared root"
while read -r d; do
  mkdir -p "$d" && mount -o bind "/host$d" "$d" || fail "bind mount of $d"
done < "/host$WORK/binds"
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
# What udev would add: bash's process substitution needs /dev/fd.
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
# The command's output goes to the virtio-serial port named lab.out (a plain port, not a console: no tty layer,
# and each write is one buffer for QEMU, where hvc0 managed about 14 KB/s).
OUT=""
for p in /sys/class/virtio-ports/*; do
  [ "$(cat "$p/name" 2>/dev/null)" = lab.out ] && OUT=/dev/${p##*/}
done
[ -n "$OUT" ] && [ -c "$OUT" ] || fail "no virtio-serial port lab.out (for the command's output)"

echo "LAB-READY $(cut -d' ' -f1 /proc/uptime) s"
/bin/sh "$WORK/cmd.sh" > "$OUT" 2>&1 < /dev/null
rc=$?
sync
echo "LAB-EXIT $rc"
poweroff -f
