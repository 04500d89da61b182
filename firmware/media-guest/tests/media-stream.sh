# vmmtest=media-stream: insmod virtio_media, stream MMAP frames with v4l2-ctl
# and time it with the guest clock.  Command-line variables:
#   vmmframes=N            frames to capture (default 300)
#   vmmwidth=W vmmheight=H vmmfourcc=F   format to set first (each optional;
#                          none given: keep the device's current format)
#   vmmminfps=X            fail if the measured rate is below X (optional)
# Markers: "VMM-GUEST: stream frames=N seconds=S fps=X" where N counts the
# frames v4l2-ctl dequeued and S is the elapsed time of the whole v4l2-ctl run
# (setup included); "VMM-GUEST: stream v4l2-ctl-fps=Y" is the last rate
# v4l2-ctl printed itself (frames only, reported about once a second).
# Status 0 if v4l2-ctl succeeded, dequeued N frames and (if asked) fps >= X.
. /lib/media.sh
media_stream() {
	local n fmt m2m t0 t1 rc got cs fps v4lfps
	n=${vmmframes:-300}
	media_setup || return 1
	fmt=
	[ -z "$vmmwidth" ] || fmt="width=$vmmwidth"
	[ -z "$vmmheight" ] || fmt="${fmt:+$fmt,}height=$vmmheight"
	[ -z "$vmmfourcc" ] || fmt="${fmt:+$fmt,}pixelformat=$vmmfourcc"
	# A mem-to-mem node (e.g. vim2m via --extra-module) also needs an output stream.
	m2m=
	v4l2-ctl -d "$MEDIA_DEV" --info 2>/dev/null | grep -q 'Memory-to-Memory' && m2m=--stream-out-mmap
	echo "VMM-GUEST: stream start frames=$n fmt=${fmt:-current}${m2m:+ m2m}"
	t0=$(media_cs)
	# shellcheck disable=SC2086 # empty options must vanish
	v4l2-ctl -d "$MEDIA_DEV" ${fmt:+--set-fmt-video=$fmt} --stream-mmap $m2m \
		--stream-count="$n" > /tmp/stream.log 2>&1
	rc=$?
	t1=$(media_cs)
	# v4l2-ctl prints one '<' per dequeued capture buffer and " NN.NN fps" lines.
	got=$(tr -cd '<' < /tmp/stream.log | wc -c)
	sed -e 's/[<>]//g' -e '/^[[:space:]]*$/d' -e 's/^/VMM-GUEST: v4l2-ctl /' /tmp/stream.log
	cs=$(( t1 - t0 ))
	[ $cs -gt 0 ] || cs=1
	fps=$(awk -v n="$got" -v cs="$cs" 'BEGIN { printf "%.2f", n * 100 / cs }')
	echo "VMM-GUEST: stream frames=$got seconds=$(media_secs "$t0" "$t1") fps=$fps rc=$rc"
	v4lfps=$(sed -n 's/.* \([0-9][0-9]*\.[0-9][0-9]\) fps.*/\1/p' /tmp/stream.log | tail -n 1)
	[ -z "$v4lfps" ] || echo "VMM-GUEST: stream v4l2-ctl-fps=$v4lfps"
	[ $rc -eq 0 ] || return 1
	[ "$got" -eq "$n" ] || { echo "VMM-GUEST: stream expected $n frames, got $got"; return 1; }
	[ -z "$vmmminfps" ] && return 0
	awk -v f="$fps" -v m="$vmmminfps" 'BEGIN { exit !(f + 0 >= m + 0) }' ||
		{ echo "VMM-GUEST: stream fps $fps below $vmmminfps"; return 1; }
}
media_stream
