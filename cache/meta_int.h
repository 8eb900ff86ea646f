/*
 * cache/meta_int.h — private to the files of the index module (cache/meta*.c):
 * the handle, the statement table and the helpers they share. Not for
 * other modules: they use cache/meta.h.
 *
 * The module's files:
 *   meta.c          open, schema and migration, quota, name folding, node
 *                   queries (get, lookup, path, children)
 *   meta_local.c    local changes of the write path (create, rename,
 *                   unlink, ...) and removals the service reports
 *   meta_twins.c    server names that decode to one POSIX name ("twins")
 *   meta_listing.c  applying listings (one folder, or a recursive stream)
 *   meta_content.c  cached content records and the garbage-collection queue
 *
 * Locking: everything runs under the db's lock (cache/db.h), taken by
 * db_exec() for one statement and by db_lock()/db_begin() for a run of
 * them; functions marked "lock held" expect the caller to hold it.
 */
#ifndef JOTTAFS_CACHE_META_INT_H
#define JOTTAFS_CACHE_META_INT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cache/db.h"
#include "cache/meta.h"

/* The columns row_attr() reads, first in a node query. */
#define NODE_COLS "id, parent, is_dir, size, mtime, created, updated, md5, revision, " \
		  "listed_at, local, base_md5, base_size, listed_gen"
#define NODE_NCOLS 14

/* The prepared statements of index.db (db.h statement table), by name. */
#define META_STMTS(X)                                                                   \
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
	X(NAMES, "SELECT name, sname, parent FROM nodes WHERE id = ?1")                  \
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
		" canonical = 1, seen = max(seen, ?6) WHERE id = ?1")                      \
	X(LOCALS, "SELECT id FROM nodes WHERE local = 1 AND id > ?1 ORDER BY id LIMIT ?2") \
	X(NEWDIRS, "SELECT id FROM nodes WHERE local = 2 AND id > ?1 ORDER BY id LIMIT ?2") \
	X(DIR_MADE, "UPDATE nodes SET local = 0 WHERE id = ?1 AND is_dir AND local = 2")    \
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
	X(INFO_SET, "INSERT OR REPLACE INTO info(key, value) VALUES(?1, ?2)")              \
	X(RESET_GC, "INSERT OR IGNORE INTO gc(id) SELECT id FROM content")                 \
	X(RESET_CONTENT, "DELETE FROM content")                                            \
	X(RESET_NODES, "DELETE FROM nodes")                                                \
	X(ROOT, "INSERT OR IGNORE INTO nodes(id, parent, name, sname, fold, is_dir, mtime)" \
		" VALUES(1, 0, x'', '', '', 1, ?1)")                                        \
	X(MAX_GEN, "SELECT max(coalesce((SELECT max(seen) FROM nodes), 0),"               \
		   " coalesce((SELECT max(listed_gen) FROM nodes), 0),"                    \
		   " coalesce((SELECT max(gen) FROM tomb), 0))")                           \
	X(FOLDS, "SELECT id, sname FROM nodes WHERE id != 1")                              \
	X(SET_FOLD, "UPDATE nodes SET fold = ?2 WHERE id = ?1")

enum meta_stmt {
#define X(id, sql) ST_##id,
	META_STMTS(X)
#undef X
	ST_COUNT_
};

struct meta {
	struct db *db;                  /* index.db; its lock guards the fields below */
	uint64_t gen;                   /* last generation handed out */
	bool was_clean;                 /* set at open, read-only afterwards */
};

/* 0 when a db_exec() query found (or a write changed) a row, -ENOENT
 * when none, or its error. */
static inline int found(int n)
{
	return n < 0 ? n : n ? 0 : -ENOENT;
}

/* 0 or the error of a db_exec() result. */
static inline int wr(int n)
{
	return n < 0 ? n : 0;
}

/* Run write statement @st of meta @m with arguments (WRITE0: none); 0 or -errno. */
#define WRITE(m, st, ...) wr(db_exec((m)->db, (st), DB_ARGS(__VA_ARGS__), NULL, NULL))
#define WRITE0(m, st)     wr(db_exec((m)->db, (st), DB_NOARGS, NULL, NULL))

/* ---- meta.c ---- */

/* Fill @a from a row whose first columns are NODE_COLS. */
void meta_row_attr(struct db_row *r, struct meta_attr *a);
/* db_row_fn: the first column as a uint64 into *(uint64_t *)ctx; stops. */
int meta_row_u64(void *ctx, struct db_row *r);
/* db_row_fn: the first two columns into ((int64_t *)ctx)[0..1]; stops. */
int meta_row_pair(void *ctx, struct db_row *r);
/* Append a change to @c (may be NULL); on ENOMEM the change is dropped
 * (invalidation is best effort). */
void meta_change_add(struct meta_changes *c, enum meta_change_kind kind, uint64_t id,
		     uint64_t parent, const char *name);
/* Up to @max ids: the first column of the rows of statement @st run with
 * @args, in *@n. */
int meta_ids(struct meta *m, int st, const struct db_val *args, size_t nargs, uint64_t *ids,
	     size_t max, size_t *n);
/* Names and parent of @id (name, sname may be NULL; freed on error). */
int meta_node_names(struct meta *m, uint64_t id, char **name, char **sname, uint64_t *parent);
/* Remove @id and its subtree; clean content is queued for gc. Lock held,
 * in a transaction. */
int meta_remove_subtree(struct meta *m, uint64_t id);
/* Can @dir take a listing of generation @gen? 1: skip (a newer listing
 * is applied already), 0: go, -errno (-ENOENT, -ENOTDIR). Its listed_at
 * in *@listed_at (may be NULL). */
int meta_dir_check(struct meta *m, uint64_t dir, uint64_t gen, time_t *listed_at);

/* ---- meta_twins.c ---- */

/* A member of a group of children named alike. */
struct twin {
	char *sname;            /* non-canonical members only (else NULL) */
	bool canonical;
	char *shown;            /* the name shown (malloc'd); NULL: hidden */
	struct meta_attr a;     /* meta_children(): the row's attributes */
};
void meta_twins_release(struct twin *t, size_t n);
/* Append a zeroed member to the array *@v of *@n (capacity *@cap); NULL on ENOMEM. */
struct twin *meta_twin_push(struct twin **v, size_t *n, size_t *cap);
/* Set t[i].shown for group @t[0..n) of children of @parent named @name.
 * Lock held. */
int meta_twins_name(struct meta *m, uint64_t parent, const char *name, struct twin *t,
		    size_t n);
/* meta_lookup() of a name no child has as its POSIX name: a suffixed
 * twin? Lock held. */
int meta_lookup_twin(struct meta *m, uint64_t parent, const char *name,
		     struct meta_attr *out);
/* Report a change of non-canonical child @sname under the name a twin of
 * it would show, too (the kernel may hold that entry; best effort). */
void meta_change_add_twin(struct meta_changes *c, enum meta_change_kind kind, uint64_t id,
			  uint64_t parent, const char *name, const char *sname);

/* Non-canonical entries a listing applied, to warn about once it is in. */
struct twin_notes {
	struct twin_note *v;
	size_t n, cap;
};
int meta_twin_note(struct twin_notes *tn, uint64_t dir, const char *name);
/* Warn once per applied entry that decodes like another child of its
 * folder; then empty @tn. Lock held. */
void meta_twins_warn(struct meta *m, struct twin_notes *tn);
void meta_twin_notes_release(struct twin_notes *tn);

#endif
