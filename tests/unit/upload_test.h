/*
 * tests/unit/upload_test.h — what the two upload test programs share
 * (test_upload.c with a fake network, test_upload_emu.c against the
 * emulator): the queue under test and the record of its done callbacks.
 * Header-only; include after unit.h and watchdog.h.
 *
 *   Q                the queue under test (upload_test_end closes it)
 *   upload_test_begin(s)  per-test setup: deadline @s seconds, no events
 *   upload_test_end()     per-test teardown: queue closed, no deadline
 *   upload_test_log()     errors only, or everything with UPLOAD_TEST_DEBUG set
 *   on_done          the upload_config.done callback: records (id, gen,
 *                    err, server path, md5), at most UPLOAD_EVENTS of them
 *   D.ev[i], D.n     what was recorded (read them once the callbacks ran)
 *   events()         how many were recorded
 *   wait_events(n)   wait (10 s at most, else the test fails) for n
 *   events_reset()   forget them (the per-test setup)
 *   done_event(n, i, path, len)
 *                    wait for n, then callback i's err (and path into @path)
 */
#ifndef JOTTAFS_TESTS_UPLOAD_TEST_H
#define JOTTAFS_TESTS_UPLOAD_TEST_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "cache/upload.h"
#include "lib/clock.h"
#include "lib/log.h"

#define UPLOAD_EVENTS 256

struct event {
	uint64_t id, gen;
	int err;
	char path[512];
	char md5[33];
};

static struct {
	pthread_mutex_t m;
	struct event ev[UPLOAD_EVENTS];
	int n;
} D = { PTHREAD_MUTEX_INITIALIZER, { { 0 } }, 0 };

static inline void on_done(void *ctx, uint64_t id, uint64_t gen, int err,
			   const char *server_path, const char *md5)
{
	(void)ctx;
	pthread_mutex_lock(&D.m);
	if (D.n < UPLOAD_EVENTS) {
		D.ev[D.n].id = id;
		D.ev[D.n].gen = gen;
		D.ev[D.n].err = err;
		snprintf(D.ev[D.n].path, sizeof(D.ev[D.n].path), "%s", server_path);
		snprintf(D.ev[D.n].md5, sizeof(D.ev[D.n].md5), "%s", md5 ? md5 : "");
		D.n++;
	}
	pthread_mutex_unlock(&D.m);
}

static inline int events(void)
{
	pthread_mutex_lock(&D.m);
	int n = D.n;
	pthread_mutex_unlock(&D.m);
	return n;
}

static inline void wait_events(int n)
{
	int64_t end = clock_mono_ms() + 10000;
	while (events() < n) {
		assert_true(clock_mono_ms() < end);     /* never assert with D.m held */
		unit_sleep_ms(2);
	}
}

static inline void events_reset(void)
{
	pthread_mutex_lock(&D.m);
	D.n = 0;
	pthread_mutex_unlock(&D.m);
}

static inline int done_event(int n, int i, char *path, size_t len)
{
	wait_events(n);
	pthread_mutex_lock(&D.m);
	int err = D.ev[i].err;
	if (path)
		snprintf(path, len, "%s", D.ev[i].path);
	pthread_mutex_unlock(&D.m);
	return err;
}

static struct upload_queue *Q;

static inline void upload_test_begin(unsigned deadline_s)
{
	watchdog_arm(deadline_s);
	events_reset();
	Q = NULL;
}

static inline void upload_test_end(void)
{
	upload_close(Q);
	Q = NULL;
	watchdog_arm(0);
}

static inline void upload_test_log(void)
{
	log_setup(getenv("UPLOAD_TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_ERR, false);
}

#endif
