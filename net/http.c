/*
 * net/http.c — see http.h.
 *
 * Threading model and lock order
 * ------------------------------
 * One struct http_client is shared by every thread. A request checks a
 * pooled pair (an easy handle and the multi handle that drives it) out of
 * the idle pool (pool_lock, held only to pop/push), runs the whole exchange
 * on it — retries, backoff sleeps and the 401 refresh included — with no
 * lock held, and checks it back in. The multi handle holds the keep-alive
 * connection(s) between requests, so a checked-in pair is a warm
 * connection. The CURLSH shares the DNS cache and TLS sessions; curl
 * takes share_lock[kind] through share_lock_cb() for each kind of data
 * separately. The connection cache is deliberately NOT shared: libcurl
 * (CURLSHOPT_SHARE(3), 7.88) does not support sharing connections between
 * concurrent threads; keeping connections per pooled handle gives the same
 * reuse without that hazard. The request's thread drives its transfer
 * itself (run_transfer: curl_multi_perform/curl_multi_poll), so it can look
 * at the caller's cancel flag between socket waits.
 *
 * Lock order: pool_lock and share_lock[*] are leaves (nothing else is taken
 * while they are held, and they are never held across I/O or callbacks into
 * other modules). The token provider is called with no lock held; it may
 * itself make requests on this client (it checks out another handle).
 *
 * One exchange ("attempt")
 * ------------------------
 * The write callback decides per attempt, from the status, where the body
 * goes: a 2xx body to the caller's sink or the capped buffer (over the cap:
 * -EIO, the transfer is aborted); any other body to the error buffer, kept up
 * to HTTP_ERROR_BODY_MAX (the rest is not read: the transfer is cut, which
 * costs the connection but never memory). The request body comes from memory
 * or from pread() on the caller's fd.
 *
 * Re-sends by libcurl itself
 * --------------------------
 * When a reused keep-alive connection dies before any byte of the answer
 * arrived, libcurl re-sends the request on a fresh connection by itself
 * (rewinding the body through the seek callback). That is right for an
 * idempotent request and wrong for any other: the server may have acted on
 * (or, for an upload, stored) what it got. So for a request that is not
 * idempotent the seek callback refuses every rewind and the pre-request
 * callback refuses a second send: the attempt fails (xfer.resend_refused,
 * -EIO) and the caller, who knows the protocol, finds out what the server
 * kept (an upload re-allocates and resumes from resume_pos).
 *
 * Cancellation
 * ------------
 * http_request.cancel is polled twice over: the progress callback aborts a
 * transfer that is moving data at its next progress tick, and
 * run_transfer() looks at it after every socket wait, which is capped at
 * HTTP_CANCEL_POLL_MS for a cancellable request, so a stalled, connecting
 * or answer-awaiting transfer is cut as quickly. Backoff sleeps wake on the
 * same cadence. A cancelled transfer's connection is closed (HTTP/1.1) or
 * its stream reset (HTTP/2): a half-sent request is never continued.
 *
 * Retry policy (http_request_do)
 * ------------------------------
 *   401 with auth           refresh through the provider (force), once
 *   429                     retried (the server refused before doing work),
 *                           within the retry budget whatever max_retries says
 *   500 502 503 504 509     retried when idempotent
 *   connect/resolve errors  retried (nothing was sent)
 *   other transport errors  retried when idempotent and the sink can be reset
 * Delays: full-jitter exponential backoff, or Retry-After when the server
 * sent one (capped at HTTP_RETRY_AFTER_MAX_MS, up to a quarter of jitter). No retry starts after the retry
 * budget (60 s) from the start of the request: with the connect timeout
 * (10 s) and the stall timeout (30 s without a byte either way, which also
 * bounds the wait for the first byte of an answer) no request holds its
 * caller for minutes.
 *
 * Connectivity (net/conn.h)
 * -------------------------
 * Each attempt's outcome is reported: an HTTP answer other than 5xx is a
 * success, a 5xx or a transport failure (not a cancel, not the sink's own
 * error) a failure. While the state is offline a request (other than a
 * probe) is refused before it is sent, and a retry loop that sees the
 * state turn offline ends: both return -EHOSTDOWN, with status 0.
 */
#include "net/http.h"

#include "lib/log.h"
#include "lib/redact.h"
#include "net/conn.h"
#include "net/url.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HTTP_POOL_MAX          32               /* idle handles kept */
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

/* A byte buffer that never grows past its cap. */
struct capbuf {
	char *data;
	size_t len;
	size_t alloc;
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
	size_t cap;
	struct capbuf body;
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

/* ---------------------------------------------------------------------- */
/* Pure helpers                                                           */

int http_status_errno(long status)
{
	if (status >= 200 && status < 300)
		return 0;
	switch (status) {
	case 400: return -EINVAL;
	case 401:
	case 403: return -EACCES;
	case 404:
	case 410: return -ENOENT;
	case 408: return -ETIMEDOUT;
	case 409: return -EEXIST;
	case 412: return -EAGAIN;
	case 413:
	case 507: return -ENOSPC;
	case 414: return -ENAMETOOLONG;
	case 416: return -EINVAL;
	case 420: return -EAGAIN;  /* IncompleteUploadOpenApiException: re-allocate */
	case 429: return -EAGAIN;
	default:  return -EIO;     /* 5xx, unexpected 1xx/3xx/4xx, 0 (no response) */
	}
}

int http_transport_errno(int curl_code)
{
	switch ((CURLcode)curl_code) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_USE_SSL_FAILED:
		return -EPROTO;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_BAD_FUNCTION_ARGUMENT:
		return -EINVAL;
	default:
		/* PARTIAL_FILE, RECV_ERROR, SEND_ERROR, GOT_NOTHING, HTTP2*,
		 * WEIRD_SERVER_REPLY, WRITE/READ_ERROR, ... */
		return -EIO;
	}
}

long http_backoff_ms(long min_ms, long max_ms, unsigned attempt, uint64_t rnd)
{
	if (min_ms < 1)
		min_ms = 1;
	if (max_ms < min_ms)
		max_ms = min_ms;
	long ceiling = min_ms;
	for (unsigned i = 0; i < attempt && ceiling < max_ms; i++) {
		if (__builtin_mul_overflow(ceiling, 2L, &ceiling))
			ceiling = max_ms;
	}
	if (ceiling > max_ms)
		ceiling = max_ms;
	return (long)(rnd % ((uint64_t)ceiling + 1));
}

long http_retry_delay_ms(long retry_after_s, long backoff_ms, uint64_t rnd)
{
	if (retry_after_s <= 0)
		return backoff_ms;
	/* The server said when: then, plus a little jitter (up to a quarter)
	 * so that a crowd of requests does not come back at once; the
	 * exponential backoff does not apply. */
	long ra_ms = retry_after_s > HTTP_RETRY_AFTER_MAX_MS / 1000 ? HTTP_RETRY_AFTER_MAX_MS
								  : retry_after_s * 1000;
	return ra_ms + (long)(rnd % (uint64_t)(ra_ms / 4 + 1));
}

char *http_header_value(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);
	if (len <= n || line[n] != ':' || strncasecmp(line, name, n))
		return NULL;
	const char *v = line + n + 1;
	const char *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
		end--;
	return strndup(v, (size_t)(end - v));
}

char *http_escape(const char *s, size_t len)
{
	/* curl_easy_escape keeps exactly A-Za-z0-9-._~ and needs no handle. */
	if (len > INT_MAX)
		return NULL;
	char *e = curl_easy_escape(NULL, s, (int)len);
	if (!e)
		return NULL;
	char *out = strdup(e);
	curl_free(e);
	return out;
}

char *http_form_unescape(const char *s, size_t len, size_t *outlen)
{
	if (len > INT_MAX)
		return NULL;
	char *plus = malloc(len + 1);
	if (!plus)
		return NULL;
	for (size_t i = 0; i < len; i++)
		plus[i] = s[i] == '+' ? ' ' : s[i];
	plus[len] = '\0';
	int n = 0;
	/* curl_easy_unescape decodes %XX (and needs no handle) */
	char *d = curl_easy_unescape(NULL, plus, (int)len, &n);
	explicit_bzero(plus, len);
	free(plus);
	if (!d)
		return NULL;
	char *out = malloc((size_t)n + 1);
	if (out) {
		memcpy(out, d, (size_t)n);
		out[n] = '\0';
		if (outlen)
			*outlen = (size_t)n;
	}
	explicit_bzero(d, (size_t)n);
	curl_free(d);
	return out;
}

void http_request_init(struct http_request *req, const char *method, const char *url)
{
	memset(req, 0, sizeof(*req));
	req->method = method;
	req->url = url;
	req->body_fd = -1;
	req->range_first = -1;
	req->range_last = -1;
}

void http_response_release(struct http_response *resp)
{
	if (!resp)
		return;
	free(resp->body);
	free(resp->content_range);
	free(resp->transport_error);
	memset(resp, 0, sizeof(*resp));
	resp->retry_after_s = -1;
}

/* Append @len bytes to @b unless that would pass @cap; -ENOSPC then. The
 * buffer stays NUL-terminated. */
static int capbuf_append(struct capbuf *b, const void *data, size_t len, size_t cap)
{
	size_t need;
	if (__builtin_add_overflow(b->len, len, &need) || need > cap)
		return -ENOSPC;
	if (need + 1 > b->alloc) {
		size_t a = b->alloc ? b->alloc : 4096;
		while (a < need + 1)
			a = a > SIZE_MAX / 2 ? need + 1 : a * 2;
		if (a > cap + 1)
			a = cap + 1;
		char *p = realloc(b->data, a);
		if (!p)
			return -ENOMEM;
		b->data = p;
		b->alloc = a;
	}
	memcpy(b->data + b->len, data, len);
	b->len = need;
	b->data[b->len] = '\0';
	return 0;
}

/* A uniformly random 64-bit number (OpenSSL's CSPRNG is thread-safe); a
 * per-thread xorshift seeded from the clock if RAND_bytes ever fails. */
static uint64_t random_u64(void)
{
	static __thread uint64_t state;
	uint64_t r;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) == 1)
		return r;
	if (!state) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		state = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)pthread_self();
		state |= 1;
	}
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return state;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Sleep @ms, in slices of HTTP_CANCEL_POLL_MS when @cancel (may be NULL)
 * can cut it short. True when @cancel was seen set. */
static bool sleep_cancellable(long ms, const atomic_bool *cancel)
{
	while (ms > 0) {
		if (cancel && atomic_load(cancel))
			return true;
		long slice = cancel && ms > HTTP_CANCEL_POLL_MS ? HTTP_CANCEL_POLL_MS : ms;
		sleep_ms(slice);
		ms -= slice;
	}
	return cancel && atomic_load(cancel);
}

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (long)((t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000);
}

/* Copy the path [p, end) to @o with every segment that looks like a token
 * (a server's upload URL carries one) replaced; returns the new end of @o. */
static char *trace_path(char *o, const char *p, const char *end)
{
	while (p < end) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		const char *seg_end = slash ? slash : end;
		if (redact_is_token(p, (size_t)(seg_end - p))) {
			memcpy(o, REDACT_MARK, strlen(REDACT_MARK));
			o += strlen(REDACT_MARK);
		} else {
			memcpy(o, p, (size_t)(seg_end - p));
			o += seg_end - p;
		}
		p = seg_end;
		if (slash)
			*o++ = *p++;
	}
	return o;
}

/*
 * The URL as it may appear in a debug line: user info dropped, path
 * segments that look like tokens replaced (lib/redact.h), and query values
 * replaced by "***" when the request carries secrets (@secret) or the key
 * names a credential. Returns a malloc'd string or NULL.
 */
static char *trace_url(const char *url, bool secret)
{
	static const char *const secret_keys[] = {
		"access_token", "refresh_token", "id_token", "code", "password",
		"client_secret", "token", "auth_token", "state", NULL,
	};
	size_t n = strlen(url);
	char *out = malloc(n * 4 + 16); /* worst case: every "=" becomes "=***" */
	if (!out)
		return NULL;
	const char *p = url;
	char *o = out;
	/* scheme://[userinfo@]host... */
	const char *scheme_end = strstr(url, "://");
	if (scheme_end) {
		const char *auth = scheme_end + 3;
		const char *end = auth + strcspn(auth, "/?#");
		const char *at = memchr(auth, '@', (size_t)(end - auth));
		memcpy(o, url, (size_t)(auth - url));
		o += auth - url;
		p = at ? at + 1 : auth;
	}
	const char *q = strchr(p, '?');
	if (!q) {
		o = trace_path(o, p, p + strlen(p));
		*o = '\0';
		return out;
	}
	o = trace_path(o, p, q);
	*o++ = '?';
	p = q + 1;
	while (*p) {
		size_t plen = strcspn(p, "&#");
		const char *eq = memchr(p, '=', plen);
		if (!eq) {
			memcpy(o, p, plen);
			o += plen;
		} else {
			size_t klen = (size_t)(eq - p);
			bool hide = secret;
			for (unsigned i = 0; !hide && secret_keys[i]; i++)
				hide = strlen(secret_keys[i]) == klen &&
				       !strncasecmp(p, secret_keys[i], klen);
			memcpy(o, p, klen + 1);
			o += klen + 1;
			if (hide) {
				memcpy(o, "***", 3);
				o += 3;
			} else {
				memcpy(o, eq + 1, plen - klen - 1);
				o += plen - klen - 1;
			}
		}
		p += plen;
		if (*p == '#')
			break;
		if (*p == '&')
			*o++ = *p++;
	}
	*o = '\0';
	return out;
}

/* ---------------------------------------------------------------------- */
/* CA bundle                                                              */

/* Read a whole (small) file into a malloc'd buffer. 0 or -errno. */
static int read_small_file(const char *path, size_t max, char **out, size_t *out_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int err = 0;
	if (fstat(fd, &st) < 0)
		err = -errno;
	else if (!S_ISREG(st.st_mode))
		err = -EINVAL;
	else if ((uint64_t)st.st_size > max)
		err = -EFBIG;
	if (err) {
		close(fd);
		return err;
	}
	size_t len = (size_t)st.st_size, got = 0;
	char *buf = malloc(len + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (got < len) {
		ssize_t r = read(fd, buf + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err = r < 0 ? -errno : -EIO;
			free(buf);
			close(fd);
			return err;
		}
		got += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	return 0;
}

/* Number of PEM certificates in @pem (0 when none parse). */
static int pem_cert_count(const char *pem, size_t len)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return 0;
	int n = 0;
	X509 *x;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		X509_free(x);
		n++;
	}
	BIO_free(bio);
	return n;
}

/* The path of curl's built-in CA bundle (CURLINFO_CAINFO, curl >= 7.84). */
static const char *system_ca_bundle(void)
{
	const char *path = NULL;
#if LIBCURL_VERSION_NUM >= 0x075400
	CURL *h = curl_easy_init();
	if (h) {
		char *p = NULL;
		static __thread char buf[512];
		if (curl_easy_getinfo(h, CURLINFO_CAINFO, &p) == CURLE_OK && p &&
		    strlen(p) < sizeof(buf)) {
			strcpy(buf, p);
			path = buf;
		}
		curl_easy_cleanup(h);
	}
#endif
	return path ? path : HTTP_SYSTEM_CA_BUNDLE;
}

int http_client_set_cafile(struct http_client *c, const char *cafile)
{
	struct ca_blob *blob;
	if (!cafile) {
		blob = calloc(1, sizeof(*blob) + 1);
		if (!blob)
			return -ENOMEM;
	} else {
		char *extra = NULL, *sys = NULL;
		size_t extra_len = 0, sys_len = 0;
		/* Failures are reported by the caller (a one-line message). */
		int err = read_small_file(cafile, HTTP_CA_BUNDLE_MAX, &extra, &extra_len);
		if (err < 0)
			return err;
		if (pem_cert_count(extra, extra_len) == 0) {
			free(extra);
			return -EINVAL;
		}
		/* The system bundle may be missing (minimal containers): then the
		 * extra CA alone is trusted, which is what the user asked for. */
		const char *sys_path = system_ca_bundle();
		if (read_small_file(sys_path, HTTP_CA_BUNDLE_MAX, &sys, &sys_len) < 0) {
			log_debug("http: no system CA bundle at %s", sys_path);
			sys = NULL;
			sys_len = 0;
		}
		size_t total = sys_len + 1 + extra_len + 1;
		blob = calloc(1, sizeof(*blob) + total);
		if (blob)
			blob->cafile = strdup(cafile);
		if (!blob || !blob->cafile) {
			free(blob);
			free(extra);
			free(sys);
			return -ENOMEM;
		}
		if (sys_len)
			memcpy(blob->data, sys, sys_len);
		blob->data[sys_len] = '\n';
		memcpy(blob->data + sys_len + 1, extra, extra_len);
		blob->len = sys_len + 1 + extra_len;
		free(extra);
		free(sys);
	}
	pthread_mutex_lock(&c->pool_lock);
	blob->next = c->ca;
	c->ca = blob;
	pthread_mutex_unlock(&c->pool_lock);
	return 0;
}

bool http_client_insecure_http(const struct http_client *c)
{
	return c->insecure_http;
}

const char *http_client_cafile(const struct http_client *c)
{
	return c->ca ? c->ca->cafile : NULL;
}

/* ---------------------------------------------------------------------- */
/* Client and pool                                                        */

static void share_lock_cb(CURL *h, curl_lock_data data, curl_lock_access access, void *ctx)
{
	struct http_client *c = ctx;
	if ((unsigned)data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&c->share_lock[data]);
}

static void share_unlock_cb(CURL *h, curl_lock_data data, void *ctx)
{
	struct http_client *c = ctx;
	if ((unsigned)data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&c->share_lock[data]);
}

int http_client_new(const struct http_config *cfg, struct http_client **out)
{
	static const struct http_config defaults;
	if (!cfg)
		cfg = &defaults;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -ENOMEM;
	struct http_client *c = calloc(1, sizeof(*c));
	if (!c) {
		curl_global_cleanup();
		return -ENOMEM;
	}
	for (unsigned i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_lock[i], NULL);
	pthread_mutex_init(&c->pool_lock, NULL);
	c->connect_timeout_s = cfg->connect_timeout_s > 0 ? cfg->connect_timeout_s : 10;
	c->low_speed_time_s = cfg->low_speed_time_s > 0 ? cfg->low_speed_time_s : 30;
	c->retry_budget_ms = cfg->retry_budget_ms > 0 ? cfg->retry_budget_ms : 60000;
	c->max_retries = cfg->max_retries > 0 ? cfg->max_retries : cfg->max_retries < 0 ? 0 : 8;
	c->backoff_min_ms = cfg->backoff_min_ms > 0 ? cfg->backoff_min_ms : 100;
	c->backoff_max_ms = cfg->backoff_max_ms > 0 ? cfg->backoff_max_ms : 16000;
	c->insecure_http = cfg->insecure_http;
	if (c->backoff_max_ms < c->backoff_min_ms)
		c->backoff_max_ms = c->backoff_min_ms;
	if (cfg->user_agent)
		c->user_agent = strdup(cfg->user_agent);
	else
		c->user_agent = strdup("jottafs/" JOTTAFS_VERSION);
	c->share = curl_share_init();
	if (!c->user_agent || !c->share)
		goto nomem;
	if (curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock_cb) ||
	    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock_cb) ||
	    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c) ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION))
		goto nomem;
	if (cfg->cafile) {
		int err = http_client_set_cafile(c, cfg->cafile);
		if (err < 0) {
			http_client_free(c);
			return err;
		}
	}
	*out = c;
	return 0;
nomem:
	http_client_free(c);
	return -ENOMEM;
}

void http_client_set_conn(struct http_client *c, struct conn *conn)
{
	c->conn = conn;
}

void http_client_set_token_provider(struct http_client *c, const struct http_token_provider *tp)
{
	pthread_mutex_lock(&c->pool_lock);
	c->has_tp = tp && tp->get_token;
	if (c->has_tp)
		c->tp = *tp;
	pthread_mutex_unlock(&c->pool_lock);
}

void http_client_free(struct http_client *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->n_idle; i++) {
		curl_easy_cleanup(c->idle[i].h);
		curl_multi_cleanup(c->idle[i].m);
	}
	if (c->share)
		curl_share_cleanup(c->share);
	for (struct ca_blob *b = c->ca, *next; b; b = next) {
		next = b->next;
		free(b->cafile);
		free(b);
	}
	for (unsigned i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->share_lock[i]);
	pthread_mutex_destroy(&c->pool_lock);
	free(c->user_agent);
	free(c);
	curl_global_cleanup();
}

/* Take an idle pair (easy handle reset to defaults, connections kept) or
 * make one. 0 or -ENOMEM. */
static int pool_get(struct http_client *c, struct pooled *p, struct ca_blob **ca)
{
	bool got = false;
	pthread_mutex_lock(&c->pool_lock);
	if (c->n_idle) {
		*p = c->idle[--c->n_idle];
		got = true;
	}
	*ca = c->ca;
	pthread_mutex_unlock(&c->pool_lock);
	if (got) {
		curl_easy_reset(p->h);
		return 0;
	}
	p->h = curl_easy_init();
	p->m = curl_multi_init();
	if (!p->h || !p->m) {
		curl_easy_cleanup(p->h);
		curl_multi_cleanup(p->m);
		return -ENOMEM;
	}
	return 0;
}

/* Give a pair back (it is not in a transfer); beyond HTTP_POOL_MAX idle
 * pairs it is closed, with its connections. */
static void pool_put(struct http_client *c, const struct pooled *p)
{
	bool kept = false;
	pthread_mutex_lock(&c->pool_lock);
	if (c->n_idle < HTTP_POOL_MAX) {
		c->idle[c->n_idle++] = *p;
		kept = true;
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (!kept) {
		curl_easy_cleanup(p->h);
		curl_multi_cleanup(p->m);
	}
}

/* ---------------------------------------------------------------------- */
/* Callbacks                                                              */

/* Decide, once the final headers of a response are in, where its body goes;
 * for a 2xx streamed to a sink, let the sink vet status and Content-Range
 * first (http_sink.begin). 0 or -errno (transfer aborted). */
static int xfer_decide(struct xfer *x)
{
	long status = 0;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
	x->status = status;
	x->decided = true;
	if (status >= 200 && status < 300) {
		const struct http_sink *sink = x->req->sink;
		x->to_sink = sink != NULL;
		x->cap = x->req->max_body ? x->req->max_body : HTTP_DEFAULT_MAX_BODY;
		if (sink && sink->begin) {
			int err = sink->begin(sink->ctx, status, x->content_range);
			if (err < 0) {
				x->cb_err = err;
				return err;
			}
		}
	} else {
		x->is_error_body = true;
		x->cap = HTTP_ERROR_BODY_MAX;
	}
	return 0;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct xfer *x = ctx;
	size_t len = size * nmemb;
	if (!x->decided && xfer_decide(x) < 0)
		return 0;
	if (x->to_sink) {
		int err = x->req->sink->write(x->req->sink->ctx, data, len);
		if (err < 0) {
			x->cb_err = err;
			return 0;
		}
		x->sink_bytes += (int64_t)len;
		return len;
	}
	int err = capbuf_append(&x->body, data, len, x->cap);
	if (err == -ENOSPC && x->is_error_body) {
		/* Keep what fits; stop reading the rest. */
		size_t room = x->cap - x->body.len;
		if (room)
			capbuf_append(&x->body, data, room, x->cap);
		x->error_body_cut = true;
		return 0;
	}
	if (err == -ENOSPC) {
		log_warn("http: response body of %s exceeds %zu bytes: refused", x->req->method,
			 x->cap);
		x->cb_err = -EIO;
		return 0;
	}
	if (err < 0) {
		x->cb_err = err;
		return 0;
	}
	return len;
}

/* Header lines: a status line starts a new response (after 100 Continue);
 * Content-Range is remembered; the blank line ending the final response's
 * headers decides where the body goes (so an empty 2xx body still reaches
 * http_sink.begin). */
static size_t header_cb(char *data, size_t size, size_t nitems, void *ctx)
{
	struct xfer *x = ctx;
	size_t len = size * nitems;
	if (x->decided)
		return len; /* trailers */
	if (len >= 5 && !memcmp(data, "HTTP/", 5)) {
		free(x->content_range);
		x->content_range = NULL;
	} else if (len <= 2 && (len == 0 || data[0] == '\r' || data[0] == '\n')) {
		long status = 0;
		curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 200 && xfer_decide(x) < 0)
			return 0;
	} else {
		char *v = http_header_value(data, len, "Content-Range");
		if (v) {
			free(x->content_range);
			x->content_range = v;
		}
	}
	return len;
}

/* Request body: from memory, or pread() of the caller's fd. */
static size_t read_cb(char *buf, size_t size, size_t nitems, void *ctx)
{
	struct xfer *x = ctx;
	const struct http_request *r = x->req;
	size_t want = size * nitems;
	int64_t left = x->up_len - x->up_pos;
	if (left <= 0)
		return 0;
	if ((uint64_t)left < want)
		want = (size_t)left;
	if (r->body) {
		memcpy(buf, (const char *)r->body + x->up_pos, want);
		x->up_pos += (int64_t)want;
		if (r->sent)
			atomic_store(r->sent, x->up_pos);
		return want;
	}
	for (;;) {
		ssize_t n = pread(r->body_fd, buf, want, r->body_fd_off + x->up_pos);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			x->cb_err = n < 0 ? -errno : -EIO; /* 0: the file shrank under us */
			if (n == 0)
				log_warn("http: request body file ended %lld bytes early",
					 (long long)left);
			return CURL_READFUNC_ABORT;
		}
		x->up_pos += n;
		if (r->sent)
			atomic_store(r->sent, x->up_pos);
		return (size_t)n;
	}
}

/* curl rewinds the body when it re-sends on a fresh connection (a reused
 * one died before the answer began). Allowed for an idempotent request
 * only: for any other the server may already have acted on the bytes it
 * got, so the attempt fails instead (see "Re-sends by libcurl itself"). */
static int seek_cb(void *ctx, curl_off_t offset, int origin)
{
	struct xfer *x = ctx;
	if (origin != SEEK_SET || offset < 0 || offset > x->up_len)
		return CURL_SEEKFUNC_CANTSEEK;
	if (offset != x->up_pos && !x->req->idempotent) {
		x->resend_refused = true;
		return CURL_SEEKFUNC_CANTSEEK;
	}
	x->up_pos = offset;
	return CURL_SEEKFUNC_OK;
}

/* Right before curl sends the request on a connection: once per attempt,
 * or again when curl re-sends it on a fresh connection by itself. A request
 * that is not idempotent is sent at most once (even without a body to
 * rewind: a command the server may have carried out). */
static int prereq_cb(void *ctx, char *conn_primary_ip, char *conn_local_ip,
		     int conn_primary_port, int conn_local_port)
{
	struct xfer *x = ctx;
	if (x->sends++ > 0 && !x->req->idempotent) {
		x->resend_refused = true;
		return CURL_PREREQFUNC_ABORT;
	}
	return CURL_PREREQFUNC_OK;
}

/* Progress callback of a cancellable request: non-zero aborts the transfer
 * (CURLE_ABORTED_BY_CALLBACK). */
static int xferinfo_cb(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct xfer *x = ctx;
	if (atomic_load(x->req->cancel)) {
		x->cancelled = true;
		return 1;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* One attempt                                                            */

/* A bearer token must be a single header-safe word (RFC 6750 b64token and
 * then some): printable ASCII, no space, so a hostile token endpoint cannot
 * inject header lines. */
static bool token_ok(const char *t)
{
	if (!*t)
		return false;
	for (; *t; t++)
		if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
			return false;
	return true;
}

/* Build the header list of one attempt. NULL on ENOMEM. */
static struct curl_slist *build_headers(const struct http_request *req, const char *token)
{
	struct curl_slist *l = NULL, *t;
	char line[128];
#define ADD(s)                                           \
	do {                                             \
		t = curl_slist_append(l, (s));           \
		if (!t)                                  \
			goto fail;                       \
		l = t;                                   \
	} while (0)
	ADD("Expect:"); /* no 100-continue round trip */
	if (req->content_type) {
		char *ct;
		if (asprintf(&ct, "Content-Type: %s", req->content_type) < 0)
			goto fail;
		t = curl_slist_append(l, ct);
		free(ct);
		if (!t)
			goto fail;
		l = t;
	} else {
		ADD("Content-Type:"); /* curl would add a form type to POSTs */
	}
	if (req->range_first >= 0) {
		if (req->range_last >= 0)
			snprintf(line, sizeof(line), "Range: bytes=%lld-%lld",
				 (long long)req->range_first, (long long)req->range_last);
		else
			snprintf(line, sizeof(line), "Range: bytes=%lld-", (long long)req->range_first);
		ADD(line);
	}
	for (const char *const *h = req->headers; h && *h; h++)
		ADD(*h);
	if (token) {
		size_t n = strlen(token) + sizeof("Authorization: Bearer ");
		char *a = malloc(n);
		if (!a)
			goto fail;
		snprintf(a, n, "Authorization: Bearer %s", token);
		t = curl_slist_append(l, a);
		explicit_bzero(a, n);
		free(a);
		if (!t)
			goto fail;
		l = t;
	}
#undef ADD
	return l;
fail:
	curl_slist_free_all(l);
	return NULL;
}

/* Wipe and free a header list that may hold a bearer token. */
static void free_headers(struct curl_slist *l)
{
	for (struct curl_slist *p = l; p; p = p->next)
		explicit_bzero(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

/* Set every option of one attempt on @h. CURLE_OK or the first failure. */
static CURLcode setup_handle(struct http_client *c, CURL *h, struct xfer *x,
			     struct curl_slist *hdrs, struct ca_blob *ca, char *errbuf)
{
	const struct http_request *req = x->req;
	CURLcode rc = CURLE_OK;
#define SET(opt, val)                                            \
	do {                                                     \
		if ((rc = curl_easy_setopt(h, opt, val)) != CURLE_OK) \
			return rc;                               \
	} while (0)
	SET(CURLOPT_URL, req->url);
	SET(CURLOPT_SHARE, c->share);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_USERAGENT, c->user_agent);
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_CONNECTTIMEOUT, c->connect_timeout_s);
	SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
	SET(CURLOPT_LOW_SPEED_TIME, c->low_speed_time_s);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L); /* a proxy's CONNECT answer is not ours */
	SET(CURLOPT_HTTPHEADER, hdrs);
	SET(CURLOPT_WRITEFUNCTION, write_cb);
	SET(CURLOPT_WRITEDATA, x);
	SET(CURLOPT_HEADERFUNCTION, header_cb);
	SET(CURLOPT_HEADERDATA, x);
	SET(CURLOPT_PREREQFUNCTION, prereq_cb);
	SET(CURLOPT_PREREQDATA, x);
	if (req->cancel) {
		SET(CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
		SET(CURLOPT_XFERINFODATA, x);
		SET(CURLOPT_NOPROGRESS, 0L);
	}
	if (ca && ca->cafile) {
		struct curl_blob blob = { ca->data, ca->len, CURL_BLOB_NOCOPY };
		SET(CURLOPT_CAINFO_BLOB, &blob);
	}
	/* Compressed bodies only when no byte range is involved. */
	if (req->range_first < 0)
		SET(CURLOPT_ACCEPT_ENCODING, "");
	if (req->sink)
		SET(CURLOPT_BUFFERSIZE, HTTP_DOWNLOAD_BUFSIZE);

	bool has_body = req->body || req->body_fd >= 0;
	if (!strcmp(req->method, "GET") && !has_body) {
		SET(CURLOPT_HTTPGET, 1L);
	} else if (!strcmp(req->method, "HEAD")) {
		SET(CURLOPT_NOBODY, 1L);
	} else if (has_body || !strcmp(req->method, "POST") || !strcmp(req->method, "PUT")) {
		/* A body (possibly empty) sent with Content-Length through read_cb. */
		SET(CURLOPT_POST, 1L);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->up_len);
		SET(CURLOPT_READFUNCTION, read_cb);
		SET(CURLOPT_READDATA, x);
		SET(CURLOPT_SEEKFUNCTION, seek_cb);
		SET(CURLOPT_SEEKDATA, x);
		if (req->body_fd >= 0)
			SET(CURLOPT_UPLOAD_BUFFERSIZE, HTTP_UPLOAD_BUFSIZE);
		if (strcmp(req->method, "POST"))
			SET(CURLOPT_CUSTOMREQUEST, req->method);
	} else {
		SET(CURLOPT_CUSTOMREQUEST, req->method);
	}
#undef SET
	return rc;
}

/* A CURLMcode failure as the CURLcode of the transfer. */
static CURLcode multi_failure(CURLMcode mc, const char *what)
{
	log_warn("http: %s: %s", what, curl_multi_strerror(mc));
	return mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
}

/*
 * Run the transfer set up on @p->h to its end through @p->m, on this thread.
 * Between socket waits (capped at HTTP_CANCEL_POLL_MS for a cancellable
 * request) it looks at req->cancel: once set, the transfer is taken out of
 * the multi handle unfinished, which closes its connection. Returns curl's
 * result; CURLE_ABORTED_BY_CALLBACK with x->cancelled for a cancel.
 */
static CURLcode run_transfer(const struct pooled *p, struct xfer *x)
{
	const atomic_bool *cancel = x->req->cancel;
	CURLMcode mc = curl_multi_add_handle(p->m, p->h);
	if (mc != CURLM_OK)
		return multi_failure(mc, "curl_multi_add_handle");
	CURLcode rc = CURLE_OK;
	for (;;) {
		int running = 0, queued;
		mc = curl_multi_perform(p->m, &running);
		if (mc != CURLM_OK) {
			rc = multi_failure(mc, "curl_multi_perform");
			break;
		}
		bool done = false;
		CURLMsg *msg;
		while ((msg = curl_multi_info_read(p->m, &queued)) != NULL) {
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == p->h) {
				rc = msg->data.result;
				done = true;
			}
		}
		if (done)
			break;
		if (!running) {
			/* not running and no DONE message: cannot happen */
			rc = CURLE_FAILED_INIT;
			break;
		}
		if (x->cancelled || (cancel && atomic_load(cancel))) {
			x->cancelled = true;
			rc = CURLE_ABORTED_BY_CALLBACK;
			break;
		}
		mc = curl_multi_poll(p->m, NULL, 0,
				     (int)(cancel ? HTTP_CANCEL_POLL_MS : HTTP_IDLE_POLL_MS), NULL);
		if (mc != CURLM_OK) {
			rc = multi_failure(mc, "curl_multi_poll");
			break;
		}
	}
	curl_multi_remove_handle(p->m, p->h);
	return rc;
}

/* Whether a transport error may be retried at all, and whether it is certain
 * that nothing reached the server (so even a non-idempotent request may be). */
static bool transport_retryable(CURLcode rc, bool *nothing_sent)
{
	*nothing_sent = false;
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		*nothing_sent = true;
		return true;
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_BAD_CONTENT_ENCODING:
		return true;
	default:
		return false;
	}
}

static bool status_retryable(long status)
{
	return status == 429 || status == 500 || status == 502 || status == 503 ||
	       status == 504 || status == 509;
}

/* ---------------------------------------------------------------------- */
/* The request loop                                                       */

/* One debug line per attempt (the caller checked the level). The error
 * body is shown only for requests without secrets, and then redacted (a
 * server or proxy may echo our Authorization header in it). */
static void trace_attempt(const struct http_request *req, const char *turl,
			  const struct xfer *x, CURLcode rc, bool http_done, long status,
			  const char *errbuf, long ms, bool retry)
{
	int64_t in = x->to_sink ? x->sink_bytes : (int64_t)x->body.len;
	if (http_done)
		log_debug("http: %s %s -> %ld, %lld bytes in, %lld out, %ld ms%s", req->method,
			  turl ? turl : "?", status, (long long)in, (long long)x->up_len, ms,
			  retry ? " (retry)" : "");
	else if (x->cancelled)
		log_debug("http: %s %s -> cancelled, %lld bytes in, %ld ms%s", req->method,
			  turl ? turl : "?", (long long)in, ms, retry ? " (retry)" : "");
	else if (x->resend_refused)
		log_debug("http: %s %s -> connection lost before the answer; not re-sent "
			  "(not idempotent), %ld ms%s", req->method, turl ? turl : "?", ms,
			  retry ? " (retry)" : "");
	else
		log_debug("http: %s %s -> failed (%s), %lld bytes in, %ld ms%s", req->method,
			  turl ? turl : "?", errbuf[0] ? errbuf : curl_easy_strerror(rc),
			  (long long)in, ms, retry ? " (retry)" : "");
	if (x->sends > 1 && !x->resend_refused)
		log_debug("http: (curl re-sent it on a fresh connection: the reused one had died)");
	if (x->is_error_body && x->body.len && !req->secret_body) {
		char shown[301];
		log_debug("http: error body: %s", redact_text(x->body.data, x->body.len, shown,
							      sizeof(shown)));
	}
}

enum step { STEP_DONE, STEP_REFRESH, STEP_RETRY };

/*
 * What follows an attempt: done (*result set), a token refresh and re-send,
 * or a retry after *delay_ms. Before a retry of a transfer that already fed
 * the sink, the sink is reset (no reset hook: not retried).
 */
static enum step next_step(const struct http_client *c, const struct http_request *req,
			   const struct xfer *x, CURLcode rc, bool http_done, long status,
			   long retry_after_s, bool can_refresh, int retries, int *result,
			   long *delay_ms)
{
	if (x->cancelled) {
		*result = -ECANCELED;
		return STEP_DONE;
	}
	if (x->cb_err) {
		/* The sink, the body cap or the body file stopped it. */
		*result = x->cb_err;
		return STEP_DONE;
	}
	if (x->resend_refused) {
		/* cut after (some of) it went out: only the caller can tell what
		 * the server kept */
		*result = -EIO;
		return STEP_DONE;
	}
	if (http_done) {
		*result = http_status_errno(status);
		if (*result == 0)
			return STEP_DONE;
		if (status == 401 && can_refresh)
			return STEP_REFRESH; /* error bodies never reach the sink */
		/* 429 means the server did no work: safe to repeat any request */
		/* A 429 burst may outlast max_retries: the retry budget bounds it. */
		if (!status_retryable(status) || !(req->idempotent || status == 429) ||
		    (retries >= c->max_retries && status != 429))
			return STEP_DONE;
		*delay_ms = http_retry_delay_ms(retry_after_s,
						http_backoff_ms(c->backoff_min_ms, c->backoff_max_ms,
								(unsigned)retries, random_u64()),
						random_u64());
		return STEP_RETRY;
	}
	bool nothing_sent;
	*result = http_transport_errno(rc);
	if (!transport_retryable(rc, &nothing_sent) || !(req->idempotent || nothing_sent) ||
	    retries >= c->max_retries)
		return STEP_DONE;
	if (x->sink_bytes > 0) {
		if (!req->sink->reset)
			return STEP_DONE; /* the caller knows how many bytes it got */
		int err = req->sink->reset(req->sink->ctx);
		if (err < 0) {
			*result = err;
			return STEP_DONE;
		}
	}
	*delay_ms = http_backoff_ms(c->backoff_min_ms, c->backoff_max_ms, (unsigned)retries,
				    random_u64());
	return STEP_RETRY;
}

/* Report an attempt's outcome to the connectivity state. */
static void report(struct conn *conn, const struct xfer *x, CURLcode rc, bool http_done,
		   long status, const struct http_response *resp)
{
	char cause[128];

	if (x->cancelled || x->cb_err)
		return;                 /* said nothing about the service */
	if (http_done && !(status >= 500 && status <= 599)) {
		conn_success(conn);
		return;
	}
	if (http_done)
		snprintf(cause, sizeof(cause), "HTTP %ld", status);
	else
		snprintf(cause, sizeof(cause), "%s",
			 resp->transport_error ? resp->transport_error : curl_easy_strerror(rc));
	conn_failure(conn, cause);
}

/* A request not sent (or given up) because the service is offline. */
static int offline(struct http_response *resp)
{
	resp->status = 0;
	free(resp->transport_error);
	resp->transport_error = strdup("the service is offline");
	return -EHOSTDOWN;
}

/* Wipe and free a token string. */
static void drop_token(char **token)
{
	if (*token) {
		explicit_bzero(*token, strlen(*token));
		free(*token);
		*token = NULL;
	}
}

int http_request_do(struct http_client *c, const struct http_request *req,
		    struct http_response *resp)
{
	struct http_response local;
	if (!resp)
		resp = &local;
	memset(resp, 0, sizeof(*resp));
	resp->retry_after_s = -1;

	int allowed = url_allowed(req->url, c->insecure_http);
	if (allowed < 0) {
		char *turl = trace_url(req->url ? req->url : "", true);
		if (allowed == -EPERM)
			log_err("http: refusing %s %s: plain http to a host that is not loopback "
				"would send tokens unencrypted (-o insecure_http allows it)",
				req->method, turl ? turl : "");
		else
			log_err("http: refusing %s: not a usable http(s) URL", req->method);
		free(turl);
		return allowed;
	}

	int64_t body_len = 0;
	if (req->body) {
		body_len = (int64_t)req->body_len;
	} else if (req->body_fd >= 0) {
		if (req->body_fd_off < 0 || req->body_fd_len < 0)
			return -EINVAL;
		body_len = req->body_fd_len;
	}

	struct http_token_provider tp = { 0 };
	bool use_auth = false;
	if (!req->no_auth) {
		pthread_mutex_lock(&c->pool_lock);
		use_auth = c->has_tp;
		tp = c->tp;
		pthread_mutex_unlock(&c->pool_lock);
	}

	bool trace = log_enabled(LOG_LVL_DEBUG);
	char *turl = trace ? trace_url(req->url, req->secret_body) : NULL;
	char *token = NULL;
	bool refreshed = false;
	int retries = 0;
	int result = -EIO;
	char errbuf[CURL_ERROR_SIZE];

	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);

	struct ca_blob *ca = NULL;
	struct pooled p;
	if (pool_get(c, &p, &ca) < 0) {
		free(turl);
		return -ENOMEM;
	}
	CURL *h = p.h;

	for (;;) {
		struct xfer x = { .h = h, .req = req, .up_len = body_len };
		struct timespec t0;

		if (req->cancel && atomic_load(req->cancel)) {
			result = -ECANCELED;
			break;
		}
		if (c->conn && !req->probe && !conn_admit(c->conn)) {
			result = offline(resp);
			break;
		}
		if (use_auth && !token) {
			result = tp.get_token(tp.ctx, refreshed, &token);
			if (result < 0)
				break;
			if (!token_ok(token)) {
				log_err("http: the token provider returned a malformed access token");
				result = -EIO;
				break;
			}
		}
		struct curl_slist *hdrs = build_headers(req, token);
		if (!hdrs) {
			result = -ENOMEM;
			break;
		}
		errbuf[0] = '\0';
		clock_gettime(CLOCK_MONOTONIC, &t0);
		CURLcode rc = setup_handle(c, h, &x, hdrs, ca, errbuf);
		if (rc == CURLE_OK)
			rc = run_transfer(&p, &x);
		free_headers(hdrs);
		resp->attempts++;

		long status = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		curl_off_t ra = -1;
		if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK || ra <= 0)
			ra = -1;
		/* a deliberately cut error body still is a complete HTTP answer */
		bool http_done = rc == CURLE_OK || (x.error_body_cut && status);
		if (trace)
			trace_attempt(req, turl, &x, rc, http_done, status, errbuf, elapsed_ms(&t0),
				      retries || refreshed);

		/* This attempt's outcome goes to the response (the last one wins). */
		free(resp->body);
		free(resp->content_range);
		free(resp->transport_error);
		resp->body = x.body.data;
		resp->body_len = x.body.len;
		resp->content_range = x.content_range;
		resp->status = http_done ? status : 0;
		resp->retry_after_s = (long)ra;
		resp->bytes_received = x.sink_bytes;
		resp->transport_error =
			http_done        ? NULL
			: x.cancelled      ? strdup("cancelled")
			: x.resend_refused ? strdup("connection lost before the answer; not re-sent "
						    "(the request is not idempotent)")
					   : strdup(errbuf[0] ? errbuf : curl_easy_strerror(rc));

		if (c->conn)
			report(c->conn, &x, rc, http_done, status, resp);

		long delay_ms = 0;
		enum step next = next_step(c, req, &x, rc, http_done, status, (long)ra,
					   use_auth && !refreshed, retries, &result, &delay_ms);
		if (next == STEP_RETRY && req->probe)
			next = STEP_DONE;
		if (next == STEP_RETRY && elapsed_ms(&start) + delay_ms > c->retry_budget_ms) {
			log_debug("http: %s %s: retry budget of %ld ms spent", req->method,
				  turl ? turl : "?", c->retry_budget_ms);
			next = STEP_DONE;
		}
		if (next != STEP_DONE && c->conn && !req->probe && !conn_admit(c->conn)) {
			result = offline(resp);
			break;
		}
		if (next == STEP_DONE)
			break;
		if (next == STEP_REFRESH) {
			/* 401: the token was refused; ask the provider for a new one */
			log_debug("http: 401 from %s: refreshing the token", turl ? turl : "?");
			refreshed = true;
			drop_token(&token);
			continue;
		}
		retries++;
		log_debug("http: retry %d/%d of %s %s in %ld ms", retries, c->max_retries,
			  req->method, turl ? turl : "?", delay_ms);
		if (sleep_cancellable(delay_ms, req->cancel)) {
			result = -ECANCELED;
			break;
		}
	}

	drop_token(&token);
	/* Detach the per-request pointers before the handle idles in the pool. */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	pool_put(c, &p);
	free(turl);
	if (resp == &local)
		http_response_release(&local);
	return result;
}
