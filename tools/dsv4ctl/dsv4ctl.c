// SPDX-License-Identifier: MIT
/*
 * dsv4ctl: inspect and manage /dev/dsv4 regions.
 *
 *   dsv4ctl [--json] [--dev PATH] info
 *   dsv4ctl [--json] [--dev PATH] regions
 *   dsv4ctl create NAME SIZE [--kind K] [--node N] [--huge] [--preferred]
 *                            [--mode OCTAL]
 *   dsv4ctl open NAME [--write]
 *   dsv4ctl seal NAME
 *   dsv4ctl drop NAME
 *   dsv4ctl load FILE NAME [--kind K] [--node N] [--huge] [--mode OCTAL]
 *                          [--io uring|read]
 *
 * create/load make persistent named regions: they outlive dsv4ctl.  load
 * reads FILE into a new region and seals it (an Engram table loaded once).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dsv4drv.h"

struct options {
	const char *dev;
	bool json;
	uint32_t kind;
	int node;
	uint32_t flags;
	uint32_t mode;
	bool write;
	bool io_uring;
};

static int fail(const char *what, int err)
{
	fprintf(stderr, "dsv4ctl: %s: %s\n", what, strerror(-err));
	return 1;
}

static int usage(void)
{
	fputs("usage: dsv4ctl [--json] [--dev PATH] COMMAND ...\n"
	      "  info                       module and machine facts\n"
	      "  regions                    list regions\n"
	      "  create NAME SIZE           new persistent region\n"
	      "  open NAME [--write]        check access to a region\n"
	      "  seal NAME                  make a region read-only\n"
	      "  drop NAME                  destroy a persistent region\n"
	      "  load FILE NAME             FILE into a new sealed region\n"
	      "  devices                    DRM/accel devices and compute backends\n"
	      "  prime-import NAME NODE [--write]  a region's dma-buf into a DRM device\n"
	      "options: --kind generic|engram_table|expert_staging|kv_spill\n"
	      "         --node N  --preferred  --huge  --mode OCTAL\n"
	      "         --io uring|read\n", stderr);
	return 2;
}

/* Region names are bytes: JSON needs UTF-8. */
static json_t *json_name(const char *name)
{
	json_t *s = json_string(name);

	return s ? s : json_string("(not UTF-8)");
}

static void print_json(json_t *obj)
{
	char *text = json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (text)
		puts(text);
	free(text);
	json_decref(obj);
}

static int cmd_info(int fd, const struct options *o)
{
	struct dsv4_info info;
	int ret = dsv4_kdev_info(fd, &info);

	if (ret)
		return fail("GET_INFO", ret);
	if (o->json) {
		json_t *obj = json_object();
		json_t *nodes = json_array();

		for (int n = 0; n < 256; n++)
			if (info.online_nodes[n / 64] & (1ULL << (n % 64)))
				json_array_append_new(nodes, json_integer((json_int_t)n));
		json_object_set_new(obj, "version", json_string(info.version));
		json_object_set_new(obj, "abi_version", json_integer((json_int_t)info.abi_version));
		json_object_set_new(obj, "features", json_integer((json_int_t)info.features));
		json_object_set_new(obj, "page_size", json_integer((json_int_t)info.page_size));
		json_object_set_new(obj, "huge_size", json_integer((json_int_t)info.huge_size));
		json_object_set_new(obj, "online_nodes", nodes);
		json_object_set_new(obj, "nr_node_ids", json_integer((json_int_t)info.nr_node_ids));
		json_object_set_new(obj, "max_region_size",
				       json_integer((json_int_t)info.max_region_size));
		print_json(obj);
		return 0;
	}
	printf("dsv4 module %s, ABI %u\n", info.version, info.abi_version);
	printf("page size %u, huge folio %u KiB, max region %llu GiB\n",
	       info.page_size, info.huge_size >> 10,
	       (unsigned long long)(info.max_region_size >> 30));
	printf("online NUMA nodes (%u):", info.nr_online_nodes);
	for (int n = 0; n < 256; n++)
		if (info.online_nodes[n / 64] & (1ULL << (n % 64)))
			printf(" %d", n);
	printf("\nfeatures: %s%s%s%s%s%s\n",
	       info.features & DSV4_FEAT_REGIONS ? "regions " : "",
	       info.features & DSV4_FEAT_PERSISTENT ? "persistent " : "",
	       info.features & DSV4_FEAT_IMPORT_MEMFD ? "import-memfd " : "",
	       info.features & DSV4_FEAT_DMABUF ? "dma-buf " : "",
	       info.features & DSV4_FEAT_HUGE ? "huge " : "",
	       info.features & DSV4_FEAT_FAULT_INJECT ? "fault-inject" : "");
	return 0;
}

static int cmd_regions(int fd, const struct options *o)
{
	struct dsv4_region_entry *e;
	uint32_t count;
	char state[64];
	int ret = dsv4_kdev_list(fd, &e, &count);

	if (ret)
		return fail("REGION_LIST", ret);
	if (o->json) {
		json_t *arr = json_array();

		for (uint32_t i = 0; i < count; i++) {
			json_t *r = json_object();

			json_object_set_new(r, "id", json_integer((json_int_t)e[i].id));
			json_object_set_new(r, "name", json_name(e[i].name));
			json_object_set_new(r, "kind", json_string(
					       dsv4_kind_to_name(e[i].kind)));
			json_object_set_new(r, "size", json_integer((json_int_t)e[i].size));
			json_object_set_new(r, "numa_node", json_integer((json_int_t)e[i].numa_node));
			json_object_set_new(r, "node_mask", json_integer((json_int_t)e[i].node_mask));
			json_object_set_new(r, "state", json_string(
					       dsv4_state_to_string(e[i].state, state, sizeof(state))));
			json_object_set_new(r, "refs", json_integer((json_int_t)e[i].refs));
			json_object_set_new(r, "uid", json_integer((json_int_t)e[i].uid));
			json_object_set_new(r, "mode", json_integer((json_int_t)e[i].mode));
			json_array_append_new(arr, r);
		}
		print_json(arr);
	} else {
		printf("%6s %-24s %-14s %14s %5s %-8s %4s %-24s\n", "ID", "NAME",
		       "KIND", "BYTES", "NODE", "ON", "REFS", "STATE");
		for (uint32_t i = 0; i < count; i++) {
			char on[24] = "";
			size_t used = 0;

			for (int n = 0; n < 64 && used + 4 < sizeof(on); n++)
				if (e[i].node_mask & (1ULL << n))
					used += snprintf(on + used, sizeof(on) - used,
							 "%s%d", used ? "," : "", n);
			printf("%6llu %-24s %-14s %14llu %5d %-8s %4u %-24s\n",
			       (unsigned long long)e[i].id,
			       e[i].name[0] ? e[i].name : "-",
			       dsv4_kind_to_name(e[i].kind),
			       (unsigned long long)e[i].size, e[i].numa_node,
			       used ? on : "-", e[i].refs,
			       dsv4_state_to_string(e[i].state, state, sizeof(state)));
		}
	}
	free(e);
	return 0;
}

static int create_named(int fd, const char *name, uint64_t size,
			const struct options *o, struct dsv4_region_create *c)
{
	memset(c, 0, sizeof(*c));
	if (strlen(name) >= sizeof(c->name))
		return -ENAMETOOLONG;
	strcpy(c->name, name);
	c->size = size;
	c->numa_node = o->node;
	c->kind = o->kind;
	c->flags = o->flags | DSV4_REGION_PERSISTENT;
	c->mode = o->mode;
	return dsv4_kdev_create(fd, c);
}

static int cmd_create(int fd, const struct options *o, char **args, int n)
{
	struct dsv4_region_create c;
	uint64_t size;
	int ret;

	if (n != 2)
		return usage();
	ret = dsv4_parse_size(args[1], &size);
	if (ret)
		return fail("SIZE", ret);
	ret = create_named(fd, args[0], size, o, &c);
	if (ret)
		return fail("REGION_CREATE", ret);
	if (o->json) {
		json_t *obj = json_object();

		json_object_set_new(obj, "id", json_integer((json_int_t)c.id));
		json_object_set_new(obj, "name", json_name(c.name));
		json_object_set_new(obj, "size", json_integer((json_int_t)c.size));
		print_json(obj);
	} else {
		printf("created region %llu '%s' (%llu bytes)\n",
		       (unsigned long long)c.id, c.name,
		       (unsigned long long)c.size);
	}
	return 0;
}

static int cmd_open(int fd, const struct options *o, char **args, int n)
{
	struct dsv4_region_open op;
	int ret;

	if (n != 1)
		return usage();
	ret = dsv4_kdev_open_region(fd, args[0], o->write ? DSV4_OPEN_WRITE : 0,
				    &op);
	if (ret)
		return fail(args[0], ret);
	printf("region %llu '%s' %s, %llu bytes: %s access granted\n",
	       (unsigned long long)op.id, args[0], dsv4_kind_to_name(op.kind),
	       (unsigned long long)op.size, o->write ? "write" : "read");
	return 0;
}

static int cmd_devices(const struct options *o)
{
	struct dsv4_device *d;
	size_t n;
	int ret = dsv4_devices_list(&d, &n);

	if (ret)
		return fail("devices", ret);
	if (o->json) {
		json_t *arr = json_array();

		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:s}", "node", d[i].node,
							     "kind", d[i].kind, "driver", d[i].driver,
							     "bus", d[i].bus, "backend", d[i].backend));
		print_json(arr);
	} else {
		if (!n)
			printf("no DRM, accel or backend devices\n");
		for (size_t i = 0; i < n; i++)
			printf("%-24s %-8s %-12s %-24s %s\n", d[i].node, d[i].kind, d[i].driver,
			       d[i].bus, d[i].backend);
	}
	free(d);
	return 0;
}

/* The id of a named region, through an open handle on @fd. */
static int lookup_id(int fd, const char *name, uint64_t *id)
{
	struct dsv4_region_open op;
	int ret = dsv4_kdev_open_region(fd, name, 0, &op);

	if (!ret)
		*id = op.id;
	return ret;
}

/*
 * Read-only exports refuse devices that map for DMA in both directions
 * (vgem does); --write exports read-write, through a writable handle.
 */
static int cmd_prime_import(int fd, const struct options *o, char **args, int n)
{
	struct dsv4_region_open op;
	uint32_t handle;
	int ret, dmabuf, drm;
	char err[256];

	if (n != 2)
		return usage();
	ret = dsv4_kdev_open_region(fd, args[0], o->write ? DSV4_OPEN_WRITE : 0, &op);
	if (ret)
		return fail(args[0], ret);
	dmabuf = dsv4_kdev_export_dmabuf(fd, op.id, 0, 0, DSV4_EXPORT_CLOEXEC |
					 (o->write ? DSV4_EXPORT_RDWR : 0));
	if (dmabuf < 0)
		return fail("EXPORT_DMABUF", dmabuf);
	ret = dsv4_device_prime_import(args[1], dmabuf, &drm, &handle, err, sizeof(err));
	close(dmabuf);
	if (ret) {
		fprintf(stderr, "dsv4ctl: %s\n", err);
		return 1;
	}
	printf("region '%s' imported into %s: GEM handle %u\n", args[0], args[1], handle);
	close(drm);
	return 0;
}

static int cmd_seal_or_drop(int fd, char **args, int n, bool seal)
{
	uint64_t id;
	int ret;

	if (n != 1)
		return usage();
	ret = lookup_id(fd, args[0], &id);
	if (ret)
		return fail(args[0], ret);
	ret = seal ? dsv4_kdev_seal(fd, id) : dsv4_kdev_destroy(fd, id);
	if (ret)
		return fail(seal ? "REGION_SEAL" : "REGION_DESTROY", ret);
	printf("%s region %llu '%s'\n", seal ? "sealed" : "dropped",
	       (unsigned long long)id, args[0]);
	return 0;
}

/* Reads @len bytes of @file_fd into @dst with io_uring, queue depth 8. */
static int load_uring(int file_fd, uint8_t *dst, uint64_t len)
{
	const uint64_t chunk = 1 << 20;
	struct io_uring ring;
	uint64_t next = 0, done = 0;
	unsigned int inflight = 0;
	int ret = io_uring_queue_init(8, &ring, 0);

	if (ret)
		return ret;
	while (done < len) {
		struct io_uring_cqe *cqe;

		while (inflight < 8 && next < len) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			uint64_t n = len - next < chunk ? len - next : chunk;

			io_uring_prep_read(sqe, file_fd, dst + next, (unsigned int)n, next);
			io_uring_sqe_set_data64(sqe, n);
			next += n;
			inflight++;
		}
		ret = io_uring_submit_and_wait(&ring, 1);
		if (ret < 0)
			break;
		ret = io_uring_wait_cqe(&ring, &cqe);
		if (ret)
			break;
		if (cqe->res < 0 || (uint64_t)cqe->res != io_uring_cqe_get_data64(cqe)) {
			ret = cqe->res < 0 ? cqe->res : -EIO;	/* short read */
			io_uring_cqe_seen(&ring, cqe);
			break;
		}
		done += (uint64_t)cqe->res;
		inflight--;
		io_uring_cqe_seen(&ring, cqe);
		ret = 0;
	}
	io_uring_queue_exit(&ring);
	return ret;
}

static int load_read(int file_fd, uint8_t *dst, uint64_t len)
{
	uint64_t done = 0;

	while (done < len) {
		ssize_t n = pread(file_fd, dst + done, len - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (uint64_t)n;
	}
	return 0;
}

static int cmd_load(int fd, struct options *o, char **args, int n)
{
	struct dsv4_region_create c;
	struct timespec t0, t1;
	struct stat st;
	uint64_t size;
	long page = sysconf(_SC_PAGESIZE);
	uint8_t *map;
	int file_fd, ret;
	double secs;

	if (n != 2)
		return usage();
	file_fd = open(args[0], O_RDONLY | O_CLOEXEC);
	if (file_fd < 0)
		return fail(args[0], -errno);
	if (fstat(file_fd, &st) || !S_ISREG(st.st_mode) || st.st_size == 0) {
		close(file_fd);
		return fail(args[0], -EINVAL);
	}
	size = ((uint64_t)st.st_size + (uint64_t)page - 1) & ~((uint64_t)page - 1);
	ret = create_named(fd, args[1], size, o, &c);
	if (ret) {
		close(file_fd);
		return fail("REGION_CREATE", ret);
	}
	map = dsv4_kdev_map(fd, c.mmap_offset, size, PROT_READ | PROT_WRITE);
	if (!map) {
		ret = -errno;
		goto undo;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (o->io_uring) {
		ret = load_uring(file_fd, map, (uint64_t)st.st_size);
		/* No io_uring here (seccomp, old kernel): plain reads. */
		if (ret == -ENOSYS || ret == -EPERM)
			o->io_uring = false;
	}
	if (!o->io_uring)
		ret = load_read(file_fd, map, (uint64_t)st.st_size);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	munmap(map, size);
	if (ret)
		goto undo;
	ret = dsv4_kdev_seal(fd, c.id);
	if (ret)
		goto undo;
	close(file_fd);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("loaded %s into sealed region %llu '%s': %lld bytes in %.3f s (%.2f GB/s, %s)\n",
	       args[0], (unsigned long long)c.id, c.name, (long long)st.st_size,
	       secs, secs > 0 ? (double)st.st_size / secs / 1e9 : 0.0,
	       o->io_uring ? "io_uring" : "read");
	return 0;
undo:
	/* Lose nothing: a half-loaded region must not stay behind. */
	dsv4_kdev_destroy(fd, c.id);
	close(file_fd);
	return fail("load", ret);
}

static int parse_option(int c, const char *arg, struct options *o)
{
	char *end;

	errno = 0;
	switch (c) {
	case 'j': o->json = true; return 0;
	case 'd': o->dev = arg; return 0;
	case 'k': return dsv4_kind_from_name(arg, &o->kind);
	case 'n':
		o->node = (int)strtol(arg, &end, 10);
		return errno || *end || end == arg ? -EINVAL : 0;
	case 'H': o->flags |= DSV4_REGION_HUGE; return 0;
	case 'p': o->flags |= DSV4_REGION_PREFERRED; return 0;
	case 'm':
		o->mode = (uint32_t)strtoul(arg, &end, 8);
		return errno || *end || end == arg || o->mode > 0777 ? -EINVAL : 0;
	case 'w': o->write = true; return 0;
	case 'i':
		if (strcmp(arg, "uring") && strcmp(arg, "read"))
			return -EINVAL;
		o->io_uring = !strcmp(arg, "uring");
		return 0;
	default: return -EINVAL;
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "dev", required_argument, NULL, 'd' },
		{ "kind", required_argument, NULL, 'k' },
		{ "node", required_argument, NULL, 'n' },
		{ "huge", no_argument, NULL, 'H' },
		{ "preferred", no_argument, NULL, 'p' },
		{ "mode", required_argument, NULL, 'm' },
		{ "write", no_argument, NULL, 'w' },
		{ "io", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct options o = { .node = DSV4_NODE_ANY, .io_uring = true };
	const char *cmd;
	char **args;
	int c, fd, ret, nargs;

	/* GNU getopt permutes: options may come before or after arguments. */
	while ((c = getopt_long(argc, argv, "jd:k:n:Hpm:wi:h", longopts, NULL)) != -1) {
		if (c == 'h' || c == '?')
			return usage();
		ret = parse_option(c, optarg, &o);
		if (ret)
			return fail(optarg ? optarg : "option", ret);
	}
	if (optind >= argc)
		return usage();
	cmd = argv[optind];
	args = argv + optind + 1;
	nargs = argc - optind - 1;

	if (!strcmp(cmd, "devices"))	/* needs no module */
		return nargs ? usage() : cmd_devices(&o);
	fd = dsv4_kdev_open(o.dev);
	if (fd < 0)
		return fail(o.dev ? o.dev : DSV4_KDEV_PATH, fd);
	if (!strcmp(cmd, "info"))
		ret = nargs ? usage() : cmd_info(fd, &o);
	else if (!strcmp(cmd, "regions"))
		ret = nargs ? usage() : cmd_regions(fd, &o);
	else if (!strcmp(cmd, "create"))
		ret = cmd_create(fd, &o, args, nargs);
	else if (!strcmp(cmd, "open"))
		ret = cmd_open(fd, &o, args, nargs);
	else if (!strcmp(cmd, "seal"))
		ret = cmd_seal_or_drop(fd, args, nargs, true);
	else if (!strcmp(cmd, "drop"))
		ret = cmd_seal_or_drop(fd, args, nargs, false);
	else if (!strcmp(cmd, "load"))
		ret = cmd_load(fd, &o, args, nargs);
	else if (!strcmp(cmd, "prime-import"))
		ret = cmd_prime_import(fd, &o, args, nargs);
	else
		ret = usage();
	close(fd);
	return ret;
}
