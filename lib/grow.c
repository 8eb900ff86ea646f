/* lib/grow.c — see lib/grow.h. */
#include "lib/grow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int array_grow(void *pv, size_t *cap, size_t n, size_t size, size_t first)
{
	void *v, *nv;
	size_t want;

	if (n < *cap)
		return 0;
	if (*cap == 0)
		want = first ? first : 1;
	else if (__builtin_mul_overflow(*cap, (size_t)2, &want))
		return -ENOMEM;
	memcpy(&v, pv, sizeof(v));
	nv = reallocarray(v, want, size);
	if (!nv)
		return -ENOMEM;
	memcpy(pv, &nv, sizeof(nv));   /* the caller's pointer now owns it */
	*cap = want;
	/* cppcheck-suppress memleak ; (nv is stored through pv just above) */
	return 0;
}
