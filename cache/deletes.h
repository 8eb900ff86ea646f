/*
 * cache/deletes.h — background deletes: unlink and rmdir of what the
 * service holds are journalled (<cache_dir>/deletes.db) and applied by the
 * queue's own workers, so that `rm -rf` runs at local speed.
 *
 * - Journalled before the index forgets the node: a crash (kill -9) in
 *   between replays the deletes at the next mount. The journal is durable
 *   (synchronous=FULL, cache/db.h): once unlink/rmdir returned, neither
 *   kill -9 nor a power cut loses the delete (one WAL fdatasync each,
 *   a fraction of a millisecond here; rm -rf of 2,000 files stays ~1.5 s).
 * - A delete waits in the journal until deletes stop arriving for a
 *   moment (QUIET_MS, at most HOLD_MAX_MS), so that the rmdir that ends an
 *   `rm -rf` of a folder absorbs the queued deletes below it: one server
 *   folder delete for the whole subtree.
 * - Order with what comes after: before anything is made or moved at a
 *   path on the service (create, mkdir, rename target, a folder moved
 *   away with deletes pending below it), the writer calls delq_flush(),
 *   which applies the pending deletes there first. A same-name
 *   re-creation is thus never deleted by a late delete.
 * - Listings: a name whose delete is pending (or completed after the
 *   listing was requested) is hidden (delq_hides), so a refresh from the
 *   service does not resurrect it.
 * - Answers: 0 and 404 (already gone) are done; transport trouble and
 *   offline are retried with backoff for ever (delq_retry_now restarts
 *   them when the service is back); refusals that cannot change are given
 *   up after a few attempts (logged).
 *
 * Threads: thread-safe. Lock: q->lock protects the in-memory queue and is
 * taken before the journal database's lock (cache/db.h); it is taken under
 * no other lock of jottafs except none, never held across network I/O or
 * a hook.
 *
 * Errors: 0 or -errno.
 */
#ifndef JOTTAFS_CACHE_DELETES_H
#define JOTTAFS_CACHE_DELETES_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct jfs;
struct delq;

struct delq_config {
	const char *cache_dir;      /* deletes.db goes there */
	struct jfs *jfs;            /* must outlive the queue */
	bool hard_delete;           /* skip the trash */
	unsigned workers;           /* 0: 4 */
	/* A deletion was made on the service (the trash view changed); called
	 * with no lock held. May be NULL. */
	void (*deleted)(void *ctx);
	void *ctx;
};

/* Open (creating) the journal and load what it holds. */
int delq_open(const struct delq_config *cfg, struct delq **out);
/* Start the workers (after fork). */
int delq_start(struct delq *q);
/* Apply what is pending for up to @wait_s seconds (what is left stays
 * journalled for the next mount), stop the workers and free. NULL ok. */
void delq_close(struct delq *q, unsigned wait_s);

/* Journal the delete of server path @path (a folder when @is_dir: queued
 * deletes below it are absorbed). */
int delq_add(struct delq *q, const char *path, bool is_dir);
/* Apply now, in the caller, the pending deletes at @path (and below it
 * when @subtree; "" with @subtree: all of them), waiting for those a worker runs; then forget that they
 * happened (delq_hides no longer hides that path). 0, or the error of a
 * delete that failed (it stays queued). */
int delq_flush(struct delq *q, const char *path, bool subtree);
/* Hide the listed entry @dir/@sub/@sname (@sub may be "") from a listing
 * requested at @listed_at? True when its delete, or one of a folder above
 * it, is pending or completed at or after @listed_at. */
bool delq_hides(struct delq *q, const char *dir, const char *sub, const char *sname,
		time_t listed_at);
/* The service is back: pending deletes are due now. */
void delq_retry_now(struct delq *q);
/* Nothing pending, nor confirmed lately (delq_flush would do nothing). */
bool delq_idle(struct delq *q);
/* Deletes pending (journalled, not yet confirmed). */
unsigned delq_pending(struct delq *q);

#endif
