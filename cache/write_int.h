/*
 * cache/write_int.h — private to cache/write.c and cache/write_ns.c: the
 * writer's state, shared by its content half and its namespace half.
 * Locks and their order: write.h.
 */
#ifndef JOTTAFS_CACHE_WRITE_INT_H
#define JOTTAFS_CACHE_WRITE_INT_H

#include <pthread.h>
#include <stdint.h>

#include "cache/write.h"

#define WRITER_BUCKETS  4096    /* per-node entries, hashed by node id */
#define WRITER_STRIPES  64      /* bucket b is under stripe b % WRITER_STRIPES */

struct upend;

/* The lock of the per-node state of the node ids hashing to it. */
struct stripe {
	pthread_mutex_t lock;           /* protects its buckets' entries */
	pthread_cond_t cond;            /* a done callback of one of them ran
					   (CLOCK_MONOTONIC) */
};

struct writer {
	struct writer_config cfg;       /* read-only after writer_new */
	struct upload_queue *up;        /* set before requests are served */
	struct stripe stripe[WRITER_STRIPES];
	struct upend **upend;           /* WRITER_BUCKETS chains, each under its stripe */
};

/* The stripe of node @id. */
struct stripe *writer_stripe(struct writer *w, uint64_t id);
/* Forget node @id's state (clean again, unlinked, replaced by a copy);
 * _locked: its stripe held. */
void writer_drop(struct writer *w, uint64_t id);
void writer_drop_locked(struct writer *w, uint64_t id);
/* Wait (~10 s at most) until an upload of @id that landed has had its done
 * callback, which tells the index what the service holds and where. Takes
 * the stripe of @id. */
void writer_wait_settled(struct writer *w, uint64_t id);

#endif
