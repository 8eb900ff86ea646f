/* lib/fsutil.c — see lib/fsutil.h. */
#include "lib/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fd_read_max(int fd, size_t max, char **out, size_t *len)
{
	struct stat st;

	*out = NULL;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if ((uint64_t)st.st_size > max)
		return -EFBIG;
	/* Sized from fstat, so a file that does not change is read into one
	 * allocation (no stray copies of a secret in freed memory); grown
	 * only for a file that is longer than it said (a FUSE status file). */
	size_t cap = (size_t)st.st_size + 1, got = 0;
	char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		char probe = 0;
		char *dst = got + 1 < cap ? buf + got : &probe;
		size_t room = got + 1 < cap ? cap - 1 - got : 1;
		ssize_t n = pread(fd, dst, room, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = -errno;
			free(buf);
			return err;
		}
		if (n == 0)
			break;
		if (dst == &probe) {            /* longer than it said: grow */
			size_t limit = max < SIZE_MAX ? max + 1 : SIZE_MAX, ncap;
			if (__builtin_mul_overflow(cap, 2, &ncap) || ncap > limit)
				ncap = limit;
			char *nb = ncap > cap ? realloc(buf, ncap) : NULL;
			if (!nb) {
				free(buf);
				return ncap > cap ? -ENOMEM : -EFBIG;
			}
			buf = nb;
			cap = ncap;
			continue;               /* read it again, into the buffer */
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	*out = buf;
	if (len)
		*len = got;
	return 0;
}

int file_read_max(const char *path, size_t max, char **out, size_t *len)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		return -errno;
	int err = fd_read_max(fd, max, out, len);
	close(fd);
	return err;
}
