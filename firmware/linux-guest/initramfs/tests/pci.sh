# vmmtest=pci: list PCI functions (vendor:device class) from sysfs.
found=0
for d in /sys/bus/pci/devices/*; do
	[ -e "$d/vendor" ] || continue
	read -r v < "$d/vendor"; read -r id < "$d/device"; read -r c < "$d/class"
	echo "VMM-GUEST: pci ${d##*/} $v:$id class=$c"
	found=$((found + 1))
done
echo "VMM-GUEST: pci count=$found"
true
