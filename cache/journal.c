/*
 * cache/journal.c — the durable upload journal: <cache_dir>/journal.db
 * (SQLite, WAL, synchronous=FULL), one row per node with a pending or
 * given-up upload. It owns every SQL statement of the upload module, the
 * mapping of SQLite errors, and the records it could not write (a full
 * disk): landed uploads whose rows wait to be cleared and failed ones held
 * back from being picked at once again. See cache/upload_int.h for the
 * functions and the lock (q->db_lock) every one of them is called under.
 *
 * One record per node id: a newer generation replaces the row (upsert),
 * so the journal never holds stale content for a node.
 */
#include "cache/upload_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/privdir.h"

#define BUSY_TIMEOUT_MS    10000
#define JOURNAL_VERSION    1
#define DB_TROUBLE_MIN_MS  1000    /* pause after a journal write failed (disk full) ... */
#define DB_TROUBLE_MAX_MS  16000   /* ... doubling up to this */

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

/*
 * A record the journal could not be updated for (disk full), held in
 * memory: a landed upload whose record is to be cleared (journal_clear
 * needs the rest), or a failed one not to be picked before @not_before
 * (monotonic ms).
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

struct journal {
	char *cache_dir;                    /* for messages */
	sqlite3 *db;
	sqlite3_stmt *st[ST__COUNT];
	/* The journal cannot be written (disk full): said once per episode;
	 * held records are written back from trouble_until (monotonic). */
	int64_t trouble_until;
	unsigned trouble_level;
	/* Uploads that landed but whose record could not be cleared (never
	 * picked again, cleared when the journal can be written), and failed
	 * ones whose retry time could not be written. */
	struct uncleared *uncleared;
	unsigned n_uncleared;
};

int64_t journal_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- SQLite calls ---- */

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
 * trouble_until (1 s doubling to 16 s).
 */
static int db_fail(struct journal *j, int rc, const char *what)
{
	if ((rc & 0xff) == SQLITE_FULL || (rc & 0xff) == SQLITE_IOERR) {
		int64_t pause = (int64_t)DB_TROUBLE_MIN_MS << (j->trouble_level < 5 ?
							       j->trouble_level : 5);
		if (pause > DB_TROUBLE_MAX_MS)
			pause = DB_TROUBLE_MAX_MS;
		if (!j->trouble_level)
			log_err("upload journal '%s/journal.db': %s failed: %s; finished uploads "
				"are cleared when it can be written again", j->cache_dir, what,
				j->db ? sqlite3_errmsg(j->db) : sqlite3_errstr(rc));
		else
			log_debug("upload journal: %s failed again: %s", what,
				  j->db ? sqlite3_errmsg(j->db) : sqlite3_errstr(rc));
		j->trouble_level++;
		j->trouble_until = clock_mono_ms() + pause;
		return db_errno(rc);
	}
	log_err("upload journal '%s/journal.db': %s failed: %s", j->cache_dir, what,
		j->db ? sqlite3_errmsg(j->db) : sqlite3_errstr(rc));
	return db_errno(rc);
}

static void db_reset(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Run a bound write statement to completion. Returns the number of changed rows or -errno. */
static int db_run(struct journal *j, enum stmt_id id, const char *what)
{
	sqlite3_stmt *st = j->st[id];
	int rc = sqlite3_step(st);
	int changes = sqlite3_changes(j->db);

	db_reset(st);
	if (rc != SQLITE_DONE)
		return db_fail(j, rc, what);
	if (j->trouble_level && id != ST_BEGIN && id != ST_ROLLBACK &&
	    sqlite3_get_autocommit(j->db)) {
		j->trouble_level = 0;
		j->trouble_until = 0;
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

/* Bind (id, gen) of a record as parameters 1 and 2 of @st. */
static sqlite3_stmt *bind_rec(struct journal *j, enum stmt_id s, uint64_t id, uint64_t gen)
{
	sqlite3_stmt *st = j->st[s];

	sqlite3_bind_int64(st, 1, u2i(id));
	sqlite3_bind_int64(st, 2, u2i(gen));
	return st;
}

/* ---- open / close / load ---- */

static int journal_init(struct journal *j)
{
	char *file = NULL, *mode = NULL;
	sqlite3_stmt *st = NULL;
	int rc, version = -1, i;

	if (asprintf(&file, "%s/journal.db", j->cache_dir) < 0)
		return -ENOMEM;
	/* 0600 with its -wal and -shm, never through a symlink (lib/privdir.h) */
	rc = privdir_sqlite_files(file);
	if (rc) {
		char why[PATH_MAX + 200];
		log_err("upload journal: %s", privdir_file_error(file, rc, why, sizeof(why)));
		free(file);
		return rc;
	}
	rc = sqlite3_open_v2(file, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			     SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE | SQLITE_OPEN_NOFOLLOW,
			     NULL);
	free(file);
	if (rc != SQLITE_OK)
		return db_fail(j, rc, "open");
	sqlite3_busy_timeout(j->db, BUSY_TIMEOUT_MS);
	rc = sqlite3_prepare_v2(j->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		mode = strdup((const char *)sqlite3_column_text(st, 0) ?: "");
	sqlite3_finalize(st);
	if (!mode || strcmp(mode, "wal") != 0) {
		log_err("upload journal '%s/journal.db': cannot use WAL mode (got '%s')",
			j->cache_dir, mode ? mode : "?");
		free(mode);
		return -EIO;
	}
	free(mode);
	rc = sqlite3_exec(j->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return db_fail(j, rc, "PRAGMA synchronous");
	rc = sqlite3_prepare_v2(j->db, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version < 0)
		return db_fail(j, rc, "PRAGMA user_version");
	if (version > JOURNAL_VERSION) {
		log_err("upload journal '%s/journal.db' was written by a newer jottafs "
			"(version %d); use that version or remove pending uploads by hand",
			j->cache_dir, version);
		return -EPROTO;
	}
	if (version < JOURNAL_VERSION) {
		char sql[sizeof(schema_sql) + 64];
		snprintf(sql, sizeof(sql), "BEGIN IMMEDIATE;%sPRAGMA user_version=%d;COMMIT;",
			 schema_sql, JOURNAL_VERSION);
		rc = sqlite3_exec(j->db, sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			int err = db_fail(j, rc, "create tables");
			sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
			return err;
		}
		/* the new journal file must survive a crash: make its name durable */
		int dfd = open(j->cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	for (i = 0; i < ST__COUNT; i++) {
		rc = sqlite3_prepare_v3(j->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					&j->st[i], NULL);
		if (rc != SQLITE_OK)
			return db_fail(j, rc, "prepare");
	}
	return 0;
}

int journal_open(const char *cache_dir, struct journal **out)
{
	struct journal *j = calloc(1, sizeof(*j));
	int err;

	*out = NULL;
	if (!j)
		return -ENOMEM;
	j->cache_dir = strdup(cache_dir);
	err = j->cache_dir ? journal_init(j) : -ENOMEM;
	if (err) {
		journal_close(j);
		return err;
	}
	*out = j;
	return 0;
}

int journal_load(struct journal *j,
		 int (*fn)(void *ctx, uint64_t id, uint64_t gen, int64_t size, bool given_up),
		 void *ctx)
{
	sqlite3_stmt *st = j->st[ST_LOAD];
	int rc, err = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *state = (const char *)sqlite3_column_text(st, 3);
		err = fn(ctx, i2u(sqlite3_column_int64(st, 0)), i2u(sqlite3_column_int64(st, 1)),
			 sqlite3_column_int64(st, 2), state && strcmp(state, "given-up") == 0);
		if (err)
			break;
	}
	db_reset(st);
	if (!err && rc != SQLITE_DONE)
		err = db_fail(j, rc, "load");
	return err;
}

static void uncleared_flush(struct journal *j);

static void uncleared_free(struct uncleared *u)
{
	free(u->path);
	free(u);
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	/* a last try for landed uploads whose records could not be cleared */
	if (j->db) {
		j->trouble_until = 0;
		uncleared_flush(j);
	}
	while (j->uncleared) {
		struct uncleared *u = j->uncleared;
		j->uncleared = u->next;
		uncleared_free(u);
	}
	for (int i = 0; i < ST__COUNT; i++)
		sqlite3_finalize(j->st[i]);
	if (j->db)
		sqlite3_close_v2(j->db);
	free(j->cache_dir);
	free(j);
}

/* ---- records held in memory ---- */

/*
 * Clear the record of landed upload @u (and, when it landed at its path,
 * rebase newer generations onto its content), in one transaction. > 0
 * cleared, 0 nothing to clear, -errno when the journal could not be
 * written.
 */
static int journal_clear(struct journal *j, const struct uncleared *u)
{
	bool txn = u->at_path && db_run(j, ST_BEGIN, "begin") >= 0;
	int n;

	bind_rec(j, ST_DONE, u->id, u->gen);
	n = db_run(j, ST_DONE, "clear");
	if (u->at_path && n >= 0) {
		/* a newer generation derived from this content: the server now has it */
		sqlite3_stmt *st = bind_rec(j, ST_BASE, u->id, u->gen);
		bind_text(st, 3, u->md5);
		sqlite3_bind_int64(st, 4, u->size);
		bind_text(st, 5, u->path);
		bind_text(st, 6, u->base_md5);
		sqlite3_bind_int64(st, 7, u->base_size);
		sqlite3_bind_int(st, 8, u->overwrite);
		if (db_run(j, ST_BASE, "update base") < 0)
			n = -EIO;
	}
	if (txn && (n < 0 || db_run(j, ST_COMMIT, "commit") < 0)) {
		if (!sqlite3_get_autocommit(j->db))     /* SQLITE_FULL may have ended it */
			db_run(j, ST_ROLLBACK, "rollback");
		n = -EIO;
	}
	return n;
}

/* Remove held record *@pp. */
static void uncleared_drop(struct journal *j, struct uncleared **pp)
{
	struct uncleared *u = *pp;
	*pp = u->next;
	j->n_uncleared--;
	uncleared_free(u);
}

/*
 * Is record (@id, @gen) held in memory, not to be picked now (@now:
 * monotonic)? An expired hold is dropped. *@wake_in gets the earliest time
 * (ms from now) a hold ends.
 */
static bool is_held(struct journal *j, uint64_t id, uint64_t gen, int64_t now, int64_t *wake_in)
{
	for (struct uncleared **pp = &j->uncleared; *pp; pp = &(*pp)->next) {
		struct uncleared *u = *pp;
		if (u->id != id || u->gen != gen)
			continue;
		if (u->landed)
			return true;
		if (u->not_before > now) {
			if (*wake_in < 0 || u->not_before - now < *wake_in)
				*wake_in = u->not_before - now;
			return true;
		}
		uncleared_drop(j, pp);
		return false;
	}
	return false;
}

/* Hold record (@id, @gen) in memory for @delay_ms: its failure could not
 * be journalled, and picking it at once again would spin. */
static void hold(struct journal *j, uint64_t id, uint64_t gen, int64_t delay_ms)
{
	struct uncleared *u = calloc(1, sizeof(*u));

	if (!u)
		return;
	u->id = id;
	u->gen = gen;
	u->not_before = clock_mono_ms() + delay_ms;
	u->next = j->uncleared;
	j->uncleared = u;
	j->n_uncleared++;
}

/* Clear the landed records that could not be cleared before, and drop the
 * holds that are over. */
static void uncleared_flush(struct journal *j)
{
	int64_t now = clock_mono_ms();

	if (j->trouble_until > now)
		return;
	for (struct uncleared **pp = &j->uncleared; *pp;) {
		if (!(*pp)->landed) {
			if ((*pp)->not_before <= now)
				uncleared_drop(j, pp);  /* over (or its record replaced) */
			else
				pp = &(*pp)->next;
			continue;
		}
		if (journal_clear(j, *pp) < 0)
			break;
		uncleared_drop(j, pp);
	}
}

/* ---- the caller side ---- */

int journal_upsert(struct journal *j, const struct upload_item *it, const char *base_md5,
		   int64_t base_size, int64_t next_try, uint64_t ino, int64_t mtime_ns)
{
	sqlite3_stmt *st = bind_rec(j, ST_UPSERT, it->id, it->gen);

	bind_text(st, 3, it->path);
	bind_text(st, 4, it->content_file);
	sqlite3_bind_int64(st, 5, it->size);
	bind_text(st, 6, it->md5);
	sqlite3_bind_int64(st, 7, (int64_t)it->created);
	sqlite3_bind_int64(st, 8, (int64_t)it->modified);
	bind_text(st, 9, base_md5);
	sqlite3_bind_int64(st, 10, base_size);
	sqlite3_bind_int64(st, 11, next_try);
	sqlite3_bind_int64(st, 12, u2i(ino));
	sqlite3_bind_int64(st, 13, mtime_ns);
	return db_run(j, ST_UPSERT, "enqueue");
}

int journal_bump(struct journal *j, uint64_t id, bool all)
{
	enum stmt_id s = all ? ST_BUMP_ALL : ST_BUMP_ONE;

	if (all) {
		sqlite3_bind_int64(j->st[s], 1, journal_now_ms());
	} else {
		sqlite3_bind_int64(j->st[s], 1, u2i(id));
		sqlite3_bind_int64(j->st[s], 2, journal_now_ms());
	}
	return db_run(j, s, "reschedule");
}

int journal_retry_now(struct journal *j)
{
	sqlite3_bind_int64(j->st[ST_RETRY_NOW], 1, journal_now_ms());
	return db_run(j, ST_RETRY_NOW, "reschedule");
}

int journal_cancel(struct journal *j, uint64_t id)
{
	sqlite3_bind_int64(j->st[ST_CANCEL], 1, u2i(id));
	return db_run(j, ST_CANCEL, "cancel");
}

int journal_rename(struct journal *j, uint64_t id, const char *new_path)
{
	sqlite3_bind_int64(j->st[ST_RENAME], 1, u2i(id));
	bind_text(j->st[ST_RENAME], 2, new_path);
	sqlite3_bind_int64(j->st[ST_RENAME], 3, journal_now_ms());
	return db_run(j, ST_RENAME, "rename");
}

int journal_rename_dir(struct journal *j, const char *old_prefix, const char *new_prefix)
{
	bind_text(j->st[ST_RENAME_DIR], 1, old_prefix);
	bind_text(j->st[ST_RENAME_DIR], 2, new_prefix);
	sqlite3_bind_int64(j->st[ST_RENAME_DIR], 3, journal_now_ms());
	return db_run(j, ST_RENAME_DIR, "rename directory");
}

void journal_each_under(struct journal *j, const char *prefix,
			void (*fn)(void *ctx, uint64_t id), void *ctx)
{
	sqlite3_stmt *st = j->st[ST_REVIVED];

	bind_text(st, 1, prefix);
	while (sqlite3_step(st) == SQLITE_ROW)
		fn(ctx, i2u(sqlite3_column_int64(st, 0)));
	db_reset(st);
}

/* ---- the worker side ---- */

void urec_release(struct urec *r)
{
	free(r->path);
	free(r->content_file);
	free(r->target);
	memset(r, 0, sizeof(*r));
}

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
	if (!upq_path_valid(path) || !file || !md5 || (strlen(md5) != 32 && md5[0]) || !bmd5 ||
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

int journal_pick(struct journal *j, unsigned limit,
		 enum pick_verdict (*fn)(void *ctx, uint64_t id, int64_t *wake_in), void *ctx,
		 struct urec *r, int64_t *wake_in)
{
	sqlite3_stmt *st = j->st[ST_PICK];
	int64_t now = journal_now_ms(), mono = clock_mono_ms();
	int rc, result = 0;

	*wake_in = -1;
	uncleared_flush(j);
	/* busy and held rows are skipped: ask for enough to find one more */
	sqlite3_bind_int(st, 1, (int)(limit + j->n_uncleared));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t id = i2u(sqlite3_column_int64(st, 0));
		int64_t next_try = sqlite3_column_int64(st, 13);
		enum pick_verdict v;

		if (is_held(j, id, i2u(sqlite3_column_int64(st, 1)), mono, wake_in))
			continue;       /* landed or failed; the journal could not say so */
		v = fn(ctx, id, wake_in);
		if (v == PICK_SKIP)
			continue;
		if (v == PICK_STOP)
			break;
		if (next_try > now) {
			*wake_in = next_try - now;
			break;
		}
		int err = row_load(st, r);
		if (err == -EINVAL) {
			urec_release(r);
			r->id = id;
			*wake_in = 0;
			result = JOURNAL_BAD;
		} else if (err) {
			rc = SQLITE_NOMEM;
		} else {
			result = 1;
		}
		break;
	}
	db_reset(st);
	if (result)
		return result;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return rc == SQLITE_NOMEM ? -ENOMEM : db_errno(rc);
	return 0;
}

int journal_set_aside(struct journal *j, uint64_t id)
{
	sqlite3_bind_int64(j->st[ST_BAD], 1, u2i(id));
	return db_run(j, ST_BAD, "set aside");
}

int journal_content(struct journal *j, const struct urec *r)
{
	sqlite3_stmt *st = bind_rec(j, ST_CONTENT, r->id, r->gen);

	sqlite3_bind_int64(st, 3, r->size);
	bind_text(st, 4, r->md5);
	sqlite3_bind_int64(st, 5, u2i(r->ino));
	sqlite3_bind_int64(st, 6, r->mtime_ns);
	return db_run(j, ST_CONTENT, "update content");
}

int journal_target(struct journal *j, const struct urec *r, const char *name)
{
	sqlite3_stmt *st = bind_rec(j, ST_TARGET, r->id, r->gen);

	bind_text(st, 3, name);
	bind_text(st, 4, r->path);
	return db_run(j, ST_TARGET, "record conflict name");
}

int journal_landed(struct journal *j, const struct urec *r, bool at_path)
{
	struct uncleared u = {
		.id = r->id, .gen = r->gen, .at_path = at_path, .path = r->path,
		.size = r->size, .base_size = r->base_size, .overwrite = r->overwrite,
	};
	struct uncleared *c;
	int n;

	memcpy(u.md5, r->md5, sizeof(u.md5));
	memcpy(u.base_md5, r->base_md5, sizeof(u.base_md5));
	n = journal_clear(j, &u);
	if (n >= 0)
		return n;
	/* Landed all the same: never uploaded again by this mount; the record
	 * is cleared when the journal can be written (a crash before that
	 * uploads it again, instantly). */
	c = malloc(sizeof(*c));
	if (!c)
		return n;
	*c = u;
	c->landed = true;
	c->path = strdup(r->path);
	if (!c->path) {
		free(c);
		return n;
	}
	c->next = j->uncleared;
	j->uncleared = c;
	j->n_uncleared++;
	return 1;
}

int journal_give_up(struct journal *j, const struct urec *r, const char *why, const char *lost)
{
	sqlite3_stmt *st = bind_rec(j, ST_GIVEUP, r->id, r->gen);

	sqlite3_bind_int(st, 3, (int)r->attempts + 1);
	sqlite3_bind_int(st, 4, (int)r->hard_failures + 1);
	bind_text(st, 5, why);
	bind_text(st, 6, lost);
	return db_run(j, ST_GIVEUP, "give up");
}

int journal_fail(struct journal *j, const struct urec *r, unsigned hard, int64_t delay_ms,
		 const char *why, int64_t last_resume)
{
	sqlite3_stmt *st = bind_rec(j, ST_FAIL, r->id, r->gen);
	int n;

	sqlite3_bind_int(st, 3, (int)r->attempts + 1);
	sqlite3_bind_int(st, 4, (int)hard);
	sqlite3_bind_int64(st, 5, journal_now_ms() + delay_ms);
	bind_text(st, 6, why);
	sqlite3_bind_int64(st, 7, last_resume);
	n = db_run(j, ST_FAIL, "record failure");
	if (n < 0)
		hold(j, r->id, r->gen, delay_ms);
	return n;
}

int journal_defer(struct journal *j, const struct urec *r, int64_t delay_ms)
{
	int n;

	sqlite3_bind_int64(bind_rec(j, ST_DEFER, r->id, r->gen), 3, journal_now_ms() + delay_ms);
	n = db_run(j, ST_DEFER, "defer");
	if (n < 0)
		hold(j, r->id, r->gen, delay_ms);
	return n;
}
