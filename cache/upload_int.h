/*
 * cache/upload_int.h — what the files of the upload module share (private:
 * only cache/upload.c, cache/upload_worker.c, cache/journal.c and
 * cache/lostfound.c include it; everybody else uses cache/upload.h).
 *
 * The module in four files:
 *   cache/upload.c        the queue API (upload.h): open/start/close, enqueue,
 *                         wait, cancel, rename, state, drain; the in-memory
 *                         index of journal records and the waiters.
 *   cache/upload_worker.c the workers: pick a due record, check its content,
 *                         choose the target (conflicts), transfer, and record
 *                         the outcome (done, retry, defer, give up).
 *   cache/journal.c       the durable journal (SQLite): every SQL statement,
 *                         and the records it could not write (disk full).
 *   cache/lostfound.c     where content goes instead of its path: conflict
 *                         names and lost+found.
 *
 * Threads and locks
 * -----------------
 * Callers are any threads (the FUSE workers). upload_start() starts
 * q->njobs worker threads; each runs one upload at a time, described by its
 * struct upload_job. Two lanes: the first q->transfers jobs take any
 * record, the q->small after them (the small-file lane) only records of at
 * most q->small_max bytes. A small upload costs two round trips and
 * next to no bandwidth, so many run at once; big ones stay limited to
 * cfg->transfers. (The HTTP client's throttle gate, net/http_retry.c, slows
 * all of them down together when the service answers 429.)
 *
 * Locks, always taken in this order:
 *   1. q->db_lock — the journal (every journal_*() call: its statements
 *      and the records it holds in memory) and the jobs' "landed" records
 *      (they amend what is journalled). Held for one statement (local disk
 *      I/O, including the fsync of the WAL on commit), never across a
 *      network call, a content hash or a callback.
 *   2. the journal's struct db lock (cache/db.h), inside journal_*() only;
 *      journal_pick() calls its verdict function under it.
 *   3. q->lock — the in-memory state: the index of journal records
 *      (id -> gen, size, given-up), the counters, the jobs' fields, the
 *      waiters, the pause and q->epoch. Held only for memory updates; no
 *      journal_*() call is made under it.
 * Memory mirrors the journal: a record is changed on disk under db_lock and
 * the matching memory change is made under q->lock BEFORE db_lock is
 * released, so a thread holding only q->lock (upload_wait, upload_pending,
 * upload_stats) sees what is, or was, on disk.
 *
 * Condition variables (lib/clock.h: monotonic timed waits), all used with
 * q->lock: work_cv wakes the idle worker that watches (new or re-timed
 * work, un-pause, stop); idle_cv[lane] the other idle workers, one at a
 * time (below); state_cv wakes the threads that wait for outcomes
 * (upload_wait, upload_drain) and for the end of a job (upload_cancel,
 * upload_rename*, upload_close).
 *
 * Idle workers (leader/followers): one idle worker, the watcher, waits for
 * work_cv or for the next record to fall due; the others (followers) sleep
 * on their lane's idle_cv until handed a wake token. A worker that picks a
 * record hands a token on (worker_handoff), so as long as records are due
 * the idle workers come one after another, and when nothing is due only the
 * watcher looks. Without this every enqueue (and every due time) woke all
 * q->njobs workers to query the journal under db_lock at once, and the
 * FUSE threads' enqueues waited behind them. One exception: an idle
 * transfers-lane follower also wakes when the record it saw falls due,
 * since a small-lane watcher passes over big records.
 *
 * Aborting a transfer: job->cancel is an atomic flag the transfer polls;
 * why it was raised (cancelled, renamed, superseded, stopping) is recorded
 * under q->lock. Callbacks run on the worker thread with no lock held,
 * after the job has released its slot.
 *
 * Clocks: in-memory deadlines (pause, journal trouble, holds, drain) are
 * CLOCK_MONOTONIC milliseconds (clock_mono_ms). The journal's next_try is
 * stored, so it outlives the process and the boot: it is wall-clock
 * milliseconds (journal_now_ms), as are the content files' mtimes it is
 * compared with.
 */
#ifndef JOTTAFS_CACHE_UPLOAD_INT_H
#define JOTTAFS_CACHE_UPLOAD_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cache/upload.h"

#define OWN_RING 2048              /* contents of ours remembered (struct upload_queue) */
#define UPQ_JOBS_MAX 128           /* transfers + small lane, at most */

/* One journal record as a worker uses it; strings are owned. */
struct urec {
	uint64_t id, gen;
	char *path;
	char *content_file;
	char *target;             /* conflict name, NULL: path */
	int64_t size;
	char md5[33];
	int64_t created, modified;
	char base_md5[33];
	int64_t base_size;
	bool overwrite;
	unsigned attempts, hard_failures;
	int64_t last_resume;
	uint64_t ino;
	int64_t mtime_ns;
};

/* In-memory index entry (a tsearch tree keyed by id), mirrors one row. */
struct ment {
	uint64_t id;
	uint64_t gen;
	int64_t size;
	bool given_up;
	bool touched;             /* a transfer may have left something at the record's
				     path: a job ran for it there, or it was loaded at open */
};

/* A thread blocked in upload_wait(). */
struct waiter {
	struct waiter *next;
	uint64_t id, gen;
	int result;
	bool done;
};

struct upload_job {
	struct upload_queue *q;
	pthread_t thread;
	bool small_lane;          /* takes only records of at most q->small_max bytes */
	bool skipped_big;         /* protected by q->lock: its last pick passed a big one */
	atomic_bool cancel;       /* polled by the transfer */
	_Atomic int64_t sent;     /* bytes the running data POST sent (progress) */
	_Atomic int64_t resume;   /* its resume_pos, -1 while none runs */
	/* protected by q->lock */
	bool active;
	uint64_t seq;             /* bumped at every start: identifies one run */
	uint64_t id, gen;
	char *path;               /* record path when the run started (owned) */
	uint64_t ino;             /* content identity when the run started */
	int64_t size, mtime_ns;
	bool cancelled;           /* record dropped (unlink) */
	bool renamed;             /* record moved to another path */
	bool superseded;          /* a newer generation was enqueued */
	/* protected by q->db_lock: a generation just confirmed at its path,
	 * from the journal update until its done callback returned (see
	 * landed_rebase() in upload.c) */
	struct {
		bool set;
		uint64_t id, gen;
		char *path;               /* owned */
		char from_md5[33];        /* its base: what the caller still believes */
		int64_t from_size;
		char to_md5[33];          /* its content: what the service now holds */
		int64_t to_size;
	} landed;
};

struct journal;

struct upload_queue {
	/* immutable after upload_open() */
	char *cache_dir;
	char *lost_dir;
	struct upload_ops ops;
	unsigned transfers, max_attempts;
	unsigned small;                     /* small-file lane workers */
	unsigned njobs;                     /* transfers + small: jobs[] */
	int64_t small_max;
	int64_t write_back_ms;
	unsigned backoff_min_ms, backoff_max_ms;
	upload_done_cb done;
	void *done_ctx;
	int (*before)(void *ctx, const char *path);
	void *before_ctx;

	pthread_mutex_t db_lock;
	struct journal *jn;                 /* protected by db_lock */

	pthread_mutex_t lock;
	pthread_cond_t work_cv;
	pthread_cond_t idle_cv[2];          /* [small_lane]: the followers */
	pthread_cond_t state_cv;
	/* protected by lock */
	void *index;                        /* struct ment tree */
	unsigned files;                     /* pending records */
	int64_t bytes;                      /* their sizes */
	unsigned given_up;
	struct waiter *waiters;
	struct upload_job *jobs;            /* [njobs] */
	unsigned threads;                   /* started workers */
	unsigned callers;                   /* threads inside upload_wait/drain */
	uint64_t epoch;                     /* bumped when work may have appeared */
	bool watching;                      /* an idle worker waits on work_cv */
	unsigned followers[2], tokens[2];   /* idle on idle_cv[lane], wake-ups owed */
	bool started, stopping;
	int64_t paused_until;               /* monotonic ms; 0: not paused */
	unsigned pause_level;
	/* The contents this mount last sent (or began to send) to their
	 * node's path, newest overwriting oldest: what the service holds
	 * there may be one of them whatever order uploads, their callbacks
	 * and cancels (a superseded upload may complete all the same) come
	 * in, and that is no change by another client (choose_target). */
	struct {
		uint64_t id;
		int64_t size;
		char md5[33];
	} own[OWN_RING];
	unsigned own_next;
};

/* A server path as the queue takes it: relative, no trailing '/'. */
static inline bool upq_path_valid(const char *p)
{
	return p && p[0] && p[0] != '/' && p[strlen(p) - 1] != '/';
}

/* ---- cache/upload.c: the in-memory index and waiters (q->lock held) ---- */

struct ment *upq_ment_get(struct upload_queue *q, uint64_t id);
/* Insert or update the entry of @id. -ENOMEM when it cannot be inserted. */
int upq_ment_set(struct upload_queue *q, uint64_t id, uint64_t gen, int64_t size, bool given_up);
void upq_ment_del(struct upload_queue *q, uint64_t id);
/* Wake the upload_wait() callers of @id at a generation <= @gen (all when @any_gen). */
void upq_waiters_resolve(struct upload_queue *q, uint64_t id, uint64_t gen, bool any_gen,
			 int result);
/* Work may have appeared: wake the idle workers. */
void upq_work_signal(struct upload_queue *q);
/* The active job of @id, or NULL. */
struct upload_job *upq_job_of(struct upload_queue *q, uint64_t id);

/* ---- cache/upload_worker.c ---- */

/* The thread of one job (@arg: its struct upload_job). */
void *upload_worker_main(void *arg);

/* ---- cache/lostfound.c ---- */

/*
 * Keep the content of @fd under @lost_dir/<path>: the server path's
 * directories become directories there, a name already taken gets " (N)"
 * before its extension. A hard link of the open file (exactly the bytes
 * that failed), a copy when linking is impossible. *out (malloc'd) is
 * where it went. 0 or -errno.
 */
int lostfound_keep(const char *lost_dir, const char *path, int fd, char **out);

/* ---- cache/journal.c (every call with q->db_lock held) ---- */

/* Wall-clock milliseconds: the clock of the journal's stored next_try. */
int64_t journal_now_ms(void);
/* Open (creating, or checking the version of) <cache_dir>/journal.db. */
int journal_open(const char *cache_dir, struct journal **out);
/* Write back what it could not write before (a last try), then close. */
void journal_close(struct journal *j);
/* Call @fn for every record (at open, single-threaded); stops at its first error. */
int journal_load(struct journal *j,
		 int (*fn)(void *ctx, uint64_t id, uint64_t gen, int64_t size, bool given_up),
		 void *ctx);
/* Journal generation it->gen of it->id (replacing an older one), with base
 * (@base_md5, @base_size), due at @next_try, content identity (@ino,
 * @mtime_ns). 1 recorded, 0 a newer generation is journalled, or -errno. */
int journal_upsert(struct journal *j, const struct upload_item *it, const char *base_md5,
		   int64_t base_size, int64_t next_try, uint64_t ino, int64_t mtime_ns);
/*
 * Group commit: journal_upsert() returns before its record is durable. The
 * caller takes journal_ticket() (db_lock held), releases db_lock, and
 * journal_sync(ticket) returns once the record is durable (0, or -EIO):
 * the closes that wait at the same time share one fdatasync. Both may be
 * called without db_lock (they use the journal's own sync lock, a leaf).
 */
uint64_t journal_ticket(struct journal *j);
int journal_sync(struct journal *j, uint64_t ticket);
/* Make the un-attempted record of @id (all of them when @all) due now.
 * The number of changed records or -errno (so are the ones below). */
int journal_bump(struct journal *j, uint64_t id, bool all);
/* Make every pending record due now, its backoff reset. */
int journal_retry_now(struct journal *j);
/* Drop the record of @id. */
int journal_cancel(struct journal *j, uint64_t id);
/* Move the record of @id to @new_path (a given-up one is pending again). */
int journal_rename(struct journal *j, uint64_t id, const char *new_path);
/* Move every record under @old_prefix (ends in '/') under @new_prefix. */
int journal_rename_dir(struct journal *j, const char *old_prefix, const char *new_prefix);
/* The ids of the records under @prefix (ends in '/') in *@ids (malloc'd,
 * *@n of them). 0 or -errno (*@ids NULL). */
int journal_under(struct journal *j, const char *prefix, uint64_t **ids, size_t *n);

/* What a journal_pick() callback says of a due-ordered record. */
enum pick_verdict {
	PICK_SKIP,                /* busy: look at the next one */
	PICK_STOP,                /* nothing is to be picked now (*wake_in set) */
	PICK_TAKE,                /* load it, if due */
};
/*
 * The first pending record, in next_try order, among @limit (plus the
 * held ones) that is not held (journal_defer/_fail could not be written,
 * or landed uncleared) and that @fn lets through. Returns 1 with @r filled
 * (urec_release() it), 0 when none is due (*wake_in: ms until one will be,
 * -1: not known), JOURNAL_BAD when the first due record is malformed
 * (r->id set; see journal_set_aside) or -errno.
 */
#define JOURNAL_BAD 2
int journal_pick(struct journal *j, unsigned limit,
		 enum pick_verdict (*fn)(void *ctx, uint64_t id, int64_t *wake_in), void *ctx,
		 struct urec *r, int64_t *wake_in);
void urec_release(struct urec *r);
/* Mark the malformed record of @id given up. */
int journal_set_aside(struct journal *j, uint64_t id);
/* Record the content facts of @r (size, md5, identity). */
int journal_content(struct journal *j, const struct urec *r);
/* Record conflict name @name as the target of @r (retries go there too). */
int journal_target(struct journal *j, const struct urec *r, const char *name);
/*
 * @r landed (at its path when @at_path: newer generations based on what
 * @r was based on are rebased onto @r's content). > 0 cleared, or held in
 * memory and never picked again when the journal cannot be written (cleared
 * when it can); 0 nothing to clear (superseded, cancelled); -errno.
 */
int journal_landed(struct journal *j, const struct urec *r, bool at_path);
/* Mark @r given up (one more attempt, @why, content at @lost). */
int journal_give_up(struct journal *j, const struct urec *r, const char *why, const char *lost);
/* Record a failed attempt of @r: @hard failures counted, due again in
 * @delay_ms, @last_resume. When that cannot be written, @r is held in
 * memory for @delay_ms instead (picking it at once would spin). */
int journal_fail(struct journal *j, const struct urec *r, unsigned hard, int64_t delay_ms,
		 const char *why, int64_t last_resume);
/* @r is due again in @delay_ms (held in memory if that cannot be written). */
int journal_defer(struct journal *j, const struct urec *r, int64_t delay_ms);

#endif
