/*
 * cache/meta_twins.c — server names that decode to one POSIX name
 * ("twins", see meta.h): which name each member of such a group is shown
 * under, finding a member by that name, and the warning a listing gives
 * for them.
 *
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
 *
 * Every function runs with the db's lock held (meta_int.h).
 */
#include "cache/meta_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/grow.h"
#include "lib/log.h"
#include "net/names.h"

#define DUP_ROUNDS 4

/* A non-canonical entry a listing applied: folder and POSIX name. */
struct twin_note {
	uint64_t dir;
	char *name;
};

void meta_twins_release(struct twin *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(t[i].sname);
		free(t[i].shown);
	}
}

/* Is @name the POSIX name of a child of @parent? 1, 0 or -errno. */
static int name_taken(struct meta *m, uint64_t parent, const char *name)
{
	int n = db_exec(m->db, ST_NAME_TAKEN, DB_ARGS(DB_U64(parent), DB_NAME(name)), NULL, NULL);

	return n < 0 ? n : n > 0;
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

/* Name pending member @t with round hash @h: 1 named, 2 never nameable
 * (no room for the tag: hidden), 0 the name is taken, -errno. */
static int twin_try(struct meta *m, uint64_t parent, const char *name, struct twin *t,
		    uint32_t h)
{
	char *cand = NULL;
	int e = names_dup_name(name, h, &cand);

	if (e)
		return e == -ENOMEM ? e : 2;
	e = name_taken(m, parent, cand);
	if (e == 0) {
		t->shown = cand;
		return 1;
	}
	free(cand);
	return e < 0 ? e : 0;
}

/* Set t[i].shown for group @t[0..n) of children of @parent named @name
 * (the rule above). O(n log n) plus one indexed query per member and round. */
int meta_twins_name(struct meta *m, uint64_t parent, const char *name, struct twin *t,
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

			if (unique && ns0 && bsearch(&p[k].h, settled, ns0, sizeof(*settled), u32_cmp))
				unique = false;
			if (unique) {
				int e = twin_try(m, parent, name, &t[p[k].i], p[k].h);
				if (e < 0) {
					err = e;
					break;
				}
				if (e == 1)
					settled[ns++] = p[k].h;
				if (e)
					continue;
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

struct twins_ctx {
	struct twin *v;
	size_t n, cap;
};

struct twin *meta_twin_push(struct twin **v, size_t *n, size_t *cap)
{
	struct twin *t;

	if (array_grow(v, cap, *n, sizeof(**v), 4))
		return NULL;
	t = &(*v)[(*n)++];
	memset(t, 0, sizeof(*t));
	return t;
}

static int twins_row(void *ctx, struct db_row *r)
{
	struct twins_ctx *c = ctx;
	struct twin *t = meta_twin_push(&c->v, &c->n, &c->cap);

	if (!t)
		return -ENOMEM;
	t->canonical = db_int(r, 1) != 0;
	if (!t->canonical && !(t->sname = db_strdup(r, 0)))
		return -ENOMEM;
	return 0;
}

/* Load the group of children of @parent named @name (snames of
 * non-canonical members only). *t malloc'd. 0 or -errno. */
static int twins_load(struct meta *m, uint64_t parent, const char *name, struct twin **t,
		      size_t *n)
{
	struct twins_ctx c = { NULL, 0, 0 };
	int err = wr(db_exec(m->db, ST_TWINS, DB_ARGS(DB_U64(parent), DB_NAME(name)), twins_row,
			     &c));

	*t = NULL;
	*n = 0;
	if (err) {
		meta_twins_release(c.v, c.n);
		free(c.v);
		return err;
	}
	*t = c.v;
	*n = c.n;
	return 0;
}

/* The name shown for child @sname of @parent named @name: *shown malloc'd,
 * NULL when hidden. 0 or -errno. */
static int twin_shown(struct meta *m, uint64_t parent, const char *name, const char *sname,
		      char **shown)
{
	struct twin *t;
	size_t n;
	int err = twins_load(m, parent, name, &t, &n);

	*shown = NULL;
	if (!err)
		err = meta_twins_name(m, parent, name, t, n);
	for (size_t i = 0; !err && i < n; i++) {
		if (t[i].sname && !strcmp(t[i].sname, sname)) {
			*shown = t[i].shown;
			t[i].shown = NULL;
		}
	}
	meta_twins_release(t, n);
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

struct lookup_twin_ctx {
	struct meta *m;
	uint64_t parent;
	const char *name;
	struct meta_attr *out;
	bool found;
};

static int lookup_twin_row(void *ctx, struct db_row *r)
{
	struct lookup_twin_ctx *c = ctx;
	const char *sn = db_text(r, NODE_NCOLS + 1);
	char *base, *sname, *shown = NULL;
	struct meta_attr a;
	int err;

	if (!sn || !may_be_twin_of(c->name, sn))
		return 0;
	meta_row_attr(r, &a);
	base = db_strdup(r, NODE_NCOLS);
	sname = strdup(sn);
	if (!base || !sname)
		err = -ENOMEM;
	else
		err = twin_shown(c->m, c->parent, base, sname, &shown);
	if (!err && shown && !strcmp(shown, c->name)) {
		*c->out = a;
		c->found = true;
		err = 1;
	}
	free(base);
	free(sname);
	free(shown);
	return err;
}

/* Scans the folder's non-canonical children (rare), and only for names
 * that carry the tag. */
int meta_lookup_twin(struct meta *m, uint64_t parent, const char *name, struct meta_attr *out)
{
	struct lookup_twin_ctx c = { m, parent, name, out, false };
	int err;

	if (!strstr(name, NAMES_DUP_TAG))
		return -ENOENT;
	err = wr(db_exec(m->db, ST_NONCANON, DB_ARGS(DB_U64(parent)), lookup_twin_row, &c));
	return err ? err : c.found ? 0 : -ENOENT;
}

void meta_twin_notes_release(struct twin_notes *tn)
{
	for (size_t i = 0; i < tn->n; i++)
		free(tn->v[i].name);
	free(tn->v);
	tn->v = NULL;
	tn->n = tn->cap = 0;
}

int meta_twin_note(struct twin_notes *tn, uint64_t dir, const char *name)
{
	if (array_grow(&tn->v, &tn->cap, tn->n, sizeof(*tn->v), 8))
		return -ENOMEM;
	if (!(tn->v[tn->n].name = strdup(name)))
		return -ENOMEM;
	tn->v[tn->n++].dir = dir;
	return 0;
}

static int twin_note_cmp(const void *a, const void *b)
{
	const struct twin_note *x = a, *y = b;

	if (x->dir != y->dir)
		return x->dir < y->dir ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Say which name each member of a named group is shown under. */
static void twins_warn_group(const char *dir, const struct twin *t, size_t tn)
{
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
}

/* One pass per group. */
void meta_twins_warn(struct meta *m, struct twin_notes *tn)
{
	struct twin_note *v = tn->v;

	if (tn->n)
		qsort(v, tn->n, sizeof(*v), twin_note_cmp);
	for (size_t i = 0; i < tn->n; i++) {
		struct twin *t = NULL;
		size_t n = 0;
		char *dir = NULL;

		if (i && !twin_note_cmp(&v[i - 1], &v[i]))
			continue;       /* group done */
		if (!twins_load(m, v[i].dir, v[i].name, &t, &n) && n >= 2 &&
		    !meta_twins_name(m, v[i].dir, v[i].name, t, n) &&
		    !meta_path(m, v[i].dir, &dir))
			twins_warn_group(dir, t, n);
		free(dir);
		meta_twins_release(t, n);
		free(t);
	}
	meta_twin_notes_release(tn);
}

void meta_change_add_twin(struct meta_changes *c, enum meta_change_kind kind, uint64_t id,
			  uint64_t parent, const char *name, const char *sname)
{
	char *shown = NULL;

	if (!c || !sname || names_dup_name(name, names_dup_hash(sname, 0), &shown))
		return;
	meta_change_add(c, kind, id, parent, shown);
	free(shown);
}
