#include "exit_codes.h"
#include "serial.h"
#include "timer.h"
#include "util.h"
#include "virtio_media.h"

/* Commands */
#define CMD_OPEN 1
#define CMD_CLOSE 2
#define CMD_IOCTL 3
#define CMD_MMAP 4
#define CMD_MUNMAP 5

/* Events */
#define EVT_ERROR 0
#define EVT_DQBUF 1
#define EVT_EVENT 2
#define EVT_DQBUF_SIZE 608
#define EVT_ERROR_SIZE 16

/* Ioctl numbers (_IOC_NR of the VIDIOC_* request). */
#define IOC_S_FMT 5
#define IOC_REQBUFS 8
#define IOC_QUERYBUF 9
#define IOC_QBUF 15
#define IOC_STREAMON 18
#define IOC_STREAMOFF 19

#define V4L2_FORMAT_SIZE 208
#define V4L2_REQBUFS_SIZE 20
#define V4L2_BUFFER_SIZE 88

#define MMAP_FLAG_RW 1
#define MAX_EVENT_BUFFERS 32
#define PAGE_SIZE 4096

/* One command in flight at a time: these are its device-readable and device-writable buffers. */
static uint8_t cmd_buf[1024] __attribute__((aligned(64)));
static uint8_t resp_buf[1024] __attribute__((aligned(64)));
static uint8_t event_bufs[MAX_EVENT_BUFFERS][EVT_DQBUF_SIZE] __attribute__((aligned(64)));

static const char *errno_name(uint32_t e)
{
    switch (e) {
    case 1: return "EPERM";
    case 5: return "EIO";
    case 9: return "EBADF";
    case 11: return "EAGAIN";
    case 12: return "ENOMEM";
    case 14: return "EFAULT";
    case 16: return "EBUSY";
    case 19: return "ENODEV";
    case 22: return "EINVAL";
    case 25: return "ENOTTY";
    case 28: return "ENOSPC";
    case 32: return "EPIPE";
    case 110: return "ETIMEDOUT";
    default: return "errno";
    }
}

static void post_event_buffer(struct media *m, unsigned i)
{
    memset(event_bufs[i], 0, EVT_DQBUF_SIZE);
    struct virtq_buf b = { event_bufs[i], EVT_DQBUF_SIZE };
    virtq_add(&m->eventq, &b, 0, 1, i);
}

void media_start(struct media *m, struct virtio_pci *vp, uint16_t queue_size, uint32_t timeout_ms)
{
    memset(m, 0, sizeof(*m));
    m->vp = vp;
    m->timeout_ms = timeout_ms;
    if (!vp->has_shm)
        fw_fail(EXIT_PCI_ERROR, "virtio-media device has no shared memory region 0 (MMAP buffers impossible)");
    if (vp->num_queues < 2)
        fw_fail(EXIT_VIRTIO_INIT, "virtio-media needs 2 queues, device has %u", vp->num_queues);
    virtio_pci_setup_queue(vp, &m->cmdq, 0, 0, queue_size);
    virtio_pci_setup_queue(vp, &m->eventq, 1, 1, queue_size);
    if (m->cmdq.size < 2)
        fw_fail(EXIT_VIRTIO_INIT, "commandq of size %u cannot hold a command chain", m->cmdq.size);
    m->event_buffers = m->eventq.size < MAX_EVENT_BUFFERS ? m->eventq.size : MAX_EVENT_BUFFERS;
    /* Post the event buffers before DRIVER_OK, as the Linux driver does. */
    for (unsigned i = 0; i < m->event_buffers; i++)
        post_event_buffer(m, i);
    virtio_pci_driver_ok(vp);
    virtq_kick(&m->eventq);
}

/* Sends cmd_buf[0, cmd_len) with a writable resp_buf[0, resp_len) (none if 0) and waits for the answer.
 * Checks the used length and the status like the Linux driver: >= 8, status 0, then >= min_len. */
static uint32_t send_command(struct media *m, uint32_t cmd_len, uint32_t resp_len, uint32_t min_len, const char *what)
{
    struct virtq_buf bufs[2] = { { cmd_buf, cmd_len }, { resp_buf, resp_len } };
    memset(resp_buf, 0, sizeof(resp_buf));
    virtq_add(&m->cmdq, bufs, 1, resp_len ? 1 : 0, 0);
    virtq_kick(&m->cmdq);
    uint32_t cookie, used;
    virtq_wait(&m->cmdq, &cookie, &used, m->timeout_ms, what);
    if (resp_len == 0)
        return used;
    if (used < 8)
        fw_fail(EXIT_MEDIA_REPLY, "%s: reply of %u bytes, less than the 8-byte header", what, used);
    uint32_t status = get_le32(resp_buf);
    if (status != 0)
        fw_fail(EXIT_MEDIA_STATUS, "%s: device answered %s (%u)", what, errno_name(status), status);
    if (used < min_len)
        fw_fail(EXIT_MEDIA_REPLY, "%s: reply of %u bytes, need %u", what, used, min_len);
    return used;
}

/* Fills cmd_buf with an IOCTL header; the payload goes at cmd_buf + 16. */
static uint8_t *ioctl_header(struct media *m, uint32_t code)
{
    memset(cmd_buf, 0, sizeof(cmd_buf));
    put_le32(cmd_buf, CMD_IOCTL);
    put_le32(cmd_buf + 8, m->session_id);
    put_le32(cmd_buf + 12, code);
    return cmd_buf + 16;
}

void media_open(struct media *m)
{
    memset(cmd_buf, 0, sizeof(cmd_buf));
    put_le32(cmd_buf, CMD_OPEN);
    send_command(m, 8, 16, 16, "OPEN");
    m->session_id = get_le32(resp_buf + 8);
    m->session_open = true;
    fw_printf("MEDIA session=%u\n", m->session_id);
}

void media_close(struct media *m)
{
    memset(cmd_buf, 0, sizeof(cmd_buf));
    put_le32(cmd_buf, CMD_CLOSE);
    put_le32(cmd_buf + 8, m->session_id);
    /* CLOSE has no writable part; the used length must be 0 (virtq_poll enforces <= writable bytes). */
    send_command(m, 16, 0, 0, "CLOSE");
    m->session_open = false;
}

void media_set_format(struct media *m, uint32_t width, uint32_t height, uint32_t fourcc, struct media_format *out)
{
    uint8_t *f = ioctl_header(m, IOC_S_FMT);
    put_le32(f + 0, V4L2_BUF_TYPE_VIDEO_CAPTURE);
    put_le32(f + 8, width);
    put_le32(f + 12, height);
    put_le32(f + 16, fourcc);
    put_le32(f + 20, V4L2_FIELD_NONE);
    send_command(m, 16 + V4L2_FORMAT_SIZE, 8 + V4L2_FORMAT_SIZE, 8 + V4L2_FORMAT_SIZE, "S_FMT");
    const uint8_t *r = resp_buf + 8;
    if (get_le32(r) != V4L2_BUF_TYPE_VIDEO_CAPTURE)
        fw_fail(EXIT_MEDIA_REPLY, "S_FMT answered buffer type %u", get_le32(r));
    *out = (struct media_format){
        .width = get_le32(r + 8),
        .height = get_le32(r + 12),
        .fourcc = get_le32(r + 16),
        .bytesperline = get_le32(r + 24),
        .sizeimage = get_le32(r + 28),
    };
}

uint32_t media_request_buffers(struct media *m, uint32_t count)
{
    uint8_t *rb = ioctl_header(m, IOC_REQBUFS);
    put_le32(rb + 0, count);
    put_le32(rb + 4, V4L2_BUF_TYPE_VIDEO_CAPTURE);
    put_le32(rb + 8, V4L2_MEMORY_MMAP);
    send_command(m, 16 + V4L2_REQBUFS_SIZE, 8 + V4L2_REQBUFS_SIZE, 8 + V4L2_REQBUFS_SIZE, "REQBUFS");
    uint32_t granted = get_le32(resp_buf + 8);
    if (count == 0) {
        m->nbufs = 0;
        return 0;
    }
    if (granted == 0 || granted > MEDIA_MAX_BUFFERS)
        fw_fail(EXIT_MEDIA_REPLY, "REQBUFS(%u) granted %u buffers (want 1..%u)", count, granted, MEDIA_MAX_BUFFERS);
    m->nbufs = granted;
    return granted;
}

void media_map_buffers(struct media *m, uint32_t min_length, bool rw)
{
    const struct virtio_pci *vp = m->vp;
    for (uint32_t i = 0; i < m->nbufs; i++) {
        struct media_buffer *b = &m->bufs[i];
        *b = (struct media_buffer){ 0 };

        uint8_t *qb = ioctl_header(m, IOC_QUERYBUF);
        put_le32(qb + 0, i);
        put_le32(qb + 4, V4L2_BUF_TYPE_VIDEO_CAPTURE);
        put_le32(qb + 60, V4L2_MEMORY_MMAP);
        send_command(m, 16 + V4L2_BUFFER_SIZE, 8 + V4L2_BUFFER_SIZE, 8 + V4L2_BUFFER_SIZE, "QUERYBUF");
        const uint8_t *r = resp_buf + 8;
        if (get_le32(r) != i || get_le32(r + 4) != V4L2_BUF_TYPE_VIDEO_CAPTURE || get_le32(r + 60) != V4L2_MEMORY_MMAP)
            fw_fail(EXIT_MEDIA_REPLY, "QUERYBUF %u answered index %u type %u memory %u", i, get_le32(r),
                    get_le32(r + 4), get_le32(r + 60));
        b->mem_offset = get_le32(r + 64);
        b->length = get_le32(r + 72);
        if (b->length < min_length)
            fw_fail(EXIT_MEDIA_REPLY, "buffer %u holds %u bytes, the format needs %u", i, b->length, min_length);
        if (b->mem_offset % PAGE_SIZE != 0)
            fw_fail(EXIT_MEDIA_REPLY, "buffer %u mem_offset 0x%x is not page aligned", i, b->mem_offset);

        memset(cmd_buf, 0, sizeof(cmd_buf));
        put_le32(cmd_buf, CMD_MMAP);
        put_le32(cmd_buf + 8, m->session_id);
        put_le32(cmd_buf + 12, rw ? MMAP_FLAG_RW : 0);
        put_le32(cmd_buf + 16, b->mem_offset);
        send_command(m, 20, 24, 24, "MMAP");
        b->driver_addr = get_le64(resp_buf + 8);
        b->map_len = get_le64(resp_buf + 16);
        if (b->driver_addr % PAGE_SIZE != 0)
            fw_fail(EXIT_MEDIA_REPLY, "MMAP of buffer %u answered unaligned address 0x%lx", i, b->driver_addr);
        if (b->map_len < b->length)
            fw_fail(EXIT_MEDIA_REPLY, "MMAP of buffer %u answered length 0x%lx < buffer length 0x%x", i, b->map_len,
                    b->length);
        if (b->driver_addr > vp->shm_len || b->map_len > vp->shm_len - b->driver_addr)
            fw_fail(EXIT_MEDIA_REPLY, "MMAP of buffer %u: [0x%lx, +0x%lx) outside shm region 0 (0x%lx bytes)", i,
                    b->driver_addr, b->map_len, vp->shm_len);
        b->data = (const uint8_t *)(uintptr_t)(vp->shm_base + b->driver_addr);
        fw_printf("BUF %u offset=0x%x length=%u shm=0x%lx\n", i, b->mem_offset, b->length, b->driver_addr);
    }
}

void media_unmap_buffers(struct media *m)
{
    for (uint32_t i = 0; i < MEDIA_MAX_BUFFERS; i++) {
        struct media_buffer *b = &m->bufs[i];
        if (b->data == 0)
            continue;
        memset(cmd_buf, 0, sizeof(cmd_buf));
        put_le32(cmd_buf, CMD_MUNMAP);
        put_le64(cmd_buf + 8, b->driver_addr);
        send_command(m, 16, 8, 8, "MUNMAP");
        b->data = 0;
    }
}

void media_queue_buffer(struct media *m, uint32_t index)
{
    struct media_buffer *b = &m->bufs[index];
    if (index >= m->nbufs || b->queued)
        fw_fail(EXIT_MEDIA_REPLY, "internal: QBUF of buffer %u (queued=%d)", index, b->queued);
    uint8_t *qb = ioctl_header(m, IOC_QBUF);
    put_le32(qb + 0, index);
    put_le32(qb + 4, V4L2_BUF_TYPE_VIDEO_CAPTURE);
    put_le32(qb + 60, V4L2_MEMORY_MMAP);
    put_le32(qb + 64, b->mem_offset);
    put_le32(qb + 72, b->length);
    /* Mark before sending: the device may emit the DQBUF event before it answers QBUF. */
    b->queued = true;
    send_command(m, 16 + V4L2_BUFFER_SIZE, 8 + V4L2_BUFFER_SIZE, 8 + V4L2_BUFFER_SIZE, "QBUF");
}

void media_stream(struct media *m, bool on)
{
    uint8_t *p = ioctl_header(m, on ? IOC_STREAMON : IOC_STREAMOFF);
    put_le32(p, V4L2_BUF_TYPE_VIDEO_CAPTURE);
    send_command(m, 16 + 4, 8, 8, on ? "STREAMON" : "STREAMOFF");
    if (!on)
        for (uint32_t i = 0; i < m->nbufs; i++)
            m->bufs[i].queued = false; /* STREAMOFF returns all buffers implicitly */
}

/* Validates one event; returns true and fills `frame` for a DQBUF event of our session. */
static bool handle_event(struct media *m, const uint8_t *e, uint32_t len, struct media_frame *frame)
{
    if (len < 8)
        fw_fail(EXIT_MEDIA_EVENT, "event of %u bytes, less than its 8-byte header", len);
    uint32_t type = get_le32(e);
    uint32_t session = get_le32(e + 4);
    if (type == EVT_ERROR) {
        uint32_t err = len >= EVT_ERROR_SIZE ? get_le32(e + 8) : 0;
        fw_fail(EXIT_MEDIA_EVENT, "ERROR event for session %u: %s (%u)", session, errno_name(err), err);
    }
    if (session != m->session_id)
        fw_fail(EXIT_MEDIA_EVENT, "event type %u for unknown session %u (ours is %u)", type, session, m->session_id);
    if (type == EVT_EVENT) {
        m->events_ignored++; /* we subscribed to nothing; tolerate and count */
        return false;
    }
    if (type != EVT_DQBUF)
        fw_fail(EXIT_MEDIA_EVENT, "unknown event type %u", type);
    if (len < EVT_DQBUF_SIZE)
        fw_fail(EXIT_MEDIA_EVENT, "DQBUF event of %u bytes, need %u", len, EVT_DQBUF_SIZE);
    const uint8_t *vb = e + 8;
    uint32_t index = get_le32(vb + 0);
    uint32_t buf_type = get_le32(vb + 4);
    if (buf_type != V4L2_BUF_TYPE_VIDEO_CAPTURE || index >= m->nbufs)
        fw_fail(EXIT_MEDIA_EVENT, "DQBUF event for buffer %u type %u (we have %u capture buffers)", index, buf_type,
                m->nbufs);
    struct media_buffer *b = &m->bufs[index];
    if (!b->queued)
        fw_fail(EXIT_MEDIA_EVENT, "DQBUF event for buffer %u, which is not queued", index);
    b->queued = false;
    *frame = (struct media_frame){
        .index = index,
        .bytesused = get_le32(vb + 8),
        .flags = get_le32(vb + 12),
        .sequence = get_le32(vb + 56),
    };
    if (frame->flags & V4L2_BUF_FLAG_ERROR)
        fw_fail(EXIT_FRAME_ERROR, "frame seq=%u in buffer %u flagged V4L2_BUF_FLAG_ERROR", frame->sequence, index);
    if (frame->bytesused == 0 || frame->bytesused > b->length)
        fw_fail(EXIT_FRAME_ERROR, "frame seq=%u: bytesused %u, buffer length %u", frame->sequence, frame->bytesused,
                b->length);
    return true;
}

void media_wait_frame(struct media *m, struct media_frame *frame)
{
    for (;;) {
        uint32_t cookie, len;
        virtq_wait(&m->eventq, &cookie, &len, m->timeout_ms, "waiting for a DQBUF event");
        if (cookie >= m->event_buffers)
            fw_fail(EXIT_RING_ERROR, "internal: event cookie %u", cookie);
        bool got = handle_event(m, event_bufs[cookie], len, frame);
        post_event_buffer(m, cookie);
        virtq_kick(&m->eventq);
        if (got)
            return;
    }
}

unsigned media_drain_events(struct media *m)
{
    unsigned n = 0;
    uint32_t cookie, len;
    while (virtq_poll(&m->eventq, &cookie, &len)) {
        if (cookie >= m->event_buffers)
            fw_fail(EXIT_RING_ERROR, "internal: event cookie %u", cookie);
        post_event_buffer(m, cookie);
        n++;
    }
    if (n)
        virtq_kick(&m->eventq);
    return n;
}
