/*
 * cache/write.c — the write path's content half: local changes, commits,
 * the per-node upload bookkeeping and the upload-done callback, recovery at
 * mount, truncate/utimens and the server-side copy. The namespace half
 * (create, mkdir, unlink, rmdir, rename) is cache/write_ns.c. Contract and
 * lock order: write.h.
 */
#include "cache/write.h"
#include "cache/write_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/data.h"
#include "cache/meta.h"
#include "cache/upload.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "net/conn.h"
#include "net/jfs.h"

#define SETTLE_STEP_MS  100     /* wait_settled polls this often ... */
#define SETTLE_STEPS    100     /* ... this many times (~10 s) */

/* ---- per-node state --------------------------------------------------------------- */

/*
 * What this writer journalled for one node: the latest item (to journal it
 * again with a corrected base) and the content of every generation not yet
 * confirmed. Lives in its stripe's buckets, under the stripe's lock.
 */
struct upgen {
	uint64_t gen;
	int64_t size;
	char md5[33];                   /* "": hashed by the upload (see dcache_commit) */
	uint64_t seq;                   /* the data cache's commit number */
};
struct upend {
	struct upend *next;
	uint64_t id;
	uint64_t last_enq;              /* generation journalled last */
	uint64_t last_done;             /* generation of the last done callback */
	struct upload_item it;          /* the last item; path/content_file owned */
	struct upgen *hist;             /* generations after last_done, oldest first */
	size_t nhist, caphist;
};

static size_t bucket_of(uint64_t id)
{
	return (size_t)((id * 0x9e3779b97f4a7c15ULL) >> 40) & (WRITER_BUCKETS - 1);
}

struct stripe *writer_stripe(struct writer *w, uint64_t id)
{
	return &w->stripe[bucket_of(id) & (WRITER_STRIPES - 1)];
}

/* The slot of @id's entry (NULL in it when there is none). Its stripe held. */
static struct upend **upend_slot(struct writer *w, uint64_t id)
{
	struct upend **p = &w->upend[bucket_of(id)];

	while (*p && (*p)->id != id)
		p = &(*p)->next;
	return p;
}

static void upend_free(struct upend *e)
{
	free((char *)e->it.path);
	free((char *)e->it.content_file);
	free(e->hist);
	free(e);
}

/* The content of generation @gen, and forget it and every older one (they
 * can no longer be confirmed: the service took a newer one). */
static bool upend_take(struct upend *e, uint64_t gen, struct upgen *out)
{
	bool found = false;
	size_t k = 0;

	for (; k < e->nhist && e->hist[k].gen <= gen; k++) {
		if (e->hist[k].gen == gen) {
			*out = e->hist[k];
			found = true;
		}
	}
	memmove(e->hist, e->hist + k, (e->nhist - k) * sizeof(*e->hist));
	e->nhist -= k;
	return found;
}

void writer_drop_locked(struct writer *w, uint64_t id)
{
	struct upend **p = upend_slot(w, id), *e = *p;

	if (e) {
		*p = e->next;
		upend_free(e);
	}
}

void writer_drop(struct writer *w, uint64_t id)
{
	struct stripe *s = writer_stripe(w, id);

	pthread_mutex_lock(&s->lock);
	writer_drop_locked(w, id);
	pthread_mutex_unlock(&s->lock);
}

/* Record item @it (data cache commit @seq) as journalled. Its stripe held. */
static void upend_record(struct writer *w, const struct upload_item *it, uint64_t seq)
{
	struct upend **p = upend_slot(w, it->id), *e = *p;
	char *path = strdup(it->path), *cf = strdup(it->content_file);

	if (e && e->nhist == e->caphist) {
		size_t cap = e->caphist ? e->caphist * 2 : 4;
		struct upgen *h = reallocarray(e->hist, cap, sizeof(*h));
		if (!h) {
			free(path);
			free(cf);
			return;
		}
		e->hist = h;
		e->caphist = cap;
	}
	if (!e && path && cf) {
		e = calloc(1, sizeof(*e));
		if (e && !(e->hist = calloc(4, sizeof(*e->hist)))) {
			free(e);
			e = NULL;
		}
		if (e) {
			e->caphist = 4;
			e->id = it->id;
			*p = e;         /* the hash owns it */
		}
	}
	if (!e || !path || !cf) {
		free(path);
		free(cf);
		return;         /* best effort: only the base correction is lost */
	}
	free((char *)e->it.path);
	free((char *)e->it.content_file);
	e->it = *it;
	e->it.path = path;
	e->it.content_file = cf;
	/* (the bytes are the caller's; a later enqueue of the same generation
	 * keeps those the journal holds) */
	e->it.inline_data = NULL;
	e->it.inline_len = 0;
	e->last_enq = it->gen;
	e->hist[e->nhist].gen = it->gen;
	e->hist[e->nhist].size = it->size;
	memcpy(e->hist[e->nhist].md5, it->md5, sizeof(e->hist[0].md5));
	e->hist[e->nhist].seq = seq;
	e->nhist++;
}

/* The generation of @id journalled last, 0 when none. */
static uint64_t last_gen(struct writer *w, uint64_t id)
{
	struct stripe *s = writer_stripe(w, id);
	struct upend *e;
	uint64_t gen = 0;

	pthread_mutex_lock(&s->lock);
	e = *upend_slot(w, id);
	if (e)
		gen = e->last_enq;
	pthread_mutex_unlock(&s->lock);
	return gen;
}

/* If an upload of node @id finished but its done callback has not run yet,
 * wait for the callback (at most ~10 s): it tells the index what the
 * service holds now, and where. Its stripe @s held. */
static void wait_settled_locked(struct writer *w, struct stripe *s, uint64_t id)
{
	struct upend *e = *upend_slot(w, id);

	for (int i = 0; e && e->last_done < e->last_enq && i < SETTLE_STEPS &&
	     !upload_pending(w->up, id); i++) {
		struct timespec ts = clock_deadline_ms(SETTLE_STEP_MS);

		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
		e = *upend_slot(w, id);
	}
}

void writer_wait_settled(struct writer *w, uint64_t id)
{
	struct stripe *s = writer_stripe(w, id);

	pthread_mutex_lock(&s->lock);
	wait_settled_locked(w, s, id);
	pthread_mutex_unlock(&s->lock);
}

/* ---- lifecycle ------------------------------------------------------------------- */

int writer_new(const struct writer_config *cfg, struct writer **out)
{
	struct writer *w = calloc(1, sizeof(*w));

	*out = NULL;
	if (!w || !(w->upend = calloc(WRITER_BUCKETS, sizeof(*w->upend)))) {
		free(w);
		return -ENOMEM;
	}
	w->cfg = *cfg;
	for (size_t i = 0; i < WRITER_STRIPES; i++) {
		pthread_mutex_init(&w->stripe[i].lock, NULL);
		clock_cond_init(&w->stripe[i].cond);    /* timed waits: CLOCK_MONOTONIC */
	}
	*out = w;
	return 0;
}

void writer_set_queue(struct writer *w, struct upload_queue *up)
{
	w->up = up;
}

void writer_free(struct writer *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < WRITER_BUCKETS; i++)
		while (w->upend[i]) {
			struct upend *e = w->upend[i];
			w->upend[i] = e->next;
			upend_free(e);
		}
	for (size_t i = 0; i < WRITER_STRIPES; i++) {
		pthread_mutex_destroy(&w->stripe[i].lock);
		pthread_cond_destroy(&w->stripe[i].cond);
	}
	free(w->upend);
	free(w);
}

/* ---- local changes and commits ------------------------------------------------------ */

/* The node's content just became local (its first change): record it, so
 * that listings leave its attributes alone. */
static int local_changed(struct writer *w, struct dfile *df, uint64_t id)
{
	struct meta_attr a;
	int err = meta_get(w->cfg.meta, id, &a);

	if (err)
		return err == -ENOENT ? 0 : err;        /* unlinked meanwhile: fine */
	err = meta_set_local(w->cfg.meta, id, dcache_size(df), time(NULL), "");
	return err == -ENOENT ? 0 : err;
}

int writer_write(struct writer *w, struct dfile *df, uint64_t id, int64_t off, size_t len,
		 dcache_copy_fn copy, void *ctx, size_t *written)
{
	bool first = false;
	int err;

	*written = 0;
	if (len && (off >= WRITER_FILE_MAX || dcache_size(df) > WRITER_FILE_MAX))
		return -EFBIG;
	if ((int64_t)len > WRITER_FILE_MAX - off)
		len = (size_t)(WRITER_FILE_MAX - off);
	err = dcache_write(df, off, len, copy, ctx, written, &first);
	if (!err && first)
		err = local_changed(w, df, id);
	return err;
}

int writer_truncate(struct writer *w, struct dfile *df, uint64_t id, int64_t size)
{
	bool first = false;
	int err = dcache_truncate(df, size, &first);

	if (!err && first)
		err = local_changed(w, df, id);
	return err;
}

/*
 * The upload generation is taken before the index records the content, so
 * it stays above every generation the index stores (and so above every
 * earlier upload of the node, even across restarts).
 *
 * The base (the revision the service holds, for its conflict check): if an
 * upload of ours finished but its done callback has not run yet, wait for
 * it (it updates the base); if one is still pending, the upload queue
 * rebases this generation when it completes.
 */
static int commit(struct writer *w, struct dfile *df, uint64_t id, bool times_only);

int writer_commit(struct writer *w, struct dfile *df, uint64_t id)
{
	return commit(w, df, id, false);
}

/* writer_commit(); @times_only: see upload_item. */
static int commit(struct writer *w, struct dfile *df, uint64_t id, bool times_only)
{
	struct stripe *s = writer_stripe(w, id);
	struct dcache_commit c;
	struct upload_item it;
	struct meta_attr a;
	char *path = NULL;
	uint64_t gen;
	int err;

	if (!w->up)
		return -EROFS;
	err = dcache_commit(df, &c);
	if (err == -ENOENT)
		return 0;               /* unlinked: nothing to upload */
	if (err || !c.committed)
		return err;
	pthread_mutex_lock(&s->lock);
	wait_settled_locked(w, s, id);
	gen = meta_gen_next(w->cfg.meta);
	err = meta_set_local(w->cfg.meta, id, c.size, c.mtime, c.md5);
	if (!err)
		err = meta_get(w->cfg.meta, id, &a);
	if (!err)
		err = meta_path(w->cfg.meta, id, &path);
	if (err) {
		pthread_mutex_unlock(&s->lock);
		dcache_commit_release(&c);
		return err == -ENOENT ? 0 : err;        /* unlinked meanwhile */
	}
	memset(&it, 0, sizeof(it));
	it.id = id;
	it.gen = gen;
	it.path = path;
	it.content_file = c.path;
	it.size = c.size;
	memcpy(it.md5, c.md5, sizeof(it.md5));
	it.created = a.created ? a.created : c.mtime;
	it.modified = c.mtime;
	it.base_size = a.base_size >= 0 && a.base_md5[0] ? a.base_size : -1;
	if (it.base_size >= 0)
		memcpy(it.base_md5, a.base_md5, sizeof(it.base_md5));
	it.inline_data = c.inline_data;
	it.inline_len = c.inline_len;
	it.times_only = times_only;
	err = upload_enqueue(w->up, &it);
	if (!err)
		upend_record(w, &it, c.seq);
	pthread_mutex_unlock(&s->lock);
	dcache_commit_release(&c);
	if (err == -ESTALE) {
		/* Written again since the commit (through another handle: a
		 * release commits after the next open wrote): that write left
		 * the file uncommitted, and its handle's flush or release
		 * commits and journals the content. */
		log_debug("upload of '%s': changed again while committed; the next commit "
			  "queues it", path);
		err = 0;
	} else if (err) {
		log_err("cannot queue the upload of '%s': %s", path, strerror(-err));
	}
	free(path);
	return err ? -EIO : 0;
}

int writer_fsync(struct writer *w, struct dfile *df, uint64_t id)
{
	int err = 0;

	if (df)
		err = writer_commit(w, df, id);
	/* offline: ask the service once now, it may be back already */
	if (!err && w->up && w->cfg.conn && conn_state(w->cfg.conn) == CONN_OFFLINE)
		conn_recheck(w->cfg.conn);
	if (!err && w->up) {
		/* The generation journalled last, not any: an older upload
		 * landing now does not make this content durable. */
		err = upload_wait(w->up, id, last_gen(w, id));
		if (err == -ENOENT)
			err = 0;        /* cancelled: the file was unlinked */
	}
	/* offline: the content is journalled and uploaded when the service is back */
	return err && err != -ENOSPC && err != -EHOSTDOWN ? -EIO : err;
}

/* ---- what the service holds ------------------------------------------------------- */

/*
 * The local changes of @a are not what the service will hold at its path
 * (uploaded under a conflict name, or given up into lost+found): forget
 * them, and let the next listing show the service's version.
 */
static void revert_local(struct writer *w, const struct meta_attr *a)
{
	struct meta_changes ch = { 0 };

	dcache_discard(w->cfg.dc, a->id);
	if (meta_remove(w->cfg.meta, a->id, &ch) == 0 && w->cfg.changes)
		w->cfg.changes(w->cfg.ctx, &ch);
	meta_changes_release(&ch);
	if (a->parent)
		meta_set_stale(w->cfg.meta, a->parent);
}

void writer_upload_done(void *ctx, uint64_t id, uint64_t gen, int err, const char *server_path,
			const char *md5)
{
	struct writer *w = ctx;
	struct stripe *s = writer_stripe(w, id);
	struct upgen g = { 0 };
	struct meta_attr a;
	struct upend *e;
	char *path = NULL;
	bool here, known = false;

	if (w->cfg.uploaded)
		w->cfg.uploaded(w->cfg.ctx, id, err, server_path);
	pthread_mutex_lock(&s->lock);
	e = *upend_slot(w, id);
	if (e && gen > e->last_done)
		e->last_done = gen;
	pthread_cond_broadcast(&s->cond);
	if (meta_get(w->cfg.meta, id, &a) || !a.local)
		goto out;               /* unlinked, or clean already */
	here = !err && md5 && md5[0] && meta_path(w->cfg.meta, id, &path) == 0 &&
	       !strcmp(path, server_path);
	if (here && e && (known = upend_take(e, gen, &g))) {
		/* (committed without its MD5: the upload's is the content's) */
		if (!g.md5[0])
			snprintf(g.md5, sizeof(g.md5), "%s", md5);
		/* The service holds generation @gen now: the base of what follows. */
		meta_set_base(w->cfg.meta, id, g.size, g.md5);
		/* A newer generation journalled with the older base (in the
		 * moment between this upload's end and this callback): journal
		 * it again with the right one. */
		if (e->it.gen > gen && upload_pending(w->up, id) &&
		    (e->it.base_size != g.size || strcmp(e->it.base_md5, g.md5))) {
			e->it.base_size = g.size;
			memcpy(e->it.base_md5, g.md5, sizeof(e->it.base_md5));
			upload_enqueue(w->up, &e->it);
		}
	} else if (e) {
		upend_take(e, gen, &g);
	}
	if (upload_pending(w->up, id))
		goto out;               /* a newer generation is on its way */
	if (here) {
		/* The service holds what the index says: clean, unless it was
		 * changed again meanwhile. (An index without the MD5: the
		 * content was committed without it, and the data cache knows
		 * whether that commit is the one confirmed.) */
		const char *m = a.md5[0] ? a.md5 : md5;
		if (dcache_set_clean(w->cfg.dc, id, a.size, m, known ? g.seq : 0, NULL)) {
			meta_set_clean(w->cfg.meta, id, a.size, m, a.mtime);
			writer_drop_locked(w, id);
		}
	} else {
		/* A conflict copy (the name here holds another client's
		 * version), or given up into lost+found. A file still open
		 * with changes is left to its next commit. */
		int64_t size;
		time_t mtime;
		if (!dcache_peek(w->cfg.dc, id, &size, &mtime)) {
			writer_drop_locked(w, id);
			pthread_mutex_unlock(&s->lock);
			revert_local(w, &a);
			free(path);
			return;
		}
	}
out:
	pthread_mutex_unlock(&s->lock);
	free(path);
}

/* Startup: local changes with no journalled upload were never closed (or
 * their upload finished just before a crash): the service's version wins. */
static int recover_one(void *ctx, uint64_t id)
{
	struct writer *w = ctx;
	struct meta_attr a;
	char *path = NULL;

	if (upload_pending(w->up, id) || meta_get(w->cfg.meta, id, &a))
		return 0;
	meta_path(w->cfg.meta, id, &path);
	log_warn("'%s' was being changed when jottafs stopped and never closed; "
		 "the changes are dropped", path ? path : "?");
	free(path);
	revert_local(w, &a);
	return 0;
}

void writer_recover(struct writer *w)
{
	meta_local_nodes(w->cfg.meta, recover_one, w);
}

/* ---- attributes --------------------------------------------------------------------- */

int writer_set_size(struct writer *w, const struct meta_attr *a, struct dfile *df,
		    int64_t size)
{
	bool open = df != NULL;
	int err = 0;

	if (size > WRITER_FILE_MAX)
		return -EFBIG;
	if (!open)
		err = dcache_open(w->cfg.dc, a->id, a->size, a->md5, &df, NULL);
	if (!err)
		err = writer_truncate(w, df, a->id, size);
	/* truncate(2) of a file nobody has open: that is its close. */
	if (!err && !open)
		err = writer_commit(w, df, a->id);
	if (!open && df)
		dcache_close(df);
	return err;
}

int writer_set_mtime(struct writer *w, const struct meta_attr *a, struct dfile *df,
		     time_t mtime)
{
	bool open = df != NULL;
	struct meta_attr now;
	int64_t size;
	time_t old;
	char *path = NULL;
	int err;

	if (a->is_dir)          /* the service keeps none: the index does */
		return meta_set_dir_times(w->cfg.meta, a->id, mtime, time(NULL));
	if (w->up && a->local) {
		/* An upload that landed (an fsync just before) but whose done
		 * callback has not run yet: let it record the file clean first,
		 * so that the new time goes to the service (cphash) instead of
		 * staying in an index the callback then calls clean. */
		writer_wait_settled(w, a->id);
		err = meta_get(w->cfg.meta, a->id, &now);
		if (err)
			return err;
		a = &now;
	}
	if (dcache_peek(w->cfg.dc, a->id, &size, &old) || a->local) {
		/* Changed locally: the upload carries the time (again, if one is
		 * queued already: it is superseded). */
		err = open ? 0 : dcache_open(w->cfg.dc, a->id, a->size, a->md5, &df, NULL);
		if (err)
			return err;
		/* Its content committed (journalled, durable) already: only
		 * the time is new (tar and rsync set it after close). */
		bool times_only = !open && a->local && w->up && upload_pending(w->up, a->id) &&
				  !dcache_uncommitted(df);
		dcache_set_mtime(df, mtime);
		err = meta_set_local(w->cfg.meta, a->id, a->size, mtime, a->md5);
		if (!err && !open)
			err = commit(w, df, a->id, times_only);
		if (!open)
			dcache_close(df);
		return err;
	}
	/* Clean: the service sets the time of the content it has (cphash). */
	err = meta_path(w->cfg.meta, a->id, &path);
	if (!err)
		err = jfs_cphash(w->cfg.jfs, path, a->size, a->md5,
				 a->created ? a->created : mtime, mtime);
	free(path);
	if (!err)
		return meta_set_mtime(w->cfg.meta, a->id, mtime);
	if (err != -ENOENT)
		return err;
	/* The service wants the content again: upload it with the new time. */
	err = open ? 0 : dcache_open(w->cfg.dc, a->id, a->size, a->md5, &df, NULL);
	if (err)
		return err;
	err = dcache_truncate(df, a->size, NULL);
	if (!err)
		err = local_changed(w, df, a->id);
	if (!err) {
		dcache_set_mtime(df, mtime);
		if (!open)
			err = writer_commit(w, df, a->id);
	}
	if (!open)
		dcache_close(df);
	return err;
}

/* ---- server-side copy -------------------------------------------------------------- */

int writer_copy(struct writer *w, uint64_t src, uint64_t dst, struct dfile **dst_df,
		size_t len, int64_t *copied)
{
	struct meta_attr s, d;
	struct jfs_entry e;
	char *from = NULL, *to = NULL;
	int64_t size;
	time_t mtime;
	int err;

	if (meta_get(w->cfg.meta, src, &s) || meta_get(w->cfg.meta, dst, &d) || s.is_dir ||
	    s.local || !s.md5[0] || s.size <= 0 || (uint64_t)s.size > len ||
	    (w->up && (upload_pending(w->up, s.id) || upload_pending(w->up, d.id))) ||
	    dcache_peek(w->cfg.dc, s.id, &size, &mtime) || dcache_size(*dst_df) != 0)
		return -EOPNOTSUPP;
	err = meta_path(w->cfg.meta, s.id, &from);
	if (!err)
		err = meta_path(w->cfg.meta, d.id, &to);
	if (!err)
		err = jfs_copy(w->cfg.jfs, from, to, &e);
	if (err) {
		log_debug("copy '%s' -> '%s' on the service: %s; copying through the mount",
			  from ? from : "?", to ? to : "?", strerror(-err));
		free(from);
		free(to);
		return -EOPNOTSUPP;
	}
	log_debug("copied '%s' -> '%s' on the service (%" PRId64 " bytes)", from, to, e.size);
	free(from);
	free(to);
	/* The destination is the service's copy now: its (empty) local content
	 * is dropped, and the handle serves the copied revision. */
	writer_drop(w, d.id);
	dcache_discard(w->cfg.dc, d.id);
	err = meta_set_clean(w->cfg.meta, d.id, e.size, e.md5, e.modified);
	if (!err) {
		struct dfile *df = NULL;
		err = dcache_open(w->cfg.dc, d.id, e.size, e.md5, &df, NULL);
		if (!err) {
			dcache_close(*dst_df);
			*dst_df = df;
		}
	}
	*copied = e.size;
	jfs_entry_release(&e);
	return err;
}
