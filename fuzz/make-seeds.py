#!/usr/bin/env python3
"""Writes the hand-made seeds in fuzz/corpus/TARGET/. Each one is a valid, deep run of its harness's decoder
(see fuzz/Vmm.Fuzz.Targets/*Target.cs for the operation encodings); the fuzzer mutates from there.
Run again after changing an encoding: python3 fuzz/make-seeds.py"""
import gzip, bz2, lzma, os, struct, subprocess, tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
u8 = lambda v: struct.pack("<B", v)
u16 = lambda v: struct.pack("<H", v)
u32 = lambda v: struct.pack("<I", v)
u64 = lambda v: struct.pack("<Q", v)


def write(target, name, data):
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data)


# ---- queue: flags, size exponent, desc/avail/used addresses, then operations -------------------------------------
NEXT, WRITE, INDIRECT = 1, 2, 4
def desc(i, addr, length, flags, nxt): return u8(1) + u16(i) + u32(addr) + u32(length) + u16(flags) + u16(nxt)
def publish(head): return u8(2) + u16(head)
POP = u8(4)
def complete(k, n): return u8(5) + u8(k) + u32(n)
def read_chain(k): return u8(6) + u8(k) + u8(2) + u8(2) + u8(16) + u8(0) + u8(32) + u8(3)
def write_chain(k): return u8(7) + u8(k) + u8(0) + u8(2) + u8(64) + u8(0) + u8(32) + u8(1)
ring = u8(0x03) + u8(4) + u32(0x1000) + u32(0x2000) + u32(0x3000)
valid = (ring + desc(0, 0x4000, 64, NEXT, 1) + desc(1, 0x5000, 128, WRITE, 0) + publish(0) + POP
         + read_chain(0) + write_chain(0) + complete(0, 96) + u8(8) + u8(2)
         # an indirect table of two descriptors, offered through descriptor 2
         + u8(13) + u32(0x6000) + u8(2) + u32(0x4000) + u32(16) + u16(NEXT) + u16(1) + u32(0x5000) + u32(32) + u16(WRITE) + u16(0)
         + desc(2, 0x6000, 32, INDIRECT, 0) + publish(2) + POP
         # the driver rewrites the indirect table after the pop, then the device writes and completes
         + u8(0) + u32(0x6010) + u8(16) + u64(0x10000 - 8) + u32(0x100) + u16(WRITE) + u16(0)
         + write_chain(0) + complete(0, 32)
         + u8(9) + u8(10))
write("queue", "valid-ring-indirect", valid)
hostile = (ring + desc(0, 0x4000, 16, NEXT, 1) + desc(1, 0x4000, 16, NEXT, 0) + publish(0) + POP  # loop
           + u8(10) + desc(3, 0xF000, 0x2000, WRITE, 0) + publish(3) + POP                         # crosses into the hole
           + u8(10) + u8(3) + u16(40) + POP)                                                      # avail index jump
write("queue", "hostile-loop-hole-jump", hostile)

# ---- pci: setup byte, then operations ----------------------------------------------------------------------------
def cfg_read(off, width_code): return u8(4) + u8(off) + u8(width_code)
def cfg_write(off, width_code, v): return u8(3) + u8(off) + u8(width_code) + u32(v)
def bar0(off, width_code, write, v=0): return u8(6) + u16(off) + u8(width_code) + (u8(1) + u64(v) if write else u8(0))
def ram(off, data): return u8(9) + u16(off) + u8(len(data)) + data
probe = (cfg_read(0, 2) + cfg_read(0x34, 0) + cfg_read(0x40, 1) + cfg_write(0x04, 1, 6)
         + u8(8) + u8(4)                                             # bring-up with MSI-X, offered features
         + ram(0, u64(0x20000) + u32(64) + u16(WRITE) + u16(0))        # descriptor 0 of queue 0
         + ram(0x1000, u16(0) + u16(1) + u16(0))                      # avail: idx 1, ring[0] = 0
         + bar0(0x3000, 1, True, 0)                                   # notify queue 0
         + bar0(0x14, 0, False) + bar0(0x1000, 0, False) + bar0(0x2000, 2, False)
         + bar0(0x4000, 2, True, 0xFEE00000) + bar0(0x400C, 2, True, 0) + bar0(0x6000, 3, False)
         + u8(5) + u8(0) + u16(0x100) + u8(2) + u8(0)                  # ECAM read of the extended space
         + u8(10) + u8(1) + u8(11))
write("pci", "rng-probe-msix", u8(0) + probe)
write("pci", "media-probe-ioevents", u8(3) + probe + cfg_read(0x18, 2) + cfg_write(0x18, 2, 0xFFFFFFFF) + cfg_read(0x18, 2))
write("pci", "cf8-raw-widths", u8(0) + u8(0) + u8(0x02) + u32(0x80000000) + u8(1) + u8(0x0C) + u8(2) + u8(0x81) + u32(0xFFFF)
      + u8(7) + u64(0xE0000000) + u8(3) + u8(0))

# ---- media: setup byte, then operations --------------------------------------------------------------------------
OPEN = u8(0)
def s_fmt(sel, typ, fmt, w, h, extra): return u8(7) + u8(sel) + u8(typ) + u8(fmt) + u16(w) + u16(h) + extra + u8(0)
def reqbufs(sel, count, typ, mem): return u8(8) + u8(sel) + u8(count) + u8(typ) + u8(mem)
def mmap(sel, k): return u8(3) + u8(sel) + u8(k) + u8(0) + u8(1)
def qbuf_mmap(sel, i): return u8(9) + u8(sel) + u8(i) + u8(0) + u8(0) + u32(0) + u8(0) + u8(0)
def stream(sel, on, typ): return u8(10) + u8(sel) + u8(on) + u8(typ)
PUMP = u8(6)
def ioctl(sel, code_index, payload, room): return u8(2) + u8(sel) + u8(code_index) + u16(len(payload)) + payload + u16(room)
s_parm = u32(1) + u32(0x1000) + u32(0) + u32(1) + u32(60) + bytes(204 - 20)
ext = u8(11) + u8(0) + u8(0) + u8(1) + u8(1) + u8(0) + u8(1) + u8(0) + u32(100) + u16(0)
mmap_stream = (OPEN + s_fmt(0, 0, 0, 320, 240, u8(0)) + reqbufs(0, 4, 0, 0)
               + mmap(0, 0) + mmap(0, 1) + mmap(0, 2) + mmap(0, 3)
               + qbuf_mmap(0, 0) + qbuf_mmap(0, 1) + qbuf_mmap(0, 2) + qbuf_mmap(0, 3)
               + stream(0, 1, 0) + PUMP + ioctl(0, 15, s_parm, 204) + ext + PUMP + qbuf_mmap(0, 0)
               + OPEN + ioctl(1, 2, u32(1) + bytes(204), 208) + PUMP + stream(0, 0, 0)
               + u8(4) + u8(0) + u8(1) + u8(0) + u8(0) + u8(0) + u8(0) + u8(0) + u8(0) + u8(0) + u8(1) + u8(0))
write("media", "mmap-streaming-two-sessions", u8(0) + mmap_stream)
def sg(addr, length): return u32(addr) + u8(0xFF) + u32(length)
userptr = (OPEN + s_fmt(0, 1, 3, 320, 240, u8(2)) + reqbufs(0, 2, 1, 1)
           + u8(9) + u8(0) + u8(0) + u8(1) + u8(1) + u8(2) + u8(0) + u32(76800) + u8(0) + u32(38400) + u8(0)
           + u8(2) + sg(0x100000, 76800) + sg(0x200000, 38400) + u8(0)
           + stream(0, 1, 1) + PUMP + PUMP + stream(0, 0, 1) + u8(1) + u8(0) + u8(1))
write("media", "userptr-mplane-sg", u8(6) + userptr)
write("media", "raw-commands", u8(0) + u8(5) + u16(8) + u32(9) + u32(0) + u16(64) + OPEN
      + u8(2) + u8(0) + u8(0) + u16(0) + u16(512) + u8(5) + u16(4) + u32(3) + u16(8))

# ---- boot: the first byte picks the parser -----------------------------------------------------------------------
def elf(pvh=True):
    code = bytes([0xF4] * 16)
    note = u32(4) + u32(4) + u32(18) + b"Xen\0" + u32(0x100000) if pvh else b""
    phnum = 2 if pvh else 1
    phoff = 64
    data_off = phoff + 56 * phnum
    eh = (b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + u16(2) + u16(0x3E) + u32(1) + u64(0x100000) + u64(phoff)
          + u64(0) + u32(0) + u16(64) + u16(56) + u16(phnum) + u16(64) + u16(0) + u16(0))
    load = u32(1) + u32(5) + u64(data_off) + u64(0x100000) + u64(0x100000) + u64(len(code)) + u64(len(code)) + u64(0x1000)
    ph = load
    if pvh:
        ph += u32(4) + u32(4) + u64(data_off + len(code)) + u64(0) + u64(0) + u64(len(note)) + u64(len(note)) + u64(4)
    return eh + ph + code + note


def bzimage(payload, version=0x020F):
    setup = bytearray(1024)
    setup[0x1F1] = 1                                  # setup_sects: 1 + boot sector
    setup[0x1FE:0x200] = u16(0xAA55)
    setup[0x200] = 0xEB
    setup[0x201] = 0x66                               # jump: header ends at 0x268
    setup[0x202:0x206] = b"HdrS"
    setup[0x206:0x208] = u16(version)
    setup[0x211] = 1                                  # LOADED_HIGH
    setup[0x214:0x218] = u32(0x100000)
    setup[0x22C:0x230] = u32(0x7FFFFFFF)
    setup[0x230:0x234] = u32(0x200000)
    setup[0x234] = 1
    setup[0x238:0x23C] = u32(2047)
    setup[0x248:0x24C] = u32(0x10)
    setup[0x24C:0x250] = u32(len(payload))
    setup[0x258:0x260] = u64(0x1000000)
    setup[0x260:0x264] = u32(0x100000)
    return bytes(setup) + bytes(0x10) + payload


def tool(args, data):
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "in")
        with open(src, "wb") as f:
            f.write(data)
        return subprocess.run(args + ["-c", src], check=True, capture_output=True).stdout


vmlinux = elf()
sized = lambda c: c + u32(len(vmlinux))
payloads = {
    "gzip": gzip.compress(vmlinux, mtime=0),
    "xz": sized(lzma.compress(vmlinux, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)),
    "lzma": sized(lzma.compress(vmlinux, format=lzma.FORMAT_ALONE)),
    "bzip2": sized(bz2.compress(vmlinux)),
    "zstd": sized(tool(["zstd", "-q", "-19"], vmlinux)),
    "lz4": sized(tool(["lz4", "-q", "-l"], vmlinux)),
}
write("boot", "load-elf-pvh", u8(0) + u8(8) + u16(16) + u8(0) + u16(10) + b"console=x1" + vmlinux)
write("boot", "load-elf-linux64", u8(0) + u8(2) + u16(0) + u8(0) + elf(pvh=False))
write("boot", "load-bzimage-gzip", u8(0) + u8(0) + u16(4) + u8(7) + bzimage(payloads["gzip"]))
write("boot", "load-bzimage-32bit", u8(0) + u8(4) + u16(4) + u8(0) + bzimage(payloads["zstd"]))
for name, p in payloads.items():
    write("boot", f"decompress-{name}", u8(1) + p)
write("boot", "elf-parse", u8(2) + vmlinux)
write("boot", "cmdline", u8(3) + u8(6) + u16(24) + b'quiet init=/bin/sh -- a b' [:24]
      + u16(12) + b"noapic ro=1 " + u16(4) + b"key1" + u16(5) + b"value" + u16(5) + b"quiet" + u16(4096))
write("boot", "initrd-placement-header", u8(4) + u64(0x100000) + u64(0x200000) + u64(0x1000000) + u64(0x37FFFFFF)
      + bzimage(payloads["gzip"]))
write("boot", "flags", u8(5) + b"--kernel\0/etc/hostname\0--mem\0128\0--cpus\0002\0--media\0test-pattern,width=640,height=480\0--rng")
write("boot", "config-file", u8(6) + b'{"kernel": "k", "initrd": "i", "mem": 64, "cpus": 2, "rng": true, "boot": "pvh",'
      b' "media": ["test-pattern,width=320,height=240,fps=30,format=NV12"], "logLevel": "warn"}')
write("boot", "media-spec", u8(7) + b"/dev/video0,shm=1G,stall=5,hide=0x00980900+0x00980901")

# ---- media: every ioctl code once, and CREATE_BUFS --------------------------------------------------------------
# Index of each code in MediaTarget.IoctlCodes (Enum.GetValues order: by value), then the three unknown codes.
CODES = [0, 2, 4, 5, 8, 9, 10, 11, 14, 15, 16, 17, 18, 19, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 33, 34, 36, 37, 38,
         39, 40, 41, 46, 47, 48, 49, 50, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73,
         74, 75, 76, 77, 78, 79, 80, 82, 87, 88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101, 102, 103, 1, 255, 0x100]
sweep = OPEN
for i in range(len(CODES)):
    sweep += ioctl(0, i, u32(1) + bytes(252), 512)
write("media", "ioctl-sweep", u8(0) + sweep)
fmt = u32(1) + bytes(4) + u32(320) + u32(240) + u32(0x56595559) + u32(1) + u32(640) + u32(153600) + bytes(208 - 32)
create = u32(0) + u32(3) + u32(1) + bytes(4) + fmt + u32(0) + u32(0) + u32(0) + bytes(256 - 236)
write("media", "create-bufs-subscribe", u8(0) + OPEN + ioctl(0, CODES.index(92), create, 256)
      + ioctl(0, CODES.index(90), u32(5) + u32(0) + u32(0) + bytes(20), 0)         # SUBSCRIBE_EVENT (SOURCE_CHANGE)
      + ioctl(0, CODES.index(74), u32(0) + u32(0x56595559) + bytes(36), 44)         # ENUM_FRAMESIZES
      + ioctl(0, CODES.index(94), u32(1) + u32(0) + bytes(56), 64)                  # G_SELECTION
      + qbuf_mmap(0, 0) + qbuf_mmap(0, 1) + stream(0, 1, 0) + PUMP + stream(0, 0, 0))
