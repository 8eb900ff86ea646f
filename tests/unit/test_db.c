/*
 * tests/unit/test_db.c — the SQLite layer (cache/db): the exec helper
 * (binding, rows, changes, errors), the errno mapping, transactions, the
 * schema version and its migration, durable and private opening, group
 * sync (one sync for the writes of many threads) and exclusive files.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"
#include <sqlite3.h>

#include "cache/db.h"

enum { Q_PUT, Q_GET, Q_ALL, Q_DEL, Q_NAME, Q_UNIQUE, Q_COUNT_ };

static const struct db_sql sql[Q_COUNT_] = {
	[Q_PUT] = { "put", "INSERT INTO kv(k, v, b) VALUES(?1, ?2, ?3)" },
	[Q_GET] = { "get", "SELECT v, b FROM kv WHERE k = ?1" },
	[Q_ALL] = { "all", "SELECT k FROM kv ORDER BY k" },
	[Q_DEL] = { "del", "DELETE FROM kv WHERE k >= ?1" },
	[Q_NAME] = { "name", "SELECT typeof(?1), length(?1), ?1 IS NULL" },
	[Q_UNIQUE] = { "unique", "INSERT INTO kv(k, v) VALUES(1, 'dup')" },
};

struct fixture {
	char dir[64];
	char path[96];
	int migrations;         /* calls of migrate() */
	int last_from;
	int fail_migration;     /* returned by migrate() when non-zero */
	int faults;             /* calls of the fault hook */
	struct db_fault last;
	struct db *db;
};

static int migrate(struct db *db, int from, void *ctx)
{
	struct fixture *f = ctx;

	f->migrations++;
	f->last_from = from;
	if (f->fail_migration)
		return f->fail_migration;
	return db_script(db, "CREATE TABLE IF NOT EXISTS kv(k INTEGER PRIMARY KEY, v TEXT, b BLOB);",
			 "create");
}

static void fault(void *ctx, const struct db_fault *flt)
{
	struct fixture *f = ctx;

	f->faults++;
	f->last = *flt;
}

static struct db_spec spec_of(struct fixture *f, int version, bool durable)
{
	return (struct db_spec){
		.label = "test db", .path = f->path, .durable = durable, .busy_ms = 1000,
		.version = version, .migrate = migrate, .ctx = f,
		.session_sql = "CREATE TEMP TABLE IF NOT EXISTS scratch(x);",
		.sql = sql, .nsql = Q_COUNT_, .fault = fault,
	};
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct db_spec s;

	assert_non_null(f);
	unit_tmpdir(f->dir, sizeof(f->dir), "test_db");
	snprintf(f->path, sizeof(f->path), "%s/x.db", f->dir);
	s = spec_of(f, 3, true);
	assert_int_equal(db_open(&s, &f->db), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	db_close(f->db);
	unit_rm_rf(f->dir);
	free(f);
	return 0;
}

/* Query one integer with a second connection. */
static int64_t peek(struct fixture *f, const char *q)
{
	sqlite3 *c;
	sqlite3_stmt *st;
	int64_t v = -1;

	assert_int_equal(sqlite3_open_v2(f->path, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(c, q, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(c);
	return v;
}

struct got {
	char v[32];
	char *b;
	size_t blen;
	int64_t keys[8];
	int nkeys;
	int stop_after;         /* row_key: stop after this many rows (0: never) */
	int fail_with;          /* row_key: return this instead */
};

static int row_get(void *ctx, struct db_row *r)
{
	struct got *g = ctx;

	db_text_copy(r, 0, g->v, sizeof(g->v));
	g->b = db_strdup(r, 1);
	db_blob(r, 1, &g->blen);
	return 1;
}

static int row_key(void *ctx, struct db_row *r)
{
	struct got *g = ctx;

	if (g->fail_with)
		return g->fail_with;
	g->keys[g->nkeys++] = db_int(r, 0);
	return g->stop_after && g->nkeys == g->stop_after;
}

static void test_exec(void **state)
{
	struct fixture *f = *state;
	struct got g = { 0 };

	/* writes report the rows they changed */
	assert_int_equal(db_exec(f->db, Q_PUT, DB_ARGS(DB_INT(1), DB_TEXT("one"), DB_NULL),
				 NULL, NULL), 1);
	assert_int_equal(db_exec(f->db, Q_PUT, DB_ARGS(DB_INT(2), DB_TEXT(NULL),
				 DB_BLOB("a\0b", 3)), NULL, NULL), 1);
	assert_int_equal(db_exec(f->db, Q_PUT, DB_ARGS(DB_INT(3), DB_TEXT("three"),
				 DB_NAME("")), NULL, NULL), 1);
	/* reads report the rows delivered */
	assert_int_equal(db_exec(f->db, Q_GET, DB_ARGS(DB_INT(1)), row_get, &g), 1);
	assert_string_equal(g.v, "one");
	assert_string_equal(g.b, "");           /* NULL blob: "" */
	free(g.b);
	assert_int_equal(db_exec(f->db, Q_GET, DB_ARGS(DB_INT(2)), row_get, &g), 1);
	assert_string_equal(g.v, "");           /* NULL text: "" */
	assert_int_equal(g.blen, 3);
	assert_memory_equal(g.b, "a\0b", 4);    /* NUL-terminated copy */
	free(g.b);
	assert_int_equal(db_exec(f->db, Q_GET, DB_ARGS(DB_INT(9)), row_get, &g), 0);
	/* every row, or until the callback stops, or fails */
	assert_int_equal(db_exec(f->db, Q_ALL, DB_NOARGS, row_key, &g), 3);
	assert_int_equal(g.nkeys, 3);
	assert_int_equal(g.keys[2], 3);
	g.nkeys = 0;
	g.stop_after = 2;
	assert_int_equal(db_exec(f->db, Q_ALL, DB_NOARGS, row_key, &g), 2);
	assert_int_equal(g.nkeys, 2);
	g.fail_with = -ENOMEM;
	assert_int_equal(db_exec(f->db, Q_ALL, DB_NOARGS, row_key, &g), -ENOMEM);
	/* the statement was reset: it runs again from the start */
	g.nkeys = g.stop_after = g.fail_with = 0;
	assert_int_equal(db_exec(f->db, Q_ALL, DB_NOARGS, row_key, &g), 3);
	assert_int_equal(g.keys[0], 1);
	/* a query without a callback counts its rows (not the last write's changes) */
	assert_int_equal(db_exec(f->db, Q_ALL, DB_NOARGS, NULL, NULL), 3);
	assert_int_equal(db_exec(f->db, Q_GET, DB_ARGS(DB_INT(9)), NULL, NULL), 0);
	assert_int_equal(f->faults, 0);
	/* a zero-length name stays a blob, not NULL */
	g.nkeys = 0;
	assert_int_equal(db_exec(f->db, Q_DEL, DB_ARGS(DB_INT(3)), NULL, NULL), 1);
	assert_int_equal(db_exec(f->db, Q_DEL, DB_ARGS(DB_INT(3)), NULL, NULL), 0);
	assert_int_equal(db_exec(f->db, -1, DB_NOARGS, NULL, NULL), -EINVAL);
	assert_int_equal(db_exec(f->db, Q_COUNT_, DB_NOARGS, NULL, NULL), -EINVAL);
}

struct name_row {
	char type[16];
	int64_t len, is_null;
};

static int row_name(void *ctx, struct db_row *r)
{
	struct name_row *n = ctx;

	db_text_copy(r, 0, n->type, sizeof(n->type));
	n->len = db_int(r, 1);
	n->is_null = db_int(r, 2);
	return 1;
}

static void test_values(void **state)
{
	struct fixture *f = *state;
	struct name_row n;
	struct got g = { 0 };
	uint64_t big = UINT64_MAX - 5;

	assert_int_equal(db_exec(f->db, Q_NAME, DB_ARGS(DB_NAME("")), row_name, &n), 1);
	assert_string_equal(n.type, "blob");
	assert_int_equal(n.len, 0);
	assert_int_equal(n.is_null, 0);
	assert_int_equal(db_exec(f->db, Q_NAME, DB_ARGS(DB_TEXT(NULL)), row_name, &n), 1);
	assert_int_equal(n.is_null, 1);
	assert_int_equal(db_exec(f->db, Q_NAME, DB_ARGS(DB_NULL), row_name, &n), 1);
	assert_int_equal(n.is_null, 1);
	assert_int_equal(db_exec(f->db, Q_NAME, DB_ARGS(DB_TEXT("héllo")), row_name, &n), 1);
	assert_string_equal(n.type, "text");
	assert_int_equal(n.len, 5);
	/* uint64 values keep their bit pattern both ways */
	assert_int_equal(db_u64_to_i64(UINT64_MAX), -1);
	assert_int_equal(db_u64_to_i64((uint64_t)INT64_MAX + 1), INT64_MIN);
	assert_int_equal(db_exec(f->db, Q_PUT, DB_ARGS(DB_U64(big), DB_TEXT("big"), DB_NULL),
				 NULL, NULL), 1);
	assert_int_equal(db_exec(f->db, Q_ALL, DB_NOARGS, row_key, &g), 1);
	assert_int_equal(g.keys[0], -6);
}

static int row_u64(void *ctx, struct db_row *r)
{
	*(uint64_t *)ctx = db_u64(r, 0);
	return 1;
}

static void test_u64_column(void **state)
{
	struct fixture *f = *state;
	uint64_t v = 0;

	assert_int_equal(db_exec(f->db, Q_PUT, DB_ARGS(DB_U64(UINT64_MAX - 1), DB_NULL, DB_NULL),
				 NULL, NULL), 1);
	assert_int_equal(db_exec(f->db, Q_ALL, DB_NOARGS, row_u64, &v), 1);
	assert_true(v == UINT64_MAX - 1);
}

static void test_errors(void **state)
{
	struct fixture *f = *state;

	static const struct {
		int rc, err;
	} map[] = {
		{ SQLITE_OK, 0 }, { SQLITE_DONE, 0 }, { SQLITE_FULL, -ENOSPC },
		{ SQLITE_IOERR_WRITE, -EIO }, { SQLITE_NOMEM, -ENOMEM },
		{ SQLITE_BUSY_SNAPSHOT, -EBUSY }, { SQLITE_LOCKED, -EBUSY },
		{ SQLITE_READONLY_DBMOVED, -EROFS }, { SQLITE_PERM, -EACCES },
		{ SQLITE_CANTOPEN, -EACCES }, { SQLITE_CONSTRAINT_UNIQUE, -EIO },
		{ SQLITE_CORRUPT, -EIO },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		assert_int_equal(db_errno(map[i].rc), map[i].err);

	/* a failing statement: -errno, reported once with its name */
	assert_int_equal(db_exec(f->db, Q_UNIQUE, DB_NOARGS, NULL, NULL), 1);
	assert_int_equal(f->faults, 0);
	assert_int_equal(db_exec(f->db, Q_UNIQUE, DB_NOARGS, NULL, NULL), -EIO);
	assert_int_equal(f->faults, 1);
	assert_string_equal(f->last.what, "unique");
	assert_string_equal(f->last.db, "test db");
	assert_false(f->last.storage);
	assert_int_equal(f->last.err, -EIO);
	/* and usable again afterwards */
	assert_int_equal(db_exec(f->db, Q_DEL, DB_ARGS(DB_INT(0)), NULL, NULL), 1);
	assert_int_equal(db_exec(f->db, Q_UNIQUE, DB_NOARGS, NULL, NULL), 1);
	/* a bad script */
	assert_int_equal(db_script(f->db, "SELECT * FROM nowhere", "script"), -EIO);
	assert_int_equal(f->faults, 2);
	assert_string_equal(f->last.what, "script");
}

/* A full disk: -ENOSPC, reported as storage trouble; a failed write in a
 * transaction rolls it back. */
static void test_disk_full(void **state)
{
	struct fixture *f = *state;
	size_t big = 256 * 1024;
	char *blob = calloc(1, big);

	assert_non_null(blob);
	/* the file may not grow any more (SQLite keeps at least its size) */
	assert_int_equal(db_script(f->db, "PRAGMA max_page_count=1", "limit"), 0);
	assert_int_equal(db_exec(f->db, Q_PUT, DB_ARGS(DB_INT(1), DB_TEXT("x"), DB_BLOB(blob, big)),
				 NULL, NULL), -ENOSPC);
	assert_int_equal(f->faults, 1);
	assert_true(f->last.storage);
	assert_int_equal(f->last.err, -ENOSPC);
	assert_string_equal(f->last.what, "put");
	assert_int_equal(db_begin(f->db), 0);
	assert_int_equal(db_exec(f->db, Q_PUT, DB_ARGS(DB_INT(2), DB_TEXT("y"), DB_BLOB(blob, big)),
				 NULL, NULL), -ENOSPC);
	assert_int_equal(db_end(f->db, -ENOSPC), -ENOSPC);
	assert_false(db_in_tx(f->db));
	/* small writes still fit */
	assert_int_equal(db_exec(f->db, Q_PUT, DB_ARGS(DB_INT(3), DB_TEXT("z"), DB_NULL), NULL,
				 NULL), 1);
	free(blob);
}

static void test_transactions(void **state)
{
	struct fixture *f = *state;

	assert_false(db_in_tx(f->db));
	assert_int_equal(db_begin(f->db), 0);
	assert_true(db_in_tx(f->db));
	assert_int_equal(db_exec(f->db, Q_PUT, DB_ARGS(DB_INT(5), DB_TEXT("x"), DB_NULL), NULL,
				 NULL), 1);
	assert_int_equal(db_last_rowid(f->db), 5);
	assert_int_equal(db_end(f->db, 0), 0);
	assert_false(db_in_tx(f->db));
	assert_int_equal(peek(f, "SELECT count(*) FROM kv"), 1);

	/* an error rolls back and is returned */
	assert_int_equal(db_begin(f->db), 0);
	assert_int_equal(db_exec(f->db, Q_PUT, DB_ARGS(DB_INT(6), DB_TEXT("y"), DB_NULL), NULL,
				 NULL), 1);
	assert_int_equal(db_end(f->db, -ENOENT), -ENOENT);
	assert_false(db_in_tx(f->db));
	assert_int_equal(peek(f, "SELECT count(*) FROM kv"), 1);
	/* a positive "skip" result rolls back too, and is returned as is */
	assert_int_equal(db_begin(f->db), 0);
	assert_int_equal(db_end(f->db, 1), 1);
	/* a statement that failed inside the transaction */
	assert_int_equal(db_begin(f->db), 0);
	assert_int_equal(db_exec(f->db, Q_PUT, DB_ARGS(DB_INT(5), DB_TEXT("dup"), DB_NULL), NULL,
				 NULL), -EIO);
	assert_int_equal(db_end(f->db, -EIO), -EIO);
	/* the lock is free again: another thread's view is plain */
	db_lock(f->db);
	db_lock(f->db);
	db_unlock(f->db);
	db_unlock(f->db);
}

static void test_schema_version(void **state)
{
	struct fixture *f = *state;
	struct db_spec s;
	struct db *db2;

	/* a new file: migrated from 0, version kept, private, in WAL mode */
	assert_int_equal(f->migrations, 1);
	assert_int_equal(f->last_from, 0);
	assert_int_equal(peek(f, "PRAGMA user_version"), 3);
	{
		struct stat st;
		assert_int_equal(stat(f->path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
	db_close(f->db);
	f->db = NULL;
	/* same version: no migration */
	s = spec_of(f, 3, true);
	assert_int_equal(db_open(&s, &f->db), 0);
	assert_int_equal(f->migrations, 1);
	db_close(f->db);
	f->db = NULL;
	/* another version: migrate is told which; a failure fails the open
	 * and leaves the file as it was */
	f->fail_migration = -EPROTO;
	s = spec_of(f, 4, true);
	assert_int_equal(db_open(&s, &f->db), -EPROTO);
	assert_null(f->db);
	assert_int_equal(f->last_from, 3);
	assert_int_equal(peek(f, "PRAGMA user_version"), 3);
	f->fail_migration = 0;
	s = spec_of(f, 2, false);
	assert_int_equal(db_open(&s, &f->db), 0);
	assert_int_equal(f->last_from, 3);
	assert_int_equal(peek(f, "PRAGMA user_version"), 2);
	/* a statement that cannot be prepared fails the open */
	{
		static const struct db_sql bad[] = { { "bad", "SELECT nothing FROM nowhere" } };
		s = spec_of(f, 2, false);
		s.sql = bad;
		s.nsql = 1;
		assert_int_equal(db_open(&s, &db2), -EIO);
		assert_null(db2);
		assert_string_equal(f->last.what, "bad");
	}
}

static void test_symlink_refused(void **state)
{
	struct fixture *f = *state;
	struct db_spec s;
	struct db *db2;
	char link[128], target[128];

	snprintf(target, sizeof(target), "%s/target", f->dir);
	snprintf(link, sizeof(link), "%s/link.db", f->dir);
	assert_int_equal(symlink(target, link), 0);
	s = spec_of(f, 3, true);
	s.path = link;
	assert_true(db_open(&s, &db2) < 0);
	assert_null(db2);
	assert_int_equal(access(target, F_OK), -1);     /* nothing written through it */
}

/* Open f->path again with @group_sync / @exclusive (the fixture's db closed). */
static struct db *reopen(struct fixture *f, bool group_sync, bool exclusive)
{
	struct db_spec s = spec_of(f, 3, true);
	struct db *db;

	db_close(f->db);
	f->db = NULL;
	s.group_sync = group_sync;
	s.exclusive = exclusive;
	assert_int_equal(db_open(&s, &db), 0);
	return db;
}

/* A sync covers every write made before it, whoever made them. */
static void test_group_sync(void **state)
{
	struct fixture *f = *state;
	struct db *db = reopen(f, true, false);
	uint64_t t1, t2, n0;

	f->db = db;
	n0 = db_syncs(db);
	assert_int_equal(db_exec(db, Q_PUT, DB_ARGS(DB_INT(1), DB_TEXT("a"), DB_NULL), NULL, NULL), 1);
	t1 = db_ticket(db);
	assert_int_equal(db_exec(db, Q_PUT, DB_ARGS(DB_INT(2), DB_TEXT("b"), DB_NULL), NULL, NULL), 1);
	t2 = db_ticket(db);
	assert_true(t2 > t1);
	assert_false(db_synced(db, t1));
	assert_int_equal(db_sync(db, t2), 0);
	assert_true(db_synced(db, t1));
	assert_true(db_synced(db, t2));
	assert_int_equal(db_sync(db, t1), 0);   /* covered: no second sync */
	assert_int_equal(db_syncs(db), n0 + 1);
	/* reads are no writes; a transaction is one */
	assert_int_equal(db_exec(db, Q_ALL, DB_NOARGS, NULL, NULL), 2);
	assert_int_equal(db_ticket(db), t2);
	assert_int_equal(db_begin(db), 0);
	assert_int_equal(db_exec(db, Q_DEL, DB_ARGS(DB_INT(2)), NULL, NULL), 1);
	assert_int_equal(db_ticket(db), t2);
	assert_int_equal(db_end(db, 0), 0);
	assert_int_equal(db_ticket(db), t2 + 1);
	/* without group sync every commit syncs itself: nothing to wait for */
	db = reopen(f, false, false);
	f->db = db;
	assert_int_equal(db_exec(db, Q_PUT, DB_ARGS(DB_INT(3), DB_TEXT("c"), DB_NULL), NULL, NULL), 1);
	assert_true(db_synced(db, db_ticket(db)));
	assert_int_equal(db_sync(db, db_ticket(db)), 0);
	assert_int_equal(db_syncs(db), 0);
	assert_int_equal(peek(f, "SELECT count(*) FROM kv"), 2);
}

#define SYNC_THREADS 8
#define SYNC_WRITES  40

struct writer_arg {
	struct db *db;
	int t;
	int err;
};

/* Insert SYNC_WRITES rows, each made durable before the next (a close each). */
static void *sync_writer(void *p)
{
	struct writer_arg *a = p;

	for (int i = 0; i < SYNC_WRITES && !a->err; i++) {
		int64_t k = 1000 + a->t * SYNC_WRITES + i;
		uint64_t ticket;
		int n = db_exec(a->db, Q_PUT, DB_ARGS(DB_INT(k), DB_TEXT("v"), DB_NULL), NULL, NULL);

		ticket = db_ticket(a->db);
		if (n != 1)
			a->err = n < 0 ? n : -EIO;
		else if ((a->err = db_sync(a->db, ticket)) == 0 && !db_synced(a->db, ticket))
			a->err = -EIO;
	}
	return NULL;
}

/* Many threads writing and syncing at once: every write is synced when its
 * db_sync() returns, and no more syncs are made than were asked for. */
static void test_group_sync_threads(void **state)
{
	struct fixture *f = *state;
	struct db *db = reopen(f, true, true);
	struct writer_arg a[SYNC_THREADS];
	pthread_t th[SYNC_THREADS];
	uint64_t n0;

	f->db = db;
	n0 = db_syncs(db);
	for (int t = 0; t < SYNC_THREADS; t++) {
		a[t] = (struct writer_arg){ .db = db, .t = t };
		assert_int_equal(pthread_create(&th[t], NULL, sync_writer, &a[t]), 0);
	}
	for (int t = 0; t < SYNC_THREADS; t++) {
		assert_int_equal(pthread_join(th[t], NULL), 0);
		assert_int_equal(a[t].err, 0);
	}
	assert_true(db_synced(db, db_ticket(db)));
	assert_true(db_syncs(db) - n0 <= SYNC_THREADS * SYNC_WRITES);
	print_message("%d synced writes from %d threads: %llu syncs\n", SYNC_THREADS * SYNC_WRITES,
		      SYNC_THREADS, (unsigned long long)(db_syncs(db) - n0));
	assert_int_equal(db_exec(db, Q_ALL, DB_NOARGS, NULL, NULL), SYNC_THREADS * SYNC_WRITES);
}

/* An exclusive file: no -shm file, and no other connection reads it while
 * it is open; after the close it can. */
static void test_exclusive(void **state)
{
	struct fixture *f = *state;
	struct db *db = reopen(f, true, true);
	char shm[128];
	sqlite3 *c;
	sqlite3_stmt *st = NULL;
	int rc;

	f->db = db;
	assert_int_equal(db_exec(db, Q_PUT, DB_ARGS(DB_INT(7), DB_TEXT("x"), DB_NULL), NULL, NULL), 1);
	snprintf(shm, sizeof(shm), "%s-shm", f->path);
	assert_int_equal(access(shm, F_OK), -1);
	assert_int_equal(sqlite3_open_v2(f->path, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(c, 0);
	rc = sqlite3_prepare_v2(c, "SELECT count(*) FROM kv", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	assert_int_equal(rc & 0xff, SQLITE_BUSY);      /* (its schema cannot be read) */
	sqlite3_finalize(st);
	sqlite3_close(c);
	db_close(db);
	f->db = NULL;
	assert_int_equal(peek(f, "SELECT count(*) FROM kv"), 1);
}

UNIT_TEST_PROGRAM(setup, teardown,
	cmocka_unit_test(test_exec),
	cmocka_unit_test(test_values),
	cmocka_unit_test(test_u64_column),
	cmocka_unit_test(test_errors),
	cmocka_unit_test(test_disk_full),
	cmocka_unit_test(test_transactions),
	cmocka_unit_test(test_schema_version),
	cmocka_unit_test(test_symlink_refused),
	cmocka_unit_test(test_group_sync),
	cmocka_unit_test(test_group_sync_threads),
	cmocka_unit_test(test_exclusive),
)
