/*
 * Unit tests of lib/privdir (directories only we can change, files opened
 * without following symlinks) and lib/secret (dump-excluded copies). Each
 * test works in its own directory under /tmp (root-owned, sticky); "another
 * user" is simulated by checking for a uid that is not ours, and, as root,
 * with chown.
 */
#include <stddef.h>
#include <stdint.h>
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/privdir.h"
#include "lib/secret.h"

struct fixture {
	char base[64];          /* /tmp/test_privdir.XXXXXX, 0700, ours */
	char real[PATH_MAX];    /* its resolved path */
	char msg[2 * PATH_MAX + 300];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	unit_tmpdir(f->base, sizeof(f->base), "test_privdir");
	assert_non_null(realpath(f->base, f->real));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	chmod(f->base, 0700);
	unit_rm_rf(f->base);
	free(f);
	return 0;
}

/* "<base>/<name>" in a static buffer of the caller's. */
static const char *at(struct fixture *f, char *buf, const char *name)
{
	snprintf(buf, PATH_MAX, "%s/%s", f->base, name);
	return buf;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode & 07777;
}

static void test_check_ok_and_resolved(void **state)
{
	struct fixture *f = *state;
	char d[PATH_MAX], l[PATH_MAX], want[PATH_MAX + 8];
	char *res = NULL;

	assert_int_equal(mkdir(at(f, d, "d"), 0700), 0);
	assert_int_equal(privdir_check(d, geteuid(), &res, f->msg, sizeof(f->msg)), 0);
	snprintf(want, sizeof(want), "%s/d", f->real);
	assert_string_equal(res, want);
	free(res);
	/* a symlink in the given path is followed once: the result is the target */
	assert_int_equal(symlink("d", at(f, l, "link")), 0);
	assert_int_equal(privdir_check(l, geteuid(), &res, f->msg, sizeof(f->msg)), 0);
	assert_string_equal(res, want);
	free(res);
	/* a directory our group or others may read is fine (only writing matters) */
	assert_int_equal(chmod(d, 0755), 0);
	assert_int_equal(privdir_check(d, geteuid(), NULL, f->msg, sizeof(f->msg)), 0);
}

static void test_check_missing_and_not_dir(void **state)
{
	struct fixture *f = *state;
	char p[PATH_MAX];
	char *res = (char *)"untouched";
	int fd;

	assert_int_equal(privdir_check(at(f, p, "nope"), geteuid(), &res, f->msg, sizeof(f->msg)),
			 -ENOENT);
	assert_null(res);
	assert_non_null(strstr(f->msg, "nope"));
	fd = open(at(f, p, "file"), O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(privdir_check(p, geteuid(), NULL, f->msg, sizeof(f->msg)), -ENOTDIR);
	assert_non_null(strstr(f->msg, "is not a directory"));
}

static void test_check_owner(void **state)
{
	struct fixture *f = *state;
	char d[PATH_MAX], want[PATH_MAX + 64];
	uid_t other = geteuid() + 4242;
	char *res = NULL;

	assert_int_equal(mkdir(at(f, d, "d"), 0700), 0);
	/* ours, but checked for someone else: refused, naming path, owner, mode */
	assert_int_equal(privdir_check(d, other, &res, f->msg, sizeof(f->msg)), -EPERM);
	assert_null(res);
	snprintf(want, sizeof(want), "'%s/d' belongs to uid %u", f->real, (unsigned)geteuid());
	assert_non_null(strstr(f->msg, want));
	assert_non_null(strstr(f->msg, "(mode 0700)"));
	assert_non_null(strstr(f->msg, "remove it, or use a directory of your own"));
	if (geteuid() != 0)
		return;
	/* as root: a directory another user owns, and one below their directory */
	assert_int_equal(chown(d, 4242, 4242), 0);
	assert_int_equal(privdir_check(d, 0, NULL, f->msg, sizeof(f->msg)), -EPERM);
	assert_non_null(strstr(f->msg, "belongs to uid 4242"));
	assert_non_null(strstr(f->msg, "not to uid 0"));
	assert_int_equal(mkdir(at(f, want, "d/mine"), 0700), 0);
	assert_int_equal(privdir_check(want, 0, NULL, f->msg, sizeof(f->msg)), -EPERM);
	assert_non_null(strstr(f->msg, "above"));
	assert_non_null(strstr(f->msg, "belongs to uid 4242"));
	/* ... which they own even when it is 0700: they can rename what is in it */
}

static void test_check_mode(void **state)
{
	struct fixture *f = *state;
	char d[PATH_MAX];

	assert_int_equal(mkdir(at(f, d, "d"), 0700), 0);
	assert_int_equal(chmod(d, 0777), 0);
	assert_int_equal(privdir_check(d, geteuid(), NULL, f->msg, sizeof(f->msg)), -EPERM);
	assert_non_null(strstr(f->msg, "writable by group and others (mode 0777)"));
	assert_non_null(strstr(f->msg, "chmod 700"));
	assert_int_equal(chmod(d, 0770), 0);
	assert_int_equal(privdir_check(d, geteuid(), NULL, f->msg, sizeof(f->msg)), -EPERM);
	assert_non_null(strstr(f->msg, "writable by group (mode 0770)"));
	assert_int_equal(chmod(d, 0702), 0);
	assert_int_equal(privdir_check(d, geteuid(), NULL, f->msg, sizeof(f->msg)), -EPERM);
	assert_non_null(strstr(f->msg, "writable by others"));
	/* sticky does not make our own directory safe to share */
	assert_int_equal(chmod(d, 01777), 0);
	assert_int_equal(privdir_check(d, geteuid(), NULL, f->msg, sizeof(f->msg)), -EPERM);
}

static void test_check_ancestors(void **state)
{
	struct fixture *f = *state;
	char d[PATH_MAX];

	assert_int_equal(mkdir(at(f, d, "a"), 0700), 0);
	assert_int_equal(mkdir(at(f, d, "a/b"), 0700), 0);
	assert_int_equal(mkdir(at(f, d, "a/b/c"), 0700), 0);
	assert_int_equal(privdir_check(d, geteuid(), NULL, f->msg, sizeof(f->msg)), 0);
	/* writable by others, above: refused, naming it */
	assert_int_equal(chmod(f->base, 0777), 0);
	assert_int_equal(privdir_check(d, geteuid(), NULL, f->msg, sizeof(f->msg)), -EPERM);
	assert_non_null(strstr(f->msg, f->real));
	assert_non_null(strstr(f->msg, "above"));
	assert_non_null(strstr(f->msg, "without the sticky bit (mode 0777)"));
	/* ... unless sticky, like /tmp */
	assert_int_equal(chmod(f->base, 01777), 0);
	assert_int_equal(privdir_check(d, geteuid(), NULL, f->msg, sizeof(f->msg)), 0);
	assert_int_equal(chmod(f->base, 0700), 0);
	/* group-writable in the middle */
	assert_int_equal(chmod(at(f, d, "a/b"), 0770), 0);
	assert_int_equal(privdir_check(at(f, d, "a/b/c"), geteuid(), NULL, f->msg,
				       sizeof(f->msg)), -EPERM);
	assert_non_null(strstr(f->msg, "/a/b', above"));
	/* "/" itself: no ancestors */
	if (geteuid() == 0)
		assert_int_equal(privdir_check("/", 0, NULL, f->msg, sizeof(f->msg)), 0);
}

static void test_make(void **state)
{
	struct fixture *f = *state;
	char d[PATH_MAX], want[PATH_MAX + 16];
	char *res = NULL;

	assert_int_equal(privdir_make(at(f, d, "x/y/z"), geteuid(), &res, f->msg,
				      sizeof(f->msg)), 0);
	snprintf(want, sizeof(want), "%s/x/y/z", f->real);
	assert_string_equal(res, want);
	free(res);
	assert_int_equal(mode_of(d), 0700);
	assert_int_equal(mode_of(at(f, d, "x")), 0700);
	/* readable by others: tightened */
	assert_int_equal(chmod(at(f, d, "x/y/z"), 0755), 0);
	assert_int_equal(privdir_make(d, geteuid(), NULL, f->msg, sizeof(f->msg)), 0);
	assert_int_equal(mode_of(d), 0700);
	/* writable by others: refused and left as it is */
	assert_int_equal(chmod(d, 0777), 0);
	assert_int_equal(privdir_make(d, geteuid(), NULL, f->msg, sizeof(f->msg)), -EPERM);
	assert_int_equal(mode_of(d), 0777);
	/* someone else's: refused */
	assert_int_equal(chmod(d, 0700), 0);
	assert_int_equal(privdir_make(d, geteuid() + 1, NULL, f->msg, sizeof(f->msg)), -EPERM);
}

static void test_open_file(void **state)
{
	struct fixture *f = *state;
	char p[PATH_MAX], t[PATH_MAX], h[PATH_MAX], buf[16] = "";
	int fd, dfd;

	/* created 0600 */
	fd = privdir_open_file(AT_FDCWD, at(f, p, "new"), O_RDWR | O_CREAT | O_EXCL, true);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	assert_int_equal(mode_of(p) & 0077, 0);
	/* a planted symlink: refused, its target untouched */
	fd = open(at(f, t, "target"), O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "precious", 8), 8);
	close(fd);
	assert_int_equal(symlink(t, at(f, p, "lock")), 0);
	assert_int_equal(privdir_open_file(AT_FDCWD, p, O_RDWR | O_CREAT, true), -ELOOP);
	assert_int_equal(privdir_open_file(AT_FDCWD, p, O_RDONLY, false), -ELOOP);
	fd = open(t, O_RDONLY);
	assert_int_equal(read(fd, buf, sizeof(buf) - 1), 8);
	close(fd);
	assert_string_equal(buf, "precious");
	/* relative to a directory fd too */
	dfd = open(f->base, O_RDONLY | O_DIRECTORY);
	assert_int_equal(privdir_open_file(dfd, "lock", O_RDWR | O_CREAT, false), -ELOOP);
	fd = privdir_open_file(dfd, "target", O_RDONLY, false);
	assert_true(fd >= 0);
	close(fd);
	/* a FIFO: refused at once (not blocked on), a directory too */
	assert_int_equal(mkfifo(at(f, p, "fifo"), 0600), 0);
	assert_int_equal(privdir_open_file(dfd, "fifo", O_RDONLY, false), -EINVAL);
	assert_int_equal(mkdir(at(f, p, "dir"), 0700), 0);
	assert_int_equal(privdir_open_file(dfd, "dir", O_RDONLY, false), -EINVAL);
	close(dfd);
	/* a second hard link: refused where a single link is required */
	assert_int_equal(link(t, at(f, h, "hard")), 0);
	assert_int_equal(privdir_open_file(AT_FDCWD, h, O_RDONLY, true), -EPERM);
	fd = privdir_open_file(AT_FDCWD, h, O_RDONLY, false);
	assert_true(fd >= 0);
	/* blocking again for ordinary use */
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	close(fd);
	/* someone else's file (as root) */
	if (geteuid() == 0) {
		assert_int_equal(chown(t, 4242, 4242), 0);
		assert_int_equal(privdir_open_file(AT_FDCWD, t, O_RDONLY, false), -EPERM);
	}
	/* messages */
	privdir_file_error("/c/lock", -ELOOP, buf, sizeof(buf));
	assert_int_equal(strlen(buf), sizeof(buf) - 1);
	{
		char m[300];
		assert_non_null(strstr(privdir_file_error("/c/lock", -ELOOP, m, sizeof(m)),
				       "'/c/lock' is a symbolic link"));
		assert_non_null(strstr(privdir_file_error("/c/x", -EPERM, m, sizeof(m)),
				       "not a plain file of yours"));
		assert_non_null(strstr(privdir_file_error("/c/x", -EACCES, m, sizeof(m)),
				       "cannot open '/c/x': Permission denied"));
	}
}

static void test_open_dir(void **state)
{
	struct fixture *f = *state;
	char p[PATH_MAX], t[PATH_MAX];
	int fd;

	fd = privdir_open_dir(AT_FDCWD, at(f, p, "data"));
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(mode_of(p), 0700);
	fd = privdir_open_dir(AT_FDCWD, p);     /* existing */
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(mkdir(at(f, t, "elsewhere"), 0700), 0);
	assert_int_equal(symlink(t, at(f, p, "link")), 0);
	fd = privdir_open_dir(AT_FDCWD, p);
	assert_true(fd == -ELOOP || fd == -ENOTDIR);
	assert_int_equal(chmod(t, 0777), 0);
	assert_int_equal(privdir_open_dir(AT_FDCWD, t), -EPERM);
}

static void test_sqlite_files(void **state)
{
	struct fixture *f = *state;
	char db[PATH_MAX], p[PATH_MAX], t[PATH_MAX];
	int fd;

	assert_int_equal(privdir_sqlite_files(at(f, db, "index.db")), 0);
	assert_int_equal(mode_of(db), 0600);
	/* an existing database and WAL of an older version: made 0600 */
	assert_int_equal(chmod(db, 0644), 0);
	fd = open(at(f, p, "index.db-wal"), O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "w", 1), 1);
	close(fd);
	assert_int_equal(fchmodat(AT_FDCWD, p, 0644, 0), 0);
	assert_int_equal(privdir_sqlite_files(db), 0);
	assert_int_equal(mode_of(db), 0600);
	assert_int_equal(mode_of(p), 0600);
	/* a symlink in place of the -shm file: refused, target untouched */
	fd = open(at(f, t, "target"), O_CREAT | O_WRONLY, 0644);
	close(fd);
	assert_int_equal(symlink(t, at(f, p, "index.db-shm")), 0);
	assert_int_equal(privdir_sqlite_files(db), -ELOOP);
	assert_int_equal(mode_of(t), 0644);
	/* ... and in place of the database */
	assert_int_equal(symlink(t, at(f, p, "journal.db")), 0);
	assert_int_equal(privdir_sqlite_files(p), -ELOOP);
}

static void test_secret(void **state)
{
	char big[10000];
	char *s;

	(void)state;
	s = secret_strdup("token");
	assert_non_null(s);
	assert_string_equal(s, "token");
	secret_free(s);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	s = secret_strdup(big);     /* more than a page */
	assert_non_null(s);
	assert_string_equal(s, big);
	secret_free(s);
	secret_free(NULL);
	/* dumpable on request, and back */
	assert_int_equal(secret_set_dumpable(false), 0);
	assert_false(secret_dumpable());
	assert_int_equal(secret_set_dumpable(true), 0);
	assert_true(secret_dumpable());
}

UNIT_TEST_PROGRAM(setup, teardown,
	cmocka_unit_test(test_check_ok_and_resolved),
	cmocka_unit_test(test_check_missing_and_not_dir),
	cmocka_unit_test(test_check_owner),
	cmocka_unit_test(test_check_mode),
	cmocka_unit_test(test_check_ancestors),
	cmocka_unit_test(test_make),
	cmocka_unit_test(test_open_file),
	cmocka_unit_test(test_open_dir),
	cmocka_unit_test(test_sqlite_files),
	unit_test_alone(test_secret),
)
