/*
 * lib/fsutil.h — small file-system chores done the careful way.
 */
#ifndef JOTTAFS_LIB_FSUTIL_H
#define JOTTAFS_LIB_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Read the regular file @path whole, refusing more than @max bytes. The
 * last component is not followed if it is a symlink (O_NOFOLLOW: -ELOOP).
 * *@out is malloc'd and NUL-terminated; *@len (may be NULL) its length.
 * Reads until end of file, so files whose size is not known beforehand
 * (a FUSE file's status, /proc) are read right. Returns 0, -EFBIG over
 * @max, -EINVAL for something other than a regular file, or another
 * negative errno.
 */
int file_read_max(const char *path, size_t max, char **out, size_t *len);
/* The same through an open @fd, read with pread from offset 0 (the file
 * offset is neither used nor moved: the fd may be shared). */
int fd_read_max(int fd, size_t max, char **out, size_t *len);

#endif
