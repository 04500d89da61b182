#!/bin/busybox sh
# shellcheck shell=dash
# /init of the lab's L1 guest (see run.sh): load KVM, vivid and 9p, mount this machine's root, run the command
# script in a chroot with its output on ttyS1, and report the exit code on the console (ttyS0) as "LAB-EXIT N".
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

fail() { echo "LAB-FAIL $*"; echo "LAB-EXIT 125"; sync; poweroff -f; }

arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p" | tail -n 1; }
WORK=$(arg lab.work)
VIVID=$(arg lab.vivid | tr ',' ' ')

while read -r m; do
  params=""
  [ "$m" = vivid.ko ] && params=$VIVID
  # shellcheck disable=SC2086 # params is a list of key=value words
  insmod "/lib/modules/$m" $params || fail "insmod $m"
done < /lib/modules/order
[ -c /dev/kvm ] || fail "no /dev/kvm after loading kvm-amd (is SVM offered to the lab's CPU?)"

ip link set lo up || fail "loopback"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose host /host || fail "9p mount"
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts devpts /host/dev/pts
# What udev would add: bash's process substitution needs /dev/fd.
ln -s /proc/self/fd /host/dev/fd
ln -s /proc/self/fd/0 /host/dev/stdin
ln -s /proc/self/fd/1 /host/dev/stdout
ln -s /proc/self/fd/2 /host/dev/stderr
mount -t tmpfs tmpfs /host/dev/shm
mount -t tmpfs tmpfs /host/run
stty -F /dev/ttyS1 raw -echo 115200

echo "LAB-READY $(cut -d' ' -f1 /proc/uptime) s"
chroot /host /bin/bash "$WORK/cmd.sh" > /dev/ttyS1 2>&1 < /dev/null
rc=$?
sync
echo "LAB-EXIT $rc"
poweroff -f
