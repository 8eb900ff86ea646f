/*
 * tests/unit/test_data.c — the range set (cache/ranges) and the content
 * cache (cache/data): merge/split edge cases, the persistent form, and the
 * fetch engine against a fake jfs_download() (defined below; it replaces
 * net/jfs.c at link time) that serves a generated file and injects faults:
 * read-ahead growth, small probes, one fetch for concurrent readers,
 * resumption after cuts, short bodies, MD5 verification, persistence across
 * reopen, revision changes.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"

#include "cache/data.h"
#include "cache/meta.h"
#include "cache/ranges.h"
#include "net/http.h"
#include "net/jfs.h"

/* ---- ranges ------------------------------------------------------------- */

static void expect_ranges(const struct ranges *r, const int64_t *v, size_t n)
{
	assert_int_equal(r->n, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(r->v[i].start, v[2 * i]);
		assert_int_equal(r->v[i].end, v[2 * i + 1]);
	}
}

/* @op (ranges_add or ranges_remove) of [@a, @b) succeeds and leaves @v */
static void change_then(struct ranges *r, int (*op)(struct ranges *, int64_t, int64_t),
			int64_t a, int64_t b, const int64_t *v, size_t n)
{
	assert_int_equal(op(r, a, b), 0);
	expect_ranges(r, v, n);
}

static void test_ranges_add(void **state)
{
	struct ranges r = RANGES_INIT;

	(void)state;
	assert_int_equal(ranges_add(&r, 10, 20), 0);
	assert_int_equal(ranges_add(&r, 30, 40), 0);
	change_then(&r, ranges_add, 0, 5, (int64_t[]){ 0, 5, 10, 20, 30, 40 }, 3);
	/* Touching ranges merge (the invariant: never adjacent). */
	change_then(&r, ranges_add, 5, 10, (int64_t[]){ 0, 20, 30, 40 }, 2);
	/* Inside an existing range: nothing changes. */
	change_then(&r, ranges_add, 2, 3, (int64_t[]){ 0, 20, 30, 40 }, 2);
	/* Spanning several: one range. */
	change_then(&r, ranges_add, 15, 50, (int64_t[]){ 0, 50 }, 1);
	assert_int_equal(ranges_add(&r, 60, 60), 0);        /* empty: no-op */
	assert_int_equal(ranges_add(&r, 70, 65), -EINVAL);
	assert_int_equal(ranges_add(&r, -1, 5), -EINVAL);
	expect_ranges(&r, (int64_t[]){ 0, 50 }, 1);
	assert_int_equal(ranges_bytes(&r), 50);
	assert_int_equal(ranges_prefix(&r), 50);
	/* Many out of order. */
	ranges_clear(&r);
	for (int i = 99; i >= 0; i--)
		assert_int_equal(ranges_add(&r, i * 10, i * 10 + 5), 0);
	assert_int_equal(r.n, 100);
	assert_int_equal(ranges_prefix(&r), 5);
	for (int i = 0; i < 100; i++)
		assert_int_equal(ranges_add(&r, i * 10 + 5, i * 10 + 10), 0);
	expect_ranges(&r, (int64_t[]){ 0, 1000 }, 1);
	ranges_release(&r);
}

/* Random adds and removes against a bitmap: every query agrees with it. */
static void test_ranges_model(void **state)
{
	enum { N = 96 };
	bool bit[N] = { false };
	struct ranges r = RANGES_INIT;
	uint64_t x = 88172645463325252ULL;

	(void)state;
	for (int step = 0; step < 20000; step++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		int64_t a = (int64_t)(x % N), b = (int64_t)((x >> 20) % (N + 1));
		if (a > b) {
			int64_t t = a;
			a = b;
			b = t;
		}
		bool add = (x >> 40) & 1;
		assert_int_equal(add ? ranges_add(&r, a, b) : ranges_remove(&r, a, b), 0);
		for (int64_t i = a; i < b; i++)
			bit[i] = add;
		int64_t p = (int64_t)((x >> 48) % N), q = p + (int64_t)((x >> 56) % 8);
		bool all = true;
		int64_t missing = q, present = q;
		for (int64_t i = p; i < q && i < N; i++) {
			all = all && bit[i];
			if (!bit[i] && missing == q)
				missing = i;
			if (bit[i] && present == q)
				present = i;
		}
		if (q > N) {
			all = false;
			if (missing == q)
				missing = N;
		}
		assert_int_equal(ranges_covers(&r, p, q), all);
		assert_int_equal(ranges_next_missing(&r, p, q), missing);
		assert_int_equal(ranges_next_present(&r, p, q), present);
	}
	ranges_release(&r);
}

static void test_ranges_remove(void **state)
{
	struct ranges r = RANGES_INIT;

	(void)state;
	assert_int_equal(ranges_add(&r, 0, 100), 0);
	/* Split in the middle. */
	change_then(&r, ranges_remove, 40, 60, (int64_t[]){ 0, 40, 60, 100 }, 2);
	/* Trim both ends of different ranges at once. */
	change_then(&r, ranges_remove, 30, 70, (int64_t[]){ 0, 30, 70, 100 }, 2);
	/* Exactly a range's bounds. */
	change_then(&r, ranges_remove, 70, 100, (int64_t[]){ 0, 30 }, 1);
	/* Touching but not overlapping: nothing. */
	change_then(&r, ranges_remove, 30, 40, (int64_t[]){ 0, 30 }, 1);
	/* A truncate: everything from 10 on. */
	change_then(&r, ranges_remove, 10, INT64_MAX, (int64_t[]){ 0, 10 }, 1);
	assert_int_equal(ranges_remove(&r, 0, 10), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(ranges_remove(&r, 5, 3), -EINVAL);
	ranges_release(&r);
}

static void test_ranges_query(void **state)
{
	struct ranges r = RANGES_INIT;

	(void)state;
	assert_true(ranges_covers(&r, 5, 5));
	assert_false(ranges_covers(&r, 0, 1));
	assert_int_equal(ranges_next_missing(&r, 0, 100), 0);
	assert_int_equal(ranges_next_present(&r, 0, 100), 100);
	assert_int_equal(ranges_add(&r, 10, 20), 0);
	assert_int_equal(ranges_add(&r, 30, 40), 0);
	assert_true(ranges_covers(&r, 10, 20));
	assert_true(ranges_covers(&r, 12, 18));
	assert_false(ranges_covers(&r, 9, 12));
	assert_false(ranges_covers(&r, 15, 21));
	assert_false(ranges_covers(&r, 15, 35));
	assert_false(ranges_covers(&r, 20, 21));
	/* [p, q) and the first byte missing (present) in it, q if none */
	static const struct {
		int64_t p, q, want;
	} missing[] = { { 0, 100, 0 }, { 10, 100, 20 }, { 15, 18, 18 }, { 20, 100, 20 },
			{ 35, 100, 40 } },
	  present[] = { { 0, 100, 10 }, { 0, 5, 5 }, { 12, 100, 12 }, { 20, 100, 30 },
			{ 40, 100, 100 } };
	for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++)
		assert_int_equal(ranges_next_missing(&r, missing[i].p, missing[i].q), missing[i].want);
	for (size_t i = 0; i < sizeof(present) / sizeof(present[0]); i++)
		assert_int_equal(ranges_next_present(&r, present[i].p, present[i].q), present[i].want);
	assert_int_equal(ranges_prefix(&r), 0);
	ranges_release(&r);
}

static void test_ranges_persist(void **state)
{
	struct ranges r = RANGES_INIT, back = RANGES_INIT;
	void *blob;
	size_t len;

	(void)state;
	assert_int_equal(ranges_encode(&r, &blob, &len), 0);
	assert_null(blob);
	assert_int_equal(len, 0);
	assert_int_equal(ranges_decode(&back, NULL, 0, -1), 0);
	assert_int_equal(back.n, 0);
	assert_int_equal(ranges_add(&r, 0, 4096), 0);
	assert_int_equal(ranges_add(&r, (int64_t)5 << 32, ((int64_t)5 << 32) + 1), 0);
	assert_int_equal(ranges_encode(&r, &blob, &len), 0);
	assert_int_equal(len, 32);
	assert_int_equal(ranges_decode(&back, blob, len, -1), 0);
	expect_ranges(&back, (int64_t[]){ 0, 4096, (int64_t)5 << 32, ((int64_t)5 << 32) + 1 }, 2);
	/* Beyond the file size: refused. */
	assert_int_equal(ranges_decode(&back, blob, len, 8192), -EIO);
	assert_int_equal(back.n, 0);
	/* Truncated blob. */
	assert_int_equal(ranges_decode(&back, blob, len - 1, -1), -EIO);
	/* Overlapping or touching pairs break the invariant. */
	unsigned char *p = blob;
	memset(p + 16, 0, 16);
	p[16 + 1] = 0x10;       /* start 4096 == previous end: touching */
	p[24 + 1] = 0x20;
	assert_int_equal(ranges_decode(&back, blob, len, -1), -EIO);
	/* start >= end */
	memset(p + 16, 0, 16);
	p[16 + 1] = 0x30;
	p[24 + 1] = 0x30;
	assert_int_equal(ranges_decode(&back, blob, len, -1), -EIO);
	free(blob);
	ranges_release(&r);
	ranges_release(&back);
}

/* ---- the fake service ------------------------------------------------------ */

static struct fake {
	pthread_mutex_t lock;
	int64_t size;                   /* of the served file */
	unsigned seed;                  /* content: byte(i) = f(seed, i) */
	int64_t cut_after;              /* >0: each response stops after this many bytes with -EIO */
	bool short_ok;                  /* the cut returns 0 (a clean short body) */
	int corrupt;                    /* serve this many whole-file passes with a flipped byte */
	unsigned delay_ms;              /* per response */
	unsigned calls;
	int64_t bytes;
	int64_t seen_corrupt_pass;
} fake = { .lock = PTHREAD_MUTEX_INITIALIZER };

static unsigned char byte_at(unsigned seed, int64_t i)
{
	uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15ULL + seed;
	x ^= x >> 29;
	return (unsigned char)(x * 0xbf58476d1ce4e5b9ULL >> 56);
}

/* Replaces net/jfs.c's (dcache_open_ref content is not tested here). */
int jfs_download_revision(struct jfs *j, const char *path, int64_t revision, int64_t first,
			  int64_t last, const struct http_sink *sink, int64_t *got)
{
	(void)j, (void)path, (void)revision, (void)first, (void)last, (void)sink, (void)got;
	return -ENOSYS;
}

/* Replaces net/jfs.c's jfs_download() in this test program. */
int jfs_download(struct jfs *j, const char *path, int64_t first, int64_t last,
		 const struct http_sink *sink, int64_t *got)
{
	unsigned char buf[16384];
	int64_t pos = first, end, cut;
	bool corrupt;

	(void)j;
	(void)path;
	pthread_mutex_lock(&fake.lock);
	fake.calls++;
	end = last < 0 ? fake.size : last + 1;
	cut = fake.cut_after;
	corrupt = fake.corrupt > 0;
	/* A whole-file pass is counted when it starts: its last bytes may be
	 * verified (and the next pass asked for) before this call returns. */
	if (corrupt && first == 0 && end == fake.size)
		fake.corrupt--;
	unsigned delay = fake.delay_ms;
	pthread_mutex_unlock(&fake.lock);
	if (got)
		*got = 0;
	if (delay) /* a slow server (the scenario), not a wait */
		usleep(delay * 1000);
	if (first < 0 || end > fake.size || first >= end)
		return -EIO;
	while (pos < end) {
		size_t n = end - pos > (int64_t)sizeof(buf) ? sizeof(buf) : (size_t)(end - pos);
		if (cut > 0 && pos - first + (int64_t)n > cut)
			n = (size_t)(cut - (pos - first));
		if (n == 0) {
			pthread_mutex_lock(&fake.lock);
			bool s = fake.short_ok;
			pthread_mutex_unlock(&fake.lock);
			return s ? 0 : -EIO;
		}
		for (size_t i = 0; i < n; i++)
			buf[i] = byte_at(fake.seed, pos + (int64_t)i);
		if (corrupt && pos <= fake.size / 2 && fake.size / 2 < pos + (int64_t)n)
			buf[fake.size / 2 - pos] ^= 0xff;
		int err = sink->write(sink->ctx, buf, n);
		if (err)
			return err;
		pos += (int64_t)n;
		if (got)
			*got += (int64_t)n;
		pthread_mutex_lock(&fake.lock);
		fake.bytes += (int64_t)n;
		pthread_mutex_unlock(&fake.lock);
	}
	return 0;
}

static void fake_set(int64_t size, unsigned seed)
{
	pthread_mutex_lock(&fake.lock);
	fake.size = size;
	fake.seed = seed;
	fake.cut_after = 0;
	fake.short_ok = false;
	fake.corrupt = 0;
	fake.delay_ms = 0;
	fake.calls = 0;
	fake.bytes = 0;
	pthread_mutex_unlock(&fake.lock);
}

static void md5_of_fake(char out[33])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned char buf[65536], dig[16];
	unsigned int dl;

	EVP_DigestInit_ex(c, EVP_md5(), NULL);
	for (int64_t pos = 0; pos < fake.size;) {
		size_t n = fake.size - pos > (int64_t)sizeof(buf) ? sizeof(buf) : (size_t)(fake.size - pos);
		for (size_t i = 0; i < n; i++)
			buf[i] = byte_at(fake.seed, pos + (int64_t)i);
		EVP_DigestUpdate(c, buf, n);
		pos += (int64_t)n;
	}
	EVP_DigestFinal_ex(c, dig, &dl);
	EVP_MD_CTX_free(c);
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", dig[i]);
}

/* ---- the content cache -------------------------------------------------------- */

struct dfix {
	char dir[64];
	char index[96];
	char data[96];
	struct meta *m;
	struct dcache *dc;
	uint64_t id;
	char md5[33];
};

static void dfix_open(struct dfix *f)
{
	/* Streams never end by themselves here: a test that waits for the
	 * workers to go idle proves that a stream was cancelled. */
	struct dcache_config cfg = { .dir = f->data, .fetch_threads = 4,
				     .stream_idle_ms = 600000 };

	assert_int_equal(meta_open(f->index, "u/Jotta/Archive", &f->m), 0);
	cfg.meta = f->m;
	cfg.jfs = (struct jfs *)f;      /* never dereferenced: the fake ignores it */
	assert_int_equal(dcache_new(&cfg, &f->dc), 0);
	assert_int_equal(dcache_start(f->dc), 0);
}

static void dfix_close(struct dfix *f)
{
	dcache_free(f->dc);
	meta_close(f->m, true);
}

static int dsetup(void **state)
{
	struct dfix *f = calloc(1, sizeof(*f));
	struct meta_entry e = { .sname = "file", .name = "file", .canonical = true };

	unit_tmpdir(f->dir, sizeof(f->dir), "test_data");
	snprintf(f->index, sizeof(f->index), "%s/index.db", f->dir);
	snprintf(f->data, sizeof(f->data), "%s/data", f->dir);
	fake_set(3 * 1024 * 1024 + 12345, 7);
	md5_of_fake(f->md5);
	dfix_open(f);
	e.size = fake.size;
	memcpy(e.md5, f->md5, 33);
	assert_int_equal(meta_apply_listing(f->m, META_ROOT_ID, meta_gen_next(f->m), &e, 1, 1, NULL), 0);
	struct meta_attr a;
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, "file", &a), 0);
	f->id = a.id;
	*state = f;
	return 0;
}

static int dteardown(void **state)
{
	struct dfix *f = *state;
	dfix_close(f);
	unit_rm_rf(f->dir);
	free(f);
	return 0;
}

/* Wait until the download workers are idle (every fetch queued so far,
 * read-ahead included, has ended), so that what the fake served is final. */
static void settle(struct dcache *dc)
{
	struct dcache_stats st;

	for (int i = 0; i < 20000; i++) {
		dcache_stats(dc, &st);
		if (st.jobs == 0)
			return;
		usleep(1000);
	}
	fail_msg("%u fetches still running after 20 s", st.jobs);
}

/* Read [off, off+len) through the cache and compare with the fake's bytes. */
static int read_check(struct dfile *df, struct dcache_seq *seq, int64_t off, size_t len)
{
	struct dcache_buf b;
	unsigned char *buf;
	int err = dcache_read(df, seq, off, len, &b);

	if (err)
		return err;
	if (!b.len)
		return 0;
	buf = malloc(b.len + 1);
	assert_int_equal(pread(b.fd, buf, b.len, b.off), (ssize_t)b.len);
	for (size_t i = 0; i < b.len; i++)
		if (buf[i] != byte_at(fake.seed, off + (int64_t)i))
			fail_msg("wrong byte at %lld", (long long)(off + (int64_t)i));
	free(buf);
	dcache_buf_release(&b);
	return (int)b.len;
}

/* A file node named @name of the fake's current size; its id. */
static uint64_t add_file(struct dfix *f, const char *name)
{
	struct meta_entry e = { .sname = name, .name = name, .canonical = true, .size = fake.size };
	struct meta_attr a;

	assert_int_equal(meta_upsert_child(f->m, META_ROOT_ID, meta_gen_next(f->m), &e, NULL), 0);
	assert_int_equal(meta_lookup(f->m, META_ROOT_ID, name, &a), 0);
	return a.id;
}

static void test_sequential(void **state)
{
	struct dfix *f = *state;
	struct dcache_seq seq = { 0 };
	struct dcache_stats st;
	struct dfile *df;
	bool kept;
	int64_t off = 0;

	assert_int_equal(dcache_open(f->dc, f->id, fake.size, f->md5, &df, &kept), 0);
	assert_true(kept);
	for (;;) {
		int n = read_check(df, &seq, off, 128 * 1024);
		assert_true(n >= 0);
		if (!n)
			break;
		off += n;
	}
	assert_int_equal(off, fake.size);
	settle(f->dc);
	/* Each byte fetched once; the window grows, so few requests. */
	assert_int_equal(fake.bytes, fake.size);
	assert_true(fake.calls <= 8);
	dcache_close(df);
	dcache_stats(f->dc, &st);
	assert_int_equal(st.mismatches, 0);
	assert_int_equal(st.fetched_bytes, fake.size);

	/* Reopen everything: the content is kept, nothing is fetched again. */
	dfix_close(f);
	fake.calls = 0;
	dfix_open(f);
	assert_int_equal(dcache_open(f->dc, f->id, fake.size, f->md5, &df, &kept), 0);
	assert_true(kept);
	memset(&seq, 0, sizeof(seq));
	assert_int_equal(read_check(df, &seq, 1000, 5000), 5000);
	assert_int_equal(read_check(df, &seq, fake.size - 10, 100), 10);
	assert_int_equal(read_check(df, &seq, fake.size, 100), 0);
	assert_int_equal(fake.calls, 0);
	dcache_close(df);

	/* A new revision drops the content. */
	assert_int_equal(dcache_open(f->dc, f->id, fake.size, "00000000000000000000000000000000",
				     &df, &kept), 0);
	assert_false(kept);
	dcache_close(df);
}

/* A 64 KiB probe of a 1 GiB file transfers well under 1 MiB. */
static void test_probe(void **state)
{
	struct dfix *f = *state;
	struct dcache_seq seq = { 0 };
	struct dfile *df;

	fake_set((int64_t)1 << 30, 9);
	assert_int_equal(dcache_open(f->dc, add_file(f, "big"), fake.size, "", &df, NULL), 0);
	assert_int_equal(read_check(df, &seq, 0, 65536), 65536);
	/* One request of 240 KiB: what was asked, and what the kernel's
	 * read-ahead asks next. */
	settle(f->dc);
	assert_int_equal(fake.calls, 1);
	assert_int_equal(fake.bytes, 240 * 1024);
	/* A second probe at the end (file(1) and thumbnailers do that). */
	memset(&seq, 0, sizeof(seq));
	assert_int_equal(read_check(df, &seq, fake.size - 4096, 4096), 4096);
	settle(f->dc);
	assert_true(fake.bytes < 1024 * 1024);
	dcache_close(df);
}

/* Read [off, off + len) in 128 KiB reads, as the kernel's read-ahead does. */
static void read_run(struct dfile *df, struct dcache_seq *seq, int64_t off, int64_t len)
{
	for (int64_t end = off + len; off < end;) {
		int n = read_check(df, seq, off, end - off < 131072 ? (size_t)(end - off) : 131072);
		assert_true(n > 0);
		off += n;
	}
}

/* A sequential reader gets one stream ahead of it, bounded by what it
 * read; a read elsewhere, or a close, cancels the stream (the workers go
 * idle: streams never end by themselves in this program); every byte is
 * fetched once. */
static void test_stream(void **state)
{
	struct dfix *f = *state;
	struct dcache_seq seq = { 0 };
	struct dcache_stats st;
	struct dfile *df;
	char md5[33];
	const int64_t MiB = 1024 * 1024;

	fake_set(48 * MiB + 777, 11);
	md5_of_fake(md5);
	uint64_t id = add_file(f, "big");
	assert_int_equal(dcache_open(f->dc, id, fake.size, md5, &df, NULL), 0);
	/* 2 MiB: the first MiB in requests of 256 KiB (a read, and as much
	 * again: a probe could stop any time), then one stream. */
	read_run(df, &seq, 0, 2 * MiB);
	assert_int_equal(fake.calls, 5);
	/* A read far away cancels it: the stream took at most what was read
	 * (its window) beyond the reader. */
	assert_int_equal(read_check(df, &seq, fake.size - 4096, 4096), 4096);
	settle(f->dc);
	assert_int_equal(fake.calls, 6);
	assert_true(fake.bytes <= 4 * MiB + 64 * 1024 + 4096);
	dcache_stats(f->dc, &st);
	assert_int_equal(st.streams, 1);

	/* The whole file by a new reader: what is present is not fetched
	 * again, the rest streams; the MD5 verifies at the end. */
	memset(&seq, 0, sizeof(seq));
	read_run(df, &seq, 0, fake.size);
	settle(f->dc);
	assert_int_equal(fake.bytes, fake.size);
	assert_true(fake.calls <= 6 + 5 + 1);
	dcache_close(df);

	/* A close ends the stream of its reader. */
	fake_set(fake.size, 11);
	uint64_t id2 = add_file(f, "big2");
	assert_int_equal(dcache_open(f->dc, id2, fake.size, md5, &df, NULL), 0);
	memset(&seq, 0, sizeof(seq));
	read_run(df, &seq, 0, 2 * MiB);
	dcache_close(df);
	settle(f->dc);
	assert_true(fake.bytes <= 4 * MiB + 64 * 1024);
	dcache_stats(f->dc, &st);
	assert_int_equal(st.streams, 3);
	assert_int_equal(st.mismatches, 0);
}

/* read_streams above 1: the window ahead of a sequential reader is fetched
 * in parts side by side, not by one stream; every byte once, the MD5 (of
 * parts that arrive past the hashed prefix, read back) verifies, and a
 * corrupt byte still fails the read that completes the file. */
static void test_parts(void **state)
{
	struct dfix *f = *state;
	struct dcache_config cfg = { .dir = f->data, .fetch_threads = 4, .read_streams = 3,
				     .stream_idle_ms = 600000 };
	struct dcache_seq seq = { 0 };
	struct dcache_stats st;
	struct dcache_buf b;
	struct dfile *df;
	char md5[33];
	const int64_t MiB = 1024 * 1024;
	int64_t off = 0;
	int err = 0;

	dcache_free(f->dc);
	cfg.meta = f->m;
	cfg.jfs = (struct jfs *)f;
	assert_int_equal(dcache_new(&cfg, &f->dc), 0);
	assert_int_equal(dcache_start(f->dc), 0);
	fake_set(40 * MiB + 999, 5);
	md5_of_fake(md5);
	assert_int_equal(dcache_open(f->dc, add_file(f, "parts"), fake.size, md5, &df, NULL), 0);
	read_run(df, &seq, 0, fake.size);
	settle(f->dc);
	assert_int_equal(fake.bytes, fake.size);
	dcache_stats(f->dc, &st);
	assert_true(st.parts >= 3);
	assert_int_equal(st.streams, 0);
	assert_int_equal(st.mismatches, 0);
	dcache_close(df);

	fake_set(fake.size, 6);
	md5_of_fake(md5);
	fake.corrupt = 1;
	memset(&seq, 0, sizeof(seq));
	assert_int_equal(dcache_open(f->dc, add_file(f, "parts2"), fake.size, md5, &df, NULL), 0);
	while (off < fake.size && !(err = dcache_read(df, &seq, off, 131072, &b))) {
		off += (int64_t)b.len;
		dcache_buf_release(&b);
	}
	assert_int_equal(err, -EIO);
	assert_true(off < fake.size);
	dcache_stats(f->dc, &st);
	assert_int_equal(st.mismatches, 1);
	dcache_close(df);
	settle(f->dc);
}

/* A second reader past where another reader's stream pauses fetches for
 * itself (it never waits for the other reader to come along). */
static void test_stream_two_readers(void **state)
{
	struct dfix *f = *state;
	struct dcache_seq a = { 0 }, b = { 0 };
	struct dfile *df;
	const int64_t MiB = 1024 * 1024;

	fake_set(64 * MiB, 17);
	assert_int_equal(dcache_open(f->dc, add_file(f, "two"), fake.size, "", &df, NULL), 0);
	read_run(df, &a, 0, 2 * MiB);           /* a's stream pauses near 4 MiB */
	read_run(df, &b, 40 * MiB, 2 * MiB);    /* b: a stream of its own */
	read_run(df, &a, 2 * MiB, 2 * MiB);
	dcache_close(df);
	settle(f->dc);
	assert_true(fake.bytes < 16 * MiB);
}

/* Paused streams hold workers: at most half of them (2 of 4 here) stream;
 * a third sequential reader is served by plain fetches, and reads on. */
static void test_stream_cap(void **state)
{
	struct dfix *f = *state;
	struct dcache_seq seq[3] = { { 0 } };
	struct dcache_stats st;
	struct dfile *df[3];
	char md5[33];
	const int64_t MiB = 1024 * 1024;

	fake_set(24 * MiB, 13);
	md5_of_fake(md5);
	for (int i = 0; i < 3; i++) {
		char name[8];
		snprintf(name, sizeof(name), "s%d", i);
		assert_int_equal(dcache_open(f->dc, add_file(f, name), fake.size, md5, &df[i], NULL),
				 0);
		read_run(df[i], &seq[i], 0, 2 * MiB);
	}
	dcache_stats(f->dc, &st);
	assert_int_equal(st.streams, 2);
	read_run(df[2], &seq[2], 2 * MiB, 4 * MiB);
	for (int i = 0; i < 3; i++)
		dcache_close(df[i]);
	settle(f->dc);
	dcache_stats(f->dc, &st);
	assert_int_equal(st.streams, 2);
}

struct reader_arg {
	struct dfile *df;
	int64_t off;
	int ret;
};

static void *reader(void *p)
{
	struct reader_arg *a = p;
	struct dcache_seq seq = { 0 };

	a->ret = read_check(a->df, &seq, a->off, 100000);
	return NULL;
}

/* Readers of one missing range wait for one fetch; overlapping ranges are
 * never fetched twice. */
static void test_concurrent(void **state)
{
	struct dfix *f = *state;
	struct reader_arg args[8];
	pthread_t t[8];
	struct dfile *df;

	fake.delay_ms = 200;
	assert_int_equal(dcache_open(f->dc, f->id, fake.size, f->md5, &df, NULL), 0);
	for (int i = 0; i < 8; i++) {
		args[i] = (struct reader_arg){ .df = df, .off = 1000 };
		assert_int_equal(pthread_create(&t[i], NULL, reader, &args[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(args[i].ret, 100000);
	}
	settle(f->dc);
	assert_int_equal(fake.calls, 1);
	/* Staggered starts: whoever comes first, each byte comes once. */
	fake.calls = 0;
	fake.bytes = 0;
	for (int i = 0; i < 8; i++) {
		args[i] = (struct reader_arg){ .df = df, .off = 1000000 + i * 1000 };
		assert_int_equal(pthread_create(&t[i], NULL, reader, &args[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(args[i].ret, 100000);
	}
	settle(f->dc);
	/* the first read's 240 KiB cover the later readers */
	assert_true(fake.bytes <= 256 * 1024 + 7000);
	dcache_close(df);
}

/* Bodies cut mid-way are resumed where they stopped; content stays exact. */
static void test_resume(void **state)
{
	struct dfix *f = *state;
	struct dcache_seq seq = { 0 };
	struct dfile *df;
	int64_t off = 0;

	fake.cut_after = 300000;
	assert_int_equal(dcache_open(f->dc, f->id, fake.size, f->md5, &df, NULL), 0);
	while (off < fake.size) {
		int n = read_check(df, &seq, off, 1 << 20);
		assert_true(n > 0);
		off += n;
	}
	settle(f->dc);
	assert_true(fake.calls > 10);
	assert_int_equal(fake.bytes, fake.size);
	dcache_close(df);
	/* Clean short bodies are resumed the same way. */
	fake_set(fake.size, 8);
	md5_of_fake(f->md5);
	fake.cut_after = 100000;
	fake.short_ok = true;
	assert_int_equal(dcache_open(f->dc, f->id, fake.size, f->md5, &df, NULL), 0);
	memset(&seq, 0, sizeof(seq));
	assert_int_equal(read_check(df, &seq, 5, 500000), 500000);
	dcache_close(df);
}

/* A service that never delivers: an error, never zeros. */
static void test_no_progress(void **state)
{
	struct dfix *f = *state;
	struct dcache_seq seq = { 0 };
	struct dcache_buf b;
	struct dfile *df;

	fake.cut_after = -1;    /* n == 0 at once */
	fake.cut_after = 0;
	fake.size = 1000;       /* the file is shorter than the index says */
	assert_int_equal(dcache_open(f->dc, f->id, 5000, "", &df, NULL), 0);
	assert_int_equal(dcache_read(df, &seq, 0, 5000, &b), -EIO);
	dcache_close(df);
}

/* The mismatch count so far. */
static uint64_t mismatches(struct dfix *f)
{
	struct dcache_stats st;

	dcache_stats(f->dc, &st);
	return st.mismatches;
}

/*
 * MD5 mismatch. The read that completes the file is answered only after the
 * check: EIO on a mismatch, never the bytes; the handle that was reading the
 * discarded content fails from then on; another handle fetches it again.
 * Twice for one revision: EIO for every read until the revision changes,
 * also after the last close. Opens after a mismatch do not keep the
 * kernel's cache until the content was verified.
 */
static void test_mismatch(void **state)
{
	struct dfix *f = *state;
	struct dcache_seq seq = { 0 }, seq2 = { 0 };
	struct dcache_buf b;
	struct dfile *df, *df2;
	int64_t off = 0;
	bool kept;

	fake_set(1000000, 3);
	md5_of_fake(f->md5);
	fake.corrupt = 1;       /* the first full pass is corrupt, the next is fine */
	assert_int_equal(dcache_open(f->dc, f->id, fake.size, f->md5, &df, NULL), 0);
	/* One read of everything: checked before it is answered. */
	assert_int_equal(dcache_read(df, &seq, 0, (size_t)fake.size, &b), -EIO);
	assert_int_equal(b.fd, -1);
	assert_int_equal(mismatches(f), 1);
	/* That handle's reader holds bad bytes (the kernel retries a failed
	 * read-ahead page): it keeps failing, without fetching. */
	unsigned calls = fake.calls;
	assert_int_equal(dcache_read(df, &seq, 0, 4096, &b), -EIO);
	assert_int_equal(fake.calls, calls);
	/* A new open is not given the kernel's cache, and reads it fetched again. */
	assert_int_equal(dcache_open(f->dc, f->id, fake.size, f->md5, &df2, &kept), 0);
	assert_false(kept);
	while (off < fake.size) {
		int n = read_check(df2, &seq2, off, 65536);
		assert_true(n > 0);
		off += n;
	}
	dcache_close(df2);
	assert_int_equal(dcache_read(df, &seq, 0, 4096, &b), -EIO);
	dcache_close(df);
	assert_int_equal(mismatches(f), 1);
	/* Verified now: opens keep the kernel's cache again. */
	assert_int_equal(dcache_open(f->dc, f->id, fake.size, f->md5, &df, &kept), 0);
	assert_true(kept);
	dcache_close(df);

	/* A new revision; partial reads are served as they arrive (streaming),
	 * the read that completes the file fails. */
	fake_set(1000000, 4);
	md5_of_fake(f->md5);
	fake.corrupt = 1;
	assert_int_equal(dcache_open(f->dc, f->id, fake.size, f->md5, &df, &kept), 0);
	assert_false(kept);
	memset(&seq, 0, sizeof(seq));
	assert_int_equal(read_check(df, &seq, 0, 400000), 400000);
	assert_int_equal(dcache_read(df, &seq, 400000, 600000, &b), -EIO);
	assert_int_equal(mismatches(f), 2);
	dcache_close(df);

	/* Always corrupt: the second mismatch makes every read fail. */
	fake_set(1000000, 5);
	md5_of_fake(f->md5);
	fake.corrupt = 100;
	assert_int_equal(dcache_open(f->dc, f->id, fake.size, f->md5, &df, NULL), 0);
	memset(&seq, 0, sizeof(seq));
	assert_int_equal(dcache_read(df, &seq, 0, (size_t)fake.size, &b), -EIO);
	dcache_close(df);       /* the last close: the state is kept anyway */
	assert_int_equal(mismatches(f), 3);
	assert_int_equal(dcache_open(f->dc, f->id, fake.size, f->md5, &df, &kept), 0);
	assert_false(kept);
	memset(&seq, 0, sizeof(seq));
	assert_int_equal(dcache_read(df, &seq, 0, (size_t)fake.size, &b), -EIO);
	assert_int_equal(mismatches(f), 4);
	dcache_close(df);
	calls = fake.calls;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(dcache_open(f->dc, f->id, fake.size, f->md5, &df, &kept), 0);
		assert_false(kept);
		memset(&seq, 0, sizeof(seq));
		assert_int_equal(dcache_read(df, &seq, 500, 10, &b), -EIO);
		dcache_close(df);
	}
	assert_int_equal(fake.calls, calls);    /* nothing fetched for them */
	assert_int_equal(mismatches(f), 4);

	/* The revision changes on the server: read again, and fine. */
	fake_set(1000000, 6);
	md5_of_fake(f->md5);
	assert_int_equal(dcache_open(f->dc, f->id, fake.size, f->md5, &df, NULL), 0);
	memset(&seq, 0, sizeof(seq));
	for (off = 0; off < fake.size;) {
		int n = read_check(df, &seq, off, 1 << 20);
		assert_true(n > 0);
		off += n;
	}
	dcache_close(df);
	assert_int_equal(mismatches(f), 4);
}

/* Clean content beyond the bound is evicted, least recently used first. */
static void test_evict(void **state)
{
	struct dfix *f = *state;
	struct dcache_config cfg = { .dir = f->data, .fetch_threads = 2, .max_size = 2500000 };
	struct dcache_stats st;

	dcache_free(f->dc);
	cfg.meta = f->m;
	cfg.jfs = (struct jfs *)f;
	assert_int_equal(dcache_new(&cfg, &f->dc), 0);
	assert_int_equal(dcache_start(f->dc), 0);
	fake_set(1000000, 5);
	uint64_t ids[5];
	for (int i = 0; i < 5; i++) {
		char name[16];
		snprintf(name, sizeof(name), "e%d", i);
		ids[i] = add_file(f, name);
	}
	for (int i = 0; i < 5; i++) {
		struct dcache_seq seq = { 0 };
		struct dfile *df;
		assert_int_equal(dcache_open(f->dc, ids[i], fake.size, "", &df, NULL), 0);
		assert_int_equal(read_check(df, &seq, 0, 1000000), 1000000);
		dcache_close(df);
	}
	/* Eviction runs when jobs end and files close: give it a moment. */
	for (int i = 0; i < 200; i++) {
		dcache_stats(f->dc, &st);
		if (st.cached_bytes <= 2500000)
			break;
		usleep(10000);
	}
	if (st.cached_bytes > 2500000)
		fail_msg("cached %lld bytes", (long long)st.cached_bytes);
	/* The most recent is still there; the first was evicted. */
	struct meta_content c;
	assert_int_equal(meta_content_get(f->m, ids[4], &c), 0);
	meta_content_release(&c);
	assert_int_equal(meta_content_get(f->m, ids[0], &c), -ENOENT);
}

/* ---- local content ------------------------------------------------------ */

static int copy_mem(void *ctx, int fd, int64_t off, size_t len, size_t *done)
{
	ssize_t w = pwrite(fd, ctx, len, off);

	if (w < 0)
		return -errno;
	*done = (size_t)w;
	return 0;
}

/* The whole content of @df through dcache_read. */
static unsigned char *read_all(struct dfile *df, int64_t size)
{
	unsigned char *buf = malloc((size_t)size + 1);
	struct dcache_seq seq = { 0 };
	struct dcache_buf b;

	assert_int_equal(dcache_read(df, &seq, 0, (size_t)size + 100, &b), 0);
	assert_int_equal(b.len, (size_t)size);
	if (size)
		assert_int_equal(pread(b.fd, buf, (size_t)size, 0), size);
	dcache_buf_release(&b);
	return buf;
}

static void test_new_file(void **state)
{
	struct dfix *f = *state;
	struct dcache_commit c;
	struct dcache_stats st;
	struct dfile *df;
	unsigned char data[300000];
	char want[33];
	size_t w;
	bool first;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 7);
	uint64_t id = add_file(f, "new");
	assert_int_equal(dcache_create(f->dc, id, &df), 0);
	/* Sequential writes in pieces: the MD5 follows them. */
	for (size_t off = 0; off < sizeof(data); off += 65536) {
		size_t n = sizeof(data) - off < 65536 ? sizeof(data) - off : 65536;
		assert_int_equal(dcache_write(df, (int64_t)off, n, copy_mem, data + off, &w, &first), 0);
		assert_int_equal(w, n);
		assert_false(first);    /* created local */
	}
	assert_true(dcache_uncommitted(df));
	assert_int_equal(dcache_commit(df, &c), 0);
	assert_true(c.committed);
	assert_int_equal(c.size, sizeof(data));
	unit_md5(data, sizeof(data), want);
	assert_string_equal(c.md5, want);
	assert_false(dcache_uncommitted(df));
	/* Nothing new: nothing to commit. */
	assert_int_equal(dcache_commit(df, &c), 0);
	assert_false(c.committed);
	assert_int_equal(fake.calls, 0);        /* a new file never downloads */
	int64_t size;
	time_t mtime;
	assert_true(dcache_peek(f->dc, id, &size, &mtime));
	assert_int_equal(size, sizeof(data));
	dcache_stats(f->dc, &st);
	assert_int_equal(st.local_bytes, sizeof(data));

	/* Upload confirmed: clean. */
	assert_false(dcache_set_clean(f->dc, id, 1, want, 0, NULL));
	assert_true(dcache_set_clean(f->dc, id, sizeof(data), want, 0, NULL));
	assert_false(dcache_peek(f->dc, id, &size, &mtime));
	dcache_stats(f->dc, &st);
	assert_int_equal(st.local_bytes, 0);
	dcache_close(df);

	/* A rewrite in the middle, then a commit: the MD5 is recomputed. */
	assert_int_equal(dcache_open(f->dc, id, sizeof(data), want, &df, NULL), 0);
	unsigned char x[10] = "XXXXXXXXXX";
	assert_int_equal(dcache_write(df, 1000, 10, copy_mem, x, &w, &first), 0);
	assert_true(first);
	memcpy(data + 1000, x, 10);
	assert_int_equal(dcache_commit(df, &c), 0);
	unit_md5(data, sizeof(data), want);
	assert_string_equal(c.md5, want);
	dcache_close(df);
}

/* Random writes into a file whose content is not here: the write does not
 * wait for the network, the commit fetches the rest of the base. */
static void test_modify_remote(void **state)
{
	struct dfix *f = *state;
	struct dcache_commit c;
	struct dfile *df;
	char want[33];
	size_t w;
	bool first;
	int64_t size = fake.size;
	unsigned char *base = malloc((size_t)size);

	for (int64_t i = 0; i < size; i++)
		base[i] = byte_at(fake.seed, i);
	fake.delay_ms = 300;
	assert_int_equal(dcache_open(f->dc, f->id, size, f->md5, &df, NULL), 0);
	unsigned char patch[5] = "hello";
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(dcache_write(df, 2000000, 5, copy_mem, patch, &w, &first), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(first);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 200);
	memcpy(base + 2000000, patch, 5);
	/* Shrink, then grow: the cut part comes back as zeros. */
	assert_int_equal(dcache_truncate(df, 3000000, NULL), 0);
	assert_int_equal(dcache_truncate(df, 3000100, NULL), 0);
	memset(base + 3000000, 0, 100);
	size = 3000100;
	assert_int_equal(dcache_commit(df, &c), 0);
	unit_md5(base, (size_t)size, want);
	assert_string_equal(c.md5, want);
	assert_int_equal(c.size, size);
	unsigned char *got = read_all(df, size);
	assert_memory_equal(got, base, (size_t)size);
	free(got);
	dcache_close(df);

	/* Local content survives a restart and wins over the server's revision. */
	dfix_close(f);
	fake.calls = 0;
	dfix_open(f);
	bool kept;
	assert_int_equal(dcache_open(f->dc, f->id, fake.size, f->md5, &df, &kept), 0);
	assert_true(kept);
	assert_int_equal(dcache_size(df), size);
	got = read_all(df, size);
	assert_memory_equal(got, base, (size_t)size);
	free(got);
	assert_int_equal(fake.calls, 0);
	/* An invalidation for a new server revision leaves it alone too. */
	dcache_invalidate(f->dc, f->id, 1, "00000000000000000000000000000001");
	assert_int_equal(dcache_size(df), size);
	dcache_close(df);
	free(base);
}

/* Local content may exceed the bound (a file larger than the bound must be
 * writable); clean content is what goes. Unlinked: discarded at once, the
 * open file keeps working. */
static void test_local_bound_and_discard(void **state)
{
	struct dfix *f = *state;
	struct dcache_config cfg = { .dir = f->data, .fetch_threads = 2, .max_size = 1000000 };
	static unsigned char data[600000];
	struct dcache_stats st;
	struct dfile *a, *b;
	size_t w;

	dcache_free(f->dc);
	cfg.meta = f->m;
	cfg.jfs = (struct jfs *)f;
	assert_int_equal(dcache_new(&cfg, &f->dc), 0);
	assert_int_equal(dcache_start(f->dc), 0);
	uint64_t ida = add_file(f, "a"), idb = add_file(f, "b");
	assert_int_equal(dcache_create(f->dc, ida, &a), 0);
	assert_int_equal(dcache_create(f->dc, idb, &b), 0);
	assert_int_equal(dcache_write(a, 0, sizeof(data), copy_mem, data, &w, NULL), 0);
	assert_int_equal(dcache_write(b, 0, sizeof(data), copy_mem, data, &w, NULL), 0);
	assert_int_equal(dcache_truncate(b, 2 * sizeof(data), NULL), 0);
	dcache_stats(f->dc, &st);
	assert_int_equal(st.local_bytes, 3 * sizeof(data));
	/* Unlinking the first frees its share; the open file keeps working. */
	dcache_discard(f->dc, ida);
	dcache_stats(f->dc, &st);
	assert_int_equal(st.local_bytes, 2 * sizeof(data));
	assert_int_equal(dcache_write(a, 10, 10, copy_mem, data, &w, NULL), 0);
	unsigned char *got = read_all(a, sizeof(data));
	free(got);
	struct dcache_commit c;
	assert_int_equal(dcache_commit(a, &c), -ENOENT);
	dcache_close(a);
	dcache_close(b);
	/* Dirty content is never evicted. */
	struct meta_content mc;
	assert_int_equal(meta_content_get(f->m, idb, &mc), 0);
	assert_true(mc.dirty);
	meta_content_release(&mc);
	char path[256];
	dcache_path(f->dc, ida, path, sizeof(path));
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(meta_content_get(f->m, ida, &mc), -ENOENT);
}

UNIT_TEST_PROGRAM(dsetup, dteardown,
	unit_test_alone(test_ranges_add),
	unit_test_alone(test_ranges_remove),
	unit_test_alone(test_ranges_model),
	unit_test_alone(test_ranges_query),
	unit_test_alone(test_ranges_persist),
	cmocka_unit_test(test_sequential),
	cmocka_unit_test(test_probe),
	cmocka_unit_test(test_stream),
	cmocka_unit_test(test_stream_cap),
	cmocka_unit_test(test_parts),
	cmocka_unit_test(test_stream_two_readers),
	cmocka_unit_test(test_concurrent),
	cmocka_unit_test(test_resume),
	cmocka_unit_test(test_no_progress),
	cmocka_unit_test(test_mismatch),
	cmocka_unit_test(test_evict),
	cmocka_unit_test(test_new_file),
	cmocka_unit_test(test_modify_remote),
	cmocka_unit_test(test_local_bound_and_discard),
)
