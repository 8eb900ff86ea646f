/*
 * cache/data.c — the content cache (see data.h): open and close, cache file
 * bodies, the open-file hash, failed revisions, persistence of the present
 * ranges, and the cache's life cycle. The objects and the lock order are
 * described in cache/data_int.h.
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
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/privdir.h"
#include "net/http.h"
#include "net/jfs.h"

/* ---- bodies ----------------------------------------------------------- */

void dc_body_unref(struct dbody *b)
{
	if (b && atomic_fetch_sub(&b->refs, 1) == 1) {
		close(b->fd);
		free(b);
	}
}

void dc_body_ref(struct dbody *b)
{
	atomic_fetch_add(&b->refs, 1);
}

/* Open (creating) the cache file of @id; @fresh truncates it first. */
int dc_body_open(struct dcache *dc, uint64_t id, bool fresh, struct dbody **out)
{
	char name[32];
	struct dbody *b = malloc(sizeof(*b));
	int fd;

	*out = NULL;
	if (!b)
		return -ENOMEM;
	snprintf(name, sizeof(name), "%" PRIu64, id);
	if (fresh)
		unlinkat(dc->dirfd, name, 0);
	/* A regular file of ours, never through a symlink (lib/privdir.h);
	 * new content is a new file. Other hard links are fine: lost+found
	 * keeps content that way. */
	fd = privdir_open_file(dc->dirfd, name, O_RDWR | O_CREAT | (fresh ? O_EXCL : 0), false);
	if (fd < 0) {
		char path[PATH_MAX + 64], why[PATH_MAX + 200];
		snprintf(path, sizeof(path), "%s/%s", dc->dir, name);
		log_err("cache: %s", privdir_file_error(path, fd, why, sizeof(why)));
		free(b);
		return fd;
	}
	b->fd = fd;
	atomic_init(&b->refs, 1);
	*out = b;
	return 0;
}

/* ---- hash of open files (dc->lock held) ------------------------------- */

struct dfile **dc_hash_slot(struct dcache *dc, uint64_t id)
{
	struct dfile **p = &dc->hash[(id * 0x9e3779b97f4a7c15ULL) >> 32 & (dc->nhash - 1)];

	while (*p && (*p)->id != id)
		p = &(*p)->hnext;
	return p;
}

struct dfile *dc_hash_find(struct dcache *dc, uint64_t id)
{
	return *dc_hash_slot(dc, id);
}

/* ---- revisions that failed verification (dc->lock held) ----------------- */

/* How often revision (@size, @md5) of @id did not match its MD5 (0: never). */
static unsigned bad_count(struct dcache *dc, uint64_t id, int64_t size, const char *md5)
{
	for (struct dbad *b = dc->bad; b; b = b->next)
		if (b->id == id)
			return b->size == size && !strcmp(b->md5, md5) ? b->mismatches : 0;
	return 0;
}

/* Count one more mismatch of revision (@size, @md5) of @id; the new count.
 * Without memory to remember it, the worst is assumed (reads fail). */
unsigned dc_bad_note(struct dcache *dc, uint64_t id, int64_t size, const char *md5)
{
	struct dbad **p = &dc->bad, *b;

	while (*p && (*p)->id != id)
		p = &(*p)->next;
	b = *p;
	if (b) {
		*p = b->next;
		if (b->size != size || strcmp(b->md5, md5))
			b->mismatches = 0;      /* another revision: a fresh start */
	} else if (!(b = calloc(1, sizeof(*b)))) {
		return 2;
	} else {
		b->id = id;
		dc->nbad++;
	}
	b->size = size;
	snprintf(b->md5, sizeof(b->md5), "%s", md5);
	b->mismatches++;
	b->next = dc->bad;
	dc->bad = b;
	if (dc->nbad > DC_BAD_MAX) {
		/* Forget the oldest: at worst it is fetched once more. */
		for (p = &dc->bad; (*p)->next; p = &(*p)->next)
			;
		free(*p);
		*p = NULL;
		dc->nbad--;
	}
	return b->mismatches;
}

/* @id is gone: forget its failures. */
void dc_bad_forget(struct dcache *dc, uint64_t id)
{
	for (struct dbad **p = &dc->bad; *p; p = &(*p)->next) {
		if ((*p)->id == id) {
			struct dbad *b = *p;
			*p = b->next;
			free(b);
			dc->nbad--;
			return;
		}
	}
}

/* ---- persistence -------------------------------------------------------- */

/* Record @f's state in the index. f->lock held. */
void dc_persist(struct dfile *f)
{
	struct meta_content c = { .size = f->size, .verified = f->verified && !f->local,
				  .dirty = f->local, .atime = time(NULL),
				  .bytes = ranges_bytes(&f->present) };
	int err;

	if (f->discarded)
		return;
	snprintf(c.md5, sizeof(c.md5), "%s", f->md5);
	err = ranges_encode(&f->present, &c.ranges, &c.ranges_len);
	if (!err)
		err = meta_content_put(f->dc->cfg.meta, f->id, &c);
	free(c.ranges);
	if (err)
		log_warn("cache: cannot record the content state of node %" PRIu64 ": %s",
			 f->id, strerror(-err));
	f->persisted_bytes = c.bytes;
	f->dirty_state = false;
}

/* Adjust the global byte counts by @delta (present) and @local_delta. */
void dc_account2(struct dcache *dc, int64_t delta, int64_t local_delta)
{
	pthread_mutex_lock(&dc->lock);
	dc->bytes += delta;
	dc->local_bytes += local_delta;
	dc->stats.cached_bytes = dc->bytes;
	dc->stats.local_bytes = dc->local_bytes;
	pthread_mutex_unlock(&dc->lock);
}

void dc_account(struct dcache *dc, int64_t delta)
{
	dc_account2(dc, delta, 0);
}

/*
 * Start over with an empty cache file for revision (@size, @md5). f->lock
 * held. Fetches in flight notice the new epoch and stop; readers wake up
 * and re-evaluate.
 */
int dc_reset_locked(struct dfile *f, int64_t size, const char *md5)
{
	struct dbody *nb;
	int64_t had = ranges_bytes(&f->present);
	int err = dc_body_open(f->dc, f->id, true, &nb);

	if (err)
		return err;
	dc_body_unref(f->body);
	f->body = nb;
	f->epoch++;
	f->size = size;
	snprintf(f->md5, sizeof(f->md5), "%s", md5);
	ranges_clear(&f->present);
	f->verified = size == 0;
	f->md5_pos = 0;
	f->md5_gen++;
	EVP_DigestInit_ex(f->md5ctx, EVP_md5(), NULL);
	f->broken = 0;
	/* Jobs of the old epoch stay on the list until their worker ends them,
	 * but no longer cover anything: readers start new ones. */
	for (struct fjob *j = f->jobs; j; j = j->next)
		if (j->epoch != f->epoch)
			j->end = j->cur;
	dc_persist(f);
	dc_account(f->dc, -had);
	pthread_cond_broadcast(&f->cond);
	return 0;
}

/* ---- open / close ----------------------------------------------------- */

struct dfile *dc_dfile_new(struct dcache *dc, uint64_t id)
{
	struct dfile *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->md5ctx = EVP_MD_CTX_new();
	/* streams wait on f->cond with deadlines */
	if (!f->md5ctx || clock_cond_init(&f->cond)) {
		EVP_MD_CTX_free(f->md5ctx);
		free(f);
		return NULL;
	}
	f->dc = dc;
	f->id = id;
	f->refs = 1;
	f->epoch = 1;                   /* 0 is "none" in a struct dcache_seq */
	pthread_mutex_init(&f->lock, NULL);
	ranges_init(&f->present);
	return f;
}

void dc_dfile_free(struct dfile *f)
{
	dc_body_unref(f->body);
	ranges_release(&f->present);
	EVP_MD_CTX_free(f->md5ctx);
	free(f->src_path);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

/*
 * Load the recorded state of @f for revision (@size, @md5), or start fresh.
 * Called with dc->lock held, on a new dfile not yet visible to other threads
 * (so the byte count is adjusted directly).
 */
static int dfile_load(struct dfile *f, int64_t size, const char *md5, bool *kept)
{
	struct dcache *dc = f->dc;
	struct meta_content c;
	int err = meta_content_get(dc->cfg.meta, f->id, &c);
	bool same = !err && c.size == size && !strcmp(c.md5, md5);

	if (!err && c.dirty) {
		/* Local content is what the file is, whatever the server says. */
		same = true;
		size = c.size;
		md5 = c.md5;
		f->local = true;
		f->mtime = c.atime;
	}
	f->size = size;
	snprintf(f->md5, sizeof(f->md5), "%s", md5);
	EVP_DigestInit_ex(f->md5ctx, EVP_md5(), NULL);
	*kept = same || err == -ENOENT;
	if (!f->local) {
		unsigned n = bad_count(dc, f->id, size, md5);
		if (n >= 2)
			f->broken = -EIO;       /* until the revision changes */
		/* The kernel may hold discarded bytes unless verified since. */
		if (n && !(same && c.verified))
			*kept = false;
	}
	if (same && !ranges_decode(&f->present, c.ranges, c.ranges_len, size) &&
	    !dc_body_open(dc, f->id, false, &f->body)) {
		struct stat st;
		int64_t last = f->present.n ? f->present.v[f->present.n - 1].end : 0;
		/* A cache file shorter than its ranges was damaged: distrust it. */
		if (fstat(f->body->fd, &st) == 0 && st.st_size >= last) {
			f->verified = c.verified && !f->local;
			if (f->local)
				f->mtime = st.st_mtime;
			f->persisted_bytes = ranges_bytes(&f->present);
			meta_content_release(&c);
			return 0;
		}
		log_warn("cache: content of node %" PRIu64 " is damaged; fetching it again", f->id);
		dc_body_unref(f->body);
		f->body = NULL;
	}
	if (f->local) {
		/* Damaged local content cannot be fetched again: keep the file
		 * as it is (holes read as zeros) rather than lose it. */
		log_err("cache: the changed content of node %" PRIu64 " is damaged", f->id);
		meta_content_release(&c);
		err = dc_body_open(dc, f->id, false, &f->body);
		if (!err) {
			ranges_clear(&f->present);
			err = ranges_add(&f->present, 0, f->size);
		}
		return err;
	}
	if (!err) {
		dc->bytes -= c.bytes;
		dc->stats.cached_bytes = dc->bytes;
		meta_content_release(&c);
	}
	/* No usable content: an empty cache file. */
	ranges_clear(&f->present);
	f->verified = size == 0;
	err = dc_body_open(dc, f->id, true, &f->body);
	if (!err)
		dc_persist(f);
	return err;
}

int dcache_open(struct dcache *dc, uint64_t id, int64_t size, const char *md5,
		struct dfile **out, bool *kept)
{
	struct dfile *f, **slot;
	bool k = true;
	int err;

	*out = NULL;
	pthread_mutex_lock(&dc->lock);
	slot = dc_hash_slot(dc, id);
	f = *slot;
	if (f) {
		f->refs++;
		pthread_mutex_unlock(&dc->lock);
		pthread_mutex_lock(&f->lock);
		if (!f->local && (f->size != size || strcmp(f->md5, md5))) {
			k = false;
			err = dc_reset_locked(f, size, md5);
			if (err) {
				pthread_mutex_unlock(&f->lock);
				dcache_close(f);
				return err;
			}
		}
		if (!f->local && !f->verified) {
			/* The kernel may hold discarded bytes. */
			pthread_mutex_lock(&dc->lock);
			if (f->broken || bad_count(dc, id, f->size, f->md5))
				k = false;
			pthread_mutex_unlock(&dc->lock);
		}
		pthread_mutex_unlock(&f->lock);
		if (kept)
			*kept = k;
		*out = f;
		return 0;
	}
	f = dc_dfile_new(dc, id);
	if (!f) {
		pthread_mutex_unlock(&dc->lock);
		return -ENOMEM;
	}
	/* Loading under dc->lock keeps eviction and gc away from this id. */
	err = dfile_load(f, size, md5, &k);
	if (err) {
		pthread_mutex_unlock(&dc->lock);
		dc_dfile_free(f);
		return err;
	}
	*slot = f;
	dc->nopen++;
	pthread_mutex_unlock(&dc->lock);
	meta_content_touch(dc->cfg.meta, id, time(NULL));
	if (kept)
		*kept = k;
	*out = f;
	return 0;
}

int dcache_open_ref(struct dcache *dc, uint64_t id, int64_t size, const char *md5,
		    const char *path, int64_t revision, struct dfile **out)
{
	char *p = strdup(path);
	int err;

	if (!p)
		return -ENOMEM;
	err = dcache_open(dc, id, size, md5, out, NULL);
	if (err) {
		free(p);
		return err;
	}
	pthread_mutex_lock(&(*out)->lock);
	free((*out)->src_path);
	(*out)->src_path = p;
	(*out)->src_rev = revision;
	pthread_mutex_unlock(&(*out)->lock);
	return 0;
}


/* Drop a reference to @f; the last one persists its state and frees it. */
void dc_dfile_unref(struct dfile *f)
{
	struct dcache *dc = f->dc;

	pthread_mutex_lock(&dc->lock);
	if (--f->refs) {
		pthread_mutex_unlock(&dc->lock);
		return;
	}
	*dc_hash_slot(dc, f->id) = f->hnext;
	dc->nopen--;
	/* Persist under dc->lock so that a new open sees the final state.
	 * f->lock is not taken (that would invert the lock order): with no
	 * reference left no other thread can reach @f, and every reference is
	 * dropped under dc->lock, after its holder's last use of @f. Nothing
	 * cached (the kernel's page cache served every read): no record, no
	 * file. */
	if (!f->local && !f->discarded && !f->present.n) {
		meta_content_delete(dc->cfg.meta, f->id);
		dc_unlink_content(dc, f->id);
	} else if (f->dirty_state) {
		dc_persist(f);
	}
	bool over = dc->cfg.max_size && dc->bytes > (int64_t)dc->cfg.max_size;
	pthread_mutex_unlock(&dc->lock);
	dc_dfile_free(f);
	/* It may have been the one that kept the cache over its bound. */
	if (over)
		dc_maybe_evict(dc);
}

void dcache_close(struct dfile *f)
{
	if (!f)
		return;
	/* Operations through a handle use @f under its handle's reference;
	 * the kernel sends the release only after their replies. That order
	 * goes through /dev/fuse, where no tool (and no reader of this code)
	 * can see it: taking f->lock once makes the last operation's unlock
	 * happen before the unref that may destroy it (ThreadSanitizer's
	 * mount workload is clean with this). A stream of the handle's reader
	 * ends with it: which of the file's handles that was is not known
	 * here, so every stream of the file ends (another reader's starts
	 * again at its next read). */
	pthread_mutex_lock(&f->lock);
	dc_stream_cancel(f, NULL);
	pthread_mutex_unlock(&f->lock);
	dc_dfile_unref(f);
}

int64_t dcache_size(struct dfile *f)
{
	int64_t s;

	pthread_mutex_lock(&f->lock);
	s = f->size;
	pthread_mutex_unlock(&f->lock);
	return s;
}

/* ---- life cycle ------------------------------------------------------------ */

int dcache_new(const struct dcache_config *cfg, struct dcache **out)
{
	struct dcache *dc = calloc(1, sizeof(*dc));
	int64_t total = 0, dirty = 0;
	int err;

	*out = NULL;
	if (!dc)
		return -ENOMEM;
	dc->cfg = *cfg;
	dc->dirfd = -1;
	if (!dc->cfg.fetch_threads)
		dc->cfg.fetch_threads = 8;
	dc->dir = strdup(cfg->dir);
	dc->nhash = 1024;
	dc->hash = calloc(dc->nhash, sizeof(*dc->hash));
	if (!dc->dir || !dc->hash) {
		err = -ENOMEM;
		goto fail;
	}
	/* created 0700; not a symlink, ours, not writable by others */
	dc->dirfd = privdir_open_dir(AT_FDCWD, dc->dir);
	if (dc->dirfd < 0) {
		err = dc->dirfd;
		log_err("cache: cannot use '%s': %s", dc->dir,
			err == -EPERM ? "not a directory of ours that only we can write to"
				      : strerror(-err));
		goto fail;
	}
	pthread_mutex_init(&dc->lock, NULL);
	pthread_cond_init(&dc->qcond, NULL);
	if (!meta_was_clean(cfg->meta)) {
		/* Cache files may hold bytes that never reached the disk. */
		err = meta_content_drop_clean(cfg->meta);
		if (err) {
			pthread_mutex_destroy(&dc->lock);
			pthread_cond_destroy(&dc->qcond);
			goto fail;
		}
	}
	meta_content_usage(cfg->meta, &total, &dirty);
	dc->bytes = total;
	dc->local_bytes = dirty;
	dc->stats.cached_bytes = total;
	dc->stats.local_bytes = dirty;
	*out = dc;
	return 0;
fail:
	if (dc->dirfd >= 0)
		close(dc->dirfd);
	free(dc->hash);
	free(dc->dir);
	free(dc);
	return err;
}

int dcache_start(struct dcache *dc)
{
	bool was_clean = meta_was_clean(dc->cfg.meta);

	dcache_gc(dc);
	if (!was_clean)
		dc_sweep_orphans(dc);
	dc->workers = calloc(dc->cfg.fetch_threads, sizeof(*dc->workers));
	if (!dc->workers)
		return -ENOMEM;
	for (unsigned i = 0; i < dc->cfg.fetch_threads; i++) {
		int rc = pthread_create(&dc->workers[i], NULL, dc_worker_main, dc);
		if (rc) {
			log_err("cache: cannot start a download worker: %s", strerror(rc));
			return -rc;
		}
		dc->nworkers++;
	}
	dc_maybe_evict(dc);
	return 0;
}

void dcache_stop(struct dcache *dc)
{
	if (!dc)
		return;
	pthread_mutex_lock(&dc->lock);
	dc->stop = true;
	pthread_cond_broadcast(&dc->qcond);
	pthread_mutex_unlock(&dc->lock);
	dc_hash_bg_wait(dc);    /* background hashers of local content (data_hash.c) */
	for (unsigned i = 0; i < dc->nworkers; i++)
		pthread_join(dc->workers[i], NULL);
	dc->nworkers = 0;
	free(dc->workers);
	dc->workers = NULL;
}

void dcache_free(struct dcache *dc)
{
	if (!dc)
		return;
	dcache_stop(dc);
	/* Files still open here were leaked by the caller (or their release
	 * never came): persist and free them, so that the eviction below can
	 * bring the cache within its bound at rest. */
	for (size_t i = 0; i < dc->nhash; i++) {
		while (dc->hash[i]) {
			struct dfile *f = dc->hash[i];
			dc->hash[i] = f->hnext;
			log_warn("cache: node %" PRIu64 " still open at shutdown", f->id);
			pthread_mutex_lock(&f->lock);
			dc_persist(f);
			pthread_mutex_unlock(&f->lock);
			dc_dfile_free(f);
		}
	}
	dc_maybe_evict(dc);                /* every file is closed now */
	while (dc->bad) {
		struct dbad *b = dc->bad;
		dc->bad = b->next;
		free(b);
	}
	pthread_cond_destroy(&dc->qcond);
	pthread_mutex_destroy(&dc->lock);
	close(dc->dirfd);
	free(dc->hash);
	free(dc->dir);
	free(dc);
}

void dcache_stats(struct dcache *dc, struct dcache_stats *out)
{
	pthread_mutex_lock(&dc->lock);
	*out = dc->stats;
	pthread_mutex_unlock(&dc->lock);
}
