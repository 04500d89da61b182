# vmmtest=media-probe: insmod virtio_media, wait for the video node, print what
# VIDIOC_QUERYCAP reports.  Markers: "VMM-GUEST: video0 present",
# "VMM-GUEST: info <line>" for each line of v4l2-ctl --info,
# "VMM-GUEST: driver <name>", "VMM-GUEST: card <name>".
. /lib/media.sh
media_probe() {
	local out rc
	media_setup || return 1
	out=$(v4l2-ctl -d "$MEDIA_DEV" --info 2>&1)
	rc=$?
	printf '%s\n' "$out" | sed 's/^/VMM-GUEST: info /'
	if [ $rc -ne 0 ]; then
		echo "VMM-GUEST: v4l2-ctl --info failed rc=$rc"
		return 1
	fi
	# "	Driver name      : virtio-media" -> "virtio-media" (first one: a media
	# controller's "Media Driver Info" repeats the field)
	printf '%s\n' "$out" | sed -n '/^[[:space:]]*Driver name[[:space:]]*: /{s//VMM-GUEST: driver /p;q}'
	printf '%s\n' "$out" | sed -n '/^[[:space:]]*Card type[[:space:]]*: /{s//VMM-GUEST: card /p;q}'
}
media_probe
