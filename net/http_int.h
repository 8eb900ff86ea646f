/*
 * net/http_int.h — what the files of the HTTP client share (net/http.c,
 * http_xfer.c, http_retry.c, http_trace.c, http_ca.c): the client and
 * attempt structures, the limits, and the functions one file offers the
 * others. Private to net/http*.c; everyone else uses net/http.h.
 */
#ifndef JOTTAFS_NET_HTTP_INT_H
#define JOTTAFS_NET_HTTP_INT_H

#include "lib/buf.h"
#include "net/http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define HTTP_POOL_MAX          96               /* idle handles kept (each keeps its
						   connections warm): above the upload
						   workers plus the FUSE threads */
#define HTTP_GATE_CEIL         64               /* in-flight limit at which a throttled
						   client is open again */
#define HTTP_DEFAULT_MAX_BODY  (4u << 20)       /* buffered 2xx body cap */
#define HTTP_ERROR_BODY_MAX    (64u << 10)      /* buffered error body cap */
#define HTTP_UPLOAD_BUFSIZE    (2L << 20)       /* CURLOPT_UPLOAD_BUFFERSIZE for fd bodies */
#define HTTP_DOWNLOAD_BUFSIZE  (512L << 10)     /* CURLOPT_BUFFERSIZE for streamed bodies */
#define HTTP_RETRY_AFTER_MAX_MS 60000L          /* cap of an honoured Retry-After */
#define HTTP_CA_BUNDLE_MAX     (16u << 20)      /* system CA bundle size sanity cap */
#define HTTP_CANCEL_POLL_MS    100L             /* cancel flag latency bound */
#define HTTP_IDLE_POLL_MS      1000L            /* socket wait cap otherwise (as curl_easy_perform) */
#define HTTP_SYSTEM_CA_BUNDLE  "/etc/ssl/certs/ca-certificates.crt"

/* A CA bundle in memory, handed to curl with CURL_BLOB_NOCOPY. Retired
 * bundles stay allocated until the client is freed: a handle checked out
 * before a set_cafile() may still point at one. */
struct ca_blob {
	struct ca_blob *next;
	char *cafile;            /* the extra CA file it was built from */
	size_t len;
	char data[];
};

/* A pooled transfer engine: the easy handle and the multi handle that drives
 * it (and keeps its connections). Used by one request at a time. */
struct pooled {
	CURL *h;
	CURLM *m;
};

struct http_client {
	CURLSH *share;
	pthread_mutex_t share_lock[CURL_LOCK_DATA_LAST]; /* one per curl_lock_data */

	pthread_mutex_t pool_lock;
	struct pooled idle[HTTP_POOL_MAX]; /* protected by pool_lock */
	unsigned n_idle;                 /* protected by pool_lock */
	struct http_token_provider tp;   /* protected by pool_lock */
	bool has_tp;                     /* protected by pool_lock */
	struct ca_blob *ca;              /* protected by pool_lock; head = current,
					    NULL when none; ca->data may be "" (none) */

	/* The whole client's answer to "too many requests" (http_retry.c,
	 * "Throttling"). gate_lock is a leaf, held only for these fields. */
	pthread_mutex_t gate_lock;
	pthread_cond_t gate_cv;
	int64_t gate_until_ms;           /* monotonic: no attempt starts before */
	unsigned gate_limit;             /* attempts in flight allowed; 0: no limit */
	unsigned gate_inflight;          /* attempts in flight (all of them) */
	int64_t gate_grow_at_ms;         /* monotonic: the limit doubles then ... */
	int64_t gate_step_ms;            /* ... and every this long after */
	unsigned gate_storms;            /* throttle events (for the log) */

	/* immutable after http_client_new() */
	char *user_agent;
	long connect_timeout_s;
	long low_speed_time_s;
	long retry_budget_ms;
	struct conn *conn;               /* set before threads start; may be NULL */
	int max_retries;
	long backoff_min_ms;
	long backoff_max_ms;
	bool insecure_http;              /* plain http to any host (net/url.h) */
};

/* State of one attempt, shared with the curl callbacks. */
struct xfer {
	CURL *h;
	const struct http_request *req;
	/* response side */
	bool decided;            /* the status of this response is known */
	long status;
	bool to_sink;            /* 2xx body streamed to req->sink */
	bool is_error_body;      /* non-2xx: body buffered up to HTTP_ERROR_BODY_MAX */
	bool error_body_cut;     /* ... and it was longer: transfer cut on purpose */
	struct buf body;         /* buffered body; its max: the cap (set with status) */
	int64_t sink_bytes;
	int cb_err;              /* -errno from a callback that aborted the transfer */
	char *content_range;
	/* request side */
	int64_t up_pos;          /* bytes of the request body handed to curl */
	int64_t up_len;
	int sends;               /* times curl started sending the request (prereq_cb) */
	bool resend_refused;     /* curl wanted to re-send a non-idempotent request */
	bool cancelled;          /* req->cancel was seen set: the transfer was cut */
};

/* ---- http_xfer.c: one attempt ---- */

/* Whether @t may go into an Authorization header (one printable word). */
bool http_token_ok(const char *t);
/* The header list of one attempt (Range, Content-Type, extra headers and
 * the bearer @token, may be NULL). NULL on ENOMEM. */
struct curl_slist *http_build_headers(const struct http_request *req, const char *token);
/* Wipe (it may hold a token) and free a header list. */
void http_free_headers(struct curl_slist *l);
/* Set every option of the attempt @x on @h. CURLE_OK or the first failure. */
CURLcode http_setup_handle(struct http_client *c, CURL *h, struct xfer *x,
			   struct curl_slist *hdrs, struct ca_blob *ca, char *errbuf);
/* Run the transfer set up on @p->h to its end on this thread, watching
 * x->req->cancel. curl's result; CURLE_ABORTED_BY_CALLBACK with
 * x->cancelled for a cancel. */
CURLcode http_run_transfer(const struct pooled *p, struct xfer *x);

/* ---- http_retry.c: what follows an attempt ---- */

enum http_step { HTTP_STEP_DONE, HTTP_STEP_REFRESH, HTTP_STEP_RETRY };

/*
 * What follows an attempt: done (*result set), a token refresh and re-send,
 * or a retry after *delay_ms. Before a retry of a transfer that already fed
 * the sink, the sink is reset (no reset hook: not retried).
 */
enum http_step http_next_step(const struct http_client *c, const struct http_request *req,
			      const struct xfer *x, CURLcode rc, bool http_done, long status,
			      long retry_after_s, bool can_refresh, int retries, int *result,
			      long *delay_ms);
/* Sleep @ms, in slices of HTTP_CANCEL_POLL_MS when @cancel (may be NULL)
 * can cut it short. True when @cancel was seen set. */
bool http_sleep_cancellable(long ms, const atomic_bool *cancel);
/* Set up / tear down the throttle gate of @c. */
void http_gate_init(struct http_client *c);
void http_gate_destroy(struct http_client *c);
/* Wait until the throttle gate lets one more attempt start, and count it
 * in flight. 0, or -ECANCELED when @cancel (may be NULL) was set. */
int http_gate_enter(struct http_client *c, const atomic_bool *cancel);
/* An attempt that entered the gate ended: @throttled (a 429, or a 503 with
 * Retry-After) closes the gate to every attempt for @delay_ms and cuts the
 * in-flight limit; a success (@ok) raises the limit again. */
void http_gate_leave(struct http_client *c, bool throttled, bool ok, long delay_ms);

/* ---- http_trace.c: debug lines without secrets ---- */

/* The URL as it may appear in a debug line (see http_trace.c); malloc'd or NULL. */
char *http_trace_url(const char *url, bool secret);
/* One debug line per attempt (the caller checked the level). */
void http_trace_attempt(const struct http_request *req, const char *turl,
			const struct xfer *x, CURLcode rc, bool http_done, long status,
			const char *errbuf, long ms, bool retry);

#endif
