/*
 * Unit tests of the small shared pieces in lib/: clock, md5, backoff, utf8,
 * buf and fsutil (issue 13, item 5).
 */
#include <stddef.h>
#include <stdint.h>
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/backoff.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/fsutil.h"
#include "lib/md5.h"
#include "lib/utf8.h"

static void test_clock(void **state)
{
	(void)state;
	int64_t a = clock_mono_ms();
	double s = clock_mono();
	assert_true(a > 0 && s > 0);
	assert_true(clock_mono_ms() >= a);

	/* A monotonic condition times out at a monotonic deadline. */
	pthread_cond_t c;
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	assert_int_equal(clock_cond_init(&c), 0);
	struct timespec dl = clock_deadline_ms(20);
	pthread_mutex_lock(&m);
	int rc;
	while ((rc = pthread_cond_timedwait(&c, &m, &dl)) == 0)
		;
	pthread_mutex_unlock(&m);
	assert_int_equal(rc, ETIMEDOUT);
	assert_true(clock_mono_ms() - a >= 20);
	pthread_cond_destroy(&c);

	struct timespec z = clock_deadline_ms(-5), now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	assert_true(z.tv_sec <= now.tv_sec);
	struct timespec n = clock_deadline_ms(1999);
	assert_true(n.tv_nsec >= 0 && n.tv_nsec < 1000000000L);
}

static void test_md5(void **state)
{
	(void)state;
	assert_true(md5_hex_valid("d41d8cd98f00b204e9800998ecf8427e"));
	assert_false(md5_hex_valid("D41D8CD98F00B204E9800998ECF8427E"));
	assert_false(md5_hex_valid("d41d8cd98f00b204e9800998ecf8427"));
	assert_false(md5_hex_valid("d41d8cd98f00b204e9800998ecf8427e0"));
	assert_false(md5_hex_valid(NULL));
	assert_false(md5_hex_valid(""));

	char tmpl[] = "/tmp/test_lib_md5_XXXXXX", out[33];
	int fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	unlink(tmpl);
	assert_int_equal(md5_fd(fd, out, NULL), 0);
	assert_string_equal(out, "d41d8cd98f00b204e9800998ecf8427e");
	assert_int_equal(pwrite(fd, "abc", 3, 0), 3);
	assert_int_equal(md5_fd(fd, out, NULL), 0);
	assert_string_equal(out, "900150983cd24fb0d6963f7d28e17f72");
	/* a hole of 1 MiB then "x": hashed as zeros */
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(pwrite(fd, "x", 1, 1 << 20), 1);
	char *zeros = calloc(1, (1 << 20) + 1);
	assert_non_null(zeros);
	zeros[1 << 20] = 'x';
	int fd2 = open("/tmp", O_TMPFILE | O_RDWR, 0600);
	assert_true(fd2 >= 0);
	assert_int_equal(write(fd2, zeros, (1 << 20) + 1), (1 << 20) + 1);
	char out2[33];
	assert_int_equal(md5_fd(fd, out, NULL), 0);
	assert_int_equal(md5_fd(fd2, out2, NULL), 0);
	assert_string_equal(out, out2);
	atomic_bool cancel = true;
	assert_int_equal(md5_fd(fd, out, &cancel), -ECANCELED);
	free(zeros);
	close(fd2);
	close(fd);
	assert_int_equal(md5_fd(-1, out, NULL), -EBADF);
}

static void test_backoff(void **state)
{
	(void)state;
	assert_int_equal(backoff_ceiling_ms(0, 100, 16000), 100);
	assert_int_equal(backoff_ceiling_ms(3, 100, 16000), 800);
	assert_int_equal(backoff_ceiling_ms(20, 100, 16000), 16000);
	assert_int_equal(backoff_ceiling_ms(1000, INT64_MAX / 2 + 1, INT64_MAX), INT64_MAX);
	assert_int_equal(backoff_ceiling_ms(2, 0, 0), 1);       /* min at least 1, max at least min */
	assert_int_equal(backoff_ceiling_ms(2, 500, 100), 500);
	uint64_t a = rng_u64(), b = rng_u64();
	assert_true(a != b);
}

static void test_utf8(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		size_t n;
		uint32_t cp;
	} ok[] = {
		{ "A", 1, 0x41 }, { "\xc3\xa5", 2, 0xe5 }, { "\xef\xbc\x8e", 3, 0xff0e },
		{ "\xf0\x9f\x98\x80", 4, 0x1f600 }, { "\xf4\x8f\xbf\xbf", 4, 0x10ffff },
	};
	static const char *bad[] = {
		"\x80", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf0\x80\x80\xaf",
		"\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff", "\xc3", "\xe2\x82", "\xc3\x41",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint32_t cp = 0;
		char enc[4];
		size_t len = strlen(ok[i].s);
		assert_int_equal(utf8_decode((const unsigned char *)ok[i].s, len, &cp), ok[i].n);
		assert_int_equal(cp, ok[i].cp);
		assert_int_equal(utf8_encode(cp, enc), ok[i].n);
		assert_memory_equal(enc, ok[i].s, ok[i].n);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint32_t cp;
		assert_int_equal(utf8_decode((const unsigned char *)bad[i], strlen(bad[i]), &cp), 0);
	}
}

static void test_buf(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 0);
	char *s = buf_take(&b);
	assert_string_equal(s, "");
	free(s);
	assert_int_equal(buf_adds(&b, "/jfs/"), 0);
	assert_int_equal(buf_printf(&b, "%s-%d", "dev", 42), 0);
	assert_int_equal(buf_add(&b, "xyz", 2), 0);
	assert_int_equal(b.len, 13);
	s = buf_take(&b);
	assert_string_equal(s, "/jfs/dev-42xy");
	free(s);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(buf_adds(&b, "0123456789"), 0);
	assert_int_equal(b.len, 10000);
	buf_free(&b);

	buf_init(&b, 8);
	assert_int_equal(buf_adds(&b, "12345678"), 0);
	assert_int_equal(buf_adds(&b, "9"), -E2BIG);
	assert_int_equal(buf_adds(&b, ""), -E2BIG);     /* sticky */
	assert_null(buf_take(&b));
	assert_int_equal(b.err, 0);                     /* reusable */
	assert_int_equal(buf_printf(&b, "%09d", 1), -E2BIG);
	buf_free(&b);
}

static void test_file_read_max(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_lib_fs_XXXXXX", path[64], link[64];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/f", dir);
	snprintf(link, sizeof(link), "%s/l", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("hello", f);
	fclose(f);
	assert_int_equal(symlink(path, link), 0);

	char *out;
	size_t len = 0;
	assert_int_equal(file_read_max(path, 5, &out, &len), 0);
	assert_string_equal(out, "hello");
	assert_int_equal(len, 5);
	free(out);
	assert_int_equal(file_read_max(path, 4, &out, NULL), -EFBIG);
	assert_null(out);
	assert_int_equal(file_read_max(link, 100, &out, NULL), -ELOOP);
	assert_int_equal(file_read_max(dir, 100, &out, NULL), -EINVAL);
	snprintf(link, sizeof(link), "%s/missing", dir);
	assert_int_equal(file_read_max(link, 100, &out, NULL), -ENOENT);

	/* through an fd: from offset 0 whatever the file offset, which stays */
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(lseek(fd, 3, SEEK_SET), 3);
	assert_int_equal(fd_read_max(fd, 5, &out, &len), 0);
	assert_string_equal(out, "hello");
	free(out);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 3);
	assert_int_equal(fd_read_max(fd, 4, &out, NULL), -EFBIG);
	close(fd);
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(fd_read_max(p[0], 100, &out, NULL), -EINVAL);
	close(p[0]);
	close(p[1]);

	snprintf(link, sizeof(link), "%s/l", dir);
	unlink(link);
	unlink(path);
	rmdir(dir);
}

UNIT_TEST_PROGRAM(NULL, NULL,
	cmocka_unit_test(test_clock),
	cmocka_unit_test(test_md5),
	cmocka_unit_test(test_backoff),
	cmocka_unit_test(test_utf8),
	cmocka_unit_test(test_buf),
	cmocka_unit_test(test_file_read_max),
)
