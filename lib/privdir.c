/*
 * lib/privdir.c — see privdir.h.
 *
 * The directory rules are checked on the resolved path, so that a symlink
 * given by the user is followed exactly once, at the check; callers keep
 * using the resolved path. Inside a checked directory nobody else can add,
 * rename or remove entries, so opening by name there (O_NOFOLLOW) is safe;
 * the file checks (regular, ours, O_NOFOLLOW) catch what was planted before
 * the directory became ours alone.
 */
#include "lib/privdir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* "uid 1001 (mallory)" or "uid 1001". */
static const char *who(uid_t uid, char *buf, size_t bufsz)
{
	char pwbuf[1024];
	struct passwd pw, *res = NULL;

	if (getpwuid_r(uid, &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res && res->pw_name)
		snprintf(buf, bufsz, "uid %u (%s)", (unsigned)uid, res->pw_name);
	else
		snprintf(buf, bufsz, "uid %u", (unsigned)uid);
	return buf;
}

/* "group", "others" or "group and others" for the write bits of @mode. */
static const char *writers(mode_t mode)
{
	if ((mode & 022) == 022)
		return "group and others";
	return mode & 020 ? "group" : "others";
}

static void set_msg(char *msg, size_t msgsz, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_msg(char *msg, size_t msgsz, const char *fmt, ...)
{
	va_list ap;

	if (!msg || !msgsz)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, msgsz, fmt, ap);
	va_end(ap);
}

/* One ancestor @a of the checked directory @dir. */
static int check_ancestor(const char *a, const char *dir, uid_t uid, char *msg, size_t msgsz)
{
	char owner[300], user[300];
	struct stat st;

	if (lstat(a, &st) < 0) {
		int err = -errno;
		set_msg(msg, msgsz, "cannot check '%s', above '%s': %s", a, dir, strerror(errno));
		return err;
	}
	if (!S_ISDIR(st.st_mode)) {
		/* the path was resolved a moment ago: someone is changing it */
		set_msg(msg, msgsz, "'%s', above '%s', is no longer a directory: someone is "
			"changing the path; use a directory elsewhere", a, dir);
		return -EPERM;
	}
	if (st.st_uid != uid && st.st_uid != 0) {
		set_msg(msg, msgsz, "'%s', above '%s', belongs to %s: that user could replace what "
			"is below it; use a directory whose parents only %s or root own",
			a, dir, who(st.st_uid, owner, sizeof(owner)), who(uid, user, sizeof(user)));
		return -EPERM;
	}
	if ((st.st_mode & 022) && !(st.st_mode & S_ISVTX)) {
		set_msg(msg, msgsz, "'%s', above '%s', is writable by %s without the sticky bit "
			"(mode %04o): they could replace what is below it; use a directory elsewhere",
			a, dir, writers(st.st_mode), (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

int privdir_check(const char *path, uid_t uid, char **resolved, char *msg, size_t msgsz)
{
	char owner[300], user[300];
	struct stat st;
	char *real, *a;
	int err = 0;

	if (resolved)
		*resolved = NULL;
	real = realpath(path, NULL);
	if (!real) {
		err = -errno;
		set_msg(msg, msgsz, "cannot use '%s': %s", path, strerror(errno));
		return err;
	}
	if (lstat(real, &st) < 0) {
		err = -errno;
		set_msg(msg, msgsz, "cannot use '%s': %s", real, strerror(errno));
	} else if (!S_ISDIR(st.st_mode)) {
		err = -ENOTDIR;
		set_msg(msg, msgsz, "'%s' is not a directory", real);
	} else if (st.st_uid != uid) {
		err = -EPERM;
		set_msg(msg, msgsz, "'%s' belongs to %s (mode %04o), not to %s: its owner could "
			"change what jottafs reads and writes there; remove it, or use a directory "
			"of your own", real, who(st.st_uid, owner, sizeof(owner)),
			(unsigned)(st.st_mode & 07777), who(uid, user, sizeof(user)));
	} else if (st.st_mode & 022) {
		err = -EPERM;
		set_msg(msg, msgsz, "'%s' is writable by %s (mode %04o): they could have put "
			"symlinks or files of theirs in it; check what it holds (or remove it), then "
			"run 'chmod 700 %s'", real, writers(st.st_mode),
			(unsigned)(st.st_mode & 07777), real);
	}
	if (err) {
		free(real);
		return err;
	}
	a = strdup(real);
	if (!a) {
		free(real);
		return -ENOMEM;
	}
	for (;;) {
		char *s = strrchr(a, '/');

		if (!s || (s == a && !a[1]))
			break;                  /* "/" has no ancestor */
		if (s == a)
			a[1] = '\0';
		else
			*s = '\0';
		err = check_ancestor(a, real, uid, msg, msgsz);
		if (err || !strcmp(a, "/"))
			break;
	}
	free(a);
	if (!err && resolved)
		*resolved = real;
	else
		free(real);
	return err;
}

int privdir_make(const char *path, uid_t uid, char **resolved, char *msg, size_t msgsz)
{
	char *p = strdup(path), *real = NULL;
	struct stat st;
	int err = 0;

	if (!p)
		return -ENOMEM;
	/* mkdir -p: each missing component 0700 */
	for (char *s = p + 1; ; s++) {
		if (*s == '/' || !*s) {
			char c = *s;

			*s = '\0';
			if (mkdir(p, 0700) < 0 && errno != EEXIST) {
				err = -errno;
				set_msg(msg, msgsz, "cannot create '%s': %s", p, strerror(errno));
				break;
			}
			*s = c;
			if (!c)
				break;
		}
	}
	free(p);
	if (!err)
		err = privdir_check(path, uid, &real, msg, msgsz);
	if (err)
		return err;
	/* ours, not writable by others: only read or search access to take away */
	if (lstat(real, &st) == 0 && (st.st_mode & 077) && chmod(real, 0700) < 0) {
		err = -errno;
		set_msg(msg, msgsz, "cannot chmod 700 '%s': %s", real, strerror(errno));
		free(real);
		return err;
	}
	if (resolved)
		*resolved = real;
	else
		free(real);
	return 0;
}

int privdir_open_dir(int dirfd, const char *name)
{
	struct stat st;
	int fd;

	if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 022)) {
		close(fd);
		return -EPERM;
	}
	return fd;
}

int privdir_open_file(int dirfd, const char *name, int flags, bool single_link)
{
	struct stat st;
	int fd, err = 0;

	/* O_NONBLOCK: a FIFO or a device planted here must not block or act */
	fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0600);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		err = -errno;
	else if (!S_ISREG(st.st_mode))
		err = -EINVAL;
	else if (st.st_uid != geteuid() || (single_link && st.st_nlink > 1))
		err = -EPERM;
	else if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		err = -errno;
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

/* Make @path (an existing file or one to create) a private file: mode 0600. */
static int private_file(const char *path, bool create)
{
	struct stat st;
	int fd, err = 0;

	fd = privdir_open_file(AT_FDCWD, path, create ? O_RDWR | O_CREAT : O_RDONLY, true);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0)
		err = -errno;
	else if ((st.st_mode & 07777) != 0600 && fchmod(fd, 0600) < 0)
		err = -errno;
	close(fd);
	return err;
}

int privdir_sqlite_files(const char *path)
{
	static const char *const sibling[] = { "-wal", "-shm", "-journal" };
	char sib[PATH_MAX];
	int err = private_file(path, true);

	for (size_t i = 0; !err && i < sizeof(sibling) / sizeof(sibling[0]); i++) {
		if (snprintf(sib, sizeof(sib), "%s%s", path, sibling[i]) >= (int)sizeof(sib))
			return -ENAMETOOLONG;
		err = private_file(sib, false);
		if (err == -ENOENT)
			err = 0;
	}
	return err;
}

const char *privdir_file_error(const char *path, int err, char *buf, size_t bufsz)
{
	switch (err) {
	case -ELOOP:
		snprintf(buf, bufsz, "'%s' is a symbolic link, which jottafs does not follow there: "
			 "remove it (someone may have planted it)", path);
		break;
	case -EINVAL:
		snprintf(buf, bufsz, "'%s' is not a regular file: remove it", path);
		break;
	case -EPERM:
		snprintf(buf, bufsz, "'%s' is not a plain file of yours (someone else's, or linked "
			 "elsewhere): "
			 "remove it (someone may have planted it)", path);
		break;
	default:
		snprintf(buf, bufsz, "cannot open '%s': %s", path, strerror(-err));
		break;
	}
	return buf;
}
