/*
 * cache/db.c — the SQLite layer (see db.h): opening a database privately
 * and in WAL mode, its schema version and migration, the statement table,
 * the one exec helper, transactions, and the one mapping of SQLite results
 * to -errno.
 *
 * Threading: each connection is opened SQLITE_OPEN_NOMUTEX and used only
 * under db->lock, a recursive mutex, so that an owner can hold it across a
 * run of statements (db_lock, db_begin) that each take it again.
 *
 * Group sync (db.h): db->written counts the committed writes; db->sync_lock
 * (a leaf: taken with or without db->lock, nothing taken under it) guards
 * the leader's turn and db->synced, the count known durable. The leader
 * reads db->written, drops sync_lock, fdatasyncs its own descriptor of the
 * WAL and publishes the count it read; the threads that waited meanwhile
 * find their ticket covered, or one of them leads the next round.
 */
#include "cache/db.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/privdir.h"

enum { TX_BEGIN, TX_COMMIT, TX_ROLLBACK, TX_COUNT_ };

static const char *const tx_sql[TX_COUNT_] = { "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK" };
static const char *const tx_name[TX_COUNT_] = { "begin", "commit", "rollback" };

struct db {
	pthread_mutex_t lock;           /* recursive; protects everything below */
	struct db_spec spec;            /* immutable */
	sqlite3 *conn;
	sqlite3_stmt **st;              /* [spec.nsql], prepared when first used */
	sqlite3_stmt *tx[TX_COUNT_];
	/* group sync (spec.group_sync and a WAL descriptor: db->wal_fd >= 0) */
	_Atomic uint64_t written;       /* committed writes */
	int wal_fd;                     /* the -wal file, for fdatasync; -1: none */
	pthread_mutex_t sync_lock;      /* leaf; protects the two below */
	pthread_cond_t sync_cv;         /* a leader finished */
	bool syncing;                   /* a leader is in fdatasync */
	uint64_t synced;                /* writes known durable */
	uint64_t nsyncs;                /* fdatasyncs made */
};

/* A row handed to a db_row_fn: the statement being stepped. */
struct db_row {
	sqlite3_stmt *st;
};

int db_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:
	case SQLITE_CANTOPEN:
		return -EACCES;
	default:
		return -EIO;
	}
}

/* Report failure @rc of step @what (message @msg, NULL: the connection's)
 * to the fault hook or the log; its -errno. */
static int fail_msg(struct db *db, int rc, const char *what, const char *msg)
{
	struct db_fault f = {
		.db = db->spec.label,
		.path = db->spec.path,
		.what = what,
		.msg = msg ? msg : db->conn ? sqlite3_errmsg(db->conn) : sqlite3_errstr(rc),
		.err = db_errno(rc),
		.storage = (rc & 0xff) == SQLITE_FULL || (rc & 0xff) == SQLITE_IOERR,
	};

	if (!f.err)
		f.err = -EIO;   /* a result that is no failure where one was needed */
	if (db->spec.fault)
		db->spec.fault(db->spec.ctx, &f);
	else
		log_err("%s '%s': %s failed: %s", f.db, f.path, what, f.msg);
	return f.err;
}

static int fail(struct db *db, int rc, const char *what)
{
	return fail_msg(db, rc, what, NULL);
}

/* Statement @id, prepared on first use. Lock held. */
static sqlite3_stmt *stmt_get(struct db *db, int id, int *err)
{
	sqlite3_stmt **st = &db->st[id];

	if (!*st) {
		int rc = sqlite3_prepare_v3(db->conn, db->spec.sql[id].sql, -1,
					    SQLITE_PREPARE_PERSISTENT, st, NULL);
		if (rc != SQLITE_OK) {
			*st = NULL;
			*err = fail(db, rc, db->spec.sql[id].name);
		}
	}
	return *st;
}

static int bind_all(struct db *db, int id, sqlite3_stmt *st, const struct db_val *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc, k = (int)i + 1;

		switch (v[i].type) {
		case DB_T_INT:
			rc = sqlite3_bind_int64(st, k, v[i].i);
			break;
		case DB_T_TEXT:
			rc = v[i].p ? sqlite3_bind_text(st, k, v[i].p, -1, SQLITE_STATIC)
				    : sqlite3_bind_null(st, k);
			break;
		case DB_T_BLOB:
			/* a zero-length blob needs a pointer to not become NULL */
			rc = sqlite3_bind_blob64(st, k, v[i].n ? v[i].p : "", v[i].n, SQLITE_STATIC);
			break;
		default:
			rc = sqlite3_bind_null(st, k);
			break;
		}
		if (rc != SQLITE_OK)
			return fail(db, rc, db->spec.sql[id].name);
	}
	return 0;
}

int db_exec(struct db *db, int id, const struct db_val *args, size_t nargs, db_row_fn row,
	    void *ctx)
{
	struct db_row r;
	sqlite3_stmt *st;
	int rc = SQLITE_DONE, cb = 0, n = 0, ret = 0;

	if (id < 0 || (size_t)id >= db->spec.nsql)
		return -EINVAL;
	pthread_mutex_lock(&db->lock);
	st = stmt_get(db, id, &ret);
	if (!st)
		goto out;
	ret = bind_all(db, id, st, args, nargs);
	r.st = st;
	while (!ret && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		n++;
		if (row && (cb = row(ctx, &r)) != 0)
			break;
	}
	if (!ret) {
		if (cb < 0)
			ret = cb;
		else if (cb == 0 && rc != SQLITE_DONE)
			ret = fail(db, rc, db->spec.sql[id].name);
		else
			ret = row || sqlite3_stmt_readonly(st) ? n : sqlite3_changes(db->conn);
		if (ret >= 0 && !sqlite3_stmt_readonly(st) && sqlite3_get_autocommit(db->conn))
			atomic_fetch_add(&db->written, 1);      /* committed by itself */
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
out:
	pthread_mutex_unlock(&db->lock);
	return ret;
}

int64_t db_int(struct db_row *r, int col)
{
	return sqlite3_column_int64(r->st, col);
}

uint64_t db_u64(struct db_row *r, int col)
{
	int64_t v = sqlite3_column_int64(r->st, col);

	return v < 0 ? UINT64_MAX - (uint64_t)(-(v + 1)) : (uint64_t)v;
}

const char *db_text(struct db_row *r, int col)
{
	return (const char *)sqlite3_column_text(r->st, col);
}

const void *db_blob(struct db_row *r, int col, size_t *len)
{
	const void *p = sqlite3_column_blob(r->st, col);

	*len = (size_t)sqlite3_column_bytes(r->st, col);
	return p;
}

char *db_strdup(struct db_row *r, int col)
{
	size_t n;
	const void *p = db_blob(r, col, &n);
	char *out = malloc(n + 1);

	if (!out)
		return NULL;
	if (n)
		memcpy(out, p, n);
	out[n] = '\0';
	return out;
}

void db_text_copy(struct db_row *r, int col, char *out, size_t size)
{
	const char *t = db_text(r, col);

	snprintf(out, size, "%s", t ? t : "");
}

void db_lock(struct db *db)
{
	pthread_mutex_lock(&db->lock);
}

void db_unlock(struct db *db)
{
	pthread_mutex_unlock(&db->lock);
}

/* Step transaction statement @k. Lock held. */
static int tx_step(struct db *db, int k)
{
	int rc = sqlite3_step(db->tx[k]);

	sqlite3_reset(db->tx[k]);
	return rc == SQLITE_DONE ? 0 : fail(db, rc, tx_name[k]);
}

int db_begin(struct db *db)
{
	int err;

	pthread_mutex_lock(&db->lock);
	err = tx_step(db, TX_BEGIN);
	if (err)
		pthread_mutex_unlock(&db->lock);
	return err;
}

int db_end(struct db *db, int err)
{
	if (!err)
		err = tx_step(db, TX_COMMIT);
	if (!err)
		atomic_fetch_add(&db->written, 1);
	/* a failed statement (SQLITE_FULL) may have ended the transaction */
	if (err && !sqlite3_get_autocommit(db->conn)) {
		sqlite3_step(db->tx[TX_ROLLBACK]);
		sqlite3_reset(db->tx[TX_ROLLBACK]);
	}
	pthread_mutex_unlock(&db->lock);
	return err;
}

bool db_in_tx(struct db *db)
{
	return !sqlite3_get_autocommit(db->conn);
}

uint64_t db_ticket(struct db *db)
{
	return atomic_load(&db->written);
}

uint64_t db_syncs(struct db *db)
{
	uint64_t n;

	pthread_mutex_lock(&db->sync_lock);
	n = db->nsyncs;
	pthread_mutex_unlock(&db->sync_lock);
	return n;
}

bool db_synced(struct db *db, uint64_t ticket)
{
	bool r;

	if (db->wal_fd < 0)
		return true;
	pthread_mutex_lock(&db->sync_lock);
	r = db->synced >= ticket;
	pthread_mutex_unlock(&db->sync_lock);
	return r;
}

int db_sync(struct db *db, uint64_t ticket)
{
	int err = 0;

	if (db->wal_fd < 0)
		return 0;               /* each commit synced itself */
	pthread_mutex_lock(&db->sync_lock);
	while (!err && db->synced < ticket) {
		uint64_t target;

		if (db->syncing) {      /* a follower: the leader may cover us */
			pthread_cond_wait(&db->sync_cv, &db->sync_lock);
			continue;
		}
		db->syncing = true;     /* the leader: everything written up to now */
		target = atomic_load(&db->written);
		pthread_mutex_unlock(&db->sync_lock);
		if (fdatasync(db->wal_fd))
			err = -errno;
		pthread_mutex_lock(&db->sync_lock);
		db->syncing = false;
		db->nsyncs++;
		if (!err && target > db->synced)
			db->synced = target;
		pthread_cond_broadcast(&db->sync_cv);
	}
	pthread_mutex_unlock(&db->sync_lock);
	if (err) {
		log_err("%s '%s': cannot sync its log: %s", db->spec.label, db->spec.path,
			strerror(-err));
		err = -EIO;
	}
	return err;
}

int64_t db_last_rowid(struct db *db)
{
	return sqlite3_last_insert_rowid(db->conn);
}

int db_script(struct db *db, const char *sql, const char *what)
{
	char *msg = NULL;
	int rc, err = 0;

	pthread_mutex_lock(&db->lock);
	rc = sqlite3_exec(db->conn, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		err = fail_msg(db, rc, what, msg);
	else if (sqlite3_get_autocommit(db->conn))
		atomic_fetch_add(&db->written, 1);      /* it may have written */
	sqlite3_free(msg);
	pthread_mutex_unlock(&db->lock);
	return err;
}

/* The single integer a PRAGMA query returns, or -errno. */
static int pragma_int(struct db *db, const char *sql, int *out)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return fail(db, rc, sql);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : fail(db, rc, sql);
}

/* WAL mode; required of a durable database. */
static int set_wal(struct db *db)
{
	sqlite3_stmt *st;
	char mode[16] = "";
	int rc = sqlite3_prepare_v2(db->conn, "PRAGMA journal_mode=WAL", -1, &st, NULL);

	if (rc != SQLITE_OK)
		return fail(db, rc, "PRAGMA journal_mode");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(mode, sizeof(mode), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return fail(db, rc, "PRAGMA journal_mode");
	if (db->spec.durable && strcmp(mode, "wal")) {
		log_err("%s '%s': cannot use WAL mode (got '%s')", db->spec.label, db->spec.path,
			mode);
		return -EIO;
	}
	return 0;
}

/* Make the database file's name durable (its directory's entry). */
static void sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	int fd;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else if ((size_t)(slash - path) < sizeof(dir))
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	else
		return;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/*
 * Group sync: a descriptor of the -wal file (SQLite made it when the
 * database was first read in WAL mode, and keeps it until the connection
 * closes) and its name made durable, since SQLite, syncing nothing at
 * commit, would not sync its directory. Without the descriptor the commits
 * sync themselves (synchronous=FULL).
 */
static int open_wal(struct db *db)
{
	char wal[PATH_MAX];

	if (snprintf(wal, sizeof(wal), "%s-wal", db->spec.path) < (int)sizeof(wal))
		db->wal_fd = open(wal, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (db->wal_fd < 0) {
		log_warn("%s '%s': cannot open its log for group commits (%s); each commit "
			 "syncs itself", db->spec.label, db->spec.path, strerror(errno));
		return db_script(db, "PRAGMA synchronous=FULL", "PRAGMA synchronous");
	}
	sync_dir(db->spec.path);
	return 0;
}

/* Bring the schema to spec.version (PRAGMA user_version). */
static int schema(struct db *db)
{
	char sql[64];
	int from = -1, err;

	err = pragma_int(db, "PRAGMA user_version", &from);
	if (err || from == db->spec.version)
		return err;
	err = db_begin(db);
	if (err)
		return err;
	/* read again under the write lock: another opener may have migrated */
	err = pragma_int(db, "PRAGMA user_version", &from);
	if (!err && from != db->spec.version) {
		err = db->spec.migrate ? db->spec.migrate(db, from, db->spec.ctx) : 0;
		snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", db->spec.version);
		if (!err)
			err = db_script(db, sql, "PRAGMA user_version");
	}
	err = db_end(db, err);
	if (!err && db->spec.durable)
		sync_dir(db->spec.path);
	return err;
}

int db_open(const struct db_spec *spec, struct db **out)
{
	struct db *db = calloc(1, sizeof(*db));
	pthread_mutexattr_t attr;
	int rc, err;

	*out = NULL;
	if (!db)
		return -ENOMEM;
	db->spec = *spec;
	db->wal_fd = -1;
	db->st = calloc(spec->nsql ? spec->nsql : 1, sizeof(*db->st));
	if (!db->st) {
		free(db);
		return -ENOMEM;
	}
	pthread_mutex_init(&db->sync_lock, NULL);
	pthread_cond_init(&db->sync_cv, NULL);
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&db->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	/* 0600 (its -wal and -shm files take the same mode), never through a
	 * symlink: the files show every name, size and MD5 of the mount. */
	err = privdir_sqlite_files(spec->path);
	if (err) {
		char why[PATH_MAX + 200];
		log_err("%s: %s", spec->label, privdir_file_error(spec->path, err, why, sizeof(why)));
		goto fail;
	}
	rc = sqlite3_open_v2(spec->path, &db->conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			     SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE | SQLITE_OPEN_NOFOLLOW,
			     NULL);
	if (rc != SQLITE_OK) {
		err = fail(db, rc, "open");
		goto fail;
	}
	sqlite3_busy_timeout(db->conn, spec->busy_ms);
	/* before the first read in WAL mode: then no -shm file is used */
	err = spec->exclusive ? db_script(db, "PRAGMA locking_mode=EXCLUSIVE",
					  "PRAGMA locking_mode") : 0;
	if (!err)
		err = set_wal(db);
	if (!err)
		err = db_script(db, spec->durable && !spec->group_sync ? "PRAGMA synchronous=FULL" :
				"PRAGMA synchronous=NORMAL", "PRAGMA synchronous");
	for (int k = 0; !err && k < TX_COUNT_; k++) {
		rc = sqlite3_prepare_v3(db->conn, tx_sql[k], -1, SQLITE_PREPARE_PERSISTENT,
					&db->tx[k], NULL);
		if (rc != SQLITE_OK)
			err = fail(db, rc, tx_name[k]);
	}
	if (!err)
		err = schema(db);
	if (!err && spec->durable && spec->group_sync)
		err = open_wal(db);
	if (!err && spec->session_sql)
		err = db_script(db, spec->session_sql, "session setup");
	/* every statement now, so that a bad one fails the open, not a request */
	for (size_t i = 0; !err && i < spec->nsql; i++)
		stmt_get(db, (int)i, &err);
	if (err)
		goto fail;
	*out = db;
	return 0;
fail:
	db_close(db);
	return err;
}

void db_close(struct db *db)
{
	if (!db)
		return;
	for (size_t i = 0; i < db->spec.nsql; i++)
		sqlite3_finalize(db->st[i]);
	for (int k = 0; k < TX_COUNT_; k++)
		sqlite3_finalize(db->tx[k]);
	if (db->conn && sqlite3_close(db->conn) != SQLITE_OK)
		log_warn("%s '%s': close: %s", db->spec.label, db->spec.path,
			 sqlite3_errmsg(db->conn));
	if (db->wal_fd >= 0)
		close(db->wal_fd);
	pthread_cond_destroy(&db->sync_cv);
	pthread_mutex_destroy(&db->sync_lock);
	pthread_mutex_destroy(&db->lock);
	free(db->st);
	free(db);
}
