/* virtio-media driver side (protocol: /work/shared/docs/virtio-media-protocol.md): commands on queue 0,
 * events on queue 1, MMAP buffers in shared memory region 0. Single-planar VIDEO_CAPTURE only.
 * A device (struct media_dev: the two queues and the event buffers) carries one or more sessions (struct media);
 * events are routed to the session they name, and an event for no open session of ours fails the run. */
#ifndef FW_VIRTIO_MEDIA_H
#define FW_VIRTIO_MEDIA_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio_pci.h"
#include "virtq.h"

#define MEDIA_MAX_BUFFERS 32
#define MEDIA_MAX_SESSIONS 16   /* sessions of one device that receive events */
#define MEDIA_EVENT_BUFFERS 32
#define MEDIA_EVENT_SIZE 608    /* sizeof(struct virtio_media_event_dqbuf) */

/* Commands */
#define MEDIA_CMD_OPEN 1
#define MEDIA_CMD_CLOSE 2
#define MEDIA_CMD_IOCTL 3
#define MEDIA_CMD_MMAP 4
#define MEDIA_CMD_MUNMAP 5
#define MEDIA_MMAP_FLAG_RW 1

/* Ioctl numbers (_IOC_NR of the VIDIOC_* request). */
#define MEDIA_IOC_S_FMT 5
#define MEDIA_IOC_REQBUFS 8
#define MEDIA_IOC_QUERYBUF 9
#define MEDIA_IOC_QBUF 15
#define MEDIA_IOC_STREAMON 18
#define MEDIA_IOC_STREAMOFF 19
#define MEDIA_IOC_CREATE_BUFS 92

/* Payload sizes (x86_64 layouts). */
#define V4L2_FORMAT_SIZE 208
#define V4L2_REQBUFS_SIZE 20
#define V4L2_BUFFER_SIZE 88
#define V4L2_CREATE_BUFS_SIZE 256

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

struct media;

struct media_dev {
    struct virtio_pci *vp;
    struct virtq cmdq;
    struct virtq eventq;
    uint32_t timeout_ms;
    bool quiet;                 /* no MEDIA/BUF lines (attack mode prints its own) */
    unsigned event_buffers;
    bool event_posted[MEDIA_EVENT_BUFFERS];
    uint32_t events_ignored;    /* EVENT events (nothing is subscribed; tolerated and counted) */
    struct media *sessions[MEDIA_MAX_SESSIONS];
    /* Used eventq chains that are not our event buffers (cookie >= MEDIA_EVENT_BUFFERS: chains the attack code
     * posted itself), for it to inspect. */
    uint32_t foreign_cookie[8], foreign_len[8];
    unsigned foreign_count;
    uint8_t event_bufs[MEDIA_EVENT_BUFFERS][MEDIA_EVENT_SIZE] __attribute__((aligned(64)));
};

/* One session (one guest open()). DQBUF events routed to it wait in `ready` until taken. */
struct media {
    struct media_dev *dev;
    uint32_t session_id;
    bool session_open;
    uint32_t nbufs;
    struct media_buffer bufs[MEDIA_MAX_BUFFERS];
    struct media_frame ready[MEDIA_MAX_BUFFERS];
    unsigned ready_head, ready_count;
    unsigned late_events;       /* DQBUF events that arrived after STREAMOFF was sent */
    bool failed;                /* an ERROR event arrived for this session */
    uint32_t error;             /* its errno */
};

/* Sets up both queues in ring memory slots `slot` and `slot + 1` (at most `queue_size` entries), posts the event
 * buffers unless `hold_events` (attack mode posts them later with media_post_events), DRIVER_OK. Forgets every
 * session (after a device reset they are gone on the device too). */
void media_dev_start(struct media_dev *d, struct virtio_pci *vp, unsigned slot, uint16_t queue_size,
                     uint32_t timeout_ms, bool hold_events);

/* Posts every event buffer that is not posted, and notifies. */
void media_post_events(struct media_dev *d);

void media_open(struct media *m, struct media_dev *d);
void media_close(struct media *m);

/* OPEN that may fail: returns the status (0 = session open and routed). */
uint32_t media_try_open(struct media *m, struct media_dev *d);

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

/* What media_next_event found before `deadline` (a TSC value). */
enum media_wait { MEDIA_FRAME, MEDIA_ERROR, MEDIA_TIMEOUT };

/* The next DQBUF or ERROR event of this session (an ERROR leaves m->failed and m->error set). Nothing fails here but
 * malformed events; flags and bytesused are the caller's to check. */
enum media_wait media_next_event(struct media *m, struct media_frame *frame, uint64_t deadline);

/* Takes whatever the device has put in the event queue, routes it to its session and re-posts the buffers.
 * Returns the number of events taken. */
unsigned media_poll_events(struct media_dev *d);

/* After STREAMOFF: re-posts whatever events arrived in the meantime (none are expected per protocol). */
unsigned media_drain_events(struct media *m);

/* Raw commands (attack mode): the command buffer to fill (1024 bytes), the response buffer, and a transaction
 * that sends cmd[0, cmd_len) with a writable resp[0, resp_len) (none if 0) and returns the used length. */
uint8_t *media_cmd_buffer(void);
const uint8_t *media_resp_buffer(void);
uint32_t media_transact(struct media_dev *d, uint32_t cmd_len, uint32_t resp_len, const char *what);

/* A transaction whose answer must carry the 8-byte header: returns its status (0 or a positive errno). */
uint32_t media_command_status(struct media_dev *d, uint32_t cmd_len, uint32_t resp_len, const char *what);

/* Fills the command buffer with an IOCTL header for `session` and `code`; returns where the payload goes. */
uint8_t *media_ioctl_header(uint32_t session, uint32_t code);

const char *media_errno_name(uint32_t e);

#endif
