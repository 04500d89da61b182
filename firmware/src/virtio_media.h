/* virtio-media driver side (protocol: /work/shared/docs/virtio-media-protocol.md): commands on queue 0,
 * events on queue 1, MMAP buffers in shared memory region 0. Single-planar VIDEO_CAPTURE only. */
#ifndef FW_VIRTIO_MEDIA_H
#define FW_VIRTIO_MEDIA_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio_pci.h"
#include "virtq.h"

#define MEDIA_MAX_BUFFERS 32

/* V4L2 values used here (videodev2.h). */
#define V4L2_BUF_TYPE_VIDEO_CAPTURE 1
#define V4L2_MEMORY_MMAP 1
#define V4L2_FIELD_NONE 1
#define V4L2_BUF_FLAG_ERROR 0x40

struct media_buffer {
    uint32_t mem_offset;    /* v4l2_buffer.m.offset from QUERYBUF */
    uint32_t length;        /* v4l2_buffer.length */
    uint64_t driver_addr;   /* MMAP answer: offset inside shm region 0 */
    uint64_t map_len;
    const uint8_t *data;    /* guest-physical (= virtual) address of the mapping */
    bool queued;
};

struct media_format {
    uint32_t width, height, fourcc, bytesperline, sizeimage;
};

struct media_frame {
    uint32_t index, sequence, bytesused, flags;
};

struct media {
    struct virtio_pci *vp;
    struct virtq cmdq;
    struct virtq eventq;
    uint32_t timeout_ms;
    uint32_t session_id;
    bool session_open;
    unsigned event_buffers;
    uint32_t nbufs;
    struct media_buffer bufs[MEDIA_MAX_BUFFERS];
    uint32_t events_ignored;
};

/* Sets up both queues (at most `queue_size` entries), posts the event buffers, DRIVER_OK. */
void media_start(struct media *m, struct virtio_pci *vp, uint16_t queue_size, uint32_t timeout_ms);

void media_open(struct media *m);
void media_close(struct media *m);

/* S_FMT single-planar capture; returns the device's answer (caller checks it against the request). */
void media_set_format(struct media *m, uint32_t width, uint32_t height, uint32_t fourcc, struct media_format *out);

/* REQBUFS(count, MMAP); returns the granted count (0 frees). */
uint32_t media_request_buffers(struct media *m, uint32_t count);

/* QUERYBUF + MMAP for every granted buffer; checks the mappings against shm region 0. */
void media_map_buffers(struct media *m, uint32_t min_length, bool rw);
void media_unmap_buffers(struct media *m);

void media_queue_buffer(struct media *m, uint32_t index);
void media_stream(struct media *m, bool on);

/* Waits for the next DQBUF event of our session (ignoring EVENT events), validates it and re-posts the event
 * buffer. Fails the run on ERROR events, timeouts and malformed events. */
void media_wait_frame(struct media *m, struct media_frame *frame);

/* After STREAMOFF: re-posts whatever events arrived in the meantime (none are expected per protocol). */
unsigned media_drain_events(struct media *m);

#endif
