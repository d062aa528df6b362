// SPDX-License-Identifier: MIT
/*
 * Region create + first touch, per GiB, against the anchor measured in the
 * same run: mmap(MAP_HUGETLB | MAP_POPULATE) + mlock of the same size (and
 * 4 KiB pages: anonymous MAP_POPULATE + mlock).  Also counts the page
 * faults taken when touching a freshly mapped region (should be 0: all
 * PTEs are installed at mmap time).  Prints figures, asserts nothing.
 *   region_bench [MiB] [rounds]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "dsv4.h"

#define PAGE 4096UL

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long minflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

static void touch(volatile uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i += PAGE)
		p[i] = 1;
}

/* One dsv4 round: create, mmap, touch, (timed) then destroy. */
/* Split of the last dsv4 round: create, mmap, touch (seconds). */
static double split[3];

static double dsv4_round(int fd, size_t len, uint32_t flags, long *faults)
{
	struct dsv4_region_create c = { .size = len, .numa_node = 0, .flags = flags };
	struct dsv4_region_id d;
	double t0 = now(), t;
	uint8_t *p;
	long f0;

	if (ioctl(fd, DSV4_IOC_REGION_CREATE, &c))
		return -errno;
	split[0] = now() - t0;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)c.mmap_offset);
	if (p == MAP_FAILED)
		return -errno;
	split[1] = now() - t0 - split[0];
	f0 = minflt();
	touch(p, len);
	t = now() - t0;
	split[2] = t - split[0] - split[1];
	*faults = minflt() - f0;
	munmap(p, len);
	d = (struct dsv4_region_id){ .id = c.id };
	ioctl(fd, DSV4_IOC_REGION_DESTROY, &d);
	return t;
}

static double anchor_round(size_t len, int huge)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | (huge ? MAP_HUGETLB : 0);
	double t0 = now(), t;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	if (mlock(p, len)) {
		munmap(p, len);
		return -errno;
	}
	touch(p, len);
	t = now() - t0;
	munmap(p, len);
	return t;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return v[n / 2];
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 64;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	size_t len = mib << 20;
	double gib = (double)len / (1 << 30);
	double dh[32], ah[32], d4[32], a4[32];
	long faults = 0, worst = 0;
	int fd = open("/dev/dsv4", O_RDWR);

	if (fd < 0 || rounds < 1 || rounds > 32) {
		fprintf(stderr, "region_bench: needs /dev/dsv4 and 1..32 rounds\n");
		return 1;
	}
	for (int r = 0; r < rounds; r++) {
		/* Alternate so neither side always runs on a warmer machine. */
		ah[r] = anchor_round(len, 1);
		dh[r] = dsv4_round(fd, len, DSV4_REGION_HUGE, &faults);
		if (r == rounds - 1)
			printf("bench:   last 2 MiB round: create %.1f ms, mmap %.1f ms, touch %.1f ms\n",
			       split[0] * 1e3, split[1] * 1e3, split[2] * 1e3);
		worst = faults > worst ? faults : worst;
		a4[r] = anchor_round(len, 0);
		d4[r] = dsv4_round(fd, len, 0, &faults);
		worst = faults > worst ? faults : worst;
		if (ah[r] < 0 || dh[r] < 0 || a4[r] < 0 || d4[r] < 0) {
			fprintf(stderr, "region_bench: round %d failed: %s / %s / %s / %s\n", r,
				strerror((int)-ah[r]), strerror((int)-dh[r]),
				strerror((int)-a4[r]), strerror((int)-d4[r]));
			return 1;
		}
	}
	double mdh = median(dh, rounds), mah = median(ah, rounds);
	double md4 = median(d4, rounds), ma4 = median(a4, rounds);

	printf("bench: region create+first touch, %zu MiB, median of %d rounds\n", mib, rounds);
	printf("bench:   2 MiB folios: dsv4 %.3f s/GiB vs hugetlb MAP_POPULATE+mlock %.3f s/GiB -> ratio %.2f (goal <= 1.2)\n",
	       mdh / gib, mah / gib, mdh / mah);
	printf("bench:   no HUGE flag (64 KiB folios): dsv4 %.3f s/GiB vs 4 KiB anon MAP_POPULATE+mlock %.3f s/GiB -> ratio %.2f\n",
	       md4 / gib, ma4 / gib, md4 / ma4);
	printf("bench:   page faults while touching a fresh region mapping: %ld (of %zu pages)\n",
	       worst, len / PAGE);
	close(fd);
	return 0;
}
