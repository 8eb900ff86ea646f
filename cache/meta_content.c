/*
 * cache/meta_content.c — the index's records of cached content (see
 * meta.h "Content"): per file, which revision's bytes are present in its
 * cache file, whether they are dirty, verified, when last used; the usage
 * totals and LRU order eviction needs; and the queue of cache files to
 * delete (gc).
 */
#include "cache/meta_int.h"

#include <stdlib.h>
#include <string.h>

static int content_row(void *ctx, struct db_row *r)
{
	struct meta_content *out = ctx;
	size_t n;
	const void *ranges = db_blob(r, 6, &n);

	out->size = db_int(r, 0);
	db_text_copy(r, 1, out->md5, sizeof(out->md5));
	out->verified = db_int(r, 2) != 0;
	out->dirty = db_int(r, 3) != 0;
	out->atime = (time_t)db_int(r, 4);
	out->bytes = db_int(r, 5);
	if (n > 0) {
		if (!(out->ranges = malloc(n)))
			return -ENOMEM;
		memcpy(out->ranges, ranges, n);
		out->ranges_len = n;
	}
	return 1;
}

int meta_content_get(struct meta *m, uint64_t id, struct meta_content *out)
{
	int err;

	memset(out, 0, sizeof(*out));
	err = found(db_exec(m->db, ST_CGET, DB_ARGS(DB_U64(id)), content_row, out));
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
	return WRITE(m, ST_CPUT, DB_U64(id), DB_INT(c->size), DB_TEXT(c->md5),
		     DB_INT(c->verified), DB_INT(c->dirty), DB_INT(c->atime), DB_INT(c->bytes),
		     c->ranges_len ? DB_BLOB(c->ranges, c->ranges_len) : DB_NULL);
}

int meta_content_touch(struct meta *m, uint64_t id, time_t atime)
{
	return WRITE(m, ST_CTOUCH, DB_U64(id), DB_INT(atime));
}

int meta_content_delete(struct meta *m, uint64_t id)
{
	return WRITE(m, ST_CDEL, DB_U64(id));
}

int meta_content_usage(struct meta *m, int64_t *total, int64_t *dirty)
{
	int64_t v[2] = { 0, 0 };
	int err = wr(db_exec(m->db, ST_CUSAGE, DB_NOARGS, meta_row_pair, v));

	if (!err) {
		*total = v[0];
		*dirty = v[1];
	}
	return err;
}

int meta_content_lru(struct meta *m, uint64_t *ids, size_t max, size_t *n)
{
	return meta_ids(m, ST_CLRU, DB_ARGS(DB_INT(max)), ids, max, n);
}

int meta_gc_take(struct meta *m, uint64_t *ids, size_t max, size_t *n)
{
	int err;

	db_lock(m->db);
	err = meta_ids(m, ST_GC_LIST, DB_ARGS(DB_INT(max)), ids, max, n);
	for (size_t i = 0; !err && i < *n; i++)
		err = WRITE(m, ST_GC_DEL, DB_U64(ids[i]));
	db_unlock(m->db);
	return err;
}

int meta_content_drop_clean(struct meta *m)
{
	int err = db_begin(m->db);

	if (err)
		return err;
	err = WRITE0(m, ST_CDROP_CLEAN);
	if (!err)
		err = WRITE0(m, ST_CDEL_CLEAN);
	return db_end(m->db, err);
}
