/*
 * tests/unit/test_upload_emu.c — cache/upload end to end against the
 * emulator (tests/emulator/jottaemu, started by this program on a free port
 * with a temporary data directory): instant upload, resume after a cut and
 * after kill -9, a 5xx burst plus an outage, CORRUPT, a refused name, and a
 * conflict. Real net/http, auth and net/jfs underneath; the network calls
 * are observed through a thin cfg->ops wrapper (resume positions).
 *
 * Needs python3 (the emulator); JOTTAEMU overrides the emulator's path
 * (default tests/emulator/jottaemu, relative to the source tree, where
 * `make unit` runs). If it cannot start, the tests fail: they never skip.
 * Never hangs (tests/unit/watchdog.h): the run fails at once when the
 * emulator dies, and when a test overruns TEST_DEADLINE_S; the emulator and
 * the kill -9 victim die with this program (PR_SET_PDEATHSIG).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
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
#include "cache/upload.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "net/http.h"
#include "net/jfs.h"
#include "watchdog.h"
#include "upload_test.h"

#define EMU_USER "uploadtest"
#define EMU_TMP "test_upload_emu"
#include "emu_fixture.h"

#define TEST_DEADLINE_S 180     /* per test; errors_then_outage alone may take 90 s */


/* ---- small helpers ---- */

/* @len pseudo-random bytes (seeded: reproducible, not dedup-able across seeds). */
static char *random_bytes(size_t len, unsigned seed)
{
	char *b = malloc(len);
	uint64_t x = 0x9E3779B97F4A7C15ULL * (seed + 1);
	assert_non_null(b);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (char)(x >> 24);
	}
	return b;
}

/* ---- the emulator ---- */

/* ---- the observed network calls ---- */

static struct {
	pthread_mutex_t m;
	int n_alloc, n_instant, n_up;
	int64_t resumes[256];
	int n_resumes;
} S = { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, { 0 }, 0 };

static int s_stat(void *ctx, const char *path, struct jfs_entry *e)
{
	return jfs_stat(ctx, path, e);
}

static void s_entry_release(void *ctx, struct jfs_entry *e)
{
	jfs_entry_release(e);
}

static int s_allocate(void *ctx, const struct jfs_alloc_req *req, struct jfs_alloc *a)
{
	int err = jfs_allocate(ctx, req, a);
	pthread_mutex_lock(&S.m);
	S.n_alloc++;
	if (!err && a->completed)
		S.n_instant++;
	pthread_mutex_unlock(&S.m);
	return err;
}

static void s_alloc_release(void *ctx, struct jfs_alloc *a)
{
	jfs_alloc_release(a);
}

static int s_upload(void *ctx, const char *url, int fd, int64_t resume_pos, int64_t size,
		    const char *md5, const atomic_bool *cancel)
{
	pthread_mutex_lock(&S.m);
	S.n_up++;
	if (S.n_resumes < 256)
		S.resumes[S.n_resumes++] = resume_pos;
	pthread_mutex_unlock(&S.m);
	return jfs_upload_cancellable(ctx, url, fd, resume_pos, size, md5, cancel, NULL);
}

static const struct upload_ops spy_ops = {
	s_stat, s_entry_release, s_allocate, s_alloc_release, s_upload, NULL, NULL,
};

static int spy(int *field)
{
	int v;
	pthread_mutex_lock(&S.m);
	v = *field;
	pthread_mutex_unlock(&S.m);
	return v;
}

static int64_t max_resume(void)
{
	int64_t m = -1;
	pthread_mutex_lock(&S.m);
	for (int i = 0; i < S.n_resumes; i++)
		if (S.resumes[i] > m)
			m = S.resumes[i];
	pthread_mutex_unlock(&S.m);
	return m;
}

/* ---- per-test fixture ---- */

static char cache[320];
static int test_no;

static int setup(void **state)
{
	upload_test_begin(TEST_DEADLINE_S);
	snprintf(cache, sizeof(cache), "%s/cache%d", E.root, ++test_no);
	knobs("{}");
	cJSON_Delete(emu("POST", "knobs/reset", "{}"));
	cJSON_Delete(emu("POST", "stats/reset", "{}"));
	pthread_mutex_lock(&S.m);
	S.n_alloc = S.n_instant = S.n_up = S.n_resumes = 0;
	pthread_mutex_unlock(&S.m);
	return 0;
}

static int teardown(void **state)
{
	upload_test_end();
	return 0;
}

/* Open the queue; its workers are started by q_open() (q_open_stopped():
 * not yet, so that what the journal holds can be looked at first). */
static void q_open_stopped(unsigned max_attempts)
{
	struct upload_ops ops = spy_ops;            /* copied by upload_open */
	struct upload_config c = {
		.cache_dir = cache, .jfs = E.jfs, .transfers = 4, .max_attempts = max_attempts,
		.done = on_done, .write_back_ms = -1, .backoff_min_ms = 50, .backoff_max_ms = 400,
		.ops = &ops,
	};
	ops.ctx = E.jfs;
	assert_int_equal(upload_open(&c, &Q), 0);
}

static void q_open(unsigned max_attempts)
{
	q_open_stopped(max_attempts);
	assert_int_equal(upload_start(Q), 0);
}

struct itembuf {
	struct upload_item it;
	char file[400];
	char path[600];
};

static struct upload_item *mk_item(struct itembuf *b, uint64_t id, const char *path,
				   const void *data, size_t len)
{
	memset(b, 0, sizeof(*b));
	mkdir(cache, 0700);
	snprintf(b->file, sizeof(b->file), "%s/c%llu", cache, (unsigned long long)id);
	snprintf(b->path, sizeof(b->path), "%s", path);
	unit_put_file(b->file, data, len);
	b->it.id = id;
	b->it.gen = 1;
	b->it.path = b->path;
	b->it.content_file = b->file;
	b->it.size = (int64_t)len;
	unit_md5(data, len, b->it.md5);
	b->it.created = b->it.modified = time(NULL) - 60;
	b->it.base_size = -1;
	return &b->it;
}

/* ---- tests ---- */

/* Content the service already holds: allocate says COMPLETED, no byte is sent. */
static void instant_upload(void **state)
{
	struct itembuf a, b;
	char *data = random_bytes(65536, 1), m[33];
	int revs;

	q_open(10);
	assert_int_equal(upload_enqueue(Q, mk_item(&a, 1, "inst/a.bin", data, 65536)), 0);
	assert_int_equal(upload_wait(Q, 1, 1), 0);
	assert_int_equal(stat_num("upload_bytes", NULL), 65536);
	assert_int_equal(upload_enqueue(Q, mk_item(&b, 2, "inst/b.bin", data, 65536)), 0);
	assert_int_equal(upload_wait(Q, 2, 1), 0);
	assert_int_equal(stat_num("instant_uploads", NULL), 1);
	assert_int_equal(stat_num("upload_bytes", NULL), 65536);   /* nothing more sent */
	assert_int_equal(spy(&S.n_up), 1);
	assert_int_equal(spy(&S.n_instant), 1);
	server_md5("inst/b.bin", m, &revs);
	assert_string_equal(m, b.it.md5);
	assert_int_equal(revs, 1);
	free(data);
}

/* Connections reset in the middle of the body: every retry resumes. */
static void resume_after_cut(void **state)
{
	const size_t size = 1 << 20;
	char *data = random_bytes(size, 2), m[33];
	struct itembuf a;
	int revs;
	int64_t end;

	q_open(10);
	knobs("{\"reset_rate\": 1.0, \"reset_kinds\": \"upload\"}");
	assert_int_equal(upload_enqueue(Q, mk_item(&a, 1, "cut/big.bin", data, size)), 0);
	end = clock_mono_ms() + 20000;
	while (spy(&S.n_up) < 3) {              /* two POSTs cut, a third under way */
		assert_true(clock_mono_ms() < end);
		unit_sleep_ms(5);
	}
	knobs("{\"reset_rate\": 0.0}");
	assert_int_equal(upload_wait(Q, 1, 1), 0);
	server_md5("cut/big.bin", m, &revs);
	assert_string_equal(m, a.it.md5);
	assert_int_equal(revs, 1);

	/* every attempt resumed where the service had stopped: never from 0 again */
	int64_t asked = 0, got = stat_num("upload_bytes", NULL);
	pthread_mutex_lock(&S.m);
	int n = S.n_resumes;
	int64_t r[256];
	memcpy(r, S.resumes, sizeof(r));
	pthread_mutex_unlock(&S.m);
	assert_true(n >= 3);
	assert_int_equal(r[0], 0);
	for (int i = 0; i < n; i++) {
		if (i > 0)
			assert_true(r[i] > r[i - 1]);
		asked += (int64_t)size - r[i];
	}
	if (getenv("UPLOAD_TEST_DEBUG"))
		fprintf(stderr, "resume_after_cut: asked to send %lld, the service got %lld, "
			"%lld upload requests for our %d\n", (long long)asked, (long long)got,
			(long long)stat_num("requests", "upload"), n);
	/*
	 * The service saw exactly our POSTs (net/http never lets libcurl re-send
	 * a cut upload on a fresh connection) and kept every byte it got, so
	 * each byte of the file crossed the wire once.
	 */
	assert_int_equal(stat_num("requests", "upload"), n);
	assert_int_equal(got, (int64_t)size);
	assert_true(got <= asked);
	free(data);
}

/* Wait (bounded) until this test's first @n upload POSTs have begun, then
 * @ms more: the body is on its way. */
static void upload_under_way(int n, int ms)
{
	int64_t end = clock_mono_ms() + 10000;
	while (spy(&S.n_up) < n) {
		assert_true(clock_mono_ms() < end);
		unit_sleep_ms(5);
	}
	unit_sleep_ms(ms); /* pacing: @ms into the body, not a wait for an event */
}

/*
 * unlink and rename of a file whose upload is running take effect mid-body:
 * upload_cancel() and upload_rename() return (no transfer of the file left)
 * within a few hundred ms, not once the rest of the body went out (16 s at
 * the bandwidth set here).
 */
static void cancel_mid_body(void **state)
{
	const size_t size = 32 << 20;
	char *data = random_bytes(size, 5), m[33];
	struct itembuf a, b;
	int64_t t0, dt_cancel, dt_rename, got, end;
	int revs;

	q_open(10);
	knobs("{\"bandwidth\": 2000000, \"bandwidth_kinds\": \"upload\"}");
	assert_int_equal(upload_enqueue(Q, mk_item(&a, 1, "mid/gone.bin", data, size)), 0);
	upload_under_way(1, 700);
	t0 = clock_mono_ms();
	assert_int_equal(upload_cancel(Q, 1), 0);
	dt_cancel = clock_mono_ms() - t0;
	assert_false(upload_pending(Q, 1));
	/*
	 * The service saw the POST end early. It counts once it has drained
	 * what the loopback socket buffers held (several MB, still at 2 MB/s),
	 * so that count is more than was sent in 700 ms, but far from all.
	 */
	end = clock_mono_ms() + 15000;
	while ((got = stat_num("upload_bytes", NULL)) == 0 && clock_mono_ms() < end)
		unit_sleep_ms(20);
	assert_true(got > 0);
	assert_true(got < (int64_t)size);

	assert_int_equal(upload_enqueue(Q, mk_item(&b, 2, "mid/old.bin", data, size)), 0);
	upload_under_way(2, 700);
	t0 = clock_mono_ms();
	assert_int_equal(upload_rename(Q, 2, "mid/new.bin", NULL), 0);
	dt_rename = clock_mono_ms() - t0;
	knobs("{\"bandwidth\": 0}");
	assert_int_equal(upload_wait(Q, 2, 1), 0);
	server_md5("mid/new.bin", m, &revs);
	assert_string_equal(m, b.it.md5);
	assert_int_equal(revs, 1);
	server_md5("mid/old.bin", m, NULL);
	assert_string_equal(m, "");                     /* never completed there */

	fprintf(stderr, "  upload_cancel mid-body returned in %lld ms, upload_rename in %lld ms "
		"(the service had %lld of %zu bytes)\n", (long long)dt_cancel,
		(long long)dt_rename, (long long)got, size);
	assert_true(dt_cancel < 1000);                  /* ~100 ms; slack for sanitizers */
	assert_true(dt_rename < 1000);
	free(data);
}

/* 503 on every allocate and upload, then an outage: everything arrives, once. */
static void errors_then_outage(void **state)
{
	struct itembuf it[8];
	char *data[8], path[64], m[33];
	int i, revs;
	int64_t end;

	q_open(3);                      /* low on purpose: none of this may count */
	knobs("{\"error_rate\": 1.0, \"error_status\": 503, \"error_kinds\": \"allocate,upload\"}");
	for (i = 0; i < 8; i++) {
		data[i] = random_bytes(20000, 10 + (unsigned)i);
		snprintf(path, sizeof(path), "storm/f%d.bin", i);
		assert_int_equal(upload_enqueue(Q, mk_item(&it[i], (uint64_t)i + 1, path, data[i],
							   20000)), 0);
	}
	end = clock_mono_ms() + 20000;
	while (stat_num("faults", "error") < 24) {       /* 3 rounds each */
		assert_true(clock_mono_ms() < end);
		unit_sleep_ms(20);
	}
	knobs("{\"error_rate\": 0.0, \"outage\": true}");
	unit_sleep_ms(1500); /* the outage's length (the scenario), not a wait */
	assert_true(stat_num("faults", "outage") > 0);
	knobs("{\"outage\": false}");
	assert_int_equal(upload_drain(Q, 60), 0);
	assert_int_equal(upload_given_up(Q), 0);
	for (i = 0; i < 8; i++) {
		snprintf(path, sizeof(path), "storm/f%d.bin", i);
		server_md5(path, m, &revs);
		assert_string_equal(m, it[i].it.md5);
		assert_int_equal(revs, 1);
		free(data[i]);
	}
}

/* The declared MD5 is not the content's: CORRUPT every time, then lost+found. */
static void corrupt_given_up(void **state)
{
	struct itembuf a;
	char lf[600], *data = random_bytes(30000, 3), m[33];
	struct stat sb;
	int revs;

	q_open(3);
	mk_item(&a, 1, "bad/corrupt.bin", data, 30000);
	unit_md5("something else", 14, a.it.md5);
	assert_int_equal(upload_enqueue(Q, &a.it), 0);
	assert_int_equal(upload_wait(Q, 1, 1), -EIO);
	assert_int_equal(upload_given_up(Q), 1);
	assert_true(spy(&S.n_up) >= 3 && spy(&S.n_up) <= 4);
	snprintf(lf, sizeof(lf), "%s/lost+found/bad/corrupt.bin", cache);
	assert_int_equal(stat(lf, &sb), 0);
	assert_int_equal(sb.st_size, 30000);
	server_md5("bad/corrupt.bin", m, &revs);
	assert_string_equal(m, "");                       /* never completed */
	free(data);
}

/* A name the service refuses (over 255 characters): lost+found, not endless retries. */
static void refused_name(void **state)
{
	struct itembuf a;
	char name[400], path[420], dirp[600];
	DIR *d;
	struct dirent *de;
	int found = 0;

	memset(name, 'n', 300);
	strcpy(name + 300, ".txt");
	snprintf(path, sizeof(path), "refused/%s", name);
	q_open(10);
	assert_int_equal(upload_enqueue(Q, mk_item(&a, 1, path, "keep me", 7)), 0);
	assert_int_equal(upload_wait(Q, 1, 1), -EIO);
	assert_int_equal(upload_given_up(Q), 1);
	int err = done_event(1, 0, NULL, 0);
	assert_true(err == -ENAMETOOLONG || err == -EINVAL);
	snprintf(dirp, sizeof(dirp), "%s/lost+found/refused", cache);
	d = opendir(dirp);
	assert_non_null(d);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		found++;
		assert_int_equal(strncmp(de->d_name, "nnnn", 4), 0);
		assert_string_equal(de->d_name + strlen(de->d_name) - 4, ".txt");
	}
	closedir(d);
	assert_int_equal(found, 1);
}

/* Someone else changed the file since our copy was opened: a conflict copy. */
static void conflict_copy(void **state)
{
	struct itembuf a;
	char m[33], theirs[33];
	int revs;

	cJSON_Delete(emu("POST", "seed", "{\"user\": \"%s\", \"entries\": [{\"path\": "
			 "\"conf/c.txt\", \"content\": \"theirs\"}]}", EMU_USER));
	q_open(10);
	mk_item(&a, 1, "conf/c.txt", "mine", 4);
	unit_md5("base", 4, a.it.base_md5);
	a.it.base_size = 4;
	assert_int_equal(upload_enqueue(Q, &a.it), 0);
	assert_int_equal(upload_wait(Q, 1, 1), 0);
	char landed[512];
	assert_int_equal(done_event(1, 0, landed, sizeof(landed)), 0);
	assert_int_equal(strncmp(landed, "conf/c (conflict ", 17), 0);
	unit_md5("theirs", 6, theirs);
	server_md5("conf/c.txt", m, &revs);
	assert_string_equal(m, theirs);
	assert_int_equal(revs, 1);
	server_md5(landed, m, NULL);
	assert_string_equal(m, a.it.md5);
}

/*
 * kill -9 of a process in the middle of a transfer: the next one resumes
 * from the service's resume_pos. The victim is this program re-executed
 * with --child (a fresh process image: no state shared with this one).
 */
static void kill9_resume(void **state)
{
	/* bigger than what loopback socket buffers hold: the kill really cuts */
	const size_t size = 24 << 20;
	char *data = random_bytes(size, 4), m[33], self[PATH_MAX], line[64];
	struct itembuf a;
	int p[2], revs;
	pid_t pid;
	ssize_t n;

	mk_item(&a, 1, "crash/big.bin", data, size);
	knobs("{\"bandwidth\": 4000000, \"bandwidth_kinds\": \"upload\"}");
	assert_true(readlink("/proc/self/exe", self, sizeof(self) - 1) > 0);
	self[readlink("/proc/self/exe", self, sizeof(self) - 1)] = '\0';
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char md5[33], sz[32];
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(p[1], 1);
		close(p[0]);
		snprintf(sz, sizeof(sz), "%zu", size);
		memcpy(md5, a.it.md5, 33);
		execl(self, self, "--child", E.url, E.cfgdir, cache, a.file, a.path, md5, sz,
		      (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	watchdog_victim(0, pid);
	struct pollfd pfd = { .fd = p[0], .events = POLLIN };
	if (poll(&pfd, 1, 30000) != 1)
		fail_msg("the kill -9 victim did not enqueue within 30 s");
	n = read(p[0], line, sizeof(line) - 1);  /* "enqueued": the record is durable */
	assert_true(n > 0);
	line[n] = '\0';
	assert_non_null(strstr(line, "enqueued"));
	unit_sleep_ms(1000); /* pacing, not a wait: some MB on their way when it is killed */
	kill(pid, SIGKILL);
	int st;
	waitpid(pid, &st, 0);
	watchdog_victim(0, 0);
	close(p[0]);
	assert_true(WIFSIGNALED(st));
	/* the service counts the bytes when it notices the dead connection */
	int64_t sent_before = 0, end = clock_mono_ms() + 10000;
	while ((sent_before = stat_num("upload_bytes", NULL)) == 0 && clock_mono_ms() < end)
		unit_sleep_ms(20);
	if (getenv("UPLOAD_TEST_DEBUG"))
		fprintf(stderr, "kill9_resume: the service got %lld bytes before the kill\n",
			(long long)sent_before);
	assert_true(sent_before > 0);
	assert_true(sent_before < (int64_t)size);
	knobs("{\"bandwidth\": 0}");

	/* the journal kept it (looked at before a worker can finish it) */
	q_open_stopped(10);
	assert_true(upload_pending(Q, 1));
	assert_int_equal(upload_start(Q), 0);
	assert_int_equal(upload_wait(Q, 1, 1), 0);
	assert_true(max_resume() > 0);
	server_md5("crash/big.bin", m, &revs);
	assert_string_equal(m, a.it.md5);
	assert_int_equal(revs, 1);
	assert_true(stat_num("upload_bytes", NULL) < 2 * (int64_t)size);
	free(data);
}

/* The kill -9 victim: enqueue one upload with the default (net/jfs) calls, then upload. */
static int child_main(char **argv)
{
	struct http_client *http;
	struct auth *a;
	struct jfs *j;
	struct upload_queue *q;
	struct upload_item it = { 0 };

	snprintf(E.url, sizeof(E.url), "%s", argv[2]);
	snprintf(E.jfs_url, sizeof(E.jfs_url), "%s/jfs", E.url);
	snprintf(E.cfgdir, sizeof(E.cfgdir), "%s", argv[3]);
	account_open(&http, &a, &j);
	struct upload_config c = { .cache_dir = argv[4], .jfs = j, .write_back_ms = -1 };
	if (upload_open(&c, &q) || upload_start(q))
		return 2;
	it.id = 1;
	it.gen = 1;
	it.content_file = argv[5];
	it.path = argv[6];
	snprintf(it.md5, sizeof(it.md5), "%s", argv[7]);
	it.size = strtoll(argv[8], NULL, 10);
	it.created = it.modified = time(NULL) - 60;
	it.base_size = -1;
	if (upload_enqueue(q, &it))
		return 3;
	printf("enqueued\n");
	fflush(stdout);
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	struct CMUnitTest tests[] = {
		cmocka_unit_test(instant_upload),
		cmocka_unit_test(resume_after_cut),
		cmocka_unit_test(cancel_mid_body),
		cmocka_unit_test(errors_then_outage),
		cmocka_unit_test(corrupt_given_up),
		cmocka_unit_test(refused_name),
		cmocka_unit_test(conflict_copy),
		cmocka_unit_test(kill9_resume),
	};

	upload_test_log();
	if (argc == 9 && strcmp(argv[1], "--child") == 0)
		return child_main(argv);
	return UNIT_MAIN_FIXTURE(tests, group_setup, group_teardown, setup, teardown);
}
