# vmmtest=media-compliance: insmod virtio_media, run v4l2-compliance -s
# (streaming tests included) on the node.  Its full output goes to the console;
# markers: "VMM-GUEST: compliance <summary line>" (e.g. "Total for virtio-media
# device /dev/video0: 54, Succeeded: 54, Failed: 0, Warnings: 1") and
# "VMM-GUEST: compliance seconds=S rc=R".  Status 0 only if the summary line
# was found and says "Failed: 0".
. /lib/media.sh
media_compliance() {
	local t0 rc summary failed
	media_setup || return 1
	t0=$(media_cs)
	v4l2-compliance -d "$MEDIA_DEV" -s > /tmp/compliance.log 2>&1
	rc=$?
	cat /tmp/compliance.log
	echo "VMM-GUEST: compliance seconds=$(media_secs "$t0" "$(media_cs)") rc=$rc"
	# With a media controller there is also a "Grand Total" line; it covers all.
	summary=$(sed -n '/^\(Grand \)\{0,1\}Total for /h; ${x;p}' /tmp/compliance.log)
	if [ -z "$summary" ]; then
		echo "VMM-GUEST: compliance no summary line"
		return 1
	fi
	echo "VMM-GUEST: compliance $summary"
	failed=$(printf '%s\n' "$summary" | sed -n 's/.*Failed: \([0-9][0-9]*\).*/\1/p')
	[ "$failed" = 0 ]
}
media_compliance
