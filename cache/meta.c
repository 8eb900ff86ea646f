/*
 * cache/meta.c — the metadata index (see meta.h): opening index.db, its
 * schema and migration, the recorded quota, case folding of server names,
 * the node queries (get, lookup, path, names, children) and the local
 * changes of the write path (create, set_*, rename, unlink). Listings are
 * applied in meta_listing.c, twins named in meta_twins.c, content records
 * kept in meta_content.c (meta_int.h lists them).
 *
 * Threading: one SQLite connection behind cache/db.h; every call runs
 * under the db's lock, a leaf lock: nothing is called under it that could
 * take another lock of ours, and no callback runs under it except
 * meta_children()'s (documented there). Transactions begin and end within
 * one call.
 *
 * Schema (version 2, in PRAGMA user_version):
 *   info(key, value)          remote identity, clean flag, fold rule,
 *                             last known quota ("usage capacity")
 *   nodes(...)                one row per node; see the CREATE below
 *   content(id, ...)          cache-file state per file (data cache)
 *   gc(id)                    cache files to delete
 *   tomb(parent, sname, gen)  names removed locally (see meta.h)
 */
#include "cache/meta_int.h"

#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wctype.h>

#include "lib/buf.h"
#include "lib/grow.h"
#include "lib/log.h"
#include "lib/utf8.h"

#define META_SCHEMA_VERSION 2
#define META_FOLD_RULE      "java-ci"   /* meta_fold()'s rule, kept as info "fold" */
#define META_BUSY_MS        5000

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
	" gen INTEGER NOT NULL, PRIMARY KEY(parent, sname));";

/* Every connection: the scratch table of subtree removals, in memory. */
static const char *const meta_session =
	"PRAGMA temp_store=MEMORY;"
	"CREATE TEMP TABLE IF NOT EXISTS sub(id INTEGER PRIMARY KEY);";

static const struct db_sql meta_sql[ST_COUNT_] = {
#define X(id, sql) [ST_##id] = { #id, sql },
	META_STMTS(X)
#undef X
};

/* ---- rows and small helpers ---------------------------------------------- */

void meta_row_attr(struct db_row *r, struct meta_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->id = db_u64(r, 0);
	a->parent = db_u64(r, 1);
	a->is_dir = db_int(r, 2) != 0;
	a->size = db_int(r, 3);
	a->mtime = (time_t)db_int(r, 4);
	a->created = (time_t)db_int(r, 5);
	a->updated = (time_t)db_int(r, 6);
	db_text_copy(r, 7, a->md5, sizeof(a->md5));
	a->revision = db_int(r, 8);
	a->listed_at = (time_t)db_int(r, 9);
	a->local = (int)db_int(r, 10);
	db_text_copy(r, 11, a->base_md5, sizeof(a->base_md5));
	a->base_size = db_int(r, 12);
	a->listed_gen = db_u64(r, 13);
}

/* db_row_fn: NODE_COLS into *(struct meta_attr *)ctx; stops. */
static int row_attr1(void *ctx, struct db_row *r)
{
	meta_row_attr(r, ctx);
	return 1;
}

int meta_row_u64(void *ctx, struct db_row *r)
{
	*(uint64_t *)ctx = db_u64(r, 0);
	return 1;
}

/* db_row_fn: the first column copied into *(char **)ctx; stops. */
static int row_str(void *ctx, struct db_row *r)
{
	char **out = ctx;

	*out = db_strdup(r, 0);
	return *out ? 1 : -ENOMEM;
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

void meta_change_add(struct meta_changes *c, enum meta_change_kind kind, uint64_t id,
		     uint64_t parent, const char *name)
{
	if (!c || array_grow(&c->v, &c->cap, c->n, sizeof(*c->v), 16))
		return;
	c->v[c->n].kind = kind;
	c->v[c->n].id = id;
	c->v[c->n].parent = parent;
	c->v[c->n].name = name ? strdup(name) : NULL;
	c->n++;
}

/* ---- case folding --------------------------------------------------------- */

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

/* ---- open, schema, info ----------------------------------------------------- */

/* Value of info @key, malloc'd; NULL when unset (or on ENOMEM). */
static char *info_get(struct db *db, const char *key)
{
	char *v = NULL;

	db_exec(db, ST_INFO_GET, DB_ARGS(DB_TEXT(key)), row_str, &v);
	return v;
}

static int info_set(struct db *db, const char *key, const char *value)
{
	return wr(db_exec(db, ST_INFO_SET, DB_ARGS(DB_TEXT(key), DB_TEXT(value)), NULL, NULL));
}

/*
 * db.h migration of index.db from version @from (0: new, or made before
 * the version was kept in user_version; those kept it as info "schema").
 * The index is a cache: another schema starts afresh (the content files
 * become orphans, deleted as after an unclean stop).
 */
static int meta_migrate(struct db *db, int from, void *ctx)
{
	char *legacy = NULL;
	int err;

	if (from == 0) {
		err = db_script(db, "CREATE TABLE IF NOT EXISTS info(key TEXT PRIMARY KEY,"
				" value TEXT);", "schema");
		if (err)
			return err;
		legacy = info_get(db, "schema");
	}
	if (from != 0 || (legacy && strcmp(legacy, "2"))) {
		if (legacy)
			log_info("index: schema %s, now %d: starting afresh", legacy,
				 META_SCHEMA_VERSION);
		else
			log_info("index: schema %d, now %d: starting afresh", from,
				 META_SCHEMA_VERSION);
		err = db_script(db, "DROP TABLE IF EXISTS nodes; DROP TABLE IF EXISTS content;"
				" DROP TABLE IF EXISTS gc; DROP TABLE IF EXISTS tomb;"
				" DROP TABLE IF EXISTS info;", "schema");
		if (err) {
			free(legacy);
			return err;
		}
	}
	free(legacy);
	return db_script(db, meta_schema, "schema");
}

struct fold_ctx {
	struct meta *m;
	int err;
};

static int refold_row(void *ctx, struct db_row *r)
{
	struct fold_ctx *c = ctx;
	char *f = meta_fold(db_text(r, 1) ? db_text(r, 1) : "");
	int n;

	if (!f)
		return -ENOMEM;
	n = db_exec(c->m->db, ST_SET_FOLD, DB_ARGS(DB_INT(db_int(r, 0)), DB_TEXT(f)), NULL,
		    NULL);
	free(f);
	return n < 0 ? n : 0;
}

/* An index folded by an older rule (a simple lower-case map) is refolded
 * in place: its local changes must survive, so it is not started afresh. */
static int refold(struct meta *m)
{
	char *rule = info_get(m->db, "fold");
	bool same = rule && !strcmp(rule, META_FOLD_RULE);
	struct fold_ctx c = { m, 0 };
	int err;

	free(rule);
	if (same)
		return 0;
	err = db_begin(m->db);
	if (err)
		return err;
	err = db_exec(m->db, ST_FOLDS, DB_NOARGS, refold_row, &c);
	if (err >= 0)
		err = info_set(m->db, "fold", META_FOLD_RULE);
	return db_end(m->db, err);
}

/* Check the identity, make the root row, find the last generation. */
static int meta_setup(struct meta *m, const char *identity)
{
	char *id = info_get(m->db, "identity"), *clean = info_get(m->db, "clean");
	uint64_t gen = 0;
	int err = 0;

	m->was_clean = id && clean && !strcmp(clean, "1");  /* new: no content to trust */
	if (id && strcmp(id, identity)) {
		/* Another remote: start from scratch. The content files are
		 * deleted by the data cache's gc. */
		log_info("index: made for '%s', now '%s': starting afresh", id, identity);
		err = db_begin(m->db);
		if (!err) {
			err = WRITE0(m, ST_RESET_GC);
			if (!err)
				err = WRITE0(m, ST_RESET_CONTENT);
			if (!err)
				err = WRITE0(m, ST_RESET_NODES);
			err = db_end(m->db, err);
		}
		m->was_clean = false;
	}
	free(id);
	free(clean);
	if (!err)
		err = WRITE(m, ST_ROOT, DB_INT(time(NULL)));
	if (!err)
		err = refold(m);
	if (!err)
		err = info_set(m->db, "identity", identity);
	if (!err)
		err = info_set(m->db, "clean", "0");
	if (!err && db_exec(m->db, ST_MAX_GEN, DB_NOARGS, meta_row_u64, &gen) >= 0)
		m->gen = gen;
	if (!err) {
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
	struct db_spec spec = {
		/* only this process opens it (fs/mount.c locks the cache directory) */
		.label = "index", .path = path, .durable = false, .exclusive = true,
		.busy_ms = META_BUSY_MS,
		.version = META_SCHEMA_VERSION, .migrate = meta_migrate, .ctx = m,
		.session_sql = meta_session, .sql = meta_sql, .nsql = ST_COUNT_,
	};
	int err;

	*out = NULL;
	if (!m)
		return -ENOMEM;
	err = db_open(&spec, &m->db);
	if (!err)
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
	if (clean && m->db)
		info_set(m->db, "clean", "1");
	db_close(m->db);
	free(m);
}

bool meta_was_clean(const struct meta *m)
{
	return m->was_clean;
}

int meta_quota_get(struct meta *m, int64_t *usage, int64_t *capacity)
{
	long long u, c;
	char *v = info_get(m->db, "quota");
	int err = 0;

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

	snprintf(v, sizeof(v), "%lld %lld", (long long)usage, (long long)capacity);
	return info_set(m->db, "quota", v);
}

uint64_t meta_gen_next(struct meta *m)
{
	uint64_t g;

	db_lock(m->db);
	g = ++m->gen;
	db_unlock(m->db);
	return g;
}

/* ---- node queries ------------------------------------------------------------ */

int meta_get(struct meta *m, uint64_t id, struct meta_attr *out)
{
	return found(db_exec(m->db, ST_GET, DB_ARGS(DB_U64(id)), row_attr1, out));
}

struct lookup_ctx {
	struct meta_attr a;
	int err;
};

static int lookup_row(void *ctx, struct db_row *r)
{
	struct lookup_ctx *c = ctx;

	if (c->err == 1) {
		/* a second spelling after a non-canonical first: twins that
		 * are all non-canonical show the name for none */
		c->err = -ENOENT;
		return 1;
	}
	meta_row_attr(r, &c->a);
	/* The canonical spelling, or the only one, shows the name. */
	c->err = db_int(r, NODE_NCOLS) ? 0 : 1;
	return !c->err;
}

int meta_lookup(struct meta *m, uint64_t parent, const char *name, struct meta_attr *out)
{
	struct lookup_ctx c;
	int n;

	c.err = -ENOENT;
	db_lock(m->db);
	n = db_exec(m->db, ST_LOOKUP, DB_ARGS(DB_U64(parent), DB_NAME(name)), lookup_row, &c);
	if (n >= 0)
		n = c.err == 1 ? 0 : c.err;
	if (!n)
		*out = c.a;
	else if (n == -ENOENT)
		n = meta_lookup_twin(m, parent, name, out);
	db_unlock(m->db);
	return n;
}

struct fold_found {
	uint64_t id;
	char **sname;
};

static int fold_row(void *ctx, struct db_row *r)
{
	struct fold_found *f = ctx;

	f->id = db_u64(r, 0);
	if (f->sname && !(*f->sname = db_strdup(r, 1)))
		return -ENOMEM;
	return 1;
}

int meta_lookup_fold(struct meta *m, uint64_t parent, const char *sname, uint64_t *id,
		     char **found_sname)
{
	char *fold = meta_fold(sname);
	struct fold_found f = { 0, found_sname };
	int n;

	*id = 0;
	if (found_sname)
		*found_sname = NULL;
	if (!fold)
		return -ENOMEM;
	n = db_exec(m->db, ST_LOOKUP_FOLD, DB_ARGS(DB_U64(parent), DB_TEXT(fold)), fold_row, &f);
	free(fold);
	*id = f.id;
	return n < 0 ? n : 0;
}

struct path_ctx {
	struct buf b;
	bool first, rooted;
};

static int path_row(void *ctx, struct db_row *r)
{
	struct path_ctx *p = ctx;
	size_t n;
	const char *sn = db_blob(r, 2, &n);

	if (p->first) {
		/* The topmost row must be the root, else the chain is broken. */
		p->rooted = db_u64(r, 0) == META_ROOT_ID && db_int(r, 1) == 0;
		p->first = false;
		return 0;
	}
	if (p->b.len)
		buf_adds(&p->b, "/");
	return buf_add(&p->b, sn, n);
}

int meta_path(struct meta *m, uint64_t id, char **path)
{
	struct path_ctx p = { .first = true };
	int n;

	*path = NULL;
	buf_init(&p.b, 0);
	n = db_exec(m->db, ST_PATH, DB_ARGS(DB_U64(id)), path_row, &p);
	if (n >= 0 && (p.first || !p.rooted))
		n = -ENOENT;
	if (n >= 0 && !(*path = buf_take(&p.b)))
		n = -ENOMEM;
	buf_free(&p.b);
	return n < 0 ? n : 0;
}

struct names_ctx {
	char **name, **sname;
	uint64_t parent;
};

static int names_row(void *ctx, struct db_row *r)
{
	struct names_ctx *c = ctx;

	c->parent = db_u64(r, 2);
	if (c->name && !(*c->name = db_strdup(r, 0)))
		return -ENOMEM;
	if (c->sname && !(*c->sname = db_strdup(r, 1)))
		return -ENOMEM;
	return 1;
}

int meta_node_names(struct meta *m, uint64_t id, char **name, char **sname,
		      uint64_t *parent)
{
	struct names_ctx c = { name, sname, 0 };
	int err;

	if (name)
		*name = NULL;
	if (sname)
		*sname = NULL;
	err = found(db_exec(m->db, ST_NAMES, DB_ARGS(DB_U64(id)), names_row, &c));
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
	if (parent)
		*parent = c.parent;
	return err;
}

int meta_names(struct meta *m, uint64_t id, char **name, char **sname)
{
	return meta_node_names(m, id, name, sname, NULL);
}

/* meta_children(): rows come ordered by name; a group is a run of equal
 * names, handed to the callback when the next one starts. */
struct children_ctx {
	struct meta *m;
	uint64_t parent;
	meta_child_cb cb;
	void *cb_ctx;
	struct twin *g;         /* the current group */
	size_t gn, gcap;
	char *name;             /* its name */
	size_t name_len;
	int ret;                /* the callback's non-zero result */
};

/* Hand the current group to the callback: the one child under its name,
 * or each twin under the name it shows; then empty it. */
static int children_emit(struct children_ctx *c)
{
	int ret = 0;

	if (c->gn == 1)
		ret = c->cb(c->cb_ctx, &c->g[0].a, c->name);
	else if (c->gn)
		ret = meta_twins_name(c->m, c->parent, c->name, c->g, c->gn);
	for (size_t i = 0; c->gn > 1 && !ret && i < c->gn; i++)
		if (c->g[i].shown)
			ret = c->cb(c->cb_ctx, &c->g[i].a, c->g[i].shown);
	meta_twins_release(c->g, c->gn);
	c->gn = 0;
	free(c->name);
	c->name = NULL;
	return ret;
}

static int children_row(void *ctx, struct db_row *r)
{
	struct children_ctx *c = ctx;
	size_t len;
	const char *rname = db_blob(r, NODE_NCOLS, &len);
	struct twin *t;

	if (!c->name || len != c->name_len || memcmp(c->name, rname, len)) {
		if (c->name && (c->ret = children_emit(c)) != 0)
			return c->ret < 0 ? c->ret : 1;
		if (!(c->name = malloc(len + 1)))
			return -ENOMEM;
		if (len)
			memcpy(c->name, rname, len);
		c->name[len] = '\0';
		c->name_len = len;
	}
	if (!(t = meta_twin_push(&c->g, &c->gn, &c->gcap)))
		return -ENOMEM;
	meta_row_attr(r, &t->a);
	t->canonical = db_int(r, NODE_NCOLS + 2) != 0;
	if (!t->canonical && !(t->sname = db_strdup(r, NODE_NCOLS + 1)))
		return -ENOMEM;
	return 0;
}

int meta_children(struct meta *m, uint64_t parent, meta_child_cb cb, void *ctx)
{
	struct children_ctx c = { .m = m, .parent = parent, .cb = cb, .cb_ctx = ctx };
	int n;

	db_lock(m->db);
	n = db_exec(m->db, ST_CHILDREN, DB_ARGS(DB_U64(parent)), children_row, &c);
	if (c.ret)
		n = c.ret;
	else if (n >= 0)
		n = c.name ? children_emit(&c) : 0;
	meta_twins_release(c.g, c.gn);
	db_unlock(m->db);
	free(c.g);
	free(c.name);
	return n;
}

int meta_row_pair(void *ctx, struct db_row *r)
{
	int64_t *v = ctx;

	v[0] = db_int(r, 0);
	v[1] = db_int(r, 1);
	return 1;
}

int meta_count_children(struct meta *m, uint64_t parent, uint64_t *all, uint64_t *dirs)
{
	int64_t v[2] = { 0, 0 };
	int err = wr(db_exec(m->db, ST_COUNT, DB_ARGS(DB_U64(parent)), meta_row_pair, v));

	*all = (uint64_t)v[0];
	*dirs = (uint64_t)v[1];
	return err;
}

/* ---- shared by listings and local changes --------------------------------- */

int meta_remove_subtree(struct meta *m, uint64_t id)
{
	int err = WRITE0(m, ST_SUB_CLEAR);

	if (!err)
		err = WRITE(m, ST_SUB_FILL, DB_U64(id));
	if (!err)
		err = WRITE0(m, ST_SUB_GC);
	if (!err)
		err = WRITE0(m, ST_SUB_CONTENT);
	if (!err)
		err = WRITE0(m, ST_SUB_NODES);
	return err;
}

struct dirstate {
	bool is_dir;
	time_t listed_at;
	uint64_t listed_gen;
};

static int dirstate_row(void *ctx, struct db_row *r)
{
	struct dirstate *d = ctx;

	d->is_dir = db_int(r, 0) != 0;
	d->listed_at = (time_t)db_int(r, 1);
	d->listed_gen = db_u64(r, 2);
	return 1;
}

int meta_dir_check(struct meta *m, uint64_t dir, uint64_t gen, time_t *listed_at)
{
	struct dirstate d;
	int err = found(db_exec(m->db, ST_DIRSTATE, DB_ARGS(DB_U64(dir)), dirstate_row, &d));

	if (err)
		return err;
	if (listed_at)
		*listed_at = d.listed_at;
	if (!d.is_dir)
		return -ENOTDIR;
	return d.listed_gen > gen;
}

struct ids_ctx {
	uint64_t *ids;
	size_t n, max;
};

static int ids_row(void *ctx, struct db_row *r)
{
	struct ids_ctx *c = ctx;

	c->ids[c->n++] = db_u64(r, 0);
	return c->n == c->max;
}

int meta_ids(struct meta *m, int st, const struct db_val *args, size_t nargs, uint64_t *ids,
	     size_t max, size_t *n)
{
	struct ids_ctx c = { ids, 0, max };
	int r = max ? db_exec(m->db, st, args, nargs, ids_row, &c) : 0;

	*n = c.n;
	return wr(r);
}
