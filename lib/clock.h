/*
 * lib/clock.h — the clocks deadlines are measured on.
 *
 * Every timeout, backoff and freshness check uses CLOCK_MONOTONIC, which
 * wall-clock changes (NTP steps, a suspended laptop's resync) cannot move.
 * Condition variables that are waited on with a deadline are made with
 * clock_cond_init(), so that pthread_cond_timedwait() takes the monotonic
 * deadlines clock_deadline_ms() returns. Wall-clock time (CLOCK_REALTIME)
 * is for timestamps shown to people or stored (mtimes, log lines) only.
 */
#ifndef JOTTAFS_LIB_CLOCK_H
#define JOTTAFS_LIB_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Seconds on CLOCK_MONOTONIC. */
double clock_mono(void);
/* Milliseconds on CLOCK_MONOTONIC. */
int64_t clock_mono_ms(void);
/* pthread_cond_init() for a condition whose timed waits use CLOCK_MONOTONIC;
 * 0 or a negative errno. */
int clock_cond_init(pthread_cond_t *c);
/* The CLOCK_MONOTONIC time @ms (>= 0; negative counts as 0) from now, for
 * pthread_cond_timedwait() on a condition made by clock_cond_init(). */
struct timespec clock_deadline_ms(int64_t ms);

#endif
