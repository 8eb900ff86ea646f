/*
 * net/jfs.c — see jfs.h. The Jottacloud client: builds URLs and bodies,
 * runs requests through net/http, streams XML bodies into net/jfs_xml
 * decoders and checks JSON bodies with net/jfs_json.
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
 * Errors: every failed request goes through map_failure(): the XML <code>
 * (JFS) or the JSON error fields (API) decide the errno, the HTTP status
 * only when the body says nothing (jfs_xml_error_errno,
 * jfs_json_error_errno). A malformed or inconsistent answer is -EIO, logged
 * once here with the reason; other failures are logged at debug level.
 *
 * Retries (in net/http): GETs, mkDir, dl (trash a file) and cphash are
 * idempotent; mv, mvDir, rm, rmDir, dlDir, allocate, the data POST and
 * purge_trash are not. A listing broken in mid-transfer is replayed from
 * the start and the entries already handed out are skipped once checked
 * (struct replay).
 *
 * Namespace commands that are not idempotent (mv, mvDir, rm, rmDir, dlDir)
 * are retried here instead, safely: after an ambiguous failure (a 5xx, a
 * connection cut before the answer, a timeout) the service's state is
 * read (stat of the source and target) and the command is sent again only
 * if it did not happen; if it did, that is success. At most NS_ATTEMPTS
 * sends within NS_BUDGET_MS, never while offline (-EHOSTDOWN).
 */
#include "net/jfs.h"

#include "lib/log.h"
#include "lib/redact.h"
#include "net/http.h"
#include "net/jfs_json.h"
#include "net/jfs_xml.h"
#include "net/jtime.h"
#include "net/url.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define JFS_JSON_BODY_MAX   (64u << 10)   /* allocate, upload, purge answers */
#define JFS_CUSTOMER_MAX    (1u << 20)    /* customer document */
#define JFS_MAX_DEVICES     1024
#define JFS_MAX_MOUNTPOINTS 4096
#define JFS_NAMES_BYTES_MAX (1u << 20)    /* all device or mountpoint names together */
#define NS_ATTEMPTS         10            /* sends of one namespace command */
#define NS_BUDGET_MS        60000         /* ... within this long */
#define NS_BACKOFF_MIN_MS   200
#define NS_BACKOFF_MAX_MS   5000

struct jfs {
	struct http_client *http;
	char *api_url;           /* no trailing '/' */
	char *jfs_url;           /* no trailing '/' */
	char *user_url;          /* <jfs_url>/<user>, escaped */
	char *base_url;          /* <user_url>/<device>/<mountpoint>, escaped */
	char *dest_prefix;       /* "/<user>/<device>/<mountpoint>" raw (mv/cp targets) */
	char *ls_prefix;         /* "/<mountpoint>" raw (liststream paths) */
	char *device;
	char *mountpoint;
	uint64_t list_entries, list_bytes;      /* limits (jfs.h), defaults applied */
	uint64_t stream_entries, stream_bytes;
};

/* ---------------------------------------------------------------------- */
/* Strings                                                                */

/* A growing string; the first allocation failure sticks (oom). */
struct sb {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	size_t need;
	if (__builtin_add_overflow(b->len, n, &need) || __builtin_add_overflow(need, 1, &need)) {
		b->oom = true;
		return;
	}
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 128;
		while (cap < need) {
			if (__builtin_mul_overflow(cap, 2, &cap)) {
				b->oom = true;
				return;
			}
		}
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_adds(struct sb *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

/* Append @n bytes of @s percent-encoded (http_escape). */
static void sb_add_escaped(struct sb *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	char *e = http_escape(s, n);
	if (!e) {
		b->oom = true;
		return;
	}
	sb_adds(b, e);
	free(e);
}

/* The finished string (caller frees), or NULL on ENOMEM. */
static char *sb_take(struct sb *b)
{
	if (b->oom || !b->p) {
		free(b->p);
		if (!b->oom && (b->p = strdup("")))
			return b->p;
		return NULL;
	}
	return b->p;
}

/* A copy of @s without trailing '/'. */
static char *dup_trimmed(const char *s)
{
	size_t n = strlen(s);
	while (n > 0 && s[n - 1] == '/')
		n--;
	return strndup(s, n);
}

/* A path (jfs.h form): "" or segments joined by '/', none "", "." or "..". */
static int check_path(const char *path)
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

/*
 * URL of @path under the mountpoint, each segment escaped, then @suffix
 * ("" or "/") and "?@query" when @query is not NULL (already escaped).
 * *out is malloc'd. -EINVAL for a bad path, -ENOMEM.
 */
static int path_url(const struct jfs *j, const char *path, const char *suffix,
		    const char *query, char **out)
{
	*out = NULL;
	int err = check_path(path);
	if (err)
		return err;
	struct sb b = { 0 };
	sb_adds(&b, j->base_url);
	for (const char *seg = path; *seg;) {
		const char *end = strchrnul(seg, '/');
		sb_adds(&b, "/");
		sb_add_escaped(&b, seg, (size_t)(end - seg));
		seg = *end ? end + 1 : end;
	}
	sb_adds(&b, suffix);
	if (query) {
		sb_adds(&b, "?");
		sb_adds(&b, query);
	}
	*out = sb_take(&b);
	return *out ? 0 : -ENOMEM;
}

/* "<key>=<escaped @value>" for a query string. */
static char *query_kv(const char *key, const char *value)
{
	struct sb b = { 0 };
	sb_adds(&b, key);
	sb_adds(&b, "=");
	sb_add_escaped(&b, value, strlen(value));
	return sb_take(&b);
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

/* A usable endpoint URL (net/url.h); whether plain http may be used is
 * decided by auth/ for endpoints and by net/http for every request. */
static bool url_ok(const char *u)
{
	return url_check(u) != URL_REFUSED;
}

int jfs_new(struct http_client *http, const struct jfs_config *cfg, struct jfs **out)
{
	*out = NULL;
	if (!http || !cfg || !url_ok(cfg->jfs_url) || !url_ok(cfg->api_url) ||
	    !name_ok(cfg->username) || !name_ok(cfg->device) || !name_ok(cfg->mountpoint))
		return -EINVAL;
	struct jfs *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->http = http;
	j->api_url = dup_trimmed(cfg->api_url);
	j->jfs_url = dup_trimmed(cfg->jfs_url);
	j->device = strdup(cfg->device);
	j->mountpoint = strdup(cfg->mountpoint);
	j->list_entries = cfg->max_list_entries ? cfg->max_list_entries : JFS_LIST_MAX_ENTRIES;
	j->list_bytes = cfg->max_list_bytes ? cfg->max_list_bytes : JFS_LIST_MAX_BYTES;
	j->stream_entries = cfg->max_stream_entries ? cfg->max_stream_entries
						    : JFS_STREAM_MAX_ENTRIES;
	j->stream_bytes = cfg->max_stream_bytes ? cfg->max_stream_bytes : JFS_STREAM_MAX_BYTES;

	struct sb b = { 0 };
	sb_adds(&b, j->jfs_url ? j->jfs_url : "");
	sb_adds(&b, "/");
	sb_add_escaped(&b, cfg->username, strlen(cfg->username));
	j->user_url = sb_take(&b);

	b = (struct sb){ 0 };
	sb_adds(&b, j->user_url ? j->user_url : "");
	sb_adds(&b, "/");
	sb_add_escaped(&b, cfg->device, strlen(cfg->device));
	sb_adds(&b, "/");
	sb_add_escaped(&b, cfg->mountpoint, strlen(cfg->mountpoint));
	j->base_url = sb_take(&b);

	b = (struct sb){ 0 };
	sb_adds(&b, "/");
	sb_adds(&b, cfg->username);
	sb_adds(&b, "/");
	sb_adds(&b, cfg->device);
	sb_adds(&b, "/");
	sb_adds(&b, cfg->mountpoint);
	j->dest_prefix = sb_take(&b);

	b = (struct sb){ 0 };
	sb_adds(&b, "/");
	sb_adds(&b, cfg->mountpoint);
	j->ls_prefix = sb_take(&b);

	if (!j->api_url || !j->jfs_url || !j->device || !j->mountpoint || !j->user_url ||
	    !j->base_url || !j->dest_prefix || !j->ls_prefix) {
		jfs_free(j);
		return -ENOMEM;
	}
	*out = j;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Requests                                                               */

/* The errno of a request that failed with @rc: from the error body when the
 * server answered with an error status, else @rc as net/http mapped it. */
static int map_failure(int rc, const struct http_response *resp, bool json)
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

/* Streaming an XML body into a decoder (http_sink context). */
struct xml_sink {
	struct jfs_xml *x;
	/* The decoder's limits (jfs_xml_set_limits) and the options that set them. */
	uint64_t max_entries, max_bytes;
	const char *opt_entries, *opt_bytes;
	bool done;               /* the decoder needs no more input */
	int err;                 /* the decoder's error */
	void (*on_reset)(void *ctx);   /* before a retry (may be NULL) */
	void *reset_ctx;
};

/* Set the limits of @s's decoder, named by the options that set them. */
static void xml_limits(struct xml_sink *s, uint64_t entries, const char *opt_entries,
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
static int xml_request(struct jfs *j, const struct http_request *req, struct xml_sink *s,
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
		rc = map_failure(rc, &resp, false);
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

/* Run a command whose answer is not needed (its body is drained). */
static int command(struct jfs *j, struct http_request *req, const char *what, const char *path)
{
	static const struct http_sink discard = { .write = discard_write, .reset = discard_reset };
	req->sink = &discard;
	struct http_response resp = { 0 };
	int rc = http_request_do(j->http, req, &resp);
	if (rc < 0) {
		rc = map_failure(rc, &resp, false);
		log_debug("jfs: %s '%s': %s", what, path, strerror(-rc));
	}
	http_response_release(&resp);
	return rc;
}

/* A JSON API request with a buffered answer in *resp (released by the
 * caller in every case); errors mapped from the JSON error body. */
static int json_request(struct http_client *http, struct http_request *req,
			struct http_response *resp, const char *what)
{
	memset(resp, 0, sizeof(*resp));
	int rc = http_request_do(http, req, resp);
	if (rc < 0) {
		rc = map_failure(rc, resp, true);
		log_debug("jfs: %s: %s", what, strerror(-rc));
	}
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Listings and metadata                                                  */

/*
 * Entries handed to the caller cannot be taken back, yet a listing broken
 * in mid-transfer should be retried. So a retry replays the document and
 * skips the entries already delivered, after checking that they came again
 * exactly (a cumulative hash of every field: O(1) memory); a listing that
 * changed in between is -EIO, never a silent mix of two listings.
 */
struct replay {
	jfs_entry_cb cb;
	void *ctx;
	uint64_t delivered, delivered_hash;   /* handed to cb so far */
	uint64_t seen, seen_hash;             /* decoded in this attempt */
	bool changed;
	const char *what, *path;
};

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t hash_str(uint64_t h, const char *s)
{
	return s ? hash_bytes(h, s, strlen(s) + 1) : hash_bytes(h, "\xff\xfe", 2);
}

/* Chain @h with every field of @e. */
static uint64_t entry_hash(uint64_t h, const struct jfs_entry *e)
{
	h = hash_str(h, e->name);
	h = hash_str(h, e->parent);
	h = hash_str(h, e->mime);
	h = hash_str(h, e->latest_state);
	h = hash_str(h, e->md5);
	h = hash_str(h, e->latest_md5);
	h = hash_str(h, e->bad);
	const int64_t v[] = { e->is_dir, e->deleted, e->completed, e->has_latest, e->size,
			      e->revision, e->latest_size, (int64_t)e->created,
			      (int64_t)e->modified, (int64_t)e->updated };
	return hash_bytes(h, v, sizeof(v));
}

static int replay_cb(void *ctx, const struct jfs_entry *e)
{
	struct replay *r = ctx;
	r->seen_hash = entry_hash(r->seen_hash, e);
	r->seen++;
	if (r->seen < r->delivered)
		return 0;
	if (r->seen == r->delivered) {
		if (r->seen_hash != r->delivered_hash) {
			r->changed = true;
			return -ESTALE;  /* -EIO, logged once, by replay_end() */
		}
		return 0;
	}
	int rc = r->cb(r->ctx, e);
	r->delivered = r->seen;
	r->delivered_hash = r->seen_hash;
	return rc;
}

static void replay_reset(void *ctx)
{
	struct replay *r = ctx;
	r->seen = 0;
	r->seen_hash = 0xcbf29ce484222325ULL;
}

/* After the listing request: a replay that ended before catching up with
 * what was delivered is a changed listing too. */
static int replay_end(struct replay *r, int rc)
{
	if (rc == 0 && r->seen < r->delivered)
		r->changed = true;
	if (r->changed && (rc == 0 || rc == -ESTALE)) {
		log_err("jfs: %s '%s': the listing changed while a broken transfer was retried",
			r->what, r->path);
		return -EIO;
	}
	return rc;
}

/* The decoder of a folder listing into @s, with the folder listing limits. */
static int list_decoder(struct jfs *j, struct replay *r, struct xml_sink *s)
{
	int rc = jfs_xml_new_list(replay_cb, r, &s->x);
	if (!rc)
		xml_limits(s, j->list_entries, "max_listing_entries", j->list_bytes,
			   "max_listing_bytes");
	return rc;
}

int jfs_list(struct jfs *j, const char *path, jfs_entry_cb cb, void *ctx)
{
	char *url;
	int rc = path_url(j, path, "", NULL, &url);
	if (rc)
		return rc;
	struct replay r = { .cb = cb, .ctx = ctx, .what = "list", .path = path };
	replay_reset(&r);
	struct xml_sink s = { .on_reset = replay_reset, .reset_ctx = &r };
	rc = list_decoder(j, &r, &s);
	if (!rc) {
		struct http_request req;
		http_request_init(&req, "GET", url);
		req.idempotent = true;
		rc = replay_end(&r, xml_request(j, &req, &s, "list", path));
	}
	jfs_xml_free(s.x);
	free(url);
	return rc;
}

int jfs_liststream(struct jfs *j, const char *path, jfs_entry_cb cb, void *ctx)
{
	char *url;
	int rc = path_url(j, path, "", "mode=liststream", &url);
	if (rc)
		return rc;
	struct sb prefix = { 0 };
	sb_adds(&prefix, j->ls_prefix);
	if (*path) {
		sb_adds(&prefix, "/");
		sb_adds(&prefix, path);
	}
	char *pfx = sb_take(&prefix);
	struct replay r = { .cb = cb, .ctx = ctx, .what = "liststream", .path = path };
	replay_reset(&r);
	struct xml_sink s = { .on_reset = replay_reset, .reset_ctx = &r };
	rc = pfx ? jfs_xml_new_liststream(pfx, replay_cb, &r, &s.x) : -ENOMEM;
	if (!rc) {
		xml_limits(&s, j->stream_entries, "max_stream_entries", j->stream_bytes,
			   "max_stream_bytes");
		struct http_request req;
		http_request_init(&req, "GET", url);
		req.idempotent = true;
		rc = replay_end(&r, xml_request(j, &req, &s, "liststream", path));
	}
	jfs_xml_free(s.x);
	free(pfx);
	free(url);
	return rc;
}

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

/* Copy @src into @dst with owned strings. -ENOMEM. */
static int entry_copy(struct jfs_entry *dst, const struct jfs_entry *src)
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

/* GET-like request answered by an object document, decoded by a stat
 * decoder; on success *root is the document's root entry (owned by @s->x). */
static int object_request(struct jfs *j, const struct http_request *req, struct xml_sink *s,
			  const char *what, const char *path, const struct jfs_entry **root)
{
	*root = NULL;
	int rc = jfs_xml_new_stat(NULL, NULL, &s->x);
	if (rc)
		return rc;
	rc = xml_request(j, req, s, what, path);
	if (!rc)
		*root = jfs_xml_stat_entry(s->x);
	return rc;
}

int jfs_stat(struct jfs *j, const char *path, struct jfs_entry *out)
{
	memset(out, 0, sizeof(*out));
	char *url;
	int rc = path_url(j, path, "", NULL, &url);
	if (rc)
		return rc;
	struct http_request req;
	http_request_init(&req, "GET", url);
	req.idempotent = true;
	struct xml_sink s = { 0 };
	const struct jfs_entry *e;
	rc = object_request(j, &req, &s, "stat", path, &e);
	if (!rc && e->deleted)
		rc = -ENOENT;            /* a tombstone in the trash: not there */
	if (!rc)
		rc = entry_copy(out, e);
	jfs_xml_free(s.x);
	free(url);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Download                                                               */

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
	int rc = path_url(j, path, "", query, &url);
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
	http_request_init(&req, "GET", url);
	req.idempotent = true;
	req.sink = &wrap;
	if (!d.whole) {
		req.range_first = first;
		req.range_last = last;
	}
	struct http_response resp = { 0 };
	rc = http_request_do(j->http, &req, &resp);
	if (rc < 0) {
		rc = map_failure(rc, &resp, false);
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

/* ---------------------------------------------------------------------- */
/* Account, devices                                                       */

int jfs_quota(struct jfs *j, struct jfs_quota *out)
{
	memset(out, 0, sizeof(*out));
	struct xml_sink s = { 0 };
	int rc = jfs_xml_new_user(NULL, NULL, &s.x);
	if (rc)
		return rc;
	struct http_request req;
	http_request_init(&req, "GET", j->user_url);
	req.idempotent = true;
	rc = xml_request(j, &req, &s, "quota", "");
	if (!rc) {
		const struct jfs_xml_user *u = jfs_xml_user_info(s.x);
		out->usage = u->usage;
		out->capacity = u->capacity;
		memcpy(out->account_type, u->account_type, sizeof(out->account_type));
	}
	jfs_xml_free(s.x);
	return rc;
}

int jfs_ping(struct jfs *j)
{
	static const struct http_sink discard = { .write = discard_write, .reset = discard_reset };
	struct http_request req;
	struct http_response resp = { 0 };

	http_request_init(&req, "GET", j->user_url);
	req.idempotent = true;
	req.probe = true;
	req.sink = &discard;
	int rc = http_request_do(j->http, &req, &resp);
	if (rc && resp.status > 0 && resp.status < 500)
		rc = 0;                  /* an answer: the service is there */
	http_response_release(&resp);
	return rc;
}

/* A bounded list of names (devices, mountpoints), NULL-terminated. */
struct namelist {
	char **v;
	size_t n, cap, bytes, max;
	int err;
};

static void namelist_clear(void *ctx)
{
	struct namelist *l = ctx;
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	l->n = l->bytes = 0;
	if (l->v)
		l->v[0] = NULL;
	l->err = 0;
}

static int namelist_add(struct namelist *l, const char *name)
{
	size_t len = strlen(name);
	if (l->n >= l->max || len > JFS_NAMES_BYTES_MAX - l->bytes)
		return l->err = -EIO;
	if (l->n + 2 > l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return l->err = -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	if (!(l->v[l->n] = strdup(name)))
		return l->err = -ENOMEM;
	l->v[++l->n] = NULL;
	l->bytes += len;
	return 0;
}

static void namelist_free(struct namelist *l)
{
	namelist_clear(l);
	free(l->v);
	l->v = NULL;
	l->cap = 0;
}

static int on_device(void *ctx, const struct jfs_xml_device *d)
{
	return namelist_add(ctx, d->name);
}

static int on_mountpoint(void *ctx, const char *name, int64_t size)
{
	(void)size;
	return namelist_add(ctx, name);
}

/* GET the device document of @device: mountpoint names into @mps; the
 * document's own fields stay in @s->x (jfs_xml_device_info). */
static int device_request(struct jfs *j, const char *device, struct namelist *mps,
			  struct xml_sink *s)
{
	struct sb b = { 0 };
	sb_adds(&b, j->user_url);
	sb_adds(&b, "/");
	sb_add_escaped(&b, device, strlen(device));
	char *url = sb_take(&b);
	if (!url)
		return -ENOMEM;
	int rc = jfs_xml_new_device(on_mountpoint, mps, &s->x);
	if (!rc) {
		s->on_reset = namelist_clear;
		s->reset_ctx = mps;
		struct http_request req;
		http_request_init(&req, "GET", url);
		req.idempotent = true;
		rc = xml_request(j, &req, s, "device", device);
	}
	free(url);
	return rc;
}

int jfs_devices(struct jfs *j, jfs_device_cb cb, void *ctx)
{
	struct namelist devs = { .max = JFS_MAX_DEVICES };
	struct xml_sink s = { .on_reset = namelist_clear, .reset_ctx = &devs };
	int rc = jfs_xml_new_user(on_device, &devs, &s.x);
	if (!rc) {
		struct http_request req;
		http_request_init(&req, "GET", j->user_url);
		req.idempotent = true;
		rc = xml_request(j, &req, &s, "devices", "");
	}
	jfs_xml_free(s.x);
	for (size_t i = 0; !rc && i < devs.n; i++) {
		struct namelist mps = { .max = JFS_MAX_MOUNTPOINTS };
		struct xml_sink ds = { 0 };
		rc = device_request(j, devs.v[i], &mps, &ds);
		if (!rc) {
			const struct jfs_xml_device *d = jfs_xml_device_info(ds.x);
			static const char *const none[] = { NULL };
			struct jfs_device_info info = {
				.name = d->name[0] ? d->name : devs.v[i],
				.type = d->type,
				.size = d->size,
				.mountpoints = mps.n ? (const char *const *)mps.v : none,
			};
			rc = cb(ctx, &info);
		}
		jfs_xml_free(ds.x);
		namelist_free(&mps);
	}
	namelist_free(&devs);
	return rc;
}

/* The caller tells the user (one line, with what to do): only a debug trace here. */
int jfs_check_mountpoint(struct jfs *j)
{
	struct namelist mps = { .max = JFS_MAX_MOUNTPOINTS };
	struct xml_sink s = { 0 };
	int rc = device_request(j, j->device, &mps, &s);
	if (!rc) {
		rc = -ENOENT;
		for (size_t i = 0; i < mps.n; i++)
			if (!strcasecmp(mps.v[i], j->mountpoint))
				rc = 0;
		if (rc)
			log_debug("jfs: no mountpoint '%s' on device '%s'", j->mountpoint, j->device);
	} else if (rc == -ENOENT) {
		log_debug("jfs: no device '%s'", j->device);
	}
	jfs_xml_free(s.x);
	namelist_free(&mps);
	return rc;
}

int jfs_customer_username(struct http_client *http, const char *api_url, char **username)
{
	*username = NULL;
	if (!http || !url_ok(api_url))
		return -EINVAL;
	char *base = dup_trimmed(api_url);
	struct sb b = { 0 };
	sb_adds(&b, base ? base : "");
	sb_adds(&b, "/account/v1/customer");
	char *url = sb_take(&b);
	free(base);
	if (!url)
		return -ENOMEM;
	struct http_request req;
	http_request_init(&req, "GET", url);
	req.idempotent = true;
	req.max_body = JFS_CUSTOMER_MAX;
	struct http_response resp;
	int rc = json_request(http, &req, &resp, "customer");
	if (!rc) {
		rc = jfs_json_customer_username(resp.body, resp.body_len, username);
		if (rc == -EIO)
			log_err("jfs: customer: no valid username in the answer");
	}
	http_response_release(&resp);
	free(url);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Commands                                                               */

int jfs_mkdir(struct jfs *j, const char *path)
{
	int rc = check_path(path);
	if (rc || !*path)
		return rc;               /* the mountpoint root always exists */
	char *url;
	if ((rc = path_url(j, path, "", "mkDir=true", &url)))
		return rc;
	struct http_request req;
	http_request_init(&req, "POST", url);
	req.idempotent = true;           /* mkdir -p */
	rc = command(j, &req, "mkdir", path);
	free(url);
	return rc;
}

static int delete_once(struct jfs *j, const char *path, bool is_dir, bool hard)
{
	if (check_path(path) || !*path)
		return -EINVAL;          /* never the mountpoint root */
	const char *q = is_dir ? (hard ? "rmDir=true" : "dlDir=true")
			       : (hard ? "rm=true" : "dl=true");
	char *url;
	int rc = path_url(j, path, "", q, &url);
	if (rc)
		return rc;
	struct http_request req;
	http_request_init(&req, "POST", url);
	req.idempotent = !is_dir && !hard;   /* dl=true answers 2xx on a missing path */
	rc = command(j, &req, is_dir ? "delete folder" : "delete", path);
	free(url);
	return rc;
}

/* One mv/mvDir; -EBADMSG when the service answered with something that is
 * not the moved file (jfs_move() reports that as -EIO, not retried). */
static int move_once(struct jfs *j, const char *from, const char *to, bool is_dir)
{
	if (check_path(from) || check_path(to) || !*from || !*to)
		return -EINVAL;
	struct sb b = { 0 };
	sb_adds(&b, j->dest_prefix);
	sb_adds(&b, "/");
	sb_adds(&b, to);
	char *dest = sb_take(&b);
	char *q = dest ? query_kv(is_dir ? "mvDir" : "mv", dest) : NULL;
	free(dest);
	if (!q)
		return -ENOMEM;
	char *url;
	/* mvDir wants the source with a trailing slash (§8.6) */
	int rc = path_url(j, from, is_dir ? "/" : "", q, &url);
	free(q);
	if (rc)
		return rc;
	struct http_request req;
	http_request_init(&req, "POST", url);
	if (is_dir) {
		rc = command(j, &req, "move folder", from);
	} else {
		/* The answer is the destination's document: a move counts only
		 * when it shows a live file (rclone also wants it COMPLETED; a
		 * file whose upload is still in progress may be moved too). */
		struct xml_sink s = { 0 };
		const struct jfs_entry *e;
		rc = object_request(j, &req, &s, "move", from, &e);
		if (!rc && (jfs_xml_root(s.x) != JFS_XML_ROOT_FILE || e->deleted)) {
			log_err("jfs: move '%s' -> '%s': the answer shows no live file", from, to);
			rc = -EBADMSG;
		} else if (rc == -EIO && s.err == -EIO) {
			rc = -EBADMSG;   /* a malformed answer: not a transient failure */
		}
		jfs_xml_free(s.x);
	}
	free(url);
	return rc;
}

/* ---- safe retries of namespace commands ---- */

static int64_t ns_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A failure after which the service may or may not have done the command. */
static bool ambiguous(int rc)
{
	switch (rc) {
	case -EIO: case -ETIMEDOUT: case -ECONNRESET: case -ECONNABORTED: case -EPIPE:
	case -EAGAIN: case -EHOSTUNREACH: case -ECONNREFUSED:
		return true;
	default:
		return false;
	}
}

/* Sleep before send number @attempt + 1 of a namespace command. 0, or
 * -ETIMEDOUT when that would end past @deadline. */
static int ns_pause(unsigned attempt, int64_t deadline, uint64_t *rnd)
{
	*rnd ^= *rnd << 13;
	*rnd ^= *rnd >> 7;
	*rnd ^= *rnd << 17;
	long ms = http_backoff_ms(NS_BACKOFF_MIN_MS, NS_BACKOFF_MAX_MS, attempt, *rnd);
	if (ms < NS_BACKOFF_MIN_MS / 2)
		ms = NS_BACKOFF_MIN_MS / 2;
	if (ns_now_ms() + ms > deadline)
		return -ETIMEDOUT;
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
	return 0;
}

/* The last segment of @path. */
static const char *last_seg(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/*
 * Did the move @from -> @to happen? 1 yes, 0 no (the source is still
 * there under its old name), -errno when that cannot be told. A
 * case-only rename is told apart by the exact name the service shows.
 */
static int move_happened(struct jfs *j, const char *from, const char *to)
{
	struct jfs_entry e;
	int rc = jfs_stat(j, to, &e);

	if (rc == 0) {
		bool exact = strcmp(e.name, last_seg(to)) == 0;
		jfs_entry_release(&e);
		return exact ? 1 : 0;
	}
	if (rc != -ENOENT)
		return rc;
	rc = jfs_stat(j, from, &e);
	if (rc == 0) {
		jfs_entry_release(&e);
		return 0;
	}
	return rc;   /* -ENOENT: neither (never there, or someone else moved it) */
}

/* Is @path gone (deleted, or in the trash)? 1 yes, 0 no, -errno. */
static int is_gone(struct jfs *j, const char *path)
{
	struct jfs_entry e;
	int rc = jfs_stat(j, path, &e);

	if (rc == 0) {
		jfs_entry_release(&e);
		return 0;
	}
	return rc == -ENOENT ? 1 : rc;
}

int jfs_delete(struct jfs *j, const char *path, bool is_dir, bool hard)
{
	int64_t deadline = ns_now_ms() + NS_BUDGET_MS;
	uint64_t rnd = (uint64_t)ns_now_ms() * 0x9E3779B97F4A7C15ULL | 1;
	int rc = delete_once(j, path, is_dir, hard);

	for (unsigned attempt = 1; rc < 0 && ambiguous(rc) && attempt < NS_ATTEMPTS; attempt++) {
		int st = is_gone(j, path);
		if (st == 1) {
			log_debug("jfs: delete '%s': done although the answer was lost", path);
			return 0;
		}
		if (st < 0)
			return st == -EHOSTDOWN ? st : rc;
		if (ns_pause(attempt - 1, deadline, &rnd))
			break;
		log_debug("jfs: delete '%s' failed (%s); sending it again", path, strerror(-rc));
		rc = delete_once(j, path, is_dir, hard);
	}
	return rc;
}

int jfs_move(struct jfs *j, const char *from, const char *to, bool is_dir)
{
	int64_t deadline = ns_now_ms() + NS_BUDGET_MS;
	uint64_t rnd = (uint64_t)ns_now_ms() * 0x9E3779B97F4A7C15ULL | 1;
	int rc = move_once(j, from, to, is_dir);

	for (unsigned attempt = 1; rc < 0 && ambiguous(rc) && attempt < NS_ATTEMPTS; attempt++) {
		int st = move_happened(j, from, to);
		if (st == 1) {
			log_debug("jfs: move '%s' -> '%s': done although the answer was lost",
				  from, to);
			return 0;
		}
		/* -ENOENT: the source is not there (as a 404 to the move says) */
		if (st < 0)
			return st == -EHOSTDOWN || st == -ENOENT ? st : rc;
		if (ns_pause(attempt - 1, deadline, &rnd))
			break;
		log_debug("jfs: move '%s' -> '%s' failed (%s); sending it again", from, to,
			  strerror(-rc));
		rc = move_once(j, from, to, is_dir);
	}
	return rc == -EBADMSG ? -EIO : rc;
}

static bool md5_ok(const char *s)
{
	if (!s || strlen(s) != 32)
		return false;
	for (int i = 0; i < 32; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int jfs_cphash(struct jfs *j, const char *path, int64_t size, const char *md5,
	       time_t created, time_t modified)
{
	char tc[JTIME_BUFSZ], tm[JTIME_BUFSZ];
	if (check_path(path) || !*path || size < 0 || !md5_ok(md5) ||
	    jtime_format_jotta(created, tc, sizeof(tc)) ||
	    jtime_format_jotta(modified, tm, sizeof(tm)))
		return -EINVAL;
	char h_size[48], h_md5[48], h_created[48], h_modified[48];
	snprintf(h_size, sizeof(h_size), "JSize: %" PRId64, size);
	snprintf(h_md5, sizeof(h_md5), "JMd5: %s", md5);
	snprintf(h_created, sizeof(h_created), "JCreated: %s", tc);
	snprintf(h_modified, sizeof(h_modified), "JModified: %s", tm);
	const char *const headers[] = { h_size, h_md5, h_created, h_modified, NULL };
	char *url;
	int rc = path_url(j, path, "", "cphash=true", &url);
	if (rc)
		return rc;
	struct http_request req;
	http_request_init(&req, "POST", url);
	req.headers = headers;
	req.idempotent = true;
	struct xml_sink s = { 0 };
	const struct jfs_entry *e;
	rc = object_request(j, &req, &s, "cphash", path, &e);
	if (!rc && (jfs_xml_root(s.x) != JFS_XML_ROOT_FILE || e->deleted || !e->completed ||
		    e->size != size || strcmp(e->md5, md5))) {
		log_err("jfs: cphash '%s': the answer does not show the requested content", path);
		rc = -EIO;
	}
	jfs_xml_free(s.x);
	free(url);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Upload                                                                 */

int jfs_allocate(struct jfs *j, const struct jfs_alloc_req *req, struct jfs_alloc *out)
{
	memset(out, 0, sizeof(*out));
	if (check_path(req->path))
		return -EINVAL;
	char *body;
	int rc = jfs_json_alloc_request(j->device, j->mountpoint, req, &body);
	if (rc)
		return rc;
	struct sb b = { 0 };
	sb_adds(&b, j->api_url);
	sb_adds(&b, "/files/v1/allocate");
	char *url = sb_take(&b);
	if (!url) {
		free(body);
		return -ENOMEM;
	}
	struct http_request hr;
	http_request_init(&hr, "POST", url);
	hr.content_type = "application/json";
	hr.body = body;
	hr.body_len = strlen(body);
	hr.max_body = JFS_JSON_BODY_MAX;
	hr.secret_body = true;           /* the answer's upload_url is a capability */
	struct http_response resp;
	rc = json_request(j->http, &hr, &resp, "allocate");
	if (!rc) {
		rc = jfs_json_alloc_response(resp.body, resp.body_len, req->size, out);
		if (rc == -EIO)
			log_err("jfs: allocate '%s': bad answer", req->path);
	}
	http_response_release(&resp);
	free(url);
	free(body);
	return rc;
}

void jfs_alloc_release(struct jfs_alloc *a)
{
	if (!a)
		return;
	free(a->upload_url);
	memset(a, 0, sizeof(*a));
}

int jfs_upload_cancellable(struct jfs *j, const char *upload_url, int fd,
			   int64_t resume_pos, int64_t size, const char *md5,
			   const atomic_bool *cancel, time_t *out_modified)
{
	return jfs_upload_progress(j, upload_url, fd, resume_pos, size, md5, cancel, NULL,
				   out_modified);
}

int jfs_upload_progress(struct jfs *j, const char *upload_url, int fd, int64_t resume_pos,
			int64_t size, const char *md5, const atomic_bool *cancel,
			_Atomic int64_t *sent, time_t *out_modified)
{
	if (out_modified)
		*out_modified = 0;
	if (!url_ok(upload_url) || fd < 0 || size < 0 || resume_pos < 0 ||
	    resume_pos > size || !md5_ok(md5))
		return -EINVAL;
	if (cancel && atomic_load(cancel))
		return -ECANCELED;
	struct http_request req;
	http_request_init(&req, "POST", upload_url);
	req.content_type = "application/octet-stream";
	req.body_fd = fd;
	req.body_fd_off = (off_t)resume_pos;
	req.body_fd_len = (off_t)(size - resume_pos);
	if (resume_pos > 0) {
		/* as rclone: Range (not Content-Range) names the bytes sent */
		req.range_first = resume_pos;
		req.range_last = size - 1;
	}
	req.max_body = JFS_JSON_BODY_MAX;
	req.cancel = cancel;             /* net/http cuts the transfer: -ECANCELED */
	req.sent = sent;
	struct http_response resp;
	int rc = json_request(j->http, &req, &resp, "upload");
	if (!rc) {
		rc = jfs_json_upload_response(resp.body, resp.body_len, size, md5, out_modified);
		if (rc == -EIO)
			log_err("jfs: upload: the service did not confirm %" PRId64 " bytes with MD5 %s",
				size, md5);
	}
	http_response_release(&resp);
	return rc;
}

int jfs_upload(struct jfs *j, const char *upload_url, int fd, int64_t resume_pos,
	       int64_t size, const char *md5, time_t *out_modified)
{
	return jfs_upload_cancellable(j, upload_url, fd, resume_pos, size, md5, NULL,
				      out_modified);
}

int jfs_purge_trash(struct jfs *j)
{
	struct sb b = { 0 };
	sb_adds(&b, j->api_url);
	sb_adds(&b, "/files/v1/purge_trash");
	char *url = sb_take(&b);
	if (!url)
		return -ENOMEM;
	struct http_request req;
	http_request_init(&req, "POST", url);
	req.max_body = JFS_JSON_BODY_MAX;
	struct http_response resp;
	int rc = json_request(j->http, &req, &resp, "purge trash");
	if (!rc) {
		int64_t folders, files;
		if (jfs_json_purge_response(resp.body, resp.body_len, &folders, &files) == 0)
			log_info("jfs: trash emptied (%" PRId64 " folders, %" PRId64 " files)",
				 folders, files);
	}
	http_response_release(&resp);
	free(url);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Copy, revisions, trash (the control directory)                         */

int jfs_copy(struct jfs *j, const char *from, const char *to, struct jfs_entry *out)
{
	memset(out, 0, sizeof(*out));
	if (check_path(from) || check_path(to) || !*from || !*to)
		return -EINVAL;
	struct sb b = { 0 };
	sb_adds(&b, j->dest_prefix);
	sb_adds(&b, "/");
	sb_adds(&b, to);
	char *dest = sb_take(&b);
	char *q = dest ? query_kv("cp", dest) : NULL;
	free(dest);
	if (!q)
		return -ENOMEM;
	char *url;
	int rc = path_url(j, from, "", q, &url);
	free(q);
	if (rc)
		return rc;
	struct http_request req;
	http_request_init(&req, "POST", url);
	struct xml_sink s = { 0 };
	const struct jfs_entry *e;
	bool trashed = false;
	rc = object_request(j, &req, &s, "copy", from, &e);
	if (!rc && (jfs_xml_root(s.x) != JFS_XML_ROOT_FILE || !e->completed)) {
		log_err("jfs: copy '%s' -> '%s': the answer shows no completed file", from, to);
		rc = -EIO;
	}
	if (!rc) {
		trashed = e->deleted;
		rc = entry_copy(out, e);
	}
	jfs_xml_free(s.x);
	free(url);
	if (!rc && trashed) {
		/* The service's quirk (docs 8.5): the copy landed in the trash. */
		rc = jfs_cphash(j, to, out->size, out->md5, out->created, out->modified);
		if (!rc) {
			jfs_entry_release(out);
			rc = jfs_stat(j, to, out);
		}
	}
	if (rc)
		jfs_entry_release(out);
	return rc;
}

int jfs_revisions(struct jfs *j, const char *path, jfs_revision_cb cb, void *ctx)
{
	char *url;
	int rc = path_url(j, path, "", NULL, &url);
	if (rc)
		return rc;
	struct http_request req;
	http_request_init(&req, "GET", url);
	req.idempotent = true;
	/* Revisions are handed out as they are decoded: a retry would repeat
	 * them, so the callback must take them idempotently (by number). */
	struct xml_sink s = { 0 };
	rc = jfs_xml_new_stat(cb, ctx, &s.x);
	if (!rc)
		rc = xml_request(j, &req, &s, "revisions", path);
	if (!rc && jfs_xml_root(s.x) != JFS_XML_ROOT_FILE)
		rc = -EISDIR;
	jfs_xml_free(s.x);
	free(url);
	return rc;
}

int jfs_trash(struct jfs *j, jfs_entry_cb cb, void *ctx)
{
	struct sb b = { 0 };
	sb_adds(&b, j->user_url);
	sb_adds(&b, "/");
	sb_add_escaped(&b, j->device, strlen(j->device));
	sb_adds(&b, "/Trash");
	char *url = sb_take(&b);
	if (!url)
		return -ENOMEM;
	struct replay r = { .cb = cb, .ctx = ctx, .what = "trash", .path = "" };
	replay_reset(&r);
	struct xml_sink s = { .on_reset = replay_reset, .reset_ctx = &r };
	int rc = list_decoder(j, &r, &s);
	if (!rc) {
		struct http_request req;
		http_request_init(&req, "GET", url);
		req.idempotent = true;
		rc = replay_end(&r, xml_request(j, &req, &s, "trash", ""));
	}
	jfs_xml_free(s.x);
	free(url);
	return rc;
}

int jfs_list_trashed(struct jfs *j, const char *path, jfs_entry_cb cb, void *ctx)
{
	char *url;
	int rc = path_url(j, path, "", NULL, &url);
	if (rc)
		return rc;
	struct replay r = { .cb = cb, .ctx = ctx, .what = "list", .path = path };
	replay_reset(&r);
	struct xml_sink s = { .on_reset = replay_reset, .reset_ctx = &r };
	rc = list_decoder(j, &r, &s);
	if (!rc) {
		jfs_xml_list_trashed(s.x);
		struct http_request req;
		http_request_init(&req, "GET", url);
		req.idempotent = true;
		rc = replay_end(&r, xml_request(j, &req, &s, "list", path));
	}
	jfs_xml_free(s.x);
	free(url);
	return rc;
}

const char *jfs_origin_prefix(const struct jfs *j)
{
	return j->dest_prefix;
}
