/*
 * tests/unit/test_upload.c — cache/upload against an in-process fake of the
 * service (struct upload_ops): the journal's durability, supersede, cancel,
 * rename, conflicts, retries and backoff, giving up to lost+found, resume,
 * content changed underneath, drain, and the pure helpers.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"
#include <openssl/evp.h>
#include <sqlite3.h>

#include "cache/upload.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "net/jfs.h"
#include "watchdog.h"
#include "upload_test.h"

#include "jfs_seams.h"

/* ---- helpers ---- */

/* Set the mtime of @path @ago_s seconds into the past. */
static void age_file(const char *path, int ago_s)
{
	struct timespec ts[2];
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= ago_s;
	ts[1] = ts[0];
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* ---- the fake service ---- */

#define MAXF 64
#define MAXERR 64

struct ffile {
	char path[512];
	char md5[33];
	int64_t size;
	bool is_dir;
	/* an interrupted upload of (md5, size) to this path */
	char *partial;
	int64_t partial_len;
	char partial_md5[33];
	int64_t partial_size;
	bool completed;
	int revisions;              /* completed data POSTs stored here */
};

struct fake {
	pthread_mutex_t m;
	pthread_cond_t cv;
	struct ffile f[MAXF];
	int nf;
	/* scripted errors: popped one per call */
	int stat_err[MAXERR], n_stat_err;
	int n_reject;               /* allocates refused by REJECT_CONFLICTS */
	int alloc_err[MAXERR], n_alloc_err;
	int up_err[MAXERR], n_up_err;
	int lost_err[MAXERR], n_lost_err; /* an upload stores everything, then fails so */
	bool no_dedup;              /* allocate never answers COMPLETED (emulator dedup=off) */
	bool cut_half;              /* the failing upload first stores half its bytes */
	char refuse[64];            /* allocate of a path containing this: -EINVAL */
	int refuse_err;
	bool block;                 /* uploads wait until unblocked (or cancelled) */
	int blocked;                /* uploads waiting now */
	/* counters */
	int n_stat, n_alloc, n_up, n_instant, n_cancelled;
	int64_t bytes_in;
	int64_t last_resume;
};

static struct fake F;

static struct ffile *ff_find(const char *path)
{
	int i;
	for (i = 0; i < F.nf; i++)
		if (strcmp(F.f[i].path, path) == 0)
			return &F.f[i];
	return NULL;
}

static struct ffile *ff_get(const char *path)
{
	struct ffile *f = ff_find(path);
	if (f)
		return f;
	assert_true(F.nf < MAXF);
	f = &F.f[F.nf++];
	memset(f, 0, sizeof(*f));
	snprintf(f->path, sizeof(f->path), "%s", path);
	return f;
}

/* Put a completed file on the fake server. */
static void fake_put(const char *path, const char *content)
{
	pthread_mutex_lock(&F.m);
	struct ffile *f = ff_get(path);
	unit_md5(content, strlen(content), f->md5);
	f->size = (int64_t)strlen(content);
	f->completed = true;
	pthread_mutex_unlock(&F.m);
}

/* md5 of the completed file at @path, or "" */
static void fake_md5(const char *path, char out[33])
{
	pthread_mutex_lock(&F.m);
	struct ffile *f = ff_find(path);
	snprintf(out, 33, "%s", f && f->completed ? f->md5 : "");
	pthread_mutex_unlock(&F.m);
}

static int pop(int *arr, int *n)
{
	int e;
	if (*n == 0)
		return 0;
	e = arr[0];
	memmove(arr, arr + 1, (size_t)(*n - 1) * sizeof(int));
	(*n)--;
	return e;
}

static void push(int *arr, int *n, int err, int times)
{
	pthread_mutex_lock(&F.m);
	while (times-- > 0) {
		assert_true(*n < MAXERR);
		arr[(*n)++] = err;
	}
	pthread_mutex_unlock(&F.m);
}

static int f_stat(void *ctx, const char *path, struct jfs_entry *e)
{
	int err;
	pthread_mutex_lock(&F.m);
	F.n_stat++;
	err = pop(F.stat_err, &F.n_stat_err);
	struct ffile *f = ff_find(path);
	if (!err && (!f || (!f->completed && !f->is_dir)))
		err = -ENOENT;
	if (!err) {
		memset(e, 0, sizeof(*e));
		e->name = "x";
		e->is_dir = f->is_dir;
		e->completed = f->completed;
		e->size = f->size;
		memcpy(e->md5, f->md5, 33);
	}
	pthread_mutex_unlock(&F.m);
	return err;
}

static void f_entry_release(void *ctx, struct jfs_entry *e)
{
	(void)e;
}

static int f_allocate(void *ctx, const struct jfs_alloc_req *req, struct jfs_alloc *a)
{
	int err;
	pthread_mutex_lock(&F.m);
	F.n_alloc++;
	err = pop(F.alloc_err, &F.n_alloc_err);
	if (!err && F.refuse[0] && strstr(req->path, F.refuse))
		err = F.refuse_err;
	if (!err && req->reject_conflicts) {
		/* the service's REJECT_CONFLICTS: a folder, or a file of other content */
		struct ffile *o = ff_find(req->path);
		if (o && (o->is_dir || (o->completed && (o->size != req->size ||
							 strcmp(o->md5, req->md5)))))
			err = -EEXIST;
		F.n_reject += err == -EEXIST;
	}
	if (!err) {
		struct ffile *f = ff_get(req->path);
		memset(a, 0, sizeof(*a));
		if (!F.no_dedup && f->completed && f->size == req->size &&
		    strcmp(f->md5, req->md5) == 0) {
			a->completed = true;
			snprintf(a->state, sizeof(a->state), "COMPLETED");
			F.n_instant++;
		} else {
			if (f->partial && (strcmp(f->partial_md5, req->md5) || f->partial_size != req->size)) {
				free(f->partial);
				f->partial = NULL;
				f->partial_len = 0;
			}
			a->resume_pos = f->partial ? f->partial_len : 0;
			snprintf(a->state, sizeof(a->state), "INCOMPLETE");
			a->upload_url = malloc(strlen(req->path) + 6);
			sprintf(a->upload_url, "fake:%s", req->path);
		}
	}
	pthread_mutex_unlock(&F.m);
	return err;
}

static void f_alloc_release(void *ctx, struct jfs_alloc *a)
{
	free(a->upload_url);
	a->upload_url = NULL;
}

static int f_upload(void *ctx, const char *url, int fd, int64_t resume_pos, int64_t size,
		    const char *md5, const atomic_bool *cancel)
{
	const char *path = url + 5;
	int64_t n = size - resume_pos;
	char *buf = malloc((size_t)size + 1);
	char got[33];
	int err;

	assert_non_null(buf);
	assert_int_equal(pread(fd, buf + resume_pos, (size_t)n, resume_pos), (ssize_t)n);
	pthread_mutex_lock(&F.m);
	F.n_up++;
	F.last_resume = resume_pos;
	struct ffile *f = ff_get(path);
	if (f->partial)
		memcpy(buf, f->partial, (size_t)resume_pos);
	else
		assert_int_equal(resume_pos, 0);
	err = pop(F.up_err, &F.n_up_err);
	if (err || F.block) {
		/* store what "arrived" before the failure: half of the rest */
		int64_t keep = resume_pos + (F.cut_half || F.block ? n / 2 : 0);
		F.bytes_in += keep - resume_pos;
		free(f->partial);
		f->partial = malloc((size_t)keep + 1);
		memcpy(f->partial, buf, (size_t)keep);
		f->partial_len = keep;
		memcpy(f->partial_md5, md5, 33);
		f->partial_size = size;
		if (!err) {
			F.blocked++;
			pthread_cond_broadcast(&F.cv);
			while (F.block && !atomic_load(cancel)) {
				struct timespec ts;
				clock_gettime(CLOCK_REALTIME, &ts);
				ts.tv_nsec += 2000000;
				if (ts.tv_nsec >= 1000000000) {
					ts.tv_sec++;
					ts.tv_nsec -= 1000000000;
				}
				pthread_cond_timedwait(&F.cv, &F.m, &ts);
			}
			F.blocked--;
			if (atomic_load(cancel)) {
				F.n_cancelled++;
				pthread_mutex_unlock(&F.m);
				free(buf);
				return -ECANCELED;
			}
			/* unblocked: the rest arrives */
			n = size - keep;
			resume_pos = keep;
		} else {
			pthread_mutex_unlock(&F.m);
			free(buf);
			return err;
		}
	}
	F.bytes_in += n;
	unit_md5(buf, (size_t)size, got);
	free(f->partial);
	f->partial = NULL;
	f->partial_len = 0;
	if (strcmp(got, md5) != 0) {
		err = -EIO;             /* CORRUPT */
	} else {
		memcpy(f->md5, got, 33);
		f->size = size;
		f->completed = true;
		f->revisions++;
		err = pop(F.lost_err, &F.n_lost_err);   /* the answer is lost */
	}
	pthread_mutex_unlock(&F.m);
	free(buf);
	return err;
}

static const struct upload_ops fake_ops = {
	f_stat, f_entry_release, f_allocate, f_alloc_release, f_upload, NULL, NULL,
};

static void fake_reset(void)
{
	int i;
	for (i = 0; i < F.nf; i++)
		free(F.f[i].partial);
	pthread_mutex_destroy(&F.m);
	pthread_cond_destroy(&F.cv);
	memset(&F, 0, sizeof(F));
	pthread_mutex_init(&F.m, NULL);
	pthread_cond_init(&F.cv, NULL);
}

static void fake_block(bool on)
{
	pthread_mutex_lock(&F.m);
	F.block = on;
	pthread_cond_broadcast(&F.cv);
	pthread_mutex_unlock(&F.m);
}

/* Wait until @n uploads are blocked in the fake. */
static void fake_wait_blocked(int n)
{
	int64_t end = clock_mono_ms() + 5000;
	pthread_mutex_lock(&F.m);
	while (F.blocked < n) {
		pthread_mutex_unlock(&F.m);
		assert_true(clock_mono_ms() < end);
		unit_sleep_ms(2);
		pthread_mutex_lock(&F.m);
	}
	pthread_mutex_unlock(&F.m);
}

/* Read a counter of the fake under its lock. */
#define FG(field) fake_get(&F.field)
static int64_t fake_get(const void *field)
{
	int64_t v;
	pthread_mutex_lock(&F.m);
	if (field == &F.bytes_in || field == &F.last_resume)
		v = *(const int64_t *)field;
	else
		v = *(const int *)field;
	pthread_mutex_unlock(&F.m);
	return v;
}

/* Refuse allocates of paths containing @part with @err ("" to stop). */
static void fake_refuse(const char *part, int err)
{
	pthread_mutex_lock(&F.m);
	snprintf(F.refuse, sizeof(F.refuse), "%s", part);
	F.refuse_err = err;
	pthread_mutex_unlock(&F.m);
}

/* ---- fixture ---- */

static char dir[256];
static int setup(void **state)
{
	upload_test_begin(60);          /* an upload_wait that never returns fails the run */
	unit_tmpdir(dir, sizeof(dir), "test_upload");
	fake_reset();
	return 0;
}

static int teardown(void **state)
{
	upload_test_end();
	unit_rm_rf(dir);
	return 0;
}

static struct upload_config cfg_default(void)
{
	struct upload_config c = {
		.cache_dir = dir, .transfers = 4, .max_attempts = 10, .done = on_done,
		.write_back_ms = -1, .backoff_min_ms = 5, .backoff_max_ms = 20, .ops = &fake_ops,
	};
	return c;
}

static void q_open(const struct upload_config *c)
{
	assert_int_equal(upload_open(c, &Q), 0);
}

/* Open the queue and start its workers. */
static void q_start(const struct upload_config *c)
{
	q_open(c);
	assert_int_equal(upload_start(Q), 0);
}

/* A content file "<dir>/c<id>" holding @content, and an item for it. */
struct itembuf {
	struct upload_item it;
	char file[300];
	char path[300];
};

static struct upload_item *mk_item2(struct itembuf *b, uint64_t id, uint64_t gen, const char *path,
				    const char *content, const char *suffix)
{
	memset(b, 0, sizeof(*b));
	snprintf(b->file, sizeof(b->file), "%s/c%llu%s", dir, (unsigned long long)id, suffix);
	snprintf(b->path, sizeof(b->path), "%s", path);
	unit_put_file(b->file, content, strlen(content));
	b->it.id = id;
	b->it.gen = gen;
	b->it.path = b->path;
	b->it.content_file = b->file;
	b->it.size = (int64_t)strlen(content);
	unit_md5(content, strlen(content), b->it.md5);
	b->it.created = b->it.modified = 1700000000;
	b->it.base_size = -1;
	return &b->it;
}

static struct upload_item *mk_item(struct itembuf *b, uint64_t id, uint64_t gen, const char *path,
				   const char *content)
{
	return mk_item2(b, id, gen, path, content, "");
}

/* Query one text value from the journal with the sqlite3 API (a second connection). */
static char *journal_get(const char *sql)
{
	char file[300], *out = NULL;
	sqlite3 *db;
	sqlite3_stmt *st;
	snprintf(file, sizeof(file), "%s/journal.db", dir);
	assert_int_equal(sqlite3_open_v2(file, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		out = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return out;
}

/* ---- tests: pure helpers ---- */

static void conflict_names(void **state)
{
	char b[600];
	time_t t = 1795450500;  /* 2026-11-23 16:15:00 UTC */

	assert_int_equal(upload_conflict_name("a.txt", t, b, sizeof(b)), 0);
	assert_string_equal(b, "a (conflict 2026-11-23 161500).txt");
	assert_int_equal(upload_conflict_name("dir/sub/a.txt", t, b, sizeof(b)), 0);
	assert_string_equal(b, "dir/sub/a (conflict 2026-11-23 161500).txt");
	assert_int_equal(upload_conflict_name("Makefile", t, b, sizeof(b)), 0);
	assert_string_equal(b, "Makefile (conflict 2026-11-23 161500)");
	assert_int_equal(upload_conflict_name("d/.bashrc", t, b, sizeof(b)), 0);
	assert_string_equal(b, "d/.bashrc (conflict 2026-11-23 161500)");
	assert_int_equal(upload_conflict_name("archive.tar.gz", t, b, sizeof(b)), 0);
	assert_string_equal(b, "archive.tar (conflict 2026-11-23 161500).gz");
	assert_int_equal(upload_conflict_name("trailing.", t, b, sizeof(b)), 0);
	assert_string_equal(b, "trailing. (conflict 2026-11-23 161500)");
	assert_int_equal(upload_conflict_name("d.x/noext", t, b, sizeof(b)), 0);
	assert_string_equal(b, "d.x/noext (conflict 2026-11-23 161500)");
	assert_int_equal(upload_conflict_name("", t, b, sizeof(b)), -EINVAL);
	assert_int_equal(upload_conflict_name("dir/", t, b, sizeof(b)), -EINVAL);
	assert_int_equal(upload_conflict_name("a.txt", t, b, 20), -ENAMETOOLONG);

	/* a name near the 255 limit is shortened, at a character boundary, ext kept */
	char name[400];
	memset(name, 0, sizeof(name));
	for (int i = 0; i < 125; i++)
		strcat(name, "\xc3\xa6");       /* æ: 2 bytes, 1 unit */
	strcat(name, ".txt");                   /* 129 units */
	char path[420];
	snprintf(path, sizeof(path), "d/%s", name);
	assert_int_equal(upload_conflict_name(path, t, b, sizeof(b)), 0);
	assert_string_equal(b + strlen(b) - 4, ".txt");
	/* 255 units left: room for the tag (29) and ".txt" (4): 222 of the 125 kept */
	char longname[800] = "";
	for (int i = 0; i < 250; i++)
		strcat(longname, "\xc3\xa6");
	strcat(longname, ".txt");
	assert_int_equal(upload_conflict_name(longname, t, b, sizeof(b)), 0);
	const char *tag = strstr(b, " (conflict");
	assert_non_null(tag);
	size_t stem = (size_t)(tag - b);
	assert_int_equal(stem % 2, 0);          /* whole characters only */
	assert_int_equal(stem / 2 + strlen(" (conflict 2026-11-23 161500)") + 4, 255);
}

static void backoff_bounds(void **state)
{
	static const uint32_t rnds[] = { 0, 1, 12345, 0x7fffffff, 0xffffffff };
	unsigned a;
	size_t i;

	for (a = 1; a <= 40; a++) {
		int64_t d = 1000;
		for (unsigned k = 1; k < a && d < 300000; k++)
			d *= 2;
		if (d > 300000)
			d = 300000;
		for (i = 0; i < sizeof(rnds) / sizeof(rnds[0]); i++) {
			int64_t v = upload_backoff_ms(a, 1000, 300000, rnds[i]);
			assert_true(v >= d / 2);
			assert_true(v <= d);
		}
	}
	assert_true(upload_backoff_ms(1, 1000, 300000, 0) >= 500);
	assert_true(upload_backoff_ms(1, 1000, 300000, 0xffffffff) <= 1000);
	assert_true(upload_backoff_ms(9, 1000, 300000, 0) == 128000);
	assert_true(upload_backoff_ms(10, 1000, 300000, 0) == 150000);
	assert_true(upload_backoff_ms(1000, 1000, 300000, 0xffffffff) <= 300000);
	/* jitter really varies */
	assert_true(upload_backoff_ms(5, 1000, 300000, 1) != upload_backoff_ms(5, 1000, 300000, 7777));
}

/* ---- tests: the journal ---- */

static void journal_durable(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b;
	unsigned files;
	int64_t bytes;
	char *s;

	q_open(&c);
	assert_int_equal(upload_enqueue(Q, mk_item(&b, 7, 1, "dir/a.txt", "hello world")), 0);
	assert_true(upload_pending(Q, 7));
	upload_close(Q);
	Q = NULL;

	s = journal_get("PRAGMA journal_mode");
	assert_string_equal(s, "wal");
	free(s);
	s = journal_get("SELECT path || '|' || gen || '|' || size || '|' || state FROM upload WHERE id = 7");
	assert_string_equal(s, "dir/a.txt|1|11|pending");
	free(s);

	q_open(&c);
	assert_true(upload_pending(Q, 7));
	upload_stats(Q, &files, &bytes);
	assert_int_equal(files, 1);
	assert_int_equal(bytes, 11);
	assert_int_equal(upload_start(Q), 0);
	assert_int_equal(upload_wait(Q, 7, 1), 0);
	assert_false(upload_pending(Q, 7));
	char m[33], want[33];
	fake_md5("dir/a.txt", m);
	unit_md5("hello world", 11, want);
	assert_string_equal(m, want);
	wait_events(1);
	assert_int_equal(D.ev[0].err, 0);
	assert_string_equal(D.ev[0].path, "dir/a.txt");
	upload_close(Q);
	Q = NULL;
	s = journal_get("SELECT count(*) FROM upload");
	assert_string_equal(s, "0");
	free(s);
}

/* Journalled bytes (upload_item.inline_data): a cache file that lost them
 * (a power cut before its pages reached the disk) is written back when the
 * journal opens, with the recorded mtime, before any upload reads it; the
 * upload then sends the bytes that were written. */
static void journal_restores_inline_content(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b;
	struct stat sb;
	char *s, m[33], want[33];
	const char *text = "small file, bytes kept in the journal";

	q_open(&c);
	mk_item(&b, 31, 1, "inline.txt", text);
	b.it.inline_data = text;
	b.it.inline_len = strlen(text);
	assert_int_equal(upload_enqueue(Q, &b.it), 0);
	upload_close(Q);
	Q = NULL;
	s = journal_get("SELECT length(content) FROM upload WHERE id = 31");
	assert_non_null(s);
	assert_int_equal(atoi(s), (int)strlen(text));
	free(s);
	/* intact (a clean stop): read back, left alone (no write, no fsync) */
	struct stat before;
	assert_int_equal(stat(b.file, &before), 0);
	q_open(&c);
	upload_close(Q);
	Q = NULL;
	assert_int_equal(stat(b.file, &sb), 0);
	assert_true(sb.st_ctim.tv_sec == before.st_ctim.tv_sec &&
		    sb.st_ctim.tv_nsec == before.st_ctim.tv_nsec);
	/* the power cut: the cache file lost its pages */
	assert_int_equal(truncate(b.file, 0), 0);

	q_open(&c);
	assert_int_equal(stat(b.file, &sb), 0);
	assert_int_equal(sb.st_size, (off_t)strlen(text));
	assert_int_equal(upload_start(Q), 0);
	assert_int_equal(upload_wait(Q, 31, 1), 0);
	fake_md5("inline.txt", m);
	unit_md5(text, strlen(text), want);
	assert_string_equal(m, want);
	upload_close(Q);
	Q = NULL;
	s = journal_get("SELECT count(*) FROM upload");
	assert_string_equal(s, "0");
	free(s);
}

/* A newer generation without journalled bytes (its cache file was synced)
 * drops those of the older one; the same generation enqueued again (a
 * corrected base) keeps them. */
static void journal_inline_follows_generation(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b1, b2;
	char *s;

	c.write_back_ms = 60000;        /* nothing starts */
	q_open(&c);
	mk_item(&b1, 32, 1, "g.txt", "one");
	b1.it.inline_data = "one";
	b1.it.inline_len = 3;
	assert_int_equal(upload_enqueue(Q, &b1.it), 0);
	b1.it.inline_data = NULL;
	b1.it.inline_len = 0;
	assert_int_equal(upload_enqueue(Q, &b1.it), 0);
	s = journal_get("SELECT quote(content) FROM upload WHERE id = 32");
	assert_string_equal(s, "X'6F6E65'");
	free(s);
	assert_int_equal(upload_enqueue(Q, mk_item2(&b2, 32, 2, "g.txt", "two!", ".2")), 0);
	s = journal_get("SELECT quote(content) FROM upload WHERE id = 32");
	assert_string_equal(s, "NULL");
	free(s);
	upload_close(Q);
	Q = NULL;
}

/* A journal of version 1 (before upload.content) with a pending record:
 * opened by this version, it gains the column and keeps the record. */
static void journal_v1_migrates(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b;
	char file[300], *s;
	sqlite3 *db;

	q_open(&c);
	assert_int_equal(upload_enqueue(Q, mk_item(&b, 33, 1, "old.txt", "queued by v1")), 0);
	upload_close(Q);
	Q = NULL;
	snprintf(file, sizeof(file), "%s/journal.db", dir);
	assert_int_equal(sqlite3_open(file, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "ALTER TABLE upload DROP COLUMN content;"
				      "PRAGMA user_version = 1;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	q_open(&c);
	assert_true(upload_pending(Q, 33));
	upload_close(Q);
	Q = NULL;
	s = journal_get("PRAGMA user_version");
	assert_string_equal(s, "2");
	free(s);
	s = journal_get("SELECT path || '|' || quote(content) FROM upload WHERE id = 33");
	assert_string_equal(s, "old.txt|NULL");
	free(s);
}

/* The record is on disk when upload_enqueue returns: a process killed right after still has it. */
static void journal_survives_kill(void **state)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct upload_config c = cfg_default();
		struct upload_queue *q;
		struct itembuf b;
		if (upload_open(&c, &q) != 0)
			_exit(2);
		for (int i = 1; i <= 20; i++) {
			char p[32];
			snprintf(p, sizeof(p), "f%d", i);
			if (upload_enqueue(q, mk_item(&b, (uint64_t)i, 1, p, "data")) != 0)
				_exit(3);
		}
		raise(SIGKILL);
		_exit(4);
	}
	int st;
	watchdog_victim(0, pid);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	watchdog_victim(0, 0);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	struct upload_config c = cfg_default();
	unsigned files;
	q_open(&c);
	upload_stats(Q, &files, NULL);
	assert_int_equal(files, 20);
	assert_int_equal(upload_start(Q), 0);
	assert_int_equal(upload_drain(Q, 10), 0);
	wait_events(20);
	assert_int_equal(FG(n_up), 20);
}

static void supersede(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b1, b2, b0;
	char m[33];

	c.write_back_ms = 60000;        /* hold the records until upload_wait */
	q_start(&c);
	assert_int_equal(upload_enqueue(Q, mk_item(&b1, 5, 1, "s.txt", "one")), 0);
	assert_int_equal(upload_enqueue(Q, mk_item(&b2, 5, 2, "s.txt", "two!")), 0);
	/* an older generation arriving late is ignored */
	assert_int_equal(upload_enqueue(Q, mk_item(&b0, 5, 1, "s.txt", "two!")), 0);
	unsigned files;
	int64_t bytes;
	upload_stats(Q, &files, &bytes);
	assert_int_equal(files, 1);
	assert_int_equal(bytes, 4);
	char *s = journal_get("SELECT gen FROM upload WHERE id = 5");
	assert_string_equal(s, "2");
	free(s);
	/* waiting for gen 1 is satisfied by gen 2 */
	assert_int_equal(upload_wait(Q, 5, 1), 0);
	fake_md5("s.txt", m);
	assert_string_equal(m, b2.it.md5);
	assert_int_equal(FG(n_up), 1);
	wait_events(1);
	assert_int_equal(D.ev[0].gen, 2);
}

/* A file of 64 MiB or more starts without the write-back delay (at most
 * 250 ms): its transfer takes seconds. A small one enqueued with it still
 * waits for the delay (60 s here). The big record falls due while the small
 * one is not: whichever lane watches, a worker of the transfers lane wakes
 * for it (before, 1 run in 20 waited for the small one's 60 s). */
static void big_file_starts_sooner(void **state)
{
	struct upload_config c = cfg_default();
	const int64_t size = 64LL << 20;
	struct itembuf small, big;
	char *zeros = calloc(1, (size_t)size);
	unsigned files;

	assert_non_null(zeros);
	c.write_back_ms = 60000;
	q_start(&c);
	mk_item(&big, 21, 1, "big.bin", "");
	assert_int_equal(truncate(big.file, size), 0);
	big.it.size = size;
	unit_md5(zeros, (size_t)size, big.it.md5);
	free(zeros);
	assert_int_equal(upload_enqueue(Q, mk_item(&small, 22, 1, "small.txt", "small")), 0);
	assert_int_equal(upload_enqueue(Q, &big.it), 0);
	wait_events(1);
	assert_int_equal(D.ev[0].id, 21);
	assert_int_equal(D.ev[0].err, 0);
	assert_true(upload_pending(Q, 22));
	upload_stats(Q, &files, NULL);
	assert_int_equal(files, 1);
	assert_int_equal(FG(n_up), 1);
}

/* A newer generation while the older one is being sent. */
static void supersede_running(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b1, b2;
	char m[33];

	q_start(&c);
	fake_block(true);
	assert_int_equal(upload_enqueue(Q, mk_item(&b1, 9, 1, "r.txt", "first version")), 0);
	fake_wait_blocked(1);
	/* rewritten in place (same content file): the running transfer is doomed and aborted */
	assert_int_equal(upload_enqueue(Q, mk_item(&b2, 9, 2, "r.txt", "second version, longer")), 0);
	int64_t end = clock_mono_ms() + 5000;
	while (FG(n_cancelled) < 1 && clock_mono_ms() < end)
		unit_sleep_ms(2);
	assert_int_equal(FG(n_cancelled), 1);
	fake_block(false);
	assert_int_equal(upload_wait(Q, 9, 2), 0);
	fake_md5("r.txt", m);
	assert_string_equal(m, b2.it.md5);
	wait_events(1);
	assert_int_equal(events(), 1);
	assert_int_equal(D.ev[0].gen, 2);

	/* a new content file (another inode): the older transfer finishes, then the newer */
	struct itembuf b3, b4;
	mk_item(&b3, 10, 1, "n.txt", "aaa");
	fake_block(true);
	assert_int_equal(upload_enqueue(Q, &b3.it), 0);
	fake_wait_blocked(1);
	mk_item2(&b4, 10, 2, "n.txt", "bbbb", ".new");
	assert_int_equal(upload_enqueue(Q, &b4.it), 0);
	fake_block(false);
	assert_int_equal(upload_wait(Q, 10, 2), 0);
	fake_md5("n.txt", m);
	assert_string_equal(m, b4.it.md5);
	wait_events(3);
	assert_int_equal(D.ev[1].id, 10);
	assert_int_equal(D.ev[1].gen, 1);
	assert_int_equal(D.ev[2].gen, 2);
}

/* gen 2, made from gen 1 while gen 1 was in flight, must not look like a conflict. */
static void base_follows_own_upload(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b1, b2;
	char m[33];

	fake_put("doc.txt", "server base");
	q_start(&c);
	fake_block(true);
	mk_item(&b1, 11, 1, "doc.txt", "edit one");
	unit_md5("server base", 11, b1.it.base_md5);
	b1.it.base_size = 11;
	assert_int_equal(upload_enqueue(Q, &b1.it), 0);
	fake_wait_blocked(1);
	mk_item2(&b2, 11, 2, "doc.txt", "edit two", ".b");
	memcpy(b2.it.base_md5, b1.it.base_md5, 33);
	b2.it.base_size = 11;
	assert_int_equal(upload_enqueue(Q, &b2.it), 0);
	fake_block(false);
	assert_int_equal(upload_wait(Q, 11, 2), 0);
	fake_md5("doc.txt", m);
	assert_string_equal(m, b2.it.md5);
	wait_events(2);
	assert_string_equal(D.ev[0].path, "doc.txt");
	assert_string_equal(D.ev[1].path, "doc.txt");
}

/* A done callback that holds generation 1's callback until told to go. */
static struct {
	pthread_mutex_t m;
	pthread_cond_t cv;
	bool in, go;
} H = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false };

static void on_done_held(void *ctx, uint64_t id, uint64_t gen, int err, const char *server_path,
			 const char *md5)
{
	if (gen == 1) {
		pthread_mutex_lock(&H.m);
		H.in = true;
		pthread_cond_broadcast(&H.cv);
		while (!H.go)
			pthread_cond_wait(&H.cv, &H.m);
		pthread_mutex_unlock(&H.m);
	}
	on_done(ctx, id, gen, err, server_path, md5);
}

/*
 * A rewrite journalled after generation 1 was confirmed but before its done
 * callback told the caller the new base (fsync, then at once open(O_TRUNC)
 * and close): it carries generation 1's base, and is rebased to generation
 * 1's content, not taken for a conflict with our own upload.
 */
static void base_follows_before_callback(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b1, b2, b3;
	char m[33];

	c.done = on_done_held;
	H.in = H.go = false;
	q_start(&c);
	/* a new file (base -1), fsync'd */
	assert_int_equal(upload_enqueue(Q, mk_item(&b1, 21, 1, "new.txt", "will be emptied")), 0);
	assert_int_equal(upload_wait(Q, 21, 1), 0);
	pthread_mutex_lock(&H.m);
	while (!H.in)
		pthread_cond_wait(&H.cv, &H.m);
	pthread_mutex_unlock(&H.m);
	/* in the callback's window: the caller still believes "new file" */
	assert_int_equal(upload_enqueue(Q, mk_item2(&b2, 21, 2, "new.txt", "", ".2")), 0);
	/* another node is not rebased by it */
	mk_item(&b3, 22, 2, "new.txt.other", "x");
	assert_int_equal(upload_enqueue(Q, &b3.it), 0);
	pthread_mutex_lock(&H.m);
	H.go = true;
	pthread_cond_broadcast(&H.cv);
	pthread_mutex_unlock(&H.m);
	assert_int_equal(upload_wait(Q, 21, 2), 0);
	assert_int_equal(upload_wait(Q, 22, 2), 0);
	fake_md5("new.txt", m);
	assert_string_equal(m, b2.it.md5);              /* emptied, in place */
	wait_events(3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(D.ev[i].err, 0);
		assert_null(strstr(D.ev[i].path, "conflict"));
	}
	/* once the callback returned, a generation still based on "new file"
	 * finds our own generation 2 on the service: this mount put it there,
	 * so it is no conflict (issue 7 item 1: whatever order uploads land in) */
	H.in = false;
	mk_item2(&b3, 21, 3, "new.txt", "stale", ".3");
	assert_int_equal(upload_enqueue(Q, &b3.it), 0);
	assert_int_equal(upload_wait(Q, 21, 3), 0);
	wait_events(4);
	assert_string_equal(D.ev[3].path, "new.txt");
	fake_md5("new.txt", m);
	assert_string_equal(m, b3.it.md5);
	/* but another client's content there is a conflict, as always */
	fake_put("new.txt", "theirs");
	mk_item2(&b3, 21, 4, "new.txt", "mine, on a stale base", ".4");
	assert_int_equal(upload_enqueue(Q, &b3.it), 0);
	assert_int_equal(upload_wait(Q, 21, 4), 0);
	wait_events(5);
	assert_non_null(strstr(D.ev[4].path, "new (conflict "));
}

static void *wait_thread(void *arg)
{
	uint64_t *id = arg;
	return (void *)(intptr_t)upload_wait(Q, *id, 1);
}

static void cancel(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b;
	pthread_t t;
	uint64_t id = 3;
	void *rv;
	char m[33];

	c.write_back_ms = 60000;
	q_open(&c);
	assert_int_equal(upload_enqueue(Q, mk_item(&b, 3, 1, "gone.txt", "bye")), 0);
	assert_int_equal(upload_cancel(Q, 3), 0);
	assert_false(upload_pending(Q, 3));
	assert_int_equal(upload_wait(Q, 3, 1), 0);
	assert_int_equal(upload_cancel(Q, 3), 0);       /* nothing pending: fine */
	assert_int_equal(upload_start(Q), 0);
	assert_int_equal(upload_drain(Q, 2), 0);
	assert_int_equal(FG(n_alloc), 0);

	/* cancel while the transfer runs: aborted, and the waiter hears -ENOENT */
	upload_close(Q);
	c.write_back_ms = -1;
	q_start(&c);
	fake_block(true);
	assert_int_equal(upload_enqueue(Q, mk_item(&b, 3, 1, "gone.txt", "bye bye")), 0);
	fake_wait_blocked(1);
	assert_int_equal(pthread_create(&t, NULL, wait_thread, &id), 0);
	unit_sleep_ms(20); /* pacing: the waiter usually blocks first (-ENOENT either way) */
	assert_int_equal(upload_cancel(Q, 3), 0);
	/* upload_cancel returned: the transfer has stopped */
	assert_int_equal(FG(blocked), 0);
	assert_int_equal(FG(n_cancelled), 1);
	pthread_join(t, &rv);
	assert_int_equal((int)(intptr_t)rv, -ENOENT);
	fake_block(false);
	upload_close(Q); /* the workers are stopped: nothing can still arrive */
	Q = NULL;
	fake_md5("gone.txt", m);
	assert_string_equal(m, "");
	assert_int_equal(events(), 0);
	char *s = journal_get("SELECT count(*) FROM upload");
	assert_string_equal(s, "0");
	free(s);
}

static void rename_pending(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b, x, y;
	char m[33], want[33];

	c.write_back_ms = 60000;
	q_start(&c);
	bool touched = false;

	assert_int_equal(upload_enqueue(Q, mk_item(&b, 4, 1, "old.txt", "content")), 0);
	assert_int_equal(upload_rename(Q, 4, "new.txt", &touched), 0);
	assert_false(touched);                  /* never ran: nothing at old.txt */
	assert_int_equal(upload_enqueue(Q, mk_item(&x, 20, 1, "d/x", "xx")), 0);
	assert_int_equal(upload_enqueue(Q, mk_item(&y, 21, 1, "d/y", "yy")), 0);
	assert_int_equal(upload_enqueue(Q, mk_item(&b, 22, 1, "dd/z", "zz")), 0);
	assert_int_equal(upload_rename_dir(Q, "d", "e/f"), 0);
	assert_int_equal(upload_rename(Q, 4, "bad/", NULL), -EINVAL);
	assert_int_equal(upload_drain(Q, 5), 0);
	fake_md5("new.txt", m);
	unit_md5("content", 7, want);
	assert_string_equal(m, want);
	fake_md5("old.txt", m);
	assert_string_equal(m, "");
	fake_md5("e/f/x", m);
	assert_string_equal(m, x.it.md5);
	fake_md5("e/f/y", m);
	assert_string_equal(m, y.it.md5);
	fake_md5("dd/z", m);                    /* "dd" is not under "d" */
	assert_true(m[0]);
	assert_int_equal(FG(n_alloc), 4);
}

static void rename_running(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b;
	char m[33];

	q_start(&c);
	fake_block(true);
	assert_int_equal(upload_enqueue(Q, mk_item(&b, 4, 1, "tmp.part", "renamed while sent")), 0);
	fake_wait_blocked(1);
	bool touched = false;
	assert_int_equal(upload_rename(Q, 4, "final.txt", &touched), 0);
	assert_true(touched);                     /* it ran at tmp.part */
	assert_int_equal(FG(n_cancelled), 1);     /* aborted before upload_rename returned */
	fake_block(false);
	assert_int_equal(upload_wait(Q, 4, 1), 0);
	fake_md5("final.txt", m);
	assert_string_equal(m, b.it.md5);
	fake_md5("tmp.part", m);
	assert_string_equal(m, "");
	wait_events(1);
	assert_string_equal(D.ev[0].path, "final.txt");
}

/* A new file renamed over an existing server file replaces it (rsync's temp + rename). */
static void rename_over_existing(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b;
	char m[33];

	fake_put("target.txt", "old server content");
	c.write_back_ms = 60000;
	q_start(&c);
	assert_int_equal(upload_enqueue(Q, mk_item(&b, 8, 1, ".target.txt.XYZ", "new")), 0);
	assert_int_equal(upload_rename(Q, 8, "target.txt", NULL), 0);
	assert_int_equal(upload_wait(Q, 8, 1), 0);
	fake_md5("target.txt", m);
	assert_string_equal(m, b.it.md5);
	wait_events(1);
	assert_string_equal(D.ev[0].path, "target.txt");
}

static void conflicts(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b1, b2, b3;
	char m[33];

	fake_put("c1.txt", "someone else's");      /* changed since our base */
	fake_put("c2.txt", "our base");            /* unchanged */
	fake_put("c3.txt", "local");               /* already our content */
	q_start(&c);

	mk_item(&b1, 1, 1, "c1.txt", "local");
	unit_md5("base", 4, b1.it.base_md5);
	b1.it.base_size = 4;
	mk_item(&b2, 2, 1, "c2.txt", "local 2");
	unit_md5("our base", 8, b2.it.base_md5);
	b2.it.base_size = 8;
	mk_item(&b3, 3, 1, "c3.txt", "local");
	unit_md5("base", 4, b3.it.base_md5);
	b3.it.base_size = 4;
	assert_int_equal(upload_enqueue(Q, &b1.it), 0);
	assert_int_equal(upload_enqueue(Q, &b2.it), 0);
	assert_int_equal(upload_enqueue(Q, &b3.it), 0);
	assert_int_equal(upload_drain(Q, 5), 0);
	wait_events(3);

	/* c1: the server copy is untouched, ours landed under a conflict name */
	char want[33];
	unit_md5("someone else's", 14, want);
	fake_md5("c1.txt", m);
	assert_string_equal(m, want);
	const char *landed = NULL;
	for (int i = 0; i < 3; i++)
		if (D.ev[i].id == 1)
			landed = D.ev[i].path;
	assert_non_null(landed);
	assert_true(strncmp(landed, "c1 (conflict 20", 15) == 0);
	assert_string_equal(landed + strlen(landed) - 5, ").txt");
	fake_md5(landed, m);
	assert_string_equal(m, b1.it.md5);
	/* c2: normal replacement */
	fake_md5("c2.txt", m);
	assert_string_equal(m, b2.it.md5);
	/* c3: same content as ours: no conflict, instant */
	assert_int_equal(FG(n_instant), 1);
	for (int i = 0; i < 3; i++)
		if (D.ev[i].id == 3)
			assert_string_equal(D.ev[i].path, "c3.txt");
}

/* A conflict name, once chosen, is kept across retries. */
static void conflict_name_sticks(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b;

	fake_put("k.txt", "theirs");
	q_open(&c);
	mk_item(&b, 1, 1, "k.txt", "mine");
	unit_md5("base", 4, b.it.base_md5);
	b.it.base_size = 4;
	push(F.up_err, &F.n_up_err, -ETIMEDOUT, 2);
	assert_int_equal(upload_enqueue(Q, &b.it), 0);
	assert_int_equal(upload_start(Q), 0);
	assert_int_equal(upload_wait(Q, 1, 1), 0);
	/* decided once; the other two stats are of the conflict name, after
	 * each timed-out POST (did it land all the same? no) */
	assert_int_equal(FG(n_stat), 3);
	assert_int_equal(FG(n_up), 3);
	wait_events(1);
	assert_non_null(strstr(D.ev[0].path, "k (conflict "));
}

static void retries_transient(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b;

	c.max_attempts = 3;
	q_start(&c);
	/* an outage longer than max_attempts never gives up */
	push(F.alloc_err, &F.n_alloc_err, -ECONNREFUSED, 4);
	push(F.alloc_err, &F.n_alloc_err, -EHOSTUNREACH, 3);
	push(F.stat_err, &F.n_stat_err, -ETIMEDOUT, 2);
	push(F.up_err, &F.n_up_err, -EAGAIN, 3);
	push(F.up_err, &F.n_up_err, -EACCES, 2);
	int64_t t0 = clock_mono_ms();
	assert_int_equal(upload_enqueue(Q, mk_item(&b, 1, 1, "t.txt", "retry me")), 0);
	assert_int_equal(upload_wait(Q, 1, 1), 0);
	/* 14 failures with backoff >= 2.5 ms each on average */
	assert_true(clock_mono_ms() - t0 >= 14 * 2);
	assert_int_equal(FG(n_up), 6);
	wait_events(1);
	assert_int_equal(D.ev[0].err, 0);
	assert_int_equal(upload_given_up(Q), 0);
}

/* An interrupted transfer continues from the service's resume_pos. */
static void resume_after_cut(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b;
	char big[100001];
	char m[33];

	for (size_t i = 0; i < sizeof(big) - 1; i++)
		big[i] = (char)('a' + (i * 7) % 26);
	big[sizeof(big) - 1] = '\0';
	q_start(&c);
	pthread_mutex_lock(&F.m);
	F.cut_half = true;
	pthread_mutex_unlock(&F.m);
	push(F.up_err, &F.n_up_err, -ECONNRESET, 1);
	assert_int_equal(upload_enqueue(Q, mk_item(&b, 1, 1, "big.bin", big)), 0);
	assert_int_equal(upload_wait(Q, 1, 1), 0);
	fake_md5("big.bin", m);
	assert_string_equal(m, b.it.md5);
	assert_int_equal(FG(n_up), 2);
	assert_int_equal(FG(last_resume), 50000);
	assert_int_equal(FG(bytes_in), 100000);   /* every byte sent once */
}

/* Kill -9 in the middle of a transfer: the next run resumes from resume_pos. */
static void resume_after_close_mid_transfer(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b;
	char big[20001];

	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	q_start(&c);
	fake_block(true);
	assert_int_equal(upload_enqueue(Q, mk_item(&b, 1, 1, "cut.bin", big)), 0);
	fake_wait_blocked(1);
	upload_close(Q);                        /* aborts the transfer, keeps the record */
	Q = NULL;
	fake_block(false);
	assert_int_equal(FG(n_cancelled), 1);
	q_open(&c);
	assert_true(upload_pending(Q, 1));
	assert_int_equal(upload_start(Q), 0);
	assert_int_equal(upload_wait(Q, 1, 1), 0);
	assert_int_equal(FG(last_resume), 10000);
	assert_int_equal(FG(bytes_in), 20000);
}

/*
 * A new file is allocated with REJECT_CONFLICTS and no look first (two
 * requests: allocate, POST). When another client put a different file at
 * its path meanwhile, the service refuses; the path is looked at then, and
 * the upload goes to a conflict name, the other file untouched. A refusal
 * with nothing at the path is not a conflict: it is the upload's failure.
 */
static void new_file_conflict_found_by_the_service(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b1, b2, b3;
	char m[33], theirs[33];

	c.max_attempts = 1;
	q_start(&c);
	assert_int_equal(upload_enqueue(Q, mk_item(&b1, 1, 1, "fresh.txt", "mine")), 0);
	assert_int_equal(upload_wait(Q, 1, 1), 0);
	assert_int_equal(FG(n_stat), 0);
	assert_int_equal(FG(n_alloc), 1);
	assert_int_equal(FG(n_reject), 0);

	fake_put("taken.txt", "theirs");
	fake_md5("taken.txt", theirs);
	assert_int_equal(upload_enqueue(Q, mk_item(&b2, 2, 1, "taken.txt", "mine too")), 0);
	assert_int_equal(upload_wait(Q, 2, 1), 0);
	assert_int_equal(FG(n_reject), 1);
	assert_int_equal(FG(n_stat), 1);
	assert_int_equal(FG(n_alloc), 3);
	fake_md5("taken.txt", m);
	assert_string_equal(m, theirs);
	wait_events(2);
	assert_int_equal(D.ev[1].err, 0);
	assert_non_null(strstr(D.ev[1].path, "taken (conflict "));

	/* refused for another reason (a name the service does not take) */
	fake_refuse("bad", -EINVAL);
	assert_int_equal(upload_enqueue(Q, mk_item(&b3, 3, 1, "bad.txt", "x")), 0);
	assert_int_equal(upload_wait(Q, 3, 1), -EIO);
	assert_int_equal(FG(n_alloc), 4);
	assert_int_equal(FG(n_stat), 2);
}

static void give_up_refused_name(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b, b2;
	char lf[512], *s;
	size_t len;
	struct stat sb;

	q_start(&c);
	fake_refuse("bad", -EINVAL);
	assert_int_equal(upload_enqueue(Q, mk_item(&b, 1, 1, "x/y/bad.txt", "precious")), 0);
	assert_int_equal(upload_wait(Q, 1, 1), -EIO);
	assert_int_equal(FG(n_alloc), 3);         /* permanent refusals: 3 attempts */
	assert_false(upload_pending(Q, 1));
	assert_int_equal(upload_given_up(Q), 1);
	wait_events(1);
	assert_int_equal(D.ev[0].err, -EINVAL);
	snprintf(lf, sizeof(lf), "%s/lost+found/x/y/bad.txt", dir);
	s = slurp(lf, &len);
	assert_non_null(s);
	assert_string_equal(s, "precious");
	free(s);
	assert_int_equal(stat(lf, &sb), 0);
	assert_int_equal(sb.st_nlink, 2);       /* a hard link of the content file */
	s = journal_get("SELECT state || '|' || attempts || '|' || lost_path FROM upload WHERE id = 1");
	assert_non_null(s);
	assert_true(strncmp(s, "given-up|3|", 11) == 0);
	assert_string_equal(strchr(s + 11, '/'), lf);
	free(s);
	s = journal_get("SELECT last_error FROM upload WHERE id = 1");
	assert_non_null(strstr(s, "EINVAL"));
	free(s);
	/* still given up after a restart, and not retried */
	upload_close(Q);
	Q = NULL;
	q_open(&c);
	assert_int_equal(upload_given_up(Q), 1);
	assert_int_equal(upload_wait(Q, 1, 1), -EIO);
	/* a second loss of the same path does not overwrite the first */
	assert_int_equal(upload_start(Q), 0);
	assert_int_equal(upload_enqueue(Q, mk_item(&b2, 2, 1, "x/y/bad.txt", "second")), 0);
	assert_int_equal(upload_wait(Q, 2, 1), -EIO);
	snprintf(lf, sizeof(lf), "%s/lost+found/x/y/bad (1).txt", dir);
	s = slurp(lf, &len);
	assert_non_null(s);
	assert_string_equal(s, "second");
	free(s);
	/* a new generation of a given-up file is tried again */
	fake_refuse("", 0);
	assert_int_equal(upload_enqueue(Q, mk_item(&b, 1, 2, "x/y/bad.txt", "precious 2")), 0);
	assert_int_equal(upload_wait(Q, 1, 2), 0);
	assert_int_equal(upload_given_up(Q), 1);
}

/* A file given up for its name is tried again when renamed (file or directory). */
static void rename_revives_given_up(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b1, b2;
	char m[33];

	q_start(&c);
	fake_refuse("bad", -EINVAL);
	assert_int_equal(upload_enqueue(Q, mk_item(&b1, 1, 1, "bad name.txt", "one")), 0);
	assert_int_equal(upload_enqueue(Q, mk_item(&b2, 2, 1, "bad dir/f.txt", "two")), 0);
	assert_int_equal(upload_wait(Q, 1, 1), -EIO);
	assert_int_equal(upload_wait(Q, 2, 1), -EIO);
	assert_int_equal(upload_given_up(Q), 2);
	assert_false(upload_pending(Q, 1));
	fake_block(true);       /* pending until looked at, however fast the worker */
	assert_int_equal(upload_rename(Q, 1, "good name.txt", NULL), 0);
	assert_true(upload_pending(Q, 1));
	assert_int_equal(upload_rename_dir(Q, "bad dir", "good dir"), 0);
	assert_true(upload_pending(Q, 2));
	assert_int_equal(upload_given_up(Q), 0);
	fake_block(false);
	assert_int_equal(upload_wait(Q, 1, 1), 0);
	assert_int_equal(upload_wait(Q, 2, 1), 0);
	fake_md5("good name.txt", m);
	assert_string_equal(m, b1.it.md5);
	fake_md5("good dir/f.txt", m);
	assert_string_equal(m, b2.it.md5);
	char *s2 = journal_get("SELECT count(*) FROM upload");
	assert_string_equal(s2, "0");
	free(s2);
}

static void give_up_corrupt(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b;

	c.max_attempts = 4;
	q_start(&c);
	/* the recorded md5 is not the content's: every upload ends CORRUPT (-EIO) */
	mk_item(&b, 1, 1, "dir/.hidden", "the bytes");
	unit_md5("other bytes", 11, b.it.md5);
	assert_int_equal(upload_enqueue(Q, &b.it), 0);
	assert_int_equal(upload_wait(Q, 1, 1), -EIO);
	/* the first -EIO has no earlier resume_pos to compare with (a cut, or
	 * CORRUPT?); the next four restart at 0 (no progress) and count */
	assert_int_equal(FG(n_up), 5);
	char lf[512];
	size_t len;
	snprintf(lf, sizeof(lf), "%s/lost+found/dir/.hidden", dir);
	char *s = slurp(lf, &len);
	assert_non_null(s);
	free(s);
	wait_events(1);
	assert_int_equal(D.ev[0].err, -EIO);
}

/* -EIO on every data POST, but each resumes further: never given up. */
static void eio_with_progress_never_gives_up(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b;
	char big[4097], m[33];

	memset(big, 'p', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	c.max_attempts = 2;
	q_start(&c);
	pthread_mutex_lock(&F.m);
	F.cut_half = true;
	pthread_mutex_unlock(&F.m);
	push(F.up_err, &F.n_up_err, -EIO, 8);
	/* and -EIO before any byte is sent (5xx on allocate): never counted either */
	push(F.alloc_err, &F.n_alloc_err, -EIO, 6);
	assert_int_equal(upload_enqueue(Q, mk_item(&b, 1, 1, "cut.bin", big)), 0);
	assert_int_equal(upload_wait(Q, 1, 1), 0);
	assert_int_equal(FG(n_up), 9);
	assert_int_equal(FG(bytes_in), 4096);
	fake_md5("cut.bin", m);
	assert_string_equal(m, b.it.md5);
	assert_int_equal(upload_given_up(Q), 0);
}

/* Revisions stored at @path by completed data POSTs. */
static int fake_revisions(const char *path)
{
	pthread_mutex_lock(&F.m);
	struct ffile *f = ff_find(path);
	int n = f ? f->revisions : 0;
	pthread_mutex_unlock(&F.m);
	return n;
}

/*
 * The data POST stored everything, then its answer was lost (-EIO: a cut
 * connection; -ETIMEDOUT). The path is stat'ed before allocating again: a
 * COMPLETED current revision with our size and MD5 is done, so the bytes
 * are not stored twice (the fake, like the emulator with dedup off, would
 * hand out a fresh upload: a second revision). What did not land, or a stat
 * that fails, is retried as before.
 */
static void lost_answer_is_not_uploaded_twice(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b1, b2, b3, b4, b5;
	char m[33];

	c.max_attempts = 2;
	q_start(&c);
	pthread_mutex_lock(&F.m);
	F.no_dedup = true;
	pthread_mutex_unlock(&F.m);

	/* 1. -EIO after the service stored it: done, one allocate, one POST */
	push(F.lost_err, &F.n_lost_err, -EIO, 1);
	assert_int_equal(upload_enqueue(Q, mk_item(&b1, 1, 1, "lost.bin", "stored, answer lost")), 0);
	assert_int_equal(upload_wait(Q, 1, 1), 0);
	assert_int_equal(FG(n_alloc), 1);
	assert_int_equal(FG(n_up), 1);
	assert_int_equal(FG(n_stat), 1);        /* the check after -EIO (a new file needs no
						 * conflict check: REJECT_CONFLICTS) */
	assert_int_equal(fake_revisions("lost.bin"), 1);
	wait_events(1);
	assert_int_equal(D.ev[0].err, 0);
	assert_string_equal(D.ev[0].path, "lost.bin");
	assert_int_equal(upload_given_up(Q), 0);

	/* 2. the same for a timeout */
	push(F.lost_err, &F.n_lost_err, -ETIMEDOUT, 1);
	assert_int_equal(upload_enqueue(Q, mk_item(&b2, 2, 1, "slow.bin", "stored, no answer")), 0);
	assert_int_equal(upload_wait(Q, 2, 1), 0);
	assert_int_equal(FG(n_alloc), 2);
	assert_int_equal(FG(n_up), 2);
	assert_int_equal(fake_revisions("slow.bin"), 1);

	/* 3. -EIO that did NOT land (cut mid-body): stat says no, retried */
	push(F.up_err, &F.n_up_err, -EIO, 1);
	assert_int_equal(upload_enqueue(Q, mk_item(&b3, 3, 1, "cut.bin", "cut before the end")), 0);
	assert_int_equal(upload_wait(Q, 3, 1), 0);
	assert_int_equal(FG(n_alloc), 4);
	assert_int_equal(FG(n_up), 4);
	assert_int_equal(FG(n_stat), 1 + 1 + 1); /* the check after the cut */
	assert_int_equal(fake_revisions("cut.bin"), 1);
	fake_md5("cut.bin", m);
	assert_string_equal(m, b3.it.md5);

	/* 4. lost answer, and the stat after it fails: retried (here: stored twice) */
	push(F.stat_err, &F.n_stat_err, -ETIMEDOUT, 1);
	push(F.lost_err, &F.n_lost_err, -EIO, 1);
	assert_int_equal(upload_enqueue(Q, mk_item(&b4, 4, 1, "blind.bin", "cannot tell")), 0);
	assert_int_equal(upload_wait(Q, 4, 1), 0);
	assert_int_equal(FG(n_up), 6);
	assert_int_equal(fake_revisions("blind.bin"), 2);

	/* 5. a conflict upload: the check looks at the conflict name it went to */
	fake_put("c.txt", "theirs");
	mk_item(&b5, 5, 1, "c.txt", "mine");
	snprintf(b5.it.base_md5, sizeof(b5.it.base_md5), "%s", "00000000000000000000000000000000");
	b5.it.base_size = 3;
	push(F.lost_err, &F.n_lost_err, -EIO, 1);
	assert_int_equal(upload_enqueue(Q, &b5.it), 0);
	assert_int_equal(upload_wait(Q, 5, 1), 0);
	assert_int_equal(FG(n_up), 7);
	wait_events(5);
	assert_int_equal(D.ev[4].err, 0);
	assert_non_null(strstr(D.ev[4].path, "c (conflict "));
	assert_int_equal(fake_revisions(D.ev[4].path), 1);
	fake_md5("c.txt", m);
	char theirs[33];
	unit_md5("theirs", 6, theirs);
	assert_string_equal(m, theirs);
	assert_int_equal(upload_given_up(Q), 0);
}

static void content_missing(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b;

	q_open(&c);
	assert_int_equal(upload_enqueue(Q, mk_item(&b, 1, 1, "m.txt", "soon gone")), 0);
	assert_int_equal(unlink(b.file), 0);
	assert_int_equal(upload_start(Q), 0);
	assert_int_equal(upload_wait(Q, 1, 1), -EIO);
	assert_int_equal(FG(n_alloc), 0);
	wait_events(1);
	assert_int_equal(D.ev[0].err, -ENOENT);
}

static void content_changed_underneath(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b1, b2, b3;
	char m[33], want[33];

	c.write_back_ms = 60000;
	q_start(&c);
	/* touched only: same bytes, new mtime: uploaded as recorded */
	assert_int_equal(upload_enqueue(Q, mk_item(&b1, 1, 1, "t1", "same bytes")), 0);
	age_file(b1.file, 100);
	/* rewritten and quiet for long (as after a crash): the current content is adopted */
	assert_int_equal(upload_enqueue(Q, mk_item(&b2, 2, 1, "t2", "recorded")), 0);
	unit_put_file(b2.file, "rewritten later", 15);
	age_file(b2.file, 100);
	assert_int_equal(upload_wait(Q, 1, 1), 0);
	assert_int_equal(upload_wait(Q, 2, 1), 0);
	fake_md5("t1", m);
	assert_string_equal(m, b1.it.md5);
	fake_md5("t2", m);
	unit_md5("rewritten later", 15, want);
	assert_string_equal(m, want);
	/* rewritten just now (a writer is busy with it): not uploaded yet */
	assert_int_equal(upload_enqueue(Q, mk_item(&b3, 3, 1, "t3", "recorded")), 0);
	unit_put_file(b3.file, "being written", 13);
	struct timespec ts[2];
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec += 1;
	ts[1] = ts[0];
	utimensat(AT_FDCWD, b3.file, ts, 0);   /* distinct from the recorded mtime */
	assert_int_equal(upload_drain(Q, 1), -ETIMEDOUT);
	fake_md5("t3", m);
	assert_string_equal(m, "");
	assert_true(upload_pending(Q, 3));
}

static void keyrejected_pauses(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b;

	c.max_attempts = 1;
	c.backoff_max_ms = 60000;               /* the pause lasts long... */
	q_start(&c);
	push(F.alloc_err, &F.n_alloc_err, -EKEYREJECTED, 1);
	assert_int_equal(upload_enqueue(Q, mk_item(&b, 1, 1, "p.txt", "paused")), 0);
	int64_t end = clock_mono_ms() + 5000;
	while (FG(n_alloc) < 1 && clock_mono_ms() < end)
		unit_sleep_ms(2);
	struct upload_state us = { .running = true };
	while (upload_state(Q, 1, &us) == 0 && us.running && clock_mono_ms() < end)
		unit_sleep_ms(2);
	assert_false(us.running);
	/* not synchronisation: 5 times backoff_max_ms, in which a retry (were
	 * one scheduled) would have run */
	unit_sleep_ms(100);
	assert_int_equal(FG(n_alloc), 1);         /* nothing tried while paused */
	assert_true(upload_pending(Q, 1));      /* and nothing given up */
	assert_int_equal(upload_given_up(Q), 0);
	upload_resume(Q);                       /* ...unless the login is renewed */
	assert_int_equal(upload_wait(Q, 1, 1), 0);
	assert_int_equal(FG(n_alloc), 2);
}

static void drain(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b;
	unsigned files;
	int64_t bytes;

	c.write_back_ms = 60000;               /* drain starts delayed uploads at once */
	q_start(&c);
	fake_block(true);
	assert_int_equal(upload_enqueue(Q, mk_item(&b, 1, 1, "d.bin", "0123456789")), 0);
	int64_t t0 = clock_mono_ms();
	assert_int_equal(upload_drain(Q, 1), -ETIMEDOUT);
	assert_true(clock_mono_ms() - t0 >= 900);
	upload_stats(Q, &files, &bytes);
	assert_int_equal(files, 1);
	assert_int_equal(bytes, 10);
	fake_block(false);
	assert_int_equal(upload_drain(Q, 5), 0);
	upload_stats(Q, &files, &bytes);
	assert_int_equal(files, 0);
	assert_int_equal(bytes, 0);
}

static void many_parallel(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b;

	c.transfers = 8;
	q_start(&c);
	push(F.up_err, &F.n_up_err, -EIO, 5);
	for (int i = 1; i <= 60; i++) {
		char p[32], content[32];
		snprintf(p, sizeof(p), "many/f%02d", i);
		snprintf(content, sizeof(content), "content %d", i);
		assert_int_equal(upload_enqueue(Q, mk_item(&b, (uint64_t)i, 1, p, content)), 0);
	}
	assert_int_equal(upload_drain(Q, 20), 0);
	wait_events(60);
	for (int i = 1; i <= 60; i++) {
		char p[32], m[33], want[33], content[32];
		snprintf(p, sizeof(p), "many/f%02d", i);
		snprintf(content, sizeof(content), "content %d", i);
		unit_md5(content, strlen(content), want);
		fake_md5(p, m);
		assert_string_equal(m, want);
	}
	assert_int_equal(FG(n_up), 65);
}

static void malformed_row(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b;
	char file[300], *s;
	sqlite3 *db;

	q_open(&c);
	assert_int_equal(upload_enqueue(Q, mk_item(&b, 2, 1, "good.txt", "good")), 0);
	upload_close(Q);
	Q = NULL;
	snprintf(file, sizeof(file), "%s/journal.db", dir);
	assert_int_equal(sqlite3_open(file, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO upload (id, gen, path, content_file, size,"
				      " md5, created, modified, base_md5, base_size, file_ino,"
				      " file_mtime_ns) VALUES (1, 1, '/abs', 'x', 1, 'short', 0, 0,"
				      " '', -1, 0, 0)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	q_start(&c);
	assert_int_equal(upload_wait(Q, 2, 1), 0);
	assert_false(upload_pending(Q, 1));
	s = journal_get("SELECT state FROM upload WHERE id = 1");
	assert_string_equal(s, "given-up");
	free(s);
}

static void bad_input(void **state)
{
	struct upload_config c = cfg_default();
	struct itembuf b;

	q_open(&c);
	mk_item(&b, 1, 1, "ok", "x");
	b.it.md5[3] = 'G';
	assert_int_equal(upload_enqueue(Q, &b.it), -EINVAL);
	mk_item(&b, 1, 1, "/abs", "x");
	assert_int_equal(upload_enqueue(Q, &b.it), -EINVAL);
	mk_item(&b, 1, 1, "ok", "x");
	b.it.size = 2;                          /* not the content file's size */
	assert_int_equal(upload_enqueue(Q, &b.it), -ESTALE);     /* changed since */
	mk_item(&b, 1, 1, "ok", "x");
	b.it.content_file = "/nonexistent/file";
	assert_int_equal(upload_enqueue(Q, &b.it), -ENOENT);
	assert_false(upload_pending(Q, 1));

	struct upload_config bad = c;
	struct upload_queue *q2;
	bad.cache_dir = "relative";
	assert_int_equal(upload_open(&bad, &q2), -EINVAL);
}

int main(void)
{
	struct CMUnitTest tests[] = {
		unit_test_alone(conflict_names),
		unit_test_alone(backoff_bounds),
		cmocka_unit_test(journal_durable),
		cmocka_unit_test(journal_survives_kill),
		cmocka_unit_test(journal_restores_inline_content),
		cmocka_unit_test(journal_inline_follows_generation),
		cmocka_unit_test(journal_v1_migrates),
		cmocka_unit_test(supersede),
		cmocka_unit_test(supersede_running),
		cmocka_unit_test(big_file_starts_sooner),
		cmocka_unit_test(base_follows_own_upload),
		cmocka_unit_test(base_follows_before_callback),
		cmocka_unit_test(cancel),
		cmocka_unit_test(rename_pending),
		cmocka_unit_test(rename_running),
		cmocka_unit_test(rename_over_existing),
		cmocka_unit_test(conflicts),
		cmocka_unit_test(conflict_name_sticks),
		cmocka_unit_test(retries_transient),
		cmocka_unit_test(resume_after_cut),
		cmocka_unit_test(resume_after_close_mid_transfer),
		cmocka_unit_test(give_up_refused_name),
		cmocka_unit_test(new_file_conflict_found_by_the_service),
		cmocka_unit_test(rename_revives_given_up),
		cmocka_unit_test(give_up_corrupt),
		cmocka_unit_test(eio_with_progress_never_gives_up),
		cmocka_unit_test(lost_answer_is_not_uploaded_twice),
		cmocka_unit_test(content_missing),
		cmocka_unit_test(content_changed_underneath),
		cmocka_unit_test(keyrejected_pauses),
		cmocka_unit_test(drain),
		cmocka_unit_test(many_parallel),
		cmocka_unit_test(malformed_row),
		cmocka_unit_test(bad_input),
	};

	upload_test_log();
	return UNIT_MAIN_FIXTURE(tests, NULL, NULL, setup, teardown);
}
