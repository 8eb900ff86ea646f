/*
 * cache/db.h — the one SQLite layer of jottafs: open a database file
 * privately (0600, never through a symlink: lib/privdir.h) in WAL mode with
 * a busy timeout, keep its schema version (PRAGMA user_version) and migrate
 * it, prepare its statements from one table, and run any of them with one
 * helper that locks, binds, steps, resets and maps SQLite's result to
 * -errno in one place.
 *
 * Two databases, one layer:
 *   <cache_dir>/index.db    cache/meta.h: the metadata index and the state
 *                           of cached content (a cache: rebuilt by listing)
 *   <cache_dir>/journal.db  cache/upload.h: the durable upload journal
 *   <cache_dir>/deletes.db  cache/deletes.h: the journal of background
 *                           deletes (synchronous=NORMAL, like unlink(2))
 * They stay two files because
 *   - durability is per connection in SQLite: the journal's records are
 *     synced before the close() that wrote them returns (group sync,
 *     below: a close() that returned survives a power cut), the index's
 *     never (synchronous=NORMAL); one file would make every listing batch
 *     pay an fsync, or weaken the journal's promise;
 *   - their lifetimes differ: an index of another schema or another remote
 *     is emptied and refilled, a journal is never thrown away (a journal
 *     written by a newer jottafs stops the mount instead);
 *   - WAL allows one writer per file: a long listing transaction on the
 *     index never delays a close() waiting for its journal commit;
 *   - the files are an interface: crash, disk-full and security tests (and
 *     users repairing by hand) read journal.db's upload table directly,
 *     even while mounted; the index is a cache, held exclusively.
 *
 * Exclusive files. A database opened with spec.exclusive is used by this
 * process only (the daemon holds the cache directory's lock, fs/mount.c):
 * its connection takes the file lock once and keeps it (PRAGMA
 * locking_mode=EXCLUSIVE, no -shm file, no fcntl per transaction); another
 * process cannot read it until it is closed.
 *
 * Group sync. A durable database opened with spec.group_sync commits with
 * synchronous=NORMAL (frames are written to the WAL, not synced) and makes
 * them durable on request: db_ticket() names the writes made so far,
 * db_sync(ticket) returns once all of them are on disk (one fdatasync of
 * the WAL). Threads that sync at the same time share one fdatasync: the
 * first one syncs everything written up to then, the others wait for it
 * and return without syncing again (group commit). A write that nobody
 * syncs becomes durable with the next sync of any later write (the WAL is
 * one sequential file) or at a checkpoint.
 *
 * Locking. Each struct db has one mutex (recursive) guarding the
 * connection and its statements. db_exec() takes it for one statement;
 * db_lock()/db_begin() take it for a run of statements (a transaction, or
 * reads that must agree). Its owner may take its own memory locks while
 * holding it (upload's queue lock), never the reverse; it is never held
 * across network I/O. No other lock of jottafs is taken under it.
 *
 * Errors: 0 or -errno. SQLite result codes are mapped by db_errno() only:
 * SQLITE_FULL -ENOSPC, NOMEM -ENOMEM, BUSY/LOCKED -EBUSY, READONLY -EROFS,
 * PERM/AUTH/CANTOPEN -EACCES, anything else -EIO. Each failure is logged
 * once, naming the database and the statement, or handed to the owner's
 * fault hook instead (struct db_spec.fault).
 */
#ifndef JOTTAFS_CACHE_DB_H
#define JOTTAFS_CACHE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct db_row;                  /* one result row, valid inside a db_row_fn */

/* One entry of a statement table, indexed by the owner's enum. */
struct db_sql {
	const char *name;       /* short, for messages ("lookup") */
	const char *sql;        /* one statement, parameters ?1..?N */
};

/* A failure, as given to the fault hook. */
struct db_fault {
	const char *db;         /* the database's label ("index") */
	const char *path;
	const char *what;       /* the statement's name or step ("open") */
	const char *msg;        /* SQLite's message */
	int err;                /* db_errno() of the result: what the caller gets */
	bool storage;           /* the disk is full or failing: may pass by itself */
};

struct db_spec {
	const char *label;      /* for messages: "index", "upload journal" */
	const char *path;       /* the database file */
	/* true: WAL is required (else -EIO), commits use synchronous=FULL, and
	 * a newly made file's name is made durable (fsync of its directory).
	 * false: WAL when possible, synchronous=NORMAL. */
	bool durable;
	/* true: only this process opens the file (see "Exclusive files"). */
	bool exclusive;
	/* durable only: commits are made durable by db_sync() (see "Group
	 * sync"), not each by itself. */
	bool group_sync;
	int busy_ms;            /* SQLite busy timeout */
	/*
	 * Schema. @version is kept in PRAGMA user_version. When the file says
	 * otherwise (0: new, or made before versions were kept there),
	 * @migrate(db, from, ctx) runs in a transaction (db_script() and
	 * db_exec() are usable: statements are prepared when first used, the
	 * rest at the end of the open) and on success the version is set and
	 * committed. It returns 0 or -errno (the open then
	 * fails: -EPROTO for "made by a newer jottafs", say).
	 */
	int version;
	int (*migrate)(struct db *db, int from, void *ctx);
	void *ctx;              /* for migrate and fault */
	/* Run at every open after the migration, before the statements are
	 * prepared (temp tables, session pragmas); may be NULL. */
	const char *session_sql;
	const struct db_sql *sql;
	size_t nsql;
	/* NULL: log each failure. Else called instead of logging (with the
	 * lock held; it must not call back into this db). */
	void (*fault)(void *ctx, const struct db_fault *f);
};

/* Open (creating) the database of @spec; @spec is copied, its strings and
 * table must outlive the db. 0 or -errno (logged). */
int db_open(const struct db_spec *spec, struct db **out);
/* Finalize the statements and close. NULL is ignored. */
void db_close(struct db *db);

/* The one SQLite result code -> -errno mapping (0 for OK, ROW, DONE). */
int db_errno(int sqlite_rc);

/* A parameter of db_exec(): bound to ?1, ?2... in order. */
enum db_type { DB_T_NULL, DB_T_INT, DB_T_TEXT, DB_T_BLOB };
struct db_val {
	enum db_type type;
	int64_t i;
	const void *p;          /* text: NUL-terminated; NULL binds SQL NULL */
	size_t n;               /* blob length */
};
#define DB_NULL         ((struct db_val){ .type = DB_T_NULL })
#define DB_INT(v)       ((struct db_val){ .type = DB_T_INT, .i = (int64_t)(v) })
#define DB_U64(v)       ((struct db_val){ .type = DB_T_INT, .i = db_u64_to_i64(v) })
#define DB_TEXT(s)      ((struct db_val){ .type = DB_T_TEXT, .p = (s) })
#define DB_BLOB(ptr, len) ((struct db_val){ .type = DB_T_BLOB, .p = (ptr), .n = (len) })
/* A C string stored as a blob (bytes that may not be UTF-8; "" stays a
 * zero-length blob, not NULL). */
#define DB_NAME(s)      DB_BLOB((s), strlen(s))
/* The argument list of db_exec(): DB_ARGS(DB_INT(id), DB_TEXT(name)). */
#define DB_ARGS(...)    (const struct db_val[]){ __VA_ARGS__ }, \
			(sizeof((const struct db_val[]){ __VA_ARGS__ }) / sizeof(struct db_val))
#define DB_NOARGS       NULL, 0

/* uint64 ids and generations are stored as their int64 bit pattern. */
static inline int64_t db_u64_to_i64(uint64_t v)
{
	return v > INT64_MAX ? -(int64_t)(UINT64_MAX - v) - 1 : (int64_t)v;
}

/*
 * Called for each result row. Return 0 for the next row, > 0 to stop (the
 * row counts as delivered), < 0 to stop and fail db_exec() with that value.
 * Runs with the db's lock held: it may run other statements of this db
 * (not the one being stepped), nothing that takes another lock.
 */
typedef int (*db_row_fn)(void *ctx, struct db_row *r);

/*
 * Run statement @id of the table with @args (DB_ARGS(...) or DB_NOARGS),
 * under the db's lock: bind, step to the end (or until @row stops), reset.
 * Returns -errno (logged once); else the number of rows delivered to @row
 * or, without @row, the number of rows a query returned or a write changed.
 */
int db_exec(struct db *db, int id, const struct db_val *args, size_t nargs, db_row_fn row,
	    void *ctx);

/* Result columns, numbered from 0; valid inside @row only. */
int64_t db_int(struct db_row *r, int col);
uint64_t db_u64(struct db_row *r, int col);
/* Text (NULL for SQL NULL). */
const char *db_text(struct db_row *r, int col);
/* Bytes of a blob or text column and their number. */
const void *db_blob(struct db_row *r, int col, size_t *len);
/* Those bytes as a malloc'd NUL-terminated string ("" for NULL); NULL on ENOMEM. */
char *db_strdup(struct db_row *r, int col);
/* Copy a text column into @out (at most @size - 1 bytes; "" for NULL). */
void db_text_copy(struct db_row *r, int col, char *out, size_t size);

/* Hold the db's lock across several db_exec() calls (recursive). */
void db_lock(struct db *db);
void db_unlock(struct db *db);

/*
 * A write transaction: db_begin() takes the lock and begins (BEGIN
 * IMMEDIATE); on failure the lock is released and -errno returned.
 * db_end(db, err) commits when @err is 0, else (or when the commit fails)
 * rolls back if SQLite has not already; it releases the lock and returns
 * @err or the commit's error. Transactions do not nest.
 */
int db_begin(struct db *db);
int db_end(struct db *db, int err);
/* Inside a transaction (lock held)? */
bool db_in_tx(struct db *db);

/*
 * Group sync (spec.group_sync; without it both are no-ops returning 0):
 * db_ticket() names every write committed so far (call it after the write,
 * with or without the lock); db_sync(@ticket) returns when all of them are
 * durable: 0, or -errno (-EIO) when the WAL could not be synced (logged).
 * db_sync() may be called with or without the db's lock; without it, the
 * fdatasync of one thread serves every thread waiting meanwhile.
 * db_synced(@ticket): are those writes known durable already?
 */
uint64_t db_ticket(struct db *db);
int db_sync(struct db *db, uint64_t ticket);
bool db_synced(struct db *db, uint64_t ticket);
/* The number of syncs db_sync() made (tests, statistics). */
uint64_t db_syncs(struct db *db);

/* The rowid of the last INSERT (lock held). */
int64_t db_last_rowid(struct db *db);

/* Run a script of statements without results (migrations); -errno, logged
 * with @what. Lock held, or the db not yet shared. */
int db_script(struct db *db, const char *sql, const char *what);

#endif
