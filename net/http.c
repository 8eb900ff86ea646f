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
 * Lock order: pool_lock, gate_lock and share_lock[*] are leaves (nothing else is taken
 * while they are held, and they are never held across I/O or callbacks into
 * other modules). The token provider is called with no lock held; it may
 * itself make requests on this client (it checks out another handle).
 *
 * The pieces: this file holds the client, the pool and the request loop;
 * http_xfer.c one attempt (callbacks, headers, curl options, cancellation),
 * http_retry.c the retry policy and delays, http_errno.c the one wire ->
 * errno mapping, http_trace.c the debug trace, http_ca.c the CA bundle,
 * http_text.c escaping and header values.
 *
 * Connectivity (net/conn.h)
 * -------------------------
 * Each attempt's outcome is reported: an HTTP answer other than 5xx is a
 * success, a 5xx or a transport failure (not a cancel, not the sink's own
 * error) a failure. While the state is offline a request (other than a
 * probe) is refused before it is sent, and a retry loop that sees the
 * state turn offline ends: both return -EHOSTDOWN, with status 0.
 */
#include "net/http_int.h"

#include "lib/backoff.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "net/conn.h"
#include "net/url.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* Milliseconds since @t0 (clock_mono_ms()). */
static long elapsed_ms(int64_t t0)
{
	return (long)(clock_mono_ms() - t0);
}

bool http_client_insecure_http(const struct http_client *c)
{
	return c->insecure_http;
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
	http_gate_init(c);
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
	http_gate_destroy(c);
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
/* The request loop                                                       */

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
		char *turl = http_trace_url(req->url ? req->url : "", true);
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
	char *turl = trace ? http_trace_url(req->url, req->secret_body) : NULL;
	char *token = NULL;
	bool refreshed = false;
	int retries = 0;
	int result = -EIO;
	char errbuf[CURL_ERROR_SIZE];

	int64_t start = clock_mono_ms();

	struct ca_blob *ca = NULL;
	struct pooled p;
	if (pool_get(c, &p, &ca) < 0) {
		free(turl);
		return -ENOMEM;
	}
	CURL *h = p.h;

	for (;;) {
		struct xfer x = { .h = h, .req = req, .up_len = body_len };

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
			if (!http_token_ok(token)) {
				log_err("http: the token provider returned a malformed access token");
				result = -EIO;
				break;
			}
		}
		struct curl_slist *hdrs = http_build_headers(req, token);
		if (!hdrs) {
			result = -ENOMEM;
			break;
		}
		/* every attempt (but a probe's) passes the throttle gate */
		if (!req->probe && http_gate_enter(c, req->cancel) < 0) {
			http_free_headers(hdrs);
			result = -ECANCELED;
			break;
		}
		errbuf[0] = '\0';
		int64_t t0 = clock_mono_ms();
		CURLcode rc = http_setup_handle(c, h, &x, hdrs, ca, errbuf);
		if (rc == CURLE_OK)
			rc = http_run_transfer(&p, &x);
		http_free_headers(hdrs);
		resp->attempts++;

		long status = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		curl_off_t ra = -1;
		if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK || ra <= 0)
			ra = -1;
		/* a deliberately cut error body still is a complete HTTP answer */
		bool http_done = rc == CURLE_OK || (x.error_body_cut && status);
		if (trace)
			http_trace_attempt(req, turl, &x, rc, http_done, status, errbuf,
					   elapsed_ms(t0), retries || refreshed);

		/* This attempt's outcome goes to the response (the last one wins). */
		free(resp->body);
		free(resp->content_range);
		free(resp->transport_error);
		resp->body = x.body.p;
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
		enum http_step next = http_next_step(c, req, &x, rc, http_done, status,
						     (long)ra, use_auth && !refreshed, retries,
						     &result, &delay_ms);
		if (!req->probe) {
			bool throttled = http_done && (status == 429 || (status == 503 && ra > 0));
			long gate_ms = delay_ms;
			if (throttled && next != HTTP_STEP_RETRY)
				gate_ms = http_retry_delay_ms((long)ra, http_backoff_ms(
					c->backoff_min_ms, c->backoff_max_ms, (unsigned)retries,
					rng_u64()), rng_u64());
			http_gate_leave(c, throttled, http_done && status < 500, gate_ms);
		}
		if (next == HTTP_STEP_RETRY && req->probe)
			next = HTTP_STEP_DONE;
		if (next == HTTP_STEP_RETRY && elapsed_ms(start) + delay_ms > c->retry_budget_ms) {
			log_debug("http: %s %s: retry budget of %ld ms spent", req->method,
				  turl ? turl : "?", c->retry_budget_ms);
			next = HTTP_STEP_DONE;
		}
		if (next != HTTP_STEP_DONE && c->conn && !req->probe && !conn_admit(c->conn)) {
			result = offline(resp);
			break;
		}
		if (next == HTTP_STEP_DONE)
			break;
		if (next == HTTP_STEP_REFRESH) {
			/* 401: the token was refused; ask the provider for a new one */
			log_debug("http: 401 from %s: refreshing the token", turl ? turl : "?");
			refreshed = true;
			drop_token(&token);
			continue;
		}
		retries++;
		log_debug("http: retry %d/%d of %s %s in %ld ms", retries, c->max_retries,
			  req->method, turl ? turl : "?", delay_ms);
		if (http_sleep_cancellable(delay_ms, req->cancel)) {
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
