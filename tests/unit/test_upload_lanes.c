/*
 * tests/unit/test_upload_lanes.c — cache/upload's two lanes against a fake
 * service whose data POSTs block until released: files above small_max
 * never run on more than cfg.transfers workers, small ones run on the
 * small-file lane besides (and on the transfers lane when it is free), and
 * with the lane turned off nothing runs beyond cfg.transfers. Counts only,
 * no timing.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"

#include "cache/upload.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "net/jfs.h"
#include "watchdog.h"
#include "upload_test.h"

#include "jfs_seams.h"

/* ---- the fake service: POSTs counted by size, held until released ---- */

#define SMALL_MAX (64 << 10)

static struct {
	pthread_mutex_t m;
	pthread_cond_t cv;
	bool hold;
	int big, small;             /* POSTs running now */
	int max_big, max_small, max_all;
} F = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, 0, 0, 0, 0 };

static int f_stat(void *ctx, const char *path, struct jfs_entry *out)
{
	return -ENOENT;
}

static void f_entry_release(void *ctx, struct jfs_entry *e)
{
}

static int f_allocate(void *ctx, const struct jfs_alloc_req *req, struct jfs_alloc *out)
{
	memset(out, 0, sizeof(*out));
	out->upload_url = strdup("http://127.0.0.1/upload");
	return out->upload_url ? 0 : -ENOMEM;
}

static void f_alloc_release(void *ctx, struct jfs_alloc *a)
{
	free(a->upload_url);
	a->upload_url = NULL;
}

static int f_upload(void *ctx, const char *url, int fd, int64_t resume_pos, int64_t size,
		    const char *md5, const atomic_bool *cancel)
{
	bool big = size > SMALL_MAX;
	int rc = 0;

	pthread_mutex_lock(&F.m);
	if (big && ++F.big > F.max_big)
		F.max_big = F.big;
	if (!big && ++F.small > F.max_small)
		F.max_small = F.small;
	if (F.big + F.small > F.max_all)
		F.max_all = F.big + F.small;
	pthread_cond_broadcast(&F.cv);
	while (F.hold && !atomic_load(cancel)) {
		struct timespec dl = clock_deadline_ms(50);
		pthread_cond_timedwait(&F.cv, &F.m, &dl);
	}
	if (atomic_load(cancel))
		rc = -ECANCELED;
	if (big)
		F.big--;
	else
		F.small--;
	pthread_mutex_unlock(&F.m);
	return rc;
}

static const struct upload_ops fake_ops = {
	.stat = f_stat, .entry_release = f_entry_release, .allocate = f_allocate,
	.alloc_release = f_alloc_release, .upload = f_upload,
};

/* Wait (the watchdog bounds it) until @n POSTs run at once. */
static void wait_running(int n)
{
	pthread_mutex_lock(&F.m);
	while (F.big + F.small < n)
		pthread_cond_wait(&F.cv, &F.m);
	pthread_mutex_unlock(&F.m);
}

static void release(void)
{
	pthread_mutex_lock(&F.m);
	F.hold = false;
	pthread_cond_broadcast(&F.cv);
	pthread_mutex_unlock(&F.m);
}

/* ---- fixture ---- */

static char dir[256];

static int setup(void **state)
{
	upload_test_begin(60);
	unit_tmpdir(dir, sizeof(dir), "test_upload_lanes");
	pthread_mutex_lock(&F.m);
	F.hold = true;
	F.big = F.small = F.max_big = F.max_small = F.max_all = 0;
	pthread_mutex_unlock(&F.m);
	return 0;
}

static int teardown(void **state)
{
	release();
	upload_test_end();
	unit_rm_rf(dir);
	return 0;
}

/* Enqueue node @id: a content file of @size bytes of @fill. */
static void enqueue(uint64_t id, size_t size, int fill)
{
	struct upload_item it = { .id = id, .gen = 1, .size = (int64_t)size, .base_size = -1 };
	char path[512], cfile[300];
	char *data = malloc(size ? size : 1);

	assert_non_null(data);
	memset(data, fill, size);
	snprintf(cfile, sizeof(cfile), "%s/c%llu", dir, (unsigned long long)id);
	unit_put_file(cfile, data, size);
	unit_md5(data, size, it.md5);
	free(data);
	snprintf(path, sizeof(path), "d/f%llu", (unsigned long long)id);
	it.path = path;
	it.content_file = cfile;
	assert_int_equal(upload_enqueue(Q, &it), 0);
}

static void open_queue(int small_transfers)
{
	struct upload_config c = {
		.cache_dir = dir, .transfers = 2, .small_transfers = small_transfers,
		.small_max = SMALL_MAX, .max_attempts = 10, .done = on_done,
		.write_back_ms = -1, .backoff_min_ms = 5, .backoff_max_ms = 20, .ops = &fake_ops,
	};
	assert_int_equal(upload_open(&c, &Q), 0);
}

static void all_done(int n)
{
	wait_events(n);
	for (int i = 0; i < n; i++)
		assert_int_equal(done_event(n, i, NULL, 0), 0);
}

/* Big files keep the transfers limit while small ones fill the small lane. */
static void big_ones_keep_transfers_limit(void **state)
{
	int nbig = 5, nsmall = 20;

	open_queue(6);
	for (int i = 0; i < nbig; i++)
		enqueue(100 + (uint64_t)i, SMALL_MAX + 1, 'b');
	for (int i = 0; i < nsmall; i++)
		enqueue(200 + (uint64_t)i, 4096, 's' + i);
	assert_int_equal(upload_start(Q), 0);
	/* every worker busy: 2 of the transfers lane, 6 of the small lane */
	wait_running(8);
	pthread_mutex_lock(&F.m);
	assert_true(F.big <= 2);
	assert_true(F.small >= 6);
	pthread_mutex_unlock(&F.m);
	release();
	all_done(nbig + nsmall);
	assert_true(F.max_big <= 2);
	assert_int_equal(F.max_all, 8);
}

/* Many small files: both lanes take them. */
static void small_ones_use_both_lanes(void **state)
{
	int nsmall = 30;

	open_queue(6);
	for (int i = 0; i < nsmall; i++)
		enqueue(300 + (uint64_t)i, 100, 'a' + i % 26);
	assert_int_equal(upload_start(Q), 0);
	wait_running(8);
	release();
	all_done(nsmall);
	assert_int_equal(F.max_small, 8);
	assert_int_equal(F.max_big, 0);
}

/* small_transfers < 0: the lane is off, cfg.transfers bounds everything. */
static void lane_off(void **state)
{
	int nsmall = 12;

	open_queue(-1);
	for (int i = 0; i < nsmall; i++)
		enqueue(400 + (uint64_t)i, 100, 'A' + i);
	assert_int_equal(upload_start(Q), 0);
	wait_running(2);
	release();
	all_done(nsmall);
	assert_int_equal(F.max_all, 2);
}

int main(void)
{
	struct CMUnitTest tests[] = {
		cmocka_unit_test(big_ones_keep_transfers_limit),
		cmocka_unit_test(small_ones_use_both_lanes),
		cmocka_unit_test(lane_off),
	};

	upload_test_log();
	return UNIT_MAIN_FIXTURE(tests, NULL, NULL, setup, teardown);
}
