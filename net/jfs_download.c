/*
 * net/jfs_download.c — ranged downloads (mode=bin + Range) of the current
 * or an older revision, with the answer's status and Content-Range vetted
 * before a single byte reaches the caller's sink.
 */
#include "net/jfs_int.h"

#include "lib/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Wraps the caller's sink: vets status and Content-Range before the first
 * byte is passed on, and counts. */
struct dl_sink {
	const struct http_sink *user;
	int64_t first, last;     /* requested; last -1: to the end */
	bool whole;              /* no Range header sent */
	bool begun;              /* begin() accepted this attempt's response */
	int64_t expect;          /* bytes this response must carry, -1: unknown */
	int64_t attempt;         /* bytes of this attempt passed on */
	int64_t got;             /* bytes passed on since the caller's sink started */
	const char *path;
};

/* Decimal digits (at least one; no sign, no blanks) at *s, within int64. */
static bool range_num(const char **s, long long *out)
{
	char *end;
	if (**s < '0' || **s > '9')
		return false;
	errno = 0;
	*out = strtoll(*s, &end, 10);
	if (errno)
		return false;
	*s = end;
	return true;
}

/* "bytes a-b/total", or "bytes a-b/" then "*" for an unknown total (-1). */
static bool parse_content_range(const char *s, int64_t *a, int64_t *b, int64_t *total)
{
	long long x, y, t = -1;
	if (!s || strncasecmp(s, "bytes ", 6))
		return false;
	s += 6;
	if (!range_num(&s, &x) || *s++ != '-' || !range_num(&s, &y) || *s++ != '/' || y < x)
		return false;
	if (strcmp(s, "*") && (!range_num(&s, &t) || *s || t <= y))
		return false;
	*a = x;
	*b = y;
	*total = t;
	return true;
}

int jfs_content_range_check(const char *content_range, int64_t first, int64_t last,
			    int64_t *expect)
{
	int64_t a, b, total;
	if (!parse_content_range(content_range, &a, &b, &total) || a != first)
		return -EIO;
	if (last >= 0) {
		/* the requested range, or shorter when the file ends first */
		if (b != last && !(b < last && total >= 0 && b == total - 1))
			return -EIO;
	} else if (total >= 0 && b != total - 1) {
		return -EIO;
	}
	/* b >= a >= 0, yet "bytes 0-<INT64_MAX>/" with an unknown total is
	 * one byte longer than int64 */
	if (__builtin_sub_overflow(b, a, expect) || __builtin_add_overflow(*expect, 1, expect))
		return -EIO;
	return 0;
}

static int dl_begin(void *ctx, long status, const char *content_range)
{
	struct dl_sink *d = ctx;
	d->begun = false;
	d->attempt = 0;
	if (d->whole) {
		if (status != 200)
			goto bad;
		d->expect = -1;
		d->begun = true;
		return 0;
	}
	if (status != 206 || jfs_content_range_check(content_range, d->first, d->last, &d->expect) < 0)
		goto bad;
	d->begun = true;
	return 0;
bad:
	log_err("jfs: download '%s' [%" PRId64 ", %" PRId64 "]: refused answer %ld "
		"(Content-Range: %s)", d->path, d->first, d->last, status,
		content_range ? content_range : "none");
	return -EIO;
}

static int dl_write(void *ctx, const void *data, size_t len)
{
	struct dl_sink *d = ctx;
	if (!d->begun) {
		log_err("jfs: download '%s': body before its status was checked", d->path);
		return -EIO;
	}
	int64_t n;
	if (__builtin_add_overflow(d->attempt, (int64_t)len, &n) ||
	    (d->expect >= 0 && n > d->expect)) {
		log_err("jfs: download '%s': more bytes than the range", d->path);
		return -EIO;
	}
	int rc = d->user->write(d->user->ctx, data, len);
	if (rc < 0)
		return rc;
	d->attempt = n;
	d->got += (int64_t)len;
	return 0;
}

static int dl_reset(void *ctx)
{
	struct dl_sink *d = ctx;
	int rc = d->user->reset(d->user->ctx);
	if (rc < 0)
		return rc;
	d->got = 0;
	d->attempt = 0;
	d->begun = false;
	return 0;
}

/* jfs_download() of the current revision (@revision 0) or of @revision. */
static int download(struct jfs *j, const char *path, int64_t revision, int64_t first,
		    int64_t last, const struct http_sink *sink, int64_t *got)
{
	if (got)
		*got = 0;
	if (!sink || !sink->write || first < 0 || last < -1 || (last >= 0 && last < first) ||
	    revision < 0)
		return -EINVAL;
	char *url, query[64];
	if (revision)
		snprintf(query, sizeof(query), "mode=bin&revision=%" PRId64, revision);
	else
		snprintf(query, sizeof(query), "mode=bin");
	int rc = jfs_path_url(j, path, "", query, &url);
	if (rc)
		return rc;
	struct dl_sink d = {
		.user = sink, .first = first, .last = last, .whole = first == 0 && last == -1,
		.expect = -1, .path = path,
	};
	struct http_sink wrap = {
		.write = dl_write, .reset = sink->reset ? dl_reset : NULL, .ctx = &d,
		.begin = dl_begin,
	};
	struct http_request req;
	jfs_get_init(&req, url);
	req.sink = &wrap;
	if (!d.whole) {
		req.range_first = first;
		req.range_last = last;
	}
	struct http_response resp = { 0 };
	rc = http_request_do(j->http, &req, &resp);
	if (rc < 0) {
		rc = jfs_map_failure(rc, &resp, false);
		log_debug("jfs: download '%s': %s", path, strerror(-rc));
	} else if (!d.begun) {
		log_err("jfs: download '%s': answer %ld was not checked", path, resp.status);
		rc = -EIO;
	} else if (d.expect >= 0 && d.attempt != d.expect) {
		log_err("jfs: download '%s': %" PRId64 " of %" PRId64 " bytes", path, d.attempt,
			d.expect);
		rc = -EIO;
	}
	if (got)
		*got = d.got;
	http_response_release(&resp);
	free(url);
	return rc;
}

int jfs_download(struct jfs *j, const char *path, int64_t first, int64_t last,
		 const struct http_sink *sink, int64_t *got)
{
	return download(j, path, 0, first, last, sink, got);
}

int jfs_download_revision(struct jfs *j, const char *path, int64_t revision, int64_t first,
			  int64_t last, const struct http_sink *sink, int64_t *got)
{
	if (revision <= 0)
		return -EINVAL;
	return download(j, path, revision, first, last, sink, got);
}

