/*
 * net/http_xfer.c — one exchange ("attempt") of net/http: the curl
 * callbacks, the request headers, the options set on the pooled handle,
 * and the transfer loop that runs it on the caller's thread.
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
 */
#include "net/http_int.h"

#include "lib/buf.h"
#include "lib/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
		buf_init(&x->body, x->req->max_body ? x->req->max_body : HTTP_DEFAULT_MAX_BODY);
		if (sink && sink->begin) {
			int err = sink->begin(sink->ctx, status, x->content_range);
			if (err < 0) {
				x->cb_err = err;
				return err;
			}
		}
	} else {
		x->is_error_body = true;
		buf_init(&x->body, HTTP_ERROR_BODY_MAX);
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
	size_t room = x->body.max - x->body.len;
	if (len > room && x->is_error_body) {
		/* Keep what fits; stop reading the rest. */
		buf_add(&x->body, data, room);
		x->error_body_cut = true;
		return 0;
	}
	if (len > room) {
		log_warn("http: response body of %s exceeds %zu bytes: refused", x->req->method,
			 x->body.max);
		x->cb_err = -EIO;
		return 0;
	}
	int err = buf_add(&x->body, data, len);
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

/* A bearer token must be a single header-safe word (RFC 6750 b64token and
 * then some): printable ASCII, no space, so a hostile token endpoint cannot
 * inject header lines. */
bool http_token_ok(const char *t)
{
	if (!*t)
		return false;
	for (; *t; t++)
		if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
			return false;
	return true;
}

/* Build the header list of one attempt. NULL on ENOMEM. */
struct curl_slist *http_build_headers(const struct http_request *req, const char *token)
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
void http_free_headers(struct curl_slist *l)
{
	for (struct curl_slist *p = l; p; p = p->next)
		explicit_bzero(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

/* Set every option of one attempt on @h. CURLE_OK or the first failure. */
CURLcode http_setup_handle(struct http_client *c, CURL *h, struct xfer *x,
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
CURLcode http_run_transfer(const struct pooled *p, struct xfer *x)
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
