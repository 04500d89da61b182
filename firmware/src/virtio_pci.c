#include "exit_codes.h"
#include "io.h"
#include "serial.h"
#include "timer.h"
#include "virtio_pci.h"

#define PCI_CAP_ID_VENDOR 0x09

/* virtio_pci_cap.cfg_type */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_SHARED_MEMORY_CFG 8



struct cap_region {
    bool found;
    uint8_t bar;
    uint64_t offset;
    uint64_t length;
    uint8_t cap;
};

/* Resolves a capability's (bar, offset, length) to a guest-physical address inside that memory BAR. */
static uintptr_t region_address(const struct virtio_pci *vp, const struct cap_region *r, const char *what,
                                uint64_t min_len)
{
    if (!r->found)
        fw_fail(EXIT_PCI_ERROR, "virtio %s capability missing", what);
    if (r->bar > 5)
        fw_fail(EXIT_PCI_ERROR, "virtio %s capability names BAR %u", what, r->bar);
    const struct pci_bar *bar = &vp->pci.bars[r->bar];
    if (bar->is_io || bar->size == 0)
        fw_fail(EXIT_PCI_ERROR, "virtio %s capability names BAR%u, which is not a memory BAR", what, r->bar);
    if (r->length < min_len || r->offset > bar->size || r->length > bar->size - r->offset)
        fw_fail(EXIT_PCI_ERROR, "virtio %s region [0x%lx, +0x%lx) does not fit BAR%u (size 0x%lx, need 0x%lx)", what,
                r->offset, r->length, r->bar, bar->size, min_len);
    return (uintptr_t)(bar->base + r->offset);
}

void virtio_pci_probe(struct virtio_pci *vp, const struct pci_dev *pci)
{
    *vp = (struct virtio_pci){ .pci = *pci };
    struct cap_region common = { 0 }, notify = { 0 }, isr = { 0 }, device = { 0 }, shm = { 0 };
    uint32_t notify_mult = 0;

    for (uint8_t cap = pci_find_capability(pci, PCI_CAP_ID_VENDOR, 0); cap != 0;
         cap = pci_find_capability(pci, PCI_CAP_ID_VENDOR, cap)) {
        uint8_t cap_len = pci_read8(pci, (uint8_t)(cap + 2));
        uint8_t cfg_type = pci_read8(pci, (uint8_t)(cap + 3));
        if (cap_len < 16 || cap > 256 - 16)
            continue; /* not a virtio_pci_cap */
        struct cap_region r = {
            .found = true,
            .bar = pci_read8(pci, (uint8_t)(cap + 4)),
            .offset = pci_read32(pci, (uint8_t)(cap + 8)),
            .length = pci_read32(pci, (uint8_t)(cap + 12)),
            .cap = cap,
        };
        uint8_t id = pci_read8(pci, (uint8_t)(cap + 5));
        /* The spec says: use the first capability of each type the driver understands. */
        switch (cfg_type) {
        case VIRTIO_PCI_CAP_COMMON_CFG:
            if (!common.found)
                common = r;
            break;
        case VIRTIO_PCI_CAP_NOTIFY_CFG:
            if (!notify.found && cap_len >= 20 && cap <= 256 - 20) {
                notify = r;
                notify_mult = pci_read32(pci, (uint8_t)(cap + 16));
            }
            break;
        case VIRTIO_PCI_CAP_ISR_CFG:
            if (!isr.found)
                isr = r;
            break;
        case VIRTIO_PCI_CAP_DEVICE_CFG:
            if (!device.found)
                device = r;
            break;
        case VIRTIO_PCI_CAP_SHARED_MEMORY_CFG:
            /* virtio_pci_cap64: Linux insists on cap_len == 24; so do we, to catch the same device bugs. */
            if (!shm.found && id == 0 && cap_len == 24 && cap <= 256 - 24) {
                shm = r;
                shm.offset |= (uint64_t)pci_read32(pci, (uint8_t)(cap + 16)) << 32;
                shm.length |= (uint64_t)pci_read32(pci, (uint8_t)(cap + 20)) << 32;
            }
            break;
        default:
            break;
        }
    }

    vp->common = region_address(vp, &common, "common", COMMON_CFG_MIN_LEN);
    vp->notify_base = region_address(vp, &notify, "notify", 2);
    vp->notify_off_multiplier = notify_mult;
    vp->notify_base_len = notify.length;
    vp->isr = region_address(vp, &isr, "ISR", 1);
    if (device.found) {
        vp->device_cfg = region_address(vp, &device, "device", 1);
        vp->device_cfg_len = (uint32_t)(device.length > 0xFFFFFFFFu ? 0xFFFFFFFFu : device.length);
    }
    if (shm.found) {
        vp->shm_base = region_address(vp, &shm, "shared memory", 1);
        vp->shm_len = shm.length;
        vp->has_shm = true;
    }
    fw_printf("VIRTIO caps: common=BAR%u+0x%lx notify=BAR%u+0x%lx mult=%u isr=BAR%u+0x%lx device=%s", common.bar,
              common.offset, notify.bar, notify.offset, notify_mult, isr.bar, isr.offset,
              device.found ? "yes" : "no");
    if (shm.found)
        fw_printf(" shm0=BAR%u+0x%lx len=0x%lx base=0x%lx", shm.bar, shm.offset, shm.length, vp->shm_base);
    fw_printf("\n");
}

uint8_t virtio_pci_read_status(const struct virtio_pci *vp) { return mmio_read8(vp->common + COMMON_STATUS); }

uint8_t virtio_pci_status(const struct virtio_pci *vp)
{
    uint8_t status = virtio_pci_read_status(vp);
    if (status & VIRTIO_STATUS_NEEDS_RESET)
        fw_fail(EXIT_VIRTIO_INIT, "device set DEVICE_NEEDS_RESET (status 0x%x)", status);
    return status;
}

static void set_status(struct virtio_pci *vp, uint8_t bits)
{
    uint8_t status = mmio_read8(vp->common + COMMON_STATUS);
    mmio_write8(vp->common + COMMON_STATUS, (uint8_t)(status | bits));
}

void virtio_pci_negotiate(struct virtio_pci *vp, uint32_t timeout_ms)
{
    virtio_pci_negotiate_features(vp, timeout_ms, 0);
}

void virtio_pci_negotiate_features(struct virtio_pci *vp, uint32_t timeout_ms, uint64_t extra)
{
    uintptr_t c = vp->common;
    /* Reset, then wait until the device reads back 0 (virtio 1.2 §4.1.4.3.2). */
    mmio_write8(c + COMMON_STATUS, 0);
    uint64_t deadline = deadline_after_ms(timeout_ms);
    while (mmio_read8(c + COMMON_STATUS) != 0) {
        if (deadline_passed(deadline))
            fw_fail(EXIT_VIRTIO_INIT, "device status did not read 0 after reset");
        cpu_relax();
    }
    set_status(vp, VIRTIO_STATUS_ACKNOWLEDGE);
    set_status(vp, VIRTIO_STATUS_DRIVER);

    mmio_write32(c + COMMON_DFSELECT, 0);
    uint64_t features = mmio_read32(c + COMMON_DF);
    mmio_write32(c + COMMON_DFSELECT, 1);
    features |= (uint64_t)mmio_read32(c + COMMON_DF) << 32;
    vp->device_features = features;
    if (!(features & (1ull << VIRTIO_F_VERSION_1)))
        fw_fail(EXIT_VIRTIO_INIT, "device does not offer VIRTIO_F_VERSION_1 (features 0x%lx)", features);

    /* Accept VERSION_1 (plus what the caller asks for, if offered): no EVENT_IDX, no packed ring. */
    uint64_t accepted = (1ull << VIRTIO_F_VERSION_1) | (extra & features);
    mmio_write32(c + COMMON_GFSELECT, 0);
    mmio_write32(c + COMMON_GF, (uint32_t)accepted);
    mmio_write32(c + COMMON_GFSELECT, 1);
    mmio_write32(c + COMMON_GF, (uint32_t)(accepted >> 32));
    set_status(vp, VIRTIO_STATUS_FEATURES_OK);
    if (!(mmio_read8(c + COMMON_STATUS) & VIRTIO_STATUS_FEATURES_OK))
        fw_fail(EXIT_VIRTIO_INIT, "device refused FEATURES_OK for features 0x%lx", accepted);

    mmio_write16(c + COMMON_MSIX, VIRTIO_MSI_NO_VECTOR);
    vp->num_queues = mmio_read16(c + COMMON_NUMQ);
    vp->accepted_features = accepted;
    if (!vp->quiet)
        fw_printf("VIRTIO features=0x%lx accepted=0x%lx queues=%u\n", features, accepted, vp->num_queues);
}

void virtio_pci_setup_queue(struct virtio_pci *vp, struct virtq *q, unsigned slot, uint16_t index, uint16_t max_size)
{
    uintptr_t c = vp->common;
    if (index >= vp->num_queues)
        fw_fail(EXIT_VIRTIO_INIT, "queue %u requested, device has %u", index, vp->num_queues);
    mmio_write16(c + COMMON_Q_SELECT, index);
    uint16_t device_max = mmio_read16(c + COMMON_Q_SIZE);
    if (device_max == 0)
        fw_fail(EXIT_VIRTIO_INIT, "queue %u is not available (size 0)", index);
    if (mmio_read16(c + COMMON_Q_ENABLE) != 0)
        fw_fail(EXIT_VIRTIO_INIT, "queue %u is enabled before setup (reset did not clear it)", index);
    /* Largest power of two <= min(device max, our max): split rings need power-of-two sizes. */
    uint16_t size = max_size < device_max ? max_size : device_max;
    if (size > VIRTQ_MAX_SIZE)
        size = VIRTQ_MAX_SIZE;
    while (size & (size - 1))
        size &= (uint16_t)(size - 1);

    virtq_init(q, slot, index, size);
    mmio_write16(c + COMMON_Q_SIZE, size);
    mmio_write16(c + COMMON_Q_MSIX, VIRTIO_MSI_NO_VECTOR);
    uint64_t desc = virtq_desc_paddr(q), avail = virtq_avail_paddr(q), used = virtq_used_paddr(q);
    /* 64-bit fields written as two 32-bit halves: allowed by the spec and safe for any device model. */
    mmio_write32(c + COMMON_Q_DESCLO, (uint32_t)desc);
    mmio_write32(c + COMMON_Q_DESCHI, (uint32_t)(desc >> 32));
    mmio_write32(c + COMMON_Q_AVAILLO, (uint32_t)avail);
    mmio_write32(c + COMMON_Q_AVAILHI, (uint32_t)(avail >> 32));
    mmio_write32(c + COMMON_Q_USEDLO, (uint32_t)used);
    mmio_write32(c + COMMON_Q_USEDHI, (uint32_t)(used >> 32));

    uint16_t notify_off = mmio_read16(c + COMMON_Q_NOFF);
    uint64_t offset = (uint64_t)notify_off * vp->notify_off_multiplier;
    if (offset + 2 > vp->notify_base_len)
        fw_fail(EXIT_PCI_ERROR, "queue %u notify offset 0x%lx outside the notify region (0x%lx)", index, offset,
                vp->notify_base_len);
    q->notify_addr = vp->notify_base + (uintptr_t)offset;

    mmio_write16(c + COMMON_Q_ENABLE, 1);
    if (!vp->quiet)
        fw_printf("VIRTQ %u size=%u (device max %u) notify=0x%lx\n", index, size, device_max, (uint64_t)q->notify_addr);
}

void virtio_pci_driver_ok(struct virtio_pci *vp)
{
    set_status(vp, VIRTIO_STATUS_DRIVER_OK);
    uint8_t status = virtio_pci_status(vp);
    if (!(status & VIRTIO_STATUS_DRIVER_OK))
        fw_fail(EXIT_VIRTIO_INIT, "DRIVER_OK not accepted (status 0x%x)", status);
}
