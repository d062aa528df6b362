// SPDX-License-Identifier: MIT
/*
 * Allocation-failure sweep of the server's request handling: each seed
 * request of corpus-request/ goes through fuzz_request.c's harness (the
 * real handlers, the HTTP layer and the scheduler replaced) once to count
 * its allocations, then once for every N with the N-th allocation failing,
 * each run in a child process.  A run passes when the request is still
 * answered (the harness aborts otherwise), ASan and UBSan stay quiet and
 * LeakSanitizer finds nothing leaked.  The handlers' and the text
 * library's malloc, calloc, realloc, strdup and strndup are renamed to the
 * counting ones below at compile time (run-fuzz.sh), and jansson's through
 * json_set_alloc_funcs, except inside json_loadb: jansson 2.14's parser
 * itself crashes on some failed allocations.  jansson is not built with
 * ASan, so its entry points that take a json_t are wrapped (-Wl,--wrap)
 * to check that it is not one already freed.
 *
 *   oom_request SEED...      (TAP-style summary lines; exit 1 on a failure)
 */
#include <errno.h>
#include <jansson.h>
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern bool fuzz_request_oom;

static long fail_at = -1;	/* the allocation that fails, counted from 1 */
static long counted;
static bool armed;

static bool fails(void)
{
	return armed && ++counted == fail_at;
}

void *oom_malloc(size_t n);
void *oom_calloc(size_t n, size_t size);
void *oom_realloc(void *p, size_t n);
char *oom_strdup(const char *s);
char *oom_strndup(const char *s, size_t n);
json_t *__real_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *err);
json_t *__wrap_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *err);

void *oom_malloc(size_t n)
{
	return fails() ? NULL : malloc(n);
}

void *oom_calloc(size_t n, size_t size)
{
	return fails() ? NULL : calloc(n, size);
}

void *oom_realloc(void *p, size_t n)
{
	return fails() ? NULL : realloc(p, n);
}

char *oom_strdup(const char *s)
{
	return fails() ? NULL : strdup(s);
}

char *oom_strndup(const char *s, size_t n)
{
	return fails() ? NULL : strndup(s, n);
}

/* a json_t handed to jansson must not be one already freed */
static void live(const json_t *j, const char *fn)
{
	if (j && __asan_region_is_poisoned((void *)j, sizeof(*j))) {
		fprintf(stderr, "ERROR: %s() got a freed json_t %p\n", fn, (const void *)j);
		abort();
	}
}

int __real_json_object_set_new(json_t *o, const char *key, json_t *v);
int __wrap_json_object_set_new(json_t *o, const char *key, json_t *v);
int __real_json_array_append_new(json_t *a, json_t *v);
int __wrap_json_array_append_new(json_t *a, json_t *v);
int __real_json_array_insert_new(json_t *a, size_t at, json_t *v);
int __wrap_json_array_insert_new(json_t *a, size_t at, json_t *v);
int __real_json_array_extend(json_t *a, json_t *b);
int __wrap_json_array_extend(json_t *a, json_t *b);
char *__real_json_dumps(const json_t *j, size_t flags);
char *__wrap_json_dumps(const json_t *j, size_t flags);

int __wrap_json_object_set_new(json_t *o, const char *key, json_t *v)
{
	live(o, "json_object_set_new");
	live(v, "json_object_set_new");
	return __real_json_object_set_new(o, key, v);
}

int __wrap_json_array_append_new(json_t *a, json_t *v)
{
	live(a, "json_array_append_new");
	live(v, "json_array_append_new");
	return __real_json_array_append_new(a, v);
}

int __wrap_json_array_insert_new(json_t *a, size_t at, json_t *v)
{
	live(a, "json_array_insert_new");
	live(v, "json_array_insert_new");
	return __real_json_array_insert_new(a, at, v);
}

int __wrap_json_array_extend(json_t *a, json_t *b)
{
	live(a, "json_array_extend");
	live(b, "json_array_extend");
	return __real_json_array_extend(a, b);
}

char *__wrap_json_dumps(const json_t *j, size_t flags)
{
	live(j, "json_dumps");
	return __real_json_dumps(j, flags);
}

static void *jansson_malloc(size_t n)
{
	return fails() ? NULL : malloc(n);
}

json_t *__wrap_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *err)
{
	bool was = armed;
	json_t *v;

	armed = false;
	v = __real_json_loadb(buf, len, flags, err);
	armed = was;
	return v;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
		*len = (size_t)n;
	} else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* one request with allocation @n failing (-1: none), in a child: its exit
 * status (0: answered, nothing reported, nothing leaked); *count: how many
 * allocations the request made (through a pipe, for n = -1) */
static int run_one(const uint8_t *buf, size_t len, long n, long *count)
{
	int fd[2], st;
	pid_t pid;

	if (pipe(fd))
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		close(fd[0]);
		fail_at = n;
		counted = 0;
		armed = true;
		LLVMFuzzerTestOneInput(buf, len);
		armed = false;
		if (write(fd[1], &counted, sizeof(counted)) != sizeof(counted))
			_exit(5);
		_exit(__lsan_do_recoverable_leak_check() ? 3 : 0);
	}
	close(fd[1]);
	if (read(fd[0], count, sizeof(*count)) != sizeof(*count))
		*count = -1;
	close(fd[0]);
	if (waitpid(pid, &st, 0) != pid)
		return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv)
{
	int failed = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: oom_request SEED...\n");
		return 2;
	}
	LLVMFuzzerInitialize(&argc, &argv);
	fuzz_request_oom = true;
	json_set_alloc_funcs(jansson_malloc, free);
	for (int i = 1; i < argc; i++) {
		const char *name = strrchr(argv[i], '/') ? strrchr(argv[i], '/') + 1 : argv[i];
		size_t len = 0;
		uint8_t *buf = read_file(argv[i], &len);
		long total = 0, got, bad = 0, first_bad = 0;
		int st;

		if (!buf) {
			printf("not ok %s: cannot read %s\n", name, argv[i]);
			failed = 1;
			continue;
		}
		st = run_one(buf, len, -1, &total);
		if (st || total < 0) {
			printf("not ok %s: fails with no allocation failing (status %d)\n", name, st);
			failed = 1;
			free(buf);
			continue;
		}
		for (long n = 1; n <= total; n++) {
			st = run_one(buf, len, n, &got);
			if (st) {
				if (!bad++)
					first_bad = n;
				fprintf(stderr, "oom_request: %s with allocation %ld of %ld failing: "
					"status %d\n", name, n, total, st);
			}
		}
		if (bad) {
			printf("not ok %s: %ld of %ld allocation failures mishandled (first: %ld)\n",
			       name, bad, total, first_bad);
			failed = 1;
		} else {
			printf("ok %s: each of its %ld allocations failed in turn: answered, no leak\n",
			       name, total);
		}
		free(buf);
	}
	return failed;
}
