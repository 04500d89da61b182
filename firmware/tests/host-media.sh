#!/bin/sh
# Builds the host harness (firmware driver code + a fake virtio-media device thread) and runs its scenarios.
# See tests/host/media_harness.c for what this does and does not prove.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/out"
mkdir -p "$out"
CC=${CC:-gcc}
src="$here/src"
$CC -std=gnu11 -O1 -g -Wall -Wextra -Werror -Wno-unused-parameter -pthread -fsanitize=address,undefined \
    -fno-sanitize-recover=undefined -DMAPPED_GIB=131072 -I"$src" \
    -o "$out/media_harness" "$here/tests/host/media_harness.c" \
    "$src/main.c" "$src/virtio_media.c" "$src/virtq.c" "$src/checksum.c" "$src/timer.c" "$src/cmdline.c" || exit 2

failures=0
run() { # run <expected exit> <scenario> [params...]
    want=$1; shift
    "$out/media_harness" "$@" >"$out/harness.log" 2>&1
    got=$?
    if [ "$got" -ne "$want" ]; then
        echo "FAIL [$*]: exit $got, want $want"; tail -5 "$out/harness.log"; failures=$((failures + 1))
    else
        echo "ok   [$*] -> $got: $(grep -E '^(RESULT|FAIL)|harness:' "$out/harness.log" | tail -1)"
    fi
}

run 0 ok frames=300 width=640 height=480 print_every=7
run 0 ok frames=60 width=3840 height=2160 buffers=4
run 0 ok frames=50 width=320 height=240 buffers=1 queue_size=2
run 8 bad_used_id frames=30 width=64 height=48
run 11 error_event frames=30 width=64 height=48
run 12 bytesused_too_big frames=30 width=64 height=48
run 10 fmt_mismatch frames=30 width=64 height=48
run 7 no_answer frames=30 width=64 height=48 timeout_ms=300
run 11 wrong_session_event frames=30 width=64 height=48
run 10 mmap_outside frames=30 width=64 height=48
run 9 errno frames=30 width=64 height=48
run 11 short_dqbuf_event frames=30 width=64 height=48
run 11 duplicate_dqbuf frames=30 width=64 height=48
echo "failures=$failures"
[ "$failures" -eq 0 ]
