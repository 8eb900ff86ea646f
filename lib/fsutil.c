/* lib/fsutil.c — see lib/fsutil.h. */
#include "lib/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"

int file_read_max(const char *path, size_t max, char **out, size_t *len)
{
	struct stat st;
	struct buf b;
	char chunk[8192];
	int err = 0;

	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		err = -EINVAL;
		goto out;
	}
	buf_init(&b, max);
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = -errno;
			break;
		}
		if (r == 0)
			break;
		if ((err = buf_add(&b, chunk, (size_t)r)) < 0)
			break;
	}
	if (err == -E2BIG)
		err = -EFBIG;
	size_t n = b.len;
	if (!err) {
		*out = buf_take(&b);
		if (!*out)
			err = -ENOMEM;
		else if (len)
			*len = n;
	} else {
		buf_free(&b);
	}
out:
	close(fd);
	return err;
}
