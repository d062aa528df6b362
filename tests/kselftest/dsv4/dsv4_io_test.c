// SPDX-License-Identifier: GPL-2.0
/*
 * The DMA and I/O paths of regions: io_uring fixed buffers on a region
 * mapping and on an imported hugetlb memfd, REGION_IMPORT_MEMFD, and
 * REGION_EXPORT_DMABUF imported into vgem through libdrm.
 */
#include <dirent.h>
#include <liburing.h>
#include <linux/dma-buf.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <xf86drm.h>
#include <zlib.h>

#include "dsv4_test.h"

#define PAGE	4096UL
#define HUGE	(2UL << 20)
#define SYS	"/sys/kernel/dsv4/"
#define DBG	"/sys/kernel/debug/dsv4/"

FIXTURE(io) {
	int fd;
	long long base_regions;
};

FIXTURE_SETUP(io)
{
	self->fd = open(DSV4_DEV, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->fd);
	self->base_regions = dsv4_read_ll(SYS "nr_regions");
}

FIXTURE_TEARDOWN(io)
{
	close(self->fd);
	EXPECT_EQ(self->base_regions, dsv4_read_ll(SYS "nr_regions"));
}

static int kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	uname(&u);
	sscanf(u.release, "%d.%d", &ma, &mi);
	return ma > major || (ma == major && mi >= minor);
}

static void fill_pattern(uint8_t *p, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 31 + seed + (i >> 12));
}

/* A file on tmpfs holding @len bytes of pattern @seed. */
static int pattern_file(size_t len, unsigned int seed)
{
	char path[] = "/tmp/dsv4-io-XXXXXX";
	uint8_t *buf = malloc(len);
	int fd = mkstemp(path);

	if (fd < 0 || !buf)
		return -1;
	unlink(path);
	fill_pattern(buf, len, seed);
	if (write(fd, buf, len) != (ssize_t)len) {
		close(fd);
		fd = -1;
	}
	free(buf);
	return fd;
}

static int same_pattern(const uint8_t *p, size_t len, unsigned int seed)
{
	uint8_t *want = malloc(len);
	int same;

	fill_pattern(want, len, seed);
	same = !memcmp(p, want, len);
	free(want);
	return same;
}

/* READ_FIXED of @len bytes at file offset 0 into registered buffer 0. */
static int read_fixed(struct io_uring *ring, int file_fd, void *dst, size_t len)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;
	int ret;

	io_uring_prep_read_fixed(sqe, file_fd, dst, len, 0, 0);
	ret = io_uring_submit_and_wait(ring, 1);
	if (ret < 0)
		return ret;
	ret = io_uring_wait_cqe(ring, &cqe);
	if (ret)
		return ret;
	ret = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return ret;
}

TEST_F(io, uring_fixed_buffer_on_region_mapping)
{
	const size_t len = 64 * PAGE;
	struct dsv4_region_create c;
	struct io_uring ring;
	struct iovec iov;
	uint8_t *p, *check;
	int file_fd, ret;

	ASSERT_EQ(0, dsv4_create(self->fd, len, 0, DSV4_KIND_EXPERT_STAGING, DSV4_REGION_HUGE, NULL, &c));
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, c.mmap_offset);
	ASSERT_NE(MAP_FAILED, p);
	file_fd = pattern_file(len, 7);
	ASSERT_LE(0, file_fd);
	ASSERT_EQ(0, io_uring_queue_init(4, &ring, 0));
	iov.iov_base = p;
	iov.iov_len = len;
	ret = io_uring_register_buffers(&ring, &iov, 1);
	if (!kernel_at_least(6, 5)) {
		/*
		 * 6.1: io_uring refuses file-backed VMAs other than shmem and
		 * hugetlbfs (EOPNOTSUPP); recorded, then the non-fixed path.
		 */
		TH_LOG("kernel < 6.5: io_uring_register_buffers on a /dev/dsv4 mapping -> %d (%s)",
		       ret, strerror(-ret));
		EXPECT_EQ(-EOPNOTSUPP, ret);
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		struct io_uring_cqe *cqe;

		io_uring_prep_read(sqe, file_fd, p, len, 0);
		ASSERT_EQ(1, io_uring_submit_and_wait(&ring, 1));
		ASSERT_EQ(0, io_uring_wait_cqe(&ring, &cqe));
		EXPECT_EQ((int)len, cqe->res);
		io_uring_cqe_seen(&ring, cqe);
	} else {
		ASSERT_EQ(0, ret) TH_LOG("register_buffers: %s", strerror(-ret));
		EXPECT_EQ((int)len, read_fixed(&ring, file_fd, p, len));
		EXPECT_EQ(0, io_uring_unregister_buffers(&ring));
	}
	io_uring_queue_exit(&ring);
	/* Verify through a second, independent mapping of the region. */
	check = mmap(NULL, len, PROT_READ, MAP_SHARED, self->fd, c.mmap_offset);
	ASSERT_NE(MAP_FAILED, check);
	EXPECT_TRUE(same_pattern(check, len, 7));
	munmap(check, len);
	munmap(p, len);
	close(file_fd);
	EXPECT_EQ(0, dsv4_destroy(self->fd, c.id));
}

/* SEAL must refuse while a long-term pin could still write the pages. */
TEST_F(io, seal_refused_while_dma_pinned)
{
	const size_t len = 16 * PAGE;
	struct dsv4_region_create c;
	struct dsv4_region_id a = {};
	struct io_uring ring;
	struct iovec iov;
	uint8_t *p;

	if (!kernel_at_least(6, 5))
		SKIP(return, "io_uring cannot pin a /dev/dsv4 mapping before 6.5");
	ASSERT_EQ(0, dsv4_create(self->fd, len, -1, 0, 0, NULL, &c));
	a.id = c.id;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, c.mmap_offset);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, io_uring_queue_init(2, &ring, 0));
	iov.iov_base = p;
	iov.iov_len = len;
	ASSERT_EQ(0, io_uring_register_buffers(&ring, &iov, 1));
	ASSERT_EQ(0, munmap(p, len));	/* the mapping is gone, the pin is not */
	EXPECT_EQ(-EBUSY, dsv4_ioctl(self->fd, DSV4_IOC_REGION_SEAL, &a));
	ASSERT_EQ(0, io_uring_unregister_buffers(&ring));
	io_uring_queue_exit(&ring);
	EXPECT_EQ(0, dsv4_ioctl(self->fd, DSV4_IOC_REGION_SEAL, &a));
	EXPECT_EQ(0, dsv4_destroy(self->fd, c.id));
}

static int import(int fd, int memfd, uint64_t offset, uint64_t size,
		  struct dsv4_region_import *out)
{
	struct dsv4_region_import im = {
		.memfd = memfd, .offset = offset, .size = size,
		.kind = DSV4_KIND_EXPERT_STAGING,
	};
	int ret = dsv4_ioctl(fd, DSV4_IOC_REGION_IMPORT_MEMFD, &im);

	if (out)
		*out = im;
	return ret;
}

TEST_F(io, uring_fixed_buffer_on_imported_hugetlb_memfd)
{
	const size_t len = 2 * HUGE;
	struct dsv4_region_import im;
	struct dsv4_region_info info = {};
	struct io_uring ring;
	struct iovec iov;
	uint8_t *pool, *view;
	int memfd, file_fd, ret;

	memfd = memfd_create("dsv4-pool", MFD_HUGETLB | MFD_CLOEXEC);
	ASSERT_LE(0, memfd);
	ASSERT_EQ(0, ftruncate(memfd, len));
	pool = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	ASSERT_NE(MAP_FAILED, pool) TH_LOG("hugetlb mmap: %s (are hugepages reserved?)", strerror(errno));
	ASSERT_EQ(0, import(self->fd, memfd, 0, len, &im));
	info.id = im.id;
	ASSERT_EQ(0, dsv4_ioctl(self->fd, DSV4_IOC_REGION_INFO, &info));
	EXPECT_EQ(DSV4_STATE_IMPORTED, info.state);
	EXPECT_EQ(len, info.size);

	/* The memfd's own mapping is a fixed buffer on every kernel. */
	file_fd = pattern_file(len, 11);
	ASSERT_LE(0, file_fd);
	ASSERT_EQ(0, io_uring_queue_init(4, &ring, 0));
	iov.iov_base = pool;
	iov.iov_len = len;
	ret = io_uring_register_buffers(&ring, &iov, 1);
	ASSERT_EQ(0, ret) TH_LOG("register_buffers(hugetlb memfd): %s", strerror(-ret));
	EXPECT_EQ((int)len, read_fixed(&ring, file_fd, pool, len));
	io_uring_queue_exit(&ring);
	close(file_fd);

	/* ...and what landed there is what the region holds. */
	view = mmap(NULL, len, PROT_READ, MAP_SHARED, self->fd, im.mmap_offset);
	ASSERT_NE(MAP_FAILED, view);
	EXPECT_TRUE(same_pattern(view, len, 11));
	/* The pins keep the memory: truncating the memfd frees nothing. */
	munmap(pool, len);
	close(memfd);
	EXPECT_TRUE(same_pattern(view, len, 11));
	munmap(view, len);
	EXPECT_EQ(0, dsv4_destroy(self->fd, im.id));
}

TEST_F(io, import_shmem_memfd_offset)
{
	struct dsv4_region_import im;
	uint8_t *view;
	uint8_t buf[PAGE];
	int memfd = memfd_create("dsv4-shmem", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	ASSERT_LE(0, memfd);
	ASSERT_EQ(0, ftruncate(memfd, 8 * PAGE));
	fill_pattern(buf, sizeof(buf), 3);
	ASSERT_EQ((ssize_t)PAGE, pwrite(memfd, buf, PAGE, 5 * PAGE));
	ASSERT_EQ(0, fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK));
	ASSERT_EQ(0, import(self->fd, memfd, 4 * PAGE, 2 * PAGE, &im));
	view = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, im.mmap_offset);
	ASSERT_NE(MAP_FAILED, view);
	EXPECT_EQ(0, view[0]);
	EXPECT_TRUE(same_pattern(view + PAGE, PAGE, 3));
	/* Writes through the region show up in the memfd. */
	view[10] = 0x77;
	ASSERT_EQ(1, pread(memfd, buf, 1, 4 * PAGE + 10));
	EXPECT_EQ(0x77, buf[0]);
	/* The memfd still writes it: SEAL the memfd, not the region. */
	struct dsv4_region_id a = { .id = im.id };

	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_SEAL, &a));
	munmap(view, 2 * PAGE);
	close(memfd);
	EXPECT_EQ(0, dsv4_destroy(self->fd, im.id));
}

TEST_F(io, import_rejects_bad_input)
{
	struct dsv4_region_import im = { .memfd = -1, .size = PAGE };
	long long before = dsv4_read_ll(SYS "nr_regions");
	int memfd = memfd_create("dsv4-bad", MFD_CLOEXEC);
	int nullfd = open("/dev/null", O_RDWR);
	int rofd;
	char path[64];

	ASSERT_LE(0, memfd);
	ASSERT_EQ(0, ftruncate(memfd, 4 * PAGE));
	EXPECT_EQ(-EBADF, import(self->fd, -1, 0, PAGE, NULL));
	EXPECT_EQ(-EBADF, import(self->fd, 1000, 0, PAGE, NULL));
	EXPECT_EQ(-EINVAL, import(self->fd, nullfd, 0, PAGE, NULL));	/* not a memfd */
	EXPECT_EQ(-EINVAL, import(self->fd, memfd, 0, 8 * PAGE, NULL));	/* beyond EOF */
	EXPECT_EQ(-EINVAL, import(self->fd, memfd, 100, PAGE, NULL));	/* unaligned offset */
	EXPECT_EQ(-EINVAL, import(self->fd, memfd, 0, 100, NULL));		/* unaligned size */
	EXPECT_EQ(-EINVAL, import(self->fd, memfd, 0, 0, NULL));
	EXPECT_EQ(-EOVERFLOW, import(self->fd, memfd, UINT64_MAX & ~(PAGE - 1), PAGE, NULL));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	rofd = open(path, O_RDONLY);
	ASSERT_LE(0, rofd);
	EXPECT_EQ(-EACCES, import(self->fd, rofd, 0, PAGE, NULL));
	im.memfd = memfd;
	im.flags = 1;
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_IMPORT_MEMFD, &im));
	im.flags = 0;
	im.kind = 99;
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_IMPORT_MEMFD, &im));
	im.kind = 0;
	im.reserved = 1;
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_IMPORT_MEMFD, &im));
	/* An injected pin failure leaves nothing pinned or listed. */
	ASSERT_EQ(0, dsv4_write_str(DBG "fail_pin", "1"));
	EXPECT_EQ(-ENOMEM, import(self->fd, memfd, 0, 4 * PAGE, NULL));
	EXPECT_EQ(0, dsv4_read_ll(DBG "fail_pin"));
	EXPECT_EQ(before, dsv4_read_ll(SYS "nr_regions"));
	ASSERT_EQ(0, import(self->fd, memfd, 0, 4 * PAGE, &im));
	EXPECT_EQ(0, dsv4_destroy(self->fd, im.id));
	close(rofd);
	close(nullfd);
	close(memfd);
}

static int dmabuf_sync(int fd, uint64_t flags)
{
	struct dma_buf_sync s = { .flags = flags };

	return ioctl(fd, DMA_BUF_IOCTL_SYNC, &s) ? -errno : 0;
}

TEST_F(io, dmabuf_export_mmap_sync)
{
	const size_t len = 16 * PAGE;
	struct dsv4_region_create c;
	uint8_t *p, *d;
	int buf, other;

	ASSERT_EQ(0, dsv4_create(self->fd, len, -1, DSV4_KIND_KV_SPILL, 0, NULL, &c));
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, c.mmap_offset);
	ASSERT_NE(MAP_FAILED, p);
	fill_pattern(p, len, 5);
	buf = dsv4_ioctl(self->fd, DSV4_IOC_REGION_EXPORT_DMABUF,
			 &(struct dsv4_region_export){ 0 });	/* id 0 */
	EXPECT_EQ(-ENOENT, buf);

	struct dsv4_region_export ex = {
		.id = c.id, .offset = 4 * PAGE, .size = 8 * PAGE,
		.flags = DSV4_EXPORT_RDWR | DSV4_EXPORT_CLOEXEC,
	};

	ASSERT_EQ(0, dsv4_ioctl(self->fd, DSV4_IOC_REGION_EXPORT_DMABUF, &ex));
	buf = ex.fd;
	EXPECT_EQ(8 * (off_t)PAGE, lseek(buf, 0, SEEK_END));
	EXPECT_EQ(FD_CLOEXEC, fcntl(buf, F_GETFD) & FD_CLOEXEC);
	d = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, buf, 0);
	ASSERT_NE(MAP_FAILED, d);
	EXPECT_EQ(0, dmabuf_sync(buf, DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW));
	EXPECT_EQ(0, memcmp(d, p + 4 * PAGE, 8 * PAGE));
	d[0] = 0xEE;
	EXPECT_EQ(0, dmabuf_sync(buf, DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW));
	EXPECT_EQ(0xEE, p[4 * PAGE]);
	EXPECT_EQ(-EINVAL, dmabuf_sync(buf, 0xff));
	EXPECT_EQ(MAP_FAILED, mmap(NULL, 9 * PAGE, PROT_READ, MAP_SHARED, buf, 0));
	munmap(d, 8 * PAGE);

	/* A read-only export refuses writable mappings. */
	ex.flags = 0;
	ex.offset = 0;
	ex.size = 0;	/* the rest of the region */
	ASSERT_EQ(0, dsv4_ioctl(self->fd, DSV4_IOC_REGION_EXPORT_DMABUF, &ex));
	other = ex.fd;
	EXPECT_EQ((off_t)len, lseek(other, 0, SEEK_END));
	EXPECT_EQ(MAP_FAILED, mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, other, 0));
	d = mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, other, 0);
	ASSERT_NE(MAP_FAILED, d);
	EXPECT_EQ(p[0], d[0]);
	/* MADV_DONTNEED zaps the PTEs; the fault handler restores them */
	EXPECT_EQ(0, madvise(d, 2 * PAGE, MADV_DONTNEED));
	EXPECT_EQ(p[PAGE + 3], d[PAGE + 3]);
	munmap(d, 2 * PAGE);
	close(other);

	/* Bad ranges and flags. */
	ex = (struct dsv4_region_export){ .id = c.id, .offset = 100 };
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_EXPORT_DMABUF, &ex));
	ex = (struct dsv4_region_export){ .id = c.id, .size = 100 };
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_EXPORT_DMABUF, &ex));
	ex = (struct dsv4_region_export){ .id = c.id, .offset = len };
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_EXPORT_DMABUF, &ex));
	ex = (struct dsv4_region_export){ .id = c.id, .offset = PAGE, .size = len };
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_EXPORT_DMABUF, &ex));
	ex = (struct dsv4_region_export){ .id = c.id, .offset = PAGE, .size = UINT64_MAX & ~(PAGE - 1) };
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_EXPORT_DMABUF, &ex));
	ex = (struct dsv4_region_export){ .id = c.id, .flags = 1u << 9 };
	EXPECT_EQ(-EINVAL, dsv4_ioctl(self->fd, DSV4_IOC_REGION_EXPORT_DMABUF, &ex));
	ex = (struct dsv4_region_export){ .id = c.id + 1000 };
	EXPECT_EQ(-ENOENT, dsv4_ioctl(self->fd, DSV4_IOC_REGION_EXPORT_DMABUF, &ex));

	/* The dma-buf keeps the region alive after DESTROY. */
	munmap(p, len);
	ASSERT_EQ(0, dsv4_destroy(self->fd, c.id));
	EXPECT_EQ(self->base_regions + 1, dsv4_read_ll(SYS "nr_regions"));
	d = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, buf, 0);
	ASSERT_NE(MAP_FAILED, d);
	EXPECT_EQ(0xEE, d[0]);
	munmap(d, PAGE);
	close(buf);
}

/* The first /dev/dri/card* whose driver is vgem, or -1. */
static int open_vgem(void)
{
	DIR *dir = opendir("/dev/dri");
	struct dirent *de;
	int found = -1;

	if (!dir)
		return -1;
	while (found < 0 && (de = readdir(dir))) {
		char path[300];
		drmVersionPtr v;
		int fd;

		if (strncmp(de->d_name, "card", 4))
			continue;
		snprintf(path, sizeof(path), "/dev/dri/%s", de->d_name);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		v = drmGetVersion(fd);
		if (v && !strcmp(v->name, "vgem"))
			found = fd;
		else
			close(fd);
		drmFreeVersion(v);
	}
	closedir(dir);
	return found;
}

/* The crc32= field of the attachment line of region @id, or -1. */
static long long attachment_crc(uint64_t id, char *dev, size_t devlen)
{
	char line[512], want[32];
	long long crc = -1;
	FILE *f = fopen(DBG "attachments", "r");

	if (!f)
		return -1;
	snprintf(want, sizeof(want), "region=%llu ", (unsigned long long)id);
	while (fgets(line, sizeof(line), f)) {
		char *c = strstr(line, "crc32=");
		char *d = strstr(line, "dev=");

		if (strncmp(line, want, strlen(want)) || !c || !d)
			continue;
		crc = strtoll(c + 6, NULL, 16);
		snprintf(dev, devlen, "%.*s", (int)strcspn(d + 4, " \n"), d + 4);
	}
	fclose(f);
	return crc;
}

TEST_F(io, dmabuf_import_into_vgem)
{
	const size_t len = 32 * PAGE;
	struct dsv4_region_create c;
	struct dsv4_region_export ex;
	uint32_t handle = 0;
	char dev[64] = "";
	uint8_t *p, *g;
	struct stat a, b;
	int vgem, back;

	vgem = open_vgem();
	if (vgem < 0)
		SKIP(return, "no vgem device (kernel without CONFIG_DRM_VGEM)");
	ASSERT_EQ(0, dsv4_create(self->fd, len, 1, DSV4_KIND_ENGRAM_TABLE, DSV4_REGION_HUGE, NULL, &c));
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd, c.mmap_offset);
	ASSERT_NE(MAP_FAILED, p);
	fill_pattern(p, len, 9);
	ex = (struct dsv4_region_export){ .id = c.id, .flags = DSV4_EXPORT_RDWR };
	ASSERT_EQ(0, dsv4_ioctl(self->fd, DSV4_IOC_REGION_EXPORT_DMABUF, &ex));
	EXPECT_EQ(-1, attachment_crc(c.id, dev, sizeof(dev)));	/* nobody attached */

	/*
	 * Import: vgem attaches and maps the sg table through the DMA API
	 * (map_dma_buf).  DRM refuses CPU mappings of imported objects
	 * (drm_gem_dumb_map_offset), so the device's view is checked through
	 * dsv4's debugfs checksum of the sg table vgem holds.
	 */
	ASSERT_EQ(0, drmPrimeFDToHandle(vgem, ex.fd, &handle));
	EXPECT_NE(0u, handle);
	EXPECT_EQ((long long)crc32(0, p, len), attachment_crc(c.id, dev, sizeof(dev)));
	EXPECT_EQ(0, strncmp(dev, "vgem", 4)) TH_LOG("attached device '%s'", dev);
	EXPECT_EQ(0, dmabuf_sync(ex.fd, DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW));
	p[len - 1] ^= 0xff;	/* the device sees CPU writes */
	EXPECT_EQ(0, dmabuf_sync(ex.fd, DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW));
	EXPECT_EQ((long long)crc32(0, p, len), attachment_crc(c.id, dev, sizeof(dev)));

	/* The handle exported again is the same dma-buf, and maps the bytes. */
	ASSERT_EQ(0, drmPrimeHandleToFD(vgem, handle, DRM_CLOEXEC | DRM_RDWR, &back));
	ASSERT_EQ(0, fstat(back, &a));
	ASSERT_EQ(0, fstat(ex.fd, &b));
	EXPECT_EQ(a.st_ino, b.st_ino);
	g = mmap(NULL, len, PROT_READ, MAP_SHARED, back, 0);
	ASSERT_NE(MAP_FAILED, g);
	EXPECT_EQ(0, memcmp(g, p, len));
	munmap(g, len);
	close(back);
	drmCloseBufferHandle(vgem, handle);
	EXPECT_EQ(-1, attachment_crc(c.id, dev, sizeof(dev)));	/* detached */
	close(ex.fd);
	/* A read-only export: a device may not map it for writing */
	ex = (struct dsv4_region_export){ .id = c.id };
	ASSERT_EQ(0, dsv4_ioctl(self->fd, DSV4_IOC_REGION_EXPORT_DMABUF, &ex));
	EXPECT_NE(0, drmPrimeFDToHandle(vgem, ex.fd, &handle));
	close(ex.fd);
	close(vgem);
	munmap(p, len);
	EXPECT_EQ(0, dsv4_destroy(self->fd, c.id));
}

DSV4_TEST_MAIN
