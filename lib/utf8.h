/*
 * lib/utf8.h — one UTF-8 codec (RFC 3629): scalar values only, shortest
 * form only. Used by the name encoding (net/names.c) and the index's
 * case-folding keys (cache/). Pure functions.
 */
#ifndef JOTTAFS_LIB_UTF8_H
#define JOTTAFS_LIB_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decode the sequence at @s (@len bytes available, > 0): its length (1-4)
 * with the code point in *@cp, or 0 when the bytes at @s are not a valid
 * sequence (stray continuation byte, overlong form, surrogate, above
 * U+10FFFF, or cut short). */
size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);
/* Encode the scalar value @cp at @out; returns its length (1-4). */
size_t utf8_encode(uint32_t cp, char out[4]);

#endif
