/*
 * cache/deletes.c — the background namespace queue (cache/deletes.h):
 * its journal <cache_dir>/deletes.db (one row per pending delete or folder
 * creation, in the order they were made), the in-memory mirror of it, the
 * workers that apply them on the service (in order where their paths
 * meet), the folder-delete collapse, the folder creations made needless
 * by an upload below them or carried by a deeper one, the flush that
 * orders them before what is made at their path later, and the filter
 * that keeps listings from resurrecting what is being deleted.
 */
#include "cache/deletes.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cache/db.h"
#include "lib/backoff.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "net/jfs.h"

#define DELQ_VERSION     2
#define BUSY_MS          10000
#define QUIET_MS         1000      /* apply once no delete came for this long ... */
#define HOLD_MAX_MS      10000     /* ... or once one waited this long */
#define RETRY_MIN_MS     1000
#define RETRY_MAX_MS     60000
#define PERMANENT_TRIES  3         /* refusals that cannot change: given up after */
#define RECENT_SLOTS     1024      /* completed deletes remembered for listings */
#define RECENT_S         120       /* ... this long */
#define DEFAULT_WORKERS  4
#define MKDIR_HOLD_MAX_MS 180000   /* a folder creation waits for uploads below it ... */
#define MKDIR_RECHECK_MS  500      /* ... asking this often whether any are pending */
#define MKDIR_GRACE_MS    1500     /* ... and until this long after the last one */

enum stmt_id { ST_ADD, ST_DONE, ST_LOAD, ST__COUNT };

static const struct db_sql stmt_sql[ST__COUNT] = {
	[ST_ADD] = { "add", "INSERT INTO del (path, is_dir, op, node) VALUES (?1, ?2, ?3, ?4)" },
	[ST_DONE] = { "clear", "DELETE FROM del WHERE seq = ?1" },
	[ST_LOAD] = { "load", "SELECT seq, path, is_dir, op, node FROM del ORDER BY seq" },
};

/* Version 1 had no op column: every row was a delete. */
static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS del ("
	" seq    INTEGER PRIMARY KEY AUTOINCREMENT," /* order made */
	" path   TEXT NOT NULL,"                     /* server path under the mountpoint */
	" is_dir INTEGER NOT NULL,"
	" op     INTEGER NOT NULL DEFAULT 0,"        /* enum dop */
	" node   INTEGER NOT NULL DEFAULT 0"         /* mkdir: the folder's index node */
	");";
static const char upgrade_v1_sql[] =
	"ALTER TABLE del ADD COLUMN op INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE del ADD COLUMN node INTEGER NOT NULL DEFAULT 0;";

enum dop { OP_DELETE = 0, OP_MKDIR = 1 };
enum dstate { D_QUEUED, D_RUNNING };

struct ditem {
	struct ditem *next;
	int64_t seq;
	char *path;
	bool is_dir;
	enum dop op;
	uint64_t node;              /* OP_MKDIR: the folder's node id (0: unknown) */
	struct ditem *carrier;      /* OP_MKDIR running as part of a deeper one's request */
	enum dstate state;
	int64_t added;              /* monotonic ms */
	int64_t due;                /* monotonic ms: not before (retries) */
	unsigned attempts, refusals;
	bool tried;                 /* attempted since the drain began */
};

struct recent {
	char *path;
	time_t at;                  /* wall seconds the delete was confirmed */
};

struct delq {
	struct delq_config cfg;     /* read-only after open */
	char *file;
	struct db *db;

	pthread_mutex_t lock;
	pthread_cond_t cond;        /* work or state changed (CLOCK_MONOTONIC waits) */
	/* protected by lock */
	struct ditem *head, *tail;
	unsigned n, nmkdir;
	/* folder creations wait while this says uploads are pending (delq_set_hold) */
	bool (*hold)(void *ctx);
	void *hold_ctx;
	unsigned hold_calls;        /* calls of hold running now */
	unsigned hold_waiters;      /* threads waiting for hold_calls to be 0 */
	bool held;                  /* what it said last (or lately) */
	int64_t held_until;         /* monotonic ms */
	int64_t last_add;           /* monotonic ms */
	bool drain;                 /* closing: everything is due now */
	bool stopping;
	struct recent recent[RECENT_SLOTS];
	unsigned recent_next;
	pthread_t *threads;
	unsigned nthreads;
};

static int migrate(struct db *db, int from, void *ctx)
{
	struct delq *q = ctx;

	if (from > DELQ_VERSION) {
		log_err("delete journal '%s' was written by a newer jottafs (version %d)",
			q->file, from);
		return -EPROTO;
	}
	if (from == 1)
		return db_script(db, upgrade_v1_sql, "add the op column");
	return db_script(db, schema_sql, "create tables");
}

static void item_free(struct ditem *it)
{
	if (it) {
		free(it->path);
		free(it);
	}
}

/* Append a new item (lock held, or not yet shared). */
static struct ditem *item_push(struct delq *q, int64_t seq, const char *path, bool is_dir,
			       enum dop op, uint64_t node)
{
	struct ditem *it = calloc(1, sizeof(*it));

	if (!it || !(it->path = strdup(path))) {
		free(it);
		return NULL;
	}
	it->seq = seq;
	it->is_dir = is_dir;
	it->op = op;
	it->node = node;
	it->state = D_QUEUED;
	it->added = clock_mono_ms();
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->n++;
	if (op == OP_MKDIR)
		q->nmkdir++;
	return it;
}

/* Unlink @it from the list (lock held); the caller frees it. */
static void item_unlink(struct delq *q, struct ditem *it)
{
	struct ditem *prev = NULL;

	for (struct ditem *p = q->head; p; prev = p, p = p->next) {
		if (p != it)
			continue;
		if (prev)
			prev->next = p->next;
		else
			q->head = p->next;
		if (q->tail == p)
			q->tail = prev;
		q->n--;
		if (p->op == OP_MKDIR)
			q->nmkdir--;
		return;
	}
}

static int load_row(void *ctx, struct db_row *r)
{
	struct delq *q = ctx;
	const char *path = db_text(r, 1);

	if (!path || !*path)
		return 0;
	int op = (int)db_int(r, 3);

	if (op != OP_DELETE && op != OP_MKDIR) {
		log_warn("namespace journal: unknown operation %d on '%s' skipped", op, path);
		return 0;
	}
	return item_push(q, db_int(r, 0), path, db_int(r, 2) != 0, (enum dop)op,
			 (uint64_t)db_int(r, 4)) ? 0 : -ENOMEM;
}

int delq_open(const struct delq_config *cfg, struct delq **out)
{
	struct delq *q = calloc(1, sizeof(*q));
	struct db_spec spec = {
		.label = "delete journal", .durable = true, .busy_ms = BUSY_MS,
		.version = DELQ_VERSION, .migrate = migrate, .sql = stmt_sql, .nsql = ST__COUNT,
	};
	int err;

	*out = NULL;
	if (!q)
		return -ENOMEM;
	q->cfg = *cfg;
	q->cfg.cache_dir = NULL;
	q->cfg.workers = cfg->workers ? cfg->workers : DEFAULT_WORKERS;
	pthread_mutex_init(&q->lock, NULL);
	clock_cond_init(&q->cond);
	if (asprintf(&q->file, "%s/deletes.db", cfg->cache_dir) < 0) {
		q->file = NULL;
		delq_close(q, 0);
		return -ENOMEM;
	}
	spec.path = q->file;
	spec.ctx = q;
	err = db_open(&spec, &q->db);
	if (!err) {
		int n = db_exec(q->db, ST_LOAD, DB_NOARGS, load_row, q);
		err = n < 0 ? n : 0;
	}
	if (err) {
		delq_close(q, 0);
		return err;
	}
	if (q->n)
		log_info("%u namespace change%s (deletes, folder creations) left by the last "
			 "mount will be applied", q->n, q->n == 1 ? "" : "s");
	*out = q;
	return 0;
}

/* ---- matching (the service's names are case-insensitive) ---- */

/* Is @path @base itself, or (when @below) a path under it? */
static bool path_in(const char *path, const char *base, bool below)
{
	size_t n = strlen(base);

	if (!n)
		return below;   /* the root: everything is below it */
	if (strncasecmp(path, base, n) != 0)
		return false;
	return path[n] == '\0' || (below && path[n] == '/');
}

/* Remember that the delete of @path was confirmed (lock held). */
static void recent_add(struct delq *q, const char *path)
{
	struct recent *r = &q->recent[q->recent_next++ % RECENT_SLOTS];

	free(r->path);
	r->path = strdup(path);
	r->at = time(NULL);
}

/* ---- applying one operation ---- */

static bool permanent(int err, enum dop op)
{
	switch (err) {
	case -EINVAL: case -EPERM: case -ENAMETOOLONG: case -ENOTDIR: case -EISDIR:
	case -EROFS:
		return true;
	case -EEXIST:
		return op == OP_MKDIR;  /* a file holds the name */
	default:
		return false;
	}
}

static const char *op_name(const struct ditem *it)
{
	return it->op == OP_MKDIR ? "creation of folder" : "delete of";
}

/* Forget @it, done (@ok) or given up (lock held): its journal record, the
 * folder's pending mark in the index, and the item. */
static void item_finish(struct delq *q, struct ditem *it, bool ok)
{
	if (ok && it->op == OP_DELETE)
		recent_add(q, it->path);
	if (db_exec(q->db, ST_DONE, DB_ARGS(DB_INT(it->seq)), NULL, NULL) < 0)
		log_warn("%s '%s' done but its journal record stays (applied again at "
			 "the next mount)", op_name(it), it->path);
	if (it->op == OP_MKDIR && it->node && q->cfg.made)
		q->cfg.made(q->cfg.ctx, it->node);
	item_unlink(q, it);
	item_free(it);
}

/* Do paths @a and @b meet (one is the other or below it)? */
static bool overlap(const char *a, const char *b)
{
	return path_in(a, b, true) || path_in(b, a, true);
}

/* Must @it wait for an item made before it (lock held)? Operations whose
 * paths meet apply in the order they were made; a folder creation does not
 * wait for those of the folders above it (its request makes them too). */
static bool blocked(struct delq *q, const struct ditem *it)
{
	for (struct ditem *e = q->head; e && e != it; e = e->next) {
		if (!overlap(e->path, it->path))
			continue;
		if (it->op == OP_MKDIR && e->op == OP_MKDIR && path_in(it->path, e->path, true))
			continue;
		return true;
	}
	return false;
}

/*
 * The creation of folder @it is due: one request for the deepest queued
 * creation below it (within @scope when not NULL) makes @it and every folder
 * between (mkDir is mkdir -p); @scope NULL: @it itself. Returns the
 * item to run; the queued creations of the folders above it are marked as
 * carried by it (lock held).
 */
static struct ditem *mkdir_carry(struct delq *q, struct ditem *it, const char *scope)
{
	struct ditem *best = it;

	for (struct ditem *d = q->head; d && scope; d = d->next)
		if (d->op == OP_MKDIR && d->state == D_QUEUED && d != best &&
		    path_in(d->path, best->path, true) && path_in(d->path, scope, true))
			best = d;
	if (best != it && blocked(q, best))
		best = it;
	for (struct ditem *a = q->head; a; a = a->next)
		if (a != best && a->op == OP_MKDIR && a->state == D_QUEUED &&
		    path_in(best->path, a->path, true)) {
			a->state = D_RUNNING;
			a->carrier = best;
		}
	return best;
}

/*
 * Record the outcome @err of running @it (lock held; it is D_RUNNING).
 * Returns true when the item is finished (freed).
 */
static bool item_outcome(struct delq *q, struct ditem *it, int err)
{
	if (err == -ENOENT && it->op == OP_DELETE)
		err = 0;        /* gone already: what we wanted */
	it->attempts++;
	it->tried = q->drain;
	if (err && permanent(err, it->op))
		it->refusals++;
	if (err && it->refusals < PERMANENT_TRIES) {
		int64_t d = backoff_ceiling_ms(it->attempts - 1, RETRY_MIN_MS, RETRY_MAX_MS);
		if (it->attempts == 1 && err != -EHOSTDOWN)
			log_warn("%s '%s' failed: %s; retrying in the background", op_name(it),
				 it->path, strerror(-err));
		it->state = D_QUEUED;
		it->due = clock_mono_ms() + d;
		for (struct ditem *a = q->head; a; a = a->next)
			if (a->carrier == it) {
				a->carrier = NULL;
				a->state = D_QUEUED;
				a->due = it->due;
			}
		pthread_cond_broadcast(&q->cond);
		return false;
	}
	if (err)
		log_err("%s '%s' given up after %u attempts: %s", op_name(it), it->path,
			it->attempts, strerror(-err));
	for (struct ditem *a = q->head, *next; a; a = next) {
		next = a->next;
		if (a->carrier == it)
			item_finish(q, a, !err);
	}
	item_finish(q, it, !err);
	pthread_cond_broadcast(&q->cond);
	return true;
}

/* Run @it (D_RUNNING, taken by the caller) on the service; lock held on
 * entry and exit, released across the request. The request's error. */
static int item_run(struct delq *q, struct ditem *it)
{
	char *path = strdup(it->path);
	bool is_dir = it->is_dir;
	enum dop op = it->op;
	int err;

	if (!path)
		return -ENOMEM;
	pthread_mutex_unlock(&q->lock);
	if (op == OP_MKDIR) {
		err = jfs_mkdir(q->cfg.jfs, path);
		if (!err)
			log_debug("made folder '%s'", path);
	} else {
		err = jfs_delete(q->cfg.jfs, path, is_dir, q->cfg.hard_delete);
		if (!err || err == -ENOENT)
			log_debug("deleted '%s'%s", path, err ? " (gone already)" : "");
		if (!err && q->cfg.deleted)
			q->cfg.deleted(q->cfg.ctx);
	}
	free(path);
	pthread_mutex_lock(&q->lock);
	return err;
}

/* ---- the workers ---- */

/* The next item a worker may run now, or NULL with *wake_ms set (-1: none). */
static struct ditem *next_due(struct delq *q, int64_t *wake_ms)
{
	int64_t now = clock_mono_ms(), wake = -1;

	for (struct ditem *it = q->head; it; it = it->next) {
		if (it->state != D_QUEUED)
			continue;
		int64_t when = it->due;
		if (!q->drain) {
			/* wait for the burst to end (an rmdir may absorb it) */
			int64_t quiet = q->last_add + QUIET_MS, hold = it->added + HOLD_MAX_MS;
			int64_t t = quiet < hold ? quiet : hold;
			if (t > when)
				when = t;
			/* a folder creation waits while uploads are pending: one
			 * below it makes the folder (allocate makes parents) */
			if (it->op == OP_MKDIR && q->held && now < it->added + MKDIR_HOLD_MAX_MS) {
				int64_t until = it->added + MKDIR_HOLD_MAX_MS;
				int64_t t2 = now + MKDIR_RECHECK_MS < until ? now + MKDIR_RECHECK_MS
									    : until;
				if (t2 > when)
					when = t2;
			}
		}
		if (when <= now && !blocked(q, it))
			return it;
		if (when <= now)
			continue;       /* woken when what it waits for ends */
		if (wake < 0 || when - now < wake)
			wake = when - now;
	}
	*wake_ms = wake;
	return NULL;
}

/* Ask the hold hook again (lock held, released across the call). */
static void hold_refresh(struct delq *q)
{
	bool (*fn)(void *) = q->hold;
	void *ctx = q->hold_ctx;
	bool held;

	if (!fn || !q->nmkdir || q->drain) {
		q->held = false;
		return;
	}
	q->hold_calls++;
	pthread_mutex_unlock(&q->lock);
	held = fn(ctx);
	pthread_mutex_lock(&q->lock);
	q->hold_calls--;
	/* an upload leaves the count a moment before its done callback
	 * (delq_made) runs: the hold outlasts the last pending one a little */
	if (held)
		q->held_until = clock_mono_ms() + MKDIR_GRACE_MS;
	q->held = held || clock_mono_ms() < q->held_until;
	if (!q->hold_calls && q->hold_waiters)
		pthread_cond_broadcast(&q->cond);       /* delq_set_hold, delq_close */
}

static void *worker_main(void *arg)
{
	struct delq *q = arg;

	pthread_mutex_lock(&q->lock);
	while (!q->stopping) {
		int64_t wake = -1;
		struct ditem *it;

		hold_refresh(q);
		it = next_due(q, &wake);
		if (!it) {
			if (wake < 0) {
				pthread_cond_wait(&q->cond, &q->lock);
			} else {
				struct timespec dl = clock_deadline_ms(wake);
				pthread_cond_timedwait(&q->cond, &q->lock, &dl);
			}
			continue;
		}
		if (it->op == OP_MKDIR)
			it = mkdir_carry(q, it, "");
		it->state = D_RUNNING;
		int err = item_run(q, it);
		item_outcome(q, it, err);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int delq_start(struct delq *q)
{
	q->threads = calloc(q->cfg.workers, sizeof(*q->threads));
	if (!q->threads)
		return -ENOMEM;
	for (unsigned i = 0; i < q->cfg.workers; i++) {
		int rc = pthread_create(&q->threads[i], NULL, worker_main, q);
		if (rc) {
			log_err("cannot start a namespace worker: %s", strerror(rc));
			return -rc;
		}
		q->nthreads++;
	}
	return 0;
}

/* Closing: has every pending operation been tried since? (lock held) */
static bool drained(struct delq *q)
{
	for (struct ditem *it = q->head; it; it = it->next)
		if (it->state == D_RUNNING || !it->tried)
			return false;
	return true;
}

void delq_close(struct delq *q, unsigned wait_s)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	if (q->nthreads && q->n && wait_s) {
		struct timespec dl = clock_deadline_ms((int64_t)wait_s * 1000);
		log_info("waiting up to %u s for %u pending namespace change%s", wait_s, q->n,
			 q->n == 1 ? "" : "s");
		q->drain = true;
		q->held = false;
		for (struct ditem *it = q->head; it; it = it->next)
			it->due = 0;
		pthread_cond_broadcast(&q->cond);
		/* each one tried once more at least: a service that does not
		 * answer (offline) does not hold the unmount for wait_s */
		while (!drained(q) &&
		       pthread_cond_timedwait(&q->cond, &q->lock, &dl) != ETIMEDOUT)
			;
		if (q->n)
			log_warn("%u namespace change%s left pending; they are applied at the "
				 "next mount", q->n, q->n == 1 ? "" : "s");
	}
	q->stopping = true;
	pthread_cond_broadcast(&q->cond);
	q->hold_waiters++;
	while (q->hold_calls)
		pthread_cond_wait(&q->cond, &q->lock);
	q->hold_waiters--;
	pthread_mutex_unlock(&q->lock);
	for (unsigned i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	free(q->threads);
	while (q->head) {
		struct ditem *it = q->head;
		q->head = it->next;
		item_free(it);
	}
	for (unsigned i = 0; i < RECENT_SLOTS; i++)
		free(q->recent[i].path);
	db_close(q->db);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q->file);
	free(q);
}

/* ---- the caller side ---- */

/* Is queued delete @it below folder @path (@len bytes)? */
static bool absorbed_by(const struct ditem *it, const char *path, size_t len)
{
	return it->op == OP_DELETE && it->state == D_QUEUED &&
	       strncmp(it->path, path, len) == 0 && it->path[len] == '/';
}

int delq_add(struct delq *q, const char *path, bool is_dir)
{
	bool txn = false;
	int err = 0, n;

	pthread_mutex_lock(&q->lock);
	if (is_dir) {
		/* the folder delete covers the queued deletes below it */
		size_t len = strlen(path);
		for (struct ditem *it = q->head; it && !err; it = it->next) {
			if (!absorbed_by(it, path, len))
				continue;
			if (!txn) {
				err = db_begin(q->db);
				txn = !err;
			}
			if (!err && db_exec(q->db, ST_DONE, DB_ARGS(DB_INT(it->seq)), NULL,
					    NULL) < 0)
				err = -EIO;
		}
	}
	if (!err) {
		n = db_exec(q->db, ST_ADD, DB_ARGS(DB_TEXT(path), DB_INT(is_dir),
						   DB_INT(OP_DELETE), DB_INT(0)), NULL, NULL);
		if (n < 0)
			err = n;
	}
	int64_t seq = err ? 0 : db_last_rowid(q->db);
	if (txn)
		err = db_end(q->db, err);
	if (!err) {
		unsigned absorbed = 0;
		if (is_dir) {
			size_t len = strlen(path);
			for (struct ditem *it = q->head, *next; it; it = next) {
				next = it->next;
				if (!absorbed_by(it, path, len))
					continue;
				item_unlink(q, it);
				item_free(it);
				absorbed++;
			}
		}
		if (!item_push(q, seq, path, is_dir, OP_DELETE, 0)) {
			/* not queued after all: the caller deletes it itself */
			db_exec(q->db, ST_DONE, DB_ARGS(DB_INT(seq)), NULL, NULL);
			err = -ENOMEM;
		}
		q->last_add = clock_mono_ms();
		if (absorbed)
			log_debug("delete of folder '%s' absorbs %u queued deletes below it", path,
				  absorbed);
		pthread_cond_broadcast(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
	return err;
}

int delq_mkdir(struct delq *q, const char *path, uint64_t node)
{
	int n;

	pthread_mutex_lock(&q->lock);
	n = db_exec(q->db, ST_ADD, DB_ARGS(DB_TEXT(path), DB_INT(1), DB_INT(OP_MKDIR),
					   DB_U64(node)), NULL, NULL);
	if (n >= 0 && !item_push(q, db_last_rowid(q->db), path, true, OP_MKDIR, node)) {
		db_exec(q->db, ST_DONE, DB_ARGS(DB_INT(db_last_rowid(q->db))), NULL, NULL);
		n = -ENOMEM;
	}
	if (n >= 0) {
		q->last_add = clock_mono_ms();
		pthread_cond_broadcast(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
	return n < 0 ? n : 0;
}

/* Run @run in the caller (lock held); false when it failed (it stays
 * queued, *err says why). */
static bool run_here(struct delq *q, struct ditem *run, int *err)
{
	run->state = D_RUNNING;
	*err = item_run(q, run);
	if (!item_outcome(q, run, *err) || (*err && *err != -ENOENT))
		return false;
	*err = 0;
	return true;
}

/* Confirmed deletes at @path (and below it when @subtree) no longer hide
 * it from listings (lock held). */
static void recent_forget(struct delq *q, const char *path, bool subtree)
{
	for (unsigned i = 0; i < RECENT_SLOTS; i++) {
		struct recent *r = &q->recent[i];
		if (r->path && path_in(r->path, path, subtree)) {
			free(r->path);
			r->path = NULL;
		}
	}
}

/* What delq_flush() applies: the items at @path (or below it, @subtree). */
static bool at_path(const struct ditem *it, const char *path, bool subtree)
{
	return path_in(it->path, path, subtree);
}

/* What delq_flush_above() applies: the deletes at @path or above it. */
static bool delete_above(const struct ditem *it, const char *path, bool subtree)
{
	(void)subtree;
	return it->op == OP_DELETE && path_in(path, it->path, true);
}

/* Apply, in the caller, the pending items @match picks, waiting for those
 * a worker runs; stop at the first failure (it stays queued). Lock held. */
static int flush_where(struct delq *q, bool (*match)(const struct ditem *, const char *, bool),
		       const char *path, bool subtree)
{
	int err = 0;

	for (;;) {
		struct ditem *it, *run = NULL;
		bool busy = false;

		for (it = q->head; it; it = it->next) {
			if (!match(it, path, subtree))
				continue;
			if (it->state == D_RUNNING)
				busy = true;
			else if (!run)
				run = it;
		}
		if (run) {
			if (run->op == OP_MKDIR)
				run = mkdir_carry(q, run, subtree ? path : NULL);
			if (!run_here(q, run, &err))
				break;
			continue;
		}
		if (!busy)
			break;
		pthread_cond_wait(&q->cond, &q->lock);  /* a worker finishes it */
	}
	return err;
}

int delq_flush(struct delq *q, const char *path, bool subtree)
{
	int err;

	pthread_mutex_lock(&q->lock);
	err = flush_where(q, at_path, path, subtree);
	if (!err && *path)
		recent_forget(q, path, subtree);        /* made again here: listings show it again */
	pthread_mutex_unlock(&q->lock);
	return err;
}

int delq_flush_above(struct delq *q, const char *path)
{
	int err = 0;

	pthread_mutex_lock(&q->lock);
	if (q->n > q->nmkdir)   /* deletes are pending */
		err = flush_where(q, delete_above, path, false);
	if (!err)
		recent_forget(q, path, false);  /* made again here: listings show it */
	pthread_mutex_unlock(&q->lock);
	return err;
}

/* Is @it the creation of a folder above @path (strictly)? */
static bool mkdir_above(const struct ditem *it, const char *path)
{
	return it->op == OP_MKDIR && path_in(path, it->path, true) && !path_in(it->path, path, false);
}

int delq_flush_parents(struct delq *q, const char *path)
{
	int err = 0;

	pthread_mutex_lock(&q->lock);
	while (q->nmkdir) {
		struct ditem *run = NULL;
		bool busy = false;

		/* the deepest one makes the others */
		for (struct ditem *it = q->head; it; it = it->next) {
			if (!mkdir_above(it, path))
				continue;
			if (it->state == D_RUNNING)
				busy = true;
			else if (!run || strlen(it->path) > strlen(run->path))
				run = it;
		}
		if (run) {
			run = mkdir_carry(q, run, NULL);
			if (!run_here(q, run, &err))
				break;
			continue;
		}
		if (!busy)
			break;
		pthread_cond_wait(&q->cond, &q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return err;
}

void delq_made(struct delq *q, const char *path)
{
	unsigned n = 0;
	bool txn = false;

	pthread_mutex_lock(&q->lock);
	for (struct ditem *it = q->head, *next; it && q->nmkdir; it = next) {
		next = it->next;
		if (!mkdir_above(it, path) || it->state != D_QUEUED)
			continue;
		if (!txn)
			txn = db_begin(q->db) == 0;
		item_finish(q, it, true);
		n++;
	}
	if (txn && db_end(q->db, 0))
		log_warn("the journal of folder creations made by '%s' could not be updated "
			 "(they are sent again at the next mount)", path);
	if (n) {
		log_debug("'%s' is on the service: %u folder creation%s above it not needed",
			  path, n, n == 1 ? "" : "s");
		pthread_cond_broadcast(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
}

int delq_unmake(struct delq *q, const char *path)
{
	int r = 0;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		struct ditem *mk = NULL;
		bool below = false;

		for (struct ditem *it = q->head; it; it = it->next) {
			if (it->op == OP_MKDIR && path_in(it->path, path, false))
				mk = it;
			else if (path_in(it->path, path, true))
				below = true;
		}
		if (!mk)
			break;
		if (mk->state == D_RUNNING) {
			pthread_cond_wait(&q->cond, &q->lock);  /* its request ends */
			continue;
		}
		/* never sent: forget it; a queued operation below it (an upload
		 * cancelled by the unlink, whose delete is queued) may have made
		 * the folder, so then the caller still deletes it */
		if (db_exec(q->db, ST_DONE, DB_ARGS(DB_INT(mk->seq)), NULL, NULL) < 0) {
			r = -EIO;
			break;
		}
		item_unlink(q, mk);
		item_free(mk);
		pthread_cond_broadcast(&q->cond);
		r = below ? 0 : 1;
		break;
	}
	pthread_mutex_unlock(&q->lock);
	return r;
}

void delq_set_hold(struct delq *q, bool (*hold)(void *ctx), void *ctx)
{
	pthread_mutex_lock(&q->lock);
	q->hold_waiters++;
	while (q->hold_calls)
		pthread_cond_wait(&q->cond, &q->lock);
	q->hold_waiters--;
	q->hold = hold;
	q->hold_ctx = ctx;
	if (!hold)
		q->held = false;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

/* Any delete confirmed lately? (lock held) */
static bool recent_any(struct delq *q, time_t now)
{
	bool any = false;

	for (unsigned i = 0; i < RECENT_SLOTS && !any; i++)
		any = q->recent[i].path && q->recent[i].at + RECENT_S >= now;
	return any;
}

/* Anything pending or confirmed lately? (lock held) */
static bool busy_locked(struct delq *q, time_t now)
{
	return q->n != 0 || recent_any(q, now);
}

bool delq_idle(struct delq *q)
{
	bool busy;

	pthread_mutex_lock(&q->lock);
	busy = busy_locked(q, time(NULL));
	pthread_mutex_unlock(&q->lock);
	return !busy;
}

bool delq_deletes_idle(struct delq *q)
{
	bool busy;

	pthread_mutex_lock(&q->lock);
	busy = q->n > q->nmkdir || recent_any(q, time(NULL));
	pthread_mutex_unlock(&q->lock);
	return !busy;
}

bool delq_hides(struct delq *q, const char *dir, const char *sub, const char *sname,
		time_t listed_at)
{
	time_t now = time(NULL);
	char *full = NULL;
	bool hide = false, any;

	pthread_mutex_lock(&q->lock);
	any = q->n > q->nmkdir || recent_any(q, now);
	if (any && asprintf(&full, "%s%s%s%s%s", dir, *dir ? "/" : "", sub, *sub ? "/" : "",
			    sname) < 0)
		full = NULL;
	if (full) {
		/* @full is the deleted path or below a deleted folder */
		for (struct ditem *it = q->head; it && !hide; it = it->next)
			hide = it->op == OP_DELETE && path_in(full, it->path, true);
		for (unsigned i = 0; i < RECENT_SLOTS && !hide; i++) {
			struct recent *r = &q->recent[i];
			hide = r->path && r->at >= listed_at && r->at + RECENT_S >= now &&
			       path_in(full, r->path, true);
		}
	}
	pthread_mutex_unlock(&q->lock);
	free(full);
	return hide;
}

void delq_retry_now(struct delq *q)
{
	pthread_mutex_lock(&q->lock);
	for (struct ditem *it = q->head; it; it = it->next) {
		if (it->attempts) {
			it->due = 0;
			it->attempts = 0;
		}
	}
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

unsigned delq_pending(struct delq *q)
{
	unsigned n;

	pthread_mutex_lock(&q->lock);
	n = q->n;
	pthread_mutex_unlock(&q->lock);
	return n;
}

void delq_counts(struct delq *q, unsigned *deletes, unsigned *mkdirs)
{
	pthread_mutex_lock(&q->lock);
	*deletes = q->n - q->nmkdir;
	*mkdirs = q->nmkdir;
	pthread_mutex_unlock(&q->lock);
}

bool delq_mkdir_pending(struct delq *q, uint64_t node)
{
	bool r = false;

	pthread_mutex_lock(&q->lock);
	for (struct ditem *it = q->head; it && !r; it = it->next)
		r = it->op == OP_MKDIR && it->node == node;
	pthread_mutex_unlock(&q->lock);
	return r;
}
