/*
 * lib/vec.c — growing arrays (see vec.h).
 */
#include "lib/vec.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int vec_reserve(void *pv, size_t *cap, size_t n, size_t size, size_t first)
{
	void *v, *nv;
	size_t nc;

	if (n < *cap)
		return 0;
	if (*cap && __builtin_mul_overflow(*cap, (size_t)2, &nc))
		return -ENOMEM;
	if (!*cap)
		nc = first ? first : 1;
	if (nc <= n)
		nc = n + 1;
	if (size && nc > SIZE_MAX / size)
		return -ENOMEM;
	/* the caller's pointer is read and written as bytes: any object
	 * pointer type may be passed */
	memcpy(&v, pv, sizeof(v));
	nv = reallocarray(v, nc, size);
	if (!nv)
		return -ENOMEM;
	memcpy(pv, &nv, sizeof(nv));
	*cap = nc;
	/* cppcheck-suppress memleak ; nv was stored in *pv just above */
	return 0;
}
