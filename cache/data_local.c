/*
 * cache/data_local.c — local content, the write path of the
 * content cache: create, write, truncate, commit, set clean, discard and
 * the peeks at open local content. Private structures: cache/data_int.h.
 */
#include "cache/data.h"
#include "cache/data_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "cache/meta.h"
#include "cache/ranges.h"
#include "lib/log.h"
#include "lib/md5.h"
#include "lib/privdir.h"
#include "net/http.h"
#include "net/jfs.h"

/*
 * Before a change that makes the file @grow bytes larger: turn the content
 * local on the first change (start fetching the rest of its base, up to
 * @keep bytes: a truncate keeps only what is below the new size). Local
 * content is never refused for the bound (design.md 6: a file larger than
 * the bound must still be writable — its upload cannot start before
 * close()); the bound only makes clean content go, and a full disk fails
 * the write itself with ENOSPC. f->lock held.
 */
static int make_local(struct dfile *f, int64_t grow, int64_t keep, bool *first)
{
	struct dcache *dc = f->dc;
	int64_t need = f->local ? grow : f->size + grow;
	bool over = false;

	if (first)
		*first = false;
	if (f->discarded)
		return 0;       /* unlinked but open: works, counts for nothing */
	pthread_mutex_lock(&dc->lock);
	if (dc->cfg.max_size && need > 0 && dc->local_bytes + need > (int64_t)dc->cfg.max_size &&
	    !dc->over_logged) {
		dc->over_logged = true;
		over = true;
	} else if (dc->cfg.max_size && dc->local_bytes + need <= (int64_t)dc->cfg.max_size / 2) {
		dc->over_logged = false;
	}
	pthread_mutex_unlock(&dc->lock);
	if (over)
		log_warn("cache: changed files not yet uploaded exceed the cache bound "
			 "(cache_max_size); they stay until uploaded");
	if (f->local)
		return 0;
	f->local = true;
	f->verified = false;
	f->broken = 0;
	f->md5[0] = '\0';
	f->dirty_state = true;
	dc_account2(dc, 0, f->size);
	/* The bytes of the base not yet here: fetch them now, in the background. */
	if (keep > 0)
		dc_fetch_missing(f, 0, keep < f->size ? keep : f->size);
	if (first)
		*first = true;
	return 0;
}

int dcache_create(struct dcache *dc, uint64_t id, struct dfile **out)
{
	struct dfile *f = dc_dfile_new(dc, id), **slot;
	int err;

	*out = NULL;
	if (!f)
		return -ENOMEM;
	if (dc_disk_below(dc, DC_DISK_LOW_PCT, 2))
		dc_maybe_evict(dc);        /* a nearly full cache filesystem: make room first */
	f->local = true;
	f->uncommitted = true;
	f->mtime = time(NULL);
	EVP_DigestInit_ex(f->md5ctx, EVP_md5(), NULL);
	err = dc_body_open(dc, id, true, &f->body);
	if (err) {
		dc_dfile_free(f);
		return err;
	}
	pthread_mutex_lock(&dc->lock);
	slot = dc_hash_slot(dc, id);
	if (*slot) {
		pthread_mutex_unlock(&dc->lock);
		dc_dfile_free(f);
		return -EEXIST;
	}
	*slot = f;
	dc->nopen++;
	dc_persist(f);
	pthread_mutex_unlock(&dc->lock);
	*out = f;
	return 0;
}

/*
 * Extend the running MD5 over a write [@off, @end): inline when the write
 * continues what is hashed, for the first DC_HASH_BG_MIN bytes; past them,
 * by a background hasher (the writer does not wait for the MD5: the two
 * run side by side), started once DC_HASH_BG_BATCH bytes wait, and only
 * while every byte below the size is here (written, or fetched from the
 * base: the hasher reads up to the size). f->lock held.
 */
static void hash_after_write(struct dfile *f, int64_t off, int64_t end)
{
	bool inline_ok = off <= f->md5_pos && f->md5_pos < end;

	if (f->bg_hash)
		return;                 /* it catches up */
	if (end < DC_HASH_BG_MIN || !f->local || f->discarded ||
	    !ranges_covers(&f->present, 0, f->size)) {
		if (inline_ok)
			dc_hash_locked(f, end);
		return;
	}
	if (end - f->md5_pos >= DC_HASH_BG_BATCH && dc_hash_bg_start(f) && inline_ok)
		dc_hash_locked(f, end);
}

/* What writeback() is to do after a write (decided under f->lock). */
struct wb_step {
	struct dbody *body;             /* ref held; NULL: nothing to do */
	int64_t start, end;             /* start writeback of these bytes */
	int64_t wait;                   /* and wait for [wait, start) */
};

/*
 * After a write ending at @end: when DC_WRITEBACK_STEP more bytes were
 * written past what writeback was started for (sequential writing, a big
 * file), plan the next step. f->lock held.
 */
static void writeback_plan(struct dfile *f, int64_t end, struct wb_step *w)
{
	w->body = NULL;
	if (!f->local || f->discarded || end - f->wb_pos < DC_WRITEBACK_STEP)
		return;
	w->body = f->body;
	dc_body_ref(w->body);
	w->wait = f->wb_wait;
	w->start = f->wb_pos;
	w->end = end;
	f->wb_wait = f->wb_pos;
	f->wb_pos = end;
}

/*
 * Start the writeback of the bytes just written and wait for the step
 * before (no lock held: the writer waits, nobody else). A failure is kept
 * for the next commit: the kernel reports a writeback error to one waiter,
 * and the commit's fsync may not see it again.
 */
static void writeback(struct dfile *f, struct wb_step *w)
{
	int err = 0;

	if (!w->body)
		return;
	if (sync_file_range(w->body->fd, w->start, w->end - w->start, SYNC_FILE_RANGE_WRITE))
		err = -errno;
	if (!err && w->start > w->wait &&
	    sync_file_range(w->body->fd, w->wait, w->start - w->wait,
			    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
			    SYNC_FILE_RANGE_WAIT_AFTER))
		err = -errno;
	pthread_mutex_lock(&f->lock);
	if (err && err != -ENOSYS && err != -EINVAL && err != -ESPIPE && w->body == f->body &&
	    !f->wb_err)
		f->wb_err = err;
	dc_body_unref(w->body);
	pthread_mutex_unlock(&f->lock);
}

int dcache_write(struct dfile *f, int64_t off, size_t len, dcache_copy_fn copy, void *ctx,
		 size_t *written, bool *first)
{
	struct wb_step wb = { 0 };
	int64_t end, before, grow, old_size;
	size_t done = 0;
	int err;

	*written = 0;
	if (first)
		*first = false;
	if (off < 0 || __builtin_add_overflow(off, (int64_t)len, &end))
		return -EFBIG;
	if (end > f->size && !f->discarded && !dc_disk_room(f->dc)) {
		/* nearly full: make room from clean content, or refuse the growth */
		dc_maybe_evict(f->dc);
		if (!dc_disk_room(f->dc))
			return -ENOSPC;
	}
	pthread_mutex_lock(&f->lock);
	old_size = f->size;
	grow = end > f->size ? end - f->size : 0;
	err = make_local(f, grow, f->size, first);
	if (err) {
		pthread_mutex_unlock(&f->lock);
		return err;
	}
	/* A write past the end leaves a hole: zeros, present. */
	if (off > f->size && (err = ranges_add(&f->present, f->size, off))) {
		pthread_mutex_unlock(&f->lock);
		return err;
	}
	if (off < f->md5_pos)
		dc_md5_reset(f);           /* rewriting hashed bytes */
	before = ranges_bytes(&f->present);
	err = copy(ctx, f->body->fd, off, len, &done);
	if (done > 0) {
		int e2 = ranges_add(&f->present, off, off + (int64_t)done);
		if (!err)
			err = e2;
		if (off + (int64_t)done > f->size)
			f->size = off + (int64_t)done;
		if (f->md5_pos < off + (int64_t)done)
			hash_after_write(f, off, off + (int64_t)done);
		f->mtime = time(NULL);
		f->uncommitted = true;
		f->dirty_state = true;
		pthread_cond_broadcast(&f->cond);
		writeback_plan(f, off + (int64_t)done, &wb);
	} else if (off > old_size) {
		ranges_remove(&f->present, old_size, off);      /* nothing written: no hole */
	}
	int64_t added = ranges_bytes(&f->present) - before, size_delta = f->size - old_size;
	pthread_mutex_unlock(&f->lock);
	writeback(f, &wb);
	dc_account2(f->dc, added, size_delta);
	*written = done;
	if (done > 0)
		return 0;
	if (err == -ENOSPC)
		dc_maybe_evict(f->dc);     /* this write fails; the next finds room */
	return err ? err : -EIO;
}

int dcache_truncate(struct dfile *f, int64_t size, bool *first)
{
	int64_t before, old_size;
	int err;

	if (first)
		*first = false;
	if (size < 0)
		return -EINVAL;
	pthread_mutex_lock(&f->lock);
	old_size = f->size;
	if (size == old_size && f->local) {
		f->mtime = time(NULL);
		f->uncommitted = true;
		pthread_mutex_unlock(&f->lock);
		return 0;
	}
	err = make_local(f, size > old_size ? size - old_size : 0, size, first);
	if (!err && ftruncate(f->body->fd, size))
		err = -errno;
	if (err) {
		pthread_mutex_unlock(&f->lock);
		return err;
	}
	before = ranges_bytes(&f->present);
	if (size < old_size)
		ranges_remove(&f->present, size, INT64_MAX);
	else
		ranges_add(&f->present, old_size, size);        /* zeros */
	if (size < f->md5_pos)
		dc_md5_reset(f);
	if (size < f->wb_pos)
		f->wb_pos = f->wb_wait = size;
	f->size = size;
	f->mtime = time(NULL);
	f->uncommitted = true;
	f->dirty_state = true;
	pthread_cond_broadcast(&f->cond);
	int64_t added = ranges_bytes(&f->present) - before;
	pthread_mutex_unlock(&f->lock);
	dc_account2(f->dc, added, size - old_size);
	return 0;
}

void dcache_set_mtime(struct dfile *f, time_t mtime)
{
	pthread_mutex_lock(&f->lock);
	f->mtime = mtime;
	if (f->local)
		f->uncommitted = true;  /* the upload must carry the new time */
	pthread_mutex_unlock(&f->lock);
}

bool dcache_uncommitted(struct dfile *f)
{
	bool r;

	pthread_mutex_lock(&f->lock);
	r = f->local && f->uncommitted && !f->discarded;
	pthread_mutex_unlock(&f->lock);
	return r;
}

void dcache_path(struct dcache *dc, uint64_t id, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%" PRIu64, dc->dir, id);
}

/* What a commit waits for a running background hasher to finish (at
 * ~650 MB/s of MD5, about 1.2 s); more is left to the upload. */
#define COMMIT_WAIT_HASH_MAX (3 * DC_HASH_AT_COMMIT_MAX)

/* The @len bytes of cache file @fd into out->inline_data; 0 or -errno. */
static int read_inline(int fd, size_t len, struct dcache_commit *out)
{
	char *p = malloc(len ? len : 1);
	size_t got = 0;

	if (!p)
		return -ENOMEM;
	while (got < len) {
		ssize_t n = pread(fd, p + got, len - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n < 0 ? -errno : -EIO;
			free(p);
			return err;
		}
		got += (size_t)n;
	}
	out->inline_data = p;
	out->inline_len = len;
	return 0;
}

void dcache_commit_release(struct dcache_commit *c)
{
	free(c->inline_data);
	c->inline_data = NULL;
	c->inline_len = 0;
}

int dcache_commit(struct dfile *f, struct dcache_commit *out)
{
	unsigned char dig[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	EVP_MD_CTX *c = NULL;
	struct dbody *b;
	bool defer;
	struct stat st;
	int err;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&f->lock);
	if (f->discarded) {
		pthread_mutex_unlock(&f->lock);
		return -ENOENT;
	}
	if (!f->local || !f->uncommitted) {
		pthread_mutex_unlock(&f->lock);
		return 0;
	}
	/* Every byte of the base not overwritten must be here before upload. */
	err = dc_ensure_present(f, 0, f->size, f->size);
	/* Much left to hash: leave it to the upload (a huge sparse file), unless a
	 * background hasher is at it and not too far behind (sequential writing
	 * outran it by less than about 1.2 s of MD5): it finishes these bytes
	 * anyway, while the upload would hash the whole file again from byte 0
	 * (1 GiB: 1.6 s of MD5 before the allocate). Far behind (a write far past
	 * a truncate: holes to hash), close() does not wait for it. */
	defer = f->size - f->md5_pos > DC_HASH_AT_COMMIT_MAX &&
		(!f->bg_hash || f->size - f->md5_pos > COMMIT_WAIT_HASH_MAX);
	if (!err && !defer)
		err = dc_hash_local(f);
	if (!err && !defer && !(c = EVP_MD_CTX_new()))
		err = -ENOMEM;
	if (err == -ENOENT) {
		pthread_mutex_unlock(&f->lock);
		return err;             /* unlinked while it was being hashed */
	}
	if (err) {
		pthread_mutex_unlock(&f->lock);
		log_err("cache: cannot complete the changed content of node %" PRIu64 ": %s",
			f->id, strerror(-err));
		return err == -ENOSPC ? err : -EIO;
	}
	/* Finish a copy: later appends continue the running hash. Deferred:
	 * out->md5 stays "" and the upload hashes the cache file. */
	if (!defer) {
		EVP_MD_CTX_copy_ex(c, f->md5ctx);
		EVP_DigestFinal_ex(c, dig, &dlen);
		EVP_MD_CTX_free(c);
		md5_hex(dig, out->md5);
	}
	if (fstat(f->body->fd, &st) == 0 && st.st_size != f->size &&
	    ftruncate(f->body->fd, f->size))
		err = -errno;
	out->size = f->size;
	out->mtime = f->mtime;
	/* A small file's bytes go to the upload journal, in the same
	 * transaction as its record (one sync for both, see dcache_config):
	 * read here, under the lock, so that they are the bytes hashed. */
	bool inl = !err && !defer && f->dc->cfg.inline_max &&
		   f->size <= (int64_t)f->dc->cfg.inline_max;
	if (inl)
		err = read_inline(f->body->fd, (size_t)f->size, out);
	f->uncommitted = false;         /* a write from now on sets it again */
	b = f->body;
	dc_body_ref(b);
	pthread_mutex_unlock(&f->lock);

	if (!err && !inl && fsync(b->fd))
		err = -errno;

	pthread_mutex_lock(&f->lock);
	dc_body_unref(b);
	if (!err && f->wb_err && b == f->body) {
		err = f->wb_err;        /* an earlier writeback failed: reported once */
		f->wb_err = 0;
	}
	if (err) {
		f->uncommitted = true;
		pthread_mutex_unlock(&f->lock);
		dcache_commit_release(out);
		log_err("cache: cannot sync the cache file of node %" PRIu64 ": %s", f->id,
			strerror(-err));
		return err == -ENOSPC ? err : -EIO;
	}
	if (!f->uncommitted) {
		snprintf(f->md5, sizeof(f->md5), "%s", out->md5);
		pthread_mutex_lock(&f->dc->lock);
		f->commit_seq = ++f->dc->commit_seq;
		pthread_mutex_unlock(&f->dc->lock);
	}
	out->seq = f->commit_seq;
	dc_persist(f);
	pthread_mutex_unlock(&f->lock);
	dcache_path(f->dc, f->id, out->path, sizeof(out->path));
	out->committed = true;
	return 0;
}

bool dcache_set_clean(struct dcache *dc, uint64_t id, int64_t size, const char *md5,
		      uint64_t seq, time_t *mtime)
{
	struct meta_content c;
	struct dfile *f;
	bool ok = false;

	pthread_mutex_lock(&dc->lock);
	f = dc_hash_find(dc, id);
	if (f) {
		f->refs++;
	} else if (!meta_content_get(dc->cfg.meta, id, &c)) {
		/* not open: no commit can be on its way, so content committed
		 * without its MD5 is the one confirmed */
		if (c.dirty && c.size == size && (!strcmp(c.md5, md5) || !c.md5[0])) {
			snprintf(c.md5, sizeof(c.md5), "%s", md5);
			c.dirty = false;
			c.verified = c.bytes == size;
			if (!meta_content_put(dc->cfg.meta, id, &c)) {
				dc->local_bytes -= size;
				dc->stats.local_bytes = dc->local_bytes;
				ok = true;
			}
		}
		meta_content_release(&c);
	}
	pthread_mutex_unlock(&dc->lock);
	if (!f)
		return ok;
	pthread_mutex_lock(&f->lock);
	if (f->local && !f->uncommitted && !f->discarded && f->size == size &&
	    (!strcmp(f->md5, md5) ||
	     (!f->md5[0] && (f->commit_seq == 0 || f->commit_seq == seq)))) {
		snprintf(f->md5, sizeof(f->md5), "%s", md5);
		f->local = false;
		f->verified = ranges_covers(&f->present, 0, size);
		if (mtime)
			*mtime = f->mtime;
		dc_persist(f);
		ok = true;
	}
	pthread_mutex_unlock(&f->lock);
	if (ok)
		dc_account2(dc, 0, -size);
	dc_dfile_unref(f);
	return ok;
}

void dcache_discard(struct dcache *dc, uint64_t id)
{
	struct meta_content c;
	struct dfile *f;

	pthread_mutex_lock(&dc->lock);
	dc_bad_forget(dc, id);
	f = dc_hash_find(dc, id);
	if (f) {
		f->refs++;
	} else {
		if (!meta_content_get(dc->cfg.meta, id, &c)) {
			dc->bytes -= c.bytes;
			if (c.dirty)
				dc->local_bytes -= c.size;
			dc->stats.cached_bytes = dc->bytes;
			dc->stats.local_bytes = dc->local_bytes;
			meta_content_release(&c);
		}
		meta_content_delete(dc->cfg.meta, id);
		dc_unlink_content(dc, id);
	}
	pthread_mutex_unlock(&dc->lock);
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	int64_t local = !f->discarded && f->local ? f->size : 0;
	int64_t bytes = !f->discarded ? ranges_bytes(&f->present) : 0;
	f->discarded = true;
	f->local = false;
	pthread_mutex_unlock(&f->lock);
	dc_account2(dc, -bytes, -local);
	/* The open descriptor keeps working; the name and the record go. */
	pthread_mutex_lock(&dc->lock);
	meta_content_delete(dc->cfg.meta, id);
	dc_unlink_content(dc, id);
	pthread_mutex_unlock(&dc->lock);
	dc_dfile_unref(f);
}

/* The open dfile of @id with a reference taken (dc_dfile_unref() it), or NULL. */
struct dfile *dc_find_ref(struct dcache *dc, uint64_t id)
{
	struct dfile *f;

	pthread_mutex_lock(&dc->lock);
	f = dc_hash_find(dc, id);
	if (f)
		f->refs++;
	pthread_mutex_unlock(&dc->lock);
	return f;
}

/* Size and mtime of open @id; with @local_only, only of local content. */
static bool peek(struct dcache *dc, uint64_t id, bool local_only, int64_t *size, time_t *mtime)
{
	struct dfile *f = dc_find_ref(dc, id);
	bool r;

	if (!f)
		return false;
	pthread_mutex_lock(&f->lock);
	r = !local_only || (f->local && !f->discarded);
	if (r) {
		*size = f->size;
		*mtime = f->mtime;
	}
	pthread_mutex_unlock(&f->lock);
	dc_dfile_unref(f);
	return r;
}

bool dcache_peek(struct dcache *dc, uint64_t id, int64_t *size, time_t *mtime)
{
	return peek(dc, id, true, size, mtime);
}

bool dcache_peek_open(struct dcache *dc, uint64_t id, int64_t *size, time_t *mtime)
{
	return peek(dc, id, false, size, mtime);
}

int64_t dcache_blocks(struct dcache *dc, uint64_t id)
{
	char name[32];
	struct stat st;

	snprintf(name, sizeof(name), "%" PRIu64, id);
	if (fstatat(dc->dirfd, name, &st, AT_SYMLINK_NOFOLLOW))
		return -1;
	return (int64_t)st.st_blocks;
}
