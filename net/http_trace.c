/*
 * net/http_trace.c — the debug trace of net/http: one line per attempt,
 * with URLs stripped of user info, token-like path segments and secret
 * query values, and error bodies redacted (lib/redact.h). Nothing here
 * ever logs an Authorization header or a secret request body.
 */
#include "net/http_int.h"

#include "lib/log.h"
#include "lib/redact.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
char *http_trace_url(const char *url, bool secret)
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

/* One debug line per attempt (the caller checked the level). The error
 * body is shown only for requests without secrets, and then redacted (a
 * server or proxy may echo our Authorization header in it). */
void http_trace_attempt(const struct http_request *req, const char *turl,
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
		log_debug("http: error body: %s", redact_text(x->body.p, x->body.len, shown,
							      sizeof(shown)));
	}
}
