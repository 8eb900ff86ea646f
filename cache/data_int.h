/*
 * cache/data_int.h — the content cache's private part, shared by its files:
 * cache/data.c (open, close, bodies, persistence, life cycle),
 * cache/data_fetch.c (ranged downloads, read-ahead, reads),
 * cache/data_hash.c (MD5 of clean and local content, verification),
 * cache/data_local.c (local content: writes, truncate, commit, clean),
 * cache/data_evict.c (invalidation, gc, eviction, disk space).
 * Nothing outside cache/data*.c includes it.
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
 * f->lock as sequential writes arrive (past DC_HASH_BG_MIN by a detached
 * hasher thread holding a reference, which dcache_stop() waits for) and
 * finished by dcache_commit().
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
 * without the lock (they never change within an epoch of clean content),
 * and the worker whose bytes continue the hashed prefix extends a copy of
 * the MD5 without it, holding the turn (f->hashing).
 */
#ifndef JOTTAFS_CACHE_DATA_INT_H
#define JOTTAFS_CACHE_DATA_INT_H

#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "cache/data.h"
#include "cache/ranges.h"

#define DC_WINDOW_MIN   (128 * 1024)            /* fetched beyond a read that misses */
#define DC_PROBE_MIN    (240 * 1024)            /* fetched at least by a run's first read:
						   the kernel's read-ahead ramp after a
						   16 KiB read, 16 + 32 + 64 + 128 KiB */
#define DC_WINDOW_MAX   (16 * 1024 * 1024)      /* widest read-ahead window */
#define DC_STREAM_RUN   (1024 * 1024)           /* a sequential run this long is a stream;
						   a shorter one may be a probe (with the
						   kernel's read-ahead on top) */
#define DC_STREAM_AHEAD_MAX (32 * 1024 * 1024)  /* unread bytes a stream may hold ahead */
#define DC_PART_MIN     (1024 * 1024)           /* parts of a window fetched side by side */
#define DC_PART_MAX     (8 * 1024 * 1024)       /* (-o read_streams above 1) */
#define DC_SEQ_SLACK    (1024 * 1024)           /* reads this near the expected offset are
						   still sequential (FUSE threads reorder the
						   kernel's read-ahead) */
#define DC_STREAM_IDLE_MS 15000                 /* a stream whose reader stopped for this
						   long ends (the service would cut it);
						   cfg.stream_idle_ms overrides it */
#define DC_STREAM_POLL_MS 250                   /* a paused stream looks at dc->stop */
#define DC_RETRIES      6                       /* resumes without progress */
#define DC_HASH_CHUNK   (1024 * 1024)
#define DC_SINK_BATCH   (256 * 1024)            /* a download enters the cache file in
						   writes of this size (cache/data_fetch.c) */
#define DC_PERSIST_STEP (8 * 1024 * 1024)       /* persist ranges at least this often */
#define DC_HASH_SLICE   (64LL << 20)    /* hashed per unlock in dc_hash_local() */
/* A commit with more than this left to hash leaves the MD5 to the upload
 * (about 0.4 s of MD5 at 700 MB/s): close() of a huge sparse file returns at
 * once, and the upload worker hashes it, holes without reading them. */
#define DC_HASH_AT_COMMIT_MAX (256LL << 20)
#define DC_BAD_MAX      1024                    /* failed revisions remembered */
/* Local content written sequentially: writeback of each this many bytes is
 * started as they arrive, and the writer waits for the previous step's (at
 * most about two steps dirty), so that the fsync of a commit (close) finds
 * little left to write instead of the whole file. */
#define DC_WRITEBACK_STEP (8LL << 20)
/* Local content written sequentially past DC_HASH_BG_MIN is hashed by a
 * thread of its own, started when DC_HASH_BG_BATCH bytes wait, while the
 * writer goes on (below: in the write, under f->lock). */
#define DC_HASH_BG_MIN   (16LL << 20)
#define DC_HASH_BG_BATCH (4LL << 20)
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
	/* A stream (see cache/data_fetch.c) is a job of one sequential reader
	 * that runs ahead of it by at most @ahead unread bytes, pausing its
	 * transfer in between; @owner (compared, never dereferenced) is the
	 * reader's struct dcache_seq, @reader where it will read next. A
	 * cancelled job stops at its next byte; readers waiting on it retry. */
	bool stream;
	bool part;                      /* a part of @owner's window (read_streams > 1) */
	atomic_bool cancel;             /* set under f->lock; the sink peeks without it */
	bool paused;                    /* its worker waits for the reader */
	const void *owner;
	_Atomic int64_t reader, ahead; /* set under f->lock; the sink peeks */
	struct dbody *body;             /* the body it writes into (ref held) */
	uint64_t epoch;                 /* f->epoch when created */
	int64_t start, cur, end;        /* protected by f->lock */
	int err;                        /* final result, valid when done */
	bool done;
	_Atomic int64_t wait_pos;       /* the least byte a reader waits for (f->cond
					   is broadcast once cur passes it); INT64_MAX:
					   none */
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
	bool bg_hash;                   /* a background hasher runs (holds a ref) */
	int64_t persisted_bytes;        /* bytes present when last persisted */
	bool dirty_state;               /* ranges changed since persisted */
	bool local;                     /* local content (see the top of the file) */
	bool uncommitted;               /* changed since the last dcache_commit() */
	uint64_t commit_seq;            /* the last commit's number (dc-wide), 0: none yet */
	bool discarded;                 /* unlinked: nothing is recorded any more */
	time_t mtime;                   /* local content: modification time */
	int64_t wb_pos;                 /* writeback started below this (DC_WRITEBACK_STEP) */
	int64_t wb_wait;                /* ... and from here to wb_pos not yet waited for */
	int wb_err;                     /* a writeback failed: the next commit fails */
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
	unsigned hashers;               /* background hashers running (qcond when 0) */
	struct dbad *bad;               /* revisions that failed verification */
	unsigned nbad;                  /* their number, at most DC_BAD_MAX */

	unsigned nstreams;              /* streams running (each holds a worker) */

	pthread_t *workers;
	unsigned nworkers;
};

/* cache/data.c */
void dc_body_ref(struct dbody *b);
void dc_body_unref(struct dbody *b);
/* Open (creating) the cache file of @id; @fresh truncates it first. */
int dc_body_open(struct dcache *dc, uint64_t id, bool fresh, struct dbody **out);
/* The open-file hash (dc->lock held). */
struct dfile **dc_hash_slot(struct dcache *dc, uint64_t id);
struct dfile *dc_hash_find(struct dcache *dc, uint64_t id);
/* Revisions that failed verification (dc->lock held). */
unsigned dc_bad_note(struct dcache *dc, uint64_t id, int64_t size, const char *md5);
void dc_bad_forget(struct dcache *dc, uint64_t id);
/* Record @f's state in the index. f->lock held. */
void dc_persist(struct dfile *f);
/* Adjust the global byte counts by @delta (present) and @local_delta. */
void dc_account2(struct dcache *dc, int64_t delta, int64_t local_delta);
void dc_account(struct dcache *dc, int64_t delta);
int dc_reset_locked(struct dfile *f, int64_t size, const char *md5);
struct dfile *dc_dfile_new(struct dcache *dc, uint64_t id);
void dc_dfile_free(struct dfile *f);
/* Drop a reference to @f; the last one persists its state and frees it. */
void dc_dfile_unref(struct dfile *f);

/* cache/data_fetch.c */
int dc_fetch_missing(struct dfile *f, int64_t pos, int64_t end);
int dc_ensure_present(struct dfile *f, int64_t off, int64_t end, int64_t want);
/* Drop a reference to @j; the last unlinks and frees it. f->lock held. */
void dc_job_unref(struct dfile *f, struct fjob *j);
/* Cancel the stream of reader @owner (NULL: every stream) of @f. f->lock held. */
void dc_stream_cancel(struct dfile *f, const void *owner);
void *dc_worker_main(void *arg);

/* cache/data_hash.c */
void dc_hash_advance(struct dfile *f);
int dc_verify_locked(struct dfile *f, bool *mismatch);
void dc_md5_reset(struct dfile *f);
int dc_hash_locked(struct dfile *f, int64_t upto);
int dc_hash_local(struct dfile *f);
/* Start a background hasher of local content @f (f->lock held). 0, or
 * -errno (hash inline instead). */
int dc_hash_bg_start(struct dfile *f);
/* Wait until no background hasher runs (dcache_stop). */
void dc_hash_bg_wait(struct dcache *dc);

/* cache/data_local.c */
/* The open dfile of @id with a reference taken (dc_dfile_unref() it), or NULL. */
struct dfile *dc_find_ref(struct dcache *dc, uint64_t id);

/* cache/data_evict.c */
/* Delete the cache file of @id unless it is open. dc->lock held. */
void dc_unlink_content(struct dcache *dc, uint64_t id);
void dc_recount(struct dcache *dc);
bool dc_disk_below(struct dcache *dc, unsigned pct, unsigned reserves);
bool dc_disk_room(struct dcache *dc);
void dc_maybe_evict(struct dcache *dc);
void dc_sweep_orphans(struct dcache *dc);

#endif
