/*
 * lib/md5.h — MD5 digests as Jottacloud writes them: 32 lowercase hex digits.
 *
 * The service identifies content by MD5 (a known MD5 makes an upload
 * instant), so the cache hashes every file it commits or downloads. These
 * are the one place the hex form is validated and produced. Thread-safe.
 */
#ifndef JOTTAFS_LIB_MD5_H
#define JOTTAFS_LIB_MD5_H

#include <stdatomic.h>
#include <stdbool.h>

#define MD5_HEX_LEN 32

/* True when @s is 32 lowercase hex digits followed by NUL; NULL is false. */
bool md5_hex_valid(const char *s);
/* The hex form of a 16-byte digest. */
void md5_hex(const unsigned char digest[16], char out[MD5_HEX_LEN + 1]);
/*
 * The MD5 of the whole file @fd (from offset 0 to its size at the start,
 * with pread: the file offset is not used). Holes are hashed as zeros
 * without reading them (SEEK_DATA), so a huge sparse file costs only its
 * data. A file cut short meanwhile is hashed up to its new end: callers
 * compare the file's identity afterwards. Returns 0, -ECANCELED as soon as
 * *@cancel (may be NULL) reads true, or another negative errno.
 */
int md5_fd(int fd, char out[MD5_HEX_LEN + 1], const atomic_bool *cancel);

#endif
