/*
 * lib/buf.h — a growable, optionally capped, NUL-terminated byte buffer.
 *
 * For building request paths and bodies and for collecting answers whose
 * size the other side chooses (hence the cap). The first error sticks in
 * @err and makes later additions no-ops, so a sequence of additions is
 * checked once, at buf_take() or by reading @err.
 *
 *   struct buf b;
 *   buf_init(&b, 0);
 *   buf_adds(&b, "/jfs/");
 *   buf_printf(&b, "%s?mode=list", dev);
 *   char *s = buf_take(&b);      // NULL: out of memory
 */
#ifndef JOTTAFS_LIB_BUF_H
#define JOTTAFS_LIB_BUF_H

#include <stddef.h>

struct buf {
	char *p;        /* NUL-terminated once anything was added; may be NULL */
	size_t len;     /* bytes held, without the NUL */
	size_t cap;     /* bytes allocated */
	size_t max;     /* most bytes it may hold; 0: no cap */
	int err;        /* 0, -ENOMEM or -E2BIG (over max): sticky */
};

void buf_init(struct buf *b, size_t max);
/* Append @n bytes; 0 or the sticky error. */
int buf_add(struct buf *b, const void *s, size_t n);
int buf_adds(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The contents (caller frees; "" when nothing was added), or NULL when an
 * error was recorded. The buffer is left empty and reusable either way. */
char *buf_take(struct buf *b);
void buf_free(struct buf *b);

#endif
