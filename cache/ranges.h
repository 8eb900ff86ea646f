/*
 * cache/ranges.h — a set of byte ranges: which parts of a file's content are
 * present in its sparse cache file.
 *
 * A value type (the data cache embeds one per open file): a sorted array of
 * half-open intervals [start, end) that never overlap and never touch
 * (adding [0,4) to {[4,8)} gives {[0,8)}). Every function keeps that
 * invariant; ranges_decode() refuses a blob that breaks it, so a damaged
 * index can never make the cache serve bytes it does not have.
 *
 * Pure: no I/O, no locks (the owner serialises access), no global state.
 * Offsets are int64_t >= 0; a range with start >= end is empty.
 */
#ifndef JOTTAFS_CACHE_RANGES_H
#define JOTTAFS_CACHE_RANGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct range {
	int64_t start;          /* first byte */
	int64_t end;            /* one past the last byte; > start */
};

struct ranges {
	struct range *v;        /* sorted by start, disjoint, non-adjacent */
	size_t n;               /* ranges in use */
	size_t cap;             /* allocated slots */
};

#define RANGES_INIT { NULL, 0, 0 }

/* An empty set (no allocation). */
void ranges_init(struct ranges *r);
/* Free the storage; @r is empty afterwards and may be reused. */
void ranges_release(struct ranges *r);
/* Remove every range, keeping the storage. */
void ranges_clear(struct ranges *r);

/* Add [start, end), merging with neighbours. 0, -EINVAL (negative or
 * reversed bounds) or -ENOMEM (the set is unchanged then). Empty: no-op. */
int ranges_add(struct ranges *r, int64_t start, int64_t end);
/* Remove [start, end), splitting a range that spans it. 0, -EINVAL, -ENOMEM. */
int ranges_remove(struct ranges *r, int64_t start, int64_t end);

/* True when every byte of [start, end) is present (an empty range is). */
bool ranges_covers(const struct ranges *r, int64_t start, int64_t end);
/* The first offset in [pos, limit) that is missing, or @limit if none. */
int64_t ranges_next_missing(const struct ranges *r, int64_t pos, int64_t limit);
/* The first offset in [pos, limit) that is present, or @limit if none. */
int64_t ranges_next_present(const struct ranges *r, int64_t pos, int64_t limit);
/* Bytes present. */
int64_t ranges_bytes(const struct ranges *r);
/* Length of the present prefix: x when [0, x) is present, else 0. */
int64_t ranges_prefix(const struct ranges *r);

/*
 * Persistent form: a blob of little-endian (start, end) uint64 pairs.
 * ranges_encode() stores a malloc'd blob in *blob (NULL when empty) and its
 * length in *len. ranges_decode() replaces @r's content; it returns -EIO for
 * a blob that is malformed or breaks the invariant (sorted, disjoint, not
 * touching, start < end, end <= @limit when @limit >= 0), leaving @r empty.
 */
int ranges_encode(const struct ranges *r, void **blob, size_t *len);
int ranges_decode(struct ranges *r, const void *blob, size_t len, int64_t limit);

#endif
