/*
 * tests/unit/unit.h — what the cmocka unit test programs share: the cmocka
 * prelude, scratch directories, millisecond sleeps and the main() that runs
 * a program's table of tests. Header-only (static inline): each test program
 * is one .c file linked against the library.
 *
 *   unit_tmpdir(buf, len, name)  make a private scratch directory
 *                                /tmp/name.XXXXXX into @buf; the test
 *                                fails if it cannot
 *   unit_rm_rf(path)             remove @path and everything below it
 *   unit_md5(data, len, out)     the MD5 of a buffer as 32 lower-case hex
 *   unit_put_file(path, data, len)
 *                                write @path (created or truncated), fsync
 *   unit_sleep_ms(ms)            sleep @ms milliseconds (pacing only: wait
 *                                for an event by polling what shows it)
 *   UNIT_MAIN(tests, setup, teardown)
 *                                run the table @tests with group fixtures
 *                                (NULL: none), SIGPIPE ignored (the fake
 *                                servers write to connections a cancelled
 *                                client closed); UNIT_TEST_FILTER=glob runs
 *                                the matching tests only
 *   UNIT_MAIN_FIXTURE(tests, gsetup, gteardown, setup, teardown)
 *                                the same, every test in @tests without a
 *                                fixture of its own run with (@setup,
 *                                @teardown); unit_test_alone(f) marks a
 *                                test that needs none
 *   UNIT_TEST_PROGRAM(setup, teardown, tests...)
 *                                the whole main() of a program without
 *                                group fixtures: its table, each test run
 *                                with (@setup, @teardown) unless it names
 *                                its own (NULL, NULL: none)
 */
#ifndef JOTTAFS_TESTS_UNIT_H
#define JOTTAFS_TESTS_UNIT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static inline void unit_tmpdir(char *buf, size_t len, const char *name)
{
	int n = snprintf(buf, len, "/tmp/%s.XXXXXX", name);
	assert_true(n > 0 && (size_t)n < len);
	assert_non_null(mkdtemp(buf));
}

static inline int unit_rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static inline void unit_rm_rf(const char *path)
{
	assert_int_equal(nftw(path, unit_rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static inline void unit_md5(const void *data, size_t len, char out[33])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	assert_int_equal(EVP_Digest(data, len, d, &n, EVP_md5(), NULL), 1);
	for (unsigned i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static inline void unit_put_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fsync(fd), 0);
	close(fd);
}

static inline void unit_sleep_ms(int64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
}

static inline int unit_main(const char *name, const struct CMUnitTest *tests, size_t n,
			    CMFixtureFunction setup, CMFixtureFunction teardown)
{
	signal(SIGPIPE, SIG_IGN);
	if (getenv("UNIT_TEST_FILTER"))
		cmocka_set_test_filter(getenv("UNIT_TEST_FILTER"));
	return _cmocka_run_group_tests(name, tests, n, setup, teardown);
}

#define UNIT_MAIN(tests, setup, teardown) \
	unit_main(#tests, tests, sizeof(tests) / sizeof((tests)[0]), setup, teardown)

static inline int unit_none(void **state)
{
	(void)state;
	return 0;
}

#define unit_test_alone(f) cmocka_unit_test_setup_teardown(f, unit_none, unit_none)

static inline int unit_main_fixture(const char *name, struct CMUnitTest *tests, size_t n,
				    CMFixtureFunction gsetup, CMFixtureFunction gteardown,
				    CMFixtureFunction setup, CMFixtureFunction teardown)
{
	for (size_t i = 0; i < n; i++)
		if (!tests[i].setup_func && !tests[i].teardown_func) {
			tests[i].setup_func = setup;
			tests[i].teardown_func = teardown;
		}
	return unit_main(name, tests, n, gsetup, gteardown);
}

#define UNIT_MAIN_FIXTURE(tests, gsetup, gteardown, setup, teardown)                 \
	unit_main_fixture(#tests, tests, sizeof(tests) / sizeof((tests)[0]), gsetup, \
			  gteardown, setup, teardown)

#define UNIT_TEST_PROGRAM(setup, teardown, ...)                                 \
	int main(void)                                                           \
	{                                                                        \
		struct CMUnitTest tests[] = { __VA_ARGS__ };                     \
		return UNIT_MAIN_FIXTURE(tests, NULL, NULL, setup, teardown);    \
	}

#endif
