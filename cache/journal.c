/*
 * cache/journal.c — the durable upload journal: <cache_dir>/journal.db
 * (cache/db.h, durable: WAL, synchronous=FULL), one row per node with a
 * pending or given-up upload. It owns every SQL statement of the upload
 * module, what a failing journal means (a full disk is said once and
 * paused on), and the records it could not write: landed uploads whose
 * rows wait to be cleared and failed ones held back from being picked at
 * once again. See cache/upload_int.h for the functions and the lock
 * (q->db_lock) every one of them is called under.
 *
 * One record per node id: a newer generation replaces the row (upsert),
 * so the journal never holds stale content for a node.
 *
 * Durability (cache/db.h "Group sync"; the file is this process's only:
 * "Exclusive files"). Commits are written to the WAL without a sync each;
 * what must be durable when its caller returns is synced:
 *   - a new record (journal_upsert): by the caller, after it released
 *     q->db_lock, with journal_sync(journal_ticket()), so that the closes
 *     waiting at the same time share one fdatasync (group commit);
 *   - what the namespace operations change (cancel, rename), a conflict
 *     name chosen (journal_target) and a newer generation rebased onto
 *     a landed one (journal_landed): synced before the call returns;
 *   - the workers' bookkeeping (a landed record cleared, failures, retry
 *     times, content facts): lazily, with the next sync of any record or
 *     when a worker finds nothing to pick (journal_pick). Lost to a power
 *     cut before that, a landed upload is tried again and found on the
 *     service ("already ours"), as after a crash between an upload and its
 *     clearing.
 */
#include "cache/upload_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/db.h"
#include "lib/clock.h"
#include "lib/grow.h"
#include "lib/log.h"
#include "lib/privdir.h"

#define BUSY_TIMEOUT_MS    10000
#define JOURNAL_VERSION    2     /* 2: upload.content */
#define DB_TROUBLE_MIN_MS  1000    /* pause after a journal write failed (disk full) ... */
#define DB_TROUBLE_MAX_MS  16000   /* ... doubling up to this */
#define LAZY_SYNC_MS       1000    /* lazy writes are synced this long after, at most
				      (when a worker looks for work) */

enum stmt_id {
	ST_UPSERT, ST_PICK, ST_DONE, ST_BASE, ST_FAIL, ST_GIVEUP, ST_TARGET,
	ST_CONTENT, ST_DEFER, ST_CANCEL, ST_RENAME, ST_RENAME_DIR, ST_BUMP_ONE,
	ST_BUMP_ALL, ST_RETRY_NOW, ST_LOAD, ST_BAD, ST_REVIVED, ST_INLINE, ST_RESTORED,
	ST__COUNT
};

static const struct db_sql stmt_sql[ST__COUNT] = {
	[ST_UPSERT] = { "enqueue",
		"INSERT INTO upload (id, gen, path, content_file, size, md5, created, modified,"
		" base_md5, base_size, next_try, file_ino, file_mtime_ns, content, state)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 'pending')"
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
		"  file_mtime_ns = excluded.file_mtime_ns, lost_path = NULL,"
		/* the same generation enqueued again (a corrected base) without
		 * its bytes: those journalled stay */
		"  content = CASE WHEN excluded.content IS NOT NULL THEN excluded.content"
		"   WHEN excluded.gen = upload.gen THEN upload.content ELSE NULL END"
		" WHERE excluded.gen >= upload.gen" },
	[ST_PICK] = { "pick",
		"SELECT id, gen, path, content_file, size, md5, created, modified, base_md5,"
		" base_size, overwrite, attempts, hard_failures, next_try, target, file_ino,"
		" file_mtime_ns, last_resume FROM upload WHERE state = 'pending'"
		" ORDER BY next_try, id LIMIT ?1" },
	[ST_DONE] = { "clear", "DELETE FROM upload WHERE id = ?1 AND gen = ?2" },
	[ST_BASE] = { "update base",
		"UPDATE upload SET base_md5 = ?3, base_size = ?4, overwrite = 0"
		" WHERE id = ?1 AND gen > ?2 AND path = ?5 AND base_md5 = ?6 AND base_size = ?7"
		" AND overwrite = ?8" },
	[ST_FAIL] = { "record failure",
		"UPDATE upload SET attempts = ?3, hard_failures = ?4, next_try = ?5, last_error = ?6,"
		" last_resume = ?7 WHERE id = ?1 AND gen = ?2 AND state = 'pending'" },
	[ST_GIVEUP] = { "give up",
		"UPDATE upload SET state = 'given-up', attempts = ?3, hard_failures = ?4,"
		" last_error = ?5, lost_path = ?6 WHERE id = ?1 AND gen = ?2 AND state = 'pending'" },
	[ST_TARGET] = { "record conflict name",
		"UPDATE upload SET target = ?3 WHERE id = ?1 AND gen = ?2 AND path = ?4" },
	[ST_CONTENT] = { "update content",
		"UPDATE upload SET size = ?3, md5 = ?4, file_ino = ?5, file_mtime_ns = ?6,"
		/* journalled bytes that are no longer the content: dropped */
		" content = CASE WHEN size = ?3 AND md5 = ?4 THEN content ELSE NULL END"
		" WHERE id = ?1 AND gen = ?2" },
	[ST_DEFER] = { "defer", "UPDATE upload SET next_try = ?3 WHERE id = ?1 AND gen = ?2" },
	[ST_CANCEL] = { "cancel", "DELETE FROM upload WHERE id = ?1" },
	[ST_RENAME] = { "rename",
		/* a new file renamed over an existing one replaces it (POSIX rename) */
		"UPDATE upload SET path = ?2, target = NULL, overwrite = (overwrite OR base_size < 0),"
		/* a file given up (a refused name, most likely) is tried again */
		" state = 'pending', attempts = 0, hard_failures = 0, last_resume = -1,"
		" next_try = CASE WHEN state = 'pending' THEN next_try ELSE ?3 END, lost_path = NULL"
		" WHERE id = ?1 AND path <> ?2" },
	[ST_RENAME_DIR] = { "rename directory",
		"UPDATE upload SET path = ?2 || substr(path, length(?1) + 1), target = NULL,"
		" state = 'pending', attempts = 0, hard_failures = 0, last_resume = -1,"
		" next_try = CASE WHEN state = 'pending' THEN next_try ELSE ?3 END, lost_path = NULL"
		" WHERE substr(path, 1, length(?1)) = ?1" },
	[ST_BUMP_ONE] = { "reschedule",
		"UPDATE upload SET next_try = ?2 WHERE id = ?1 AND state = 'pending'"
		" AND attempts = 0 AND next_try > ?2" },
	[ST_BUMP_ALL] = { "reschedule",
		"UPDATE upload SET next_try = ?1 WHERE state = 'pending' AND attempts = 0"
		" AND next_try > ?1" },
	[ST_RETRY_NOW] = { "reschedule",
		"UPDATE upload SET next_try = ?1, attempts = 0 WHERE state = 'pending'"
		" AND next_try > ?1" },
	[ST_LOAD] = { "load", "SELECT id, gen, size, state FROM upload" },
	[ST_BAD] = { "set aside",
		"UPDATE upload SET state = 'given-up', last_error = 'malformed journal record'"
		" WHERE id = ?1" },
	[ST_REVIVED] = { "list directory",
		"SELECT id, gen, size FROM upload WHERE substr(path, 1, length(?1)) = ?1" },
	[ST_INLINE] = { "read journalled content",
		"SELECT id, content_file, size, file_mtime_ns, content FROM upload"
		" WHERE content IS NOT NULL" },
	[ST_RESTORED] = { "record restored content",
		"UPDATE upload SET file_ino = ?2, file_mtime_ns = ?3 WHERE id = ?1" },
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
	" lost_path     TEXT,"                /* where the content went when given up */
	" content       BLOB"                 /* small content whose file was not synced */
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
	char *file;                         /* <cache_dir>/journal.db */
	struct db *db;
	/* The journal cannot be written (disk full): said once per episode;
	 * held records are written back from trouble_until (monotonic). */
	int64_t trouble_until;
	unsigned trouble_level;
	/* Uploads that landed but whose record could not be cleared (never
	 * picked again, cleared when the journal can be written), and failed
	 * ones whose retry time could not be written. */
	struct uncleared *uncleared;
	unsigned n_uncleared;
	/* The last lazily durable write not yet synced (0: none), and since
	 * when (monotonic ms) there has been one. */
	uint64_t lazy_ticket;
	int64_t lazy_since;
};

int64_t journal_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- failures ---- */

/*
 * A failed journal operation (cache/db.h's fault hook). A full or failing
 * disk is said once until the journal can be written again, not once per
 * attempt; records held in memory meanwhile are written back after
 * trouble_until (1 s doubling to 16 s).
 */
static void journal_fault(void *ctx, const struct db_fault *f)
{
	struct journal *j = ctx;

	if (f->storage) {
		int64_t pause = (int64_t)DB_TROUBLE_MIN_MS << (j->trouble_level < 5 ?
							       j->trouble_level : 5);
		if (pause > DB_TROUBLE_MAX_MS)
			pause = DB_TROUBLE_MAX_MS;
		if (!j->trouble_level)
			log_err("upload journal '%s': %s failed: %s; finished uploads are cleared "
				"when it can be written again", f->path, f->what, f->msg);
		else
			log_debug("upload journal: %s failed again: %s", f->what, f->msg);
		j->trouble_level++;
		j->trouble_until = clock_mono_ms() + pause;
		return;
	}
	log_err("upload journal '%s': %s failed: %s", f->path, f->what, f->msg);
}

/* A write (outside a transaction) went through: the trouble is over. */
static void writable(struct journal *j)
{
	if (j->trouble_level && !db_in_tx(j->db)) {
		j->trouble_level = 0;
		j->trouble_until = 0;
		log_info("upload journal writable again; uploads go on");
	}
}

/* Run write statement @id with @args: the number of changed rows or -errno. */
static int exec_write(struct journal *j, enum stmt_id id, const struct db_val *args, size_t n)
{
	int r = db_exec(j->db, id, args, n, NULL, NULL);

	if (r >= 0)
		writable(j);
	return r;
}

/* The writes so far are to be durable soon (LAZY_SYNC_MS). */
static void lazy(struct journal *j)
{
	if (!j->lazy_ticket)
		j->lazy_since = clock_mono_ms();
	j->lazy_ticket = db_ticket(j->db);
}

/*
 * Sync the lazy writes that are due (or all of them, @now), unless a later
 * sync covered them already. Else *@wake_in (when not NULL) is lowered to
 * when they will be due.
 */
static void lazy_sync(struct journal *j, bool now, int64_t *wake_in)
{
	int64_t left;

	if (!j->lazy_ticket)
		return;
	if (db_synced(j->db, j->lazy_ticket)) {
		j->lazy_ticket = 0;
		return;
	}
	left = j->lazy_since + LAZY_SYNC_MS - clock_mono_ms();
	if (!now && left > 0) {
		if (wake_in && (*wake_in < 0 || *wake_in > left))
			*wake_in = left;
		return;
	}
	if (!db_sync(j->db, j->lazy_ticket))
		j->lazy_ticket = 0;
}

/* exec_write(), durable with the next sync (a lazy write). */
static int run(struct journal *j, enum stmt_id id, const struct db_val *args, size_t n)
{
	int r = exec_write(j, id, args, n);

	if (r > 0 && !db_in_tx(j->db))
		lazy(j);
	return r;
}

/* Make every write so far durable (a caller that needs it before it
 * returns, lock held). */
static int sync_now(struct journal *j)
{
	int err = db_sync(j->db, db_ticket(j->db));

	if (!err)
		j->lazy_ticket = 0;
	return err;
}

/* run(), durable before it returns (when it changed anything). */
static int run_durable(struct journal *j, enum stmt_id id, const struct db_val *args, size_t n)
{
	int r = run(j, id, args, n);

	if (r > 0 && sync_now(j))
		r = -EIO;
	return r;
}

uint64_t journal_ticket(struct journal *j)
{
	return db_ticket(j->db);
}

int journal_sync(struct journal *j, uint64_t ticket)
{
	return db_sync(j->db, ticket);
}

/* ---- open / close / load ---- */

/* Schema @from -> JOURNAL_VERSION (cache/db.h: in a transaction). */
static int journal_migrate(struct db *db, int from, void *ctx)
{
	struct journal *j = ctx;

	if (from > JOURNAL_VERSION) {
		log_err("upload journal '%s' was written by a newer jottafs (version %d); use "
			"that version or remove pending uploads by hand", j->file, from);
		return -EPROTO;
	}
	if (from == 1)
		return db_script(db, "ALTER TABLE upload ADD COLUMN content BLOB;",
				 "add the content column");
	return db_script(db, schema_sql, "create tables");
}

/*
 * Journalled content (upload.content): a small file's bytes, written with
 * its record in one sync instead of an fsync of its cache file as well
 * (dcache_config.inline_max). After a crash the cache file may have lost
 * them (a power cut, a kernel crash): every such record's cache file is
 * written again from the journal, synced, and its identity recorded, before
 * any worker looks at it. A record's bytes go when it does (the upload
 * landed: clean content of an unclean shutdown is dropped by the data
 * cache, cache/data.c) or when a newer generation replaces them.
 */
struct inline_row {
	uint64_t id;
	char *file;
	int64_t size, mtime_ns;
	void *data;
	size_t len;
};

struct inline_rows {
	struct inline_row *v;
	size_t n, cap;
};

static int inline_row(void *ctx, struct db_row *row)
{
	struct inline_rows *rs = ctx;
	const char *file = db_text(row, 1);
	size_t len = 0;
	const void *data = db_blob(row, 4, &len);
	struct inline_row *r;

	/* (an empty blob reads as NULL) */
	if (!file || (!data && len) || db_int(row, 2) != (int64_t)len)
		return 0;       /* not ours to mend: the worker judges the file */
	if (array_grow(&rs->v, &rs->cap, rs->n, sizeof(*rs->v), 16) < 0)
		return -ENOMEM;
	r = &rs->v[rs->n];
	memset(r, 0, sizeof(*r));
	r->id = db_u64(row, 0);
	r->size = db_int(row, 2);
	r->mtime_ns = db_int(row, 3);
	r->file = strdup(file);
	r->data = malloc(len ? len : 1);
	if (!r->file || !r->data) {
		free(r->file);
		free(r->data);
		return -ENOMEM;
	}
	if (len)
		memcpy(r->data, data, len);
	r->len = len;
	rs->n++;
	return 0;
}

/* Does open file @fd hold exactly @r's bytes (read back, not trusted by size)? */
static bool inline_same(int fd, const struct inline_row *r)
{
	char *buf = malloc(r->len + 1);
	size_t got = 0;
	ssize_t n = 1;

	if (!buf)
		return false;
	while (got <= r->len && (n = pread(fd, buf + got, r->len + 1 - got, (off_t)got)) > 0)
		got += (size_t)n;
	bool same = n >= 0 && got == r->len && (!r->len || !memcmp(buf, r->data, r->len));
	free(buf);
	return same;
}

/* Write @r's bytes into its cache file and sync it, unless the file holds
 * them already (a clean stop, or a crash the page cache outlived): 1 then,
 * else 0 or -errno. */
static int inline_write(const struct inline_row *r, struct stat *sb)
{
	int fd = privdir_open_file(AT_FDCWD, r->file, O_RDWR | O_CREAT, false);
	size_t done = 0;
	int err = 0;

	if (fd < 0)
		return fd;
	if (inline_same(fd, r)) {
		close(fd);
		return 1;
	}
	while (!err && done < r->len) {
		ssize_t n = pwrite(fd, (const char *)r->data + done, r->len - done, (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			err = -errno;
		else
			done += (size_t)n;
	}
	struct timespec ts[2] = {
		{ .tv_nsec = UTIME_OMIT },
		{ .tv_sec = r->mtime_ns / 1000000000, .tv_nsec = r->mtime_ns % 1000000000 },
	};
	if (!err && (ftruncate(fd, (off_t)r->size) || futimens(fd, ts) || fsync(fd) ||
		     fstat(fd, sb)))
		err = -errno;
	close(fd);
	return err;
}

static int journal_restore(struct journal *j)
{
	struct inline_rows rs = { 0 };
	int err = db_exec(j->db, ST_INLINE, DB_NOARGS, inline_row, &rs);
	size_t i, done = 0;

	for (i = 0; err >= 0 && i < rs.n; i++) {
		struct stat sb;
		int e = inline_write(&rs.v[i], &sb);
		if (e > 0)
			continue;       /* intact */
		if (e) {
			log_warn("upload journal: cannot restore the cache file '%s' of a pending "
				 "upload: %s", rs.v[i].file, strerror(-e));
			continue;       /* the worker reports what it finds there */
		}
		err = db_exec(j->db, ST_RESTORED,
			      DB_ARGS(DB_U64(rs.v[i].id), DB_U64((uint64_t)sb.st_ino),
				      DB_INT((int64_t)sb.st_mtim.tv_sec * 1000000000 +
					     sb.st_mtim.tv_nsec)), NULL, NULL);
		done++;
	}
	for (i = 0; i < rs.n; i++) {
		free(rs.v[i].file);
		free(rs.v[i].data);
	}
	free(rs.v);
	if (err >= 0 && done) {
		err = sync_now(j);
		log_debug("upload journal: %zu small pending files written back from the journal",
			  done);
	}
	return err < 0 ? err : 0;
}

int journal_open(const char *cache_dir, struct journal **out)
{
	struct journal *j = calloc(1, sizeof(*j));
	struct db_spec spec = {
		.label = "upload journal", .durable = true,
		.group_sync = true, .busy_ms = BUSY_TIMEOUT_MS,
		.version = JOURNAL_VERSION, .migrate = journal_migrate, .ctx = j,
		.sql = stmt_sql, .nsql = ST__COUNT, .fault = journal_fault,
	};
	int err;

	*out = NULL;
	if (!j)
		return -ENOMEM;
	j->cache_dir = strdup(cache_dir);
	if (!j->cache_dir || asprintf(&j->file, "%s/journal.db", cache_dir) < 0) {
		j->file = NULL;
		journal_close(j);
		return -ENOMEM;
	}
	spec.path = j->file;
	err = db_open(&spec, &j->db);
	if (!err)
		err = journal_restore(j);
	if (err) {
		journal_close(j);
		return err;
	}
	*out = j;
	return 0;
}

struct load_ctx {
	int (*fn)(void *ctx, uint64_t id, uint64_t gen, int64_t size, bool given_up);
	void *ctx;
};

static int load_row(void *ctx, struct db_row *row)
{
	struct load_ctx *c = ctx;
	const char *state = db_text(row, 3);

	return c->fn(c->ctx, db_u64(row, 0), db_u64(row, 1), db_int(row, 2),
		     state && strcmp(state, "given-up") == 0);
}

int journal_load(struct journal *j,
		 int (*fn)(void *ctx, uint64_t id, uint64_t gen, int64_t size, bool given_up),
		 void *ctx)
{
	struct load_ctx c = { fn, ctx };
	int n = db_exec(j->db, ST_LOAD, DB_NOARGS, load_row, &c);

	return n < 0 ? n : 0;
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
		lazy_sync(j, true, NULL);
	}
	while (j->uncleared) {
		struct uncleared *u = j->uncleared;
		j->uncleared = u->next;
		uncleared_free(u);
	}
	db_close(j->db);
	free(j->file);
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
	bool txn = u->at_path && db_begin(j->db) == 0;
	int n, rebased = 0;

	n = run(j, ST_DONE, DB_ARGS(DB_U64(u->id), DB_U64(u->gen)));
	/* a newer generation derived from this content: the server now has it */
	if (u->at_path && n >= 0 &&
	    (rebased = run(j, ST_BASE, DB_ARGS(DB_U64(u->id), DB_U64(u->gen), DB_TEXT(u->md5),
					       DB_INT(u->size), DB_TEXT(u->path),
					       DB_TEXT(u->base_md5), DB_INT(u->base_size),
					       DB_INT(u->overwrite)))) < 0)
		n = -EIO;
	if (txn) {
		if (db_end(j->db, n < 0 ? n : 0) < 0)
			n = -EIO;
		else
			writable(j);
	}
	/* A newer generation rebased: lost, it would take our own upload for
	 * a conflict after a power cut. Else a lazy write (see the top). */
	if (n >= 0 && rebased > 0 && sync_now(j))
		n = -EIO;
	else if (n > 0)
		lazy(j);
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
	return (it->times_only ? run : exec_write)(j, ST_UPSERT, DB_ARGS(DB_U64(it->id), DB_U64(it->gen),
						DB_TEXT(it->path), DB_TEXT(it->content_file),
						DB_INT(it->size), DB_TEXT(it->md5),
						DB_INT(it->created), DB_INT(it->modified),
						DB_TEXT(base_md5), DB_INT(base_size),
						DB_INT(next_try), DB_U64(ino), DB_INT(mtime_ns),
						it->inline_data ?
						DB_BLOB(it->inline_data, it->inline_len) :
						DB_NULL));
}

int journal_bump(struct journal *j, uint64_t id, bool all)
{
	if (all)
		return run(j, ST_BUMP_ALL, DB_ARGS(DB_INT(journal_now_ms())));
	return run(j, ST_BUMP_ONE, DB_ARGS(DB_U64(id), DB_INT(journal_now_ms())));
}

int journal_retry_now(struct journal *j)
{
	return run(j, ST_RETRY_NOW, DB_ARGS(DB_INT(journal_now_ms())));
}

int journal_cancel(struct journal *j, uint64_t id)
{
	return run_durable(j, ST_CANCEL, DB_ARGS(DB_U64(id)));
}

int journal_rename(struct journal *j, uint64_t id, const char *new_path)
{
	return run_durable(j, ST_RENAME, DB_ARGS(DB_U64(id), DB_TEXT(new_path),
					 DB_INT(journal_now_ms())));
}

int journal_rename_dir(struct journal *j, const char *old_prefix, const char *new_prefix)
{
	return run_durable(j, ST_RENAME_DIR, DB_ARGS(DB_TEXT(old_prefix), DB_TEXT(new_prefix),
					     DB_INT(journal_now_ms())));
}

struct under_ctx {
	uint64_t *ids;
	size_t n, cap;
};

static int under_row(void *ctx, struct db_row *row)
{
	struct under_ctx *c = ctx;

	if (array_grow(&c->ids, &c->cap, c->n, sizeof(*c->ids), 16) < 0)
		return -ENOMEM;
	c->ids[c->n++] = db_u64(row, 0);
	return 0;
}

int journal_under(struct journal *j, const char *prefix, uint64_t **ids, size_t *n)
{
	struct under_ctx c = { NULL, 0, 0 };
	int r = db_exec(j->db, ST_REVIVED, DB_ARGS(DB_TEXT(prefix)), under_row, &c);

	if (r < 0) {
		free(c.ids);
		c.ids = NULL;
		c.n = 0;
	}
	*ids = c.ids;
	*n = c.n;
	return r < 0 ? r : 0;
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
static int row_load(struct db_row *row, struct urec *r)
{
	const char *path = db_text(row, 2);
	const char *file = db_text(row, 3);
	const char *md5 = db_text(row, 5);
	const char *bmd5 = db_text(row, 8);
	const char *target = db_text(row, 14);

	memset(r, 0, sizeof(*r));
	r->id = db_u64(row, 0);
	r->gen = db_u64(row, 1);
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
	r->size = db_int(row, 4);
	memcpy(r->md5, md5, 33);
	r->created = db_int(row, 6);
	r->modified = db_int(row, 7);
	memcpy(r->base_md5, bmd5, strlen(bmd5) + 1);
	r->base_size = db_int(row, 9);
	r->overwrite = db_int(row, 10) != 0;
	r->attempts = (unsigned)db_int(row, 11);
	r->hard_failures = (unsigned)db_int(row, 12);
	r->ino = db_u64(row, 15);
	r->mtime_ns = db_int(row, 16);
	r->last_resume = db_int(row, 17);
	return r->size < 0 ? -EINVAL : 0;
}

struct pick_ctx {
	struct journal *j;
	enum pick_verdict (*fn)(void *ctx, uint64_t id, int64_t *wake_in);
	void *ctx;
	struct urec *r;
	int64_t *wake_in;
	int64_t now, mono;
	int result;               /* journal_pick()'s, when a row decided it */
};

/* One row of ST_PICK: 0 look at the next, 1 stop, -ENOMEM. */
static int pick_row(void *ctx, struct db_row *row)
{
	struct pick_ctx *c = ctx;
	uint64_t id = db_u64(row, 0);
	int64_t next_try = db_int(row, 13);
	enum pick_verdict v;
	int err;

	if (is_held(c->j, id, db_u64(row, 1), c->mono, c->wake_in))
		return 0;       /* landed or failed; the journal could not say so */
	v = c->fn(c->ctx, id, c->wake_in);
	if (v == PICK_SKIP)
		return 0;
	if (v == PICK_STOP)
		return 1;
	if (next_try > c->now) {
		*c->wake_in = next_try - c->now;
		return 1;
	}
	err = row_load(row, c->r);
	if (err == -EINVAL) {
		urec_release(c->r);
		c->r->id = id;
		*c->wake_in = 0;
		c->result = JOURNAL_BAD;
		return 1;
	}
	if (err)
		return err;
	c->result = 1;
	return 1;
}

int journal_pick(struct journal *j, unsigned limit,
		 enum pick_verdict (*fn)(void *ctx, uint64_t id, int64_t *wake_in), void *ctx,
		 struct urec *r, int64_t *wake_in)
{
	struct pick_ctx c = {
		.j = j, .fn = fn, .ctx = ctx, .r = r, .wake_in = wake_in,
		.now = journal_now_ms(), .mono = clock_mono_ms(),
	};
	int n;

	*wake_in = -1;
	uncleared_flush(j);
	/* busy and held rows are skipped: ask for enough to find one more */
	n = db_exec(j->db, ST_PICK, DB_ARGS(DB_INT(limit + j->n_uncleared)), pick_row, &c);
	/* the workers' lazy writes become durable: now if due, else the
	 * worker comes back for them when they are */
	if (n >= 0)
		lazy_sync(j, false, c.result == 0 ? wake_in : NULL);
	return n < 0 ? n : c.result;
}

int journal_set_aside(struct journal *j, uint64_t id)
{
	return run(j, ST_BAD, DB_ARGS(DB_U64(id)));
}

int journal_content(struct journal *j, const struct urec *r)
{
	return run(j, ST_CONTENT, DB_ARGS(DB_U64(r->id), DB_U64(r->gen), DB_INT(r->size),
					  DB_TEXT(r->md5), DB_U64(r->ino), DB_INT(r->mtime_ns)));
}

int journal_target(struct journal *j, const struct urec *r, const char *name)
{
	return run_durable(j, ST_TARGET, DB_ARGS(DB_U64(r->id), DB_U64(r->gen), DB_TEXT(name),
					 DB_TEXT(r->path)));
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
	return run(j, ST_GIVEUP, DB_ARGS(DB_U64(r->id), DB_U64(r->gen),
					 DB_INT(r->attempts + 1), DB_INT(r->hard_failures + 1),
					 DB_TEXT(why), DB_TEXT(lost)));
}

int journal_fail(struct journal *j, const struct urec *r, unsigned hard, int64_t delay_ms,
		 const char *why, int64_t last_resume)
{
	int n = run(j, ST_FAIL, DB_ARGS(DB_U64(r->id), DB_U64(r->gen), DB_INT(r->attempts + 1),
					DB_INT(hard), DB_INT(journal_now_ms() + delay_ms),
					DB_TEXT(why), DB_INT(last_resume)));

	if (n < 0)
		hold(j, r->id, r->gen, delay_ms);
	return n;
}

int journal_defer(struct journal *j, const struct urec *r, int64_t delay_ms)
{
	int n = run(j, ST_DEFER, DB_ARGS(DB_U64(r->id), DB_U64(r->gen),
					 DB_INT(journal_now_ms() + delay_ms)));

	if (n < 0)
		hold(j, r->id, r->gen, delay_ms);
	return n;
}
