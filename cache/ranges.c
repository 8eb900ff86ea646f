/*
 * cache/ranges.c — see ranges.h.
 */
#include "cache/ranges.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void ranges_init(struct ranges *r)
{
	r->v = NULL;
	r->n = 0;
	r->cap = 0;
}

void ranges_release(struct ranges *r)
{
	free(r->v);
	ranges_init(r);
}

void ranges_clear(struct ranges *r)
{
	r->n = 0;
}

/* Make room for @extra more ranges. */
static int ranges_reserve(struct ranges *r, size_t extra)
{
	size_t need, cap;
	struct range *v;

	if (__builtin_add_overflow(r->n, extra, &need))
		return -ENOMEM;
	if (need <= r->cap)
		return 0;
	cap = r->cap ? r->cap : 4;
	while (cap < need)
		if (__builtin_mul_overflow(cap, 2, &cap))
			return -ENOMEM;
	v = reallocarray(r->v, cap, sizeof(*v));
	if (!v)
		return -ENOMEM;
	r->v = v;
	r->cap = cap;
	return 0;
}

/* Index of the first range whose end >= pos, or with @touching false of the
 * first whose end > pos (the first that holds a byte at or after pos);
 * r->n when there is none. Binary search. */
static size_t ranges_search(const struct ranges *r, int64_t pos, bool touching)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->v[mid].end < pos || (!touching && r->v[mid].end == pos))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The first range that touches or follows pos. */
static size_t ranges_find(const struct ranges *r, int64_t pos)
{
	return ranges_search(r, pos, true);
}

/* The first range holding a byte at or after pos. */
static size_t ranges_after(const struct ranges *r, int64_t pos)
{
	return ranges_search(r, pos, false);
}

int ranges_add(struct ranges *r, int64_t start, int64_t end)
{
	size_t i, j;

	if (start < 0 || end < start)
		return -EINVAL;
	if (start == end)
		return 0;
	/* First range that touches or follows [start, end). */
	i = ranges_find(r, start);
	/* Ranges i..j-1 overlap or touch the new one and are merged into it. */
	j = i;
	while (j < r->n && r->v[j].start <= end)
		j++;
	if (i == j) {
		int err = ranges_reserve(r, 1);
		if (err)
			return err;
		memmove(&r->v[i + 1], &r->v[i], (r->n - i) * sizeof(r->v[0]));
		r->v[i].start = start;
		r->v[i].end = end;
		r->n++;
		return 0;
	}
	if (r->v[i].start < start)
		start = r->v[i].start;
	if (r->v[j - 1].end > end)
		end = r->v[j - 1].end;
	r->v[i].start = start;
	r->v[i].end = end;
	memmove(&r->v[i + 1], &r->v[j], (r->n - j) * sizeof(r->v[0]));
	r->n -= j - i - 1;
	return 0;
}

int ranges_remove(struct ranges *r, int64_t start, int64_t end)
{
	size_t i;

	if (start < 0 || end < start)
		return -EINVAL;
	if (start == end)
		return 0;
	i = ranges_after(r, start);
	while (i < r->n && r->v[i].start < end) {
		struct range *g = &r->v[i];
		if (g->start < start && g->end > end) {
			/* Split in two. */
			int err = ranges_reserve(r, 1);
			if (err)
				return err;
			g = &r->v[i];
			memmove(&r->v[i + 1], &r->v[i], (r->n - i) * sizeof(r->v[0]));
			r->n++;
			r->v[i].end = start;
			r->v[i + 1].start = end;
			return 0;
		}
		if (g->start < start) {
			g->end = start;
			i++;
		} else if (g->end > end) {
			g->start = end;
			return 0;
		} else {
			memmove(&r->v[i], &r->v[i + 1], (r->n - i - 1) * sizeof(r->v[0]));
			r->n--;
		}
	}
	return 0;
}

bool ranges_covers(const struct ranges *r, int64_t start, int64_t end)
{
	size_t i;

	if (start >= end)
		return true;
	i = ranges_after(r, start);
	return i < r->n && r->v[i].start <= start && r->v[i].end >= end;
}

int64_t ranges_next_missing(const struct ranges *r, int64_t pos, int64_t limit)
{
	size_t i;

	if (pos >= limit)
		return limit;
	i = ranges_after(r, pos);
	if (i < r->n && r->v[i].start <= pos)
		pos = r->v[i].end;
	return pos < limit ? pos : limit;
}

int64_t ranges_next_present(const struct ranges *r, int64_t pos, int64_t limit)
{
	size_t i;

	if (pos >= limit)
		return limit;
	i = ranges_after(r, pos);
	if (i == r->n)
		return limit;
	if (r->v[i].start <= pos)
		return pos;
	return r->v[i].start < limit ? r->v[i].start : limit;
}

int64_t ranges_bytes(const struct ranges *r)
{
	int64_t sum = 0;

	for (size_t i = 0; i < r->n; i++)
		sum += r->v[i].end - r->v[i].start;
	return sum;
}

int64_t ranges_prefix(const struct ranges *r)
{
	return r->n && r->v[0].start == 0 ? r->v[0].end : 0;
}

static void put_le64(unsigned char *p, uint64_t x)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(x >> (8 * i));
}

static uint64_t get_le64(const unsigned char *p)
{
	uint64_t x = 0;

	for (int i = 0; i < 8; i++)
		x |= (uint64_t)p[i] << (8 * i);
	return x;
}

int ranges_encode(const struct ranges *r, void **blob, size_t *len)
{
	unsigned char *p;
	size_t sz;

	*blob = NULL;
	*len = 0;
	if (!r->n)
		return 0;
	if (__builtin_mul_overflow(r->n, (size_t)16, &sz))
		return -ENOMEM;
	p = malloc(sz);
	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < r->n; i++) {
		put_le64(p + 16 * i, (uint64_t)r->v[i].start);
		put_le64(p + 16 * i + 8, (uint64_t)r->v[i].end);
	}
	*blob = p;
	*len = sz;
	return 0;
}

int ranges_decode(struct ranges *r, const void *blob, size_t len, int64_t limit)
{
	const unsigned char *p = blob;
	size_t n = len / 16;
	int64_t prev_end = -1;
	int err;

	ranges_clear(r);
	if (len % 16)
		return -EIO;
	err = ranges_reserve(r, n);
	if (err)
		return err;
	for (size_t i = 0; i < n; i++) {
		uint64_t s = get_le64(p + 16 * i), e = get_le64(p + 16 * i + 8);
		if (s > INT64_MAX || e > INT64_MAX || s >= e ||
		    (int64_t)s <= prev_end || (limit >= 0 && (int64_t)e > limit)) {
			ranges_clear(r);
			return -EIO;
		}
		r->v[i].start = (int64_t)s;
		r->v[i].end = (int64_t)e;
		prev_end = (int64_t)e;
	}
	r->n = n;
	return 0;
}
