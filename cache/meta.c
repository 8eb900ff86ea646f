/*
 * cache/meta.c — see meta.h.
 *
 * Threading: one SQLite connection (opened with SQLITE_OPEN_NOMUTEX) and
 * its prepared statements, all used under m->lock. m->lock is a leaf lock:
 * nothing is called under it that could take another lock of ours, and no
 * callback runs under it except meta_children()'s (documented there).
 * Transactions begin and end within one call.
 *
 * Schema (version 1):
 *   info(key, value)          schema version, remote identity, clean flag,
 *                             last known quota ("usage capacity")
 *   nodes(...)                one row per node; see the CREATE below
 *   content(id, ...)          cache-file state per file (data cache)
 *   gc(id)                    cache files to delete
 */
#include "cache/meta.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#include "lib/log.h"
#include "lib/privdir.h"
#include "net/names.h"

#define META_SCHEMA_VERSION "2"
#define META_FOLD_RULE      "java-ci"   /* meta_fold()'s rule, kept as info "fold" */
#define META_STREAM_BATCH 2048

static const char *const meta_schema =
	"CREATE TABLE IF NOT EXISTS info(key TEXT PRIMARY KEY, value TEXT);"
	"CREATE TABLE IF NOT EXISTS nodes("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" parent INTEGER NOT NULL,"          /* 0 for the root */
	" name BLOB NOT NULL,"               /* POSIX name: bytes, maybe not UTF-8 */
	" sname TEXT NOT NULL,"              /* exact server name */
	" fold TEXT NOT NULL,"               /* meta_fold(sname) */
	" canonical INTEGER NOT NULL DEFAULT 1,"
	" is_dir INTEGER NOT NULL,"
	" size INTEGER NOT NULL DEFAULT 0,"
	" mtime INTEGER NOT NULL DEFAULT 0,"
	" created INTEGER NOT NULL DEFAULT 0,"
	" updated INTEGER NOT NULL DEFAULT 0,"
	" md5 TEXT NOT NULL DEFAULT '',"
	" revision INTEGER NOT NULL DEFAULT 0,"
	" listed_at INTEGER NOT NULL DEFAULT 0," /* dir: time of the last listing */
	" listed_gen INTEGER NOT NULL DEFAULT 0," /* dir: generation of that listing */
	" seen INTEGER NOT NULL DEFAULT 0,"     /* generation that last wrote the row */
	" local INTEGER NOT NULL DEFAULT 0,"
	" base_md5 TEXT NOT NULL DEFAULT '',"   /* file: the server revision local */
	" base_size INTEGER NOT NULL DEFAULT -1);" /* changes started from; -1 none */
	"CREATE UNIQUE INDEX IF NOT EXISTS nodes_sname ON nodes(parent, sname);"
	"CREATE INDEX IF NOT EXISTS nodes_name ON nodes(parent, name);"
	"CREATE INDEX IF NOT EXISTS nodes_fold ON nodes(parent, fold);"
	"CREATE TABLE IF NOT EXISTS content("
	" id INTEGER PRIMARY KEY,"
	" size INTEGER NOT NULL,"
	" md5 TEXT NOT NULL,"
	" verified INTEGER NOT NULL DEFAULT 0,"
	" dirty INTEGER NOT NULL DEFAULT 0,"
	" atime INTEGER NOT NULL DEFAULT 0,"
	" bytes INTEGER NOT NULL DEFAULT 0,"
	" ranges BLOB);"
	"CREATE INDEX IF NOT EXISTS content_lru ON content(dirty, atime);"
	"CREATE TABLE IF NOT EXISTS gc(id INTEGER PRIMARY KEY);"
	/* Names removed locally (unlink, rename away) at generation gen: a
	 * listing sent before that must not bring them back. */
	"CREATE TABLE IF NOT EXISTS tomb(parent INTEGER NOT NULL, sname TEXT NOT NULL,"
	" gen INTEGER NOT NULL, PRIMARY KEY(parent, sname));"
	"CREATE TEMP TABLE IF NOT EXISTS sub(id INTEGER PRIMARY KEY);";

#define NODE_COLS "id, parent, is_dir, size, mtime, created, updated, md5, revision, " \
		  "listed_at, local, base_md5, base_size, listed_gen"

/* The prepared statements, by index. */
#define META_STMTS(X)                                                                   \
	X(BEGIN, "BEGIN IMMEDIATE")                                                      \
	X(COMMIT, "COMMIT")                                                              \
	X(ROLLBACK, "ROLLBACK")                                                          \
	X(GET, "SELECT " NODE_COLS " FROM nodes WHERE id = ?1")                          \
	X(LOOKUP, "SELECT " NODE_COLS ", canonical FROM nodes WHERE parent = ?1"         \
		  " AND name = ?2 ORDER BY canonical DESC, sname LIMIT 2")                \
	X(TWINS, "SELECT sname, canonical FROM nodes WHERE parent = ?1 AND name = ?2")  \
	X(NAME_TAKEN, "SELECT 1 FROM nodes WHERE parent = ?1 AND name = ?2 LIMIT 1")    \
	X(NONCANON, "SELECT " NODE_COLS ", name, sname FROM nodes WHERE parent = ?1"      \
		    " AND canonical = 0")                                                 \
	X(LOOKUP_FOLD, "SELECT id, sname FROM nodes WHERE parent = ?1 AND fold = ?2 LIMIT 1") \
	X(CHILDREN, "SELECT " NODE_COLS ", name, sname, canonical FROM nodes"            \
		    " WHERE parent = ?1"                                                  \
		    " ORDER BY name, canonical DESC, sname")                             \
	X(COUNT, "SELECT count(*), coalesce(sum(is_dir), 0) FROM nodes WHERE parent = ?1") \
	X(PATH, "WITH RECURSIVE up(id, parent, sname, depth) AS ("                        \
		" SELECT id, parent, sname, 0 FROM nodes WHERE id = ?1"                 \
		" UNION ALL SELECT n.id, n.parent, n.sname, up.depth + 1"              \
		" FROM nodes n JOIN up ON n.id = up.parent WHERE up.depth < 4096)"     \
		" SELECT id, parent, sname FROM up ORDER BY depth DESC")               \
	X(NAMES, "SELECT name, sname FROM nodes WHERE id = ?1")                          \
	X(DIRSTATE, "SELECT is_dir, listed_at, listed_gen FROM nodes WHERE id = ?1")     \
	X(TOMB_GET, "SELECT gen FROM tomb WHERE parent = ?1 AND sname = ?2")             \
	X(TOMB_SET, "INSERT OR REPLACE INTO tomb(parent, sname, gen) VALUES(?1, ?2, ?3)") \
	X(TOMB_PRUNE, "DELETE FROM tomb WHERE parent = ?1 AND gen < ?2")                  \
	X(TOMB_DEL, "DELETE FROM tomb WHERE parent = ?1 AND sname = ?2")                  \
	X(CREATE, "INSERT INTO nodes(parent, name, sname, fold, canonical, is_dir, size,"  \
		  " mtime, created, listed_at, listed_gen, seen, local, base_size)"          \
		  " VALUES(?1, ?2, ?3, ?4, 1, ?5, 0, ?6, ?6, ?7, ?8, ?8, ?9, -1)")           \
	X(SET_LOCAL, "UPDATE nodes SET base_md5 = CASE WHEN local = 0 THEN md5 ELSE base_md5 END," \
		     " base_size = CASE WHEN local = 0 THEN size ELSE base_size END,"     \
		     " local = 1, size = ?2, mtime = ?3, md5 = ?4, seen = max(seen, ?5)"    \
		     " WHERE id = ?1 AND is_dir = 0")                                       \
	X(SET_CLEAN, "UPDATE nodes SET local = 0, size = ?2, md5 = ?3, mtime = ?4,"       \
		     " base_md5 = ?3, base_size = ?2, revision = 0, seen = max(seen, ?5)"   \
		     " WHERE id = ?1")                                                       \
	X(SET_MTIME, "UPDATE nodes SET mtime = ?2, seen = max(seen, ?3) WHERE id = ?1")   \
	X(SET_DIR_TIMES, "UPDATE nodes SET mtime = ?2, updated = ?3 WHERE id = ?1 AND is_dir")  \
	X(SET_BASE, "UPDATE nodes SET base_md5 = ?2, base_size = ?3 WHERE id = ?1")       \
	X(MOVE, "UPDATE nodes SET parent = ?2, name = ?3, sname = ?4, fold = ?5,"          \
		" canonical = ?6, seen = max(seen, ?7) WHERE id = ?1")                     \
	X(LOCALS, "SELECT id FROM nodes WHERE local != 0 AND id > ?1 ORDER BY id LIMIT 256") \
	X(BY_SNAME, "SELECT id, is_dir, size, md5, mtime, created, updated, seen, local," \
		    " name, canonical FROM nodes WHERE parent = ?1 AND sname = ?2")        \
	X(INSERT, "INSERT INTO nodes(parent, name, sname, fold, canonical, is_dir, size," \
		  " mtime, created, updated, md5, revision, seen)"                          \
		  " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)")          \
	X(UPDATE, "UPDATE nodes SET name = ?2, canonical = ?3, size = ?4, mtime = ?5,"   \
		  " created = ?6, updated = ?7, md5 = ?8,"                                \
		  " revision = CASE WHEN ?9 >= 0 THEN ?9 ELSE revision END,"                \
		  " seen = max(seen, ?10) WHERE id = ?1")                                   \
	X(TOUCH_SEEN, "UPDATE nodes SET seen = max(seen, ?2) WHERE id = ?1")              \
	X(SWEEP, "SELECT id, name, canonical, sname FROM nodes WHERE parent = ?1"          \
		 " AND seen < ?2 AND local = 0")                                          \
	X(LISTED, "UPDATE nodes SET listed_at = ?2, listed_gen = max(listed_gen, ?3)"    \
		  " WHERE id = ?1")                                                         \
	X(STALE, "UPDATE nodes SET listed_at = 0 WHERE id = ?1 AND listed_at > 0")       \
	X(SUB_CLEAR, "DELETE FROM temp.sub")                                             \
	X(SUB_FILL, "INSERT INTO temp.sub(id) WITH RECURSIVE s(id) AS (SELECT ?1"         \
		    " UNION ALL SELECT n.id FROM nodes n JOIN s ON n.parent = s.id)"      \
		    " SELECT id FROM s")                                                   \
	X(SUB_GC, "INSERT OR IGNORE INTO gc(id) SELECT id FROM content"                  \
		  " WHERE dirty = 0 AND id IN (SELECT id FROM temp.sub)")                  \
	X(SUB_CONTENT, "DELETE FROM content WHERE dirty = 0 AND id IN (SELECT id FROM temp.sub)") \
	X(SUB_NODES, "DELETE FROM nodes WHERE id IN (SELECT id FROM temp.sub)")          \
	X(CONTENT_DROP, "DELETE FROM content WHERE id = ?1 AND dirty = 0")               \
	X(GC_ADD, "INSERT OR IGNORE INTO gc(id) VALUES(?1)")                              \
	X(CGET, "SELECT size, md5, verified, dirty, atime, bytes, ranges FROM content"    \
		" WHERE id = ?1")                                                           \
	X(CPUT, "INSERT OR REPLACE INTO content(id, size, md5, verified, dirty, atime,"  \
		" bytes, ranges) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")                    \
	X(CTOUCH, "UPDATE content SET atime = ?2 WHERE id = ?1")                          \
	X(CDEL, "DELETE FROM content WHERE id = ?1")                                      \
	X(CUSAGE, "SELECT coalesce(sum(bytes), 0), coalesce(sum(CASE WHEN dirty THEN bytes" \
		  " ELSE 0 END), 0) FROM content")                                           \
	X(CLRU, "SELECT id FROM content WHERE dirty = 0 ORDER BY atime LIMIT ?1")          \
	X(GC_LIST, "SELECT id FROM gc LIMIT ?1")                                           \
	X(GC_DEL, "DELETE FROM gc WHERE id = ?1")                                          \
	X(CDROP_CLEAN, "INSERT OR IGNORE INTO gc(id) SELECT id FROM content WHERE dirty = 0") \
	X(CDEL_CLEAN, "DELETE FROM content WHERE dirty = 0")                               \
	X(INFO_GET, "SELECT value FROM info WHERE key = ?1")                               \
	X(INFO_SET, "INSERT OR REPLACE INTO info(key, value) VALUES(?1, ?2)")

enum meta_stmt_id {
#define X(id, sql) ST_##id,
	META_STMTS(X)
#undef X
	ST_COUNT_
};

static const char *const meta_sql[] = {
#define X(id, sql) sql,
	META_STMTS(X)
#undef X
};

struct meta {
	pthread_mutex_t lock;           /* protects everything below */
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT_];
	uint64_t gen;                   /* last generation handed out */
	bool was_clean;                 /* set at open, read-only afterwards */
};

/* Log an SQLite failure once per call site and map it to -errno. */
static int meta_fail(struct meta *m, int rc, const char *what)
{
	log_err("index: %s: %s", what, m->db ? sqlite3_errmsg(m->db) : sqlite3_errstr(rc));
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_READONLY:
		return -EROFS;
	default:
		return -EIO;
	}
}

/* A statement, reset and with its bindings cleared, ready to use. */
static sqlite3_stmt *stmt(struct meta *m, enum meta_stmt_id id)
{
	sqlite3_stmt *s = m->st[id];

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

/* Run a statement that returns no rows. */
static int exec_stmt(struct meta *m, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return meta_fail(m, rc, what);
	return 0;
}

static int tx_begin(struct meta *m)
{
	return exec_stmt(m, stmt(m, ST_BEGIN), "begin");
}

static int tx_commit(struct meta *m)
{
	return exec_stmt(m, stmt(m, ST_COMMIT), "commit");
}

static void tx_rollback(struct meta *m)
{
	sqlite3_stmt *s = stmt(m, ST_ROLLBACK);

	sqlite3_step(s);
	sqlite3_reset(s);
}

static void bind_i64(sqlite3_stmt *s, int i, int64_t v)
{
	sqlite3_bind_int64(s, i, v);
}

static void bind_text(sqlite3_stmt *s, int i, const char *t)
{
	sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC);
}

static void bind_name(sqlite3_stmt *s, int i, const char *name)
{
	/* A zero-length blob needs a non-NULL pointer to not become NULL. */
	sqlite3_bind_blob(s, i, name, (int)strlen(name), SQLITE_STATIC);
}

/* Copy a text/blob column into a malloc'd NUL-terminated string. */
static char *col_strdup(sqlite3_stmt *s, int i)
{
	const void *p = sqlite3_column_blob(s, i);
	int n = sqlite3_column_bytes(s, i);
	char *out = malloc((size_t)n + 1);

	if (!out)
		return NULL;
	if (n)
		memcpy(out, p, (size_t)n);
	out[n] = '\0';
	return out;
}

/* Fill @a from a row whose first columns are NODE_COLS. */
static void row_attr(sqlite3_stmt *s, struct meta_attr *a)
{
	const unsigned char *md5;

	memset(a, 0, sizeof(*a));
	a->id = (uint64_t)sqlite3_column_int64(s, 0);
	a->parent = (uint64_t)sqlite3_column_int64(s, 1);
	a->is_dir = sqlite3_column_int(s, 2) != 0;
	a->size = sqlite3_column_int64(s, 3);
	a->mtime = (time_t)sqlite3_column_int64(s, 4);
	a->created = (time_t)sqlite3_column_int64(s, 5);
	a->updated = (time_t)sqlite3_column_int64(s, 6);
	md5 = sqlite3_column_text(s, 7);
	if (md5)
		snprintf(a->md5, sizeof(a->md5), "%s", (const char *)md5);
	a->revision = sqlite3_column_int64(s, 8);
	a->listed_at = (time_t)sqlite3_column_int64(s, 9);
	a->local = sqlite3_column_int(s, 10);
	md5 = sqlite3_column_text(s, 11);
	if (md5)
		snprintf(a->base_md5, sizeof(a->base_md5), "%s", (const char *)md5);
	a->base_size = sqlite3_column_int64(s, 12);
	a->listed_gen = (uint64_t)sqlite3_column_int64(s, 13);
}

void meta_changes_release(struct meta_changes *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i].name);
	free(c->v);
	c->v = NULL;
	c->n = c->cap = 0;
}

/* Append a change; on ENOMEM the change is dropped (invalidation is best effort). */
static void change_add(struct meta_changes *c, enum meta_change_kind kind, uint64_t id,
		       uint64_t parent, const char *name)
{
	if (!c)
		return;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct meta_change *v = reallocarray(c->v, cap, sizeof(*v));
		if (!v)
			return;
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n].kind = kind;
	c->v[c->n].id = id;
	c->v[c->n].parent = parent;
	c->v[c->n].name = name ? strdup(name) : NULL;
	c->n++;
}

/* Decode one UTF-8 sequence (shortest form, scalar values only) at @s;
 * its length, or 0 when the byte at @s does not start a valid sequence. */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t n;

	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if (c >= 0xc2 && c <= 0xdf) {
		n = 2, c &= 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3, c &= 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4, c &= 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n > len)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

static size_t utf8_encode(uint32_t c, char *out)
{
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	} else if (c < 0x800) {
		out[0] = (char)(0xc0 | (c >> 6));
		out[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	} else if (c < 0x10000) {
		out[0] = (char)(0xe0 | (c >> 12));
		out[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (c >> 18));
	out[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	out[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

static locale_t fold_locale;
static pthread_once_t fold_once = PTHREAD_ONCE_INIT;

static void fold_init(void)
{
	fold_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

/*
 * Case folding as the service compares names: Java's
 * String.equalsIgnoreCase, which takes two UTF-16 units as equal when they
 * are, or their upper-case forms are, or the lower-case forms of those are
 * (Character.toUpperCase/toLowerCase: Unicode's simple mappings). The
 * third test implies the other two, so lower(upper(c)) is a key: equal
 * keys, equal names. 'I', 'i', dotless 'ı' and dotted 'İ' all fold to 'i';
 * 's' and long 'ſ' to 's'; 'ς' and 'σ' to 'σ'; the micro sign to 'μ'.
 * The simple mappings are glibc's C.UTF-8 tables (ASCII only if that
 * locale is missing).
 *
 * Code points outside the BMP are folded too, although a Java before 16
 * compares their surrogates unit by unit (without case): taking two names
 * as one when the service might not costs an EEXIST; the reverse would
 * let the second upload replace the first on the service.
 * Bytes that are not valid UTF-8 are kept as they are.
 */
char *meta_fold(const char *sname)
{
	const unsigned char *s = (const unsigned char *)sname;
	size_t len = strlen(sname), o = 0;
	char *out;

	pthread_once(&fold_once, fold_init);
	/* A mapped code point never needs more than 4 bytes per input byte. */
	out = malloc(len * 4 + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = utf8_decode(s + i, len - i, &cp);
		if (!n) {
			out[o++] = (char)s[i++];
			continue;
		}
		if (cp < 0x80)
			cp = (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
		else if (fold_locale)
			cp = (uint32_t)towlower_l(towupper_l((wint_t)cp, fold_locale), fold_locale);
		o += utf8_encode(cp, out + o);
		i += n;
	}
	out[o] = '\0';
	return out;
}

/* meta_fold() for SQL, to refold the index when the rule changes. */
static void sql_fold(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const char *sname = (const char *)sqlite3_value_text(argv[0]);
	char *f;

	(void)argc;
	if (!sname) {
		sqlite3_result_null(ctx);
		return;
	}
	f = meta_fold(sname);
	if (!f) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	sqlite3_result_text(ctx, f, -1, free);
}

/* info table accessors; called with m->lock held (or before threads). */
static char *info_get(struct meta *m, const char *key)
{
	sqlite3_stmt *s = stmt(m, ST_INFO_GET);
	char *v = NULL;

	bind_text(s, 1, key);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = col_strdup(s, 0);
	sqlite3_reset(s);
	return v;
}

static int info_set(struct meta *m, const char *key, const char *value)
{
	sqlite3_stmt *s = stmt(m, ST_INFO_SET);

	bind_text(s, 1, key);
	bind_text(s, 2, value);
	return exec_stmt(m, s, "info");
}


static int meta_exec(struct meta *m, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(m->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_err("index: %s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return rc == SQLITE_FULL ? -ENOSPC : -EIO;
	}
	return 0;
}

/* An index folded by an older rule (a simple lower-case map) is refolded
 * in place: its local changes must survive, so it is not started afresh. */
static int refold(struct meta *m)
{
	char *rule = info_get(m, "fold");
	bool same = rule && !strcmp(rule, META_FOLD_RULE);
	int err;

	free(rule);
	if (same)
		return 0;
	if (sqlite3_create_function(m->db, "jottafs_fold", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
				    NULL, sql_fold, NULL, NULL) != SQLITE_OK)
		return -EIO;
	err = meta_exec(m, "UPDATE nodes SET fold = jottafs_fold(sname) WHERE id != 1;");
	sqlite3_create_function(m->db, "jottafs_fold", 1, SQLITE_UTF8, NULL, NULL, NULL, NULL);
	if (!err)
		err = info_set(m, "fold", META_FOLD_RULE);
	return err;
}

/* Create the schema, check the version and identity, make the root row. */
static int meta_setup(struct meta *m, const char *identity)
{
	char *ver, *id, *clean;
	int err;

	err = meta_exec(m, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
			   " PRAGMA temp_store=MEMORY;"
			   " CREATE TABLE IF NOT EXISTS info(key TEXT PRIMARY KEY, value TEXT);");
	if (err)
		return err;
	/* Another schema version: the index is a cache, start it afresh (the
	 * content files become orphans, deleted as after an unclean stop). */
	{
		sqlite3_stmt *q;
		char *v = NULL;
		if (sqlite3_prepare_v2(m->db, "SELECT value FROM info WHERE key = 'schema'", -1, &q,
				       NULL) == SQLITE_OK) {
			if (sqlite3_step(q) == SQLITE_ROW)
				v = col_strdup(q, 0);
			sqlite3_finalize(q);
		}
		if (v && strcmp(v, META_SCHEMA_VERSION)) {
			log_info("index: schema %s, now %s: starting afresh", v, META_SCHEMA_VERSION);
			err = meta_exec(m, "DROP TABLE IF EXISTS nodes; DROP TABLE IF EXISTS content;"
					   " DROP TABLE IF EXISTS gc; DROP TABLE IF EXISTS tomb;"
					   " DELETE FROM info;");
		}
		free(v);
		if (err)
			return err;
	}
	err = meta_exec(m, meta_schema);
	if (err)
		return err;
	for (int i = 0; i < ST_COUNT_; i++) {
		int rc = sqlite3_prepare_v3(m->db, meta_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					    &m->st[i], NULL);
		if (rc != SQLITE_OK) {
			log_err("index: cannot prepare '%s': %s", meta_sql[i], sqlite3_errmsg(m->db));
			return -EIO;
		}
	}
	ver = info_get(m, "schema");
	id = info_get(m, "identity");
	clean = info_get(m, "clean");
	m->was_clean = clean && !strcmp(clean, "1");
	if (!ver && !id)
		m->was_clean = false;   /* new (or reset): no content to trust */
	if ((ver && strcmp(ver, META_SCHEMA_VERSION)) || (id && strcmp(id, identity))) {
		/* Another remote (or a future schema): start from scratch. The
		 * content files are deleted by the data cache's gc. */
		log_info("index: made for '%s', now '%s': starting afresh", id ? id : "?", identity);
		err = meta_exec(m, "BEGIN; INSERT OR IGNORE INTO gc(id) SELECT id FROM content;"
				   " DELETE FROM content; DELETE FROM nodes; COMMIT;");
		m->was_clean = false;
	}
	free(ver);
	free(id);
	free(clean);
	if (err)
		return err;
	err = meta_exec(m, "INSERT OR IGNORE INTO nodes(id, parent, name, sname, fold, is_dir, mtime)"
			   " VALUES(1, 0, x'', '', '', 1, strftime('%s', 'now'));");
	if (!err)
		err = refold(m);
	if (!err)
		err = info_set(m, "schema", META_SCHEMA_VERSION);
	if (!err)
		err = info_set(m, "identity", identity);
	if (!err)
		err = info_set(m, "clean", "0");
	if (!err) {
		sqlite3_stmt *s;
		if (sqlite3_prepare_v2(m->db, "SELECT max(coalesce((SELECT max(seen) FROM nodes), 0),"
				       " coalesce((SELECT max(listed_gen) FROM nodes), 0),"
				       " coalesce((SELECT max(gen) FROM tomb), 0))", -1, &s, NULL) == SQLITE_OK) {
			if (sqlite3_step(s) == SQLITE_ROW)
				m->gen = (uint64_t)sqlite3_column_int64(s, 0);
			sqlite3_finalize(s);
		}
		/* Never below the wall clock in microseconds: generations keep
		 * growing across restarts even if the last ones were lost. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
		if (m->gen < us)
			m->gen = us;
	}
	return err;
}

int meta_open(const char *path, const char *identity, struct meta **out)
{
	struct meta *m = calloc(1, sizeof(*m));
	int rc, err;

	*out = NULL;
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	/* 0600 (its -wal and -shm files take the same mode), never through a
	 * symlink: the index shows every name, size and MD5 of the mount. */
	err = privdir_sqlite_files(path);
	if (err) {
		char why[PATH_MAX + 200];
		log_err("index: %s", privdir_file_error(path, err, why, sizeof(why)));
		meta_close(m, false);
		return err;
	}
	rc = sqlite3_open_v2(path, &m->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			     SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK) {
		log_err("index: cannot open '%s': %s", path,
			m->db ? sqlite3_errmsg(m->db) : sqlite3_errstr(rc));
		meta_close(m, false);
		return rc == SQLITE_CANTOPEN ? -EACCES : -EIO;
	}
	sqlite3_busy_timeout(m->db, 5000);
	sqlite3_extended_result_codes(m->db, 1);
	err = meta_setup(m, identity);
	if (err) {
		meta_close(m, false);
		return err;
	}
	*out = m;
	return 0;
}

void meta_close(struct meta *m, bool clean)
{
	if (!m)
		return;
	if (clean && m->st[ST_INFO_SET])
		info_set(m, "clean", "1");
	for (int i = 0; i < ST_COUNT_; i++)
		sqlite3_finalize(m->st[i]);
	if (m->db && sqlite3_close(m->db) != SQLITE_OK)
		log_warn("index: close: %s", sqlite3_errmsg(m->db));
	pthread_mutex_destroy(&m->lock);
	free(m);
}

bool meta_was_clean(const struct meta *m)
{
	return m->was_clean;
}

int meta_quota_get(struct meta *m, int64_t *usage, int64_t *capacity)
{
	long long u, c;
	char *v;
	int err = 0;

	pthread_mutex_lock(&m->lock);
	v = info_get(m, "quota");
	pthread_mutex_unlock(&m->lock);
	if (!v || sscanf(v, "%lld %lld", &u, &c) != 2 || u < 0) {
		err = -ENOENT;
	} else {
		*usage = u;
		*capacity = c < 0 ? -1 : c;
	}
	free(v);
	return err;
}

int meta_quota_put(struct meta *m, int64_t usage, int64_t capacity)
{
	char v[64];
	int err;

	snprintf(v, sizeof(v), "%lld %lld", (long long)usage, (long long)capacity);
	pthread_mutex_lock(&m->lock);
	err = info_set(m, "quota", v);
	pthread_mutex_unlock(&m->lock);
	return err;
}

/* ---- server names that decode alike ("twins") ---------------------------- */

/*
 * Children of one folder whose server names decode to one POSIX name form
 * a group. A group of one shows its name. In a larger group the canonical
 * spelling (at most one: names_encode is a function) shows the name, and
 * every other member is shown as names_dup_name(name, names_dup_hash(sname,
 * r)) for the first round r whose name is free: no child of the folder has
 * it as its POSIX name, no other pending member of the group has the same
 * hash in that round, and no member settled in an earlier round has it. A
 * member with no free name in DUP_ROUNDS rounds stays hidden. Everything
 * depends only on the group's server names and on the folder's POSIX names,
 * never on row order, so meta_children() and meta_lookup() agree.
 */
#define DUP_ROUNDS 4

static int path_locked(struct meta *m, uint64_t id, char **path);

struct twin {
	char *sname;            /* non-canonical members only (else NULL) */
	bool canonical;
	char *shown;            /* the name shown (malloc'd); NULL: hidden */
	struct meta_attr a;     /* meta_children(): the row's attributes */
};

static void twins_release(struct twin *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(t[i].sname);
		free(t[i].shown);
	}
}

/* Is @name the POSIX name of a child of @parent? 1, 0 or -errno. Lock held. */
static int name_taken(struct meta *m, uint64_t parent, const char *name)
{
	sqlite3_stmt *s = stmt(m, ST_NAME_TAKEN);
	int rc;

	bind_i64(s, 1, (int64_t)parent);
	bind_name(s, 2, name);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : meta_fail(m, rc, "name");
}

struct hash_idx {
	uint32_t h;
	size_t i;
};

static int hash_idx_cmp(const void *a, const void *b)
{
	const struct hash_idx *x = a, *y = b;

	return x->h < y->h ? -1 : x->h > y->h;
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Set t[i].shown for group @t[0..n) of children of @parent named @name
 * (the rule above). O(n log n) plus one indexed query per member and round.
 * 0 or -errno. Lock held. */
static int twins_name(struct meta *m, uint64_t parent, const char *name, struct twin *t,
		      size_t n)
{
	struct hash_idx *p = NULL;
	uint32_t *settled = NULL;
	size_t np = 0, ns = 0;
	int err = 0;

	for (size_t i = 0; i < n; i++) {
		if (t[i].canonical || n == 1) {
			if (!(t[i].shown = strdup(name)))
				return -ENOMEM;
		}
	}
	if (n == 1)
		return 0;
	p = calloc(n, sizeof(*p));
	settled = calloc(n, sizeof(*settled));
	if (!p || !settled) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (!t[i].canonical && t[i].sname)
			p[np++].i = i;
	for (unsigned r = 0; r < DUP_ROUNDS && np && !err; r++) {
		size_t left = 0, ns0 = ns;

		for (size_t k = 0; k < np; k++)
			p[k].h = names_dup_hash(t[p[k].i].sname, r);
		qsort(p, np, sizeof(*p), hash_idx_cmp);
		for (size_t k = 0; k < np && !err; k++) {
			bool unique = (k == 0 || p[k - 1].h != p[k].h) &&
				      (k + 1 == np || p[k + 1].h != p[k].h);
			char *cand = NULL;
			int e;

			if (unique && ns0 && bsearch(&p[k].h, settled, ns0, sizeof(*settled), u32_cmp))
				unique = false;
			if (unique) {
				e = names_dup_name(name, p[k].h, &cand);
				if (e == -ENOMEM) {
					err = e;
					break;
				}
				if (e)
					continue;       /* no room for the tag: hidden */
				e = name_taken(m, parent, cand);
				if (e < 0) {
					free(cand);
					err = e;
					break;
				}
				if (e == 0) {
					t[p[k].i].shown = cand;
					settled[ns++] = p[k].h;
					continue;
				}
				free(cand);
			}
			p[left++] = p[k];
		}
		np = left;
		qsort(settled, ns, sizeof(*settled), u32_cmp);
	}
out:
	free(p);
	free(settled);
	return err;
}

/* Load the group of children of @parent named @name (snames of
 * non-canonical members only). *t malloc'd. 0 or -errno. Lock held. */
static int twins_load(struct meta *m, uint64_t parent, const char *name, struct twin **t,
		      size_t *n)
{
	sqlite3_stmt *s = stmt(m, ST_TWINS);
	struct twin *v = NULL;
	size_t cap = 0;
	int rc, err = 0;

	*t = NULL;
	*n = 0;
	bind_i64(s, 1, (int64_t)parent);
	bind_name(s, 2, name);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (*n == cap) {
			size_t nc = cap ? cap * 2 : 4;
			struct twin *nv = reallocarray(v, nc, sizeof(*nv));
			if (!nv) {
				err = -ENOMEM;
				break;
			}
			v = nv;
			cap = nc;
		}
		memset(&v[*n], 0, sizeof(v[*n]));
		v[*n].canonical = sqlite3_column_int(s, 1) != 0;
		if (!v[*n].canonical && !(v[*n].sname = col_strdup(s, 0))) {
			err = -ENOMEM;
			break;
		}
		(*n)++;
	}
	if (!err && rc != SQLITE_DONE)
		err = meta_fail(m, rc, "twins");
	sqlite3_reset(s);
	if (err) {
		twins_release(v, *n);
		free(v);
		*n = 0;
		return err;
	}
	*t = v;
	return 0;
}

/* The name shown for child @sname of @parent named @name: *shown malloc'd,
 * NULL when hidden. 0 or -errno. Lock held. */
static int twin_shown(struct meta *m, uint64_t parent, const char *name, const char *sname,
		      char **shown)
{
	struct twin *t;
	size_t n;
	int err = twins_load(m, parent, name, &t, &n);

	*shown = NULL;
	if (!err)
		err = twins_name(m, parent, name, t, n);
	for (size_t i = 0; !err && i < n; i++) {
		if (t[i].sname && !strcmp(t[i].sname, sname)) {
			*shown = t[i].shown;
			t[i].shown = NULL;
		}
	}
	twins_release(t, n);
	free(t);
	return err;
}

/* Does @name carry a tag names_dup_name() could have made from @sname? */
static bool may_be_twin_of(const char *name, const char *sname)
{
	char tag[32];

	for (unsigned r = 0; r < DUP_ROUNDS; r++) {
		snprintf(tag, sizeof(tag), NAMES_DUP_TAG "%08x)", (unsigned)names_dup_hash(sname, r));
		if (strstr(name, tag))
			return true;
	}
	return false;
}

/* meta_lookup() of a name that is no child's POSIX name: a suffixed twin?
 * Scans the folder's non-canonical children (rare), and only for names
 * that carry the tag. Lock held. */
static int lookup_twin(struct meta *m, uint64_t parent, const char *name, struct meta_attr *out)
{
	sqlite3_stmt *s;
	int rc, err = -ENOENT;

	if (!strstr(name, NAMES_DUP_TAG))
		return -ENOENT;
	s = stmt(m, ST_NONCANON);
	bind_i64(s, 1, (int64_t)parent);
	while (err == -ENOENT && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *sn = (const char *)sqlite3_column_text(s, 15);
		char *base, *sname, *shown = NULL;
		struct meta_attr a;

		if (!sn || !may_be_twin_of(name, sn))
			continue;
		row_attr(s, &a);
		base = col_strdup(s, 14);
		sname = strdup(sn);
		if (!base || !sname)
			err = -ENOMEM;
		else
			err = twin_shown(m, parent, base, sname, &shown);
		if (!err)
			err = shown && !strcmp(shown, name) ? 0 : -ENOENT;
		if (!err)
			*out = a;
		free(base);
		free(sname);
		free(shown);
	}
	if (err == -ENOENT && rc != SQLITE_DONE && rc != SQLITE_ROW)
		err = meta_fail(m, rc, "lookup");
	sqlite3_reset(s);
	return err;
}

/* A non-canonical entry a listing applied: folder and POSIX name. */
struct twin_note {
	uint64_t dir;
	char *name;
};

static void twin_notes_release(struct twin_note *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

/* Remember that non-canonical entry @name was listed in @dir. */
static int twin_note_add(struct twin_note **v, size_t *n, size_t *cap, uint64_t dir,
			 const char *name)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		struct twin_note *nv = reallocarray(*v, nc, sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = nc;
	}
	if (!((*v)[*n].name = strdup(name)))
		return -ENOMEM;
	(*v)[(*n)++].dir = dir;
	return 0;
}

static int twin_note_cmp(const void *a, const void *b)
{
	const struct twin_note *x = a, *y = b;

	if (x->dir != y->dir)
		return x->dir < y->dir ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* After a listing applied the entries noted in @v[0..n): where one decodes
 * like another child of its folder, say once per such entry which name it
 * is shown under (one pass per group). Lock held. */
static void twins_warn(struct meta *m, struct twin_note *v, size_t n)
{
	if (!n)
		return;
	qsort(v, n, sizeof(*v), twin_note_cmp);
	for (size_t i = 0; i < n; i++) {
		struct twin *t = NULL;
		size_t tn = 0;
		char *dir = NULL;

		if (i && !twin_note_cmp(&v[i - 1], &v[i]))
			continue;       /* group done */
		if (twins_load(m, v[i].dir, v[i].name, &t, &tn) || tn < 2 ||
		    twins_name(m, v[i].dir, v[i].name, t, tn) ||
		    path_locked(m, v[i].dir, &dir)) {
			twins_release(t, tn);
			free(t);
			continue;
		}
		for (size_t k = 0; k < tn; k++) {
			if (!t[k].sname)
				continue;
			if (t[k].shown)
				log_warn("listing: '%s%s%s' decodes to the same name as another entry "
					 "of its folder; shown as '%s'", dir, *dir ? "/" : "",
					 t[k].sname, t[k].shown);
			else
				log_warn("listing: '%s%s%s' decodes to the same name as another entry "
					 "of its folder and no free name is left for it; not shown",
					 dir, *dir ? "/" : "", t[k].sname);
		}
		free(dir);
		twins_release(t, tn);
		free(t);
	}
}

/* Report a change of non-canonical child @sname under the name a twin of
 * it would show, too (the kernel may hold that entry; best effort). */
static void change_add_twin(struct meta_changes *c, enum meta_change_kind kind, uint64_t id,
			    uint64_t parent, const char *name, const char *sname)
{
	char *shown = NULL;

	if (!c || names_dup_name(name, names_dup_hash(sname, 0), &shown))
		return;
	change_add(c, kind, id, parent, shown);
	free(shown);
}

int meta_get(struct meta *m, uint64_t id, struct meta_attr *out)
{
	sqlite3_stmt *s;
	int rc, err = 0;

	pthread_mutex_lock(&m->lock);
	s = stmt(m, ST_GET);
	bind_i64(s, 1, (int64_t)id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		row_attr(s, out);
	else
		err = rc == SQLITE_DONE ? -ENOENT : meta_fail(m, rc, "get");
	sqlite3_reset(s);
	pthread_mutex_unlock(&m->lock);
	return err;
}

int meta_lookup(struct meta *m, uint64_t parent, const char *name, struct meta_attr *out)
{
	sqlite3_stmt *s;
	int rc, err = 0;

	pthread_mutex_lock(&m->lock);
	s = stmt(m, ST_LOOKUP);
	bind_i64(s, 1, (int64_t)parent);
	bind_name(s, 2, name);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		/* The canonical spelling, or the only one, shows the name;
		 * twins that are all non-canonical show it for none. */
		bool canonical = sqlite3_column_int(s, 14) != 0;
		row_attr(s, out);
		if (!canonical && (rc = sqlite3_step(s)) != SQLITE_DONE)
			err = rc == SQLITE_ROW ? -ENOENT : meta_fail(m, rc, "lookup");
	} else {
		err = rc == SQLITE_DONE ? -ENOENT : meta_fail(m, rc, "lookup");
	}
	sqlite3_reset(s);
	if (err == -ENOENT)
		err = lookup_twin(m, parent, name, out);
	pthread_mutex_unlock(&m->lock);
	return err;
}

int meta_lookup_fold(struct meta *m, uint64_t parent, const char *sname, uint64_t *id,
		     char **found_sname)
{
	char *fold = meta_fold(sname);
	sqlite3_stmt *s;
	int rc, err = 0;

	*id = 0;
	if (found_sname)
		*found_sname = NULL;
	if (!fold)
		return -ENOMEM;
	pthread_mutex_lock(&m->lock);
	s = stmt(m, ST_LOOKUP_FOLD);
	bind_i64(s, 1, (int64_t)parent);
	bind_text(s, 2, fold);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*id = (uint64_t)sqlite3_column_int64(s, 0);
		if (found_sname && !(*found_sname = col_strdup(s, 1)))
			err = -ENOMEM;
	} else if (rc != SQLITE_DONE) {
		err = meta_fail(m, rc, "lookup");
	}
	sqlite3_reset(s);
	pthread_mutex_unlock(&m->lock);
	free(fold);
	return err;
}

/* meta_path() with the lock held. */
static int path_locked(struct meta *m, uint64_t id, char **path)
{
	sqlite3_stmt *s;
	size_t len = 0, cap = 128;
	char *buf = malloc(cap);
	bool rooted = false, first = true;
	int rc, err = 0;

	*path = NULL;
	if (!buf)
		return -ENOMEM;
	buf[0] = '\0';
	s = stmt(m, ST_PATH);
	bind_i64(s, 1, (int64_t)id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		uint64_t rid = (uint64_t)sqlite3_column_int64(s, 0);
		const char *sn = (const char *)sqlite3_column_text(s, 2);
		size_t n = (size_t)sqlite3_column_bytes(s, 2);
		if (first) {
			/* The topmost row must be the root, else the chain is broken. */
			rooted = rid == META_ROOT_ID && sqlite3_column_int64(s, 1) == 0;
			first = false;
			continue;
		}
		if (len + n + 2 > cap) {
			char *nb;
			while (len + n + 2 > cap)
				cap *= 2;
			nb = realloc(buf, cap);
			if (!nb) {
				err = -ENOMEM;
				break;
			}
			buf = nb;
		}
		if (len)
			buf[len++] = '/';
		memcpy(buf + len, sn ? sn : "", n);
		len += n;
		buf[len] = '\0';
	}
	if (!err && rc != SQLITE_DONE && rc != SQLITE_ROW)
		err = meta_fail(m, rc, "path");
	sqlite3_reset(s);
	if (!err && (first || !rooted))
		err = -ENOENT;
	if (err) {
		free(buf);
		return err;
	}
	*path = buf;
	return 0;
}

int meta_path(struct meta *m, uint64_t id, char **path)
{
	int err;

	pthread_mutex_lock(&m->lock);
	err = path_locked(m, id, path);
	pthread_mutex_unlock(&m->lock);
	return err;
}

int meta_names(struct meta *m, uint64_t id, char **name, char **sname)
{
	sqlite3_stmt *s;
	int rc, err = 0;

	if (name)
		*name = NULL;
	if (sname)
		*sname = NULL;
	pthread_mutex_lock(&m->lock);
	s = stmt(m, ST_NAMES);
	bind_i64(s, 1, (int64_t)id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if (name && !(*name = col_strdup(s, 0)))
			err = -ENOMEM;
		if (sname && !(*sname = col_strdup(s, 1)))
			err = -ENOMEM;
	} else {
		err = rc == SQLITE_DONE ? -ENOENT : meta_fail(m, rc, "names");
	}
	sqlite3_reset(s);
	pthread_mutex_unlock(&m->lock);
	if (err) {
		if (name) {
			free(*name);
			*name = NULL;
		}
		if (sname) {
			free(*sname);
			*sname = NULL;
		}
	}
	return err;
}

/* Hand group @t[0..n) of children named @name to @cb: the one child under
 * its name, or each twin under the name it shows. Lock held. */
static int children_emit(struct meta *m, uint64_t parent, const char *name, struct twin *t,
			 size_t n, meta_child_cb cb, void *ctx)
{
	int ret;

	if (n == 1)
		return cb(ctx, &t[0].a, name);
	ret = twins_name(m, parent, name, t, n);
	for (size_t i = 0; !ret && i < n; i++)
		if (t[i].shown)
			ret = cb(ctx, &t[i].a, t[i].shown);
	return ret;
}

int meta_children(struct meta *m, uint64_t parent, meta_child_cb cb, void *ctx)
{
	sqlite3_stmt *s;
	struct twin *g = NULL;          /* the current group of equal names */
	size_t gn = 0, gcap = 0;
	char *name = NULL;              /* its name */
	size_t name_len = 0;
	int rc, ret = 0;

	pthread_mutex_lock(&m->lock);
	s = stmt(m, ST_CHILDREN);
	bind_i64(s, 1, (int64_t)parent);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *rname = sqlite3_column_blob(s, 14);
		size_t len = (size_t)sqlite3_column_bytes(s, 14);
		struct twin *t;

		/* Rows come ordered by name: a group is a run of equal names. */
		if (!name || len != name_len || memcmp(name, rname, len)) {
			if (name) {
				ret = children_emit(m, parent, name, g, gn, cb, ctx);
				twins_release(g, gn);
				gn = 0;
				free(name);
				name = NULL;
				if (ret)
					break;
			}
			if (!(name = malloc(len + 1))) {
				ret = -ENOMEM;
				break;
			}
			if (len)
				memcpy(name, rname, len);
			name[len] = '\0';
			name_len = len;
		}
		if (gn == gcap) {
			size_t nc = gcap ? gcap * 2 : 4;
			struct twin *nv = reallocarray(g, nc, sizeof(*nv));
			if (!nv) {
				ret = -ENOMEM;
				break;
			}
			g = nv;
			gcap = nc;
		}
		t = &g[gn++];
		memset(t, 0, sizeof(*t));
		row_attr(s, &t->a);
		t->canonical = sqlite3_column_int(s, 16) != 0;
		if (!t->canonical && !(t->sname = col_strdup(s, 15))) {
			ret = -ENOMEM;
			break;
		}
	}
	if (!ret && rc != SQLITE_DONE)
		ret = meta_fail(m, rc, "children");
	sqlite3_reset(s);
	if (!ret && name)
		ret = children_emit(m, parent, name, g, gn, cb, ctx);
	twins_release(g, gn);
	pthread_mutex_unlock(&m->lock);
	free(g);
	free(name);
	return ret;
}

int meta_count_children(struct meta *m, uint64_t parent, uint64_t *all, uint64_t *dirs)
{
	sqlite3_stmt *s;
	int rc, err = 0;

	pthread_mutex_lock(&m->lock);
	s = stmt(m, ST_COUNT);
	bind_i64(s, 1, (int64_t)parent);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*all = (uint64_t)sqlite3_column_int64(s, 0);
		*dirs = (uint64_t)sqlite3_column_int64(s, 1);
	} else {
		err = meta_fail(m, rc, "count");
	}
	sqlite3_reset(s);
	pthread_mutex_unlock(&m->lock);
	return err;
}

uint64_t meta_gen_next(struct meta *m)
{
	uint64_t g;

	pthread_mutex_lock(&m->lock);
	g = ++m->gen;
	pthread_mutex_unlock(&m->lock);
	return g;
}

/* Remove @id and its subtree; clean content is queued for gc. Lock held, in a transaction. */
static int remove_subtree(struct meta *m, uint64_t id)
{
	sqlite3_stmt *s;
	int err;

	err = exec_stmt(m, stmt(m, ST_SUB_CLEAR), "remove");
	if (err)
		return err;
	s = stmt(m, ST_SUB_FILL);
	bind_i64(s, 1, (int64_t)id);
	err = exec_stmt(m, s, "remove");
	if (!err)
		err = exec_stmt(m, stmt(m, ST_SUB_GC), "remove");
	if (!err)
		err = exec_stmt(m, stmt(m, ST_SUB_CONTENT), "remove");
	if (!err)
		err = exec_stmt(m, stmt(m, ST_SUB_NODES), "remove");
	return err;
}

/* Drop the clean content of file @id (its revision changed). Lock held. */
static int drop_content(struct meta *m, uint64_t id)
{
	sqlite3_stmt *s = stmt(m, ST_GC_ADD);
	int err;

	bind_i64(s, 1, (int64_t)id);
	err = exec_stmt(m, s, "drop content");
	if (err)
		return err;
	s = stmt(m, ST_CONTENT_DROP);
	bind_i64(s, 1, (int64_t)id);
	return exec_stmt(m, s, "drop content");
}

/*
 * Insert or update child @e of @dir, written by generation @gen. @report_add:
 * report a new entry as META_ADDED. Lock held, in a transaction. The new or
 * existing id goes to *id (may be NULL).
 */
static int upsert(struct meta *m, uint64_t dir, uint64_t gen, const struct meta_entry *e,
		  bool report_add, struct meta_changes *ch, uint64_t *idp)
{
	sqlite3_stmt *s = stmt(m, ST_TOMB_GET);
	int rc, err;

	if (idp)
		*idp = 0;
	/* Removed here locally after this listing was sent: stays removed. */
	bind_i64(s, 1, (int64_t)dir);
	bind_text(s, 2, e->sname);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && (uint64_t)sqlite3_column_int64(s, 0) > gen) {
		sqlite3_reset(s);
		return 0;
	}
	sqlite3_reset(s);
	s = stmt(m, ST_BY_SNAME);

	bind_i64(s, 1, (int64_t)dir);
	bind_text(s, 2, e->sname);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		uint64_t id = (uint64_t)sqlite3_column_int64(s, 0);
		bool is_dir = sqlite3_column_int(s, 1) != 0;
		int64_t size = sqlite3_column_int64(s, 2);
		const char *md5 = (const char *)sqlite3_column_text(s, 3);
		bool same_md5 = !strcmp(md5 ? md5 : "", e->md5);
		time_t mtime = (time_t)sqlite3_column_int64(s, 4);
		time_t created = (time_t)sqlite3_column_int64(s, 5);
		time_t updated = (time_t)sqlite3_column_int64(s, 6);
		uint64_t seen = (uint64_t)sqlite3_column_int64(s, 7);
		int local = sqlite3_column_int(s, 8);
		sqlite3_reset(s);
		if (idp)
			*idp = id;
		if (local != META_LOCAL_NONE || seen > gen) {
			/* Local changes win; a newer listing already wrote the row. */
			s = stmt(m, ST_TOUCH_SEEN);
			bind_i64(s, 1, (int64_t)id);
			bind_i64(s, 2, (int64_t)gen);
			return exec_stmt(m, s, "upsert");
		}
		if (is_dir != e->is_dir) {
			/* Replaced by the other kind: a new node. */
			change_add(ch, META_REMOVED, id, dir, e->name);
			err = remove_subtree(m, id);
			if (err)
				return err;
			goto insert;
		}
		if (!e->is_dir && (!same_md5 || size != e->size)) {
			err = drop_content(m, id);
			if (err)
				return err;
			change_add(ch, META_CONTENT, id, dir, NULL);
		} else if (!e->is_dir && (mtime != e->mtime || created != e->created)) {
			change_add(ch, META_ATTR, id, dir, NULL);
		}
		s = stmt(m, ST_UPDATE);
		bind_i64(s, 1, (int64_t)id);
		bind_name(s, 2, e->name);
		bind_i64(s, 3, e->canonical);
		bind_i64(s, 4, e->is_dir ? 0 : e->size);
		bind_i64(s, 5, e->is_dir ? mtime : e->mtime);
		bind_i64(s, 6, e->is_dir ? created : e->created);
		bind_i64(s, 7, e->has_updated ? e->updated : updated);
		bind_text(s, 8, e->is_dir ? "" : e->md5);
		/* Revision: the listed number; unknown (0) for new content
		 * listed without one; kept (-1) when the content is unchanged. */
		bind_i64(s, 9, e->revision > 0 ? e->revision : (same_md5 && size == e->size ? -1 : 0));
		bind_i64(s, 10, (int64_t)gen);
		err = exec_stmt(m, s, "upsert");
		return err;
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return meta_fail(m, rc, "upsert");
insert: {
	char *fold = meta_fold(e->sname);
	if (!fold)
		return -ENOMEM;
	s = stmt(m, ST_INSERT);
	bind_i64(s, 1, (int64_t)dir);
	bind_name(s, 2, e->name);
	bind_text(s, 3, e->sname);
	bind_text(s, 4, fold);
	bind_i64(s, 5, e->canonical);
	bind_i64(s, 6, e->is_dir);
	bind_i64(s, 7, e->is_dir ? 0 : e->size);
	bind_i64(s, 8, e->is_dir && !e->mtime ? time(NULL) : e->mtime);
	bind_i64(s, 9, e->created);
	bind_i64(s, 10, e->has_updated ? e->updated : 0);
	bind_text(s, 11, e->is_dir ? "" : e->md5);
	bind_i64(s, 12, e->revision > 0 ? e->revision : 0);
	bind_i64(s, 13, (int64_t)gen);
	err = exec_stmt(m, s, "insert");
	free(fold);
	if (err)
		return err;
	if (idp)
		*idp = (uint64_t)sqlite3_last_insert_rowid(m->db);
	if (report_add) {
		uint64_t id = (uint64_t)sqlite3_last_insert_rowid(m->db);
		change_add(ch, META_ADDED, id, dir, e->name);
		if (!e->canonical)
			change_add_twin(ch, META_ADDED, id, dir, e->name, e->sname);
	}
	return 0;
}
}

/* Remove the children of @dir not written by @gen or later (and not local). Lock held, in a tx. */
static int sweep(struct meta *m, uint64_t dir, uint64_t gen, struct meta_changes *ch)
{
	sqlite3_stmt *s = stmt(m, ST_SWEEP);
	uint64_t *ids = NULL;
	size_t n = 0, cap = 0;
	int rc, err = 0;

	bind_i64(s, 1, (int64_t)dir);
	bind_i64(s, 2, (int64_t)gen);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			uint64_t *v = reallocarray(ids, nc, sizeof(*v));
			if (!v) {
				err = -ENOMEM;
				break;
			}
			ids = v;
			cap = nc;
		}
		ids[n] = (uint64_t)sqlite3_column_int64(s, 0);
		if (ch) {
			const char *name = sqlite3_column_blob(s, 1);
			int len = sqlite3_column_bytes(s, 1);
			char *copy = strndup(name ? name : "", (size_t)len);
			if (copy) {
				change_add(ch, META_REMOVED, ids[n], dir, copy);
				if (!sqlite3_column_int(s, 2))
					change_add_twin(ch, META_REMOVED, ids[n], dir, copy,
							(const char *)sqlite3_column_text(s, 3));
				free(copy);
			}
		}
		n++;
	}
	if (!err && rc != SQLITE_DONE)
		err = meta_fail(m, rc, "sweep");
	sqlite3_reset(s);
	for (size_t i = 0; !err && i < n; i++)
		err = remove_subtree(m, ids[i]);
	free(ids);
	return err;
}

/* Check that @dir can take a listing of generation @gen. Lock held. 1: skip
 * (a newer listing is applied already), 0: go, -errno. */
static int dir_check(struct meta *m, uint64_t dir, uint64_t gen, time_t *listed_at)
{
	sqlite3_stmt *s = stmt(m, ST_DIRSTATE);
	int rc, ret = 0;

	bind_i64(s, 1, (int64_t)dir);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		bool is_dir = sqlite3_column_int(s, 0) != 0;
		uint64_t lgen = (uint64_t)sqlite3_column_int64(s, 2);
		if (listed_at)
			*listed_at = (time_t)sqlite3_column_int64(s, 1);
		if (!is_dir)
			ret = -ENOTDIR;
		else if (lgen > gen)
			ret = 1;
	} else {
		ret = rc == SQLITE_DONE ? -ENOENT : meta_fail(m, rc, "dir state");
	}
	sqlite3_reset(s);
	return ret;
}

int meta_apply_listing(struct meta *m, uint64_t dir, uint64_t gen,
		       const struct meta_entry *v, size_t n, time_t now,
		       struct meta_changes *ch)
{
	struct twin_note *notes = NULL;
	size_t nnotes = 0, capnotes = 0;
	time_t listed_at = 0;
	sqlite3_stmt *s;
	int err;

	pthread_mutex_lock(&m->lock);
	err = tx_begin(m);
	if (err)
		goto out;
	err = dir_check(m, dir, gen, &listed_at);
	if (err) {
		tx_rollback(m);
		if (err == 1)
			err = 0;
		goto out;
	}
	for (size_t i = 0; !err && i < n; i++) {
		err = upsert(m, dir, gen, &v[i], listed_at != 0, ch, NULL);
		if (!err && !v[i].canonical)
			err = twin_note_add(&notes, &nnotes, &capnotes, dir, v[i].name);
	}
	if (!err)
		err = sweep(m, dir, gen, ch);
	if (!err) {
		s = stmt(m, ST_LISTED);
		bind_i64(s, 1, (int64_t)dir);
		bind_i64(s, 2, now);
		bind_i64(s, 3, (int64_t)gen);
		err = exec_stmt(m, s, "listed");
	}
	if (!err) {
		/* Removals older than this listing are reflected in it. */
		s = stmt(m, ST_TOMB_PRUNE);
		bind_i64(s, 1, (int64_t)dir);
		bind_i64(s, 2, (int64_t)gen);
		err = exec_stmt(m, s, "tomb");
	}
	if (!err)
		err = tx_commit(m);
	if (err)
		tx_rollback(m);
	else
		twins_warn(m, notes, nnotes);
out:
	pthread_mutex_unlock(&m->lock);
	twin_notes_release(notes, nnotes);
	return err;
}

int meta_upsert_child(struct meta *m, uint64_t dir, uint64_t gen, const struct meta_entry *e,
		      uint64_t *id)
{
	int err;

	pthread_mutex_lock(&m->lock);
	err = tx_begin(m);
	if (!err) {
		err = upsert(m, dir, gen, e, false, NULL, id);
		if (!err)
			err = tx_commit(m);
		if (err)
			tx_rollback(m);
	}
	pthread_mutex_unlock(&m->lock);
	return err;
}

int meta_remove(struct meta *m, uint64_t id, struct meta_changes *ch)
{
	uint64_t parent = 0;
	char *name = NULL;
	sqlite3_stmt *s;
	int err;

	if (id == META_ROOT_ID)
		return -EBUSY;
	pthread_mutex_lock(&m->lock);
	s = stmt(m, ST_GET);
	bind_i64(s, 1, (int64_t)id);
	if (sqlite3_step(s) == SQLITE_ROW)
		parent = (uint64_t)sqlite3_column_int64(s, 1);
	sqlite3_reset(s);
	s = stmt(m, ST_NAMES);
	bind_i64(s, 1, (int64_t)id);
	if (sqlite3_step(s) == SQLITE_ROW)
		name = col_strdup(s, 0);
	sqlite3_reset(s);
	if (!parent) {
		pthread_mutex_unlock(&m->lock);
		free(name);
		return -ENOENT;
	}
	err = tx_begin(m);
	if (!err) {
		err = remove_subtree(m, id);
		if (!err)
			err = tx_commit(m);
		if (err)
			tx_rollback(m);
	}
	pthread_mutex_unlock(&m->lock);
	if (!err)
		change_add(ch, META_REMOVED, id, parent, name ? name : "");
	free(name);
	return err;
}

int meta_set_stale(struct meta *m, uint64_t dir)
{
	sqlite3_stmt *s;
	int err;

	pthread_mutex_lock(&m->lock);
	s = stmt(m, ST_STALE);
	bind_i64(s, 1, (int64_t)dir);
	err = exec_stmt(m, s, "stale");
	pthread_mutex_unlock(&m->lock);
	return err;
}

/*
 * Recursive listings. Folders seen in the stream are kept in an
 * open-addressing hash from their server path (relative to the stream root)
 * to their node id; entries are buffered and applied META_STREAM_BATCH at a
 * time, each batch in one short transaction.
 */
struct stream_dir {
	char *path;             /* server path relative to the stream root */
	uint64_t id;
	bool skip;              /* a newer listing or a local change owns it */
	bool listed_before;     /* report new children as META_ADDED */
};

struct stream_item {
	char *parent;
	char *sname;
	char *name;
	struct meta_entry e;    /* e.sname/e.name point at the copies above */
};

struct meta_stream {
	struct meta *m;
	uint64_t root, gen;
	struct stream_dir *dirs;
	size_t ndirs, capdirs;
	size_t *slots;          /* index + 1 into dirs, 0 = free */
	size_t nslots;          /* power of two */
	struct stream_item *batch;
	size_t nbatch;
	uint64_t count;
	struct meta_changes *ch;
	struct twin_note *notes; /* non-canonical entries applied */
	size_t nnotes, capnotes;
	int err;                /* first error; the stream is then dead */
};

static uint64_t str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct stream_dir *stream_find(struct meta_stream *st, const char *path)
{
	size_t mask = st->nslots - 1;

	for (size_t i = str_hash(path) & mask;; i = (i + 1) & mask) {
		size_t x = st->slots[i];
		if (!x)
			return NULL;
		if (!strcmp(st->dirs[x - 1].path, path))
			return &st->dirs[x - 1];
	}
}

/* Add a folder; takes ownership of @path. */
static int stream_add_dir(struct meta_stream *st, char *path, uint64_t id, bool skip,
			  bool listed_before)
{
	size_t mask;

	if (st->ndirs == st->capdirs) {
		size_t cap = st->capdirs ? st->capdirs * 2 : 64;
		struct stream_dir *v = reallocarray(st->dirs, cap, sizeof(*v));
		if (!v) {
			free(path);
			return -ENOMEM;
		}
		st->dirs = v;
		st->capdirs = cap;
	}
	if ((st->ndirs + 1) * 2 > st->nslots) {
		size_t ns = st->nslots ? st->nslots * 2 : 128;
		size_t *slots = calloc(ns, sizeof(*slots));
		if (!slots) {
			free(path);
			return -ENOMEM;
		}
		free(st->slots);
		st->slots = slots;
		st->nslots = ns;
		for (size_t d = 0; d < st->ndirs; d++) {
			size_t i = str_hash(st->dirs[d].path) & (ns - 1);
			while (slots[i])
				i = (i + 1) & (ns - 1);
			slots[i] = d + 1;
		}
	}
	mask = st->nslots - 1;
	size_t i = str_hash(path) & mask;
	while (st->slots[i])
		i = (i + 1) & mask;
	st->dirs[st->ndirs] = (struct stream_dir){ path, id, skip, listed_before };
	st->slots[i] = ++st->ndirs;
	return 0;
}

int meta_stream_begin(struct meta *m, uint64_t root, uint64_t gen, struct meta_changes *ch,
		      struct meta_stream **out)
{
	struct meta_stream *st = calloc(1, sizeof(*st));
	time_t listed_at = 0;
	char *path = strdup("");
	int ret;

	*out = NULL;
	if (!st || !path) {
		free(st);
		free(path);
		return -ENOMEM;
	}
	st->m = m;
	st->root = root;
	st->gen = gen;
	st->ch = ch;
	st->batch = calloc(META_STREAM_BATCH, sizeof(*st->batch));
	if (!st->batch) {
		free(path);
		free(st);
		return -ENOMEM;
	}
	pthread_mutex_lock(&m->lock);
	ret = dir_check(m, root, gen, &listed_at);
	pthread_mutex_unlock(&m->lock);
	if (ret < 0) {
		free(path);
		free(st->batch);
		free(st);
		return ret;
	}
	ret = stream_add_dir(st, path, root, ret != 0, listed_at != 0);
	if (ret) {
		free(st->batch);
		free(st);
		return ret;
	}
	*out = st;
	return 0;
}

static void stream_item_free(struct stream_item *it)
{
	free(it->parent);
	free(it->sname);
	free(it->name);
	memset(it, 0, sizeof(*it));
}

/* Apply one buffered item. Lock held, in a transaction. */
static int stream_apply(struct meta_stream *st, struct stream_item *it)
{
	struct meta *m = st->m;
	struct stream_dir *d = stream_find(st, it->parent);
	uint64_t id = 0;
	char *path;
	int err;

	if (!d)
		return 0;       /* its folder was skipped or never listed: ignore */
	if (d->skip) {
		sqlite3_stmt *s;
		if (!it->e.is_dir)
			return 0;
		/* The folder's own listing is newer; follow existing sub-folders only. */
		s = stmt(m, ST_BY_SNAME);
		bind_i64(s, 1, (int64_t)d->id);
		bind_text(s, 2, it->sname);
		if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 1))
			id = (uint64_t)sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
		if (!id)
			return 0;
	} else {
		err = upsert(m, d->id, st->gen, &it->e, d->listed_before, st->ch, &id);
		if (!err && !it->e.canonical)
			err = twin_note_add(&st->notes, &st->nnotes, &st->capnotes, d->id, it->name);
		if (err)
			return err;
		if (!it->e.is_dir)
			return 0;
	}
	/* A folder: remember it for its children. */
	if (*it->parent) {
		if (asprintf(&path, "%s/%s", it->parent, it->sname) < 0)
			return -ENOMEM;
	} else if (!(path = strdup(it->sname))) {
		return -ENOMEM;
	}
	time_t listed_at = 0;
	int r = dir_check(m, id, st->gen, &listed_at);
	if (r < 0) {
		free(path);
		return r == -ENOTDIR ? 0 : r;
	}
	return stream_add_dir(st, path, id, r != 0, listed_at != 0);
}

static int stream_flush(struct meta_stream *st)
{
	struct meta *m = st->m;
	int err = 0;

	if (!st->nbatch)
		return 0;
	pthread_mutex_lock(&m->lock);
	err = tx_begin(m);
	for (size_t i = 0; !err && i < st->nbatch; i++)
		err = stream_apply(st, &st->batch[i]);
	if (!err)
		err = tx_commit(m);
	if (err)
		tx_rollback(m);
	pthread_mutex_unlock(&m->lock);
	for (size_t i = 0; i < st->nbatch; i++)
		stream_item_free(&st->batch[i]);
	st->nbatch = 0;
	return err;
}

int meta_stream_add(struct meta_stream *st, const char *parent_path, const struct meta_entry *e)
{
	struct stream_item *it;

	if (st->err)
		return st->err;
	if (!*parent_path && !*e->sname)
		return 0;       /* the listed folder itself */
	it = &st->batch[st->nbatch];
	it->parent = strdup(parent_path);
	it->sname = strdup(e->sname);
	it->name = strdup(e->name);
	if (!it->parent || !it->sname || !it->name) {
		stream_item_free(it);
		return st->err = -ENOMEM;
	}
	it->e = *e;
	it->e.sname = it->sname;
	it->e.name = it->name;
	st->nbatch++;
	st->count++;
	if (st->nbatch == META_STREAM_BATCH)
		st->err = stream_flush(st);
	return st->err;
}

uint64_t meta_stream_count(const struct meta_stream *st)
{
	return st->count;
}

int meta_stream_end(struct meta_stream *st, bool complete, time_t now)
{
	struct meta *m = st->m;
	struct meta_changes *ch = st->ch;
	int err;

	err = st->err ? st->err : stream_flush(st);
	if (!err && complete) {
		for (size_t i = 0; !err && i < st->ndirs; i += 256) {
			pthread_mutex_lock(&m->lock);
			err = tx_begin(m);
			for (size_t j = i; !err && j < st->ndirs && j < i + 256; j++) {
				struct stream_dir *d = &st->dirs[j];
				sqlite3_stmt *s;
				if (d->skip || dir_check(m, d->id, st->gen, NULL) != 0)
					continue;
				err = sweep(m, d->id, st->gen, ch);
				if (err)
					break;
				s = stmt(m, ST_LISTED);
				bind_i64(s, 1, (int64_t)d->id);
				bind_i64(s, 2, now);
				bind_i64(s, 3, (int64_t)st->gen);
				err = exec_stmt(m, s, "listed");
			}
			if (!err)
				err = tx_commit(m);
			if (err)
				tx_rollback(m);
			pthread_mutex_unlock(&m->lock);
		}
	}
	if (st->nnotes) {
		pthread_mutex_lock(&m->lock);
		twins_warn(m, st->notes, st->nnotes);
		pthread_mutex_unlock(&m->lock);
	}
	twin_notes_release(st->notes, st->nnotes);
	for (size_t i = 0; i < st->nbatch; i++)
		stream_item_free(&st->batch[i]);
	for (size_t i = 0; i < st->ndirs; i++)
		free(st->dirs[i].path);
	free(st->dirs);
	free(st->slots);
	free(st->batch);
	free(st);
	return err;
}

int meta_content_get(struct meta *m, uint64_t id, struct meta_content *out)
{
	sqlite3_stmt *s;
	int rc, err = 0;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&m->lock);
	s = stmt(m, ST_CGET);
	bind_i64(s, 1, (int64_t)id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const unsigned char *md5 = sqlite3_column_text(s, 1);
		int n = sqlite3_column_bytes(s, 6);
		out->size = sqlite3_column_int64(s, 0);
		if (md5)
			snprintf(out->md5, sizeof(out->md5), "%s", (const char *)md5);
		out->verified = sqlite3_column_int(s, 2) != 0;
		out->dirty = sqlite3_column_int(s, 3) != 0;
		out->atime = (time_t)sqlite3_column_int64(s, 4);
		out->bytes = sqlite3_column_int64(s, 5);
		if (n > 0) {
			out->ranges = malloc((size_t)n);
			if (!out->ranges)
				err = -ENOMEM;
			else
				memcpy(out->ranges, sqlite3_column_blob(s, 6), (size_t)n);
			out->ranges_len = (size_t)n;
		}
	} else {
		err = rc == SQLITE_DONE ? -ENOENT : meta_fail(m, rc, "content");
	}
	sqlite3_reset(s);
	pthread_mutex_unlock(&m->lock);
	if (err)
		meta_content_release(out);
	return err;
}

void meta_content_release(struct meta_content *c)
{
	free(c->ranges);
	c->ranges = NULL;
	c->ranges_len = 0;
}

int meta_content_put(struct meta *m, uint64_t id, const struct meta_content *c)
{
	sqlite3_stmt *s;
	int err;

	pthread_mutex_lock(&m->lock);
	s = stmt(m, ST_CPUT);
	bind_i64(s, 1, (int64_t)id);
	bind_i64(s, 2, c->size);
	bind_text(s, 3, c->md5);
	bind_i64(s, 4, c->verified);
	bind_i64(s, 5, c->dirty);
	bind_i64(s, 6, c->atime);
	bind_i64(s, 7, c->bytes);
	if (c->ranges_len)
		sqlite3_bind_blob(s, 8, c->ranges, (int)c->ranges_len, SQLITE_STATIC);
	err = exec_stmt(m, s, "content");
	pthread_mutex_unlock(&m->lock);
	return err;
}

int meta_content_touch(struct meta *m, uint64_t id, time_t atime)
{
	sqlite3_stmt *s;
	int err;

	pthread_mutex_lock(&m->lock);
	s = stmt(m, ST_CTOUCH);
	bind_i64(s, 1, (int64_t)id);
	bind_i64(s, 2, atime);
	err = exec_stmt(m, s, "content");
	pthread_mutex_unlock(&m->lock);
	return err;
}

int meta_content_delete(struct meta *m, uint64_t id)
{
	sqlite3_stmt *s;
	int err;

	pthread_mutex_lock(&m->lock);
	s = stmt(m, ST_CDEL);
	bind_i64(s, 1, (int64_t)id);
	err = exec_stmt(m, s, "content");
	pthread_mutex_unlock(&m->lock);
	return err;
}

int meta_content_usage(struct meta *m, int64_t *total, int64_t *dirty)
{
	sqlite3_stmt *s;
	int rc, err = 0;

	pthread_mutex_lock(&m->lock);
	s = stmt(m, ST_CUSAGE);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*total = sqlite3_column_int64(s, 0);
		*dirty = sqlite3_column_int64(s, 1);
	} else {
		err = meta_fail(m, rc, "usage");
	}
	sqlite3_reset(s);
	pthread_mutex_unlock(&m->lock);
	return err;
}

/* Collect up to @max ids from the one-column statement @id bound with ?1 = max. */
static int collect_ids(struct meta *m, enum meta_stmt_id id, uint64_t *ids, size_t max,
		       size_t *n)
{
	sqlite3_stmt *s = stmt(m, id);
	int rc;

	*n = 0;
	bind_i64(s, 1, (int64_t)max);
	while (*n < max && (rc = sqlite3_step(s)) == SQLITE_ROW)
		ids[(*n)++] = (uint64_t)sqlite3_column_int64(s, 0);
	if (*n < max && rc != SQLITE_DONE) {
		sqlite3_reset(s);
		return meta_fail(m, rc, "ids");
	}
	sqlite3_reset(s);
	return 0;
}

/* Collect up to @max ids from statement @id bound with ?1 = @after. Lock held. */
static int collect_ids_after(struct meta *m, enum meta_stmt_id id, uint64_t after,
			     uint64_t *ids, size_t max, size_t *n)
{
	sqlite3_stmt *s = stmt(m, id);
	int rc = SQLITE_DONE;

	*n = 0;
	bind_i64(s, 1, (int64_t)after);
	while (*n < max && (rc = sqlite3_step(s)) == SQLITE_ROW)
		ids[(*n)++] = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return meta_fail(m, rc, "ids");
	return 0;
}

int meta_content_lru(struct meta *m, uint64_t *ids, size_t max, size_t *n)
{
	int err;

	pthread_mutex_lock(&m->lock);
	err = collect_ids(m, ST_CLRU, ids, max, n);
	pthread_mutex_unlock(&m->lock);
	return err;
}

int meta_gc_take(struct meta *m, uint64_t *ids, size_t max, size_t *n)
{
	int err;

	pthread_mutex_lock(&m->lock);
	err = collect_ids(m, ST_GC_LIST, ids, max, n);
	for (size_t i = 0; !err && i < *n; i++) {
		sqlite3_stmt *s = stmt(m, ST_GC_DEL);
		bind_i64(s, 1, (int64_t)ids[i]);
		err = exec_stmt(m, s, "gc");
	}
	pthread_mutex_unlock(&m->lock);
	return err;
}

int meta_content_drop_clean(struct meta *m)
{
	int err;

	pthread_mutex_lock(&m->lock);
	err = tx_begin(m);
	if (!err)
		err = exec_stmt(m, stmt(m, ST_CDROP_CLEAN), "drop clean");
	if (!err)
		err = exec_stmt(m, stmt(m, ST_CDEL_CLEAN), "drop clean");
	if (!err)
		err = tx_commit(m);
	if (err)
		tx_rollback(m);
	pthread_mutex_unlock(&m->lock);
	return err;
}

/* ---- local changes ----------------------------------------------------- */

/* Parent and server name of @id. Lock held. */
static int node_place(struct meta *m, uint64_t id, uint64_t *parent, char **sname)
{
	sqlite3_stmt *s = stmt(m, ST_GET);
	int rc;

	bind_i64(s, 1, (int64_t)id);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		return rc == SQLITE_DONE ? -ENOENT : meta_fail(m, rc, "node");
	}
	*parent = (uint64_t)sqlite3_column_int64(s, 1);
	sqlite3_reset(s);
	s = stmt(m, ST_NAMES);
	bind_i64(s, 1, (int64_t)id);
	rc = sqlite3_step(s);
	*sname = rc == SQLITE_ROW ? col_strdup(s, 1) : NULL;
	sqlite3_reset(s);
	return *sname ? 0 : -ENOMEM;
}

static int tomb_set(struct meta *m, uint64_t parent, const char *sname, uint64_t gen)
{
	sqlite3_stmt *s = stmt(m, ST_TOMB_SET);

	bind_i64(s, 1, (int64_t)parent);
	bind_text(s, 2, sname);
	bind_i64(s, 3, (int64_t)gen);
	return exec_stmt(m, s, "tomb");
}

static int tomb_del(struct meta *m, uint64_t parent, const char *sname)
{
	sqlite3_stmt *s = stmt(m, ST_TOMB_DEL);

	bind_i64(s, 1, (int64_t)parent);
	bind_text(s, 2, sname);
	return exec_stmt(m, s, "tomb");
}

/* Id of the child of @parent with server name @sname, 0 if none. Lock held. */
static uint64_t child_by_sname(struct meta *m, uint64_t parent, const char *sname)
{
	sqlite3_stmt *s = stmt(m, ST_BY_SNAME);
	uint64_t id = 0;

	bind_i64(s, 1, (int64_t)parent);
	bind_text(s, 2, sname);
	if (sqlite3_step(s) == SQLITE_ROW)
		id = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return id;
}

int meta_create(struct meta *m, uint64_t parent, const char *name, const char *sname,
		bool is_dir, time_t now, uint64_t *id)
{
	char *fold = meta_fold(sname);
	sqlite3_stmt *s;
	uint64_t gen;
	int err;

	*id = 0;
	if (!fold)
		return -ENOMEM;
	pthread_mutex_lock(&m->lock);
	gen = ++m->gen;
	err = tx_begin(m);
	if (err)
		goto out;
	err = dir_check(m, parent, 0, NULL);
	if (err > 0)
		err = 0;
	if (!err && child_by_sname(m, parent, sname))
		err = -EEXIST;
	if (!err) {
		s = stmt(m, ST_CREATE);
		bind_i64(s, 1, (int64_t)parent);
		bind_name(s, 2, name);
		bind_text(s, 3, sname);
		bind_text(s, 4, fold);
		bind_i64(s, 5, is_dir);
		bind_i64(s, 6, now);
		bind_i64(s, 7, is_dir ? now : 0);
		bind_i64(s, 8, (int64_t)gen);
		bind_i64(s, 9, is_dir ? META_LOCAL_NONE : META_LOCAL_DIRTY);
		err = exec_stmt(m, s, "create");
	}
	if (!err) {
		*id = (uint64_t)sqlite3_last_insert_rowid(m->db);
		err = tomb_del(m, parent, sname);
	}
	if (!err)
		err = tx_commit(m);
	if (err)
		tx_rollback(m);
out:
	pthread_mutex_unlock(&m->lock);
	free(fold);
	return err;
}

int meta_set_local(struct meta *m, uint64_t id, int64_t size, time_t mtime, const char *md5)
{
	sqlite3_stmt *s;
	int err;

	pthread_mutex_lock(&m->lock);
	s = stmt(m, ST_SET_LOCAL);
	bind_i64(s, 1, (int64_t)id);
	bind_i64(s, 2, size);
	bind_i64(s, 3, mtime);
	bind_text(s, 4, md5 ? md5 : "");
	bind_i64(s, 5, (int64_t)++m->gen);
	err = exec_stmt(m, s, "set local");
	if (!err && !sqlite3_changes(m->db))
		err = -ENOENT;
	pthread_mutex_unlock(&m->lock);
	return err;
}

int meta_set_clean(struct meta *m, uint64_t id, int64_t size, const char *md5, time_t mtime)
{
	sqlite3_stmt *s;
	int err;

	pthread_mutex_lock(&m->lock);
	s = stmt(m, ST_SET_CLEAN);
	bind_i64(s, 1, (int64_t)id);
	bind_i64(s, 2, size);
	bind_text(s, 3, md5);
	bind_i64(s, 4, mtime);
	bind_i64(s, 5, (int64_t)++m->gen);
	err = exec_stmt(m, s, "set clean");
	if (!err && !sqlite3_changes(m->db))
		err = -ENOENT;
	pthread_mutex_unlock(&m->lock);
	return err;
}

int meta_set_mtime(struct meta *m, uint64_t id, time_t mtime)
{
	sqlite3_stmt *s;
	int err;

	pthread_mutex_lock(&m->lock);
	s = stmt(m, ST_SET_MTIME);
	bind_i64(s, 1, (int64_t)id);
	bind_i64(s, 2, mtime);
	bind_i64(s, 3, (int64_t)++m->gen);
	err = exec_stmt(m, s, "set mtime");
	pthread_mutex_unlock(&m->lock);
	return err;
}

int meta_set_dir_times(struct meta *m, uint64_t id, time_t mtime, time_t ctime)
{
	sqlite3_stmt *s;
	int err;

	pthread_mutex_lock(&m->lock);
	s = stmt(m, ST_SET_DIR_TIMES);
	bind_i64(s, 1, (int64_t)id);
	bind_i64(s, 2, mtime);
	bind_i64(s, 3, ctime);
	err = exec_stmt(m, s, "set folder times");
	pthread_mutex_unlock(&m->lock);
	return err;
}

int meta_set_base(struct meta *m, uint64_t id, int64_t size, const char *md5)
{
	sqlite3_stmt *s;
	int err;

	pthread_mutex_lock(&m->lock);
	s = stmt(m, ST_SET_BASE);
	bind_i64(s, 1, (int64_t)id);
	bind_text(s, 2, md5);
	bind_i64(s, 3, size);
	err = exec_stmt(m, s, "set base");
	pthread_mutex_unlock(&m->lock);
	return err;
}

int meta_rename(struct meta *m, uint64_t id, uint64_t parent, const char *name,
		const char *sname, uint64_t *replaced)
{
	char *fold = meta_fold(sname), *old_sname = NULL;
	uint64_t old_parent = 0, target = 0, gen;
	sqlite3_stmt *s;
	int err;

	if (replaced)
		*replaced = 0;
	if (!fold)
		return -ENOMEM;
	pthread_mutex_lock(&m->lock);
	gen = ++m->gen;
	err = tx_begin(m);
	if (err)
		goto out;
	err = node_place(m, id, &old_parent, &old_sname);
	if (!err) {
		err = dir_check(m, parent, 0, NULL);
		if (err > 0)
			err = 0;
	}
	if (!err) {
		target = child_by_sname(m, parent, sname);
		if (!target) {
			s = stmt(m, ST_LOOKUP_FOLD);
			bind_i64(s, 1, (int64_t)parent);
			bind_text(s, 2, fold);
			if (sqlite3_step(s) == SQLITE_ROW)
				target = (uint64_t)sqlite3_column_int64(s, 0);
			sqlite3_reset(s);
		}
		if (target == id)
			target = 0;     /* a case-only rename of itself */
		if (target)
			err = remove_subtree(m, target);
	}
	if (!err) {
		s = stmt(m, ST_MOVE);
		bind_i64(s, 1, (int64_t)id);
		bind_i64(s, 2, (int64_t)parent);
		bind_name(s, 3, name);
		bind_text(s, 4, sname);
		bind_text(s, 5, fold);
		bind_i64(s, 6, 1);
		bind_i64(s, 7, (int64_t)gen);
		err = exec_stmt(m, s, "rename");
	}
	if (!err && (old_parent != parent || strcmp(old_sname, sname)))
		err = tomb_set(m, old_parent, old_sname, gen);
	if (!err)
		err = tomb_del(m, parent, sname);
	if (!err)
		err = tx_commit(m);
	if (err)
		tx_rollback(m);
	else if (replaced)
		*replaced = target;
out:
	pthread_mutex_unlock(&m->lock);
	free(fold);
	free(old_sname);
	return err;
}

int meta_unlink(struct meta *m, uint64_t id)
{
	uint64_t parent = 0, gen;
	char *sname = NULL;
	int err;

	if (id == META_ROOT_ID)
		return -EBUSY;
	pthread_mutex_lock(&m->lock);
	gen = ++m->gen;
	err = tx_begin(m);
	if (err)
		goto out;
	err = node_place(m, id, &parent, &sname);
	if (!err)
		err = remove_subtree(m, id);
	if (!err)
		err = tomb_set(m, parent, sname, gen);
	if (!err)
		err = tx_commit(m);
	if (err)
		tx_rollback(m);
out:
	pthread_mutex_unlock(&m->lock);
	free(sname);
	return err;
}

int meta_local_nodes(struct meta *m, int (*cb)(void *ctx, uint64_t id), void *ctx)
{
	uint64_t ids[256], last = 0;
	size_t n;
	int err;

	do {
		pthread_mutex_lock(&m->lock);
		err = collect_ids_after(m, ST_LOCALS, last, ids, 256, &n);
		pthread_mutex_unlock(&m->lock);
		for (size_t i = 0; !err && i < n; i++)
			err = cb(ctx, ids[i]);
		if (n)
			last = ids[n - 1];
	} while (!err && n == 256);
	return err;
}
