# vmmtest=media-tools: check the image without needing a virtio-media device:
# insmod virtio_media (the driver registers even with no device), then time the
# start of v4l2-ctl and v4l2-compliance and run v4l2-ctl --list-devices.
# Markers: "VMM-GUEST: insmod virtio_media ok seconds=S",
# "VMM-GUEST: driver registered" (sysfs /sys/bus/virtio/drivers/virtio-media),
# "VMM-GUEST: glibc AVX_Fast_Unaligned_Load=0x0" (AVX off, see lib/media.sh),
# "VMM-GUEST: tool <name> seconds=S rc=R", "VMM-GUEST: list-devices <line>".
. /lib/media.sh
media_time() {
	local name=$1 t0 rc
	shift
	t0=$(media_cs)
	"$@" > /tmp/tool.log 2>&1
	rc=$?
	echo "VMM-GUEST: tool $name seconds=$(media_secs "$t0" "$(media_cs)") rc=$rc"
	return $rc
}
media_tools() {
	local ok=0
	media_insmod || return 1
	if [ -d /sys/bus/virtio/drivers/virtio-media ]; then
		echo "VMM-GUEST: driver registered"
	else
		echo "VMM-GUEST: driver not registered"; ok=1
	fi
	# GLIBC_TUNABLES (lib/media.sh) must keep glibc off AVX: 0x0 expected.
	/lib64/ld-linux-x86-64.so.2 --list-diagnostics 2>&1 |
		sed -n 's/^x86.cpu_features.preferred.AVX_Fast_Unaligned_Load=/VMM-GUEST: glibc AVX_Fast_Unaligned_Load=/p'
	media_time v4l2-ctl-version v4l2-ctl --version || ok=1
	sed 's/^/VMM-GUEST: version /' /tmp/tool.log
	media_time v4l2-compliance-version v4l2-compliance --version || ok=1
	sed 's/^/VMM-GUEST: version /' /tmp/tool.log
	# No device: v4l2-ctl says so and exits non-zero; it must run, not crash.
	media_time v4l2-ctl-list-devices v4l2-ctl --list-devices
	sed 's/^/VMM-GUEST: list-devices /' /tmp/tool.log
	grep -q 'error while loading shared libraries\|not found' /tmp/tool.log && ok=1
	return $ok
}
media_tools
