/*
 * tests/unit/test_http.c — net/http: the pure mappings (status and curl
 * errors to errno, escaping, backoff bounds) and real requests against a
 * scripted HTTP/1.1 server (testsrv.h) running on a thread of this test
 * (answers taken in order from a script, requests recorded).
 */
#include "net/http.h"

#include "lib/log.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testsrv.h"

/* ---------------------------------------------------------------------- */
/* The scripted server: answers taken in order, requests recorded          */

struct canned {
	int status;
	const char *headers;     /* extra header lines, each ending in \r\n, or NULL */
	const char *body;        /* NULL: empty */
	size_t body_len;         /* 0: strlen(body) */
	size_t send_only;        /* >0: declare body_len but send only this many, then close */
};

/* canned answers: R(status, extra headers, body), RB(... body, len, send_only) */
#define R(st, hd, bd) { .status = (st), .headers = (hd), .body = (bd) }
#define RB(st, hd, bd, len, cut) \
	{ .status = (st), .headers = (hd), .body = (bd), .body_len = (len), .send_only = (cut) }

#define MAX_REQ 16
struct recorded {
	char head[8192];         /* request line and headers */
	char *body;
	size_t body_len;
};

struct server {
	struct testsrv *srv;
	int port;
	const struct canned *script;
	int n_script;
	int served;
	struct recorded req[MAX_REQ];
	char url[128];
};

static void script_handler(void *ctx, const struct testsrv_req *rq, struct testsrv_resp *rs)
{
	struct server *s = ctx;
	struct recorded *r = &s->req[s->served < MAX_REQ ? s->served : MAX_REQ - 1];
	memcpy(r->head, rq->head, sizeof(r->head));
	free(r->body);
	r->body = malloc(rq->body_len + 1);
	memcpy(r->body, rq->body, rq->body_len + 1);
	r->body_len = rq->body_len;
	const struct canned *c = &s->script[s->served < s->n_script ? s->served : s->n_script - 1];
	s->served++;
	rs->status = c->status;
	snprintf(rs->headers, sizeof(rs->headers), "%s", c->headers ? c->headers : "");
	rs->body = c->body;
	rs->body_len = c->body_len;
	rs->send_only = c->send_only;
}

static struct server *server_start(const struct canned *script, int n)
{
	struct server *s = calloc(1, sizeof(*s));
	s->script = script;
	s->n_script = n;
	s->srv = testsrv_start(script_handler, s);
	assert_non_null(s->srv);
	s->port = s->srv->port;
	snprintf(s->url, sizeof(s->url), "%s/x", s->srv->url);
	return s;
}

static void server_stop(struct server *s)
{
	testsrv_stop(s->srv);
	for (int i = 0; i < MAX_REQ; i++)
		free(s->req[i].body);
	free(s);
}

/* A client with tiny backoffs so retries are fast. */
static struct http_client *fast_client(void)
{
	struct http_config cfg = { .backoff_min_ms = 1, .backoff_max_ms = 5, .max_retries = 3 };
	struct http_client *c = NULL;
	assert_int_equal(http_client_new(&cfg, &c), 0);
	return c;
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---------------------------------------------------------------------- */
/* Pure functions                                                         */

static void test_status_errno(void **state)
{
	static const struct { long status; int err; } v[] = {
		{ 200, 0 }, { 201, 0 }, { 204, 0 }, { 206, 0 },
		{ 400, -EINVAL }, { 401, -EACCES }, { 403, -EACCES }, { 404, -ENOENT },
		{ 410, -ENOENT }, { 409, -EEXIST }, { 412, -EAGAIN }, { 413, -ENOSPC },
		{ 507, -ENOSPC }, { 416, -EINVAL }, { 420, -EAGAIN }, { 429, -EAGAIN },
		{ 500, -EIO }, { 502, -EIO }, { 503, -EIO }, { 504, -EIO }, { 509, -EIO },
		{ 0, -EIO }, { 302, -EIO }, { 418, -EIO },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		if (http_status_errno(v[i].status) != v[i].err)
			fail_msg("status %ld: got %d want %d", v[i].status,
				 http_status_errno(v[i].status), v[i].err);
	}
}

static void test_transport_errno(void **state)
{
	assert_int_equal(http_transport_errno(CURLE_OK), 0);
	assert_int_equal(http_transport_errno(CURLE_COULDNT_RESOLVE_HOST), -EHOSTUNREACH);
	assert_int_equal(http_transport_errno(CURLE_COULDNT_CONNECT), -ECONNREFUSED);
	assert_int_equal(http_transport_errno(CURLE_OPERATION_TIMEDOUT), -ETIMEDOUT);
	assert_int_equal(http_transport_errno(CURLE_PEER_FAILED_VERIFICATION), -EPROTO);
	assert_int_equal(http_transport_errno(CURLE_SSL_CONNECT_ERROR), -EPROTO);
	assert_int_equal(http_transport_errno(CURLE_SSL_CACERT_BADFILE), -EPROTO);
	assert_int_equal(http_transport_errno(CURLE_PARTIAL_FILE), -EIO);
	assert_int_equal(http_transport_errno(CURLE_RECV_ERROR), -EIO);
	assert_int_equal(http_transport_errno(CURLE_GOT_NOTHING), -EIO);
}

static void test_escape(void **state)
{
	static const struct { const char *in; const char *out; } v[] = {
		{ "plain-._~AZaz09", "plain-._~AZaz09" },
		{ "a b", "a%20b" },
		{ "a+b;c%d/e", "a%2Bb%3Bc%25d%2Fe" },
		{ "\xc3\xa6\xc3\xb8", "%C3%A6%C3%B8" },
		{ "?&=#", "%3F%26%3D%23" },
		{ "", "" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char *e = http_escape(v[i].in, strlen(v[i].in));
		assert_non_null(e);
		assert_string_equal(e, v[i].out);
		free(e);
	}
	/* embedded NUL is escaped, not a terminator */
	char *e = http_escape("a\0b", 3);
	assert_string_equal(e, "a%00b");
	free(e);
}

static void test_backoff_bounds(void **state)
{
	/* ceiling = min(max, min * 2^attempt); rnd picks in [0, ceiling] */
	assert_int_equal(http_backoff_ms(100, 16000, 0, 100), 100);
	assert_int_equal(http_backoff_ms(100, 16000, 0, 101), 0);
	assert_int_equal(http_backoff_ms(100, 16000, 3, 800), 800);
	assert_int_equal(http_backoff_ms(100, 16000, 3, 801), 0);
	assert_int_equal(http_backoff_ms(100, 16000, 8, 16000), 16000);
	assert_int_equal(http_backoff_ms(100, 16000, 8, 16001), 0);
	for (unsigned a = 0; a < 200; a++) {
		long ceiling = 100;
		for (unsigned i = 0; i < a && ceiling < 16000; i++)
			ceiling *= 2;
		if (ceiling > 16000)
			ceiling = 16000;
		for (int k = 0; k < 200; k++) {
			uint64_t rnd = ((uint64_t)rand() << 33) ^ ((uint64_t)rand() << 2) ^ (uint64_t)k;
			long d = http_backoff_ms(100, 16000, a, rnd);
			assert_true(d >= 0 && d <= ceiling);
		}
		assert_int_equal(http_backoff_ms(100, 16000, a, UINT64_MAX) <= 16000, 1);
	}
	/* degenerate configurations stay sane */
	assert_true(http_backoff_ms(0, 0, 5, 12345) <= 1);
	assert_true(http_backoff_ms(LONG_MAX / 2, LONG_MAX, 60, UINT64_MAX) <= LONG_MAX);
}

/* ---------------------------------------------------------------------- */
/* Requests                                                               */

static void test_retry_503_then_success(void **state)
{
	static const struct canned script[] = {
		R(503, NULL, "busy"), R(503, NULL, "busy"), R(200, NULL, "hello"),
	};
	struct server *s = server_start(script, 3);
	struct http_client *c = fast_client();
	struct http_request req;
	struct http_response resp;
	http_request_init(&req, "GET", s->url);
	req.idempotent = true;
	assert_int_equal(http_request_do(c, &req, &resp), 0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(resp.attempts, 3);
	assert_string_equal(resp.body, "hello");
	assert_int_equal(s->served, 3);
	http_response_release(&resp);
	http_client_free(c);
	server_stop(s);
}

static void test_retries_exhausted(void **state)
{
	static const struct canned script[] = { R(502, NULL, "bad gateway") };
	struct server *s = server_start(script, 1);
	struct http_client *c = fast_client(); /* max_retries 3 */
	struct http_request req;
	struct http_response resp;
	http_request_init(&req, "GET", s->url);
	req.idempotent = true;
	assert_int_equal(http_request_do(c, &req, &resp), -EIO);
	assert_int_equal(resp.status, 502);
	assert_int_equal(resp.attempts, 4);
	assert_string_equal(resp.body, "bad gateway"); /* error body buffered */
	http_response_release(&resp);
	http_client_free(c);
	server_stop(s);
}

static void test_no_retry_on_post(void **state)
{
	static const struct canned script[] = { R(503, NULL, "busy"), R(200, NULL, "ok") };
	struct server *s = server_start(script, 2);
	struct http_client *c = fast_client();
	struct http_request req;
	struct http_response resp;
	http_request_init(&req, "POST", s->url);
	req.body = "payload";
	req.body_len = 7;
	assert_int_equal(http_request_do(c, &req, &resp), -EIO);
	assert_int_equal(resp.status, 503);
	assert_int_equal(resp.attempts, 1);
	assert_int_equal(s->served, 1);
	assert_string_equal(s->req[0].body, "payload");
	/* no Content-Type unless asked for (curl would add a form type) */
	assert_null(strcasestr(s->req[0].head, "Content-Type"));
	http_response_release(&resp);
	http_client_free(c);
	server_stop(s);
}

static void test_429_retried_even_for_post(void **state)
{
	static const struct canned script[] = { R(429, NULL, "slow down"), R(201, NULL, "ok") };
	struct server *s = server_start(script, 2);
	struct http_client *c = fast_client();
	struct http_request req;
	http_request_init(&req, "POST", s->url);
	assert_int_equal(http_request_do(c, &req, NULL), 0);
	assert_int_equal(s->served, 2);
	assert_non_null(strcasestr(s->req[0].head, "Content-Length: 0"));
	http_client_free(c);
	server_stop(s);
}

struct fake_tp {
	int calls;
	int forced;
	int fail_with;
	const char *evil;        /* hand out this token instead */
};

static int fake_get_token(void *ctx, bool force, char **token)
{
	struct fake_tp *t = ctx;
	t->calls++;
	if (force)
		t->forced++;
	if (t->fail_with)
		return t->fail_with;
	if (t->evil) {
		*token = strdup(t->evil);
		return 0;
	}
	*token = strdup(t->forced ? "fresh-token" : "stale-token");
	return 0;
}

static void test_401_refresh_once(void **state)
{
	static const struct canned script[] = { R(401, NULL, "<error/>"), R(200, NULL, "ok") };
	struct server *s = server_start(script, 2);
	struct http_client *c = fast_client();
	struct fake_tp ft = { 0 };
	struct http_token_provider tp = { fake_get_token, &ft };
	http_client_set_token_provider(c, &tp);
	struct http_request req;
	http_request_init(&req, "POST", s->url); /* not idempotent: 401 retry still ok */
	assert_int_equal(http_request_do(c, &req, NULL), 0);
	assert_int_equal(ft.calls, 2);
	assert_int_equal(ft.forced, 1);
	assert_non_null(strstr(s->req[0].head, "Authorization: Bearer stale-token\r\n"));
	assert_non_null(strstr(s->req[1].head, "Authorization: Bearer fresh-token\r\n"));
	http_client_free(c);
	server_stop(s);
}

static void test_401_twice_is_eacces(void **state)
{
	static const struct canned script[] = { R(401, NULL, "no") };
	struct server *s = server_start(script, 1);
	struct http_client *c = fast_client();
	struct fake_tp ft = { 0 };
	struct http_token_provider tp = { fake_get_token, &ft };
	http_client_set_token_provider(c, &tp);
	struct http_request req;
	struct http_response resp;
	http_request_init(&req, "GET", s->url);
	req.idempotent = true;
	assert_int_equal(http_request_do(c, &req, &resp), -EACCES);
	assert_int_equal(resp.attempts, 2);
	assert_int_equal(ft.forced, 1);
	http_response_release(&resp);
	http_client_free(c);
	server_stop(s);
}

static void test_no_auth_and_dead_login(void **state)
{
	static const struct canned script[] = { R(200, NULL, "ok") };
	struct server *s = server_start(script, 1);
	struct http_client *c = fast_client();
	struct fake_tp ft = { .fail_with = -EKEYREJECTED };
	struct http_token_provider tp = { fake_get_token, &ft };
	http_client_set_token_provider(c, &tp);
	struct http_request req;
	http_request_init(&req, "GET", s->url);
	/* the provider says the login is dead: nothing is sent */
	assert_int_equal(http_request_do(c, &req, NULL), -EKEYREJECTED);
	assert_int_equal(s->served, 0);
	/* a token that would inject a header line is refused, nothing sent */
	ft.fail_with = 0;
	ft.evil = "abc\r\nX-Injected: 1";
	assert_int_equal(http_request_do(c, &req, NULL), -EIO);
	assert_int_equal(s->served, 0);
	/* no_auth requests do not ask the provider */
	req.no_auth = true;
	assert_int_equal(http_request_do(c, &req, NULL), 0);
	assert_int_equal(ft.calls, 2);
	assert_null(strcasestr(s->req[0].head, "Authorization"));
	http_client_free(c);
	server_stop(s);
}

static void test_retry_after(void **state)
{
	static const struct canned script[] = {
		R(503, "Retry-After: 1\r\n", "wait"), R(200, NULL, "ok"),
	};
	struct server *s = server_start(script, 2);
	struct http_client *c = fast_client(); /* backoff <= 5 ms */
	struct http_request req;
	http_request_init(&req, "GET", s->url);
	req.idempotent = true;
	long t0 = now_ms();
	assert_int_equal(http_request_do(c, &req, NULL), 0);
	long dt = now_ms() - t0;
	assert_true(dt >= 1000);
	assert_true(dt < 5000);
	http_client_free(c);
	server_stop(s);
}

static void test_body_cap(void **state)
{
	static char big[100000];
	memset(big, 'x', sizeof(big));
	static const struct canned script[] = {
		RB(200, NULL, big, sizeof(big), 0), RB(500, NULL, big, sizeof(big), 0),
	};
	struct server *s = server_start(script, 2);
	struct http_client *c = fast_client();
	struct http_request req;
	struct http_response resp;
	http_request_init(&req, "GET", s->url);
	req.max_body = 1000;
	assert_int_equal(http_request_do(c, &req, &resp), -EIO);
	assert_true(resp.body_len <= 1000);
	http_response_release(&resp);
	/* an error body is kept up to 64 KiB, never more, and the status stands */
	http_request_init(&req, "GET", s->url);
	assert_int_equal(http_request_do(c, &req, &resp), -EIO);
	assert_int_equal(resp.status, 500);
	assert_int_equal(resp.body_len, 64 * 1024);
	assert_int_equal(resp.attempts, 1);
	http_response_release(&resp);
	http_client_free(c);
	server_stop(s);
}

struct test_sink {
	char buf[256];
	size_t len;
	int resets;
};

static int sink_write(void *ctx, const void *data, size_t len)
{
	struct test_sink *t = ctx;
	if (t->len + len > sizeof(t->buf))
		return -EOVERFLOW;
	memcpy(t->buf + t->len, data, len);
	t->len += len;
	return 0;
}

static int sink_reset(void *ctx)
{
	struct test_sink *t = ctx;
	t->len = 0;
	t->resets++;
	return 0;
}

static void test_sink_reset_on_retry(void **state)
{
	static const char body[] = "0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ";
	static const struct canned script[] = {
		RB(200, NULL, body, sizeof(body) - 1, 20), /* cut after 20 bytes */
		RB(200, NULL, body, sizeof(body) - 1, 0),
	};
	struct server *s = server_start(script, 2);
	struct http_client *c = fast_client();
	struct test_sink ts = { .len = 0 };
	struct http_sink sink = { .write = sink_write, .reset = sink_reset, .ctx = &ts };
	struct http_request req;
	struct http_response resp;
	http_request_init(&req, "GET", s->url);
	req.idempotent = true;
	req.sink = &sink;
	assert_int_equal(http_request_do(c, &req, &resp), 0);
	assert_int_equal(ts.resets, 1);
	assert_int_equal(ts.len, sizeof(body) - 1);
	assert_memory_equal(ts.buf, body, sizeof(body) - 1);
	assert_int_equal(resp.bytes_received, sizeof(body) - 1);
	assert_null(resp.body);
	http_response_release(&resp);
	http_client_free(c);
	server_stop(s);
}

static void test_sink_without_reset_not_retried(void **state)
{
	static const char body[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	static const struct canned script[] = {
		RB(200, NULL, body, sizeof(body) - 1, 10), R(200, NULL, body),
	};
	struct server *s = server_start(script, 2);
	struct http_client *c = fast_client();
	struct test_sink ts = { .len = 0 };
	struct http_sink sink = { .write = sink_write, .ctx = &ts };
	struct http_request req;
	struct http_response resp;
	http_request_init(&req, "GET", s->url);
	req.idempotent = true;
	req.sink = &sink;
	assert_int_equal(http_request_do(c, &req, &resp), -EIO);
	assert_int_equal(resp.bytes_received, 10);
	assert_int_equal(ts.len, 10);
	assert_int_equal(s->served, 1);
	assert_non_null(resp.transport_error);
	http_response_release(&resp);
	http_client_free(c);
	server_stop(s);
}

static void test_sink_error_aborts(void **state)
{
	static char big[1000];
	memset(big, 'y', sizeof(big));
	static const struct canned script[] = { RB(200, NULL, big, sizeof(big), 0) };
	struct server *s = server_start(script, 1);
	struct http_client *c = fast_client();
	struct test_sink ts = { .len = 0 }; /* 256-byte sink: -EOVERFLOW */
	struct http_sink sink = { .write = sink_write, .reset = sink_reset, .ctx = &ts };
	struct http_request req;
	http_request_init(&req, "GET", s->url);
	req.idempotent = true;
	req.sink = &sink;
	assert_int_equal(http_request_do(c, &req, NULL), -EOVERFLOW);
	assert_int_equal(ts.resets, 0);
	http_client_free(c);
	server_stop(s);
}

struct begin_sink {
	struct test_sink ts;
	int begins;
	long status;
	char range[64];
	int refuse;
};

static int begin_cb(void *ctx, long status, const char *content_range)
{
	struct begin_sink *b = ctx;
	b->begins++;
	b->status = status;
	snprintf(b->range, sizeof(b->range), "%s", content_range ? content_range : "(null)");
	return b->refuse;
}

static int begin_write(void *ctx, const void *data, size_t len)
{
	struct begin_sink *b = ctx;
	assert_int_equal(b->begins, 1); /* begin() always comes first */
	return sink_write(&b->ts, data, len);
}

/* http_sink.begin sees status and Content-Range before any byte, can refuse
 * the response, and is called for an empty 2xx body too. */
static void test_sink_begin(void **state)
{
	static const struct canned script[] = {
		R(206, "Content-Range: bytes 0-4/10\r\n", "01234"),
		R(200, NULL, "0123456789"),
		R(204, NULL, NULL),
	};
	struct server *s = server_start(script, 3);
	struct http_client *c = fast_client();
	struct begin_sink b = { .refuse = 0 };
	struct http_sink sink = { .write = begin_write, .begin = begin_cb, .ctx = &b };
	struct http_request req;
	http_request_init(&req, "GET", s->url);
	req.range_first = 0;
	req.range_last = 4;
	req.sink = &sink;
	assert_int_equal(http_request_do(c, &req, NULL), 0);
	assert_int_equal(b.begins, 1);
	assert_int_equal(b.status, 206);
	assert_string_equal(b.range, "bytes 0-4/10");
	assert_int_equal(b.ts.len, 5);

	memset(&b, 0, sizeof(b));
	b.refuse = -EIO; /* a 200 to a ranged request: refused, nothing written */
	assert_int_equal(http_request_do(c, &req, NULL), -EIO);
	assert_int_equal(b.begins, 1);
	assert_int_equal(b.status, 200);
	assert_string_equal(b.range, "(null)");
	assert_int_equal(b.ts.len, 0);

	memset(&b, 0, sizeof(b));
	assert_int_equal(http_request_do(c, &req, NULL), 0);
	assert_int_equal(b.begins, 1);
	assert_int_equal(b.status, 204);
	http_client_free(c);
	server_stop(s);
}

static void test_body_from_fd_and_range(void **state)
{
	static const struct canned script[] = {
		R(200, NULL, "{}"),
		R(206, "Content-Range: bytes 5-9/100\r\n", "56789"),
	};
	struct server *s = server_start(script, 2);
	struct http_client *c = fast_client();
	char path[] = "/tmp/jottafs-test-http-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, "0123456789", 10), 10);

	struct http_request req;
	struct http_response resp;
	http_request_init(&req, "POST", s->url);
	req.body_fd = fd;
	req.body_fd_off = 3;
	req.body_fd_len = 5;
	req.content_type = "application/octet-stream";
	assert_int_equal(http_request_do(c, &req, &resp), 0);
	assert_int_equal(s->req[0].body_len, 5);
	assert_memory_equal(s->req[0].body, "34567", 5);
	assert_non_null(strstr(s->req[0].head, "Content-Type: application/octet-stream\r\n"));
	http_response_release(&resp);

	http_request_init(&req, "GET", s->url);
	req.range_first = 5;
	req.range_last = 9;
	assert_int_equal(http_request_do(c, &req, &resp), 0);
	assert_non_null(strstr(s->req[1].head, "Range: bytes=5-9\r\n"));
	assert_int_equal(resp.status, 206);
	assert_string_equal(resp.content_range, "bytes 5-9/100");
	assert_string_equal(resp.body, "56789");
	http_response_release(&resp);
	close(fd);
	http_client_free(c);
	server_stop(s);
}

static void test_connection_refused(void **state)
{
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", testsrv_dead_port());

	struct http_client *c = fast_client();
	struct http_request req;
	struct http_response resp;
	http_request_init(&req, "POST", url);
	assert_int_equal(http_request_do(c, &req, &resp), -ECONNREFUSED);
	assert_int_equal(resp.status, 0);
	assert_int_equal(resp.attempts, 4); /* nothing was sent: retried even for POST */
	assert_non_null(resp.transport_error);
	http_response_release(&resp);
	http_client_free(c);
}

static void test_bad_cafile(void **state)
{
	struct http_client *c = NULL;
	struct http_config cfg = { .cafile = "/nonexistent/ca.pem" };
	assert_int_equal(http_client_new(&cfg, &c), -ENOENT);
	char path[] = "/tmp/jottafs-test-ca-XXXXXX";
	int fd = mkstemp(path);
	assert_int_equal(write(fd, "not a cert\n", 11), 11);
	close(fd);
	cfg.cafile = path;
	assert_int_equal(http_client_new(&cfg, &c), -EINVAL);
	unlink(path);
}

/* The debug trace shows method, URL, status and sizes, but never the bearer
 * token, a secret query value or a secret body. */
static void test_trace_redaction(void **state)
{
	static const struct canned script[] = { R(400, NULL, "{\"error\":\"sekrit-error\"}") };
	struct server *s = server_start(script, 1);
	struct http_client *c = fast_client();
	struct fake_tp ft = { 0 };
	struct http_token_provider tp = { fake_get_token, &ft };
	http_client_set_token_provider(c, &tp);

	char logpath[] = "/tmp/jottafs-test-log-XXXXXX";
	int lfd = mkstemp(logpath);
	unlink(logpath);
	int saved = dup(STDERR_FILENO);
	dup2(lfd, STDERR_FILENO);
	log_setup(LOG_LVL_DEBUG, false);

	char url[256];
	snprintf(url, sizeof(url), "http://user:pw@127.0.0.1:%d/t?refresh_token=abc&mode=bin", s->port);
	struct http_request req;
	http_request_init(&req, "POST", url);
	req.body = "password=hunter2";
	req.body_len = strlen(req.body);
	req.secret_body = true;
	assert_int_equal(http_request_do(c, &req, NULL), -EINVAL);

	log_setup(LOG_LVL_INFO, false);
	dup2(saved, STDERR_FILENO);
	close(saved);
	char buf[8192] = { 0 };
	assert_true(pread(lfd, buf, sizeof(buf) - 1, 0) > 0);
	close(lfd);
	assert_non_null(strstr(buf, "POST http://127.0.0.1:"));
	assert_non_null(strstr(buf, "-> 400"));
	assert_non_null(strstr(buf, "refresh_token=***"));
	assert_null(strstr(buf, "mode=bin")); /* secret request: every query value hidden */
	assert_null(strstr(buf, "stale-token"));
	assert_null(strstr(buf, "Bearer"));
	assert_null(strstr(buf, "hunter2"));
	assert_null(strstr(buf, "sekrit"));
	assert_null(strstr(buf, "pw@"));
	http_client_free(c);
	server_stop(s);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_errno),
		cmocka_unit_test(test_transport_errno),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_backoff_bounds),
		cmocka_unit_test(test_retry_503_then_success),
		cmocka_unit_test(test_retries_exhausted),
		cmocka_unit_test(test_no_retry_on_post),
		cmocka_unit_test(test_429_retried_even_for_post),
		cmocka_unit_test(test_401_refresh_once),
		cmocka_unit_test(test_401_twice_is_eacces),
		cmocka_unit_test(test_no_auth_and_dead_login),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_body_cap),
		cmocka_unit_test(test_sink_reset_on_retry),
		cmocka_unit_test(test_sink_without_reset_not_retried),
		cmocka_unit_test(test_sink_error_aborts),
		cmocka_unit_test(test_sink_begin),
		cmocka_unit_test(test_body_from_fd_and_range),
		cmocka_unit_test(test_connection_refused),
		cmocka_unit_test(test_bad_cafile),
		cmocka_unit_test(test_trace_redaction),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
