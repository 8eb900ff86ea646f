/*
 * net/jfs.c — see jfs.h. The Jottacloud client: builds URLs and bodies,
 * runs requests through net/http, streams XML bodies into net/jfs_xml
 * decoders and checks JSON bodies with net/jfs_json.
 *
 * This file: the client's life cycle, paths and URLs, the request helpers
 * every operation goes through, and stat. The operations live by job in
 * jfs_list.c (listings, trash, revisions), jfs_download.c, jfs_account.c
 * (quota, devices, customer), jfs_ns.c (mkdir, delete, move, cphash, copy)
 * and jfs_upload.c (allocate, data POST, purge); they share net/jfs_int.h.
 *
 * Threading: a struct jfs is immutable after jfs_new(); every call keeps
 * its state (decoder, sink context, buffers) on its own stack or heap, so
 * any number of threads may call in at once. No locks here; net/http has
 * its own (see http.c).
 *
 * URLs: <jfs_url>/<user>/<device>/<mountpoint>/<segment>/... with every
 * part percent-encoded by http_escape() (only A-Za-z0-9-._~ stay raw), so
 * '+', ';', '%', '#', '?' never reach the wire unescaped. Segments "" "."
 * and ".." are refused (-EINVAL): curl would squash them and the request
 * would name another path.
 *
 * Errors: every failed request goes through jfs_map_failure(): the XML <code>
 * (JFS) or the JSON error fields (API) decide the errno, then the one status
 * table (http_status_errno_or, through jfs_xml_error_errno and
 * jfs_json_error_errno). A malformed or inconsistent answer is -EIO, logged
 * once here with the reason; other failures are logged at debug level.
 *
 * Retries (in net/http): GETs, mkDir, dl (trash a file) and cphash are
 * idempotent; mv, mvDir, rm, rmDir, dlDir, allocate, the data POST and
 * purge_trash are not. A listing broken in mid-transfer is replayed from
 * the start and the entries already handed out are skipped once checked
 * (struct replay).
 */
#include "net/jfs_int.h"

#include "lib/log.h"
#include "lib/redact.h"
#include "lib/xstr.h"
#include "net/jfs_json.h"
#include "net/jfs_xml.h"
#include "net/url.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------- */
/* Paths and URLs                                                         */

char *jfs_dup_trimmed(const char *s)
{
	size_t n = strlen(s);
	while (n > 0 && s[n - 1] == '/')
		n--;
	return strndup(s, n);
}

int jfs_path_check(const char *path)
{
	if (!path)
		return -EINVAL;
	if (!*path)
		return 0;
	for (const char *seg = path;;) {
		const char *end = strchrnul(seg, '/');
		size_t n = (size_t)(end - seg);
		if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
			return -EINVAL;
		if (!*end)
			return 0;
		seg = end + 1;
	}
}

/* One name of the configuration (user, device, mountpoint): a single segment. */
static bool name_ok(const char *s)
{
	return s && *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

void jfs_buf_add_escaped(struct buf *b, const char *s, size_t n)
{
	if (b->err)
		return;
	char *e = http_escape(s, n);
	if (!e) {
		b->err = -ENOMEM;
		return;
	}
	buf_adds(b, e);
	free(e);
}

int jfs_path_url(const struct jfs *j, const char *path, const char *suffix, const char *query,
		 char **out)
{
	*out = NULL;
	int err = jfs_path_check(path);
	if (err)
		return err;
	struct buf b;
	buf_init(&b, 0);
	buf_adds(&b, j->base_url);
	for (const char *seg = path; *seg;) {
		const char *end = strchrnul(seg, '/');
		buf_adds(&b, "/");
		jfs_buf_add_escaped(&b, seg, (size_t)(end - seg));
		seg = *end ? end + 1 : end;
	}
	buf_adds(&b, suffix);
	if (query) {
		buf_adds(&b, "?");
		buf_adds(&b, query);
	}
	*out = buf_take(&b);
	return *out ? 0 : -ENOMEM;
}

char *jfs_dest_query(const struct jfs *j, const char *key, const char *to)
{
	struct buf b;
	buf_init(&b, 0);
	buf_adds(&b, key);
	buf_adds(&b, "=");
	jfs_buf_add_escaped(&b, j->dest_prefix, strlen(j->dest_prefix));
	jfs_buf_add_escaped(&b, "/", 1);
	jfs_buf_add_escaped(&b, to, strlen(to));
	return buf_take(&b);
}

bool jfs_url_ok(const char *u)
{
	/* whether plain http may be used is decided by auth/ for endpoints
	 * and by net/http for every request */
	return url_check(u) != URL_REFUSED;
}

/* ---------------------------------------------------------------------- */
/* Life cycle                                                             */

void jfs_free(struct jfs *j)
{
	if (!j)
		return;
	free(j->api_url);
	free(j->jfs_url);
	free(j->user_url);
	free(j->base_url);
	free(j->dest_prefix);
	free(j->ls_prefix);
	free(j->device);
	free(j->mountpoint);
	free(j);
}

int jfs_new(struct http_client *http, const struct jfs_config *cfg, struct jfs **out)
{
	*out = NULL;
	if (!http || !cfg || !jfs_url_ok(cfg->jfs_url) || !jfs_url_ok(cfg->api_url) ||
	    !name_ok(cfg->username) || !name_ok(cfg->device) || !name_ok(cfg->mountpoint))
		return -EINVAL;
	struct jfs *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->http = http;
	j->api_url = jfs_dup_trimmed(cfg->api_url);
	j->jfs_url = jfs_dup_trimmed(cfg->jfs_url);
	j->device = strdup(cfg->device);
	j->mountpoint = strdup(cfg->mountpoint);
	j->list_entries = cfg->max_list_entries ? cfg->max_list_entries : JFS_LIST_MAX_ENTRIES;
	j->list_bytes = cfg->max_list_bytes ? cfg->max_list_bytes : JFS_LIST_MAX_BYTES;
	j->stream_entries = cfg->max_stream_entries ? cfg->max_stream_entries
						    : JFS_STREAM_MAX_ENTRIES;
	j->stream_bytes = cfg->max_stream_bytes ? cfg->max_stream_bytes : JFS_STREAM_MAX_BYTES;

	struct buf b;
	buf_init(&b, 0);
	buf_adds(&b, j->jfs_url ? j->jfs_url : "");
	buf_adds(&b, "/");
	jfs_buf_add_escaped(&b, cfg->username, strlen(cfg->username));
	j->user_url = buf_take(&b);

	buf_adds(&b, j->user_url ? j->user_url : "");
	buf_adds(&b, "/");
	jfs_buf_add_escaped(&b, cfg->device, strlen(cfg->device));
	buf_adds(&b, "/");
	jfs_buf_add_escaped(&b, cfg->mountpoint, strlen(cfg->mountpoint));
	j->base_url = buf_take(&b);

	j->dest_prefix = xasprintf("/%s/%s/%s", cfg->username, cfg->device, cfg->mountpoint);
	j->ls_prefix = xasprintf("/%s", cfg->mountpoint);

	if (!j->api_url || !j->jfs_url || !j->device || !j->mountpoint || !j->user_url ||
	    !j->base_url || !j->dest_prefix || !j->ls_prefix) {
		jfs_free(j);
		return -ENOMEM;
	}
	*out = j;
	return 0;
}

const char *jfs_origin_prefix(const struct jfs *j)
{
	return j->dest_prefix;
}

/* ---------------------------------------------------------------------- */
/* Requests                                                               */

void jfs_get_init(struct http_request *req, const char *url)
{
	http_request_init(req, "GET", url);
	req->idempotent = true;
}

int jfs_map_failure(int rc, const struct http_response *resp, bool json)
{
	if (resp->status < 400 || rc == -EKEYREJECTED)
		return rc;
	if (json)
		return jfs_json_error_errno(resp->status, resp->body, resp->body_len, rc);
	struct jfs_xml_error e;
	bool ok = resp->body && jfs_xml_parse_error(resp->body, resp->body_len, &e) == 0;
	if (ok && log_enabled(LOG_LVL_DEBUG)) {
		char msg[512], why[160];
		log_debug("jfs: error %ld: %s (%s)", e.code, redact_str(e.message, msg, sizeof(msg)),
			  redact_str(e.reason, why, sizeof(why)));
	}
	return jfs_xml_error_errno(resp->status, ok ? &e : NULL, rc);
}

void jfs_sink_limits(struct xml_sink *s, uint64_t entries, const char *opt_entries,
		     uint64_t bytes, const char *opt_bytes)
{
	jfs_xml_set_limits(s->x, entries, bytes);
	s->max_entries = entries;
	s->max_bytes = bytes;
	s->opt_entries = opt_entries;
	s->opt_bytes = opt_bytes;
}

static int xml_write(void *ctx, const void *data, size_t len)
{
	struct xml_sink *s = ctx;
	int rc = jfs_xml_feed(s->x, data, len);
	if (rc == JFS_XML_DONE) {
		s->done = true;
		return -ECANCELED;       /* stop the transfer: we have what we need */
	}
	if (rc < 0)
		s->err = rc;
	return rc;
}

/* Before net/http retries: start the document over. */
static int xml_reset(void *ctx)
{
	struct xml_sink *s = ctx;
	s->done = false;
	s->err = 0;
	if (s->on_reset)
		s->on_reset(s->reset_ctx);
	return jfs_xml_reset(s->x);
}

/*
 * Run @req (method, URL, headers, idempotency set by the caller) with its
 * body streamed into @s->x, then finish the decoder. @what and @path name
 * the operation in logs. Returns 0 or -errno.
 */
int jfs_request_xml(struct jfs *j, const struct http_request *req, struct xml_sink *s,
		    const char *what, const char *path)
{
	struct http_sink sink = { .write = xml_write, .reset = xml_reset, .ctx = s };
	struct http_request r = *req;
	r.sink = &sink;
	struct http_response resp = { 0 };
	int rc = http_request_do(j->http, &r, &resp);
	if (rc == -ECANCELED && s->done)
		rc = 0;
	if (rc == 0) {
		rc = jfs_xml_finish(s->x);
		if (rc < 0)
			s->err = rc;
	} else if (s->err) {
		rc = s->err;
	} else {
		rc = jfs_map_failure(rc, &resp, false);
	}
	if (s->err == -EFBIG && rc == -EFBIG) {
		/* Over a listing limit: the listing fails as a bad response. */
		bool entries = s->max_entries && jfs_xml_count(s->x) >= s->max_entries;
		log_err("jfs: %s of '%s' refused: %s (the limit: -o %s=%llu)", what,
			*path ? path : "/", jfs_xml_errmsg(s->x),
			entries ? s->opt_entries : s->opt_bytes,
			(unsigned long long)(entries ? s->max_entries : s->max_bytes));
		rc = -EIO;
	} else if (s->err == -EIO && rc == -EIO) {
		char why[200];
		log_err("jfs: %s '%s': bad response: %s", what, path,
			redact_str(jfs_xml_errmsg(s->x), why, sizeof(why)));
	} else if (rc < 0) {
		log_debug("jfs: %s '%s': %s", what, path, strerror(-rc));
	}
	http_response_release(&resp);
	return rc;
}

static int discard_write(void *ctx, const void *data, size_t len)
{
	(void)ctx, (void)data, (void)len;
	return 0;
}

static int discard_reset(void *ctx)
{
	(void)ctx;
	return 0;
}

const struct http_sink jfs_discard = { .write = discard_write, .reset = discard_reset };

int jfs_request_command(struct jfs *j, struct http_request *req, const char *what,
			const char *path)
{
	req->sink = &jfs_discard;
	struct http_response resp = { 0 };
	int rc = http_request_do(j->http, req, &resp);
	if (rc < 0) {
		rc = jfs_map_failure(rc, &resp, false);
		log_debug("jfs: %s '%s': %s", what, path, strerror(-rc));
	}
	http_response_release(&resp);
	return rc;
}

/* A JSON API request with a buffered answer in *resp (released by the
 * caller in every case); errors mapped from the JSON error body. */
int jfs_request_json(struct http_client *http, struct http_request *req,
		     struct http_response *resp, const char *what)
{
	memset(resp, 0, sizeof(*resp));
	int rc = http_request_do(http, req, resp);
	if (rc < 0) {
		rc = jfs_map_failure(rc, resp, true);
		log_debug("jfs: %s: %s", what, strerror(-rc));
	}
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Entries and stat                                                       */

void jfs_entry_release(struct jfs_entry *e)
{
	if (!e)
		return;
	free((char *)e->name);
	free((char *)e->parent);
	free((char *)e->mime);
	free((char *)e->latest_state);
	free((char *)e->origin);
	memset(e, 0, sizeof(*e));
}

int jfs_entry_copy(struct jfs_entry *dst, const struct jfs_entry *src)
{
	*dst = *src;
	dst->name = strdup(src->name);
	dst->parent = src->parent ? strdup(src->parent) : NULL;
	dst->mime = src->mime ? strdup(src->mime) : NULL;
	dst->latest_state = src->latest_state ? strdup(src->latest_state) : NULL;
	dst->origin = src->origin ? strdup(src->origin) : NULL;
	if (!dst->name || (src->parent && !dst->parent) || (src->mime && !dst->mime) ||
	    (src->latest_state && !dst->latest_state) || (src->origin && !dst->origin)) {
		jfs_entry_release(dst);
		return -ENOMEM;
	}
	return 0;
}

int jfs_request_object(struct jfs *j, const struct http_request *req, struct xml_sink *s,
		       const char *what, const char *path, const struct jfs_entry **root)
{
	*root = NULL;
	int rc = jfs_xml_new_stat(NULL, NULL, &s->x);
	if (rc)
		return rc;
	rc = jfs_request_xml(j, req, s, what, path);
	if (!rc)
		*root = jfs_xml_stat_entry(s->x);
	return rc;
}

int jfs_get_document(struct jfs *j, const char *path, jfs_xml_revision_cb cb, void *ctx,
		     struct xml_sink *s, const char *what)
{
	char *url;
	int rc = jfs_path_url(j, path, "", NULL, &url);
	if (rc)
		return rc;
	struct http_request req;
	jfs_get_init(&req, url);
	rc = jfs_xml_new_stat(cb, ctx, &s->x);
	if (!rc)
		rc = jfs_request_xml(j, &req, s, what, path);
	free(url);
	return rc;
}

int jfs_stat(struct jfs *j, const char *path, struct jfs_entry *out)
{
	memset(out, 0, sizeof(*out));
	struct xml_sink s = { 0 };
	int rc = jfs_get_document(j, path, NULL, NULL, &s, "stat");
	const struct jfs_entry *e = rc ? NULL : jfs_xml_stat_entry(s.x);
	if (e && e->deleted)
		rc = -ENOENT;            /* a tombstone in the trash: not there */
	else if (e)
		rc = jfs_entry_copy(out, e);
	jfs_xml_free(s.x);
	return rc;
}
