/*
 * cache/meta_local.c — local changes of the write path recorded in the
 * index (see meta.h "Local changes"): create, the content and times of a
 * node (set_local, set_clean, set_base, set_mtime, set_dir_times), rename,
 * unlink, and the list of nodes with local changes; and the removal of a
 * node the service says is gone (meta_remove), which shares unlink's code. Each takes its own
 * generation, so that listings sent before it cannot undo it; removals
 * leave a tombstone for the same reason.
 */
#include "cache/meta_int.h"

#include <stdlib.h>
#include <string.h>

#define LOCALS_BATCH 256

/* Id of the child of @parent with server name @sname, 0 if none. */
static uint64_t child_by_sname(struct meta *m, uint64_t parent, const char *sname)
{
	uint64_t id = 0;

	db_exec(m->db, ST_BY_SNAME, DB_ARGS(DB_U64(parent), DB_TEXT(sname)), meta_row_u64, &id);
	return id;
}

/* Begin the transaction of a local change, which takes generation *@gen. */
static int change_begin(struct meta *m, uint64_t *gen)
{
	int err = db_begin(m->db);

	if (!err)
		*gen = ++m->gen;
	return err;
}

/* Check that @parent is a folder that can take a new child. */
static int parent_ok(struct meta *m, uint64_t parent)
{
	int err = meta_dir_check(m, parent, 0, NULL);

	return err > 0 ? 0 : err;
}

/* meta_create() in its transaction. */
static int create_tx(struct meta *m, uint64_t parent, const char *name, const char *sname,
		     const char *fold, bool is_dir, int local, time_t now, uint64_t gen,
		     uint64_t *id)
{
	int err = parent_ok(m, parent);

	if (!err && child_by_sname(m, parent, sname))
		err = -EEXIST;
	if (!err)
		err = WRITE(m, ST_CREATE, DB_U64(parent), DB_NAME(name), DB_TEXT(sname),
			    DB_TEXT(fold), DB_INT(is_dir), DB_INT(now), DB_INT(is_dir ? now : 0),
			    DB_U64(gen), DB_INT(local));
	if (!err) {
		*id = (uint64_t)db_last_rowid(m->db);
		err = WRITE(m, ST_TOMB_DEL, DB_U64(parent), DB_TEXT(sname));
	}
	return err;
}

static int create(struct meta *m, uint64_t parent, const char *name, const char *sname,
		  bool is_dir, int local, time_t now, uint64_t *id)
{
	char *fold = meta_fold(sname);
	uint64_t gen;
	int err = fold ? change_begin(m, &gen) : -ENOMEM;

	*id = 0;
	if (!err)
		err = db_end(m->db, create_tx(m, parent, name, sname, fold, is_dir, local, now,
					      gen, id));
	if (err)
		*id = 0;
	free(fold);
	return err;
}

int meta_create(struct meta *m, uint64_t parent, const char *name, const char *sname,
		bool is_dir, time_t now, uint64_t *id)
{
	return create(m, parent, name, sname, is_dir,
		      is_dir ? META_LOCAL_NONE : META_LOCAL_DIRTY, now, id);
}

int meta_mkdir(struct meta *m, uint64_t parent, const char *name, const char *sname,
	       time_t now, bool pending, uint64_t *id)
{
	return create(m, parent, name, sname, true,
		      pending ? META_LOCAL_NEWDIR : META_LOCAL_NONE, now, id);
}

int meta_set_dir_made(struct meta *m, uint64_t id)
{
	return WRITE(m, ST_DIR_MADE, DB_U64(id));
}

/* Run write statement @st on node ?1 = @id with a new generation as its
 * last parameter (?@n); -ENOENT when no row changed. */
static int set_gen(struct meta *m, int st, uint64_t id, const struct db_val *v, size_t n)
{
	struct db_val args[8];
	int changed;

	args[0] = DB_U64(id);
	for (size_t i = 0; i < n; i++)
		args[i + 1] = v[i];
	db_lock(m->db);
	args[n + 1] = DB_U64(++m->gen);
	changed = db_exec(m->db, st, args, n + 2, NULL, NULL);
	db_unlock(m->db);
	return found(changed);
}

int meta_set_local(struct meta *m, uint64_t id, int64_t size, time_t mtime, const char *md5)
{
	return set_gen(m, ST_SET_LOCAL, id, DB_ARGS(DB_INT(size), DB_INT(mtime),
						   DB_TEXT(md5 ? md5 : "")));
}

int meta_set_clean(struct meta *m, uint64_t id, int64_t size, const char *md5, time_t mtime)
{
	return set_gen(m, ST_SET_CLEAN, id, DB_ARGS(DB_INT(size), DB_TEXT(md5), DB_INT(mtime)));
}

int meta_set_mtime(struct meta *m, uint64_t id, time_t mtime)
{
	int err = set_gen(m, ST_SET_MTIME, id, DB_ARGS(DB_INT(mtime)));

	return err == -ENOENT ? 0 : err;
}

int meta_set_dir_times(struct meta *m, uint64_t id, time_t mtime, time_t ctime)
{
	return WRITE(m, ST_SET_DIR_TIMES, DB_U64(id), DB_INT(mtime), DB_INT(ctime));
}

int meta_set_base(struct meta *m, uint64_t id, int64_t size, const char *md5)
{
	return WRITE(m, ST_SET_BASE, DB_U64(id), DB_TEXT(md5), DB_INT(size));
}

/* meta_rename() in its transaction; the node replaced in *@target. */
static int rename_tx(struct meta *m, uint64_t id, uint64_t parent, const char *name,
		     const char *sname, const char *fold, uint64_t gen, uint64_t *target)
{
	char *old_sname = NULL;
	uint64_t old_parent = 0;
	int err = meta_node_names(m, id, NULL, &old_sname, &old_parent);

	if (!err)
		err = parent_ok(m, parent);
	if (!err) {
		*target = child_by_sname(m, parent, sname);
		if (!*target)
			err = meta_lookup_fold(m, parent, sname, target, NULL);
		if (*target == id)
			*target = 0;    /* a case-only rename of itself */
		if (!err && *target)
			err = meta_remove_subtree(m, *target);
	}
	if (!err)
		err = WRITE(m, ST_MOVE, DB_U64(id), DB_U64(parent), DB_NAME(name), DB_TEXT(sname),
			    DB_TEXT(fold), DB_U64(gen));
	if (!err && (old_parent != parent || strcmp(old_sname, sname)))
		err = WRITE(m, ST_TOMB_SET, DB_U64(old_parent), DB_TEXT(old_sname), DB_U64(gen));
	if (!err)
		err = WRITE(m, ST_TOMB_DEL, DB_U64(parent), DB_TEXT(sname));
	free(old_sname);
	return err;
}

int meta_rename(struct meta *m, uint64_t id, uint64_t parent, const char *name,
		const char *sname, uint64_t *replaced)
{
	char *fold = meta_fold(sname);
	uint64_t target = 0, gen;
	int err = fold ? change_begin(m, &gen) : -ENOMEM;

	if (!err)
		err = db_end(m->db, rename_tx(m, id, parent, name, sname, fold, gen, &target));
	if (replaced)
		*replaced = err ? 0 : target;
	free(fold);
	return err;
}

/*
 * Remove @id and its subtree, in one transaction: after a local unlink
 * (@local: leave a tombstone so that older listings do not bring it back)
 * or because the service says it is gone (reported in @ch).
 */
static int node_remove(struct meta *m, uint64_t id, bool local, struct meta_changes *ch)
{
	uint64_t parent = 0, gen;
	char *name = NULL, *sname = NULL;
	int err;

	if (id == META_ROOT_ID)
		return -EBUSY;
	err = change_begin(m, &gen);
	if (err)
		return err;
	err = meta_node_names(m, id, local ? NULL : &name, &sname, &parent);
	if (!err && !parent)
		err = -ENOENT;
	if (!err)
		err = meta_remove_subtree(m, id);
	if (!err && local)
		err = WRITE(m, ST_TOMB_SET, DB_U64(parent), DB_TEXT(sname), DB_U64(gen));
	err = db_end(m->db, err);
	if (!err && !local)
		meta_change_add(ch, META_REMOVED, id, parent, name ? name : "");
	free(name);
	free(sname);
	return err;
}

int meta_unlink(struct meta *m, uint64_t id)
{
	return node_remove(m, id, true, NULL);
}

int meta_remove(struct meta *m, uint64_t id, struct meta_changes *ch)
{
	return node_remove(m, id, false, ch);
}

static int each_local(struct meta *m, int st, int (*cb)(void *ctx, uint64_t id), void *ctx)
{
	uint64_t ids[LOCALS_BATCH], last = 0;
	size_t n;
	int err;

	do {
		err = meta_ids(m, st, DB_ARGS(DB_U64(last), DB_INT(LOCALS_BATCH)), ids,
			       LOCALS_BATCH, &n);
		for (size_t i = 0; !err && i < n; i++)
			err = cb(ctx, ids[i]);
		if (n)
			last = ids[n - 1];
	} while (!err && n == LOCALS_BATCH);
	return err;
}

int meta_local_nodes(struct meta *m, int (*cb)(void *ctx, uint64_t id), void *ctx)
{
	return each_local(m, ST_LOCALS, cb, ctx);
}

int meta_new_dirs(struct meta *m, int (*cb)(void *ctx, uint64_t id), void *ctx)
{
	return each_local(m, ST_NEWDIRS, cb, ctx);
}
