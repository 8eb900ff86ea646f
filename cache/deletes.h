/*
 * cache/deletes.h — the background namespace queue: unlink and rmdir of
 * what the service holds, and mkdir, are journalled
 * (<cache_dir>/deletes.db) and applied by the queue's own workers, so that
 * `rm -rf`, `tar -xf` and `mkdir -p` run at local speed.
 *
 * - Journalled before the caller replies: a crash (kill -9) in between
 *   replays them at the next mount. The journal is durable
 *   (synchronous=FULL, cache/db.h): once unlink/rmdir/mkdir returned,
 *   neither kill -9 nor a power cut loses it (one WAL fdatasync each, a
 *   fraction of a millisecond here; rm -rf of 2,000 files stays ~1.5 s).
 * - Order: operations whose paths meet (the same path, or one below the
 *   other) are applied in the order they were made; others in parallel.
 *   A folder creation does not wait for those of the folders above it.
 * - Deletes wait in the journal until operations stop arriving for a
 *   moment (QUIET_MS, at most HOLD_MAX_MS), so that the rmdir that ends an
 *   `rm -rf` of a folder absorbs the queued deletes below it: one server
 *   folder delete for the whole subtree.
 * - Folder creations (mkDir, which makes missing parents too) wait as well,
 *   and longer while uploads are pending (delq_set_hold, at most
 *   MKDIR_HOLD_MAX_MS): an upload into the folder or below it makes it
 *   (allocate makes missing parents), and once one is confirmed
 *   (delq_made) the creations above it are done without a request. One
 *   request for the deepest of a chain of pending folders (mkdir -p a/b/c)
 *   makes them all. An rmdir of a folder whose creation was never sent
 *   costs no request (delq_unmake). A folder that exists already (another
 *   client's) is fine: mkDir is idempotent.
 * - Order with what comes after: before anything is made or moved at a
 *   path on the service (create, mkdir, rename target, a folder moved
 *   away with operations pending below it), the writer calls delq_flush(),
 *   which applies what is pending there first; before something is moved
 *   into a folder whose creation is pending, delq_flush_parents(). A
 *   same-name re-creation is thus never deleted by a late delete. Offline
 *   (the flush fails with -EHOSTDOWN), a create or mkdir goes ahead all
 *   the same: every upload first applies the deletes at its path or above
 *   it (delq_flush_above, upload_config.before), and a folder creation is
 *   queued behind the deletes at its path.
 * - Listings: a name whose delete is pending (or completed after the
 *   listing was requested) is hidden (delq_hides), so a refresh from the
 *   service does not resurrect it. A folder whose creation is pending is
 *   marked in the index (the writer does that; @made clears it), which
 *   keeps listings from removing it.
 * - Answers: 0 and (deletes) 404 (already gone) are done; transport trouble
 *   and offline are retried with backoff for ever (delq_retry_now restarts
 *   them when the service is back); refusals that cannot change are given
 *   up after a few attempts (logged).
 *
 * Threads: thread-safe. Lock: q->lock protects the in-memory queue and is
 * taken before the journal database's lock (cache/db.h) and the index's
 * (the @made hook runs under it); it is taken under no other lock of
 * jottafs, never held across network I/O or the @hold and @deleted hooks.
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
	/* The creation of folder node @node is done (made, made by an upload
	 * below it, or given up): the index may drop its pending mark. Called
	 * with the queue's lock held: it may only use the index. May be NULL. */
	void (*made)(void *ctx, uint64_t node);
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
/* Journal the creation of folder @path (index node @node). */
int delq_mkdir(struct delq *q, const char *path, uint64_t node);
/* rmdir of @path: forget its creation when still queued (waiting for one
 * being sent). 1: it never reached the service through us (no delete
 * needed); 0: delete it (created, or maybe made by an operation below it);
 * -errno. */
int delq_unmake(struct delq *q, const char *path);
/* The service holds @path (an upload was confirmed there): the creations
 * of the folders above it are done. */
void delq_made(struct delq *q, const char *path);
/* Apply now, in the caller, the pending creations of the folders above
 * @path (one request: the deepest). 0 or the error. */
int delq_flush_parents(struct delq *q, const char *path);
/* Apply now, in the caller, the pending deletes at @path or at a folder
 * above it, waiting for those a worker runs: an upload to @path goes after
 * them (a create does not wait for them: offline, `rm f; echo x > f` works,
 * and the upload waits instead). 0, or the error of a delete that failed
 * (it stays queued). */
int delq_flush_above(struct delq *q, const char *path);
/* Folder creations wait while @hold(@ctx) says uploads are pending (see
 * above). NULL: no more calls; returns once none is running. */
void delq_set_hold(struct delq *q, bool (*hold)(void *ctx), void *ctx);
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
/* No delete pending, nor confirmed lately (folder creations may be): a
 * new name needs no flush. */
bool delq_deletes_idle(struct delq *q);
/* The service is back: pending deletes are due now. */
void delq_retry_now(struct delq *q);
/* Nothing pending, nor confirmed lately (delq_flush would do nothing). */
bool delq_idle(struct delq *q);
/* Operations pending (journalled, not yet confirmed). */
unsigned delq_pending(struct delq *q);
/* ... of them deletes and folder creations. */
void delq_counts(struct delq *q, unsigned *deletes, unsigned *mkdirs);
/* Is the creation of folder node @node pending? */
bool delq_mkdir_pending(struct delq *q, uint64_t node);

#endif
