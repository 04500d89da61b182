/*
 * m2m-decode: decode a file of coded frames through a V4L2 memory-to-memory
 * decoder (multi-planar API, MMAP buffers), one frame at a time, and write the
 * decoded bytes of every CAPTURE buffer to an output file.
 *
 *   m2m-decode DEVICE IN.vhdr OUT WIDTH HEIGHT CODED-FOURCC RAW-FOURCC
 *
 * IN uses v4l2-ctl's --stream-from-hdr framing: per frame the big-endian
 * fourcc 'Vhdr', then a big-endian length and the frame.  CAPTURE is set up
 * before the first frame is queued (the size is known), so no SOURCE_CHANGE
 * handling is needed.  Prints "frames=N bytes=B" and exits 0 on success.
 *
 * It exists because v4l2-ctl's stateful-decoder loop cannot run on the
 * virtio-media guest driver: that driver's poll() reports EPOLLERR while
 * CAPTURE is not streaming (v4l2-mem2mem only when neither queue streams), and
 * its DQBUF ignores an O_NONBLOCK set after open, so v4l2-ctl's first DQBUF of
 * CAPTURE fails with EINVAL and it stops reading CAPTURE.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/videodev2.h>

#define OUT_TYPE V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE
#define CAP_TYPE V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE

static int fd;

static void die(const char *what)
{
	fprintf(stderr, "m2m-decode: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void xioctl(unsigned long request, void *arg, const char *what)
{
	if (ioctl(fd, request, arg) < 0)
		die(what);
}

static uint32_t fourcc(const char *s)
{
	return v4l2_fourcc(s[0], s[1], s[2], s[3]);
}

/* One MMAP buffer (one plane) of a queue. */
static void *map_buffer(unsigned type, unsigned index, unsigned *length)
{
	struct v4l2_plane plane = {0};
	struct v4l2_buffer b = {.index = index, .type = type, .memory = V4L2_MEMORY_MMAP,
				.length = 1, .m.planes = &plane};
	void *p;

	xioctl(VIDIOC_QUERYBUF, &b, "QUERYBUF");
	*length = plane.length;
	p = mmap(NULL, plane.length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, plane.m.mem_offset);
	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

static void queue(unsigned type, unsigned bytesused, unsigned seq)
{
	struct v4l2_plane plane = {.bytesused = bytesused};
	struct v4l2_buffer b = {.index = 0, .type = type, .memory = V4L2_MEMORY_MMAP,
				.length = 1, .m.planes = &plane};

	b.timestamp.tv_sec = seq + 1;
	xioctl(VIDIOC_QBUF, &b, "QBUF");
}

static struct v4l2_buffer dequeue(unsigned type, struct v4l2_plane *plane)
{
	struct v4l2_buffer b = {.type = type, .memory = V4L2_MEMORY_MMAP, .length = 1, .m.planes = plane};

	xioctl(VIDIOC_DQBUF, &b, "DQBUF");
	return b;
}

int main(int argc, char **argv)
{
	struct v4l2_format f = {0};
	struct v4l2_requestbuffers r = {0};
	unsigned out_len, cap_len, frames = 0;
	unsigned long long total = 0;
	uint32_t word[2];
	uint8_t *in_buf, *cap_buf;
	FILE *in, *out;
	int type;

	if (argc != 8) {
		fprintf(stderr, "usage: m2m-decode DEVICE IN.vhdr OUT WIDTH HEIGHT CODED-FOURCC RAW-FOURCC\n");
		return 2;
	}
	fd = open(argv[1], O_RDWR);
	if (fd < 0)
		die(argv[1]);
	in = fopen(argv[2], "rb");
	out = fopen(argv[3], "wb");
	if (!in || !out)
		die("open files");

	f.type = OUT_TYPE;
	f.fmt.pix_mp.width = atoi(argv[4]);
	f.fmt.pix_mp.height = atoi(argv[5]);
	f.fmt.pix_mp.pixelformat = fourcc(argv[6]);
	xioctl(VIDIOC_S_FMT, &f, "S_FMT(OUTPUT)");
	memset(&f, 0, sizeof(f));
	f.type = CAP_TYPE;
	f.fmt.pix_mp.pixelformat = fourcc(argv[7]);
	xioctl(VIDIOC_S_FMT, &f, "S_FMT(CAPTURE)");

	r.count = 1;
	r.memory = V4L2_MEMORY_MMAP;
	r.type = OUT_TYPE;
	xioctl(VIDIOC_REQBUFS, &r, "REQBUFS(OUTPUT)");
	r.type = CAP_TYPE;
	r.count = 1;
	xioctl(VIDIOC_REQBUFS, &r, "REQBUFS(CAPTURE)");
	in_buf = map_buffer(OUT_TYPE, 0, &out_len);
	cap_buf = map_buffer(CAP_TYPE, 0, &cap_len);

	type = OUT_TYPE;
	xioctl(VIDIOC_STREAMON, &type, "STREAMON(OUTPUT)");
	type = CAP_TYPE;
	xioctl(VIDIOC_STREAMON, &type, "STREAMON(CAPTURE)");

	while (fread(word, sizeof(word[0]), 2, in) == 2) {
		struct v4l2_plane plane = {0};
		struct v4l2_buffer b;
		uint32_t len = ntohl(word[1]);

		if (ntohl(word[0]) != v4l2_fourcc('V', 'h', 'd', 'r') || len == 0 || len > out_len) {
			fprintf(stderr, "m2m-decode: bad frame header at frame %u\n", frames);
			return 1;
		}
		if (fread(in_buf, 1, len, in) != len)
			die("short frame");
		queue(CAP_TYPE, 0, frames);
		queue(OUT_TYPE, len, frames);
		b = dequeue(CAP_TYPE, &plane);
		if (b.flags & V4L2_BUF_FLAG_ERROR) {
			fprintf(stderr, "m2m-decode: frame %u decoded with an error\n", frames);
			return 1;
		}
		if (b.timestamp.tv_sec != (long)frames + 1) {
			fprintf(stderr, "m2m-decode: frame %u has the timestamp of another\n", frames);
			return 1;
		}
		fwrite(cap_buf, 1, plane.bytesused, out);
		total += plane.bytesused;
		memset(&plane, 0, sizeof(plane));
		dequeue(OUT_TYPE, &plane);
		frames++;
	}
	type = CAP_TYPE;
	xioctl(VIDIOC_STREAMOFF, &type, "STREAMOFF(CAPTURE)");
	type = OUT_TYPE;
	xioctl(VIDIOC_STREAMOFF, &type, "STREAMOFF(OUTPUT)");
	fclose(out);
	printf("frames=%u bytes=%llu\n", frames, total);
	return 0;
}
