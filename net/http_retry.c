/*
 * net/http_retry.c — what follows one attempt of a request: the retry
 * policy, the backoff and Retry-After delays, and the cancellable sleeps
 * between attempts (used by http_request_do in net/http.c).
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
 * Throttling (the gate)
 * ---------------------
 * A 429, or a 503 that says Retry-After, is about the whole client, not the
 * one request: the service wants fewer requests from us. So the answer
 * closes a gate that every attempt of every thread passes before it is
 * sent (http_gate_enter): nothing starts until the delay of that answer
 * (its Retry-After, else the backoff) has passed, and then only
 * gate_limit attempts may be in flight at once — half of those that were
 * when the answer came, at least one. Each answered attempt that is not
 * throttled raises the limit by one (the limit doubles per round of
 * answers, as TCP's slow start), and so does every further delay without a
 * throttled answer (long transfers in flight, a 1 GiB POST, must not hold
 * everybody's requests back for their whole length); at HTTP_GATE_CEIL
 * the gate is open again. A storm thus costs about one attempt per Retry-After, whatever
 * the number of threads (upload workers, FUSE threads) that wait. Probes
 * (net/conn.h) pass the gate without waiting.
 */
#include "net/http_int.h"

#include "lib/backoff.h"
#include "lib/clock.h"
#include "lib/log.h"

#include <errno.h>
#include <time.h>

long http_backoff_ms(long min_ms, long max_ms, unsigned attempt, uint64_t rnd)
{
	int64_t ceiling = backoff_ceiling_ms(attempt, min_ms, max_ms);
	return (long)(rnd % ((uint64_t)ceiling + 1));  /* full jitter */
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

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Sleep @ms, in slices of HTTP_CANCEL_POLL_MS when @cancel (may be NULL)
 * can cut it short. True when @cancel was seen set. */
bool http_sleep_cancellable(long ms, const atomic_bool *cancel)
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


/*
 * What follows an attempt: done (*result set), a token refresh and re-send,
 * or a retry after *delay_ms. Before a retry of a transfer that already fed
 * the sink, the sink is reset (no reset hook: not retried).
 */
enum http_step http_next_step(const struct http_client *c, const struct http_request *req,
			      const struct xfer *x, CURLcode rc, bool http_done, long status,
			      long retry_after_s, bool can_refresh, int retries, int *result,
			      long *delay_ms)
{
	if (x->cancelled) {
		*result = -ECANCELED;
		return HTTP_STEP_DONE;
	}
	if (x->cb_err) {
		/* The sink, the body cap or the body file stopped it. */
		*result = x->cb_err;
		return HTTP_STEP_DONE;
	}
	if (x->resend_refused) {
		/* cut after (some of) it went out: only the caller can tell what
		 * the server kept */
		*result = -EIO;
		return HTTP_STEP_DONE;
	}
	if (http_done) {
		*result = http_status_errno(status);
		if (*result == 0)
			return HTTP_STEP_DONE;
		if (status == 401 && can_refresh)
			return HTTP_STEP_REFRESH; /* error bodies never reach the sink */
		/* 429 means the server did no work: safe to repeat any request */
		/* A 429 burst may outlast max_retries: the retry budget bounds it. */
		if (!status_retryable(status) || !(req->idempotent || status == 429) ||
		    (retries >= c->max_retries && status != 429))
			return HTTP_STEP_DONE;
		*delay_ms = http_retry_delay_ms(retry_after_s,
						http_backoff_ms(c->backoff_min_ms, c->backoff_max_ms,
								(unsigned)retries, rng_u64()),
						rng_u64());
		return HTTP_STEP_RETRY;
	}
	bool nothing_sent;
	*result = http_transport_errno(rc);
	if (!transport_retryable(rc, &nothing_sent) || !(req->idempotent || nothing_sent) ||
	    retries >= c->max_retries)
		return HTTP_STEP_DONE;
	if (x->sink_bytes > 0) {
		if (!req->sink->reset)
			return HTTP_STEP_DONE; /* the caller knows how many bytes it got */
		int err = req->sink->reset(req->sink->ctx);
		if (err < 0) {
			*result = err;
			return HTTP_STEP_DONE;
		}
	}
	*delay_ms = http_backoff_ms(c->backoff_min_ms, c->backoff_max_ms, (unsigned)retries,
				    rng_u64());
	return HTTP_STEP_RETRY;
}

/* ---- the throttle gate ---- */

void http_gate_init(struct http_client *c)
{
	pthread_mutex_init(&c->gate_lock, NULL);
	clock_cond_init(&c->gate_cv);
}

void http_gate_destroy(struct http_client *c)
{
	pthread_cond_destroy(&c->gate_cv);
	pthread_mutex_destroy(&c->gate_lock);
}

int http_gate_enter(struct http_client *c, const atomic_bool *cancel)
{
	int rc = 0;

	pthread_mutex_lock(&c->gate_lock);
	for (;;) {
		int64_t now = clock_mono_ms();
		int64_t wait = c->gate_until_ms > now ? c->gate_until_ms - now : 0;

		if (cancel && atomic_load(cancel)) {
			rc = -ECANCELED;
			break;
		}
		while (c->gate_limit && !wait && now >= c->gate_grow_at_ms) {
			c->gate_limit *= 2;
			c->gate_grow_at_ms += c->gate_step_ms;
			if (c->gate_limit >= HTTP_GATE_CEIL)
				c->gate_limit = 0;
		}
		if (!wait && (!c->gate_limit || c->gate_inflight < c->gate_limit))
			break;
		/* woken by a leave; bounded so that a cancel is seen */
		if (!wait || (cancel && wait > HTTP_CANCEL_POLL_MS))
			wait = HTTP_CANCEL_POLL_MS;
		struct timespec dl = clock_deadline_ms(wait);
		pthread_cond_timedwait(&c->gate_cv, &c->gate_lock, &dl);
	}
	if (!rc)
		c->gate_inflight++;
	pthread_mutex_unlock(&c->gate_lock);
	return rc;
}

void http_gate_leave(struct http_client *c, bool throttled, bool ok, long delay_ms)
{
	bool wake = false;

	pthread_mutex_lock(&c->gate_lock);
	if (c->gate_inflight)
		c->gate_inflight--;
	if (throttled) {
		int64_t until = clock_mono_ms() + (delay_ms > 0 ? delay_ms : 0);
		unsigned was = c->gate_limit ? c->gate_limit : c->gate_inflight + 1;
		unsigned limit = was / 2 ? was / 2 : 1;

		if (!c->gate_limit || limit < c->gate_limit) {
			if (!c->gate_limit && (c->gate_storms++ % 64) == 0)
				log_info("http: the service asks for fewer requests (429): all "
					 "requests wait %ld ms, then resume gradually", delay_ms);
			c->gate_limit = limit;
		}
		if (until > c->gate_until_ms)
			c->gate_until_ms = until;
		c->gate_step_ms = delay_ms > 1000 ? delay_ms : 1000;
		c->gate_grow_at_ms = c->gate_until_ms + c->gate_step_ms;
	} else if (ok && c->gate_limit) {
		if (++c->gate_limit >= HTTP_GATE_CEIL) {
			c->gate_limit = 0;
			log_debug("http: request rate back to normal");
		}
		wake = true;
	} else {
		wake = c->gate_limit != 0;
	}
	pthread_mutex_unlock(&c->gate_lock);
	if (wake)
		pthread_cond_broadcast(&c->gate_cv);
}
