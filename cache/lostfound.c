/*
 * cache/lostfound.c — where an upload goes instead of its path: the
 * conflict name of a file changed on the server meanwhile
 * (upload_conflict_name, upload.h), and <cache_dir>/lost+found/ for the
 * content of an upload given up (lostfound_keep, upload_int.h): hard-linked
 * or copied there, never deleted. No lock is needed: it only touches the
 * file system and its arguments.
 */
#include "cache/upload_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/privdir.h"
#include "net/names.h"

int upload_conflict_name(const char *path, time_t t, char *buf, size_t len)
{
	const char *slash, *name;
	char tag[64], *leaf = NULL;
	size_t dirlen, leaflen;
	struct tm tm;
	int n, err;

	if (!path || !buf)
		return -EINVAL;
	slash = strrchr(path, '/');
	name = slash ? slash + 1 : path;
	dirlen = (size_t)(name - path);
	if (!*name || !gmtime_r(&t, &tm))
		return -EINVAL;
	n = snprintf(tag, sizeof(tag), " (conflict %04d-%02d-%02d %02d%02d%02d)",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		     tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (n < 0 || (size_t)n >= sizeof(tag))
		return -EINVAL;
	/* within the service's name limit: NAME shortened when needed */
	err = names_insert_tag(name, tag, &leaf);
	if (err)
		return err;
	leaflen = strlen(leaf);
	if (dirlen + leaflen + 1 > len) {
		free(leaf);
		return -ENAMETOOLONG;
	}
	memcpy(buf, path, dirlen);
	memcpy(buf + dirlen, leaf, leaflen + 1);
	free(leaf);
	return 0;
}

/*
 * One lost+found path segment from the server name @seg (@len bytes): never
 * "", "." or "..", at most @max bytes (a server name may be 255 characters,
 * more than NAME_MAX bytes): shortened at a character boundary, keeping a
 * short extension.
 */
static void seg_fit(const char *seg, size_t len, size_t max, char *out)
{
	const char *dot = memrchr(seg, '.', len);
	size_t ext = (dot && dot != seg) ? len - (size_t)(dot - seg) : 0;
	size_t keep = len;

	if (len == 0 || (len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.')) {
		snprintf(out, max + 1, "_%.*s", (int)len, seg);
		return;
	}
	if (ext > 16)
		ext = 0;
	if (len > max) {
		keep = max - ext;
		while (keep > 0 && ((unsigned char)seg[keep] & 0xC0) == 0x80)
			keep--;
	} else {
		ext = 0;
	}
	memcpy(out, seg, keep);
	memcpy(out + keep, seg + len - ext, ext);
	out[keep + ext] = '\0';
}

/* Copy all of @fd into the new file @dst (O_EXCL). */
static int copy_to(int fd, const char *dst)
{
	char buf[1 << 16];
	off_t off = 0;
	int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int err = 0;

	if (out < 0)
		return -errno;
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof(buf), off), w = 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? -errno : 0;
			break;
		}
		while (w < n) {
			ssize_t k = write(out, buf + w, (size_t)(n - w));
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				err = -errno;
				break;
			}
			w += k;
		}
		if (err)
			break;
		off += n;
	}
	if (!err && fsync(out) < 0)
		err = -errno;
	close(out);
	if (err)
		unlink(dst);
	return err;
}

/* Make (0700) or check one directory of lost+found: each level must be a
 * directory of ours, not a symlink, that only we can write to. */
static int keep_dir(const char *dir)
{
	int fd = privdir_open_dir(AT_FDCWD, dir);

	if (fd < 0) {
		log_err("lost+found: cannot use '%s': %s", dir, fd == -EPERM ?
			"not a directory of ours that only we can write to" : strerror(-fd));
		return fd;
	}
	close(fd);
	return 0;
}

/* See upload_int.h. */
int lostfound_keep(const char *lost_dir, const char *path, int fd, char **out)
{
	char dir[PATH_MAX], dst[PATH_MAX], name[NAME_MAX + 1], procfd[64];
	const char *p = path;
	int err = 0, n, dfd;

	*out = NULL;
	if (snprintf(dir, sizeof(dir), "%s", lost_dir) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	if ((err = keep_dir(dir)))
		return err;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t sl = slash ? (size_t)(slash - p) : strlen(p), dl;

		/* room for " (999)" in the leaf */
		seg_fit(p, sl, slash ? NAME_MAX : NAME_MAX - 8, name);
		if (!slash)
			break;
		p = slash + 1;
		if (sl == 0)
			continue;
		dl = strlen(dir);
		if (snprintf(dir + dl, sizeof(dir) - dl, "/%s", name) >= (int)(sizeof(dir) - dl))
			return -ENAMETOOLONG;
		if ((err = keep_dir(dir)))
			return err;
	}
	snprintf(procfd, sizeof(procfd), "/proc/self/fd/%d", fd);
	for (n = 0; n < 1000; n++) {
		const char *dot = strrchr(name, '.');
		int stem = (dot && dot != name && dot[1]) ? (int)(dot - name) : (int)strlen(name);
		int k = n == 0 ? snprintf(dst, sizeof(dst), "%s/%s", dir, name) :
			snprintf(dst, sizeof(dst), "%s/%.*s (%d)%s", dir, stem, name, n, name + stem);

		if (k < 0 || k >= (int)sizeof(dst))
			return -ENAMETOOLONG;
		/* a hard link of the open file: exactly the bytes that failed, at no cost */
		if (linkat(AT_FDCWD, procfd, AT_FDCWD, dst, AT_SYMLINK_FOLLOW) == 0)
			break;
		if (errno == EEXIST)
			continue;
		err = copy_to(fd, dst);
		if (err == -EEXIST)
			continue;
		if (err)
			return err;
		break;
	}
	if (n == 1000)
		return -EEXIST;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	*out = strdup(dst);
	return *out ? 0 : -ENOMEM;
}

