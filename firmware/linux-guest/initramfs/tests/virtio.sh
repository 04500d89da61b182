# vmmtest=virtio: the VMM's virtio-pci devices as Linux sees them — PCI ids and bound drivers, 1 MiB read from the
# virtio-rng device, and the MSI-X interrupts in use.
for d in /sys/bus/pci/devices/*; do
	[ -e "$d/vendor" ] || continue
	read -r v < "$d/vendor"; read -r id < "$d/device"
	drv=none
	[ -e "$d/driver" ] && { drv=$(readlink "$d/driver"); drv=${drv##*/}; }
	echo "VMM-GUEST: pci ${d##*/} $v:$id driver=$drv"
done
if [ -e /dev/hwrng ]; then
	read -r cur < /sys/class/misc/hw_random/rng_current
	echo "VMM-GUEST: hwrng current=$cur"
	n=$(head -c 1048576 /dev/hwrng | wc -c)
	echo "VMM-GUEST: hwrng bytes=$n"
fi
grep -i msi /proc/interrupts | while read -r line; do echo "VMM-GUEST: irq $line"; done
true
