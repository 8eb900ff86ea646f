/*
 * tests/unit/test_meta.c — the metadata index (cache/meta): listings,
 * visibility of names that decode alike, sweeps, generations, recursive
 * listings, content records, persistence across reopen.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "unit.h"

#include "cache/meta.h"
#include "net/names.h"

struct fixture {
	char dir[64];
	char path[96];
	struct meta *m;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	unit_tmpdir(f->dir, sizeof(f->dir), "test_meta");
	snprintf(f->path, sizeof(f->path), "%s/index.db", f->dir);
	assert_int_equal(meta_open(f->path, "u/Jotta/Archive", &f->m), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	meta_close(f->m, true);
	unit_rm_rf(f->dir);
	free(f);
	return 0;
}

static struct meta_entry file_entry(const char *sname, const char *name, int64_t size,
				    const char *md5)
{
	struct meta_entry e = { .sname = sname, .name = name, .canonical = true,
				.size = size, .mtime = 1000, .created = 900,
				.updated = 1100, .has_updated = true, .revision = 1 };
	snprintf(e.md5, sizeof(e.md5), "%s", md5);
	return e;
}

/* File number @i of a large listing: named f%05d in @name, @i bytes */
static struct meta_entry nth_file(char name[32], int i)
{
	snprintf(name, 32, "f%05d", i);
	return file_entry(name, name, i, "00000000000000000000000000000009");
}

static struct meta_entry dir_entry(const char *sname, const char *name)
{
	struct meta_entry e = { .sname = sname, .name = name, .canonical = true, .is_dir = true };
	return e;
}

static int count_change(const struct meta_changes *ch, enum meta_change_kind k, const char *name)
{
	int n = 0;

	for (size_t i = 0; i < ch->n; i++)
		if (ch->v[i].kind == k && (!name || (ch->v[i].name && !strcmp(ch->v[i].name, name))))
			n++;
	return n;
}

static void test_root(void **state)
{
	struct fixture *f = *state;
	struct meta_attr a;
	char *p;

	assert_int_equal(meta_get(f->m, META_ROOT_ID, &a), 0);
	assert_true(a.is_dir);
	assert_int_equal(a.parent, 0);
	assert_int_equal(a.listed_at, 0);
	assert_int_equal(meta_path(f->m, META_ROOT_ID, &p), 0);
	assert_string_equal(p, "");
	free(p);
	assert_int_equal(meta_get(f->m, 999, &a), -ENOENT);
}

static void test_listing(void **state)
{
	struct fixture *f = *state;
	struct meta_entry v[] = {
		file_entry("a.txt", "a.txt", 5, "0123456789abcdef0123456789abcdef"),
		dir_entry("sub dir", "sub dir"),
		file_entry("q\xef\xbc\x9f", "q?", 0, "d41d8cd98f00b204e9800998ecf8427e"),
	};
	struct meta_changes ch = { 0 };
	struct meta_attr a, s;
	char *p;

	assert_int_equal(meta_apply_listing(f->m, META_ROOT_ID, meta_gen_next(f->m), v, 3, 5000, &ch), 0);
	/* A first listing reports no additions (nothing in the kernel to invalidate). */
	assert_int_equal(ch.n, 0);
	assert_int_equal(meta_get(f->m, META_ROOT_ID, &a), 0);
	assert_int_equal(a.listed_at, 5000);

	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "a.txt", &a), 0);
	assert_false(a.is_dir);
	assert_int_equal(a.size, 5);
	assert_int_equal(a.mtime, 1000);
	assert_int_equal(a.created, 900);
	assert_int_equal(a.updated, 1100);
	assert_int_equal(a.revision, 1);
	assert_string_equal(a.md5, "0123456789abcdef0123456789abcdef");
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "q?", &a), 0);
	assert_int_equal(meta_path(f->m, a.id, &p), 0);
	assert_string_equal(p, "q\xef\xbc\x9f");
	free(p);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "A.TXT", &a), -ENOENT);

	/* A child listing and a path through it. */
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "sub dir", &s), 0);
	assert_true(s.is_dir);
	struct meta_entry w[] = { file_entry("x", "x", 1, "00000000000000000000000000000001") };
	assert_int_equal(meta_apply_listing(f->m, s.id, meta_gen_next(f->m), w, 1, 5001, NULL), 0);
	assert_int_equal(meta_lookup(f->m, s.id, "x", &a), 0);
	assert_int_equal(meta_path(f->m, a.id, &p), 0);
	assert_string_equal(p, "sub dir/x");
	free(p);

	/* Relisting the root without "sub dir" removes its subtree. */
	struct meta_entry v2[] = { v[0], v[2], file_entry("new", "new", 1, "00000000000000000000000000000002") };
	v2[0].size = 6;
	snprintf(v2[0].md5, sizeof(v2[0].md5), "ffffffffffffffffffffffffffffffff");
	assert_int_equal(meta_apply_listing(f->m, META_ROOT_ID, meta_gen_next(f->m), v2, 3, 5002, &ch), 0);
	assert_int_equal(count_change(&ch, META_REMOVED, "sub dir"), 1);
	assert_int_equal(count_change(&ch, META_ADDED, "new"), 1);
	assert_int_equal(count_change(&ch, META_CONTENT, NULL), 1);
	meta_changes_release(&ch);
	assert_int_equal(meta_get(f->m, a.id, &a), -ENOENT);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "sub dir", &s), -ENOENT);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "a.txt", &a), 0);
	assert_int_equal(a.size, 6);
}

struct collect {
	char names[4096][64];
	uint64_t ids[4096];
	int n;
};

static int count_cb(void *ctx, uint64_t id)
{
	struct collect *c = ctx;

	c->ids[c->n++] = id;
	return 0;
}

static int collect_cb(void *ctx, const struct meta_attr *a, const char *name)
{
	struct collect *c = ctx;

	assert_true(c->n < 4096);
	snprintf(c->names[c->n], sizeof(c->names[0]), "%s", name);
	c->ids[c->n] = a->id;
	c->n++;
	return 0;
}

/* The name twin @sname of @name is shown under, for hash round @round. */
static char *twin_name(const char *name, const char *sname, unsigned round)
{
	char *out = NULL;

	assert_int_equal(names_dup_name(name, names_dup_hash(sname, round), &out), 0);
	return out;
}

static int64_t size_of(struct meta *m, uint64_t parent, const char *name)
{
	struct meta_attr a;
	int err = meta_lookup(m, parent, name, &a);

	return err ? err : a.size;
}

/* Two server names that decode to one POSIX name ("twins"): all stay
 * reachable, the canonical one under the name, the others under a suffix
 * from their own server name, in lookups and in listings alike. */
static void test_duplicates(void **state)
{
	struct fixture *f = *state;
	struct meta_entry v[] = {
		file_entry("a:b", "a:b", 1, "00000000000000000000000000000001"),        /* raw ':' (another client) */
		file_entry("a\xef\xbc\x9a" "b", "a:b", 2, "00000000000000000000000000000002"), /* canonical */
		file_entry("z", "z", 3, "00000000000000000000000000000003"),
		file_entry("y2", "y", 4, "00000000000000000000000000000004"),
		file_entry("y1", "y", 5, "00000000000000000000000000000005"),
	};
	struct meta_changes ch = { 0 };
	struct collect c = { 0 };
	char *y1 = twin_name("y", "y1", 0), *y2 = twin_name("y", "y2", 0);
	struct meta_attr a;
	char *sname;

	v[0].canonical = false;
	v[3].canonical = v[4].canonical = false;
	assert_int_equal(meta_apply_listing(f->m, META_ROOT_ID, meta_gen_next(f->m), v, 5, 1, NULL), 0);
	assert_int_equal(size_of(f->m, META_ROOT_ID, "a:b"), 2);
	assert_int_equal(size_of(f->m, META_ROOT_ID, "a:b (jottacloud 08bd8540)"), 1);
	/* No canonical spelling: nobody has the plain name, each its own suffix. */
	assert_int_equal(size_of(f->m, META_ROOT_ID, "y"), -ENOENT);
	assert_int_equal(size_of(f->m, META_ROOT_ID, y1), 5);
	assert_int_equal(size_of(f->m, META_ROOT_ID, y2), 4);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, y1, &a), 0);
	assert_int_equal(meta_names(f->m, a.id, NULL, &sname), 0);
	assert_string_equal(sname, "y1");
	free(sname);
	/* Suffixes that are not (or no longer) shown find nothing. */
	assert_int_equal(size_of(f->m, META_ROOT_ID, "z (jottacloud 00000000)"), -ENOENT);
	assert_int_equal(size_of(f->m, META_ROOT_ID, "a:b (jottacloud 00000000)"), -ENOENT);

	assert_int_equal(meta_children(f->m, META_ROOT_ID, collect_cb, &c), 0);
	assert_int_equal(c.n, 5);
	assert_string_equal(c.names[0], "a:b");
	assert_string_equal(c.names[1], "a:b (jottacloud 08bd8540)");
	assert_string_equal(c.names[2], y1);
	assert_string_equal(c.names[3], y2);
	assert_string_equal(c.names[4], "z");
	assert_int_equal(meta_get(f->m, c.ids[0], &a), 0);
	assert_int_equal(a.size, 2);
	assert_int_equal(meta_get(f->m, c.ids[1], &a), 0);
	assert_int_equal(a.size, 1);

	/* y1 goes away: y2 has no twin left and shows the plain name again;
	 * the kernel hears of both names y1 may have been known by. */
	v[4] = v[2];
	assert_int_equal(meta_apply_listing(f->m, META_ROOT_ID, meta_gen_next(f->m), v, 4, 2, &ch), 0);
	assert_int_equal(count_change(&ch, META_REMOVED, "y"), 1);
	assert_int_equal(count_change(&ch, META_REMOVED, y1), 1);
	meta_changes_release(&ch);
	assert_int_equal(size_of(f->m, META_ROOT_ID, "y"), 4);
	assert_int_equal(size_of(f->m, META_ROOT_ID, y2), -ENOENT);

	/* A twin that appears later is reported under both names too. */
	struct meta_entry y1e = file_entry("y1", "y", 5, "00000000000000000000000000000005");
	y1e.canonical = false;
	v[4] = y1e;
	assert_int_equal(meta_apply_listing(f->m, META_ROOT_ID, meta_gen_next(f->m), v, 5, 3, &ch), 0);
	assert_int_equal(count_change(&ch, META_ADDED, "y"), 1);
	assert_int_equal(count_change(&ch, META_ADDED, y1), 1);
	meta_changes_release(&ch);
	assert_int_equal(size_of(f->m, META_ROOT_ID, y2), 4);
	free(y1);
	free(y2);
}

/* A suffixed name that another entry has: the next round, for lookups and
 * listings alike; and the result does not depend on the listing order. */
static void test_duplicates_taken(void **state)
{
	struct fixture *f = *state;
	char *q1 = twin_name("q.txt", "q1.txt", 0), *q2 = twin_name("q.txt", "q2.txt", 0);
	char *q1b = twin_name("q.txt", "q1.txt", 1);
	struct meta_entry v[] = {
		file_entry("q1.txt", "q.txt", 1, "00000000000000000000000000000001"),
		file_entry("q2.txt", "q.txt", 2, "00000000000000000000000000000002"),
		file_entry(q1, q1, 3, "00000000000000000000000000000003"),  /* a real file */
		dir_entry("d1", "d1"),
		dir_entry("d2", "d2"),
	};
	struct meta_entry r[3];
	struct collect c1 = { 0 }, c2 = { 0 };
	struct meta_attr d1, d2;

	v[0].canonical = v[1].canonical = false;
	assert_int_equal(meta_apply_listing(f->m, META_ROOT_ID, meta_gen_next(f->m), v, 5, 1, NULL), 0);
	assert_int_equal(size_of(f->m, META_ROOT_ID, q1), 3);
	assert_int_equal(size_of(f->m, META_ROOT_ID, q1b), 1);
	assert_int_equal(size_of(f->m, META_ROOT_ID, q2), 2);
	assert_int_equal(size_of(f->m, META_ROOT_ID, "q.txt"), -ENOENT);
	assert_non_null(strstr(q1b, ").txt"));

	/* The same entries in the opposite order, in two folders. */
	for (int i = 0; i < 3; i++)
		r[i] = v[2 - i];
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "d1", &d1), 0);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "d2", &d2), 0);
	assert_int_equal(meta_apply_listing(f->m, d1.id, meta_gen_next(f->m), v, 3, 1, NULL), 0);
	assert_int_equal(meta_apply_listing(f->m, d2.id, meta_gen_next(f->m), r, 3, 1, NULL), 0);
	assert_int_equal(meta_children(f->m, d1.id, collect_cb, &c1), 0);
	assert_int_equal(meta_children(f->m, d2.id, collect_cb, &c2), 0);
	assert_int_equal(c1.n, 3);
	assert_int_equal(c2.n, 3);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(c1.names[i], c2.names[i]);
	free(q1);
	free(q2);
	free(q1b);
}

/* Twins arriving in a recursive listing: "．．" (another client's spelling
 * of "..", shown as U+FF0E U+FF0E) and "‛．‛．" (the canonical spelling of a
 * local "．．"), also across a batch boundary. */
static void test_duplicates_stream(void **state)
{
	struct fixture *f = *state;
	struct meta_stream *st;
	struct meta_entry root = dir_entry("", ""), dd = dir_entry("d", "d");
	struct meta_entry raw = file_entry("\xef\xbc\x8e\xef\xbc\x8e", "\xef\xbc\x8e\xef\xbc\x8e", 1,
					   "00000000000000000000000000000001");
	struct meta_entry can = file_entry("\xe2\x80\x9b\xef\xbc\x8e\xe2\x80\x9b\xef\xbc\x8e",
					   "\xef\xbc\x8e\xef\xbc\x8e", 2,
					   "00000000000000000000000000000002");
	char *shown = twin_name("\xef\xbc\x8e\xef\xbc\x8e", "\xef\xbc\x8e\xef\xbc\x8e", 0);
	struct collect c = { 0 };
	struct meta_attr d;

	raw.canonical = false;
	assert_int_equal(meta_stream_begin(f->m, META_ROOT_ID, meta_gen_next(f->m), NULL, &st), 0);
	assert_int_equal(meta_stream_add(st, "", &root), 0);
	assert_int_equal(meta_stream_add(st, "", &dd), 0);
	assert_int_equal(meta_stream_add(st, "d", &raw), 0);
	for (int i = 0; i < 3000; i++) {
		char name[32];
		struct meta_entry fe = nth_file(name, i);
		assert_int_equal(meta_stream_add(st, "d", &fe), 0);
	}
	assert_int_equal(meta_stream_add(st, "d", &can), 0);
	assert_int_equal(meta_stream_end(st, true, 5), 0);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "d", &d), 0);
	assert_int_equal(size_of(f->m, d.id, "\xef\xbc\x8e\xef\xbc\x8e"), 2);
	assert_int_equal(size_of(f->m, d.id, shown), 1);
	assert_string_equal(shown, "\xef\xbc\x8e\xef\xbc\x8e (jottacloud 180eb51f)");
	assert_int_equal(meta_children(f->m, d.id, collect_cb, &c), 0);
	assert_int_equal(c.n, 3002);
	assert_string_equal(c.names[3000], "\xef\xbc\x8e\xef\xbc\x8e");
	assert_string_equal(c.names[3001], shown);
	free(shown);
}

static void test_fold(void **state)
{
	struct fixture *f = *state;
	struct meta_entry v[] = { file_entry("\xc3\x86" "bLe", "\xc3\x86" "bLe", 1,
					     "00000000000000000000000000000001") };
	uint64_t id = 0;
	char *s = meta_fold("ABC\xc3\x86\xd0\x96\xff" "x");

	assert_string_equal(s, "abc\xc3\xa6\xd0\xb6\xff" "x");
	free(s);
	assert_int_equal(meta_apply_listing(f->m, META_ROOT_ID, meta_gen_next(f->m), v, 1, 1, NULL), 0);
	assert_int_equal(meta_lookup_fold(f->m, META_ROOT_ID, "\xc3\xa6" "ble", &id, &s), 0);
	assert_int_not_equal(id, 0);
	assert_string_equal(s, "\xc3\x86" "bLe");
	free(s);
	assert_int_equal(meta_lookup_fold(f->m, META_ROOT_ID, "other", &id, NULL), 0);
	assert_int_equal(id, 0);
}

/* UTF-8 of code point @c into @out (NUL-terminated). */
static void put_utf8(uint32_t c, char *out)
{
	if (c < 0x80) {
		out[0] = (char)c;
		out[1] = 0;
	} else if (c < 0x800) {
		out[0] = (char)(0xc0 | (c >> 6));
		out[1] = (char)(0x80 | (c & 0x3f));
		out[2] = 0;
	} else if (c < 0x10000) {
		out[0] = (char)(0xe0 | (c >> 12));
		out[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[2] = (char)(0x80 | (c & 0x3f));
		out[3] = 0;
	} else {
		out[0] = (char)(0xf0 | (c >> 18));
		out[1] = (char)(0x80 | ((c >> 12) & 0x3f));
		out[2] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[3] = (char)(0x80 | (c & 0x3f));
		out[4] = 0;
	}
}

static bool fold_equal(uint32_t a, uint32_t b)
{
	char sa[8], sb[8];
	put_utf8(a, sa);
	put_utf8(b, sb);
	char *fa = meta_fold(sa), *fb = meta_fold(sb);
	bool eq = fa && fb && !strcmp(fa, fb);
	free(fa);
	free(fb);
	return eq;
}

/*
 * Issue 7 item 2: meta_fold() takes two names as one exactly when Java's
 * String.equalsIgnoreCase does, over every BMP code point. The reference
 * is the rule itself (equal, or equal upper-case forms, or equal lower-case
 * forms of those; Character's simple mappings) on Unicode's own tables,
 * UnicodeData.txt (Debian unicode-data): the code points it puts in one
 * class must be exactly the ones meta_fold() folds alike.
 */
#define UNICODE_DATA "/usr/share/unicode/UnicodeData.txt"
static void test_fold_is_java_equals_ignore_case(void **state)
{
	FILE *f = fopen(UNICODE_DATA, "r");
	uint32_t *up = calloc(0x10000, sizeof(*up)), *lo = calloc(0x10000, sizeof(*lo));
	uint32_t *key = calloc(0x10000, sizeof(*key)), *fold = calloc(0x10000, sizeof(*fold));
	uint32_t *k2f = calloc(0x10000, sizeof(*k2f)), *f2k = calloc(0x110000, sizeof(*f2k));
	char line[1024];
	unsigned classes = 0, bad = 0;

	(void)state;
	if (!f)
		fail_msg("cannot read " UNICODE_DATA " (install the Debian package unicode-data)");
	assert_non_null(up && lo && key && fold && k2f && f2k);
	for (uint32_t c = 0; c < 0x10000; c++)
		up[c] = lo[c] = c;
	while (fgets(line, sizeof(line), f)) {
		char *field[15] = { 0 }, *save = NULL, *p = line;
		int n = 0;
		/* fields may be empty: split by hand */
		for (; n < 15 && p; n++) {
			field[n] = p;
			p = strchr(p, ';');
			if (p)
				*p++ = 0;
		}
		(void)save;
		uint32_t c = (uint32_t)strtoul(field[0], NULL, 16);
		if (c >= 0x10000 || n < 14)
			continue;
		if (*field[12])
			up[c] = (uint32_t)strtoul(field[12], NULL, 16);
		if (*field[13])
			lo[c] = (uint32_t)strtoul(field[13], NULL, 16);
	}
	fclose(f);
	for (uint32_t c = 1; c < 0x10000; c++) {
		char s[8], *fs;
		if (c >= 0xd800 && c <= 0xdfff)
			continue;       /* a surrogate is no code point on its own */
		key[c] = lo[up[c]] ? lo[up[c]] : up[c];
		put_utf8(c, s);
		fs = meta_fold(s);
		assert_non_null(fs);
		/* one code point folds to one code point */
		const unsigned char *u = (const unsigned char *)fs;
		uint32_t cp = u[0] < 0x80 ? u[0] : u[0] < 0xe0 ? (u[0] & 0x1fu) << 6 | (u[1] & 0x3fu)
			: u[0] < 0xf0 ? (u[0] & 0x0fu) << 12 | (u[1] & 0x3fu) << 6 | (u[2] & 0x3fu)
			: (u[0] & 0x07u) << 18 | (u[1] & 0x3fu) << 12 | (u[2] & 0x3fu) << 6 | (u[3] & 0x3fu);
		fold[c] = cp;
		free(fs);
	}
	/* Java's classes and meta_fold()'s must be the same partition. */
	for (uint32_t c = 1; c < 0x10000; c++) {
		if (c >= 0xd800 && c <= 0xdfff)
			continue;
		uint32_t k = key[c] & 0xffff, fo = fold[c];
		if (!k2f[k] && !f2k[fo]) {
			k2f[k] = fo;
			f2k[fo] = key[c];
			classes++;
			continue;
		}
		if (k2f[k] != fo || f2k[fo] != key[c]) {
			if (bad++ < 10)
				print_error("U+%04X: Java key U+%04X, folds to U+%04X (class of U+%04X / U+%04X)\n",
					    c, key[c], fo, k2f[k], f2k[fo]);
		}
	}
	assert_int_equal(bad, 0);
	assert_true(classes > 60000);
	/* the look-alike pairs of the issue, and Kelvin */
	assert_true(fold_equal(0x131, 'i') && fold_equal(0x130, 'i') && fold_equal(0x130, 'I'));
	assert_true(fold_equal(0x17f, 's') && fold_equal(0x3c2, 0x3c3) && fold_equal(0xb5, 0x3bc));
	assert_true(fold_equal(0x212a, 'k') && fold_equal(0x1e9e, 0xdf));
	assert_false(fold_equal('a', 'b') || fold_equal(0xdf, 's'));
	/* outside the BMP: folded too (the safe side, see meta_fold) */
	assert_true(fold_equal(0x10400, 0x10428));
	free(up);
	free(lo);
	free(key);
	free(fold);
	free(k2f);
	free(f2k);
}

/* A listing taken before a newer one must not overwrite it; one taken
 * before a local change is refused. */
static void test_generations(void **state)
{
	struct fixture *f = *state;
	struct meta_entry old[] = { file_entry("f", "f", 1, "00000000000000000000000000000001") };
	struct meta_entry new[] = { file_entry("f", "f", 2, "00000000000000000000000000000002") };
	uint64_t g1 = meta_gen_next(f->m), g2 = meta_gen_next(f->m);
	struct meta_attr a;

	assert_int_equal(meta_apply_listing(f->m, META_ROOT_ID, g2, new, 1, 20, NULL), 0);
	assert_int_equal(meta_apply_listing(f->m, META_ROOT_ID, g1, old, 1, 21, NULL), 0);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "f", &a), 0);
	assert_int_equal(a.size, 2);
	assert_int_equal(meta_get(f->m, META_ROOT_ID, &a), 0);
	assert_int_equal(a.listed_at, 20);

	assert_int_equal(meta_set_stale(f->m, META_ROOT_ID), 0);
	assert_int_equal(meta_get(f->m, META_ROOT_ID, &a), 0);
	assert_int_equal(a.listed_at, 0);
	assert_int_equal(meta_apply_listing(f->m, 424242, meta_gen_next(f->m), new, 1, 1, NULL), -ENOENT);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "f", &a), 0);
	assert_int_equal(meta_apply_listing(f->m, a.id, meta_gen_next(f->m), new, 1, 1, NULL), -ENOTDIR);
}

static void test_stream(void **state)
{
	struct fixture *f = *state;
	struct meta_entry pre[] = { file_entry("gone", "gone", 1, "00000000000000000000000000000001"),
				    dir_entry("d", "d") };
	struct meta_stream *st;
	struct meta_changes ch = { 0 };
	struct meta_attr a, d, e;
	struct collect c = { 0 };

	assert_int_equal(meta_apply_listing(f->m, META_ROOT_ID, meta_gen_next(f->m), pre, 2, 1, NULL), 0);
	assert_int_equal(meta_stream_begin(f->m, META_ROOT_ID, meta_gen_next(f->m), &ch, &st), 0);
	struct meta_entry root = dir_entry("", "");
	assert_int_equal(meta_stream_add(st, "", &root), 0);
	struct meta_entry dd = dir_entry("d", "d"), de = dir_entry("e", "e");
	assert_int_equal(meta_stream_add(st, "", &dd), 0);
	assert_int_equal(meta_stream_add(st, "d", &de), 0);
	/* Enough entries to cross a batch boundary. */
	for (int i = 0; i < 5000; i++) {
		char name[32];
		struct meta_entry fe = nth_file(name, i);
		fe.revision = 0;
		fe.has_updated = false;
		assert_int_equal(meta_stream_add(st, i % 2 ? "d" : "d/e", &fe), 0);
	}
	/* A file whose folder was never announced is ignored. */
	struct meta_entry orphan = file_entry("o", "o", 1, "00000000000000000000000000000001");
	assert_int_equal(meta_stream_add(st, "nowhere", &orphan), 0);
	assert_int_equal(meta_stream_count(st), 5003); /* the folder itself is not counted */
	assert_int_equal(meta_stream_end(st, true, 77), 0);
	assert_int_equal(count_change(&ch, META_REMOVED, "gone"), 1);
	meta_changes_release(&ch);

	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "gone", &a), -ENOENT);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "d", &d), 0);
	assert_int_equal(d.listed_at, 77);
	assert_int_equal(meta_lookup(f->m, d.id, "e", &e), 0);
	assert_int_equal(e.listed_at, 77);
	assert_int_equal(meta_lookup(f->m, e.id, "f04998", &a), 0);
	assert_int_equal(a.size, 4998);
	assert_int_equal(meta_lookup(f->m, d.id, "f04999", &a), 0);
	assert_int_equal(meta_get(f->m, META_ROOT_ID, &a), 0);
	assert_int_equal(a.listed_at, 77);
	assert_int_equal(meta_children(f->m, META_ROOT_ID, collect_cb, &c), 0);
	assert_int_equal(c.n, 1);

	/* A failed stream neither sweeps nor marks fresh. */
	assert_int_equal(meta_set_stale(f->m, d.id), 0);
	assert_int_equal(meta_stream_begin(f->m, d.id, meta_gen_next(f->m), NULL, &st), 0);
	assert_int_equal(meta_stream_end(st, false, 99), 0);
	assert_int_equal(meta_get(f->m, d.id, &a), 0);
	assert_int_equal(a.listed_at, 0);
	assert_int_equal(meta_lookup(f->m, d.id, "f00001", &a), 0);
}

static void test_content_and_gc(void **state)
{
	struct fixture *f = *state;
	struct meta_entry v[] = { file_entry("f", "f", 10, "00000000000000000000000000000001"),
				  file_entry("g", "g", 10, "00000000000000000000000000000002") };
	struct meta_content c = { .size = 10, .md5 = "00000000000000000000000000000001",
				  .atime = 5, .bytes = 4 };
	unsigned char blob[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 4 };
	struct meta_attr fa, ga;
	uint64_t ids[8];
	size_t n;
	int64_t total, dirty;

	assert_int_equal(meta_apply_listing(f->m, META_ROOT_ID, meta_gen_next(f->m), v, 2, 1, NULL), 0);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "f", &fa), 0);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "g", &ga), 0);
	c.ranges = blob;
	c.ranges_len = sizeof(blob);
	assert_int_equal(meta_content_put(f->m, fa.id, &c), 0);
	c.dirty = true;
	c.atime = 1;
	c.bytes = 6;
	assert_int_equal(meta_content_put(f->m, ga.id, &c), 0);
	assert_int_equal(meta_content_usage(f->m, &total, &dirty), 0);
	assert_int_equal(total, 10);
	assert_int_equal(dirty, 6);
	/* LRU lists clean content only. */
	assert_int_equal(meta_content_lru(f->m, ids, 8, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], fa.id);

	struct meta_content got;
	assert_int_equal(meta_content_get(f->m, fa.id, &got), 0);
	assert_int_equal(got.size, 10);
	assert_int_equal(got.bytes, 4);
	assert_int_equal(got.ranges_len, 16);
	assert_memory_equal(got.ranges, blob, 16);
	meta_content_release(&got);

	/* The server drops both files: clean content goes to gc, dirty stays. */
	assert_int_equal(meta_apply_listing(f->m, META_ROOT_ID, meta_gen_next(f->m), NULL, 0, 2, NULL), 0);
	assert_int_equal(meta_gc_take(f->m, ids, 8, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], fa.id);
	assert_int_equal(meta_gc_take(f->m, ids, 8, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(meta_content_get(f->m, fa.id, &got), -ENOENT);
	assert_int_equal(meta_content_get(f->m, ga.id, &got), 0);
	assert_true(got.dirty);
	meta_content_release(&got);
}

/* The index survives a reopen; another remote's index is emptied. */
static void test_reopen(void **state)
{
	struct fixture *f = *state;
	struct meta_entry v[] = { file_entry("keep", "keep", 3, "00000000000000000000000000000003") };
	struct meta_attr a, b;

	assert_true(meta_was_clean(f->m) == false);     /* a new index */
	assert_int_equal(meta_apply_listing(f->m, META_ROOT_ID, meta_gen_next(f->m), v, 1, 1, NULL), 0);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "keep", &a), 0);
	meta_close(f->m, true);
	assert_int_equal(meta_open(f->path, "u/Jotta/Archive", &f->m), 0);
	assert_true(meta_was_clean(f->m));
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "keep", &b), 0);
	assert_int_equal(a.id, b.id);
	/* Generations continue past what is stored. */
	assert_true(meta_gen_next(f->m) > 1);
	meta_close(f->m, false);
	assert_int_equal(meta_open(f->path, "u/Jotta/Archive", &f->m), 0);
	assert_false(meta_was_clean(f->m));
	meta_close(f->m, true);
	assert_int_equal(meta_open(f->path, "u/Jotta/Sync", &f->m), 0);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "keep", &b), -ENOENT);
	assert_int_equal(meta_get(f->m, META_ROOT_ID, &b), 0);
}

/* Run @sql on the closed index with a second connection. */
static void index_sql(const struct fixture *f, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* An index made before the version moved to user_version (it said
 * schema '2' in info) is kept; one of another schema starts afresh. */
static void test_legacy_schema(void **state)
{
	struct fixture *f = *state;
	struct meta_entry v[] = { file_entry("keep", "keep", 3, "00000000000000000000000000000003") };
	struct meta_attr a, b;

	assert_int_equal(meta_apply_listing(f->m, META_ROOT_ID, meta_gen_next(f->m), v, 1, 1, NULL), 0);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "keep", &a), 0);
	meta_close(f->m, true);
	index_sql(f, "PRAGMA user_version=0; INSERT OR REPLACE INTO info VALUES('schema', '2');");
	assert_int_equal(meta_open(f->path, "u/Jotta/Archive", &f->m), 0);
	assert_true(meta_was_clean(f->m));
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "keep", &b), 0);
	assert_int_equal(a.id, b.id);
	meta_close(f->m, true);
	index_sql(f, "PRAGMA user_version=0; INSERT OR REPLACE INTO info VALUES('schema', '1');");
	assert_int_equal(meta_open(f->path, "u/Jotta/Archive", &f->m), 0);
	assert_false(meta_was_clean(f->m));
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "keep", &b), -ENOENT);
	assert_int_equal(meta_get(f->m, META_ROOT_ID, &b), 0);
	/* a future version: the index is a cache, started afresh too */
	assert_int_equal(meta_apply_listing(f->m, META_ROOT_ID, meta_gen_next(f->m), v, 1, 2, NULL), 0);
	meta_close(f->m, true);
	index_sql(f, "PRAGMA user_version=99;");
	assert_int_equal(meta_open(f->path, "u/Jotta/Archive", &f->m), 0);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "keep", &b), -ENOENT);
}

/* The last known quota survives a reopen (statfs falls back on it). */
static void test_quota(void **state)
{
	struct fixture *f = *state;
	int64_t usage = -5, cap = -5;

	assert_int_equal(meta_quota_get(f->m, &usage, &cap), -ENOENT);
	assert_int_equal(usage, -5);
	assert_int_equal(meta_quota_put(f->m, 12345, 10LL << 40), 0);
	assert_int_equal(meta_quota_put(f->m, 3LL << 40, 5LL << 40), 0);
	meta_close(f->m, true);
	assert_int_equal(meta_open(f->path, "u/Jotta/Archive", &f->m), 0);
	assert_int_equal(meta_quota_get(f->m, &usage, &cap), 0);
	assert_int_equal(usage, 3LL << 40);
	assert_int_equal(cap, 5LL << 40);
	/* Unlimited. */
	assert_int_equal(meta_quota_put(f->m, 7, -1), 0);
	assert_int_equal(meta_quota_get(f->m, &usage, &cap), 0);
	assert_int_equal(usage, 7);
	assert_int_equal(cap, -1);
}

/* Local changes win over listings sent before them. */
static void test_local_changes(void **state)
{
	struct fixture *f = *state;
	struct meta_entry v[] = { file_entry("old", "old", 3, "00000000000000000000000000000003"),
				  file_entry("Case", "Case", 1, "00000000000000000000000000000001") };
	struct meta_attr a, b;
	uint64_t id, dir, replaced, g_before;
	struct collect c = { 0 };

	assert_int_equal(meta_apply_listing(f->m, META_ROOT_ID, meta_gen_next(f->m), v, 2, 1, NULL), 0);
	g_before = meta_gen_next(f->m);         /* a listing "sent" now ... */

	/* ... then local changes: create, unlink, modify. */
	assert_int_equal(meta_create(f->m, META_ROOT_ID, "new", "new", false, 50, &id), 0);
	uint64_t dup;
	assert_int_equal(meta_create(f->m, META_ROOT_ID, "new", "new", false, 50, &dup), -EEXIST);
	assert_int_equal(meta_get(f->m, id, &a), 0);
	assert_int_equal(a.local, META_LOCAL_DIRTY);
	assert_int_equal(a.base_size, -1);
	assert_int_equal(a.mtime, 50);
	assert_int_equal(meta_create(f->m, META_ROOT_ID, "dir", "dir", true, 60, &dir), 0);
	assert_int_equal(meta_get(f->m, dir, &a), 0);
	assert_int_equal(a.listed_at, 60);
	assert_int_equal(a.local, META_LOCAL_NONE);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "old", &a), 0);
	assert_int_equal(meta_unlink(f->m, a.id), 0);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "Case", &b), 0);
	assert_int_equal(meta_set_local(f->m, b.id, 10, 70, ""), 0);
	assert_int_equal(meta_get(f->m, b.id, &b), 0);
	assert_int_equal(b.base_size, 1);
	assert_string_equal(b.base_md5, "00000000000000000000000000000001");
	assert_int_equal(b.size, 10);
	/* A second local change keeps the base. */
	assert_int_equal(meta_set_local(f->m, b.id, 12, 71, "ffffffffffffffffffffffffffffffff"), 0);
	assert_int_equal(meta_get(f->m, b.id, &b), 0);
	assert_int_equal(b.base_size, 1);

	/* The old listing arrives: nothing of the above is undone. */
	assert_int_equal(meta_apply_listing(f->m, META_ROOT_ID, g_before, v, 2, 2, NULL), 0);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "old", &a), -ENOENT);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "new", &a), 0);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "dir", &a), 0);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "Case", &a), 0);
	assert_int_equal(a.size, 12);
	/* A newer listing that has "old" again (recreated elsewhere) shows it,
	 * and still keeps the local nodes ("dir" is on the server by now). */
	struct meta_entry v3[] = { v[0], v[1], dir_entry("dir", "dir") };
	assert_int_equal(meta_apply_listing(f->m, META_ROOT_ID, meta_gen_next(f->m), v3, 3, 3, NULL), 0);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "old", &a), 0);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "new", &a), 0);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "Case", &a), 0);
	assert_int_equal(a.size, 12);

	/* Upload done: clean, the content is the new base. */
	assert_int_equal(meta_set_clean(f->m, a.id, 12, "ffffffffffffffffffffffffffffffff", 71), 0);
	assert_int_equal(meta_get(f->m, a.id, &a), 0);
	assert_int_equal(a.local, META_LOCAL_NONE);
	assert_int_equal(a.base_size, 12);

	/* Rename over an existing file replaces it; a case-only rename of
	 * itself replaces nothing. */
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "new", &a), 0);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "old", &b), 0);
	assert_int_equal(meta_rename(f->m, a.id, META_ROOT_ID, "old", "old", &replaced), 0);
	assert_int_equal(replaced, b.id);
	assert_int_equal(meta_get(f->m, b.id, &b), -ENOENT);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "new", &b), -ENOENT);
	assert_int_equal(meta_rename(f->m, a.id, META_ROOT_ID, "OLD", "OLD", &replaced), 0);
	assert_int_equal(replaced, 0);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "OLD", &b), 0);
	assert_int_equal(b.id, a.id);
	/* Into a directory; the path follows. */
	assert_int_equal(meta_rename(f->m, a.id, dir, "x", "x", NULL), 0);
	char *p;
	assert_int_equal(meta_path(f->m, a.id, &p), 0);
	assert_string_equal(p, "dir/x");
	free(p);
	/* A rename into a file is refused. */
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "Case", &b), 0);
	assert_int_equal(meta_rename(f->m, a.id, b.id, "y", "y", NULL), -ENOTDIR);

	assert_int_equal(meta_local_nodes(f->m, count_cb, &c), 0);
	assert_int_equal(c.n, 1);       /* "x" (created, never uploaded) */
	assert_int_equal(c.ids[0], a.id);
}

UNIT_TEST_PROGRAM(setup, teardown,
	cmocka_unit_test(test_root),
	cmocka_unit_test(test_listing),
	cmocka_unit_test(test_duplicates),
	cmocka_unit_test(test_duplicates_taken),
	cmocka_unit_test(test_duplicates_stream),
	cmocka_unit_test(test_fold),
	unit_test_alone(test_fold_is_java_equals_ignore_case),
	cmocka_unit_test(test_generations),
	cmocka_unit_test(test_stream),
	cmocka_unit_test(test_content_and_gc),
	cmocka_unit_test(test_reopen),
	cmocka_unit_test(test_legacy_schema),
	cmocka_unit_test(test_quota),
	cmocka_unit_test(test_local_changes),
)
