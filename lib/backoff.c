/* lib/backoff.c — see lib/backoff.h. */
#include "lib/backoff.h"

#include <pthread.h>
#include <time.h>

#include <openssl/rand.h>

int64_t backoff_ceiling_ms(unsigned doublings, int64_t min_ms, int64_t max_ms)
{
	int64_t d = min_ms < 1 ? 1 : min_ms;
	if (max_ms < d)
		max_ms = d;
	for (unsigned i = 0; i < doublings && d < max_ms; i++) {
		if (__builtin_mul_overflow(d, 2, &d))
			d = max_ms;
	}
	return d > max_ms ? max_ms : d;
}

uint64_t rng_u64(void)
{
	static __thread uint64_t state;
	uint64_t r;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) == 1)
		return r;
	if (!state) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		state = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)pthread_self();
		state |= 1;
	}
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return state;
}
