#!/bin/sh
# Builds the firmware payloads with the machine's gcc into firmware/out/ and checks each ELF for the PVH note.
# Usage: firmware/build.sh            (CC=... to choose the compiler)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src="$here/src"
out="$here/out"
obj="$out/obj"
CC=${CC:-gcc}
mkdir -p "$obj"

# Freestanding, no PIC, no red zone (interrupts at CPL0 use the current stack), baseline x86-64 only, and no
# SSE/x87 code from the compiler: CPL0 is emulated on the target host and ring-3 code gets no FPU state setup.
CFLAGS="-std=gnu11 -O2 -g -Wall -Wextra -Werror -ffreestanding -fno-builtin -nostdlib -static -fno-pic -fno-pie
 -mno-red-zone -mgeneral-regs-only -march=x86-64 -mtune=generic -fno-stack-protector -fno-asynchronous-unwind-tables
 -fno-unwind-tables -fcf-protection=none -mcmodel=small"

common="util serial cmdline timer pci virtq virtio_pci checksum cpl0"
media_stream="$common virtio_media attack main"

objs=""
$CC $CFLAGS -c "$src/boot.S" -o "$obj/boot.o"
objs="$obj/boot.o"
for f in $media_stream; do
    $CC $CFLAGS -c "$src/$f.c" -o "$obj/$f.o"
    objs="$objs $obj/$f.o"
done
# shellcheck disable=SC2086
$CC $CFLAGS -no-pie -Wl,-T,"$here/linker.ld" -Wl,--build-id=none -Wl,-z,max-page-size=4096 -Wl,-z,noexecstack \
    -Wl,--no-warn-rwx-segments -o "$out/media-stream.elf" $objs

# The loader finds the 32-bit entry through this note: PT_NOTE present, "Xen" note of type 18.
check_pvh_note() {
    if ! readelf -lW "$1" | grep -q ' NOTE '; then
        echo "build.sh: $1 has no PT_NOTE program header" >&2
        exit 1
    fi
    if ! readelf -nW "$1" | grep -Eq 'Xen[[:space:]]+0x0+4[[:space:]]+(Unknown note type: \(0x00000012\)|.*PHYS32_ENTRY)'; then
        echo "build.sh: $1 has no Xen PVH note (XEN_ELFNOTE_PHYS32_ENTRY, type 18)" >&2
        readelf -nW "$1" >&2
        exit 1
    fi
}
check_pvh_note "$out/media-stream.elf"
echo "built $out/media-stream.elf ($(wc -c < "$out/media-stream.elf") bytes)"
