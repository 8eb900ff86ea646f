/*
 * lib/vec.h — growing a malloc'd array one element at a time, with the
 * size arithmetic overflow-checked.
 *
 *   struct item *v = NULL;
 *   size_t n = 0, cap = 0;
 *   if (vec_reserve(&v, &cap, n, sizeof(*v), 16))
 *           return -ENOMEM;
 *   v[n++] = item;
 */
#ifndef JOTTAFS_LIB_VEC_H
#define JOTTAFS_LIB_VEC_H

#include <stddef.h>

/*
 * Make room for element @n of the array at *@pv (a pointer to any object
 * pointer, e.g. struct item **) of capacity *@cap elements of @size bytes:
 * when full, the capacity doubles (@first when it was 0). 0, or -ENOMEM
 * with the array and *@cap unchanged.
 */
int vec_reserve(void *pv, size_t *cap, size_t n, size_t size, size_t first);

#endif
