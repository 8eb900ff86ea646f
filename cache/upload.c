/*
 * cache/upload.c — the durable upload journal and its worker pool (see
 * upload.h for the contract).
 *
 * Threads and locks
 * -----------------
 * Callers are any threads (the FUSE workers). upload_start() starts
 * cfg->transfers worker threads; each runs one upload at a time, described
 * by its struct upload_job.
 *
 * Two mutexes, always taken in this order:
 *   1. q->db_lock — the SQLite connection and all its prepared statements,
 *      and the jobs' "landed" records (they amend what is journalled).
 *      Held for one statement (local disk I/O, including the fsync of the
 *      WAL on commit), never across a network call, a content hash or a
 *      callback.
 *   2. q->lock — the in-memory state: the index of journal records
 *      (id -> gen, size, given-up), the counters, the jobs' fields, the
 *      waiters, the pause and q->epoch. Held only for memory updates.
 * Memory mirrors the journal: a record is changed on disk under db_lock and
 * the matching memory change is made under q->lock BEFORE db_lock is
 * released, so a thread holding only q->lock (upload_wait, upload_pending,
 * upload_stats) sees what is, or was, on disk.
 *
 * Condition variables, both used with q->lock: work_cv wakes idle workers
 * (new or re-timed work, un-pause, stop); state_cv wakes the threads that
 * wait for outcomes (upload_wait, upload_drain) and for the end of a job
 * (upload_cancel, upload_rename*, upload_close).
 *
 * Aborting a transfer: job->cancel is an atomic flag the transfer polls;
 * why it was raised (cancelled, renamed, superseded, stopping) is recorded
 * under q->lock. Callbacks run on the worker thread with no lock held,
 * after the job has released its slot.
 *
 * Choices
 * -------
 * - One record per node id; a newer generation replaces the row (upsert),
 *   so the journal never holds stale content for a node.
 * - Before each attempt the content file is opened and its identity (inode,
 *   size, mtime) compared with the one recorded at enqueue: a cheap check.
 *   When it differs: written to in the last SETTLE_MS -> try again later
 *   (no hash); quiet -> re-hashed (disk speed, rare): same MD5 -> go on;
 *   different -> the current content is adopted and uploaded (after a crash
 *   nobody re-enqueues it), with a warning.
 * - Errors: transport trouble (timeouts, refused connections, 429, -EACCES
 *   while auth recovers) is retried for ever with capped, jittered backoff.
 *   -EIO is ambiguous (net/http maps 5xx and connection resets to it, as
 *   well as an MD5 mismatch): it counts toward max_attempts only when the
 *   service answered the allocate of that attempt and the data POST then
 *   failed without progress (resume_pos not beyond the previous attempt's).
 *   So CORRUPT (the service drops the bytes: resume 0 again) is given up,
 *   while an outage, a 5xx storm or a link that keeps cutting a big upload
 *   (each cut resumes further) never sends data to lost+found. Refusals
 *   that cannot change (-EINVAL, -ENAMETOOLONG, -ENOSPC, ...) are given up
 *   after PERMANENT_ATTEMPTS. A dead login (-EKEYREJECTED) pauses every
 *   upload instead.
 * - A data POST whose answer was lost (-EIO or -ETIMEDOUT: the link was cut
 *   after the service stored it all) is not re-sent blindly: the path is
 *   stat'ed first, and a COMPLETED current revision with our size and MD5
 *   counts as done. Re-allocating would store the bytes again as a new
 *   revision (the service hands out a fresh upload for it).
 * - rename/unlink of a file being uploaded aborts the transfer and waits
 *   for it to stop, so that the caller's server move/delete that follows
 *   cannot be overtaken by an upload landing at the old path. An upload
 *   restarted at the new path begins at 0 (resume state is per path).
 */
#include "cache/upload.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "lib/log.h"
#include "lib/privdir.h"
#include "net/jfs.h"
#include "net/names.h"

#define DEF_TRANSFERS      4u
#define DEF_MAX_ATTEMPTS   10u
#define PERMANENT_ATTEMPTS 3u      /* refusals that cannot change are given up sooner */
#define DEF_WRITE_BACK_MS  2000
#define DEF_BACKOFF_MIN_MS 1000u
#define DEF_BACKOFF_MAX_MS 300000u
#define PAUSE_FIRST_MS     30000   /* first probe after a dead login */
#define SETTLE_MS          5000    /* content changed underneath: quiet this long before adopted */
#define DRAIN_LOG_MS       5000
#define OFFLINE_RETRY_MAX_MS 30000 /* retry cap of an upload refused as offline */
#define DB_TROUBLE_MIN_MS  1000    /* pause after a journal write failed (disk full) ... */
#define DB_TROUBLE_MAX_MS  16000   /* ... doubling up to this */
#define BUSY_TIMEOUT_MS    10000
#define OWN_RING           2048    /* contents of ours remembered (see struct upload_queue) */
#define JOURNAL_VERSION    1

/* Internal results of the steps of a job, besides 0 and -errno. */
#define JOB_SKIP  1   /* superseded by a newer generation: nothing to do */
#define JOB_DEFER 2   /* content being changed: try again later, not a failure */
#define JOB_NOCONTENT 3 /* the content file is missing */

enum stmt_id {
	ST_UPSERT, ST_PICK, ST_DONE, ST_BASE, ST_FAIL, ST_GIVEUP, ST_TARGET,
	ST_CONTENT, ST_DEFER, ST_CANCEL, ST_RENAME, ST_RENAME_DIR, ST_BUMP_ONE,
	ST_BUMP_ALL, ST_RETRY_NOW, ST_LOAD, ST_BAD, ST_REVIVED, ST_BEGIN, ST_COMMIT, ST_ROLLBACK, ST__COUNT
};

static const char *const stmt_sql[ST__COUNT] = {
	[ST_UPSERT] =
		"INSERT INTO upload (id, gen, path, content_file, size, md5, created, modified,"
		" base_md5, base_size, next_try, file_ino, file_mtime_ns, state)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'pending')"
		" ON CONFLICT(id) DO UPDATE SET"
		/* a conflict found for the previous generation stays: same path, same base */
		"  target = CASE WHEN upload.path = excluded.path AND upload.base_md5 = excluded.base_md5"
		"   AND upload.base_size = excluded.base_size THEN upload.target ELSE NULL END,"
		/* coalesce quick rewrites without postponing an upload for ever */
		"  next_try = CASE WHEN upload.state = 'pending' AND upload.attempts = 0"
		"   THEN min(upload.next_try, excluded.next_try) ELSE excluded.next_try END,"
		"  gen = excluded.gen, path = excluded.path, content_file = excluded.content_file,"
		"  size = excluded.size, md5 = excluded.md5, created = excluded.created,"
		"  modified = excluded.modified, base_md5 = excluded.base_md5,"
		"  base_size = excluded.base_size, overwrite = 0, attempts = 0, hard_failures = 0,"
		"  last_resume = -1,"
		"  last_error = NULL, state = 'pending', file_ino = excluded.file_ino,"
		"  file_mtime_ns = excluded.file_mtime_ns, lost_path = NULL"
		" WHERE excluded.gen >= upload.gen",
	[ST_PICK] =
		"SELECT id, gen, path, content_file, size, md5, created, modified, base_md5,"
		" base_size, overwrite, attempts, hard_failures, next_try, target, file_ino,"
		" file_mtime_ns, last_resume FROM upload WHERE state = 'pending'"
		" ORDER BY next_try, id LIMIT ?1",
	[ST_DONE] = "DELETE FROM upload WHERE id = ?1 AND gen = ?2",
	[ST_BASE] =
		"UPDATE upload SET base_md5 = ?3, base_size = ?4, overwrite = 0"
		" WHERE id = ?1 AND gen > ?2 AND path = ?5 AND base_md5 = ?6 AND base_size = ?7"
		" AND overwrite = ?8",
	[ST_FAIL] =
		"UPDATE upload SET attempts = ?3, hard_failures = ?4, next_try = ?5, last_error = ?6,"
		" last_resume = ?7 WHERE id = ?1 AND gen = ?2 AND state = 'pending'",
	[ST_GIVEUP] =
		"UPDATE upload SET state = 'given-up', attempts = ?3, hard_failures = ?4,"
		" last_error = ?5, lost_path = ?6 WHERE id = ?1 AND gen = ?2 AND state = 'pending'",
	[ST_TARGET] = "UPDATE upload SET target = ?3 WHERE id = ?1 AND gen = ?2 AND path = ?4",
	[ST_CONTENT] =
		"UPDATE upload SET size = ?3, md5 = ?4, file_ino = ?5, file_mtime_ns = ?6"
		" WHERE id = ?1 AND gen = ?2",
	[ST_DEFER] = "UPDATE upload SET next_try = ?3 WHERE id = ?1 AND gen = ?2",
	[ST_CANCEL] = "DELETE FROM upload WHERE id = ?1",
	[ST_RENAME] =
		/* a new file renamed over an existing one replaces it (POSIX rename) */
		"UPDATE upload SET path = ?2, target = NULL, overwrite = (overwrite OR base_size < 0),"
		/* a file given up (a refused name, most likely) is tried again */
		" state = 'pending', attempts = 0, hard_failures = 0, last_resume = -1,"
		" next_try = CASE WHEN state = 'pending' THEN next_try ELSE ?3 END, lost_path = NULL"
		" WHERE id = ?1 AND path <> ?2",
	[ST_RENAME_DIR] =
		"UPDATE upload SET path = ?2 || substr(path, length(?1) + 1), target = NULL,"
		" state = 'pending', attempts = 0, hard_failures = 0, last_resume = -1,"
		" next_try = CASE WHEN state = 'pending' THEN next_try ELSE ?3 END, lost_path = NULL"
		" WHERE substr(path, 1, length(?1)) = ?1",
	[ST_BUMP_ONE] =
		"UPDATE upload SET next_try = ?2 WHERE id = ?1 AND state = 'pending'"
		" AND attempts = 0 AND next_try > ?2",
	[ST_BUMP_ALL] =
		"UPDATE upload SET next_try = ?1 WHERE state = 'pending' AND attempts = 0"
		" AND next_try > ?1",
	[ST_RETRY_NOW] =
		"UPDATE upload SET next_try = ?1, attempts = 0 WHERE state = 'pending'"
		" AND next_try > ?1",
	[ST_LOAD] = "SELECT id, gen, size, state FROM upload",
	[ST_BAD] =
		"UPDATE upload SET state = 'given-up', last_error = 'malformed journal record'"
		" WHERE id = ?1",
	[ST_REVIVED] =
		"SELECT id, gen, size FROM upload WHERE substr(path, 1, length(?1)) = ?1",
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
};

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS upload ("
	" id            INTEGER PRIMARY KEY," /* node id (uint64 bit pattern) */
	" gen           INTEGER NOT NULL,"    /* content generation */
	" path          TEXT NOT NULL,"       /* server path under the mountpoint */
	" content_file  TEXT NOT NULL,"
	" size          INTEGER NOT NULL,"
	" md5           TEXT NOT NULL,"
	" created       INTEGER NOT NULL,"    /* unix seconds */
	" modified      INTEGER NOT NULL,"
	" base_md5      TEXT NOT NULL,"       /* '' for a new file */
	" base_size     INTEGER NOT NULL,"    /* -1 for a new file */
	" overwrite     INTEGER NOT NULL DEFAULT 0," /* 1: replace what is at path (no conflict check) */
	" attempts      INTEGER NOT NULL DEFAULT 0," /* failed attempts (backoff) */
	" hard_failures INTEGER NOT NULL DEFAULT 0," /* of those, failures that count toward giving up */
	" last_resume   INTEGER NOT NULL DEFAULT -1," /* resume_pos of the last data POST, -1: none */
	" next_try      INTEGER NOT NULL DEFAULT 0," /* unix milliseconds */
	" last_error    TEXT,"
	" state         TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'given-up')),"
	" target        TEXT,"                /* conflict name chosen for this upload; NULL: path */
	" file_ino      INTEGER NOT NULL,"    /* content file identity at enqueue */
	" file_mtime_ns INTEGER NOT NULL,"
	" lost_path     TEXT"                 /* where the content went when given up */
	");"
	"CREATE INDEX IF NOT EXISTS upload_due ON upload (state, next_try);";

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

/*
 * A record the journal could not be updated for (disk full), held in
 * memory: a landed upload whose record is to be cleared (journal_clear
 * needs the rest), or a failed one not to be picked before @not_before.
 */
struct uncleared {
	struct uncleared *next;
	uint64_t id, gen;
	bool landed;
	int64_t not_before;       /* !landed: retry time */
	bool at_path;             /* landed at its path: rebase newer generations */
	char *path;
	char md5[33], base_md5[33];
	int64_t size, base_size;
	bool overwrite;
};

/* In-memory index entry (a tsearch tree keyed by id), mirrors one row. */
struct ment {
	uint64_t id;
	uint64_t gen;
	int64_t size;
	bool given_up;
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
	uint64_t rnd;             /* jitter state, worker thread only */
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
	 * landed_rebase()) */
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

struct upload_queue {
	/* immutable after upload_open() */
	char *cache_dir;
	char *lost_dir;
	struct upload_ops ops;
	unsigned transfers, max_attempts;
	int64_t write_back_ms;
	unsigned backoff_min_ms, backoff_max_ms;
	upload_done_cb done;
	void *done_ctx;

	pthread_mutex_t db_lock;
	sqlite3 *db;                        /* protected by db_lock */
	sqlite3_stmt *st[ST__COUNT];        /* protected by db_lock */
	/* The journal cannot be written (disk full): said once per episode;
	 * held records are written back from db_trouble_until. db_lock. */
	int64_t db_trouble_until;
	unsigned db_trouble_level;
	/* Uploads that landed but whose record could not be cleared: never
	 * picked again, cleared when the journal can be written. db_lock. */
	struct uncleared *uncleared;
	unsigned n_uncleared;

	pthread_mutex_t lock;
	pthread_cond_t work_cv;
	pthread_cond_t state_cv;
	/* protected by lock */
	void *index;                        /* struct ment tree */
	unsigned files;                     /* pending records */
	int64_t bytes;                      /* their sizes */
	unsigned given_up;
	struct waiter *waiters;
	struct upload_job *jobs;            /* [transfers] */
	unsigned threads;                   /* started workers */
	unsigned callers;                   /* threads inside upload_wait/drain */
	uint64_t epoch;                     /* bumped when work may have appeared */
	bool started, stopping;
	int64_t paused_until;               /* ms; 0: not paused */
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

/* ---- time, small helpers ---- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Absolute CLOCK_MONOTONIC deadline @ms milliseconds from now (for the condvars). */
static struct timespec deadline_in(int64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (ms < 0)
		ms = 0;
	if (ms > (int64_t)86400 * 1000)
		ms = (int64_t)86400 * 1000;
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

static bool md5_valid(const char *s)
{
	size_t i;
	for (i = 0; i < 32; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[32] == '\0';
}

/* "Invalid argument (EINVAL)" for -EINVAL; thread-safe. */
static void err_text(int err, char *buf, size_t len)
{
	const char *desc = strerrordesc_np(-err);
	const char *name = strerrorname_np(-err);
	if (desc && name)
		snprintf(buf, len, "%s (%s)", desc, name);
	else
		snprintf(buf, len, "error %d", -err);
}

static uint64_t rnd_next(uint64_t *s)
{
	/* xorshift64*: jitter only, no quality needed */
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static void urec_release(struct urec *r)
{
	free(r->path);
	free(r->content_file);
	free(r->target);
	memset(r, 0, sizeof(*r));
}

/* ---- pure helpers (public) ---- */

int64_t upload_backoff_ms(unsigned attempt, unsigned min_ms, unsigned max_ms, uint32_t rnd)
{
	int64_t d = min_ms ? min_ms : 1;
	int64_t cap = max_ms > min_ms ? max_ms : d;
	unsigned i;

	for (i = 1; i < attempt && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	/* equal jitter: half fixed, half random */
	return d - d / 2 + (int64_t)(rnd % (uint64_t)(d / 2 + 1));
}

int upload_conflict_name(const char *path, time_t t, char *buf, size_t len)
{
	const char *slash, *name;
	char tag[64], *leaf = NULL;
	size_t dirlen, leaflen;
	struct tm tm;
	int n, err;

	if (!path || !buf)
		return -EINVAL;
	slash = strrchr(path, '/');
	name = slash ? slash + 1 : path;
	dirlen = (size_t)(name - path);
	if (!*name || !gmtime_r(&t, &tm))
		return -EINVAL;
	n = snprintf(tag, sizeof(tag), " (conflict %04d-%02d-%02d %02d%02d%02d)",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		     tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (n < 0 || (size_t)n >= sizeof(tag))
		return -EINVAL;
	/* within the service's name limit: NAME shortened when needed */
	err = names_insert_tag(name, tag, &leaf);
	if (err)
		return err;
	leaflen = strlen(leaf);
	if (dirlen + leaflen + 1 > len) {
		free(leaf);
		return -ENAMETOOLONG;
	}
	memcpy(buf, path, dirlen);
	memcpy(buf + dirlen, leaf, leaflen + 1);
	free(leaf);
	return 0;
}

/* ---- the default network calls: net/jfs ---- */

static int op_stat(void *ctx, const char *path, struct jfs_entry *out)
{
	return jfs_stat(ctx, path, out);
}

static void op_entry_release(void *ctx, struct jfs_entry *e)
{
	jfs_entry_release(e);
}

static int op_allocate(void *ctx, const struct jfs_alloc_req *req, struct jfs_alloc *out)
{
	return jfs_allocate(ctx, req, out);
}

static void op_alloc_release(void *ctx, struct jfs_alloc *a)
{
	jfs_alloc_release(a);
}

static int op_upload(void *ctx, const char *url, int fd, int64_t resume_pos, int64_t size,
		     const char *md5, const atomic_bool *cancel)
{
	return jfs_upload_cancellable(ctx, url, fd, resume_pos, size, md5, cancel, NULL);
}

static int op_upload_progress(void *ctx, const char *url, int fd, int64_t resume_pos,
			      int64_t size, const char *md5, const atomic_bool *cancel,
			      _Atomic int64_t *sent)
{
	return jfs_upload_progress(ctx, url, fd, resume_pos, size, md5, cancel, sent, NULL);
}

/* ---- the journal (callers hold db_lock) ---- */

static int db_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:     return -ENOSPC;
	case SQLITE_NOMEM:    return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:   return -EBUSY;
	case SQLITE_READONLY: return -EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:     return -EACCES;
	default:              return -EIO;
	}
}

/*
 * Log a failed journal operation @what and return its -errno. A full disk
 * is said once until the journal can be written again, not once per
 * attempt; records held in memory meanwhile are written back after
 * db_trouble_until (1 s doubling to 16 s).
 */
static int db_fail(struct upload_queue *q, int rc, const char *what)
{
	if ((rc & 0xff) == SQLITE_FULL || (rc & 0xff) == SQLITE_IOERR) {
		int64_t pause = (int64_t)DB_TROUBLE_MIN_MS << (q->db_trouble_level < 5 ?
							       q->db_trouble_level : 5);
		if (pause > DB_TROUBLE_MAX_MS)
			pause = DB_TROUBLE_MAX_MS;
		if (!q->db_trouble_level)
			log_err("upload journal '%s/journal.db': %s failed: %s; finished uploads "
				"are cleared when it can be written again", q->cache_dir, what,
				q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
		else
			log_debug("upload journal: %s failed again: %s", what,
				  q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
		q->db_trouble_level++;
		q->db_trouble_until = now_ms() + pause;
		return db_errno(rc);
	}
	log_err("upload journal '%s/journal.db': %s failed: %s", q->cache_dir, what,
		q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
	return db_errno(rc);
}

static void db_reset(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Run a bound write statement to completion. Returns the number of changed rows or -errno. */
static int db_run(struct upload_queue *q, enum stmt_id id, const char *what)
{
	sqlite3_stmt *st = q->st[id];
	int rc = sqlite3_step(st);
	int changes = sqlite3_changes(q->db);

	db_reset(st);
	if (rc != SQLITE_DONE)
		return db_fail(q, rc, what);
	if (q->db_trouble_level && id != ST_BEGIN && id != ST_ROLLBACK &&
	    sqlite3_get_autocommit(q->db)) {
		q->db_trouble_level = 0;
		q->db_trouble_until = 0;
		log_info("upload journal writable again; uploads go on");
	}
	return changes;
}

static int64_t u2i(uint64_t v)
{
	int64_t r;
	memcpy(&r, &v, sizeof(r));
	return r;
}

static uint64_t i2u(int64_t v)
{
	uint64_t r;
	memcpy(&r, &v, sizeof(r));
	return r;
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* ---- the in-memory index (callers hold q->lock) ---- */

/*
 * Clear the record of landed upload @u (and, when it landed at its path,
 * rebase newer generations onto its content), in one transaction. db_lock
 * held. > 0 cleared, 0 nothing to clear, -errno when the journal could not
 * be written.
 */
static int journal_clear(struct upload_queue *q, const struct uncleared *u)
{
	bool txn = u->at_path && db_run(q, ST_BEGIN, "begin") >= 0;
	int n;

	sqlite3_bind_int64(q->st[ST_DONE], 1, u2i(u->id));
	sqlite3_bind_int64(q->st[ST_DONE], 2, u2i(u->gen));
	n = db_run(q, ST_DONE, "clear");
	if (u->at_path && n >= 0) {
		/* a newer generation derived from this content: the server now has it */
		sqlite3_stmt *st = q->st[ST_BASE];
		sqlite3_bind_int64(st, 1, u2i(u->id));
		sqlite3_bind_int64(st, 2, u2i(u->gen));
		bind_text(st, 3, u->md5);
		sqlite3_bind_int64(st, 4, u->size);
		bind_text(st, 5, u->path);
		bind_text(st, 6, u->base_md5);
		sqlite3_bind_int64(st, 7, u->base_size);
		sqlite3_bind_int(st, 8, u->overwrite);
		if (db_run(q, ST_BASE, "update base") < 0)
			n = -EIO;
	}
	if (txn && (n < 0 || db_run(q, ST_COMMIT, "commit") < 0)) {
		if (!sqlite3_get_autocommit(q->db))     /* SQLITE_FULL may have ended it */
			db_run(q, ST_ROLLBACK, "rollback");
		n = -EIO;
	}
	return n;
}

static void uncleared_free(struct uncleared *u)
{
	free(u->path);
	free(u);
}

/* Remove held record *@pp (db_lock held). */
static void uncleared_drop(struct upload_queue *q, struct uncleared **pp)
{
	struct uncleared *u = *pp;
	*pp = u->next;
	q->n_uncleared--;
	uncleared_free(u);
}

/*
 * Is record (@id, @gen) held in memory, not to be picked now? An expired
 * hold is dropped. *@wake gets the earliest time a hold ends. db_lock held.
 */
static bool is_held(struct upload_queue *q, uint64_t id, uint64_t gen, int64_t now,
		    int64_t *wake)
{
	for (struct uncleared **pp = &q->uncleared; *pp; pp = &(*pp)->next) {
		struct uncleared *u = *pp;
		if (u->id != id || u->gen != gen)
			continue;
		if (u->landed)
			return true;
		if (u->not_before > now) {
			if (*wake < 0 || u->not_before < *wake)
				*wake = u->not_before;
			return true;
		}
		uncleared_drop(q, pp);
		return false;
	}
	return false;
}

/* Hold record (@id, @gen) in memory until @until: its failure could not be
 * journalled, and picking it at once again would spin. db_lock held. */
static void hold(struct upload_queue *q, uint64_t id, uint64_t gen, int64_t until)
{
	struct uncleared *u = calloc(1, sizeof(*u));

	if (!u)
		return;
	u->id = id;
	u->gen = gen;
	u->not_before = until;
	u->next = q->uncleared;
	q->uncleared = u;
	q->n_uncleared++;
}

/* Clear the landed records that could not be cleared before, and drop the
 * holds that are over (db_lock held). */
static void uncleared_flush(struct upload_queue *q)
{
	int64_t now = now_ms();

	if (q->db_trouble_until > now)
		return;
	for (struct uncleared **pp = &q->uncleared; *pp;) {
		if (!(*pp)->landed) {
			if ((*pp)->not_before <= now)
				uncleared_drop(q, pp);  /* over (or its record replaced) */
			else
				pp = &(*pp)->next;
			continue;
		}
		if (journal_clear(q, *pp) < 0)
			break;
		uncleared_drop(q, pp);
	}
}

static int ment_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct ment *)a)->id, y = ((const struct ment *)b)->id;
	return x < y ? -1 : x > y;
}

static struct ment *ment_get(struct upload_queue *q, uint64_t id)
{
	struct ment key = { .id = id };
	void *p = tfind(&key, &q->index, ment_cmp);
	return p ? *(struct ment **)p : NULL;
}

static void ment_count(struct upload_queue *q, const struct ment *e, int sign)
{
	if (e->given_up) {
		q->given_up += (unsigned)sign;
	} else {
		q->files += (unsigned)sign;
		q->bytes += sign * e->size;
	}
}

/* Insert or update the entry of @id. -ENOMEM when it cannot be inserted. */
static int ment_set(struct upload_queue *q, uint64_t id, uint64_t gen, int64_t size, bool given_up)
{
	struct ment *e = ment_get(q, id);

	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e)
			return -ENOMEM;
		e->id = id;
		if (!tsearch(e, &q->index, ment_cmp)) {
			free(e);
			return -ENOMEM;
		}
	} else {
		ment_count(q, e, -1);
	}
	e->gen = gen;
	e->size = size;
	e->given_up = given_up;
	ment_count(q, e, +1);
	return 0;
}

static void ment_del(struct upload_queue *q, uint64_t id)
{
	struct ment *e = ment_get(q, id);
	if (!e)
		return;
	ment_count(q, e, -1);
	tdelete(e, &q->index, ment_cmp);
	free(e);
}

/* Wake the upload_wait() callers of @id at a generation <= @gen (all when @any_gen). */
static void waiters_resolve(struct upload_queue *q, uint64_t id, uint64_t gen, bool any_gen,
			    int result)
{
	struct waiter *w;
	bool woke = false;

	for (w = q->waiters; w; w = w->next) {
		if (w->done || w->id != id || (!any_gen && w->gen > gen))
			continue;
		w->done = true;
		w->result = result;
		woke = true;
	}
	if (woke)
		pthread_cond_broadcast(&q->state_cv);
}

static void work_signal(struct upload_queue *q)
{
	q->epoch++;
	pthread_cond_broadcast(&q->work_cv);
}

static struct upload_job *job_of(struct upload_queue *q, uint64_t id)
{
	unsigned i;
	for (i = 0; i < q->transfers; i++)
		if (q->jobs[i].active && q->jobs[i].id == id)
			return &q->jobs[i];
	return NULL;
}

/* Wait (q->lock held) until the run @seq of @job has ended. */
static void job_wait_end(struct upload_queue *q, struct upload_job *job, uint64_t seq)
{
	while (job->active && job->seq == seq)
		pthread_cond_wait(&q->state_cv, &q->lock);
}

/* ---- open / close ---- */

static int journal_open(struct upload_queue *q)
{
	char *file = NULL, *mode = NULL;
	sqlite3_stmt *st = NULL;
	int rc, version = -1, i;

	if (asprintf(&file, "%s/journal.db", q->cache_dir) < 0)
		return -ENOMEM;
	/* 0600 with its -wal and -shm, never through a symlink (lib/privdir.h) */
	rc = privdir_sqlite_files(file);
	if (rc) {
		char why[PATH_MAX + 200];
		log_err("upload journal: %s", privdir_file_error(file, rc, why, sizeof(why)));
		free(file);
		return rc;
	}
	rc = sqlite3_open_v2(file, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			     SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE | SQLITE_OPEN_NOFOLLOW,
			     NULL);
	free(file);
	if (rc != SQLITE_OK)
		return db_fail(q, rc, "open");
	sqlite3_busy_timeout(q->db, BUSY_TIMEOUT_MS);
	rc = sqlite3_prepare_v2(q->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		mode = strdup((const char *)sqlite3_column_text(st, 0) ?: "");
	sqlite3_finalize(st);
	if (!mode || strcmp(mode, "wal") != 0) {
		log_err("upload journal '%s/journal.db': cannot use WAL mode (got '%s')",
			q->cache_dir, mode ? mode : "?");
		free(mode);
		return -EIO;
	}
	free(mode);
	rc = sqlite3_exec(q->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return db_fail(q, rc, "PRAGMA synchronous");
	rc = sqlite3_prepare_v2(q->db, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version < 0)
		return db_fail(q, rc, "PRAGMA user_version");
	if (version > JOURNAL_VERSION) {
		log_err("upload journal '%s/journal.db' was written by a newer jottafs "
			"(version %d); use that version or remove pending uploads by hand",
			q->cache_dir, version);
		return -EPROTO;
	}
	if (version < JOURNAL_VERSION) {
		char sql[sizeof(schema_sql) + 64];
		snprintf(sql, sizeof(sql), "BEGIN IMMEDIATE;%sPRAGMA user_version=%d;COMMIT;",
			 schema_sql, JOURNAL_VERSION);
		rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			int err = db_fail(q, rc, "create tables");
			sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
			return err;
		}
		/* the new journal file must survive a crash: make its name durable */
		int dfd = open(q->cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	for (i = 0; i < ST__COUNT; i++) {
		rc = sqlite3_prepare_v3(q->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					&q->st[i], NULL);
		if (rc != SQLITE_OK)
			return db_fail(q, rc, "prepare");
	}
	return 0;
}

/* Build the in-memory index from the journal (at open, single-threaded). */
static int journal_load(struct upload_queue *q)
{
	sqlite3_stmt *st = q->st[ST_LOAD];
	int rc, err = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *state = (const char *)sqlite3_column_text(st, 3);
		err = ment_set(q, i2u(sqlite3_column_int64(st, 0)), i2u(sqlite3_column_int64(st, 1)),
			       sqlite3_column_int64(st, 2), state && strcmp(state, "given-up") == 0);
		if (err)
			break;
	}
	db_reset(st);
	if (!err && rc != SQLITE_DONE)
		err = db_fail(q, rc, "load");
	return err;
}

int upload_open(const struct upload_config *cfg, struct upload_queue **out)
{
	static const struct upload_ops jfs_ops = {
		op_stat, op_entry_release, op_allocate, op_alloc_release, op_upload, NULL,
		op_upload_progress,
	};
	struct upload_queue *q;
	pthread_condattr_t ca;
	int err;

	*out = NULL;
	if (!cfg || !cfg->cache_dir || cfg->cache_dir[0] != '/' || (!cfg->jfs && !cfg->ops))
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->transfers = cfg->transfers ? cfg->transfers : DEF_TRANSFERS;
	if (q->transfers > 64)
		q->transfers = 64;
	q->max_attempts = cfg->max_attempts ? cfg->max_attempts : DEF_MAX_ATTEMPTS;
	q->write_back_ms = cfg->write_back_ms == 0 ? DEF_WRITE_BACK_MS :
			   cfg->write_back_ms < 0 ? 0 : cfg->write_back_ms;
	q->backoff_min_ms = cfg->backoff_min_ms ? cfg->backoff_min_ms : DEF_BACKOFF_MIN_MS;
	q->backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms : DEF_BACKOFF_MAX_MS;
	if (q->backoff_max_ms < q->backoff_min_ms)
		q->backoff_max_ms = q->backoff_min_ms;
	q->done = cfg->done;
	q->done_ctx = cfg->done_ctx;
	if (cfg->ops) {
		q->ops = *cfg->ops;
	} else {
		q->ops = jfs_ops;
		q->ops.ctx = cfg->jfs;
	}
	pthread_mutex_init(&q->db_lock, NULL);
	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->work_cv, &ca);
	pthread_cond_init(&q->state_cv, &ca);
	pthread_condattr_destroy(&ca);

	q->cache_dir = strdup(cfg->cache_dir);
	q->jobs = calloc(q->transfers, sizeof(*q->jobs));
	if (!q->cache_dir || !q->jobs || asprintf(&q->lost_dir, "%s/lost+found", cfg->cache_dir) < 0) {
		q->lost_dir = NULL;
		err = -ENOMEM;
		goto fail;
	}
	if (mkdir(q->cache_dir, 0700) < 0 && errno != EEXIST) {
		err = -errno;
		log_err("cannot create cache directory '%s': %s", q->cache_dir, strerror(-err));
		goto fail;
	}
	err = journal_open(q);
	if (!err)
		err = journal_load(q);
	if (err)
		goto fail;
	if (q->files)
		log_info("upload journal: %u pending uploads (%" PRId64 " bytes) from an earlier run",
			 q->files, q->bytes);
	if (q->given_up)
		log_warn("upload journal: %u uploads were given up earlier; their content is in '%s'",
			 q->given_up, q->lost_dir);
	*out = q;
	return 0;
fail:
	upload_close(q);
	return err;
}

static void *worker_main(void *arg);

int upload_start(struct upload_queue *q)
{
	unsigned i;
	int err = 0;

	pthread_mutex_lock(&q->lock);
	if (q->started || q->stopping) {
		pthread_mutex_unlock(&q->lock);
		return -EALREADY;
	}
	q->started = true;
	pthread_mutex_unlock(&q->lock);
	for (i = 0; i < q->transfers; i++) {
		struct upload_job *job = &q->jobs[i];
		job->q = q;
		atomic_store(&job->resume, -1);
		if (getrandom(&job->rnd, sizeof(job->rnd), GRND_NONBLOCK) != sizeof(job->rnd))
			job->rnd = (uint64_t)now_ms() ^ ((uint64_t)i << 32);
		job->rnd |= 1;
		err = -pthread_create(&job->thread, NULL, worker_main, job);
		if (err) {
			log_err("cannot start upload worker: %s", strerror(-err));
			break;
		}
		pthread_mutex_lock(&q->lock);
		q->threads++;
		pthread_mutex_unlock(&q->lock);
	}
	/* some workers are better than none; fail only when none started */
	return q->threads ? 0 : err;
}

void upload_close(struct upload_queue *q)
{
	unsigned i, threads;
	struct waiter *w;

	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	for (i = 0; q->jobs && i < q->transfers; i++)
		if (q->jobs[i].active)
			atomic_store(&q->jobs[i].cancel, true);
	for (w = q->waiters; w; w = w->next)
		if (!w->done) {
			w->done = true;
			w->result = -EIO;
		}
	pthread_cond_broadcast(&q->work_cv);
	pthread_cond_broadcast(&q->state_cv);
	threads = q->threads;
	pthread_mutex_unlock(&q->lock);
	for (i = 0; i < threads; i++)
		pthread_join(q->jobs[i].thread, NULL);
	pthread_mutex_lock(&q->lock);
	while (q->callers)
		pthread_cond_wait(&q->state_cv, &q->lock);
	pthread_mutex_unlock(&q->lock);

	/* a last try for landed uploads whose records could not be cleared */
	pthread_mutex_lock(&q->db_lock);
	q->db_trouble_until = 0;
	uncleared_flush(q);
	while (q->uncleared) {
		struct uncleared *u = q->uncleared;
		q->uncleared = u->next;
		uncleared_free(u);
	}
	pthread_mutex_unlock(&q->db_lock);
	for (i = 0; i < ST__COUNT; i++)
		sqlite3_finalize(q->st[i]);
	if (q->db)
		sqlite3_close_v2(q->db);
	tdestroy(q->index, free);
	pthread_cond_destroy(&q->work_cv);
	pthread_cond_destroy(&q->state_cv);
	pthread_mutex_destroy(&q->lock);
	pthread_mutex_destroy(&q->db_lock);
	free(q->jobs);
	free(q->lost_dir);
	free(q->cache_dir);
	free(q);
}

/* ---- the caller side ---- */

static bool path_valid(const char *p)
{
	return p && p[0] && p[0] != '/' && p[strlen(p) - 1] != '/';
}

/*
 * The base to journal for @it (db_lock held). A generation confirmed at
 * its path rebases the newer ones already journalled (finish_done), and
 * its done callback tells the caller the new base; a generation enqueued
 * in between, with the base the confirmed one had, is rebased here. Else
 * a rewrite right after the end of an upload (after fsync, typically)
 * would find our own upload on the service and be taken for a conflict.
 */
static void landed_rebase(struct upload_queue *q, const struct upload_item *it,
			  const char **md5, int64_t *size)
{
	*md5 = it->base_md5;
	*size = it->base_size;
	for (unsigned i = 0; i < q->transfers; i++) {
		const struct upload_job *job = &q->jobs[i];

		if (!job->landed.set || job->landed.id != it->id || it->gen <= job->landed.gen ||
		    strcmp(job->landed.path, it->path) != 0 ||
		    job->landed.from_size != it->base_size ||
		    strcmp(job->landed.from_md5, it->base_md5) != 0)
			continue;
		*md5 = job->landed.to_md5;
		*size = job->landed.to_size;
		log_debug("upload of '%s': based on generation %" PRIu64 ", which just landed",
			  it->path, job->landed.gen);
		return;
	}
}

int upload_enqueue(struct upload_queue *q, const struct upload_item *it)
{
	const char *base_md5;
	int64_t base_size;
	struct upload_job *job;
	sqlite3_stmt *st;
	struct stat sb;
	int64_t mtime_ns;
	int n, err;

	if (!it || !path_valid(it->path) || !it->content_file || it->content_file[0] != '/' ||
	    it->size < 0 || (it->md5[0] && !md5_valid(it->md5)) || it->base_size < -1 ||
	    (it->base_size >= 0 ? !md5_valid(it->base_md5) : it->base_md5[0] != '\0'))
		return -EINVAL;
	if (lstat(it->content_file, &sb) < 0) {
		err = -errno;
		log_err("cannot queue upload of '%s': content file '%s': %s", it->path,
			it->content_file, strerror(-err));
		return err;
	}
	if (!S_ISREG(sb.st_mode)) {
		log_err("cannot queue upload of '%s': content file '%s' is not a regular file",
			it->path, it->content_file);
		return -EINVAL;
	}
	if (sb.st_size != it->size) {
		/* written again since its commit (the caller knows whether a
		 * newer commit follows) */
		log_debug("upload of '%s': content file '%s' holds %" PRId64 " bytes, not %" PRId64,
			  it->path, it->content_file, (int64_t)sb.st_size, it->size);
		return -ESTALE;
	}
	mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;

	pthread_mutex_lock(&q->db_lock);
	landed_rebase(q, it, &base_md5, &base_size);
	st = q->st[ST_UPSERT];
	sqlite3_bind_int64(st, 1, u2i(it->id));
	sqlite3_bind_int64(st, 2, u2i(it->gen));
	bind_text(st, 3, it->path);
	bind_text(st, 4, it->content_file);
	sqlite3_bind_int64(st, 5, it->size);
	bind_text(st, 6, it->md5);
	sqlite3_bind_int64(st, 7, (int64_t)it->created);
	sqlite3_bind_int64(st, 8, (int64_t)it->modified);
	bind_text(st, 9, base_md5);
	sqlite3_bind_int64(st, 10, base_size);
	sqlite3_bind_int64(st, 11, now_ms() + q->write_back_ms);
	sqlite3_bind_int64(st, 12, u2i((uint64_t)sb.st_ino));
	sqlite3_bind_int64(st, 13, mtime_ns);
	n = db_run(q, ST_UPSERT, "enqueue");
	if (n <= 0) {
		/* 0: the journal already holds a newer generation of this node */
		pthread_mutex_unlock(&q->db_lock);
		return n < 0 ? n : 0;
	}
	pthread_mutex_lock(&q->lock);
	err = ment_set(q, it->id, it->gen, it->size, false);
	job = job_of(q, it->id);
	if (job && job->gen != it->gen) {
		job->superseded = true;
		/* the running transfer reads a file that was rewritten in place: doomed */
		if (job->ino == (uint64_t)sb.st_ino &&
		    (job->size != it->size || job->mtime_ns != mtime_ns))
			atomic_store(&job->cancel, true);
	}
	work_signal(q);
	pthread_mutex_unlock(&q->lock);
	pthread_mutex_unlock(&q->db_lock);
	return err;
}

/* Start the uploads of @id (or of all un-attempted records when @all) now. */
static void bump(struct upload_queue *q, uint64_t id, bool all)
{
	enum stmt_id s = all ? ST_BUMP_ALL : ST_BUMP_ONE;
	int n;

	pthread_mutex_lock(&q->db_lock);
	if (all) {
		sqlite3_bind_int64(q->st[s], 1, now_ms());
	} else {
		sqlite3_bind_int64(q->st[s], 1, u2i(id));
		sqlite3_bind_int64(q->st[s], 2, now_ms());
	}
	n = db_run(q, s, "reschedule");
	if (n > 0) {
		pthread_mutex_lock(&q->lock);
		work_signal(q);
		pthread_mutex_unlock(&q->lock);
	}
	pthread_mutex_unlock(&q->db_lock);
}

int upload_wait(struct upload_queue *q, uint64_t id, uint64_t gen)
{
	struct waiter w = { .id = id, .gen = gen }, **pp;
	struct ment *e;
	int rc;

	if (upload_pending(q, id))
		bump(q, id, false);     /* fsync wants it now, not after the write-back delay */
	pthread_mutex_lock(&q->lock);
	e = ment_get(q, id);
	if (q->stopping) {
		rc = -EIO;
	} else if (!e || e->gen < gen) {
		rc = 0;                 /* nothing pending at that generation */
	} else if (e->given_up) {
		rc = -EIO;
	} else {
		q->callers++;
		w.next = q->waiters;
		/* on this stack until unlinked below, before returning */
		/* cppcheck-suppress autoVariables */
		q->waiters = &w;
		while (!w.done)
			pthread_cond_wait(&q->state_cv, &q->lock);
		for (pp = &q->waiters; *pp != &w; pp = &(*pp)->next)
			;
		*pp = w.next;
		rc = w.result;
		if (--q->callers == 0)
			pthread_cond_broadcast(&q->state_cv);
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

int upload_cancel(struct upload_queue *q, uint64_t id)
{
	struct upload_job *job;
	uint64_t seq = 0;
	int n;

	pthread_mutex_lock(&q->db_lock);
	sqlite3_bind_int64(q->st[ST_CANCEL], 1, u2i(id));
	n = db_run(q, ST_CANCEL, "cancel");
	pthread_mutex_lock(&q->lock);
	if (n >= 0) {
		ment_del(q, id);
		waiters_resolve(q, id, 0, true, -ENOENT);
	}
	job = job_of(q, id);
	if (job && n >= 0) {
		job->cancelled = true;
		seq = job->seq;
		atomic_store(&job->cancel, true);
	}
	pthread_mutex_unlock(&q->db_lock);
	if (job && n >= 0)
		job_wait_end(q, job, seq);
	pthread_mutex_unlock(&q->lock);
	return n < 0 ? n : 0;
}

int upload_rename(struct upload_queue *q, uint64_t id, const char *new_path)
{
	struct upload_job *job;
	uint64_t seq = 0;
	int n;

	if (!path_valid(new_path))
		return -EINVAL;
	pthread_mutex_lock(&q->db_lock);
	sqlite3_bind_int64(q->st[ST_RENAME], 1, u2i(id));
	bind_text(q->st[ST_RENAME], 2, new_path);
	sqlite3_bind_int64(q->st[ST_RENAME], 3, now_ms());
	n = db_run(q, ST_RENAME, "rename");
	pthread_mutex_lock(&q->lock);
	if (n > 0) {
		struct ment *e = ment_get(q, id);
		if (e && e->given_up)
			ment_set(q, id, e->gen, e->size, false);
	}
	job = n > 0 ? job_of(q, id) : NULL;
	if (job) {
		job->renamed = true;
		seq = job->seq;
		atomic_store(&job->cancel, true);
	}
	if (n > 0)
		work_signal(q);
	pthread_mutex_unlock(&q->db_lock);
	if (job)
		job_wait_end(q, job, seq);
	pthread_mutex_unlock(&q->lock);
	return n < 0 ? n : 0;
}

int upload_rename_dir(struct upload_queue *q, const char *old_dir, const char *new_dir)
{
	uint64_t seqs[64];
	char *old_prefix = NULL, *new_prefix = NULL;
	size_t olen;
	unsigned i;
	int n;

	if (!path_valid(old_dir) || !path_valid(new_dir))
		return -EINVAL;
	if (asprintf(&old_prefix, "%s/", old_dir) < 0)
		return -ENOMEM;
	if (asprintf(&new_prefix, "%s/", new_dir) < 0) {
		free(old_prefix);
		return -ENOMEM;
	}
	olen = strlen(old_prefix);
	pthread_mutex_lock(&q->db_lock);
	bind_text(q->st[ST_RENAME_DIR], 1, old_prefix);
	bind_text(q->st[ST_RENAME_DIR], 2, new_prefix);
	sqlite3_bind_int64(q->st[ST_RENAME_DIR], 3, now_ms());
	n = db_run(q, ST_RENAME_DIR, "rename directory");
	pthread_mutex_lock(&q->lock);
	if (n > 0) {
		/* given-up records under it are pending again */
		sqlite3_stmt *st = q->st[ST_REVIVED];
		bind_text(st, 1, new_prefix);
		while (sqlite3_step(st) == SQLITE_ROW) {
			struct ment *e = ment_get(q, i2u(sqlite3_column_int64(st, 0)));
			if (e && e->given_up)
				ment_set(q, e->id, e->gen, e->size, false);
		}
		db_reset(st);
	}
	for (i = 0; i < q->transfers; i++) {
		struct upload_job *job = &q->jobs[i];
		seqs[i] = 0;
		if (n > 0 && job->active && job->path && strncmp(job->path, old_prefix, olen) == 0) {
			job->renamed = true;
			seqs[i] = job->seq;
			atomic_store(&job->cancel, true);
		}
	}
	if (n > 0)
		work_signal(q);
	pthread_mutex_unlock(&q->db_lock);
	for (i = 0; i < q->transfers; i++)
		if (seqs[i])
			job_wait_end(q, &q->jobs[i], seqs[i]);
	pthread_mutex_unlock(&q->lock);
	free(old_prefix);
	free(new_prefix);
	return n < 0 ? n : 0;
}

bool upload_pending(struct upload_queue *q, uint64_t id)
{
	struct ment *e;
	bool r;

	pthread_mutex_lock(&q->lock);
	e = ment_get(q, id);
	r = e && !e->given_up;
	pthread_mutex_unlock(&q->lock);
	return r;
}

void upload_stats(struct upload_queue *q, unsigned *files, int64_t *bytes)
{
	pthread_mutex_lock(&q->lock);
	if (files)
		*files = q->files;
	if (bytes)
		*bytes = q->bytes;
	pthread_mutex_unlock(&q->lock);
}

/* Bytes the service holds of @job's content (q->lock held). */
static int64_t job_done(struct upload_job *job)
{
	int64_t resume = atomic_load(&job->resume);

	return resume < 0 ? 0 : resume + atomic_load(&job->sent);
}

int upload_state(struct upload_queue *q, uint64_t id, struct upload_state *out)
{
	struct ment *e;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&q->lock);
	e = ment_get(q, id);
	if (e) {
		out->pending = !e->given_up;
		out->given_up = e->given_up;
		out->total = e->size;
		for (unsigned i = 0; i < q->transfers && out->pending; i++) {
			struct upload_job *job = &q->jobs[i];
			if (job->active && job->id == id) {
				out->running = true;
				out->done = job_done(job);
				out->total = job->size;
			}
		}
	}
	pthread_mutex_unlock(&q->lock);
	return e ? 0 : -ENOENT;
}

void upload_running(struct upload_queue *q, struct upload_xfer *v, size_t max, size_t *n)
{
	*n = 0;
	pthread_mutex_lock(&q->lock);
	for (unsigned i = 0; i < q->transfers && *n < max; i++) {
		struct upload_job *job = &q->jobs[i];
		if (!job->active || !job->path)
			continue;
		v[*n].path = strdup(job->path);
		if (!v[*n].path)
			break;
		v[*n].done = job_done(job);
		v[*n].total = job->size;
		(*n)++;
	}
	pthread_mutex_unlock(&q->lock);
}

unsigned upload_given_up(struct upload_queue *q)
{
	unsigned n;

	pthread_mutex_lock(&q->lock);
	n = q->given_up;
	pthread_mutex_unlock(&q->lock);
	return n;
}

void upload_resume(struct upload_queue *q)
{
	pthread_mutex_lock(&q->lock);
	if (q->paused_until) {
		q->paused_until = 0;
		q->pause_level = 0;
		log_info("uploads resumed");
		work_signal(q);
	}
	pthread_mutex_unlock(&q->lock);
}

void upload_retry_now(struct upload_queue *q)
{
	int n;

	pthread_mutex_lock(&q->db_lock);
	sqlite3_bind_int64(q->st[ST_RETRY_NOW], 1, now_ms());
	n = db_run(q, ST_RETRY_NOW, "reschedule");
	pthread_mutex_unlock(&q->db_lock);
	pthread_mutex_lock(&q->lock);
	if (n > 0)
		log_info("%d queued upload%s restarted now (retry delays reset)", n,
			 n == 1 ? "" : "s");
	work_signal(q);
	pthread_mutex_unlock(&q->lock);
}

int upload_drain(struct upload_queue *q, unsigned timeout_s)
{
	int64_t start = now_ms(), end = start + (int64_t)timeout_s * 1000, next_log = start;
	int rc;

	bump(q, 0, true);
	pthread_mutex_lock(&q->lock);
	q->callers++;
	while (q->files && q->threads && !q->stopping) {
		int64_t now = now_ms(), until;
		struct timespec dl;

		if (now >= end)
			break;
		if (now >= next_log) {
			log_info("waiting for %u uploads (%" PRId64 " bytes) to finish", q->files,
				 q->bytes);
			next_log = now + DRAIN_LOG_MS;
		}
		until = next_log < end ? next_log : end;
		dl = deadline_in(until - now);
		pthread_cond_timedwait(&q->state_cv, &q->lock, &dl);
	}
	if (q->files) {
		log_warn("%u uploads (%" PRId64 " bytes) left in the journal; they resume at the "
			 "next mount", q->files, q->bytes);
		rc = -ETIMEDOUT;
	} else {
		rc = 0;
	}
	if (--q->callers == 0)
		pthread_cond_broadcast(&q->state_cv);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

/* ---- the worker side ---- */

/* Copy the current row of ST_PICK into @r. -EINVAL for a malformed row. */
static int row_load(sqlite3_stmt *st, struct urec *r)
{
	const char *path = (const char *)sqlite3_column_text(st, 2);
	const char *file = (const char *)sqlite3_column_text(st, 3);
	const char *md5 = (const char *)sqlite3_column_text(st, 5);
	const char *bmd5 = (const char *)sqlite3_column_text(st, 8);
	const char *target = (const char *)sqlite3_column_text(st, 14);

	memset(r, 0, sizeof(*r));
	r->id = i2u(sqlite3_column_int64(st, 0));
	r->gen = i2u(sqlite3_column_int64(st, 1));
	/* an empty md5: not hashed yet (upload_item.md5) */
	if (!path_valid(path) || !file || !md5 || (strlen(md5) != 32 && md5[0]) || !bmd5 ||
	    strlen(bmd5) > 32)
		return -EINVAL;
	r->path = strdup(path);
	r->content_file = strdup(file);
	r->target = target ? strdup(target) : NULL;
	if (!r->path || !r->content_file || (target && !r->target)) {
		urec_release(r);
		return -ENOMEM;
	}
	r->size = sqlite3_column_int64(st, 4);
	memcpy(r->md5, md5, 33);
	r->created = sqlite3_column_int64(st, 6);
	r->modified = sqlite3_column_int64(st, 7);
	memcpy(r->base_md5, bmd5, strlen(bmd5) + 1);
	r->base_size = sqlite3_column_int64(st, 9);
	r->overwrite = sqlite3_column_int(st, 10) != 0;
	r->attempts = (unsigned)sqlite3_column_int(st, 11);
	r->hard_failures = (unsigned)sqlite3_column_int(st, 12);
	r->ino = i2u(sqlite3_column_int64(st, 15));
	r->mtime_ns = sqlite3_column_int64(st, 16);
	r->last_resume = sqlite3_column_int64(st, 17);
	return r->size < 0 ? -EINVAL : 0;
}

/*
 * Claim the first due record that no other job runs. Returns 1 with @r
 * filled and @job active, 0 when nothing is due (*wake_ms: when something
 * will be, -1: not known), or -errno.
 */
static int pick(struct upload_queue *q, struct upload_job *job, struct urec *r, int64_t *wake_ms)
{
	sqlite3_stmt *st = q->st[ST_PICK];
	int64_t now = now_ms();
	uint64_t bad_id = 0;
	bool bad = false;
	int rc, claimed = 0;

	*wake_ms = -1;
	pthread_mutex_lock(&q->db_lock);
	uncleared_flush(q);
	/* busy and uncleared rows are skipped: ask for enough to find one more */
	sqlite3_bind_int(st, 1, (int)(q->transfers + 1 + q->n_uncleared));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t id = i2u(sqlite3_column_int64(st, 0));
		int64_t next_try = sqlite3_column_int64(st, 13);
		bool busy;

		if (is_held(q, id, i2u(sqlite3_column_int64(st, 1)), now, wake_ms))
			continue;       /* landed or failed; the journal could not say so */

		pthread_mutex_lock(&q->lock);
		busy = job_of(q, id) != NULL;
		if (!busy && (q->stopping || q->paused_until > now)) {
			*wake_ms = q->stopping ? -1 : q->paused_until;
			pthread_mutex_unlock(&q->lock);
			break;
		}
		pthread_mutex_unlock(&q->lock);
		if (busy)
			continue;
		if (next_try > now) {
			*wake_ms = next_try;
			break;
		}
		int err = row_load(st, r);
		if (err == -EINVAL) {
			bad = true;
			bad_id = id;
			*wake_ms = now;
			break;
		}
		if (err) {
			rc = SQLITE_NOMEM;
			break;
		}
		pthread_mutex_lock(&q->lock);
		job->active = true;
		job->seq++;
		job->id = r->id;
		job->gen = r->gen;
		job->path = strdup(r->path);
		job->ino = r->ino;
		job->size = r->size;
		job->mtime_ns = r->mtime_ns;
		job->cancelled = job->renamed = false;
		/* a newer generation may have been journalled between the select and now */
		struct ment *e = ment_get(q, r->id);
		job->superseded = !e || e->gen != r->gen;
		atomic_store(&job->cancel, false);
		pthread_mutex_unlock(&q->lock);
		claimed = 1;
		break;
	}
	db_reset(st);
	if (bad) {
		/* a row this version cannot use: set it aside, visibly, instead of looping */
		log_err("upload journal: malformed record of node %" PRIu64 " set aside", bad_id);
		sqlite3_bind_int64(q->st[ST_BAD], 1, u2i(bad_id));
		if (db_run(q, ST_BAD, "set aside") > 0) {
			pthread_mutex_lock(&q->lock);
			struct ment *e = ment_get(q, bad_id);
			if (e)
				ment_set(q, bad_id, e->gen, e->size, true);
			pthread_mutex_unlock(&q->lock);
		} else {
			*wake_ms = now + 1000;
		}
		rc = SQLITE_DONE;
	}
	pthread_mutex_unlock(&q->db_lock);
	if (claimed)
		return 1;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		if (rc == SQLITE_NOMEM)
			return -ENOMEM;
		return db_errno(rc);
	}
	return 0;
}

/* Interruption reasons of @job (under q->lock). */
struct job_flags {
	bool cancelled, renamed, superseded, stopping;
};

static struct job_flags job_flags(struct upload_queue *q, struct upload_job *job)
{
	struct job_flags f;

	pthread_mutex_lock(&q->lock);
	f.cancelled = job->cancelled;
	f.renamed = job->renamed;
	f.superseded = job->superseded;
	f.stopping = q->stopping;
	pthread_mutex_unlock(&q->lock);
	return f;
}

static bool job_stop_now(struct upload_queue *q, struct upload_job *job)
{
	struct job_flags f = job_flags(q, job);
	return f.cancelled || f.renamed || f.superseded || f.stopping;
}

/* End the run (q->lock held): free the slot and wake whoever waits for it. */
static void job_release(struct upload_queue *q, struct upload_job *job)
{
	job->active = false;
	free(job->path);
	job->path = NULL;
	pthread_cond_broadcast(&q->state_cv);
}

/* MD5 (hex) of the whole of @fd. */
static int md5_fd(int fd, char out[33], const atomic_bool *cancel)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char dig[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0, i;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	size_t bufsz = 1 << 18;
	char *buf = malloc(bufsz);
	struct stat sb;
	off_t off = 0, data = -1;
	int err = 0;

	if (!c || !buf || EVP_DigestInit_ex(c, EVP_md5(), NULL) != 1) {
		err = -ENOMEM;
		goto out;
	}
	if (fstat(fd, &sb) < 0) {
		err = -errno;
		goto out;
	}
	while (off < sb.st_size) {
		size_t want = sb.st_size - off > (off_t)bufsz ? bufsz : (size_t)(sb.st_size - off);
		if (cancel && atomic_load(cancel)) {
			err = -ECANCELED;
			goto out;
		}
		if (data < off) {
			off_t d = lseek(fd, off, SEEK_DATA);
			data = d >= 0 ? d : errno == ENXIO ? sb.st_size : off;
		}
		if (data > off) {               /* a hole: zeros, not read */
			if ((off_t)want > data - off)
				want = (size_t)(data - off);
			memset(buf, 0, want);
			EVP_DigestUpdate(c, buf, want);
			off += (off_t)want;
			continue;
		}
		ssize_t n = pread(fd, buf, want, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			goto out;
		}
		if (n == 0)
			break;                  /* cut meanwhile: the identity check says so */
		EVP_DigestUpdate(c, buf, (size_t)n);
		off += n;
	}
	if (EVP_DigestFinal_ex(c, dig, &dlen) != 1 || dlen != 16) {
		err = -EIO;
		goto out;
	}
	for (i = 0; i < 16; i++) {
		out[2 * i] = hex[dig[i] >> 4];
		out[2 * i + 1] = hex[dig[i] & 15];
	}
	out[32] = '\0';
out:
	free(buf);
	EVP_MD_CTX_free(c);
	return err;
}

/* Record new content facts of (id, gen) in the journal and the index. */
static void record_content(struct upload_queue *q, const struct urec *r)
{
	sqlite3_stmt *st = q->st[ST_CONTENT];

	pthread_mutex_lock(&q->db_lock);
	sqlite3_bind_int64(st, 1, u2i(r->id));
	sqlite3_bind_int64(st, 2, u2i(r->gen));
	sqlite3_bind_int64(st, 3, r->size);
	bind_text(st, 4, r->md5);
	sqlite3_bind_int64(st, 5, u2i(r->ino));
	sqlite3_bind_int64(st, 6, r->mtime_ns);
	if (db_run(q, ST_CONTENT, "update content") > 0) {
		pthread_mutex_lock(&q->lock);
		struct ment *e = ment_get(q, r->id);
		if (e && e->gen == r->gen && !e->given_up)
			ment_set(q, r->id, r->gen, r->size, false);
		pthread_mutex_unlock(&q->lock);
	}
	pthread_mutex_unlock(&q->db_lock);
}

/*
 * MD5 of content file @fd (whose fstat was @sb) into @md5: 0, JOB_SKIP
 * (the job was cancelled, or superseded while the file changed), JOB_DEFER
 * (written to while it was hashed) or -errno.
 */
static int hash_unchanged(struct upload_queue *q, struct upload_job *job, int fd,
			  const struct stat *sb, char md5[33])
{
	struct stat sb2;
	int err = md5_fd(fd, md5, &job->cancel);

	if (err == -ECANCELED)
		return JOB_SKIP;
	if (err)
		return err;
	if (fstat(fd, &sb2) < 0)
		return -EIO;
	if (sb2.st_size != sb->st_size || sb2.st_mtim.tv_sec != sb->st_mtim.tv_sec ||
	    sb2.st_mtim.tv_nsec != sb->st_mtim.tv_nsec)
		return job_flags(q, job).superseded ? JOB_SKIP : JOB_DEFER;
	return 0;
}

/*
 * Open the content file of @r and check that it still holds the content
 * recorded at enqueue (see "Choices" above). Returns 0 with *fd open,
 * JOB_SKIP, JOB_DEFER or -errno.
 */
static int content_open(struct upload_queue *q, struct upload_job *job, struct urec *r, int *fd)
{
	struct stat sb;
	char md5[33];
	int64_t mtime_ns;
	int err;

	/* a regular file of ours, not through a symlink (lib/privdir.h) */
	err = privdir_open_file(AT_FDCWD, r->content_file, O_RDONLY, false);
	*fd = err < 0 ? -1 : err;
	if (err < 0) {
		char why[PATH_MAX + 200];
		if (job_flags(q, job).superseded)
			return JOB_SKIP;
		log_warn("upload of '%s': content file: %s", r->path,
			 privdir_file_error(r->content_file, err, why, sizeof(why)));
		/* a lost (or replaced) cache file is not the service's fault:
		 * retrying cannot help for long */
		return err == -ENOENT || err == -ELOOP || err == -EINVAL || err == -EPERM ?
		       JOB_NOCONTENT : err;
	}
	if (fstat(*fd, &sb) < 0)
		return -EIO;
	mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
	if ((uint64_t)sb.st_ino == r->ino && sb.st_size == r->size && mtime_ns == r->mtime_ns) {
		if (r->md5[0])
			return 0;
		/* committed without its MD5 (a huge sparse file): hash it now */
		if (job_flags(q, job).superseded)
			return JOB_SKIP;
		err = hash_unchanged(q, job, *fd, &sb, md5);
		if (err)
			return err;
		memcpy(r->md5, md5, sizeof(md5));
		record_content(q, r);
		return 0;
	}
	/* changed underneath: a newer generation will upload it */
	if (job_flags(q, job).superseded)
		return JOB_SKIP;
	/* still being written (its close() re-enqueues): wait, without hashing */
	if (now_ms() - mtime_ns / 1000000 < SETTLE_MS)
		return JOB_DEFER;
	err = hash_unchanged(q, job, *fd, &sb, md5);
	if (err)
		return err;
	if (sb.st_size == r->size && r->md5[0] && strcmp(md5, r->md5) == 0) {
		r->ino = (uint64_t)sb.st_ino;   /* touched or copied, same bytes */
		r->mtime_ns = mtime_ns;
		record_content(q, r);
		return 0;
	}
	log_warn("upload of '%s': content file '%s' changed without a new upload request "
		 "(%" PRId64 " -> %" PRId64 " bytes); uploading its current content",
		 r->path, r->content_file, r->size, (int64_t)sb.st_size);
	r->size = sb.st_size;
	memcpy(r->md5, md5, sizeof(md5));
	r->ino = (uint64_t)sb.st_ino;
	r->mtime_ns = mtime_ns;
	record_content(q, r);
	pthread_mutex_lock(&q->lock);
	job->ino = r->ino;
	job->size = r->size;
	job->mtime_ns = r->mtime_ns;
	pthread_mutex_unlock(&q->lock);
	return 0;
}

/* Note that content (@md5, @size) of node @id may land at its path (once). */
static void own_add(struct upload_queue *q, uint64_t id, const char *md5, int64_t size)
{
	pthread_mutex_lock(&q->lock);
	for (unsigned i = 0; i < OWN_RING; i++) {
		if (q->own[i].id == id && q->own[i].size == size && !strcmp(q->own[i].md5, md5)) {
			pthread_mutex_unlock(&q->lock);
			return;
		}
	}
	unsigned k = q->own_next++ % OWN_RING;
	q->own[k].id = id;
	q->own[k].size = size;
	memcpy(q->own[k].md5, md5, sizeof(q->own[k].md5));
	pthread_mutex_unlock(&q->lock);
}

/* Did this mount itself send content (@md5, @size) to node @id's path lately? */
static bool own_content(struct upload_queue *q, uint64_t id, const char *md5, int64_t size)
{
	bool r = false;

	pthread_mutex_lock(&q->lock);
	for (unsigned i = 0; i < OWN_RING && !r; i++)
		r = q->own[i].id == id && q->own[i].size == size && !strcmp(q->own[i].md5, md5);
	pthread_mutex_unlock(&q->lock);
	return r;
}

/*
 * Decide where @r goes: its path, or a conflict name when the server copy
 * changed since the local copy was opened. *target is malloc'd.
 *
 * A file new here (no base) needs no look first: the allocate carries
 * REJECT_CONFLICTS (*reject set), so the service itself refuses when someone
 * else put a different file at the path meanwhile. That saves a round trip
 * per new file. Only when it refused (@refused, its error) is the path looked
 * at; if nothing is there, the refusal was about something else and is
 * returned as it is.
 */
static int choose_target(struct upload_queue *q, struct upload_job *job, struct urec *r,
			 int refused, char **target, bool *reject)
{
	struct jfs_entry e;
	bool conflict, live;
	char name[4096];
	int err;

	*target = NULL;
	*reject = false;
	if (r->target) {
		*target = strdup(r->target);
		return *target ? 0 : -ENOMEM;
	}
	if (!r->overwrite && r->base_size < 0 && !refused) {
		*reject = true;
	} else if (!r->overwrite) {
		memset(&e, 0, sizeof(e));
		err = q->ops.stat(q->ops.ctx, r->path, &e);
		if (err && err != -ENOENT)
			return err;
		live = !err && !e.deleted && (e.is_dir || e.completed);
		if (!live)
			conflict = false;       /* nothing live there */
		else if (e.is_dir)
			conflict = true;
		else if (e.md5[0] == '\0')
			conflict = false;       /* nothing to compare with */
		else if (e.size == r->size && strcmp(e.md5, r->md5) == 0)
			conflict = false;       /* already ours */
		else if (r->base_size >= 0 && e.size == r->base_size &&
			 strcmp(e.md5, r->base_md5) == 0)
			conflict = false;       /* what the local copy started from */
		else
			conflict = !own_content(q, r->id, e.md5, e.size);
		if (!err)
			q->ops.entry_release(q->ops.ctx, &e);
		if (!live && refused)
			return refused;         /* the refusal was not about what is there */
		if (conflict) {
			err = upload_conflict_name(r->path, time(NULL), name, sizeof(name));
			if (err)
				return err;
			log_warn("'%s' was changed on the server since it was opened here; "
				 "the local version is uploaded as '%s'", r->path, name);
			*target = strdup(name);
			if (!*target)
				return -ENOMEM;
			/* retries must go to the same name */
			pthread_mutex_lock(&q->db_lock);
			sqlite3_bind_int64(q->st[ST_TARGET], 1, u2i(r->id));
			sqlite3_bind_int64(q->st[ST_TARGET], 2, u2i(r->gen));
			bind_text(q->st[ST_TARGET], 3, name);
			bind_text(q->st[ST_TARGET], 4, r->path);
			db_run(q, ST_TARGET, "record conflict name");
			pthread_mutex_unlock(&q->db_lock);
			return 0;
		}
	}
	*target = strdup(r->path);
	return *target ? 0 : -ENOMEM;
}

/*
 * Can the data POST that failed with @err have completed all the same? A
 * transport failure or a 5xx (-EIO: net/http cannot tell a cut answer from
 * a cut request) or a timeout may hide an answer that was lost after the
 * service stored everything. Refusals (-EINVAL, -ENOSPC, ...) and our own
 * cancel (-ECANCELED: the caller moves or deletes what landed) cannot.
 */
static bool post_ambiguous(int err)
{
	return err == -EIO || err == -ETIMEDOUT;
}

/*
 * After an ambiguous failure of the data POST, does @target hold the upload
 * all the same? True when its current revision is COMPLETED with our size
 * and MD5: the goal of the upload is met, and allocating again would store
 * the same bytes once more as a new revision (the POST is not idempotent,
 * its lost answer cannot be asked for again). A failing stat says no (the
 * attempt is retried as before).
 */
static bool landed_anyway(struct upload_queue *q, const struct urec *r, const char *target)
{
	struct jfs_entry e;
	bool ours;

	memset(&e, 0, sizeof(e));
	if (q->ops.stat(q->ops.ctx, target, &e) != 0)
		return false;
	ours = !e.deleted && !e.is_dir && e.completed && e.size == r->size &&
	       strcmp(e.md5, r->md5) == 0;
	q->ops.entry_release(q->ops.ctx, &e);
	return ours;
}

/* Did the service refuse an allocate outright (nothing can have landed)? */
static bool allocate_refused(int err)
{
	switch (err) {
	case -EEXIST: case -EINVAL: case -EISDIR: case -ENOTDIR: case -ENAMETOOLONG:
	case -ENOSPC: case -EDQUOT: case -EFBIG: case -EPERM: case -ENOENT:
		return true;
	default:
		return false;
	}
}

/*
 * Allocate and, unless the service already has the content, send it.
 * *resumed is the resume_pos of the data POST, -1 when none was sent.
 */
static int transfer(struct upload_queue *q, struct upload_job *job, const struct urec *r,
		    const char *target, bool reject, int fd, bool *instant, int64_t *resumed)
{
	struct jfs_alloc_req req = {
		.path = target, .size = r->size, .md5 = r->md5,
		.created = (time_t)r->created, .modified = (time_t)r->modified,
		.reject_conflicts = reject,
	};
	struct jfs_alloc a;
	int err;

	*resumed = -1;
	if (job_stop_now(q, job))
		return -ECANCELED;
	memset(&a, 0, sizeof(a));
	err = q->ops.allocate(q->ops.ctx, &req, &a);
	/* Unless the service refused it outright, this content may land at
	 * the path (an allocate answered or lost may complete it; a POST cut
	 * as the file is superseded may still finish). Refusals are not
	 * remembered: a writer rewriting a file in a loop would otherwise
	 * push what did land out of the ring. */
	if (strcmp(target, r->path) == 0 && !allocate_refused(err))
		own_add(q, r->id, r->md5, r->size);
	if (err)
		return err;
	if (a.completed) {
		*instant = true;
	} else if (!a.upload_url || a.resume_pos < 0 || a.resume_pos > r->size) {
		log_warn("upload of '%s': allocate answered a resume position of %" PRId64
			 " for %" PRId64 " bytes", target, a.resume_pos, r->size);
		err = -EIO;
	} else if (job_stop_now(q, job)) {
		err = -ECANCELED;
	} else {
		*resumed = a.resume_pos;
		atomic_store(&job->sent, 0);
		atomic_store(&job->resume, a.resume_pos);
		if (q->ops.upload_progress)
			err = q->ops.upload_progress(q->ops.ctx, a.upload_url, fd, a.resume_pos,
						     r->size, r->md5, &job->cancel, &job->sent);
		else
			err = q->ops.upload(q->ops.ctx, a.upload_url, fd, a.resume_pos, r->size,
					    r->md5, &job->cancel);
		atomic_store(&job->resume, -1);
		if (post_ambiguous(err) && !job_stop_now(q, job) && landed_anyway(q, r, target)) {
			log_debug("upload of '%s': the data POST failed (%s) but the service has "
				  "all %" PRId64 " bytes with our MD5: done", target, strerror(-err),
				  r->size);
			err = 0;
		}
	}
	q->ops.alloc_release(q->ops.ctx, &a);
	return err;
}

enum fail_kind { FAIL_TRANSIENT, FAIL_HARD, FAIL_PERMANENT, FAIL_PAUSE };

/* How an error from an attempt is treated (see "Choices"). */
static enum fail_kind classify(int err)
{
	switch (err) {
	case -EKEYREJECTED:
		return FAIL_PAUSE;
	case -EINVAL: case -ENAMETOOLONG: case -ENOSPC: case -EDQUOT: case -EFBIG:
	case -ENOTDIR: case -EISDIR: case -EPERM: case -EROFS:
		return FAIL_PERMANENT;
	case -ETIMEDOUT: case -EAGAIN: case -EHOSTUNREACH: case -ENETUNREACH:
	case -ENETDOWN: case -ECONNREFUSED: case -ECONNRESET: case -ECONNABORTED:
	case -EPIPE: case -ENOTCONN: case -EACCES: case -EBUSY: case -ENOMEM:
	case -ESHUTDOWN: case -EHOSTDOWN: case -EINTR: case -ECANCELED:
	case -EEXIST:   /* 409: the service still holds a dead connection's upload */
		return FAIL_TRANSIENT;
	default:
		return FAIL_HARD;         /* -EIO and anything unexpected */
	}
}

/*
 * One lost+found path segment from the server name @seg (@len bytes): never
 * "", "." or "..", at most @max bytes (a server name may be 255 characters,
 * more than NAME_MAX bytes): shortened at a character boundary, keeping a
 * short extension.
 */
static void seg_fit(const char *seg, size_t len, size_t max, char *out)
{
	const char *dot = memrchr(seg, '.', len);
	size_t ext = (dot && dot != seg) ? len - (size_t)(dot - seg) : 0;
	size_t keep = len;

	if (len == 0 || (len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.')) {
		snprintf(out, max + 1, "_%.*s", (int)len, seg);
		return;
	}
	if (ext > 16)
		ext = 0;
	if (len > max) {
		keep = max - ext;
		while (keep > 0 && ((unsigned char)seg[keep] & 0xC0) == 0x80)
			keep--;
	} else {
		ext = 0;
	}
	memcpy(out, seg, keep);
	memcpy(out + keep, seg + len - ext, ext);
	out[keep + ext] = '\0';
}

/* Copy all of @fd into the new file @dst (O_EXCL). */
static int copy_to(int fd, const char *dst)
{
	char buf[1 << 16];
	off_t off = 0;
	int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int err = 0;

	if (out < 0)
		return -errno;
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof(buf), off), w = 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? -errno : 0;
			break;
		}
		while (w < n) {
			ssize_t k = write(out, buf + w, (size_t)(n - w));
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				err = -errno;
				break;
			}
			w += k;
		}
		if (err)
			break;
		off += n;
	}
	if (!err && fsync(out) < 0)
		err = -errno;
	close(out);
	if (err)
		unlink(dst);
	return err;
}

/* Make (0700) or check one directory of lost+found: each level must be a
 * directory of ours, not a symlink, that only we can write to. */
static int keep_dir(const char *dir)
{
	int fd = privdir_open_dir(AT_FDCWD, dir);

	if (fd < 0) {
		log_err("lost+found: cannot use '%s': %s", dir, fd == -EPERM ?
			"not a directory of ours that only we can write to" : strerror(-fd));
		return fd;
	}
	close(fd);
	return 0;
}

/*
 * Keep the content of @fd under <cache_dir>/lost+found/<path>: the server
 * path's directories become directories there, a name already taken gets
 * " (N)" before its extension. Hard link of the open file (so exactly the
 * bytes that failed), a copy when linking is impossible. *out is malloc'd.
 */
static int lost_found_keep(struct upload_queue *q, const char *path, int fd, char **out)
{
	char dir[PATH_MAX], dst[PATH_MAX], name[NAME_MAX + 1], procfd[64];
	const char *p = path;
	int err = 0, n, dfd;

	*out = NULL;
	if (snprintf(dir, sizeof(dir), "%s", q->lost_dir) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	if ((err = keep_dir(dir)))
		return err;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t sl = slash ? (size_t)(slash - p) : strlen(p), dl;

		/* room for " (999)" in the leaf */
		seg_fit(p, sl, slash ? NAME_MAX : NAME_MAX - 8, name);
		if (!slash)
			break;
		p = slash + 1;
		if (sl == 0)
			continue;
		dl = strlen(dir);
		if (snprintf(dir + dl, sizeof(dir) - dl, "/%s", name) >= (int)(sizeof(dir) - dl))
			return -ENAMETOOLONG;
		if ((err = keep_dir(dir)))
			return err;
	}
	snprintf(procfd, sizeof(procfd), "/proc/self/fd/%d", fd);
	for (n = 0; n < 1000; n++) {
		const char *dot = strrchr(name, '.');
		int stem = (dot && dot != name && dot[1]) ? (int)(dot - name) : (int)strlen(name);
		int k = n == 0 ? snprintf(dst, sizeof(dst), "%s/%s", dir, name) :
			snprintf(dst, sizeof(dst), "%s/%.*s (%d)%s", dir, stem, name, n, name + stem);

		if (k < 0 || k >= (int)sizeof(dst))
			return -ENAMETOOLONG;
		/* a hard link of the open file: exactly the bytes that failed, at no cost */
		if (linkat(AT_FDCWD, procfd, AT_FDCWD, dst, AT_SYMLINK_FOLLOW) == 0)
			break;
		if (errno == EEXIST)
			continue;
		err = copy_to(fd, dst);
		if (err == -EEXIST)
			continue;
		if (err)
			return err;
		break;
	}
	if (n == 1000)
		return -EEXIST;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	*out = strdup(dst);
	return *out ? 0 : -ENOMEM;
}

/* The upload of @r is confirmed at @target: clear it (if still that generation). */
static void finish_done(struct upload_queue *q, struct upload_job *job, const struct urec *r,
			const char *target, bool instant, int64_t resumed)
{
	bool at_path = strcmp(target, r->path) == 0;
	struct uncleared u = {
		.id = r->id, .gen = r->gen, .at_path = at_path, .path = r->path,
		.size = r->size, .base_size = r->base_size, .overwrite = r->overwrite,
	};
	int n;

	memcpy(u.md5, r->md5, sizeof(u.md5));
	memcpy(u.base_md5, r->base_md5, sizeof(u.base_md5));
	pthread_mutex_lock(&q->db_lock);
	n = journal_clear(q, &u);
	if (n < 0) {
		/* Landed all the same: never uploaded again by this mount; the
		 * record is cleared when the journal can be written (a crash
		 * before that uploads it again, instantly). */
		struct uncleared *c = malloc(sizeof(*c));
		if (c) {
			*c = u;
			c->landed = true;
			c->path = strdup(r->path);
			if (c->path) {
				c->next = q->uncleared;
				q->uncleared = c;
				q->n_uncleared++;
				n = 1;
			} else {
				free(c);
			}
		}
	}
	if (at_path) {
		/* and those enqueued before the done callback returned */
		job->landed.path = strdup(r->path);
		if (job->landed.path) {
			job->landed.set = true;
			job->landed.id = r->id;
			job->landed.gen = r->gen;
			memcpy(job->landed.from_md5, r->base_md5, sizeof(job->landed.from_md5));
			job->landed.from_size = r->base_size;
			memcpy(job->landed.to_md5, r->md5, sizeof(job->landed.to_md5));
			job->landed.to_size = r->size;
		}
	}
	pthread_mutex_lock(&q->lock);
	if (n > 0) {
		struct ment *e = ment_get(q, r->id);
		if (e && e->gen == r->gen)
			ment_del(q, r->id);
	}
	waiters_resolve(q, r->id, r->gen, false, 0);
	if (q->pause_level) {
		q->pause_level = 0;
		q->paused_until = 0;
		log_info("uploads resumed");
	}
	job_release(q, job);
	pthread_mutex_unlock(&q->lock);
	pthread_mutex_unlock(&q->db_lock);
	if (instant)
		log_debug("uploaded '%s' (%" PRId64 " bytes, instant)", target, r->size);
	else
		log_debug("uploaded '%s' (%" PRId64 " bytes, from %" PRId64 ")", target, r->size,
			  resumed);
	if (q->done)
		q->done(q->done_ctx, r->id, r->gen, 0, target, r->md5);
	if (at_path) {
		pthread_mutex_lock(&q->db_lock);
		job->landed.set = false;
		free(job->landed.path);
		job->landed.path = NULL;
		pthread_mutex_unlock(&q->db_lock);
	}
}

/* Give the upload of @r up: content to lost+found, record marked, callers told. */
static void finish_give_up(struct upload_queue *q, struct upload_job *job, const struct urec *r,
			   int fd, int err, const char *why)
{
	char *lost = NULL;
	int kerr = fd >= 0 ? lost_found_keep(q, r->path, fd, &lost) : -ENOENT;
	sqlite3_stmt *st = q->st[ST_GIVEUP];
	int n;

	pthread_mutex_lock(&q->db_lock);
	sqlite3_bind_int64(st, 1, u2i(r->id));
	sqlite3_bind_int64(st, 2, u2i(r->gen));
	sqlite3_bind_int(st, 3, (int)r->attempts + 1);
	sqlite3_bind_int(st, 4, (int)r->hard_failures + 1);
	bind_text(st, 5, why);
	bind_text(st, 6, lost);
	n = db_run(q, ST_GIVEUP, "give up");
	pthread_mutex_lock(&q->lock);
	if (n > 0) {
		struct ment *e = ment_get(q, r->id);
		if (e && e->gen == r->gen)
			ment_set(q, r->id, r->gen, e->size, true);
		waiters_resolve(q, r->id, r->gen, false, -EIO);
	}
	job_release(q, job);
	pthread_mutex_unlock(&q->lock);
	pthread_mutex_unlock(&q->db_lock);
	if (n <= 0) {
		/* cancelled or superseded meanwhile: nothing was given up */
		if (lost)
			unlink(lost);
		free(lost);
		return;
	}
	if (lost)
		log_err("upload of '%s' given up after %u attempts: %s; its content is kept in '%s'",
			r->path, r->attempts + 1, why, lost);
	else if (fd >= 0)
		log_err("upload of '%s' given up after %u attempts: %s; its content could not be "
			"kept in '%s' (%s), it is still in '%s'", r->path, r->attempts + 1, why,
			q->lost_dir, strerror(-kerr), r->content_file);
	else
		log_err("upload of '%s' given up after %u attempts: %s", r->path,
			r->attempts + 1, why);
	free(lost);
	if (q->done)
		q->done(q->done_ctx, r->id, r->gen, err, r->path, r->md5);
}

/* Schedule the next attempt of @r at @next_try (ms) after a failure. */
static void finish_retry(struct upload_queue *q, struct upload_job *job, const struct urec *r,
			 unsigned hard, int64_t next_try, const char *why, int64_t resumed)
{
	sqlite3_stmt *st = q->st[ST_FAIL];

	pthread_mutex_lock(&q->db_lock);
	sqlite3_bind_int64(st, 1, u2i(r->id));
	sqlite3_bind_int64(st, 2, u2i(r->gen));
	sqlite3_bind_int(st, 3, (int)r->attempts + 1);
	sqlite3_bind_int(st, 4, (int)hard);
	sqlite3_bind_int64(st, 5, next_try);
	bind_text(st, 6, why);
	sqlite3_bind_int64(st, 7, resumed >= 0 ? resumed : r->last_resume);
	if (db_run(q, ST_FAIL, "record failure") < 0)
		hold(q, r->id, r->gen, next_try);
	pthread_mutex_lock(&q->lock);
	job_release(q, job);
	work_signal(q);
	pthread_mutex_unlock(&q->lock);
	pthread_mutex_unlock(&q->db_lock);
}

/* Nothing to record: free the slot (the record, if any, is picked again). */
static void finish_quiet(struct upload_queue *q, struct upload_job *job)
{
	pthread_mutex_lock(&q->lock);
	job_release(q, job);
	work_signal(q);
	pthread_mutex_unlock(&q->lock);
}

static void finish_defer(struct upload_queue *q, struct upload_job *job, const struct urec *r)
{
	pthread_mutex_lock(&q->db_lock);
	sqlite3_bind_int64(q->st[ST_DEFER], 1, u2i(r->id));
	sqlite3_bind_int64(q->st[ST_DEFER], 2, u2i(r->gen));
	sqlite3_bind_int64(q->st[ST_DEFER], 3, now_ms() + SETTLE_MS);
	if (db_run(q, ST_DEFER, "defer") < 0)
		hold(q, r->id, r->gen, now_ms() + SETTLE_MS);
	pthread_mutex_unlock(&q->db_lock);
	finish_quiet(q, job);
}

/*
 * An attempt failed with @err: retry later, pause, or give up. @resumed is
 * the resume_pos of this attempt's data POST, -1 when it sent none.
 */
static void finish_failed(struct upload_queue *q, struct upload_job *job, const struct urec *r,
			  const char *target, int fd, int err, int64_t resumed)
{
	enum fail_kind kind = err == JOB_NOCONTENT ? FAIL_PERMANENT : classify(err);
	bool counts = kind == FAIL_PERMANENT ||
		      (kind == FAIL_HARD && resumed >= 0 && resumed <= r->last_resume);
	unsigned hard = r->hard_failures + counts;
	unsigned limit = kind == FAIL_PERMANENT && PERMANENT_ATTEMPTS < q->max_attempts ?
			 PERMANENT_ATTEMPTS : q->max_attempts;
	char why[160], etext[96];
	int64_t delay;

	if (err == JOB_NOCONTENT) {
		err = -ENOENT;
		snprintf(etext, sizeof(etext), "its content file '%s' is missing", r->content_file);
	} else {
		err_text(err, etext, sizeof(etext));
	}
	snprintf(why, sizeof(why), "%s", etext);
	if (kind == FAIL_PAUSE) {
		pthread_mutex_lock(&q->lock);
		if (q->paused_until <= now_ms()) {
			int64_t pause = (int64_t)PAUSE_FIRST_MS << (q->pause_level < 4 ? q->pause_level : 4);
			if (pause > q->backoff_max_ms)
				pause = q->backoff_max_ms;
			if (q->pause_level == 0)
				log_err("the server rejected the login: %u uploads are paused (kept in "
					"the journal); run 'jottafs login' again, they resume by "
					"themselves", q->files);
			q->pause_level++;
			q->paused_until = now_ms() + pause;
		}
		pthread_mutex_unlock(&q->lock);
		finish_quiet(q, job);
		return;
	}
	if (counts && hard >= limit) {
		finish_give_up(q, job, r, fd, err, why);
		return;
	}
	if (err == -EHOSTDOWN) {
		/* offline (net/conn.h): an fsync waiting for it learns so now
		 * rather than after the outage; the upload stays queued */
		pthread_mutex_lock(&q->lock);
		waiters_resolve(q, r->id, r->gen, false, -EHOSTDOWN);
		pthread_mutex_unlock(&q->lock);
	}
	delay = upload_backoff_ms(r->attempts + 1, q->backoff_min_ms, q->backoff_max_ms,
				  (uint32_t)rnd_next(&job->rnd));
	/* Offline: upload_retry_now() restarts it when the service is back;
	 * the cap only covers a return that happened while this attempt ended. */
	if (err == -EHOSTDOWN && delay > OFFLINE_RETRY_MAX_MS)
		delay = OFFLINE_RETRY_MAX_MS;
	if ((r->attempts == 0 || counts) && err != -EHOSTDOWN)
		log_warn("upload of '%s' failed (attempt %u): %s; retrying in %.2f s",
			 target ? target : r->path, r->attempts + 1, etext, (double)delay / 1000.0);
	else
		log_debug("upload of '%s' failed (attempt %u): %s; retrying in %.2f s",
			  target ? target : r->path, r->attempts + 1, etext, (double)delay / 1000.0);
	finish_retry(q, job, r, hard, now_ms() + delay, why, resumed);
}

/*
 * Did an allocate with REJECT_CONFLICTS fail because of what is at the path?
 * The reference names the refusal (UniqueFileException) but not its status,
 * so any refusal of the request itself counts; transient failures do not.
 */
static bool refused_as_conflict(int err)
{
	return err == -EEXIST || err == -EINVAL || err == -EISDIR || err == -ENOTDIR;
}

/* Run one claimed record to an outcome. */
static void job_run(struct upload_queue *q, struct upload_job *job, struct urec *r)
{
	char *target = NULL;
	bool instant = false, reject = false;
	int64_t resumed = -1;
	struct job_flags f;
	int fd = -1, err;

	err = content_open(q, job, r, &fd);
	if (err == 0)
		err = choose_target(q, job, r, 0, &target, &reject);
	if (err == 0)
		err = transfer(q, job, r, target, reject, fd, &instant, &resumed);
	if (reject && refused_as_conflict(err)) {
		/* refused: look at the path, as for a file that has a base */
		log_debug("upload of '%s': the service refused a new file there (%s); "
			  "looking at what is there", target, strerror(-err));
		free(target);
		target = NULL;
		err = choose_target(q, job, r, err, &target, &reject);
		if (err == 0)
			err = transfer(q, job, r, target, false, fd, &instant, &resumed);
	}
	f = job_flags(q, job);
	if (err == 0 && f.cancelled) {
		/* landed although unlinked meanwhile: the caller's delete removes it */
		log_debug("upload of '%s' finished as it was cancelled", target);
		finish_quiet(q, job);
	} else if (err == 0 && f.renamed) {
		/* landed at the old path: the caller moves it; the record goes on at its new path */
		log_debug("upload of '%s' finished as it was renamed", target);
		finish_quiet(q, job);
	} else if (err == 0) {
		finish_done(q, job, r, target, instant, resumed);
	} else if (err == JOB_SKIP || f.cancelled || f.renamed || f.superseded || f.stopping) {
		finish_quiet(q, job);
	} else if (err == JOB_DEFER) {
		finish_defer(q, job, r);
	} else if (err == JOB_NOCONTENT) {
		finish_failed(q, job, r, target, -1, err, -1);
	} else {
		finish_failed(q, job, r, target, fd, err, resumed);
	}
	if (fd >= 0)
		close(fd);
	free(target);
}

static void *worker_main(void *arg)
{
	struct upload_job *job = arg;
	struct upload_queue *q = job->q;

	for (;;) {
		struct urec r;
		int64_t wake = -1;
		uint64_t epoch;
		int rc;

		pthread_mutex_lock(&q->lock);
		if (q->stopping) {
			pthread_mutex_unlock(&q->lock);
			break;
		}
		epoch = q->epoch;
		pthread_mutex_unlock(&q->lock);

		rc = pick(q, job, &r, &wake);
		if (rc > 0) {
			job_run(q, job, &r);
			urec_release(&r);
			continue;
		}
		if (rc < 0)
			wake = now_ms() + 1000;   /* journal trouble (logged): do not spin */
		pthread_mutex_lock(&q->lock);
		while (!q->stopping && q->epoch == epoch) {
			if (wake < 0) {
				pthread_cond_wait(&q->work_cv, &q->lock);
				continue;
			}
			struct timespec dl = deadline_in(wake - now_ms());
			if (pthread_cond_timedwait(&q->work_cv, &q->lock, &dl) == ETIMEDOUT)
				break;
		}
		pthread_mutex_unlock(&q->lock);
	}
	return NULL;
}
