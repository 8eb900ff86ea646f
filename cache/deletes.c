/*
 * cache/deletes.c — the background delete queue (cache/deletes.h): its
 * journal <cache_dir>/deletes.db (one row per pending delete, in the order
 * they were made), the in-memory mirror of it, the workers that apply the
 * deletes on the service, the folder-delete collapse, the flush that
 * orders a delete before what is made at its path later, and the filter
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

#define DELQ_VERSION     1
#define BUSY_MS          10000
#define QUIET_MS         1000      /* apply once no delete came for this long ... */
#define HOLD_MAX_MS      10000     /* ... or once one waited this long */
#define RETRY_MIN_MS     1000
#define RETRY_MAX_MS     60000
#define PERMANENT_TRIES  3         /* refusals that cannot change: given up after */
#define RECENT_SLOTS     1024      /* completed deletes remembered for listings */
#define RECENT_S         120       /* ... this long */
#define DEFAULT_WORKERS  4

enum stmt_id { ST_ADD, ST_DONE, ST_LOAD, ST__COUNT };

static const struct db_sql stmt_sql[ST__COUNT] = {
	[ST_ADD] = { "add", "INSERT INTO del (path, is_dir) VALUES (?1, ?2)" },
	[ST_DONE] = { "clear", "DELETE FROM del WHERE seq = ?1" },
	[ST_LOAD] = { "load", "SELECT seq, path, is_dir FROM del ORDER BY seq" },
};

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS del ("
	" seq    INTEGER PRIMARY KEY AUTOINCREMENT," /* order made */
	" path   TEXT NOT NULL,"                     /* server path under the mountpoint */
	" is_dir INTEGER NOT NULL"
	");";

enum dstate { D_QUEUED, D_RUNNING };

struct ditem {
	struct ditem *next;
	int64_t seq;
	char *path;
	bool is_dir;
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
	unsigned n;
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
static struct ditem *item_push(struct delq *q, int64_t seq, const char *path, bool is_dir)
{
	struct ditem *it = calloc(1, sizeof(*it));

	if (!it || !(it->path = strdup(path))) {
		free(it);
		return NULL;
	}
	it->seq = seq;
	it->is_dir = is_dir;
	it->state = D_QUEUED;
	it->added = clock_mono_ms();
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->n++;
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
		return;
	}
}

static int load_row(void *ctx, struct db_row *r)
{
	struct delq *q = ctx;
	const char *path = db_text(r, 1);

	if (!path || !*path)
		return 0;
	return item_push(q, db_int(r, 0), path, db_int(r, 2) != 0) ? 0 : -ENOMEM;
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
		log_info("%u delete%s left by the last mount will be applied", q->n,
			 q->n == 1 ? "" : "s");
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

/* ---- applying one delete ---- */

static bool permanent(int err)
{
	switch (err) {
	case -EINVAL: case -EPERM: case -ENAMETOOLONG: case -ENOTDIR: case -EISDIR:
	case -EROFS:
		return true;
	default:
		return false;
	}
}

/*
 * Record the outcome @err of running @it (lock held; it is D_RUNNING).
 * Returns true when the item is finished (freed).
 */
static bool item_outcome(struct delq *q, struct ditem *it, int err)
{
	if (err == -ENOENT)
		err = 0;        /* gone already: what we wanted */
	it->attempts++;
	it->tried = q->drain;
	if (err && permanent(err))
		it->refusals++;
	if (err && it->refusals < PERMANENT_TRIES) {
		int64_t d = backoff_ceiling_ms(it->attempts - 1, RETRY_MIN_MS, RETRY_MAX_MS);
		if (it->attempts == 1 && err != -EHOSTDOWN)
			log_warn("delete of '%s' failed: %s; retrying in the background", it->path,
				 strerror(-err));
		it->state = D_QUEUED;
		it->due = clock_mono_ms() + d;
		pthread_cond_broadcast(&q->cond);
		return false;
	}
	if (err)
		log_err("delete of '%s' given up after %u attempts: %s", it->path, it->attempts,
			strerror(-err));
	else
		recent_add(q, it->path);
	if (db_exec(q->db, ST_DONE, DB_ARGS(DB_INT(it->seq)), NULL, NULL) < 0)
		log_warn("delete of '%s' done but its journal record stays (applied again at "
			 "the next mount)", it->path);
	item_unlink(q, it);
	item_free(it);
	pthread_cond_broadcast(&q->cond);
	return true;
}

/* Run @it (D_RUNNING, taken by the caller) on the service; lock held on
 * entry and exit, released across the request. The request's error. */
static int item_run(struct delq *q, struct ditem *it)
{
	char *path = strdup(it->path);
	bool is_dir = it->is_dir;
	int err;

	if (!path)
		return -ENOMEM;
	pthread_mutex_unlock(&q->lock);
	err = jfs_delete(q->cfg.jfs, path, is_dir, q->cfg.hard_delete);
	if (!err || err == -ENOENT)
		log_debug("deleted '%s'%s", path, err ? " (gone already)" : "");
	if (!err && q->cfg.deleted)
		q->cfg.deleted(q->cfg.ctx);
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
		}
		if (when <= now)
			return it;
		if (wake < 0 || when - now < wake)
			wake = when - now;
	}
	*wake_ms = wake;
	return NULL;
}

static void *worker_main(void *arg)
{
	struct delq *q = arg;

	pthread_mutex_lock(&q->lock);
	while (!q->stopping) {
		int64_t wake = -1;
		struct ditem *it = next_due(q, &wake);

		if (!it) {
			if (wake < 0) {
				pthread_cond_wait(&q->cond, &q->lock);
			} else {
				struct timespec dl = clock_deadline_ms(wake);
				pthread_cond_timedwait(&q->cond, &q->lock, &dl);
			}
			continue;
		}
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
			log_err("cannot start a delete worker: %s", strerror(rc));
			return -rc;
		}
		q->nthreads++;
	}
	return 0;
}

/* Closing: has every pending delete been tried since? (lock held) */
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
		log_info("waiting up to %u s for %u pending delete%s", wait_s, q->n,
			 q->n == 1 ? "" : "s");
		q->drain = true;
		for (struct ditem *it = q->head; it; it = it->next)
			it->due = 0;
		pthread_cond_broadcast(&q->cond);
		/* each one tried once more at least: a service that does not
		 * answer (offline) does not hold the unmount for wait_s */
		while (!drained(q) &&
		       pthread_cond_timedwait(&q->cond, &q->lock, &dl) != ETIMEDOUT)
			;
		if (q->n)
			log_warn("%u delete%s left pending; they are applied at the next mount",
				 q->n, q->n == 1 ? "" : "s");
	}
	q->stopping = true;
	pthread_cond_broadcast(&q->cond);
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

int delq_add(struct delq *q, const char *path, bool is_dir)
{
	bool txn = false;
	int err = 0, n;

	pthread_mutex_lock(&q->lock);
	if (is_dir) {
		/* the folder delete covers the queued deletes below it */
		size_t len = strlen(path);
		for (struct ditem *it = q->head; it && !err; it = it->next) {
			if (it->state != D_QUEUED || strncmp(it->path, path, len) != 0 ||
			    it->path[len] != '/')
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
		n = db_exec(q->db, ST_ADD, DB_ARGS(DB_TEXT(path), DB_INT(is_dir)), NULL, NULL);
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
				if (it->state != D_QUEUED || strncmp(it->path, path, len) != 0 ||
				    it->path[len] != '/')
					continue;
				item_unlink(q, it);
				item_free(it);
				absorbed++;
			}
		}
		if (!item_push(q, seq, path, is_dir)) {
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

int delq_flush(struct delq *q, const char *path, bool subtree)
{
	int err = 0;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		struct ditem *it, *run = NULL;
		bool busy = false;

		for (it = q->head; it; it = it->next) {
			if (!path_in(it->path, path, subtree))
				continue;
			if (it->state == D_RUNNING) {
				busy = true;
			} else if (!run) {
				run = it;
			}
		}
		if (run) {
			run->state = D_RUNNING;
			err = item_run(q, run);
			if (!item_outcome(q, run, err) || (err && err != -ENOENT))
				break;  /* failed: it stays queued */
			err = 0;
			continue;
		}
		if (!busy)
			break;
		pthread_cond_wait(&q->cond, &q->lock);  /* a worker finishes it */
	}
	if (!err && *path) {
		/* made again here: listings show it again */
		for (unsigned i = 0; i < RECENT_SLOTS; i++) {
			struct recent *r = &q->recent[i];
			if (r->path && path_in(r->path, path, subtree)) {
				free(r->path);
				r->path = NULL;
			}
		}
	}
	pthread_mutex_unlock(&q->lock);
	return err;
}

/* Anything pending or confirmed lately? (lock held) */
static bool busy_locked(struct delq *q, time_t now)
{
	bool any = q->n != 0;

	for (unsigned i = 0; i < RECENT_SLOTS && !any; i++)
		any = q->recent[i].path && q->recent[i].at + RECENT_S >= now;
	return any;
}

bool delq_idle(struct delq *q)
{
	bool busy;

	pthread_mutex_lock(&q->lock);
	busy = busy_locked(q, time(NULL));
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
	any = busy_locked(q, now);
	if (any && asprintf(&full, "%s%s%s%s%s", dir, *dir ? "/" : "", sub, *sub ? "/" : "",
			    sname) < 0)
		full = NULL;
	if (full) {
		/* @full is the deleted path or below a deleted folder */
		for (struct ditem *it = q->head; it && !hide; it = it->next)
			hide = path_in(full, it->path, true);
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
