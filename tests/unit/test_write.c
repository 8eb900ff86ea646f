/*
 * tests/unit/test_write.c — the write path (cache/write.h) without FUSE:
 * create, write, commit, fsync, rename, unlink, mkdir, rmdir and the name
 * rules, driven through the writer's interface against the emulator
 * (tests/emulator/jottaemu, started on a free port with a temporary data
 * directory), with the real index, content cache, lister and upload queue
 * underneath. What the service holds afterwards is read from the
 * emulator's own record.
 *
 * Needs python3 (the emulator); JOTTAEMU overrides the emulator's path.
 * If it cannot start, the tests fail: they never skip. Never hangs
 * (tests/unit/watchdog.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include "unit.h"
#include <openssl/evp.h>

#include "auth/auth.h"
#include "cache/data.h"
#include "cache/lister.h"
#include "cache/meta.h"
#include "cache/upload.h"
#include "cache/write.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "net/http.h"
#include "net/jfs.h"
#include "watchdog.h"

#define EMU_USER "writetest"
#define EMU_TMP "test_write"
#include "emu_fixture.h"

#define TEST_DEADLINE_S 120

/* The md5 of the live file at @path on the emulator ("" when there is
 * none: never there, or deleted). */
static void live_md5(const char *path, char out[33])
{
	cJSON *t = emu("GET", "tree?user=" EMU_USER, NULL), *e;

	out[0] = '\0';
	cJSON_ArrayForEach(e, t) {
		cJSON *p = cJSON_GetObjectItem(e, "path"), *d = cJSON_GetObjectItem(e, "deleted");
		cJSON *m = cJSON_GetObjectItem(e, "md5");
		if (!cJSON_IsString(p) || strcmp(p->valuestring, path) != 0)
			continue;
		if (d && !cJSON_IsNull(d) && !cJSON_IsFalse(d))
			continue;
		snprintf(out, 33, "%s", cJSON_IsString(m) ? m->valuestring : "-");
	}
	cJSON_Delete(t);
}

/* ---- the write path under test: index, content cache, lister, queue ---- */

static struct {
	struct meta *meta;
	struct dcache *dc;
	struct lister *ls;
	struct writer *w;
	struct upload_queue *q;
	atomic_int uploaded, trashed;
} W;

static void on_uploaded(void *ctx, uint64_t id, int err, const char *server_path)
{
	(void)ctx;
	(void)id;
	(void)err;
	(void)server_path;
	atomic_fetch_add(&W.uploaded, 1);
}

static void on_trashed(void *ctx)
{
	(void)ctx;
	atomic_fetch_add(&W.trashed, 1);
}

static int setup(void **state)
{
	static int n;
	char dir[400], path[450];

	(void)state;
	watchdog_arm(TEST_DEADLINE_S);
	memset(&W, 0, sizeof(W));
	snprintf(dir, sizeof(dir), "%s/cache%d", E.root, ++n);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/index.db", dir);
	assert_int_equal(meta_open(path, EMU_USER "/Jotta/Archive", &W.meta), 0);
	snprintf(path, sizeof(path), "%s/data", dir);
	struct dcache_config dc = { .dir = path, .meta = W.meta, .jfs = E.jfs, .fetch_threads = 2 };
	assert_int_equal(dcache_new(&dc, &W.dc), 0);
	assert_int_equal(dcache_start(W.dc), 0);
	struct lister_config lc = { .jfs = E.jfs, .meta = W.meta, .root_id = META_ROOT_ID,
				    .dir_cache_time = 60, .session_gen = meta_gen_next(W.meta),
				    .threads = 1 };
	assert_int_equal(lister_new(&lc, &W.ls), 0);
	assert_int_equal(lister_start(W.ls), 0);
	struct writer_config wc = { .meta = W.meta, .dc = W.dc, .ls = W.ls, .jfs = E.jfs,
				    .root_id = META_ROOT_ID, .uploaded = on_uploaded,
				    .trashed = on_trashed };
	assert_int_equal(writer_new(&wc, &W.w), 0);
	/* The default write-back delay (2 s): a rename or unlink right after
	 * a commit finds the upload pending, as after a close() in a mount. */
	struct upload_config uc = { .cache_dir = dir, .jfs = E.jfs, .transfers = 2,
				    .done = writer_upload_done, .done_ctx = W.w };
	assert_int_equal(upload_open(&uc, &W.q), 0);
	writer_set_queue(W.w, W.q);
	assert_int_equal(upload_start(W.q), 0);
	writer_recover(W.w);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	upload_close(W.q);              /* its done callback uses the writer */
	writer_free(W.w);
	dcache_stop(W.dc);
	lister_free(W.ls);
	dcache_free(W.dc);
	meta_close(W.meta, true);
	watchdog_arm(0);
	return 0;
}

/* Moves the bytes of a write from a buffer into the cache file. */
static int copy_buf(void *ctx, int fd, int64_t off, size_t len, size_t *done)
{
	ssize_t n = pwrite(fd, ctx, len, off);

	if (n < 0)
		return -errno;
	*done = (size_t)n;
	return 0;
}

static void md5_of(const char *s, char out[33])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	EVP_Digest(s, strlen(s), d, &n, EVP_md5(), NULL);
	for (unsigned i = 0; i < 16; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* A folder @name in the root: its node id. */
static uint64_t mkdir_root(const char *name)
{
	struct meta_attr a;

	assert_int_equal(writer_mkdir(W.w, META_ROOT_ID, name, &a), 0);
	assert_true(a.is_dir);
	return a.id;
}

/* Create @name in @pid with @text, commit it (as close() does): its id.
 * The content stays open when @df is given, else it is closed. */
static uint64_t put(uint64_t pid, const char *name, const char *text, struct dfile **df)
{
	struct meta_attr a;
	struct dfile *f = NULL;
	size_t written = 0;

	assert_int_equal(writer_create(W.w, pid, name, &a, &f), 0);
	assert_int_equal(writer_write(W.w, f, a.id, 0, strlen(text), copy_buf, (void *)text,
				      &written), 0);
	assert_int_equal(written, strlen(text));
	assert_int_equal(writer_commit(W.w, f, a.id), 0);
	if (df)
		*df = f;
	else
		dcache_close(f);
	return a.id;
}

/* Wait until the index says node @id is clean (its done callback ran). */
static void wait_clean(uint64_t id)
{
	int64_t end = clock_mono_ms() + 10000;
	struct meta_attr a;

	for (;;) {
		assert_int_equal(meta_get(W.meta, id, &a), 0);
		if (!a.local)
			return;
		assert_true(clock_mono_ms() < end);
		unit_sleep_ms(5);
	}
}

/* The service holds @want under @to and nothing under @from (a move). */
static void live_moved(const char *from, const char *to, const char *want)
{
	char got[33];

	live_md5(to, got);
	assert_string_equal(got, want);
	live_md5(from, got);
	assert_string_equal(got, "");
}

/* ---- tests ---- */

/* create + write + commit journals the upload; fsync returns once the
 * service holds it; rename moves it there; unlink sends it to the trash. */
static void create_commit_rename_unlink(void **state)
{
	uint64_t dir = mkdir_root("t1"), id;
	struct meta_attr a;
	char want[33], got[33];

	(void)state;
	md5_of("hello, world\n", want);
	id = put(dir, "a.txt", "hello, world\n", NULL);
	assert_true(upload_pending(W.q, id));
	assert_int_equal(meta_get(W.meta, id, &a), 0);
	assert_true(a.local);
	assert_string_equal(a.md5, want);
	assert_int_equal(writer_fsync(W.w, NULL, id), 0);
	live_md5("t1/a.txt", got);
	assert_string_equal(got, want);
	wait_clean(id);
	assert_true(atomic_load(&W.uploaded) >= 1);

	assert_int_equal(writer_rename(W.w, dir, "a.txt", dir, "b.txt", false), 0);
	live_moved("t1/a.txt", "t1/b.txt", want);
	assert_int_equal(meta_lookup(W.meta, dir, "b.txt", &a), 0);
	assert_int_equal(a.id, id);
	assert_int_equal(meta_lookup(W.meta, dir, "a.txt", &a), -ENOENT);

	assert_int_equal(writer_unlink(W.w, dir, "b.txt"), 0);
	live_md5("t1/b.txt", got);
	assert_string_equal(got, "");
	assert_int_equal(meta_lookup(W.meta, dir, "b.txt", &a), -ENOENT);
	assert_true(atomic_load(&W.trashed) >= 1);
}

/* A file renamed while its upload waits: the upload follows it, nothing
 * lands under the old name. */
static void pending_upload_follows_rename(void **state)
{
	uint64_t dir = mkdir_root("t2"), id;
	char want[33];

	(void)state;
	md5_of("pending\n", want);
	id = put(dir, "c.txt", "pending\n", NULL);
	assert_true(upload_pending(W.q, id));
	assert_int_equal(writer_rename(W.w, dir, "c.txt", dir, "d.txt", false), 0);
	assert_int_equal(writer_fsync(W.w, NULL, id), 0);
	live_moved("t2/c.txt", "t2/d.txt", want);
}

/* A file unlinked while its upload waits: the upload is cancelled and the
 * service never holds it. */
static void unlink_cancels_pending_upload(void **state)
{
	uint64_t dir = mkdir_root("t3"), id;
	char got[33];

	(void)state;
	id = put(dir, "e.txt", "never uploaded\n", NULL);
	assert_true(upload_pending(W.q, id));
	assert_int_equal(writer_unlink(W.w, dir, "e.txt"), 0);
	assert_false(upload_pending(W.q, id));
	assert_int_equal(writer_fsync(W.w, NULL, id), 0);     /* cancelled: 0 */
	live_md5("t3/e.txt", got);
	assert_string_equal(got, "");
}

/* A rename over an existing file replaces it (POSIX), on the service too. */
static void rename_replaces_target(void **state)
{
	uint64_t dir = mkdir_root("t4"), a, b;
	struct meta_attr at;
	char want[33];

	(void)state;
	md5_of("new content\n", want);
	a = put(dir, "new.txt", "new content\n", NULL);
	b = put(dir, "old.txt", "old content\n", NULL);
	assert_int_equal(writer_fsync(W.w, NULL, a), 0);
	assert_int_equal(writer_fsync(W.w, NULL, b), 0);
	wait_clean(a);
	assert_int_equal(writer_rename(W.w, dir, "new.txt", dir, "old.txt", true), -EEXIST);
	assert_int_equal(writer_rename(W.w, dir, "new.txt", dir, "old.txt", false), 0);
	live_moved("t4/new.txt", "t4/old.txt", want);
	assert_int_equal(meta_lookup(W.meta, dir, "old.txt", &at), 0);
	assert_int_equal(at.id, a);
	assert_int_equal(meta_get(W.meta, b, &at), -ENOENT);
}

/* The name rules of the case-insensitive service, and the POSIX errors of
 * unlink, rmdir and rename. */
static void name_rules(void **state)
{
	uint64_t dir = mkdir_root("t5"), sub;
	struct meta_attr a;
	struct dfile *df = NULL;
	char longname[300];

	(void)state;
	put(dir, "x.txt", "x\n", NULL);
	assert_int_equal(writer_create(W.w, dir, "X.TXT", &a, &df), -EEXIST);
	assert_null(df);
	assert_int_equal(writer_mkdir(W.w, dir, "X.txt", &a), -EEXIST);
	memset(longname, 'n', 256);
	longname[256] = '\0';
	assert_int_equal(writer_create(W.w, dir, longname, &a, &df), -ENAMETOOLONG);

	assert_int_equal(writer_mkdir(W.w, dir, "sub", &a), 0);
	sub = a.id;
	put(sub, "f", "f\n", NULL);
	assert_int_equal(writer_rmdir(W.w, dir, "sub"), -ENOTEMPTY);
	assert_int_equal(writer_unlink(W.w, dir, "sub"), -EISDIR);
	assert_int_equal(writer_rmdir(W.w, dir, "x.txt"), -ENOTDIR);
	assert_int_equal(writer_rename(W.w, dir, "x.txt", dir, "sub", false), -EISDIR);
	assert_int_equal(writer_rename(W.w, dir, "sub", dir, "x.txt", false), -ENOTDIR);
	assert_int_equal(writer_unlink(W.w, dir, "nothing"), -ENOENT);

	/* A case-only rename of the entry itself is fine. */
	assert_int_equal(writer_rename(W.w, dir, "x.txt", dir, "X.txt", false), 0);
	assert_int_equal(meta_lookup(W.meta, dir, "X.txt", &a), 0);
	assert_int_equal(writer_unlink(W.w, sub, "f"), 0);
	assert_int_equal(writer_rmdir(W.w, dir, "sub"), 0);
	assert_int_equal(meta_get(W.meta, sub, &a), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(create_commit_rename_unlink, setup, teardown),
		cmocka_unit_test_setup_teardown(pending_upload_follows_rename, setup, teardown),
		cmocka_unit_test_setup_teardown(unlink_cancels_pending_upload, setup, teardown),
		cmocka_unit_test_setup_teardown(rename_replaces_target, setup, teardown),
		cmocka_unit_test_setup_teardown(name_rules, setup, teardown),
	};

	log_setup(getenv("WRITE_TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_ERR, false);
	if (getenv("WRITE_TEST_FILTER"))
		cmocka_set_test_filter(getenv("WRITE_TEST_FILTER"));
	return UNIT_MAIN(tests, group_setup, group_teardown);
}
