/* lib/buf.c — see lib/buf.h. */
#include "lib/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t max)
{
	b->p = NULL;
	b->len = b->cap = 0;
	b->max = max;
	b->err = 0;
}

/* Room for @n more bytes and the NUL. */
static int reserve(struct buf *b, size_t n)
{
	size_t need;
	if (b->err)
		return b->err;
	if (__builtin_add_overflow(b->len, n, &need) || (b->max && need > b->max))
		return b->err = -E2BIG;
	if (__builtin_add_overflow(need, 1, &need))
		return b->err = -ENOMEM;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 128;
	while (cap < need)
		if (__builtin_mul_overflow(cap, 2, &cap))
			return b->err = -ENOMEM;
	if (b->max && cap > b->max + 1)
		cap = b->max + 1;       /* a capped buffer never allocates past its cap */
	char *p = realloc(b->p, cap);
	if (!p)
		return b->err = -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

int buf_add(struct buf *b, const void *s, size_t n)
{
	int err = reserve(b, n);
	if (err)
		return err;
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int buf_adds(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (b->err)
		return b->err;
	if (n < 0)
		return b->err = -EINVAL;
	int err = reserve(b, (size_t)n);
	if (err)
		return err;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

char *buf_take(struct buf *b)
{
	char *p = b->err ? NULL : b->p ? b->p : strdup("");
	if (b->err)
		free(b->p);
	buf_init(b, b->max);
	return p;
}

void buf_free(struct buf *b)
{
	free(b->p);
	buf_init(b, b->max);
}
