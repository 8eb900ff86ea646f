/*
 * cache/meta_listing.c — applying what the service lists to the index
 * (see meta.h "Freshness"): the complete listing of one folder
 * (meta_apply_listing), one sub-folder on the way to a path
 * (meta_upsert_child), and a recursive listing applied in batches as it
 * streams in (meta_stream_*). Each entry is merged by upsert(); children a
 * complete listing did not name are swept. Also a folder to list again
 * (meta_set_stale).
 *
 * Runs under the db's lock, one transaction per listing or batch.
 */
#include "cache/meta_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/grow.h"

#define META_STREAM_BATCH 2048
#define SWEEP_BATCH       256   /* folders swept per transaction at stream end */

/* Drop the clean content of file @id (its revision changed). Lock held. */
static int drop_content(struct meta *m, uint64_t id)
{
	int err = WRITE(m, ST_GC_ADD, DB_U64(id));

	return err ? err : WRITE(m, ST_CONTENT_DROP, DB_U64(id));
}

/* A node row as upsert() compares it with a listed entry. */
struct known {
	uint64_t id;
	bool is_dir;
	int64_t size;
	char md5[33];
	time_t mtime, created, updated;
	uint64_t seen;
	int local;
};

static int known_row(void *ctx, struct db_row *r)
{
	struct known *k = ctx;

	k->id = db_u64(r, 0);
	k->is_dir = db_int(r, 1) != 0;
	k->size = db_int(r, 2);
	db_text_copy(r, 3, k->md5, sizeof(k->md5));
	k->mtime = (time_t)db_int(r, 4);
	k->created = (time_t)db_int(r, 5);
	k->updated = (time_t)db_int(r, 6);
	k->seen = db_u64(r, 7);
	k->local = (int)db_int(r, 8);
	return 1;
}

/* Update known node @k from listed entry @e (generation @gen). */
static int update(struct meta *m, uint64_t dir, uint64_t gen, const struct meta_entry *e,
		  const struct known *k, struct meta_changes *ch)
{
	bool same_md5 = !strcmp(k->md5, e->md5);
	int err;

	if (!e->is_dir && (!same_md5 || k->size != e->size)) {
		err = drop_content(m, k->id);
		if (err)
			return err;
		meta_change_add(ch, META_CONTENT, k->id, dir, NULL);
	} else if (!e->is_dir && (k->mtime != e->mtime || k->created != e->created)) {
		meta_change_add(ch, META_ATTR, k->id, dir, NULL);
	}
	/* Revision: the listed number; unknown (0) for new content listed
	 * without one; kept (-1) when the content is unchanged. */
	return WRITE(m, ST_UPDATE, DB_U64(k->id), DB_NAME(e->name), DB_INT(e->canonical),
		     DB_INT(e->is_dir ? 0 : e->size), DB_INT(e->is_dir ? k->mtime : e->mtime),
		     DB_INT(e->is_dir ? k->created : e->created),
		     DB_INT(e->has_updated ? e->updated : k->updated),
		     DB_TEXT(e->is_dir ? "" : e->md5),
		     DB_INT(e->revision > 0 ? e->revision : (same_md5 && k->size == e->size ? -1 : 0)),
		     DB_U64(gen));
}

/* Insert listed entry @e as a new child of @dir; its id in *@id. */
static int insert(struct meta *m, uint64_t dir, uint64_t gen, const struct meta_entry *e,
		  bool report_add, struct meta_changes *ch, uint64_t *idp)
{
	char *fold = meta_fold(e->sname);
	uint64_t id;
	int err;

	if (!fold)
		return -ENOMEM;
	err = WRITE(m, ST_INSERT, DB_U64(dir), DB_NAME(e->name), DB_TEXT(e->sname), DB_TEXT(fold),
		    DB_INT(e->canonical), DB_INT(e->is_dir), DB_INT(e->is_dir ? 0 : e->size),
		    DB_INT(e->is_dir && !e->mtime ? time(NULL) : e->mtime), DB_INT(e->created),
		    DB_INT(e->has_updated ? e->updated : 0), DB_TEXT(e->is_dir ? "" : e->md5),
		    DB_INT(e->revision > 0 ? e->revision : 0), DB_U64(gen));
	free(fold);
	if (err)
		return err;
	id = (uint64_t)db_last_rowid(m->db);
	if (idp)
		*idp = id;
	if (report_add) {
		meta_change_add(ch, META_ADDED, id, dir, e->name);
		if (!e->canonical)
			meta_change_add_twin(ch, META_ADDED, id, dir, e->name, e->sname);
	}
	return 0;
}

/*
 * Insert or update child @e of @dir, written by generation @gen. @report_add:
 * report a new entry as META_ADDED. Lock held, in a transaction. The new or
 * existing id goes to *id (may be NULL).
 */
static int upsert(struct meta *m, uint64_t dir, uint64_t gen, const struct meta_entry *e,
		  bool report_add, struct meta_changes *ch, uint64_t *idp)
{
	struct known k;
	uint64_t tomb = 0;
	int n;

	if (idp)
		*idp = 0;
	/* Removed here locally after this listing was sent: stays removed. */
	n = db_exec(m->db, ST_TOMB_GET, DB_ARGS(DB_U64(dir), DB_TEXT(e->sname)), meta_row_u64,
		    &tomb);
	if (n < 0)
		return n;
	if (n && tomb > gen)
		return 0;
	n = db_exec(m->db, ST_BY_SNAME, DB_ARGS(DB_U64(dir), DB_TEXT(e->sname)), known_row, &k);
	if (n < 0)
		return n;
	if (!n)
		return insert(m, dir, gen, e, report_add, ch, idp);
	if (idp)
		*idp = k.id;
	if (k.local != META_LOCAL_NONE || k.seen > gen) {
		/* Local changes win; a newer listing already wrote the row. */
		return WRITE(m, ST_TOUCH_SEEN, DB_U64(k.id), DB_U64(gen));
	}
	if (k.is_dir != e->is_dir) {
		/* Replaced by the other kind: a new node. */
		meta_change_add(ch, META_REMOVED, k.id, dir, e->name);
		n = meta_remove_subtree(m, k.id);
		return n ? n : insert(m, dir, gen, e, report_add, ch, idp);
	}
	return update(m, dir, gen, e, &k, ch);
}

struct sweep_ctx {
	uint64_t dir;
	struct meta_changes *ch;
	uint64_t *ids;
	size_t n, cap;
};

static int sweep_row(void *ctx, struct db_row *r)
{
	struct sweep_ctx *c = ctx;
	uint64_t id = db_u64(r, 0);

	if (array_grow(&c->ids, &c->cap, c->n, sizeof(*c->ids), 16))
		return -ENOMEM;
	c->ids[c->n++] = id;
	if (c->ch) {
		char *name = db_strdup(r, 1);
		if (name) {
			meta_change_add(c->ch, META_REMOVED, id, c->dir, name);
			if (!db_int(r, 2))
				meta_change_add_twin(c->ch, META_REMOVED, id, c->dir, name,
						     db_text(r, 3));
			free(name);
		}
	}
	return 0;
}

/* Remove the children of @dir not written by @gen or later (and not
 * local), and mark @dir listed at @now by @gen. Lock held, in a tx. */
static int sweep(struct meta *m, uint64_t dir, uint64_t gen, time_t now,
		 struct meta_changes *ch)
{
	struct sweep_ctx c = { dir, ch, NULL, 0, 0 };
	int err = wr(db_exec(m->db, ST_SWEEP, DB_ARGS(DB_U64(dir), DB_U64(gen)), sweep_row, &c));

	for (size_t i = 0; !err && i < c.n; i++)
		err = meta_remove_subtree(m, c.ids[i]);
	free(c.ids);
	if (!err)
		err = WRITE(m, ST_LISTED, DB_U64(dir), DB_INT(now), DB_U64(gen));
	return err;
}

int meta_apply_listing(struct meta *m, uint64_t dir, uint64_t gen,
		       const struct meta_entry *v, size_t n, time_t now,
		       struct meta_changes *ch)
{
	struct twin_notes notes = { NULL, 0, 0 };
	time_t listed_at = 0;
	int err;

	err = db_begin(m->db);
	if (err)
		return err;
	err = meta_dir_check(m, dir, gen, &listed_at);
	for (size_t i = 0; !err && i < n; i++) {
		err = upsert(m, dir, gen, &v[i], listed_at != 0, ch, NULL);
		if (!err && !v[i].canonical)
			err = meta_twin_note(&notes, dir, v[i].name);
	}
	if (!err)
		err = sweep(m, dir, gen, now, ch);
	/* Removals older than this listing are reflected in it. */
	if (!err)
		err = WRITE(m, ST_TOMB_PRUNE, DB_U64(dir), DB_U64(gen));
	db_lock(m->db);
	err = db_end(m->db, err);
	if (!err)
		meta_twins_warn(m, &notes);
	db_unlock(m->db);
	meta_twin_notes_release(&notes);
	return err == 1 ? 0 : err;      /* 1: a newer listing is applied already */
}

int meta_upsert_child(struct meta *m, uint64_t dir, uint64_t gen, const struct meta_entry *e,
		      uint64_t *id)
{
	int err = db_begin(m->db);

	if (err)
		return err;
	return db_end(m->db, upsert(m, dir, gen, e, false, NULL, id));
}

int meta_set_stale(struct meta *m, uint64_t dir)
{
	return WRITE(m, ST_STALE, DB_U64(dir));
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
	struct twin_notes notes; /* non-canonical entries applied */
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

/* Put dirs[d] into a free slot of @slots (@ns, a power of two). */
static void slot_put(size_t *slots, size_t ns, const char *path, size_t d)
{
	size_t i = str_hash(path) & (ns - 1);

	while (slots[i])
		i = (i + 1) & (ns - 1);
	slots[i] = d + 1;
}

/* Add a folder; takes ownership of @path. */
static int stream_add_dir(struct meta_stream *st, char *path, uint64_t id, bool skip,
			  bool listed_before)
{
	if (array_grow(&st->dirs, &st->capdirs, st->ndirs, sizeof(*st->dirs), 64)) {
		free(path);
		return -ENOMEM;
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
		for (size_t d = 0; d < st->ndirs; d++)
			slot_put(slots, ns, st->dirs[d].path, d);
	}
	st->dirs[st->ndirs] = (struct stream_dir){ path, id, skip, listed_before };
	slot_put(st->slots, st->nslots, path, st->ndirs++);
	return 0;
}

static void stream_free(struct meta_stream *st)
{
	meta_twin_notes_release(&st->notes);
	for (size_t i = 0; i < st->ndirs; i++)
		free(st->dirs[i].path);
	free(st->dirs);
	free(st->slots);
	free(st->batch);
	free(st);
}

int meta_stream_begin(struct meta *m, uint64_t root, uint64_t gen, struct meta_changes *ch,
		      struct meta_stream **out)
{
	struct meta_stream *st = calloc(1, sizeof(*st));
	time_t listed_at = 0;
	char *path = strdup("");
	int ret;

	*out = NULL;
	if (!st || !path || !(st->batch = calloc(META_STREAM_BATCH, sizeof(*st->batch)))) {
		free(path);
		if (st)
			stream_free(st);
		return -ENOMEM;
	}
	st->m = m;
	st->root = root;
	st->gen = gen;
	st->ch = ch;
	ret = meta_dir_check(m, root, gen, &listed_at);
	if (ret >= 0)
		ret = stream_add_dir(st, path, root, ret != 0, listed_at != 0);
	else
		free(path);
	if (ret) {
		stream_free(st);
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
	time_t listed_at = 0;
	uint64_t id = 0;
	char *path;
	int err;

	if (!d)
		return 0;       /* its folder was skipped or never listed: ignore */
	if (d->skip) {
		struct known k = { 0 };
		if (!it->e.is_dir)
			return 0;
		/* The folder's own listing is newer; follow existing sub-folders only. */
		err = db_exec(m->db, ST_BY_SNAME, DB_ARGS(DB_U64(d->id), DB_TEXT(it->sname)),
			      known_row, &k);
		if (err < 0)
			return err;
		if (!err || !k.is_dir)
			return 0;
		id = k.id;
	} else {
		err = upsert(m, d->id, st->gen, &it->e, d->listed_before, st->ch, &id);
		if (!err && !it->e.canonical)
			err = meta_twin_note(&st->notes, d->id, it->name);
		if (err || !it->e.is_dir)
			return err;
	}
	/* A folder: remember it for its children. */
	if (*it->parent) {
		if (asprintf(&path, "%s/%s", it->parent, it->sname) < 0)
			return -ENOMEM;
	} else if (!(path = strdup(it->sname))) {
		return -ENOMEM;
	}
	err = meta_dir_check(m, id, st->gen, &listed_at);
	if (err < 0) {
		free(path);
		return err == -ENOTDIR ? 0 : err;
	}
	return stream_add_dir(st, path, id, err != 0, listed_at != 0);
}

static int stream_flush(struct meta_stream *st)
{
	int err = 0;

	if (st->nbatch)
		err = db_begin(st->m->db);
	if (st->nbatch && !err) {
		for (size_t i = 0; !err && i < st->nbatch; i++)
			err = stream_apply(st, &st->batch[i]);
		err = db_end(st->m->db, err);
	}
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

/* Sweep the folders dirs[i..i+SWEEP_BATCH) the stream listed; one transaction. */
static int stream_sweep(struct meta_stream *st, size_t i, time_t now)
{
	struct meta *m = st->m;
	int err = db_begin(m->db);

	if (err)
		return err;
	for (size_t j = i; !err && j < st->ndirs && j < i + SWEEP_BATCH; j++) {
		struct stream_dir *d = &st->dirs[j];
		if (!d->skip && meta_dir_check(m, d->id, st->gen, NULL) == 0)
			err = sweep(m, d->id, st->gen, now, st->ch);
	}
	return db_end(m->db, err);
}

int meta_stream_end(struct meta_stream *st, bool complete, time_t now)
{
	struct meta *m = st->m;
	int err;

	err = st->err ? st->err : stream_flush(st);
	for (size_t i = 0; !err && complete && i < st->ndirs; i += SWEEP_BATCH)
		err = stream_sweep(st, i, now);
	if (st->notes.n) {
		db_lock(m->db);
		meta_twins_warn(m, &st->notes);
		db_unlock(m->db);
	}
	for (size_t i = 0; i < st->nbatch; i++)
		stream_item_free(&st->batch[i]);
	stream_free(st);
	return err;
}
