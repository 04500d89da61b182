/* The exit-cost baseline: the smallest KVM run loop that can start the same PVH guest as vmm. It loads the ELF's
 * PT_LOAD segments at their physical addresses, enters the PVH 32-bit entry (from the Xen note) in flat protected
 * mode, and answers port I/O exits with nothing, as vmm does for an unclaimed port. A write to the debug-exit port
 * 0x501 ends the run; it prints how many other port writes it saw. Built with gcc by the performance lab. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MEM_SIZE (64u << 20)
#define DEBUG_EXIT_PORT 0x501
#define XEN_ELFNOTE_PHYS32_ENTRY 18

static void die(const char *what)
{
    perror(what);
    exit(2);
}

/* Returns the PVH entry, after copying the PT_LOAD segments into guest memory. */
static uint32_t load_pvh_elf(const char *path, uint8_t *mem)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        die(path);
    uint8_t *file = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (file == MAP_FAILED)
        die("mmap elf");
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)file;
    if ((size_t)st.st_size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64) {
        fprintf(stderr, "%s: not an ELF64 file\n", path);
        exit(2);
    }
    uint32_t entry = 0;
    for (int i = 0; i < eh->e_phnum; i++) {
        const Elf64_Phdr *ph = (const Elf64_Phdr *)(file + eh->e_phoff + (size_t)i * eh->e_phentsize);
        if (ph->p_type == PT_LOAD) {
            if (ph->p_paddr + ph->p_memsz > MEM_SIZE || ph->p_offset + ph->p_filesz > (uint64_t)st.st_size) {
                fprintf(stderr, "%s: segment out of range\n", path);
                exit(2);
            }
            memcpy(mem + ph->p_paddr, file + ph->p_offset, ph->p_filesz);
        } else if (ph->p_type == PT_NOTE) {
            const uint8_t *p = file + ph->p_offset, *end = p + ph->p_filesz;
            while (p + sizeof(Elf64_Nhdr) <= end) {
                const Elf64_Nhdr *n = (const Elf64_Nhdr *)p;
                const uint8_t *name = p + sizeof(*n), *desc = name + ((n->n_namesz + 3) & ~3u);
                if (n->n_type == XEN_ELFNOTE_PHYS32_ENTRY && n->n_namesz == 4 && memcmp(name, "Xen", 4) == 0 && n->n_descsz >= 4)
                    memcpy(&entry, desc, 4);
                p = desc + ((n->n_descsz + 3) & ~3u);
            }
        }
    }
    if (entry == 0) {
        fprintf(stderr, "%s: no PVH entry note\n", path);
        exit(2);
    }
    return entry;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: kvm-loop PVH-ELF\n");
        return 2;
    }
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        die("/dev/kvm");
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0)
        die("KVM_CREATE_VM");
    uint8_t *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED)
        die("mmap guest memory");
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE, .userspace_addr = (uint64_t)(uintptr_t)mem,
    };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        die("KVM_SET_USER_MEMORY_REGION");
    uint32_t entry = load_pvh_elf(argv[1], mem);

    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0)
        die("KVM_CREATE_VCPU");
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED)
        die("mmap kvm_run");
    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
        die("KVM_GET_SREGS");
    struct kvm_segment code = {
        .base = 0, .limit = 0xffffffff, .selector = 0x10, .type = 11, .present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1,
    };
    struct kvm_segment data = code;
    data.type = 3;
    data.selector = 0x18;
    sregs.cs = code;
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
    sregs.cr0 = (sregs.cr0 | 1) & ~0x80000000ull; /* protected mode, paging off: the PVH entry state */
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
        die("KVM_SET_SREGS");
    struct kvm_regs regs = { .rip = entry, .rflags = 2 };
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
        die("KVM_SET_REGS");

    unsigned long long port_writes = 0;
    for (;;) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            die("KVM_RUN");
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO:
            if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == DEBUG_EXIT_PORT) {
                printf("port writes %llu\n", port_writes);
                return ((uint8_t *)run)[run->io.data_offset];
            }
            port_writes += run->io.count;
            break;
        case KVM_EXIT_HLT:
            fprintf(stderr, "guest halted\n");
            return 1;
        default:
            fprintf(stderr, "unexpected exit reason %u\n", run->exit_reason);
            return 1;
        }
    }
}
