/*
 * lib/backoff.h — retry delays and the randomness that spreads them.
 *
 * Callers choose the jitter (HTTP retries: full jitter, uniform in
 * [0, ceiling]; uploads: equal jitter, half fixed); the doubling and its
 * cap are computed here once, without overflow.
 */
#ifndef JOTTAFS_LIB_BACKOFF_H
#define JOTTAFS_LIB_BACKOFF_H

#include <stdint.h>

/* @min_ms (at least 1) doubled @doublings times, capped at @max_ms (at
 * least @min_ms). */
int64_t backoff_ceiling_ms(unsigned doublings, int64_t min_ms, int64_t max_ms);
/* A uniformly random 64-bit number: OpenSSL's CSPRNG, or a per-thread
 * xorshift seeded from the clock if that ever fails. Thread-safe. */
uint64_t rng_u64(void);

#endif
