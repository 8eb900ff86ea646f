/*
 * net/jfs_list.c — listings of the Jottacloud client: a folder (jfs_list),
 * a subtree (jfs_liststream), the device's trash and trashed folders, and
 * the older revisions of a file. Entries are decoded as the body arrives
 * (net/jfs_xml) and handed out one by one; a listing broken in
 * mid-transfer is replayed from the start (struct replay).
 */
#include "net/jfs_int.h"

#include "lib/log.h"
#include "lib/xstr.h"
#include "net/jfs_xml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

/* Which decoder a listing takes. */
enum listing_kind {
	LIST_FOLDER,             /* a folder; the folder listing limits */
	LIST_TRASHED,            /* ... that may be in the trash */
	LIST_STREAM,             /* a subtree (liststream, @prefix); the stream limits */
};

/* GET @url and hand its entries to @cb through a replay. @what and @path
 * name the listing in logs. */
static int listing(struct jfs *j, const char *url, enum listing_kind kind, const char *prefix,
		   const char *what, const char *path, jfs_entry_cb cb, void *ctx)
{
	struct replay r = { .cb = cb, .ctx = ctx, .what = what, .path = path };
	replay_reset(&r);
	struct xml_sink s = { .on_reset = replay_reset, .reset_ctx = &r };
	int rc;
	if (kind == LIST_STREAM) {
		rc = jfs_xml_new_liststream(prefix, replay_cb, &r, &s.x);
		if (!rc)
			jfs_sink_limits(&s, j->stream_entries, "max_stream_entries",
					j->stream_bytes, "max_stream_bytes");
	} else {
		rc = jfs_xml_new_list(replay_cb, &r, &s.x);
		if (!rc)
			jfs_sink_limits(&s, j->list_entries, "max_listing_entries", j->list_bytes,
					"max_listing_bytes");
		if (!rc && kind == LIST_TRASHED)
			jfs_xml_list_trashed(s.x);
	}
	if (!rc) {
		struct http_request req;
		jfs_get_init(&req, url);
		rc = replay_end(&r, jfs_request_xml(j, &req, &s, what, path));
	}
	jfs_xml_free(s.x);
	return rc;
}

/* listing() of folder @path under the mountpoint. */
static int list_path(struct jfs *j, const char *path, enum listing_kind kind, jfs_entry_cb cb,
		     void *ctx)
{
	char *url;
	int rc = jfs_path_url(j, path, "", NULL, &url);
	if (rc)
		return rc;
	rc = listing(j, url, kind, NULL, "list", path, cb, ctx);
	free(url);
	return rc;
}

int jfs_list(struct jfs *j, const char *path, jfs_entry_cb cb, void *ctx)
{
	return list_path(j, path, LIST_FOLDER, cb, ctx);
}

int jfs_list_trashed(struct jfs *j, const char *path, jfs_entry_cb cb, void *ctx)
{
	return list_path(j, path, LIST_TRASHED, cb, ctx);
}

int jfs_liststream(struct jfs *j, const char *path, jfs_entry_cb cb, void *ctx)
{
	char *url;
	int rc = jfs_path_url(j, path, "", "mode=liststream", &url);
	if (rc)
		return rc;
	char *pfx = *path ? xasprintf("%s/%s", j->ls_prefix, path) : strdup(j->ls_prefix);
	rc = pfx ? listing(j, url, LIST_STREAM, pfx, "liststream", path, cb, ctx) : -ENOMEM;
	free(pfx);
	free(url);
	return rc;
}

int jfs_trash(struct jfs *j, jfs_entry_cb cb, void *ctx)
{
	struct buf b;
	buf_init(&b, 0);
	buf_adds(&b, j->user_url);
	buf_adds(&b, "/");
	jfs_buf_add_escaped(&b, j->device, strlen(j->device));
	buf_adds(&b, "/Trash");
	char *url = buf_take(&b);
	if (!url)
		return -ENOMEM;
	int rc = listing(j, url, LIST_FOLDER, NULL, "trash", "", cb, ctx);
	free(url);
	return rc;
}

int jfs_revisions(struct jfs *j, const char *path, jfs_revision_cb cb, void *ctx)
{
	/* Revisions are handed out as they are decoded: a retry would repeat
	 * them, so the callback must take them idempotently (by number). */
	struct xml_sink s = { 0 };
	int rc = jfs_get_document(j, path, cb, ctx, &s, "revisions");
	if (!rc && jfs_xml_root(s.x) != JFS_XML_ROOT_FILE)
		rc = -EISDIR;
	jfs_xml_free(s.x);
	return rc;
}
