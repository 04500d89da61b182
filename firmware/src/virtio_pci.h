/* virtio-pci modern transport (virtio 1.2 §4.1): capability discovery, status/feature negotiation, queue setup. */
#ifndef FW_VIRTIO_PCI_H
#define FW_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "pci.h"
#include "virtq.h"

#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED 128

#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_VERSION_1 32

#define VIRTIO_MSI_NO_VECTOR 0xFFFF

/* struct virtio_pci_common_cfg offsets */
#define COMMON_DFSELECT 0
#define COMMON_DF 4
#define COMMON_GFSELECT 8
#define COMMON_GF 12
#define COMMON_MSIX 16
#define COMMON_NUMQ 18
#define COMMON_STATUS 20
#define COMMON_CFGGENERATION 21
#define COMMON_Q_SELECT 22
#define COMMON_Q_SIZE 24
#define COMMON_Q_MSIX 26
#define COMMON_Q_ENABLE 28
#define COMMON_Q_NOFF 30
#define COMMON_Q_DESCLO 32
#define COMMON_Q_DESCHI 36
#define COMMON_Q_AVAILLO 40
#define COMMON_Q_AVAILHI 44
#define COMMON_Q_USEDLO 48
#define COMMON_Q_USEDHI 52
#define COMMON_CFG_MIN_LEN 56

struct virtio_pci {
    struct pci_dev pci;
    uintptr_t common;       /* struct virtio_pci_common_cfg */
    uintptr_t notify_base;
    uint32_t notify_off_multiplier;
    uint64_t notify_base_len;
    uintptr_t isr;
    uintptr_t device_cfg;
    uint32_t device_cfg_len;
    bool has_shm;           /* shared memory region id 0 */
    uint64_t shm_base;      /* guest-physical: BAR base + capability offset */
    uint64_t shm_len;
    uint16_t num_queues;
    uint64_t device_features;
    uint64_t accepted_features;
    bool quiet;             /* no VIRTIO/VIRTQ lines (attack mode re-initialises devices often) */
};

/* Finds the capabilities (common, notify, ISR, device, shared memory id 0) in the device's BARs. */
void virtio_pci_probe(struct virtio_pci *vp, const struct pci_dev *pci);

/* Reset, ACKNOWLEDGE, DRIVER, accept VERSION_1 only, FEATURES_OK (checked). */
void virtio_pci_negotiate(struct virtio_pci *vp, uint32_t timeout_ms);

/* The same, also accepting the bits of `extra` the device offers (attack mode: INDIRECT_DESC). */
void virtio_pci_negotiate_features(struct virtio_pci *vp, uint32_t timeout_ms, uint64_t extra);

/* Configures queue `index` with at most `max_size` entries (the device's maximum if smaller), MSI-X vector
 * NO_VECTOR, ring memory from slot `slot`, and enables it. */
void virtio_pci_setup_queue(struct virtio_pci *vp, struct virtq *q, unsigned slot, uint16_t index, uint16_t max_size);

void virtio_pci_driver_ok(struct virtio_pci *vp);

/* Current device status (fails the run when the device reports DEVICE_NEEDS_RESET). */
uint8_t virtio_pci_status(const struct virtio_pci *vp);

/* Current device status as read, DEVICE_NEEDS_RESET included (attack mode expects it). */
uint8_t virtio_pci_read_status(const struct virtio_pci *vp);

#endif
