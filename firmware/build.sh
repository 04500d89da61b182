#!/bin/sh
# Builds the firmware payloads with the machine's gcc into firmware/out/ and checks each ELF for the PVH note; then the
# arm64 Image with Debian's cross compiler (see the end; ARM64=0|1|auto).
# Usage: firmware/build.sh            (CC=... to choose the compiler, ARM64_CC=... the arm64 one)
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

common="util mem serial printf cmdline timer pci pci_cf8 virtq virtio_pci checksum cpl0"
media_stream="$common virtio_media attack main"

# compile CC FLAGS DIR OBJDIR NAME...: builds each DIR/NAME.c into OBJDIR and appends the object to $objs_out. The
# string routines (mem.c, and util.c where it is plain C) are built so that their loops never become calls to the very
# routines they define.
compile() {
    cc=$1 flags=$2 dir=$3 objdir=$4
    shift 4
    for f in "$@"; do
        extra=""
        case "$f" in mem | util) extra="-fno-tree-loop-distribute-patterns" ;; esac
        # shellcheck disable=SC2086
        $cc $flags $extra -c "$dir/$f.c" -o "$objdir/$f.o"
        objs_out="$objs_out $objdir/$f.o"
    done
}

$CC $CFLAGS -c "$src/boot.S" -o "$obj/boot.o"
objs_out="$obj/boot.o"
# shellcheck disable=SC2086
compile "$CC" "$CFLAGS" "$src" "$obj" $media_stream
objs=$objs_out
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

# ---- arm64: out/media-stream-arm64.img, a Linux arm64 Image (media and rng modes; attack mode is x86_64-only) ----
# ARM64=auto (default): built when the cross compiler is installed, skipped (with a note) when not, so the x86_64
# build never depends on it. ARM64=1: required; installs gcc-aarch64-linux-gnu through scripts/ensure-apt-packages.sh
# when missing. ARM64=0: skipped.
ARM64=${ARM64:-auto}
ACC=${ARM64_CC:-aarch64-linux-gnu-gcc}
if [ "$ARM64" = 0 ]; then
    exit 0
fi
if ! command -v "$ACC" >/dev/null 2>&1; then
    if [ "$ARM64" = auto ]; then
        echo "build.sh: $ACC not installed, arm64 image skipped (ARM64=1 installs gcc-aarch64-linux-gnu)"
        exit 0
    fi
    bash "$here/../scripts/ensure-apt-packages.sh" gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu
fi
cross=${ACC%gcc}
a64="$src/arm64"
aobj="$obj/arm64"
mkdir -p "$aobj"

# Freestanding static PIE (boot.S applies its own R_AARCH64_RELATIVE relocations), baseline armv8-a, no FP/SIMD
# code, no outlined atomics or branch-protection instructions. Not -mstrict-align: everything C touches is Normal
# memory once boot.S has turned the MMU on, and MMIO goes through io.h's single-instruction accessors.
A64FLAGS="-std=gnu11 -O2 -g -Wall -Wextra -Werror -ffreestanding -fno-builtin -nostdlib -static -fpie -march=armv8-a
 -mgeneral-regs-only -mno-outline-atomics -mbranch-protection=none -fno-stack-protector -fno-asynchronous-unwind-tables
 -fno-unwind-tables -ffunction-sections -fdata-sections"

# Portable files from src/, the arm64 edges from src/arm64/ (boot, PL011 and exit, ECAM PCI, generic timer, FDT,
# exceptions, string routines).
arm64_shared="mem printf cmdline checksum pci virtq virtio_pci virtio_media main"
arm64_own="arch exception fdt pci_ecam serial timer util"

$ACC $A64FLAGS -c "$a64/boot.S" -o "$aobj/boot.o"
objs_out="$aobj/boot.o"
# shellcheck disable=SC2086
compile "$ACC" "$A64FLAGS" "$a64" "$aobj" $arm64_own
# shellcheck disable=SC2086
compile "$ACC" "$A64FLAGS" "$src" "$aobj" $arm64_shared
aobjs=$objs_out
aelf="$out/media-stream-arm64.elf"
aimg="$out/media-stream-arm64.img"
# shellcheck disable=SC2086
$ACC $A64FLAGS -static-pie -Wl,--no-dynamic-linker -Wl,-T,"$a64/linker.ld" -Wl,--gc-sections -Wl,--build-id=none \
    -Wl,-z,max-page-size=4096 -Wl,-z,noexecstack -Wl,--no-warn-rwx-segments -o "$aelf" $aobjs
"${cross}objcopy" -O binary "$aelf" "$aimg"

# The loader's view: "ARM\x64" at 56, text_offset 0, image_size covering .bss and stacks, only RELATIVE relocations.
check_arm64_image() {
    img=$1 elf=$2
    hdr=$(od -A n -t x8 -j 8 -N 24 "$img" | tr -s ' \n' ' ')
    magic=$(od -A n -t x4 -j 56 -N 4 "$img" | tr -d ' \n')
    set -- $hdr
    text_offset=$((0x$1)) image_size=$((0x$2)) flags=$((0x$3))
    file_size=$(wc -c < "$img")
    end=$("${cross}nm" "$elf" | awk '$3 == "__image_end" { print $1 }')
    start=$("${cross}nm" "$elf" | awk '$3 == "_text" { print $1 }')
    fail() { echo "build.sh: $img: $*" >&2; exit 1; }
    [ "$magic" = 644d5241 ] || fail "no ARM\\x64 magic at offset 56 (0x$magic)"
    [ "$text_offset" -eq 0 ] || fail "text_offset $text_offset, want 0"
    [ "$flags" -eq 10 ] || fail "flags $flags, want 0xA"
    [ "$image_size" -eq $((0x$end - 0x$start)) ] || fail "image_size $image_size, want __image_end - _text"
    [ "$image_size" -ge "$file_size" ] || fail "image_size $image_size is smaller than the file ($file_size bytes)"
    if "${cross}readelf" -rW "$elf" | grep -E '^[0-9a-f]{16} ' | grep -qv R_AARCH64_RELATIVE; then
        "${cross}readelf" -rW "$elf" >&2
        fail "relocations other than R_AARCH64_RELATIVE (boot.S applies only those)"
    fi
    for off in $("${cross}readelf" -rW "$elf" | awk '/R_AARCH64_RELATIVE/ { print $1 }'); do
        [ $((0x$off - 0x$start)) -ge 64 ] || fail "a relocation in the Image header (0x$off)"
    done
}
check_arm64_image "$aimg" "$aelf"
echo "built $aimg ($(wc -c < "$aimg") bytes, image_size $(( $(od -A n -t u8 -j 16 -N 8 "$aimg") )) bytes)"
