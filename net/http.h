/*
 * net/http.h — the HTTP client every network call goes through.
 *
 * A pool of libcurl easy handles, each driven by its own multi handle on the
 * calling thread (keep-alive, HTTP/1.1 and HTTP/2 over TLS),
 * with a CURLSH sharing the DNS cache and TLS sessions under real locks.
 * This module is the only place that:
 *   - retries: capped exponential backoff with jitter on 429, 5xx and
 *     transport errors, for idempotent requests only; Retry-After honoured.
 *     A request that is not idempotent is re-sent only when nothing of it
 *     was sent (connect failure) or the server answered that it did no work
 *     (401 before the refresh, 429); in particular libcurl's own silent
 *     re-send on a fresh connection (after a reused one died) is refused,
 *     and the cut is reported (-EIO) so the caller can find out what the
 *     server kept;
 *   - aborts a request on demand (http_request.cancel, -ECANCELED);
 *   - refreshes on 401: once per request, through the token provider;
 *   - maps HTTP statuses and curl errors to negative errno: the one wire ->
 *     errno table (http_status_errno_or, http_transport_errno);
 *   - refuses, before anything is sent, a URL that net/url.h refuses, and a
 *     plain http:// URL to a host that is not loopback unless the client was
 *     made with insecure_http (-EPERM), wherever the URL came from (an
 *     option, the account file, a server's upload_url);
 *   - traces requests at debug level, with Authorization and token-bearing
 *     bodies left out and error bodies passed through redact_text()
 *     (lib/redact.h: capped, credentials replaced).
 *
 * Threads: an http_client is shared by all threads; each request checks a
 * handle out of the pool for its duration. No lock is held across I/O.
 * curl_global_init() is done by http_client_new(); create the client before
 * starting threads.
 */
#ifndef JOTTAFS_NET_HTTP_H
#define JOTTAFS_NET_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct http_client;

/*
 * Supplies bearer tokens. get_token() stores a malloc'd access token in
 * *token (caller frees). @force is true after the server refused the last
 * token with 401: the provider must refresh rather than hand out the cached
 * one. Returns 0 or -errno; -EKEYREJECTED means the login is dead (refresh
 * token refused, invalid_grant) and the user must log in again.
 */
struct http_token_provider {
	int (*get_token)(void *ctx, bool force, char **token);
	void *ctx;
};

struct http_config {
	const char *cafile;        /* extra CA bundle (PEM) trusted besides the system's, or NULL */
	const char *user_agent;    /* NULL: "jottafs/<version>" */
	long connect_timeout_s;    /* 0: 10 s */
	long low_speed_time_s;     /* abort a transfer slower than 1 byte/s for this long (this
				      bounds the wait for the first byte of the answer too); 0: 30 s */
	int max_retries;           /* retries of an idempotent request; 0: 8; <0: none */
	long retry_budget_ms;      /* no retry starts later than this after the request
				      began; 0: 60000 */
	long backoff_max_ms;       /* backoff cap; 0: 16000 ms */
	long backoff_min_ms;       /* first backoff; 0: 100 ms */
	bool insecure_http;        /* -o insecure_http: plain http:// to hosts that are not
				      loopback is allowed (net/url.h); else such a request
				      fails with -EPERM before anything is sent */
};

/*
 * Receives a 2xx response body as it arrives (streaming). write() returns 0,
 * or -errno to abort the transfer (that error is returned by the request).
 * reset(), when not NULL, is called before a retry of a request that already
 * delivered bytes to write(), so the sink can start over (e.g. restart an XML
 * parser); when NULL, such a request is not retried and the transport error
 * is returned (the caller knows how many bytes it got).
 */
struct http_sink {
	int (*write)(void *ctx, const void *data, size_t len);
	int (*reset)(void *ctx);
	void *ctx;
	/*
	 * Optional (NULL: not called); for ranged downloads (net/jfs).
	 * Called once per attempt when the final response is a 2xx, after its
	 * headers and BEFORE the first write() (for an empty body: before the
	 * request returns). @status is the HTTP status, @content_range the
	 * Content-Range header value or NULL (valid during the call only).
	 * Return 0, or -errno to abort the transfer (that error is returned by
	 * the request). Lets a ranged download refuse a 200 or a wrong range
	 * before a single wrong byte reaches write().
	 */
	int (*begin)(void *ctx, long status, const char *content_range);
};

struct http_request {
	const char *method;              /* "GET", "POST", ... */
	const char *url;                 /* absolute, already escaped */
	const char *const *headers;      /* extra "Name: value" lines, NULL-terminated, or NULL */
	const char *content_type;        /* NULL: no Content-Type header */
	const void *body;                /* request body in memory, or NULL */
	size_t body_len;
	int body_fd;                     /* or: body read from this fd (pread), -1: none */
	off_t body_fd_off;               /*     from this offset */
	off_t body_fd_len;               /*     this many bytes */
	int64_t range_first;             /* >= 0: send "Range: bytes=first-last" */
	int64_t range_last;
	bool idempotent;                 /* may be retried on transport errors, 429 and 5xx */
	bool no_auth;                    /* do not ask the token provider / send Authorization */
	bool secret_body;                /* never trace the request or response body */
	const struct http_sink *sink;    /* 2xx body goes here; NULL: buffered in the response */
	size_t max_body;                 /* cap of a buffered body; 0: 4 MiB; larger: -EIO */
	/*
	 * Optional (NULL: never). Polled while the request runs, at least
	 * every 100 ms whatever the transfer is doing (resolving, connecting,
	 * sending, waiting, receiving) and during retry backoff sleeps; once
	 * it reads true the transfer is cut (its HTTP/1.1 connection closed,
	 * or its HTTP/2 stream reset) and the request returns -ECANCELED,
	 * never retried. A request that completed before the flag was seen
	 * returns its normal result.
	 */
	const atomic_bool *cancel;
	/*
	 * Connectivity (net/conn.h): a probe goes out even while the
	 * client's connectivity state is offline, and is never retried.
	 */
	bool probe;
	/* Optional: receives the bytes of the body sent so far in the
	 * current attempt (progress reports). */
	_Atomic int64_t *sent;
};

/* Set up a request with the defaults (GET, no body, no range, body_fd -1). */
void http_request_init(struct http_request *req, const char *method, const char *url);

struct http_response {
	long status;          /* final HTTP status; 0 when no response was received */
	char *body;           /* buffered body, NUL-terminated (error bodies are always buffered, capped) */
	size_t body_len;
	long retry_after_s;   /* Retry-After of the final response, or -1 */
	int64_t bytes_received; /* body bytes delivered to the sink */
	char *content_range;  /* Content-Range header of the final response (malloc'd), or NULL */
	char *transport_error;/* curl's one-line reason when no HTTP status was received
				 (e.g. "Connection refused"), malloc'd, or NULL */
	int attempts;         /* HTTP exchanges made (retries and the 401 refresh included) */
};

/*
 * Perform @req. Returns 0 when the final status is 2xx; otherwise -errno
 * (http_status_errno() of the status, or the mapped transport error). @resp
 * (may be NULL) is filled in either case and must be released with
 * http_response_release().
 */
int http_request_do(struct http_client *c, const struct http_request *req,
		    struct http_response *resp);
void http_response_release(struct http_response *resp);

int http_client_new(const struct http_config *cfg, struct http_client **out);
/* The provider is copied; set it before requests that need auth. */
void http_client_set_token_provider(struct http_client *c, const struct http_token_provider *tp);
void http_client_free(struct http_client *c);

/*
 * Connectivity (net/conn.h): every exchange is reported to @conn, and
 * while it is offline every request but a probe fails at once with
 * -EHOSTDOWN, without touching the network; a request whose retries see it
 * go offline stops retrying with -EHOSTDOWN (its response then has status
 * 0). NULL (the default): no such checks. Set before requests run on other
 * threads; @conn must outlive the client's use.
 */
struct conn;
void http_client_set_conn(struct http_client *c, struct conn *conn);

/*
 * The one wire -> errno table (net/http_errno.c). http_status_errno_or():
 * the errno a failing HTTP status (or the JFS <code> of an error document)
 * stands for: 400 -EINVAL, 401/403 -EACCES, 404/410 -ENOENT, 408
 * -ETIMEDOUT, 409 -EEXIST, 412/420/429 -EAGAIN (420: the service got fewer
 * bytes than allocated; re-allocate), 413/507 -ENOSPC, 414 -ENAMETOOLONG,
 * 416 -EINVAL; @other for a status the table does not name (5xx, 2xx,
 * other 1xx/3xx/4xx, 0). Error decoders that read a body (jfs_json,
 * jfs_xml) decide from what the body names first, then from this table.
 * http_status_errno(): 0 for 2xx, else http_status_errno_or(status, -EIO).
 */
int http_status_errno_or(long status, int other);
int http_status_errno(long status);

/*
 * The one place curl transport errors (a CURLcode, passed as int so this
 * header needs no curl include) become errno: resolve/connect failures
 * -EHOSTUNREACH/-ECONNREFUSED, timeouts -ETIMEDOUT, TLS failures -EPROTO,
 * truncated or broken transfers -EIO.
 */
int http_transport_errno(int curl_code);

/*
 * Backoff before retry number @attempt (0 = first retry): a uniformly random
 * delay in [0, min(max_ms, min_ms * 2^attempt)] ("full jitter") drawn from
 * @rnd. Pure; exposed for tests.
 */
long http_backoff_ms(long min_ms, long max_ms, unsigned attempt, uint64_t rnd);

/*
 * The delay before a retry the server answered with
 * Retry-After @retry_after_s seconds (libcurl decodes the header, seconds
 * or an HTTP date, into this number; <= 0: none, or in the past): that
 * time, capped at 60 s, plus up to a quarter of it as jitter drawn from
 * @rnd; without one, @backoff_ms (http_backoff_ms()). Pure; exposed for
 * tests and fuzzing.
 */
long http_retry_delay_ms(long retry_after_s, long backoff_ms, uint64_t rnd);

/*
 * The value of header @name (matched case-insensitively)
 * in one header @line of @len bytes as libcurl hands it over ("Name:
 * value\r\n", not NUL-terminated), without the blanks around it and the
 * line end; malloc'd. NULL when the line is another header (or ENOMEM).
 * Pure; exposed for tests and fuzzing.
 */
char *http_header_value(const char *line, size_t len, const char *name);

/*
 * Trust the PEM certificates of @cafile in addition to the system bundle for
 * connections made from now on (NULL: the system bundle only). Certificates
 * are always verified. Call before requests run on other threads. 0,
 * -ENOENT/-EACCES (cannot read), -EINVAL (no PEM certificate in it), -ENOMEM.
 */
int http_client_set_cafile(struct http_client *c, const char *cafile);
/* The extra CA file in use, or NULL. Valid until the next set_cafile/free. */
const char *http_client_cafile(const struct http_client *c);

/* Whether the client was made with insecure_http (plain http to any host). */
bool http_client_insecure_http(const struct http_client *c);

/*
 * Percent-encode @len bytes of @s for use in a URL path segment or a query
 * value: every byte outside A-Za-z0-9-._~ becomes %XX (so '+', ';', '%', '/'
 * are always escaped). Returns a malloc'd string, or NULL on ENOMEM.
 */
char *http_escape(const char *s, size_t len);

/*
 * Decode @len bytes of a form-encoded query value: '+' is a space, %XX a
 * byte (a '%' not followed by two hex digits stays as it is). The result
 * may hold NUL bytes (*outlen, may be NULL, is its length). Returns a
 * malloc'd, NUL-terminated string, or NULL on ENOMEM.
 */
char *http_form_unescape(const char *s, size_t len, size_t *outlen);

#endif
