/*
 * cache/data.c — see data.h.
 *
 * Objects
 *   struct dcache   the cache: open files by id (hash), the fetch queue, the
 *                   download workers, the byte count for the bound.
 *   struct dfile    one open file's content: its cache file ("body"), the
 *                   ranges present, the fetches in flight, the MD5 state.
 *   struct dbody    a cache file descriptor with a reference count. A reset
 *                   (new revision, MD5 mismatch) swaps in a new body; fetches
 *                   and replies that still hold the old one finish on it.
 *   struct fjob     one fetch: bytes [start, end) of one body; cur is the
 *                   next byte to arrive ([start, cur) is present).
 *   struct dbad     a server revision of a node that failed verification,
 *                   and how often: it outlives the dfile (the next open of a
 *                   revision that failed twice fails at once, with EIO).
 *
 * Clean content is a prefix-by-prefix copy of one server revision, verified
 * by MD5 once complete. Local content (f->local) is what the user wrote,
 * over the bytes of the revision it started from; its MD5 is computed under
 * f->lock as sequential writes arrive and finished by dcache_commit().
 *
 * Threading and lock order
 *   f->lock  (per dfile)  ranges, jobs, body, epoch, md5 state, seq windows
 *   dc->lock (per cache)  the open-file hash, f->refs, the job queue, counters,
 *                         the failed revisions (dc->bad)
 *   meta's lock           leaf, taken inside meta_* calls
 * Order: f->lock -> dc->lock -> meta. Nothing blocks on the network or
 * waits on a condition while holding dc->lock. Bytes enter a body under
 * f->lock: a worker writes only the parts of what it received that are
 * still missing (a local write may have filled them meanwhile) and wakes
 * readers (f->cond). Verification of clean content reads present bytes
 * without the lock (they never change within an epoch of clean content).
 */
#include "cache/data.h"

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
#include "lib/privdir.h"
#include "net/http.h"
#include "net/jfs.h"

#define DC_WINDOW_MIN   (128 * 1024)            /* first read-ahead window */
#define DC_WINDOW_MAX   (16 * 1024 * 1024)      /* widest read-ahead window */
#define DC_PROBE_RUN    (1024 * 1024)           /* a shorter sequential run may be a probe */
#define DC_RETRIES      6                       /* resumes without progress */
#define DC_HASH_CHUNK   (1024 * 1024)
#define DC_MD5_EMPTY    "d41d8cd98f00b204e9800998ecf8427e"
#define DC_PERSIST_STEP (8 * 1024 * 1024)       /* persist ranges at least this often */
#define DC_BAD_MAX      1024                    /* failed revisions remembered */
#define DC_DISK_LOW_PCT 5       /* the cache filesystem is nearly full below this free share: */
#define DC_DISK_OK_PCT  10      /* clean content is evicted until this much is free */
#define DC_DISK_RESERVE_PCT 2   /* a write that grows content is refused (ENOSPC) below */
#define DC_DISK_RESERVE_MIN (4 * 1024 * 1024) /* max(this share, this many bytes) free:
					 the index and the journal stay writable, so uploads
					 can finish and their content become evictable */

struct dbody {
	int fd;
	atomic_uint refs;               /* atomic: a reply buffer outlives its dfile */
};

struct fjob {
	struct dfile *f;
	struct dbody *body;             /* the body it writes into (ref held) */
	uint64_t epoch;                 /* f->epoch when created */
	int64_t start, cur, end;        /* protected by f->lock */
	int err;                        /* final result, valid when done */
	bool done;
	unsigned refs;                  /* worker + waiting readers; f->lock */
	struct fjob *next;              /* f->jobs list (f->lock) */
	struct fjob *qnext;             /* dc->queue (dc->lock) */
};

struct dbad {
	uint64_t id;
	int64_t size;                   /* the revision that failed */
	char md5[33];
	unsigned mismatches;            /* 1: fetched again; 2 or more: reads fail */
	struct dbad *next;              /* dc->bad, most recent first */
};

struct dfile {
	struct dcache *dc;
	uint64_t id;
	unsigned refs;                  /* opens + queued jobs; protected by dc->lock */
	struct dfile *hnext;            /* hash chain; dc->lock */

	pthread_mutex_t lock;           /* protects everything below */
	pthread_cond_t cond;            /* progress of any job, resets */
	struct dbody *body;
	uint64_t epoch;                 /* bumped by every reset */
	int64_t size;
	char md5[33];
	struct ranges present;
	struct fjob *jobs;              /* in flight */
	bool verified;                  /* every byte present and MD5 checked */
	int broken;                     /* -EIO after a second mismatch */
	uint64_t bad_epoch;             /* the last epoch discarded by a mismatch, 0 none:
					   handles served from it (or earlier) get EIO */
	EVP_MD_CTX *md5ctx;             /* over [0, md5_pos) */
	int64_t md5_pos;
	uint64_t md5_gen;               /* changes whenever md5_pos goes back */
	bool hashing;                   /* a thread is extending md5_pos */
	int64_t persisted_bytes;        /* bytes present when last persisted */
	bool dirty_state;               /* ranges changed since persisted */
	bool local;                     /* local content (see the top of the file) */
	bool uncommitted;               /* changed since the last dcache_commit() */
	uint64_t commit_seq;            /* the last commit's number (dc-wide), 0: none yet */
	bool discarded;                 /* unlinked: nothing is recorded any more */
	time_t mtime;                   /* local content: modification time */
	char *src_path;                 /* dcache_open_ref(): fetched from this server
					   path (revision src_rev, 0: current); NULL: the
					   node's own path */
	int64_t src_rev;
};

struct dcache {
	struct dcache_config cfg;
	char *dir;
	int dirfd;

	pthread_mutex_t lock;           /* protects the fields below */
	pthread_cond_t qcond;           /* job queued, or stopping */
	struct dfile **hash;
	size_t nhash;                   /* power of two */
	size_t nopen;                   /* dfiles in the hash */
	struct fjob *qhead, *qtail;
	bool stop;
	int64_t bytes;                  /* present bytes in all cache files */
	int64_t local_bytes;            /* size of all local content */
	uint64_t commit_seq;            /* numbers every dcache_commit() */
	struct dcache_stats stats;
	bool evicting;
	bool evict_again;               /* asked for while evicting: one more pass */
	bool over_logged;               /* "local content exceeds the bound" was said */
	bool disk_low_logged;           /* "the cache filesystem is nearly full" was said */
	struct dbad *bad;               /* revisions that failed verification */
	unsigned nbad;                  /* their number, at most DC_BAD_MAX */

	pthread_t *workers;
	unsigned nworkers;
};

static void job_unref(struct dfile *f, struct fjob *j);
static void unlink_content(struct dcache *dc, uint64_t id);
static void recount(struct dcache *dc);

/* ---- bodies ----------------------------------------------------------- */

static void body_unref(struct dbody *b)
{
	if (b && atomic_fetch_sub(&b->refs, 1) == 1) {
		close(b->fd);
		free(b);
	}
}

static void body_ref(struct dbody *b)
{
	atomic_fetch_add(&b->refs, 1);
}

/* Open (creating) the cache file of @id; @fresh truncates it first. */
static int body_open(struct dcache *dc, uint64_t id, bool fresh, struct dbody **out)
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

static struct dfile **hash_slot(struct dcache *dc, uint64_t id)
{
	struct dfile **p = &dc->hash[(id * 0x9e3779b97f4a7c15ULL) >> 32 & (dc->nhash - 1)];

	while (*p && (*p)->id != id)
		p = &(*p)->hnext;
	return p;
}

static struct dfile *hash_find(struct dcache *dc, uint64_t id)
{
	return *hash_slot(dc, id);
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
static unsigned bad_note(struct dcache *dc, uint64_t id, int64_t size, const char *md5)
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
static void bad_forget(struct dcache *dc, uint64_t id)
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
static void persist(struct dfile *f)
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
static void account2(struct dcache *dc, int64_t delta, int64_t local_delta)
{
	pthread_mutex_lock(&dc->lock);
	dc->bytes += delta;
	dc->local_bytes += local_delta;
	dc->stats.cached_bytes = dc->bytes;
	dc->stats.local_bytes = dc->local_bytes;
	pthread_mutex_unlock(&dc->lock);
}

static void account(struct dcache *dc, int64_t delta)
{
	account2(dc, delta, 0);
}

/*
 * Start over with an empty cache file for revision (@size, @md5). f->lock
 * held. Fetches in flight notice the new epoch and stop; readers wake up
 * and re-evaluate.
 */
static int reset_locked(struct dfile *f, int64_t size, const char *md5)
{
	struct dbody *nb;
	int64_t had = ranges_bytes(&f->present);
	int err = body_open(f->dc, f->id, true, &nb);

	if (err)
		return err;
	body_unref(f->body);
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
	persist(f);
	account(f->dc, -had);
	pthread_cond_broadcast(&f->cond);
	return 0;
}

/* ---- open / close ----------------------------------------------------- */

static struct dfile *dfile_new(struct dcache *dc, uint64_t id)
{
	struct dfile *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->md5ctx = EVP_MD_CTX_new();
	if (!f->md5ctx) {
		free(f);
		return NULL;
	}
	f->dc = dc;
	f->id = id;
	f->refs = 1;
	f->epoch = 1;                   /* 0 is "none" in a struct dcache_seq */
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	ranges_init(&f->present);
	return f;
}

static void dfile_free(struct dfile *f)
{
	body_unref(f->body);
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
	    !body_open(dc, f->id, false, &f->body)) {
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
		body_unref(f->body);
		f->body = NULL;
	}
	if (f->local) {
		/* Damaged local content cannot be fetched again: keep the file
		 * as it is (holes read as zeros) rather than lose it. */
		log_err("cache: the changed content of node %" PRIu64 " is damaged", f->id);
		meta_content_release(&c);
		err = body_open(dc, f->id, false, &f->body);
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
	err = body_open(dc, f->id, true, &f->body);
	if (!err)
		persist(f);
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
	slot = hash_slot(dc, id);
	f = *slot;
	if (f) {
		f->refs++;
		pthread_mutex_unlock(&dc->lock);
		pthread_mutex_lock(&f->lock);
		if (!f->local && (f->size != size || strcmp(f->md5, md5))) {
			k = false;
			err = reset_locked(f, size, md5);
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
	f = dfile_new(dc, id);
	if (!f) {
		pthread_mutex_unlock(&dc->lock);
		return -ENOMEM;
	}
	/* Loading under dc->lock keeps eviction and gc away from this id. */
	err = dfile_load(f, size, md5, &k);
	if (err) {
		pthread_mutex_unlock(&dc->lock);
		dfile_free(f);
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

static void maybe_evict(struct dcache *dc);
static bool disk_room(struct dcache *dc);
static bool disk_below(struct dcache *dc, unsigned pct, unsigned reserves);

/* Drop a reference to @f; the last one persists its state and frees it. */
static void dfile_unref(struct dfile *f)
{
	struct dcache *dc = f->dc;

	pthread_mutex_lock(&dc->lock);
	if (--f->refs) {
		pthread_mutex_unlock(&dc->lock);
		return;
	}
	*hash_slot(dc, f->id) = f->hnext;
	dc->nopen--;
	/* Persist under dc->lock so that a new open sees the final state. Taking
	 * f->lock here inverts the lock order, but with no reference left no
	 * other thread can hold or wait for it. Nothing cached (the kernel's
	 * page cache served every read): no record, no file. */
	pthread_mutex_lock(&f->lock);
	if (!f->local && !f->discarded && !f->present.n) {
		meta_content_delete(dc->cfg.meta, f->id);
		unlink_content(dc, f->id);
	} else if (f->dirty_state) {
		persist(f);
	}
	pthread_mutex_unlock(&f->lock);
	bool over = dc->cfg.max_size && dc->bytes > (int64_t)dc->cfg.max_size;
	pthread_mutex_unlock(&dc->lock);
	dfile_free(f);
	/* It may have been the one that kept the cache over its bound. */
	if (over)
		maybe_evict(dc);
}

void dcache_close(struct dfile *f)
{
	if (f)
		dfile_unref(f);
}

int64_t dcache_size(struct dfile *f)
{
	int64_t s;

	pthread_mutex_lock(&f->lock);
	s = f->size;
	pthread_mutex_unlock(&f->lock);
	return s;
}

/* ---- fetching ------------------------------------------------------------ */

/* Queue a fetch of [start, end) of @f. f->lock held. */
static int job_start(struct dfile *f, int64_t start, int64_t end)
{
	struct dcache *dc = f->dc;
	struct fjob *j = calloc(1, sizeof(*j));

	if (!j)
		return -ENOMEM;
	j->f = f;
	j->body = f->body;
	body_ref(f->body);
	j->epoch = f->epoch;
	j->start = j->cur = start;
	j->end = end;
	j->refs = 1;                    /* the worker's */
	j->next = f->jobs;
	f->jobs = j;
	pthread_mutex_lock(&dc->lock);
	f->refs++;                      /* released by the worker */
	if (dc->qtail)
		dc->qtail->qnext = j;
	else
		dc->qhead = j;
	dc->qtail = j;
	pthread_cond_signal(&dc->qcond);
	pthread_mutex_unlock(&dc->lock);
	return 0;
}

/* The job in flight that will deliver byte @pos, or NULL. f->lock held. */
static struct fjob *job_covering(struct dfile *f, int64_t pos)
{
	for (struct fjob *j = f->jobs; j; j = j->next)
		if (!j->done && j->epoch == f->epoch && j->cur <= pos && pos < j->end)
			return j;
	return NULL;
}

/* Where the next job in flight after @pos starts (or @limit). f->lock held. */
static int64_t job_next_start(struct dfile *f, int64_t pos, int64_t limit)
{
	for (struct fjob *j = f->jobs; j; j = j->next)
		if (!j->done && j->epoch == f->epoch && j->cur > pos && j->cur < limit)
			limit = j->cur;
	return limit;
}

/*
 * Start fetches for every byte of [pos, end) that is neither present nor
 * in flight, as few jobs as possible, none longer than DC_WINDOW_MAX.
 * f->lock held.
 */
static int fetch_missing(struct dfile *f, int64_t pos, int64_t end)
{
	while (pos < end) {
		struct fjob *j;
		int64_t m = ranges_next_missing(&f->present, pos, end), stop;
		int err;

		if (m >= end)
			return 0;
		j = job_covering(f, m);
		if (j) {
			pos = j->end;
			continue;
		}
		stop = ranges_next_present(&f->present, m, end);
		stop = job_next_start(f, m, stop);
		if (stop - m > DC_WINDOW_MAX)
			stop = m + DC_WINDOW_MAX;
		err = job_start(f, m, stop);
		if (err)
			return err;
		pos = stop;
	}
	return 0;
}

/* End of the run of bytes after @pos that are present or in flight. f->lock held. */
static int64_t covered_until(struct dfile *f, int64_t pos)
{
	for (;;) {
		int64_t m = ranges_next_missing(&f->present, pos, f->size);
		struct fjob *j;

		if (m >= f->size)
			return f->size;
		j = job_covering(f, m);
		if (!j)
			return m;
		pos = j->end;
	}
}

/* Receives a job's body and writes it into the cache file. */
struct job_sink {
	struct fjob *j;
	int64_t pos;                    /* where the next byte goes */
};

/* pwrite all of [@p, @p + @len) at @off; 0 or -errno. */
static int pwrite_all(int fd, const char *p, size_t len, int64_t off)
{
	while (len) {
		ssize_t w = pwrite(fd, p, len, off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
		off += w;
	}
	return 0;
}

/*
 * Take @len bytes of the download at s->pos. Under f->lock: only bytes
 * still missing are written (a local write may have filled some since the
 * request went out), nothing beyond the current size (a truncate), then
 * the job's progress is published and readers are woken.
 */
static int job_sink_write(void *ctx, const void *data, size_t len)
{
	struct job_sink *s = ctx;
	struct fjob *j = s->j;
	struct dfile *f = j->f;
	const char *p = data;
	int64_t left, end, pos, added = 0;
	int err = 0;

	/* Never take more than was asked for (a server ignoring Range). */
	if (__builtin_sub_overflow(j->end, s->pos, &left) || (int64_t)len > left)
		return -EIO;
	end = s->pos + (int64_t)len;
	pthread_mutex_lock(&f->lock);
	if (j->epoch != f->epoch) {
		pthread_mutex_unlock(&f->lock);
		return -ECANCELED;
	}
	for (pos = s->pos; !err && pos < end && pos < f->size;) {
		int64_t m = ranges_next_missing(&f->present, pos, end < f->size ? end : f->size);
		int64_t stop = ranges_next_present(&f->present, m, end < f->size ? end : f->size);
		if (m >= stop)
			break;
		err = pwrite_all(j->body->fd, p + (m - s->pos), (size_t)(stop - m), m);
		if (!err)
			err = ranges_add(&f->present, m, stop);
		if (!err)
			added += stop - m;
		pos = stop;
	}
	if (!err) {
		s->pos = end;
		j->cur = end;
		f->dirty_state = true;
		pthread_cond_broadcast(&f->cond);
	}
	if (end >= f->size && f->size < j->end)
		j->end = end > f->size ? end : f->size;     /* truncated meanwhile */
	pthread_mutex_unlock(&f->lock);
	if (added)
		account(f->dc, added);
	if (err && err != -ENOMEM)
		log_err("cache: cannot write the cache file of node %" PRIu64 ": %s", f->id,
			strerror(-err));
	return err;
}

/* Is @err worth trying again (the service or the network may recover)? */
static bool retryable(int err)
{
	switch (err) {
	case -ENOENT:
	case -EACCES:
	case -EKEYREJECTED:
	case -ENOSPC:
	case -ENOMEM:
	case -ECANCELED:
	case -EISDIR:
	case -ENOTDIR:
	case -EINVAL:
	case -EHOSTDOWN:        /* offline (net/conn.h): it says when to try again */
		return false;
	default:
		return true;
	}
}

static void hash_advance(struct dfile *f);

/* Run one job to the end: download, resume after cuts, publish, finish. */
static void job_run(struct dcache *dc, struct fjob *j)
{
	struct dfile *f = j->f;
	struct job_sink s = { .j = j };
	struct http_sink sink = { .write = job_sink_write, .ctx = &s };
	unsigned failures = 0;
	char *path = NULL;
	int err;

	pthread_mutex_lock(&f->lock);
	s.pos = j->cur;
	int64_t end = j->end;
	bool live = j->epoch == f->epoch;
	int64_t rev = f->src_rev;
	if (live && f->src_path && !(path = strdup(f->src_path)))
		live = false;
	pthread_mutex_unlock(&f->lock);
	if (!path)
		err = live ? meta_path(dc->cfg.meta, f->id, &path) : -ECANCELED;
	else
		err = 0;
	while (!err && s.pos < end) {
		int64_t got = 0;
		int64_t from = s.pos;

		pthread_mutex_lock(&dc->lock);
		dc->stats.fetches++;
		bool stop = dc->stop;
		pthread_mutex_unlock(&dc->lock);
		if (stop) {
			err = -ECANCELED;
			break;
		}
		if (rev > 0)
			err = jfs_download_revision(dc->cfg.jfs, path, rev, from, end - 1, &sink,
						    &got);
		else
			err = jfs_download(dc->cfg.jfs, path, from, end - 1, &sink, &got);
		pthread_mutex_lock(&dc->lock);
		dc->stats.fetched_bytes += (uint64_t)(s.pos - from);
		pthread_mutex_unlock(&dc->lock);
		/* A truncate may have cut the job short. */
		pthread_mutex_lock(&f->lock);
		if (j->end < end)
			end = j->end;
		pthread_mutex_unlock(&f->lock);
		if (!err && s.pos < end) {
			/* The service ended the body early without an error: resume. */
			err = -EIO;
		}
		if (!err)
			break;
		if (err == -ECANCELED || !retryable(err))
			break;
		if (s.pos > from)
			failures = 0;
		else if (++failures > DC_RETRIES)
			break;
		log_debug("cache: download of node %" PRIu64 " cut at %" PRId64 " (%s), resuming",
			  f->id, s.pos, strerror(-err));
		/* Short pause before resuming: 100 ms, 200 ms, ... 3.2 s. */
		struct timespec ts = { 0, 100000000L };
		for (unsigned i = 0; i < failures && i < 5; i++) {
			ts.tv_nsec *= 2;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec += ts.tv_nsec / 1000000000L;
				ts.tv_nsec %= 1000000000L;
			}
		}
		nanosleep(&ts, NULL);
		err = 0;
		if (s.pos >= end)
			break;
	}
	free(path);
	/* offline: said once per outage by net/conn */
	if (err && err != -ECANCELED && err != -EHOSTDOWN)
		log_warn("cache: cannot download node %" PRIu64 " bytes %" PRId64 "-%" PRId64 ": %s",
			 f->id, s.pos, end - 1, strerror(-err));

	pthread_mutex_lock(&f->lock);
	j->done = true;
	j->err = err ? (err == -ENOSPC || err == -EHOSTDOWN ? err : -EIO) : 0;
	if (err == -ECANCELED && j->epoch != f->epoch)
		j->err = -EAGAIN;       /* superseded: readers retry on the new body */
	if (f->dirty_state && (ranges_bytes(&f->present) - f->persisted_bytes >= DC_PERSIST_STEP ||
			       ranges_covers(&f->present, 0, f->size)))
		persist(f);
	pthread_cond_broadcast(&f->cond);
	job_unref(f, j);
	pthread_mutex_unlock(&f->lock);

	hash_advance(f);
	maybe_evict(dc);
	dfile_unref(f);
}

/* Drop a reference to @j; the last unlinks and frees it. f->lock held. */
static void job_unref(struct dfile *f, struct fjob *j)
{
	if (--j->refs)
		return;
	for (struct fjob **p = &f->jobs; *p; p = &(*p)->next) {
		if (*p == j) {
			*p = j->next;
			break;
		}
	}
	body_unref(j->body);
	free(j);
}

static void *worker_main(void *arg)
{
	struct dcache *dc = arg;

	pthread_mutex_lock(&dc->lock);
	for (;;) {
		struct fjob *j;

		while (!dc->qhead && !dc->stop)
			pthread_cond_wait(&dc->qcond, &dc->lock);
		if (dc->stop && !dc->qhead)
			break;
		j = dc->qhead;
		dc->qhead = j->qnext;
		if (!dc->qhead)
			dc->qtail = NULL;
		pthread_mutex_unlock(&dc->lock);
		job_run(dc, j);
		pthread_mutex_lock(&dc->lock);
	}
	pthread_mutex_unlock(&dc->lock);
	return NULL;
}

/* ---- verification -------------------------------------------------------- */

/*
 * Extend the MD5 of clean content over the present prefix (a download
 * worker, after each fetch). One thread hashes at a time; it reads the
 * cache file without the lock (present bytes of clean content never change
 * within an epoch). The comparison with the server's MD5 is verify_locked's,
 * on the path of the read that finds the file complete.
 */
static void hash_advance(struct dfile *f)
{
	unsigned char *buf = NULL;

	pthread_mutex_lock(&f->lock);
	if (f->hashing || f->verified || f->broken || f->local) {
		pthread_mutex_unlock(&f->lock);
		return;
	}
	f->hashing = true;
	for (;;) {
		int64_t prefix = ranges_prefix(&f->present);
		uint64_t epoch = f->epoch;
		struct dbody *b = f->body;
		int64_t pos = f->md5_pos;
		size_t n;
		ssize_t r;

		if (prefix > f->size)
			prefix = f->size;
		if (pos >= prefix || f->local || f->verified)
			break;
		n = prefix - pos > DC_HASH_CHUNK ? DC_HASH_CHUNK : (size_t)(prefix - pos);
		if (!buf && !(buf = malloc(DC_HASH_CHUNK)))
			break;
		body_ref(b);
		pthread_mutex_unlock(&f->lock);
		r = pread(b->fd, buf, n, pos);
		pthread_mutex_lock(&f->lock);
		body_unref(b);
		if (f->local || f->verified)
			break;
		if (epoch != f->epoch || f->md5_pos != pos)
			continue;       /* reset meanwhile: md5_pos is 0 again */
		if (r != (ssize_t)n) {
			log_err("cache: cannot read back the cache file of node %" PRIu64 ": %s",
				f->id, r < 0 ? strerror(errno) : "short read");
			break;
		}
		EVP_DigestUpdate(f->md5ctx, buf, n);
		f->md5_pos += (int64_t)n;
	}
	f->hashing = false;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	free(buf);
}

static int hash_locked(struct dfile *f, int64_t upto);

/*
 * Clean content that is complete: check it against the server's MD5 before
 * any more of it is served. 0 (verified, or nothing to check yet), or -EIO:
 * it did not match (*@mismatch is set: the caller runs the mismatch
 * callback) — the content is discarded and its epoch marked bad; the first
 * time, a later read by a handle that was not served from it fetches it
 * again; the second time (for this revision, remembered beyond the last
 * close) every read fails until the revision changes. f->lock held; waits
 * for a worker that is hashing.
 */
static int verify_locked(struct dfile *f, bool *mismatch)
{
	unsigned char dig[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	char hex[33], md5[33];
	EVP_MD_CTX *c;
	int err;

	while (f->hashing)
		pthread_cond_wait(&f->cond, &f->lock);
	if (f->broken)
		return f->broken;
	/* (an unlinked file's content is what its descriptors wrote and read:
	 * there is no server revision left to check it against) */
	if (f->verified || f->local || f->discarded || f->size == 0 ||
	    !ranges_covers(&f->present, 0, f->size))
		return 0;
	err = hash_locked(f, f->size);
	if (err)
		return -EIO;
	if (!(c = EVP_MD_CTX_new()))
		return -ENOMEM;
	EVP_MD_CTX_copy_ex(c, f->md5ctx);
	EVP_DigestFinal_ex(c, dig, &dlen);
	EVP_MD_CTX_free(c);
	for (unsigned i = 0; i < 16 && i < dlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", dig[i]);
	hex[32] = '\0';
	if (!f->md5[0] || !strcmp(hex, f->md5)) {
		f->verified = true;
		persist(f);
		return 0;
	}
	pthread_mutex_lock(&f->dc->lock);
	f->dc->stats.mismatches++;
	unsigned n = bad_note(f->dc, f->id, f->size, f->md5);
	pthread_mutex_unlock(&f->dc->lock);
	snprintf(md5, sizeof(md5), "%s", f->md5);
	*mismatch = true;
	f->bad_epoch = f->epoch;
	reset_locked(f, f->size, md5);
	if (n >= 2) {
		log_err("cache: node %" PRIu64 " still does not match the server's MD5 after "
			"fetching it again (got %s, want %s): reads fail with EIO until it "
			"changes on the server", f->id, hex, md5);
		f->broken = -EIO;
	} else {
		log_warn("cache: node %" PRIu64 " does not match the server's MD5 (got %s, want "
			 "%s): discarded; reads that were served from it fail with EIO, a new "
			 "open fetches it again", f->id, hex, md5);
	}
	return -EIO;
}

/* ---- reading ---------------------------------------------------------- */

/*
 * Wait until bytes [off, end) of @f are present, starting fetches for what
 * is missing: each fetch reaches up to @want (the read-ahead window). Two
 * callers missing the same bytes wait for one fetch. f->lock held (waited
 * on). 0 or -errno; a reset meanwhile (new revision) is followed: the
 * caller re-checks the size.
 */
static int ensure_present(struct dfile *f, int64_t off, int64_t end, int64_t want)
{
	for (;;) {
		uint64_t epoch = f->epoch;
		int64_t m;
		struct fjob *j;
		int err;

		if (f->broken)
			return f->broken;
		if (end > f->size)
			end = f->size;
		if (want > f->size)
			want = f->size;
		m = ranges_next_missing(&f->present, off, end);
		if (m >= end)
			return 0;
		j = job_covering(f, m);
		if (!j) {
			err = fetch_missing(f, m, want > end ? want : end);
			if (err)
				return err;
			continue;
		}
		j->refs++;
		while (!j->done && j->cur <= m && epoch == f->epoch)
			pthread_cond_wait(&f->cond, &f->lock);
		err = j->done && j->cur <= m ? j->err : 0;
		job_unref(f, j);
		if (err && err != -EAGAIN && epoch == f->epoch &&
		    !ranges_covers(&f->present, m, m + 1))
			return err;
	}
}

int dcache_read(struct dfile *f, struct dcache_seq *seq, int64_t off, size_t len,
		struct dcache_buf *buf)
{
	bool mismatch = false;
	int64_t end;
	int err = 0;

	memset(buf, 0, sizeof(*buf));
	buf->fd = -1;
	if (off < 0)
		return -EINVAL;
	if (__builtin_add_overflow(off, (int64_t)len, &end))
		end = INT64_MAX;
	pthread_mutex_lock(&f->lock);
	/* The read-ahead window: doubles on sequential reads, resets on a seek,
	 * and, while the run is short, never runs more than twice ahead of
	 * what it has asked for: a probe (a thumbnailer, `head -c 64K`, with
	 * the kernel's own read-ahead on top) stays small, while a long read
	 * still doubles up to DC_WINDOW_MAX. */
	if (seq->started && off == seq->next) {
		if (seq->window < DC_WINDOW_MAX)
			seq->window *= 2;
		if (__builtin_add_overflow(seq->run, (int64_t)len, &seq->run))
			seq->run = INT64_MAX / 4;
	} else {
		seq->window = DC_WINDOW_MIN;
		seq->run = (int64_t)len;
	}
	if (seq->run < DC_PROBE_RUN && seq->window > 2 * seq->run)
		seq->window = 2 * seq->run > DC_WINDOW_MIN ? 2 * seq->run : DC_WINDOW_MIN;
	seq->started = true;
	seq->next = end;
	/* A handle counts as served from the content current at its first
	 * read (the kernel's page cache may have given it bytes before). Once
	 * that content failed verification its reader holds bad bytes: every
	 * later read of the handle fails, the first retry included. */
	if (!seq->epoch)
		seq->epoch = f->epoch;
	err = seq->epoch <= f->bad_epoch ? -EIO : 0;
	if (!err)
		err = ensure_present(f, off, end, off + seq->window);
	if (!err)
		err = verify_locked(f, &mismatch);
	if (!err && seq->epoch <= f->bad_epoch)
		err = -EIO;             /* discarded while this read waited */
	if (end > f->size)
		end = f->size;
	if (!err && end > off) {
		/* Sequential: keep the next window in flight. */
		if (seq->window > DC_WINDOW_MIN) {
			int64_t c = covered_until(f, end);
			if (c < f->size && c - end < seq->window / 2) {
				int64_t to = c + seq->window;
				if (to > f->size)
					to = f->size;
				fetch_missing(f, c, to);
			}
		}
		buf->fd = f->body->fd;
		buf->off = off;
		buf->len = (size_t)(end - off);
		buf->body_ = f->body;
		body_ref(f->body);
		seq->epoch = f->epoch;  /* a new revision since: served from it now */
	}
	pthread_mutex_unlock(&f->lock);
	/* The file may have changed on the service: let the caller refresh
	 * its metadata and drop the kernel's copy (@f stays open meanwhile). */
	if (mismatch && f->dc->cfg.mismatch)
		f->dc->cfg.mismatch(f->dc->cfg.mismatch_ctx, f->id);
	return err;
}

void dcache_buf_release(struct dcache_buf *buf)
{
	body_unref(buf->body_);
	buf->body_ = NULL;
	buf->fd = -1;
}

/* ---- local content ------------------------------------------------------ */

static void md5_reset(struct dfile *f)
{
	EVP_DigestInit_ex(f->md5ctx, EVP_md5(), NULL);
	f->md5_pos = 0;
	f->md5_gen++;
}

/* Zeros for the holes of sparse cache files. */
static const unsigned char zeros[DC_HASH_CHUNK];

/* Extend the running MD5 of local content to @upto (bytes present, read
 * back from the page cache; holes, found with SEEK_DATA, are hashed from
 * zeros[] without reading them). f->lock held. */
static int hash_locked(struct dfile *f, int64_t upto)
{
	unsigned char *buf;
	int64_t data = -1;              /* start of the next data at or after md5_pos */

	if (f->md5_pos >= upto)
		return 0;
	buf = malloc(DC_HASH_CHUNK);
	if (!buf)
		return -ENOMEM;
	while (f->md5_pos < upto) {
		size_t n = upto - f->md5_pos > DC_HASH_CHUNK ? DC_HASH_CHUNK
							     : (size_t)(upto - f->md5_pos);
		if (data < f->md5_pos) {
			off_t d = lseek(f->body->fd, f->md5_pos, SEEK_DATA);
			/* ENXIO: a hole to the end; other errors: read it all */
			data = d >= 0 ? d : errno == ENXIO ? upto : f->md5_pos;
		}
		if (data > f->md5_pos) {
			if ((int64_t)n > data - f->md5_pos)
				n = (size_t)(data - f->md5_pos);
			EVP_DigestUpdate(f->md5ctx, zeros, n);
			f->md5_pos += (int64_t)n;
			continue;
		}
		ssize_t r = pread(f->body->fd, buf, n, f->md5_pos);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int err = r < 0 ? -errno : -EIO;
			log_err("cache: cannot read back the cache file of node %" PRIu64 ": %s",
				f->id, strerror(-err));
			free(buf);
			return err;
		}
		EVP_DigestUpdate(f->md5ctx, buf, (size_t)r);
		f->md5_pos += r;
	}
	free(buf);
	return 0;
}

#define DC_HASH_SLICE   (64LL << 20)    /* hashed per unlock in hash_local() */
/* A commit with more than this left to hash leaves the MD5 to the upload
 * (about 0.4 s of MD5 at 700 MB/s): close() of a huge sparse file returns at
 * once, and the upload worker hashes it, holes without reading them. */
#define DC_HASH_AT_COMMIT_MAX (256LL << 20)

/*
 * Extend the running MD5 of local content to its size, for a commit: like
 * hash_locked(), but f->lock is dropped for each slice (a copy of the
 * context is extended, and kept only if nothing reset the MD5 meanwhile),
 * so that a huge file does not stop stat, unlink or other writers for the
 * whole time. -ENOENT when the file was unlinked meanwhile. f->lock held.
 */
static int hash_local(struct dfile *f)
{
	EVP_MD_CTX *c = NULL;
	unsigned char *buf = NULL;
	int err = 0;

	while (f->hashing)
		pthread_cond_wait(&f->cond, &f->lock);
	f->hashing = true;
	while (!err && f->md5_pos < f->size) {
		int64_t pos = f->md5_pos, end = f->size, data = -1;
		uint64_t gen = f->md5_gen;
		struct dbody *b = f->body;

		if (f->discarded) {
			err = -ENOENT;
			break;
		}
		if (end - pos > DC_HASH_SLICE)
			end = pos + DC_HASH_SLICE;
		if ((!c && !(c = EVP_MD_CTX_new())) || (!buf && !(buf = malloc(DC_HASH_CHUNK)))) {
			err = -ENOMEM;
			break;
		}
		EVP_MD_CTX_copy_ex(c, f->md5ctx);
		body_ref(b);
		pthread_mutex_unlock(&f->lock);
		for (int64_t p = pos; !err && p < end;) {
			size_t n = end - p > DC_HASH_CHUNK ? DC_HASH_CHUNK : (size_t)(end - p);
			if (data < p) {
				off_t d = lseek(b->fd, p, SEEK_DATA);
				data = d >= 0 ? d : errno == ENXIO ? end : p;
			}
			if (data > p) {         /* a hole: zeros, not read */
				if ((int64_t)n > data - p)
					n = (size_t)(data - p);
				EVP_DigestUpdate(c, zeros, n);
				p += (int64_t)n;
				continue;
			}
			ssize_t r = pread(b->fd, buf, n, p);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				err = r < 0 ? -errno : -EIO;
				log_err("cache: cannot read back the cache file of node %" PRIu64
					": %s", f->id, strerror(-err));
				break;
			}
			EVP_DigestUpdate(c, buf, (size_t)r);
			p += r;
		}
		pthread_mutex_lock(&f->lock);
		body_unref(b);
		/* Bytes below @end rewritten, or the file cut, meanwhile: this
		 * slice is stale; go on from where the MD5 is now. */
		if (!err && gen == f->md5_gen && f->md5_pos == pos && b == f->body &&
		    end <= f->size) {
			EVP_MD_CTX_copy_ex(f->md5ctx, c);
			f->md5_pos = end;
		}
	}
	if (!err && f->discarded)
		err = -ENOENT;
	f->hashing = false;
	pthread_cond_broadcast(&f->cond);
	EVP_MD_CTX_free(c);
	free(buf);
	return err;
}

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
	account2(dc, 0, f->size);
	/* The bytes of the base not yet here: fetch them now, in the background. */
	if (keep > 0)
		fetch_missing(f, 0, keep < f->size ? keep : f->size);
	if (first)
		*first = true;
	return 0;
}

int dcache_create(struct dcache *dc, uint64_t id, struct dfile **out)
{
	struct dfile *f = dfile_new(dc, id), **slot;
	int err;

	*out = NULL;
	if (!f)
		return -ENOMEM;
	if (disk_below(dc, DC_DISK_LOW_PCT, 2))
		maybe_evict(dc);        /* a nearly full cache filesystem: make room first */
	f->local = true;
	f->uncommitted = true;
	f->mtime = time(NULL);
	EVP_DigestInit_ex(f->md5ctx, EVP_md5(), NULL);
	err = body_open(dc, id, true, &f->body);
	if (err) {
		dfile_free(f);
		return err;
	}
	pthread_mutex_lock(&dc->lock);
	slot = hash_slot(dc, id);
	if (*slot) {
		pthread_mutex_unlock(&dc->lock);
		dfile_free(f);
		return -EEXIST;
	}
	*slot = f;
	dc->nopen++;
	persist(f);
	pthread_mutex_unlock(&dc->lock);
	*out = f;
	return 0;
}

int dcache_write(struct dfile *f, int64_t off, size_t len, dcache_copy_fn copy, void *ctx,
		 size_t *written, bool *first)
{
	int64_t end, before, grow, old_size;
	size_t done = 0;
	int err;

	*written = 0;
	if (first)
		*first = false;
	if (off < 0 || __builtin_add_overflow(off, (int64_t)len, &end))
		return -EFBIG;
	if (end > f->size && !f->discarded && !disk_room(f->dc)) {
		/* nearly full: make room from clean content, or refuse the growth */
		maybe_evict(f->dc);
		if (!disk_room(f->dc))
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
		md5_reset(f);           /* rewriting hashed bytes */
	before = ranges_bytes(&f->present);
	err = copy(ctx, f->body->fd, off, len, &done);
	if (done > 0) {
		int e2 = ranges_add(&f->present, off, off + (int64_t)done);
		if (!err)
			err = e2;
		if (off + (int64_t)done > f->size)
			f->size = off + (int64_t)done;
		if (off <= f->md5_pos && f->md5_pos < off + (int64_t)done)
			hash_locked(f, off + (int64_t)done);
		f->mtime = time(NULL);
		f->uncommitted = true;
		f->dirty_state = true;
		pthread_cond_broadcast(&f->cond);
	} else if (off > old_size) {
		ranges_remove(&f->present, old_size, off);      /* nothing written: no hole */
	}
	int64_t added = ranges_bytes(&f->present) - before, size_delta = f->size - old_size;
	pthread_mutex_unlock(&f->lock);
	account2(f->dc, added, size_delta);
	*written = done;
	if (done > 0)
		return 0;
	if (err == -ENOSPC)
		maybe_evict(f->dc);     /* this write fails; the next finds room */
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
		md5_reset(f);
	f->size = size;
	f->mtime = time(NULL);
	f->uncommitted = true;
	f->dirty_state = true;
	pthread_cond_broadcast(&f->cond);
	int64_t added = ranges_bytes(&f->present) - before;
	pthread_mutex_unlock(&f->lock);
	account2(f->dc, added, size - old_size);
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
	err = ensure_present(f, 0, f->size, f->size);
	defer = f->size - f->md5_pos > DC_HASH_AT_COMMIT_MAX;
	if (!err && !defer)
		err = hash_local(f);
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
		for (unsigned i = 0; i < 16 && i < dlen; i++)
			snprintf(out->md5 + 2 * i, 3, "%02x", dig[i]);
	}
	if (fstat(f->body->fd, &st) == 0 && st.st_size != f->size &&
	    ftruncate(f->body->fd, f->size))
		err = -errno;
	out->size = f->size;
	out->mtime = f->mtime;
	f->uncommitted = false;         /* a write from now on sets it again */
	b = f->body;
	body_ref(b);
	pthread_mutex_unlock(&f->lock);

	if (!err && fsync(b->fd))
		err = -errno;

	pthread_mutex_lock(&f->lock);
	body_unref(b);
	if (err) {
		f->uncommitted = true;
		pthread_mutex_unlock(&f->lock);
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
	persist(f);
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
	f = hash_find(dc, id);
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
		persist(f);
		ok = true;
	}
	pthread_mutex_unlock(&f->lock);
	if (ok)
		account2(dc, 0, -size);
	dfile_unref(f);
	return ok;
}

void dcache_discard(struct dcache *dc, uint64_t id)
{
	struct meta_content c;
	struct dfile *f;

	pthread_mutex_lock(&dc->lock);
	bad_forget(dc, id);
	f = hash_find(dc, id);
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
		unlink_content(dc, id);
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
	account2(dc, -bytes, -local);
	/* The open descriptor keeps working; the name and the record go. */
	pthread_mutex_lock(&dc->lock);
	meta_content_delete(dc->cfg.meta, id);
	unlink_content(dc, id);
	pthread_mutex_unlock(&dc->lock);
	dfile_unref(f);
}

/* The open dfile of @id with a reference taken (dfile_unref() it), or NULL. */
static struct dfile *find_ref(struct dcache *dc, uint64_t id)
{
	struct dfile *f;

	pthread_mutex_lock(&dc->lock);
	f = hash_find(dc, id);
	if (f)
		f->refs++;
	pthread_mutex_unlock(&dc->lock);
	return f;
}

/* Size and mtime of open @id; with @local_only, only of local content. */
static bool peek(struct dcache *dc, uint64_t id, bool local_only, int64_t *size, time_t *mtime)
{
	struct dfile *f = find_ref(dc, id);
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
	dfile_unref(f);
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

/* ---- invalidation, gc, eviction ------------------------------------------ */

void dcache_invalidate(struct dcache *dc, uint64_t id, int64_t size, const char *md5)
{
	struct dfile *f = find_ref(dc, id);

	if (!f) {
		dcache_gc(dc);
		return;
	}
	pthread_mutex_lock(&f->lock);
	if (!f->local && (f->size != size || strcmp(f->md5, md5)))
		reset_locked(f, size, md5);
	pthread_mutex_unlock(&f->lock);
	dfile_unref(f);
}

/* Delete the cache file of @id unless it is open. dc->lock held. */
static void unlink_content(struct dcache *dc, uint64_t id)
{
	char name[32];

	snprintf(name, sizeof(name), "%" PRIu64, id);
	if (unlinkat(dc->dirfd, name, 0) && errno != ENOENT)
		log_warn("cache: cannot delete '%s/%s': %s", dc->dir, name, strerror(errno));
}

void dcache_gc(struct dcache *dc)
{
	uint64_t ids[256];
	size_t n;

	do {
		if (meta_gc_take(dc->cfg.meta, ids, 256, &n))
			return;
		for (size_t i = 0; i < n; i++) {
			struct meta_content c;
			pthread_mutex_lock(&dc->lock);
			/* Open files were reset by dcache_invalidate(); content
			 * recorded again meanwhile (a new open) is alive. */
			if (!hash_find(dc, ids[i]) &&
			    meta_content_get(dc->cfg.meta, ids[i], &c) == -ENOENT)
				unlink_content(dc, ids[i]);
			else if (!hash_find(dc, ids[i]))
				meta_content_release(&c);
			pthread_mutex_unlock(&dc->lock);
		}
	} while (n == 256);
	recount(dc);
}

/*
 * With no file open every state is persisted: take the exact byte counts
 * from the index (the running counts drift while files are open: bytes of
 * removed content are only known from the records the gc deletes).
 */
static void recount(struct dcache *dc)
{
	int64_t total, dirty;

	pthread_mutex_lock(&dc->lock);
	if (!dc->nopen && !meta_content_usage(dc->cfg.meta, &total, &dirty)) {
		dc->bytes = total;
		dc->local_bytes = dirty;
		dc->stats.cached_bytes = total;
		dc->stats.local_bytes = dirty;
	}
	pthread_mutex_unlock(&dc->lock);
}

/*
 * Is less than max(@pct % of the cache filesystem, @reserves times
 * DC_DISK_RESERVE_MIN) free for unprivileged use?
 */
static bool disk_below(struct dcache *dc, unsigned pct, unsigned reserves)
{
	struct statvfs sv;

	if (fstatvfs(dc->dirfd, &sv) || !sv.f_blocks)
		return false;
	uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	uint64_t want = (uint64_t)sv.f_blocks * sv.f_frsize / 100 * pct;
	if (want < (uint64_t)reserves * DC_DISK_RESERVE_MIN)
		want = (uint64_t)reserves * DC_DISK_RESERVE_MIN;
	return avail < want;
}

#define DISK_LOW(dc)  disk_below(dc, DC_DISK_LOW_PCT, 2)
#define DISK_OK(dc)   (!disk_below(dc, DC_DISK_OK_PCT, 3))

/* Is there room for content to grow (above the reserve)? */
static bool disk_room(struct dcache *dc)
{
	return !disk_below(dc, DC_DISK_RESERVE_PCT, 1);
}

/*
 * Evict least recently used clean content (already on the service) until
 * under 90 % of the bound, and, when the cache filesystem is nearly full
 * (< DC_DISK_LOW_PCT free), until DC_DISK_OK_PCT of it is free: so that
 * writes work again (changed content not yet uploaded is never evicted).
 */
static void maybe_evict(struct dcache *dc)
{
	uint64_t max = dc->cfg.max_size;
	uint64_t ids[64];
	size_t n;
	bool low = DISK_LOW(dc);

	pthread_mutex_lock(&dc->lock);
	bool say = low && !dc->disk_low_logged;
	dc->disk_low_logged = low;
	pthread_mutex_unlock(&dc->lock);
	if (say)
		log_warn("cache: the cache filesystem of '%s' is nearly full; evicting cached "
			 "content that is already on the service", dc->dir);
	if (!max && !low)
		return;
	recount(dc);
	pthread_mutex_lock(&dc->lock);
	if (dc->evicting)
		dc->evict_again = true;
	if (dc->evicting || (!low && dc->bytes <= (int64_t)max)) {
		pthread_mutex_unlock(&dc->lock);
		return;
	}
	dc->evicting = true;
again:
	dc->evict_again = false;
	pthread_mutex_unlock(&dc->lock);
	dcache_gc(dc);
	for (unsigned round = 0; round < 64; round++) {
		size_t evicted = 0;
		pthread_mutex_lock(&dc->lock);
		bool over = max && dc->bytes > (int64_t)(max / 10 * 9);
		pthread_mutex_unlock(&dc->lock);
		if (!over && low)
			over = low = !DISK_OK(dc);
		if (!over || meta_content_lru(dc->cfg.meta, ids, 64, &n) || !n)
			break;
		for (size_t i = 0; i < n; i++) {
			struct meta_content c;
			pthread_mutex_lock(&dc->lock);
			if (!hash_find(dc, ids[i]) && !meta_content_get(dc->cfg.meta, ids[i], &c)) {
				if (!c.dirty) {
					unlink_content(dc, ids[i]);
					meta_content_delete(dc->cfg.meta, ids[i]);
					dc->bytes -= c.bytes;
					dc->stats.cached_bytes = dc->bytes;
					evicted++;
				}
				meta_content_release(&c);
			}
			bool done = (!max || dc->bytes <= (int64_t)(max / 10 * 9)) &&
				    (!low || DISK_OK(dc));
			pthread_mutex_unlock(&dc->lock);
			if (done)
				break;
		}
		if (!evicted)
			break;          /* everything left is open */
	}
	pthread_mutex_lock(&dc->lock);
	/* Someone closed a file meanwhile (it may be evictable now). */
	if (dc->evict_again && ((max && dc->bytes > (int64_t)max) ||
				(low = DISK_LOW(dc))))
		goto again;
	dc->evicting = false;
	pthread_mutex_unlock(&dc->lock);
}

/* After an unclean shutdown: delete cache files the index does not know. */
static void sweep_orphans(struct dcache *dc)
{
	int fd = dup(dc->dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d))) {
		char *endp;
		struct meta_content c;
		unsigned long long id;

		if (de->d_name[0] == '.')
			continue;
		errno = 0;
		id = strtoull(de->d_name, &endp, 10);
		if (errno || *endp || !id)
			continue;
		if (meta_content_get(dc->cfg.meta, id, &c) == -ENOENT)
			unlinkat(dc->dirfd, de->d_name, 0);
		else
			meta_content_release(&c);
	}
	closedir(d);
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
		sweep_orphans(dc);
	dc->workers = calloc(dc->cfg.fetch_threads, sizeof(*dc->workers));
	if (!dc->workers)
		return -ENOMEM;
	for (unsigned i = 0; i < dc->cfg.fetch_threads; i++) {
		int rc = pthread_create(&dc->workers[i], NULL, worker_main, dc);
		if (rc) {
			log_err("cache: cannot start a download worker: %s", strerror(rc));
			return -rc;
		}
		dc->nworkers++;
	}
	maybe_evict(dc);
	return 0;
}

void dcache_stop(struct dcache *dc)
{
	pthread_mutex_lock(&dc->lock);
	dc->stop = true;
	pthread_cond_broadcast(&dc->qcond);
	pthread_mutex_unlock(&dc->lock);
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
			persist(f);
			pthread_mutex_unlock(&f->lock);
			dfile_free(f);
		}
	}
	maybe_evict(dc);                /* every file is closed now */
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
