# vmmtest=media-probe: insmod virtio_media, wait for the video node, print what
# VIDIOC_QUERYCAP reports.  Markers: "VMM-GUEST: video0 present",
# "VMM-GUEST: info <line>" for each line of v4l2-ctl --info,
# "VMM-GUEST: driver <name>", "VMM-GUEST: card <name>".
. /lib/media.sh
media_probe() {
	local out rc line
	media_setup || return 1
	out=$(v4l2-ctl -d "$MEDIA_DEV" --info 2>&1)
	rc=$?
	printf '%s\n' "$out" | while IFS= read -r line; do echo "VMM-GUEST: info $line"; done
	if [ $rc -ne 0 ]; then
		echo "VMM-GUEST: v4l2-ctl --info failed rc=$rc"
		return 1
	fi
	# "	Driver name      : virtio-media" -> "virtio-media"
	printf '%s\n' "$out" | sed -n 's/^[[:space:]]*Driver name[[:space:]]*: /VMM-GUEST: driver /p'
	printf '%s\n' "$out" | sed -n 's/^[[:space:]]*Card type[[:space:]]*: /VMM-GUEST: card /p'
}
media_probe
