/*
 * Unit tests of net/conn: the connectivity state machine (with a fake
 * clock), the probe backoff, the probe thread, and net/http asking it
 * (a refused port: fail fast with -EHOSTDOWN once offline, no connection).
 */
#include <stddef.h>
#include <stdint.h>
#include "unit.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/conn.h"
#include "net/http.h"
#include "watchdog.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/* A port on 127.0.0.1 where nothing listens (it was free a moment ago). */
static int dead_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static _Atomic int64_t fake_now;

static int64_t fake_clock(void)
{
	return atomic_load(&fake_now);
}

static int arm(void **state)
{
	(void)state;
	atomic_store(&fake_now, 1000000);
	watchdog_arm(30);
	return 0;
}

static int disarm(void **state)
{
	(void)state;
	watchdog_arm(0);
	return 0;
}

static struct conn *new_conn(void)
{
	struct conn *c = NULL;
	assert_int_equal(conn_new(fake_clock, &c), 0);
	return c;
}

static atomic_int online_calls;

static void count_online(void *ctx)
{
	(void)ctx;
	atomic_fetch_add(&online_calls, 1);
}

static void test_starts_online_and_degrades(void **state)
{
	(void)state;
	struct conn *c = new_conn();
	struct conn_info ci;

	assert_int_equal(conn_state(c), CONN_ONLINE);
	assert_true(conn_admit(c));
	conn_failure(c, "HTTP 503");
	assert_int_equal(conn_state(c), CONN_DEGRADED);
	assert_true(conn_admit(c));     /* degraded still sends */
	conn_get_info(c, &ci);
	assert_string_equal(ci.last_error, "HTTP 503");
	conn_success(c);
	assert_int_equal(conn_state(c), CONN_ONLINE);
	conn_free(c);
}

/* Occasional failures among successes never make it offline, however
 * long it runs and however close together they come. */
static void test_scattered_failures_stay_online(void **state)
{
	(void)state;
	struct conn *c = new_conn();
	uint64_t r = 12345;

	for (int i = 0; i < 100000; i++) {
		r = r * 6364136223846793005ULL + 1442695040888963407ULL;
		atomic_fetch_add(&fake_now, 50);
		/* 30 % failures, at most CONN_FAIL_RUN - 1 in a row */
		if ((r >> 33) % 10 < 3 && i % CONN_FAIL_RUN)
			conn_failure(c, "Connection reset by peer");
		else
			conn_success(c);
		assert_int_not_equal(conn_state(c), CONN_OFFLINE);
	}
	conn_free(c);
}

/* A run of failures goes offline only once it is long enough in both
 * count and time. */
static void test_run_goes_offline(void **state)
{
	(void)state;
	struct conn *c = new_conn();
	struct conn_info ci;

	/* many failures in a burst (a retry loop of one request): not yet */
	for (int i = 0; i < 20; i++) {
		conn_failure(c, "Connection refused");
		atomic_fetch_add(&fake_now, 10);
	}
	assert_int_equal(conn_state(c), CONN_DEGRADED);
	/* the run has lasted long enough: the next failure decides */
	atomic_fetch_add(&fake_now, CONN_FAIL_SPAN_MS);
	conn_failure(c, "Connection refused");
	assert_int_equal(conn_state(c), CONN_OFFLINE);
	assert_false(conn_admit(c));
	conn_get_info(c, &ci);
	assert_int_equal(ci.outages, 1);
	assert_string_equal(ci.last_error, "Connection refused");
	assert_true(ci.since > 0);

	/* a long time, but too few failures: not offline */
	conn_success(c);
	conn_failure(c, "x");
	atomic_fetch_add(&fake_now, 10 * CONN_FAIL_SPAN_MS);
	for (int i = 1; i < CONN_FAIL_RUN - 1; i++)
		conn_failure(c, "x");
	assert_int_equal(conn_state(c), CONN_DEGRADED);
	conn_failure(c, "x");
	assert_int_equal(conn_state(c), CONN_OFFLINE);
	conn_get_info(c, &ci);
	assert_int_equal(ci.outages, 2);
	conn_free(c);
}

/* A run of failures is confirmed by one probe: when the service answers
 * it (only some requests fail), not offline; when it does not, offline. */
static struct conn *confirm_conn;
static int confirm_calls;
static int confirm_answer;

static int confirm_probe(void *ctx)
{
	(void)ctx;
	confirm_calls++;
	if (confirm_answer) {
		conn_success(confirm_conn);     /* as net/http reports an answer */
		return 0;
	}
	conn_failure(confirm_conn, "probe: Connection refused");
	return -ECONNREFUSED;
}

static void run_of_failures(struct conn *c)
{
	/* the last one completes the run, in count and in time */
	for (int i = 0; i < CONN_FAIL_RUN; i++) {
		if (i == CONN_FAIL_RUN - 1)
			atomic_fetch_add(&fake_now, CONN_FAIL_SPAN_MS);
		conn_failure(c, "HTTP 503");
	}
}

static void test_run_confirmed_by_probe(void **state)
{
	(void)state;
	struct conn *c = new_conn();

	confirm_conn = c;
	conn_set_probe(c, confirm_probe, NULL);
	confirm_calls = 0;
	confirm_answer = 1;
	run_of_failures(c);
	assert_int_equal(confirm_calls, 1);
	assert_int_equal(conn_state(c), CONN_ONLINE);   /* a partial fault */
	confirm_answer = 0;
	run_of_failures(c);
	assert_int_equal(confirm_calls, 2);
	assert_int_equal(conn_state(c), CONN_OFFLINE);
	conn_free(c);
}

static void test_back_online_calls_listeners(void **state)
{
	(void)state;
	struct conn *c = new_conn();

	atomic_store(&online_calls, 0);
	assert_int_equal(conn_on_online(c, count_online, NULL), 0);
	conn_success(c);
	conn_failure(c, "x");
	conn_success(c);
	assert_int_equal(atomic_load(&online_calls), 0);   /* degraded -> online: no */
	conn_set_offline(c, "at mount");
	assert_int_equal(conn_state(c), CONN_OFFLINE);
	conn_failure(c, "more");                     /* stays offline */
	assert_int_equal(conn_state(c), CONN_OFFLINE);
	conn_success(c);
	assert_int_equal(conn_state(c), CONN_ONLINE);
	assert_int_equal(atomic_load(&online_calls), 1);
	conn_success(c);
	assert_int_equal(atomic_load(&online_calls), 1);
	conn_free(c);
}

static void test_probe_delay(void **state)
{
	(void)state;
	assert_int_equal(conn_probe_delay_ms(0), CONN_PROBE_MIN_MS);
	assert_int_equal(conn_probe_delay_ms(1), 2 * CONN_PROBE_MIN_MS);
	for (unsigned i = 0; i < 100; i++) {
		int64_t d = conn_probe_delay_ms(i);
		assert_true(d >= CONN_PROBE_MIN_MS && d <= CONN_PROBE_MAX_MS);
		assert_true(d >= conn_probe_delay_ms(i ? i - 1 : 0));
	}
	assert_int_equal(conn_probe_delay_ms(1000), CONN_PROBE_MAX_MS);
}

/* The probe thread: nothing while online; offline, one probe after the
 * first delay; its success makes it online. */
struct probe_ctx {
	struct conn *c;
	atomic_int calls;
	int fail_first;
};

static int probe(void *arg)
{
	struct probe_ctx *p = arg;
	int n = atomic_fetch_add(&p->calls, 1);
	if (n < p->fail_first) {
		conn_failure(p->c, "still down");
		return -ECONNREFUSED;
	}
	conn_success(p->c);
	return 0;
}

static void test_probe_thread(void **state)
{
	(void)state;
	struct probe_ctx p = { .fail_first = 1 };
	struct conn *c = NULL;
	struct conn_info ci;

	assert_int_equal(conn_new(NULL, &c), 0);
	p.c = c;
	atomic_store(&online_calls, 0);
	assert_int_equal(conn_on_online(c, count_online, NULL), 0);
	assert_int_equal(conn_start(c, probe, &p), 0);
	conn_success(c);
	assert_int_equal(atomic_load(&p.calls), 0);
	conn_set_offline(c, "test");
	/* 1 s, a failed probe, 2 s, a good one */
	for (int i = 0; i < 600 && conn_state(c) == CONN_OFFLINE; i++) {
		struct timespec ts = { 0, 10000000L };
		nanosleep(&ts, NULL);
		conn_get_info(c, &ci);
		assert_true(ci.probes <= 1);
	}
	assert_int_equal(conn_state(c), CONN_ONLINE);
	assert_int_equal(atomic_load(&p.calls), 2);
	assert_int_equal(atomic_load(&online_calls), 1);
	/* stopping while offline does not wait for the probe delay */
	conn_set_offline(c, "again");
	conn_free(c);
	assert_int_equal(atomic_load(&p.calls), 2);
}

/* net/http with a conn: failures are reported, and once offline a request
 * is refused before it connects. */
static void test_http_fails_fast_offline(void **state)
{
	(void)state;
	struct http_config cfg = { .backoff_min_ms = 1, .backoff_max_ms = 2, .max_retries = 2 };
	struct http_client *h = NULL;
	struct conn *c = new_conn();
	struct http_request req;
	struct http_response resp;
	char url[64];

	assert_int_equal(http_client_new(&cfg, &h), 0);
	http_client_set_conn(h, c);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", dead_port());
	http_request_init(&req, "GET", url);
	req.idempotent = true;
	req.no_auth = true;

	assert_int_equal(http_request_do(h, &req, &resp), -ECONNREFUSED);
	assert_int_equal(resp.attempts, 3);
	http_response_release(&resp);
	assert_int_equal(conn_state(c), CONN_DEGRADED);
	atomic_fetch_add(&fake_now, CONN_FAIL_SPAN_MS);
	/* the run is long enough now: this request's first failure decides,
	 * and it stops retrying */
	assert_int_equal(http_request_do(h, &req, &resp), -EHOSTDOWN);
	assert_int_equal(resp.attempts, 1);
	assert_int_equal(resp.status, 0);
	http_response_release(&resp);
	assert_int_equal(conn_state(c), CONN_OFFLINE);
	/* offline: refused without an attempt */
	assert_int_equal(http_request_do(h, &req, &resp), -EHOSTDOWN);
	assert_int_equal(resp.attempts, 0);
	http_response_release(&resp);
	/* a probe still goes out (and is not retried) */
	req.probe = true;
	assert_int_equal(http_request_do(h, &req, &resp), -ECONNREFUSED);
	assert_int_equal(resp.attempts, 1);
	http_response_release(&resp);
	http_client_free(h);
	conn_free(c);
}

UNIT_TEST_PROGRAM(arm, disarm,
	cmocka_unit_test(test_starts_online_and_degrades),
	cmocka_unit_test(test_scattered_failures_stay_online),
	cmocka_unit_test(test_run_goes_offline),
	cmocka_unit_test(test_run_confirmed_by_probe),
	cmocka_unit_test(test_back_online_calls_listeners),
	cmocka_unit_test(test_probe_delay),
	cmocka_unit_test(test_probe_thread),
	cmocka_unit_test(test_http_fails_fast_offline),
)
