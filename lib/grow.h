/*
 * lib/grow.h — room for one more element in a growable array.
 *
 *   struct item *v = NULL; size_t n = 0, cap = 0;
 *   if (array_grow(&v, &cap, n, sizeof(*v), 16) < 0)
 *           return -ENOMEM;
 *   v[n++] = it;
 *
 * The capacity doubles (overflow-checked), so appending n elements costs
 * O(n). No global state.
 */
#ifndef JOTTAFS_LIB_GROW_H
#define JOTTAFS_LIB_GROW_H

#include <stddef.h>

/*
 * @pv points to the array pointer (any element type; NULL when empty), *@cap
 * is its capacity in elements of @size bytes, @n how many are used. When
 * @n < *@cap nothing happens; else the array is reallocated to twice its
 * capacity (@first when it is 0). 0, or -ENOMEM with the array unchanged.
 */
int array_grow(void *pv, size_t *cap, size_t n, size_t size, size_t first);

#endif
