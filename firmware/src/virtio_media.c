#include "exit_codes.h"
#include "io.h"
#include "serial.h"
#include "timer.h"
#include "util.h"
#include "virtio_media.h"

/* Events */
#define EVT_ERROR 0
#define EVT_DQBUF 1
#define EVT_EVENT 2
#define EVT_ERROR_SIZE 16

#define PAGE_SIZE 4096

/* One command in flight at a time (on any device): these are its device-readable and device-writable buffers. */
static uint8_t cmd_buf[1024] __attribute__((aligned(64)));
static uint8_t resp_buf[1024] __attribute__((aligned(64)));

const char *media_errno_name(uint32_t e)
{
    switch (e) {
    case 0: return "no error";
    case 1: return "EPERM";
    case 5: return "EIO";
    case 7: return "E2BIG";
    case 9: return "EBADF";
    case 11: return "EAGAIN";
    case 12: return "ENOMEM";
    case 13: return "EACCES";
    case 14: return "EFAULT";
    case 16: return "EBUSY";
    case 19: return "ENODEV";
    case 22: return "EINVAL";
    case 24: return "EMFILE";
    case 25: return "ENOTTY";
    case 28: return "ENOSPC";
    case 32: return "EPIPE";
    case 105: return "ENOBUFS";
    case 110: return "ETIMEDOUT";
    default: return "errno";
    }
}

uint8_t *media_cmd_buffer(void) { return cmd_buf; }
const uint8_t *media_resp_buffer(void) { return resp_buf; }

static void post_event_buffer(struct media_dev *d, unsigned i)
{
    memset(d->event_bufs[i], 0, MEDIA_EVENT_SIZE);
    struct virtq_buf b = { d->event_bufs[i], MEDIA_EVENT_SIZE };
    virtq_add(&d->eventq, &b, 0, 1, i);
    d->event_posted[i] = true;
}

void media_dev_start(struct media_dev *d, struct virtio_pci *vp, unsigned slot, uint16_t queue_size,
                     uint32_t timeout_ms, bool hold_events)
{
    bool quiet = d->quiet;
    /* Everything but the event buffers themselves (posting clears each one). */
    memset(d, 0, offsetof(struct media_dev, event_bufs));
    d->vp = vp;
    d->timeout_ms = timeout_ms;
    d->quiet = quiet;
    if (!vp->has_shm)
        fw_fail(EXIT_PCI_ERROR, "virtio-media device has no shared memory region 0 (MMAP buffers impossible)");
    if (vp->num_queues < 2)
        fw_fail(EXIT_VIRTIO_INIT, "virtio-media needs 2 queues, device has %u", vp->num_queues);
    virtio_pci_setup_queue(vp, &d->cmdq, slot, 0, queue_size);
    virtio_pci_setup_queue(vp, &d->eventq, slot + 1, 1, queue_size);
    if (d->cmdq.size < 2)
        fw_fail(EXIT_VIRTIO_INIT, "commandq of size %u cannot hold a command chain", d->cmdq.size);
    d->event_buffers = d->eventq.size < MEDIA_EVENT_BUFFERS ? d->eventq.size : MEDIA_EVENT_BUFFERS;
    /* Post the event buffers before DRIVER_OK, as the Linux driver does. */
    if (!hold_events)
        for (unsigned i = 0; i < d->event_buffers; i++)
            post_event_buffer(d, i);
    virtio_pci_driver_ok(vp);
    virtq_kick(&d->eventq);
}

void media_post_events(struct media_dev *d)
{
    for (unsigned i = 0; i < d->event_buffers; i++)
        if (!d->event_posted[i])
            post_event_buffer(d, i);
    virtq_kick(&d->eventq);
}

uint32_t media_transact(struct media_dev *d, uint32_t cmd_len, uint32_t resp_len, const char *what)
{
    struct virtq_buf bufs[2] = { { cmd_buf, cmd_len }, { resp_buf, resp_len } };
    memset(resp_buf, 0, sizeof(resp_buf));
    virtq_add(&d->cmdq, bufs, 1, resp_len ? 1 : 0, 0);
    virtq_kick(&d->cmdq);
    uint32_t cookie, used;
    virtq_wait(&d->cmdq, &cookie, &used, d->timeout_ms, what);
    return used;
}

uint32_t media_command_status(struct media_dev *d, uint32_t cmd_len, uint32_t resp_len, const char *what)
{
    uint32_t used = media_transact(d, cmd_len, resp_len, what);
    if (used < 8)
        fw_fail(EXIT_MEDIA_REPLY, "%s: reply of %u bytes, less than the 8-byte header", what, used);
    return get_le32(resp_buf);
}

/* Sends cmd_buf[0, cmd_len) with a writable resp_buf[0, resp_len) (none if 0) and waits for the answer.
 * Checks the used length and the status like the Linux driver: >= 8, status 0, then >= min_len. */
static uint32_t send_command(struct media_dev *d, uint32_t cmd_len, uint32_t resp_len, uint32_t min_len,
                             const char *what)
{
    uint32_t used = media_transact(d, cmd_len, resp_len, what);
    if (resp_len == 0)
        return used;
    if (used < 8)
        fw_fail(EXIT_MEDIA_REPLY, "%s: reply of %u bytes, less than the 8-byte header", what, used);
    uint32_t status = get_le32(resp_buf);
    if (status != 0)
        fw_fail(EXIT_MEDIA_STATUS, "%s: device answered %s (%u)", what, media_errno_name(status), status);
    if (used < min_len)
        fw_fail(EXIT_MEDIA_REPLY, "%s: reply of %u bytes, need %u", what, used, min_len);
    return used;
}

uint8_t *media_ioctl_header(uint32_t session, uint32_t code)
{
    memset(cmd_buf, 0, sizeof(cmd_buf));
    put_le32(cmd_buf, MEDIA_CMD_IOCTL);
    put_le32(cmd_buf + 8, session);
    put_le32(cmd_buf + 12, code);
    return cmd_buf + 16;
}

static uint8_t *ioctl_header(uint32_t session, uint32_t code) { return media_ioctl_header(session, code); }

static void register_session(struct media *m)
{
    struct media_dev *d = m->dev;
    for (unsigned i = 0; i < MEDIA_MAX_SESSIONS; i++)
        if (d->sessions[i] == 0) {
            d->sessions[i] = m;
            return;
        }
    fw_fail(EXIT_MEDIA_REPLY, "internal: more than %u sessions on one device", MEDIA_MAX_SESSIONS);
}

static void unregister_session(struct media *m)
{
    struct media_dev *d = m->dev;
    for (unsigned i = 0; i < MEDIA_MAX_SESSIONS; i++)
        if (d->sessions[i] == m)
            d->sessions[i] = 0;
}

uint32_t media_try_open(struct media *m, struct media_dev *d)
{
    memset(m, 0, sizeof(*m));
    m->dev = d;
    memset(cmd_buf, 0, sizeof(cmd_buf));
    put_le32(cmd_buf, MEDIA_CMD_OPEN);
    uint32_t used = media_transact(d, 8, 16, "OPEN");
    if (used < 8)
        fw_fail(EXIT_MEDIA_REPLY, "OPEN: reply of %u bytes, less than the 8-byte header", used);
    uint32_t status = get_le32(resp_buf);
    if (status != 0)
        return status;
    if (used < 16)
        fw_fail(EXIT_MEDIA_REPLY, "OPEN: reply of %u bytes, need 16", used);
    m->session_id = get_le32(resp_buf + 8);
    m->session_open = true;
    register_session(m);
    if (!d->quiet)
        fw_printf("MEDIA session=%u\n", m->session_id);
    return 0;
}

void media_open(struct media *m, struct media_dev *d)
{
    uint32_t status = media_try_open(m, d);
    if (status != 0)
        fw_fail(EXIT_MEDIA_STATUS, "OPEN: device answered %s (%u)", media_errno_name(status), status);
}

void media_close(struct media *m)
{
    memset(cmd_buf, 0, sizeof(cmd_buf));
    put_le32(cmd_buf, MEDIA_CMD_CLOSE);
    put_le32(cmd_buf + 8, m->session_id);
    /* CLOSE has no writable part; the used length must be 0 (virtq_poll enforces <= writable bytes). */
    send_command(m->dev, 16, 0, 0, "CLOSE");
    /* Events the device sent before it answered are in the used ring already: route them while the session is
     * still ours, then forget it. */
    media_poll_events(m->dev);
    m->ready_count = 0;
    m->session_open = false;
    unregister_session(m);
}

void media_set_format(struct media *m, uint32_t width, uint32_t height, uint32_t fourcc, struct media_format *out)
{
    uint8_t *f = ioctl_header(m->session_id, MEDIA_IOC_S_FMT);
    put_le32(f + 0, V4L2_BUF_TYPE_VIDEO_CAPTURE);
    put_le32(f + 8, width);
    put_le32(f + 12, height);
    put_le32(f + 16, fourcc);
    put_le32(f + 20, V4L2_FIELD_NONE);
    send_command(m->dev, 16 + V4L2_FORMAT_SIZE, 8 + V4L2_FORMAT_SIZE, 8 + V4L2_FORMAT_SIZE, "S_FMT");
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
    uint8_t *rb = ioctl_header(m->session_id, MEDIA_IOC_REQBUFS);
    put_le32(rb + 0, count);
    put_le32(rb + 4, V4L2_BUF_TYPE_VIDEO_CAPTURE);
    put_le32(rb + 8, V4L2_MEMORY_MMAP);
    send_command(m->dev, 16 + V4L2_REQBUFS_SIZE, 8 + V4L2_REQBUFS_SIZE, 8 + V4L2_REQBUFS_SIZE, "REQBUFS");
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
    const struct virtio_pci *vp = m->dev->vp;
    for (uint32_t i = 0; i < m->nbufs; i++) {
        struct media_buffer *b = &m->bufs[i];
        *b = (struct media_buffer){ 0 };

        uint8_t *qb = ioctl_header(m->session_id, MEDIA_IOC_QUERYBUF);
        put_le32(qb + 0, i);
        put_le32(qb + 4, V4L2_BUF_TYPE_VIDEO_CAPTURE);
        put_le32(qb + 60, V4L2_MEMORY_MMAP);
        send_command(m->dev, 16 + V4L2_BUFFER_SIZE, 8 + V4L2_BUFFER_SIZE, 8 + V4L2_BUFFER_SIZE, "QUERYBUF");
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
        put_le32(cmd_buf, MEDIA_CMD_MMAP);
        put_le32(cmd_buf + 8, m->session_id);
        put_le32(cmd_buf + 12, rw ? MEDIA_MMAP_FLAG_RW : 0);
        put_le32(cmd_buf + 16, b->mem_offset);
        send_command(m->dev, 20, 24, 24, "MMAP");
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
        if (!m->dev->quiet)
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
        put_le32(cmd_buf, MEDIA_CMD_MUNMAP);
        put_le64(cmd_buf + 8, b->driver_addr);
        send_command(m->dev, 16, 8, 8, "MUNMAP");
        b->data = 0;
    }
}

void media_queue_buffer(struct media *m, uint32_t index)
{
    struct media_buffer *b = &m->bufs[index];
    if (index >= m->nbufs || b->queued)
        fw_fail(EXIT_MEDIA_REPLY, "internal: QBUF of buffer %u (queued=%d)", index, b->queued);
    uint8_t *qb = ioctl_header(m->session_id, MEDIA_IOC_QBUF);
    put_le32(qb + 0, index);
    put_le32(qb + 4, V4L2_BUF_TYPE_VIDEO_CAPTURE);
    put_le32(qb + 60, V4L2_MEMORY_MMAP);
    put_le32(qb + 64, b->mem_offset);
    put_le32(qb + 72, b->length);
    /* Mark before sending: the device may emit the DQBUF event before it answers QBUF. */
    b->queued = true;
    send_command(m->dev, 16 + V4L2_BUFFER_SIZE, 8 + V4L2_BUFFER_SIZE, 8 + V4L2_BUFFER_SIZE, "QBUF");
}


void media_stream(struct media *m, bool on)
{
    uint8_t *p = ioctl_header(m->session_id, on ? MEDIA_IOC_STREAMON : MEDIA_IOC_STREAMOFF);
    put_le32(p, V4L2_BUF_TYPE_VIDEO_CAPTURE);
    send_command(m->dev, 16 + 4, 8, 8, on ? "STREAMON" : "STREAMOFF");
    if (on)
        return;
    /* DQBUF events sent before the answer are already in the used ring; after it the device sends none. */
    media_poll_events(m->dev);
    m->late_events += m->ready_count;
    m->ready_count = 0;
    for (uint32_t i = 0; i < m->nbufs; i++)
        m->bufs[i].queued = false; /* STREAMOFF returns all buffers implicitly */
}

static struct media *find_session(struct media_dev *d, uint32_t id)
{
    for (unsigned i = 0; i < MEDIA_MAX_SESSIONS; i++)
        if (d->sessions[i] && d->sessions[i]->session_open && d->sessions[i]->session_id == id)
            return d->sessions[i];
    return 0;
}

/* Validates one event and routes it to the session it names. */
static void route_event(struct media_dev *d, const uint8_t *e, uint32_t len)
{
    if (len < 8)
        fw_fail(EXIT_MEDIA_EVENT, "event of %u bytes, less than its 8-byte header", len);
    uint32_t type = get_le32(e);
    uint32_t session = get_le32(e + 4);
    struct media *m = find_session(d, session);
    if (m == 0) {
        struct media *first = 0;
        for (unsigned i = 0; i < MEDIA_MAX_SESSIONS && first == 0; i++)
            first = d->sessions[i];
        fw_fail(EXIT_MEDIA_EVENT, "event type %u for unknown session %u (ours is %u)", type, session,
                first ? first->session_id : 0xFFFFFFFFu);
    }
    if (type == EVT_ERROR) {
        m->failed = true;
        m->error = len >= EVT_ERROR_SIZE ? get_le32(e + 8) : 0;
        return;
    }
    if (type == EVT_EVENT) {
        d->events_ignored++; /* we subscribed to nothing; tolerate and count */
        return;
    }
    if (type != EVT_DQBUF)
        fw_fail(EXIT_MEDIA_EVENT, "unknown event type %u", type);
    if (len < MEDIA_EVENT_SIZE)
        fw_fail(EXIT_MEDIA_EVENT, "DQBUF event of %u bytes, need %u", len, MEDIA_EVENT_SIZE);
    const uint8_t *vb = e + 8;
    uint32_t index = get_le32(vb + 0);
    uint32_t buf_type = get_le32(vb + 4);
    if (buf_type != V4L2_BUF_TYPE_VIDEO_CAPTURE || index >= m->nbufs)
        fw_fail(EXIT_MEDIA_EVENT, "DQBUF event of session %u for buffer %u type %u (it has %u capture buffers)",
                session, index, buf_type, m->nbufs);
    struct media_buffer *b = &m->bufs[index];
    if (!b->queued)
        fw_fail(EXIT_MEDIA_EVENT, "DQBUF event of session %u for buffer %u, which is not queued", session, index);
    b->queued = false;
    /* Each ready frame held a queued buffer, so there are never more than nbufs of them. */
    m->ready[(m->ready_head + m->ready_count++) % MEDIA_MAX_BUFFERS] = (struct media_frame){
        .index = index,
        .bytesused = get_le32(vb + 8),
        .flags = get_le32(vb + 12),
        .sequence = get_le32(vb + 56),
    };
}

unsigned media_poll_events(struct media_dev *d)
{
    unsigned n = 0;
    uint32_t cookie, len;
    while (virtq_poll(&d->eventq, &cookie, &len)) {
        n++;
        if (cookie >= MEDIA_EVENT_BUFFERS) {
            if (d->foreign_count < 8) {
                d->foreign_cookie[d->foreign_count] = cookie;
                d->foreign_len[d->foreign_count] = len;
            }
            d->foreign_count++;
            continue;
        }
        if (cookie >= d->event_buffers)
            fw_fail(EXIT_RING_ERROR, "internal: event cookie %u", cookie);
        d->event_posted[cookie] = false;
        route_event(d, d->event_bufs[cookie], len);
        post_event_buffer(d, cookie);
    }
    if (n)
        virtq_kick(&d->eventq);
    return n;
}

enum media_wait media_next_event(struct media *m, struct media_frame *frame, uint64_t deadline)
{
    for (;;) {
        if (m->ready_count) {
            *frame = m->ready[m->ready_head];
            m->ready_head = (m->ready_head + 1) % MEDIA_MAX_BUFFERS;
            m->ready_count--;
            return MEDIA_FRAME;
        }
        if (m->failed)
            return MEDIA_ERROR;
        if (media_poll_events(m->dev))
            continue;
        if (deadline_passed(deadline))
            return MEDIA_TIMEOUT;
        cpu_relax();
    }
}

void media_wait_frame(struct media *m, struct media_frame *frame)
{
    switch (media_next_event(m, frame, deadline_after_ms(m->dev->timeout_ms))) {
    case MEDIA_TIMEOUT:
        fw_fail(EXIT_TIMEOUT, "no answer on queue 1 within %u ms (waiting for a DQBUF event)", m->dev->timeout_ms);
    case MEDIA_ERROR:
        fw_fail(EXIT_MEDIA_EVENT, "ERROR event for session %u: %s (%u)", m->session_id, media_errno_name(m->error),
                m->error);
    case MEDIA_FRAME:
        break;
    }
    const struct media_buffer *b = &m->bufs[frame->index];
    if (frame->flags & V4L2_BUF_FLAG_ERROR)
        fw_fail(EXIT_FRAME_ERROR, "frame seq=%u in buffer %u flagged V4L2_BUF_FLAG_ERROR", frame->sequence,
                frame->index);
    if (frame->bytesused == 0 || frame->bytesused > b->length)
        fw_fail(EXIT_FRAME_ERROR, "frame seq=%u: bytesused %u, buffer length %u", frame->sequence, frame->bytesused,
                b->length);
}

unsigned media_drain_events(struct media *m)
{
    media_poll_events(m->dev);
    unsigned late = m->late_events + m->ready_count;
    m->late_events = 0;
    m->ready_count = 0;
    return late;
}
