/*
 * lib/xstr.h — formatted strings on the heap.
 *
 * xasprintf() is asprintf(3) returning the string: malloc'd, or NULL when
 * memory ran out (callers treat NULL as -ENOMEM). Thread-safe.
 */
#ifndef JOTTAFS_LIB_XSTR_H
#define JOTTAFS_LIB_XSTR_H

char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
