/*
 * cache/lister.h — keeps directory listings in the index fresh.
 *
 * lister_fresh(dir) returns once the index holds a listing of @dir that
 * may be served:
 *   - fresh (listed less than dir_cache_time ago): at once, no request;
 *   - listed in an earlier mount: at once, revalidated in the background
 *     (a remount lists a known tree immediately);
 *   - otherwise one folder GET, single-flight: concurrent callers for one
 *     directory share one request.
 * A recursive walk (find, ls -R, du) is recognised from the pattern of
 * cold listings — a directory whose parent and grandparent, or whose parent
 * and a sibling, were listed within the last few seconds — and the highest
 * such ancestor is listed with ONE liststream request in the background;
 * every caller inside that subtree waits for the stream (while it makes
 * progress) instead of sending its own request. -o prefetch starts such a
 * stream for the whole mount at once.
 *
 * When the service cannot be reached, a stale listing is served rather than
 * an error (logged). A folder the service says is gone is removed from the
 * index (-ENOENT).
 *
 * What a listing changed (entries gone or added, new revisions) is handed
 * to the changes callback, with no lock held, for kernel invalidation.
 *
 * Threads: thread-safe; background work runs on the lister's own workers.
 * l->lock is taken after no other lock of ours and is never held across a
 * request or a callback.
 */
#ifndef JOTTAFS_CACHE_LISTER_H
#define JOTTAFS_CACHE_LISTER_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct jfs;
struct meta;
struct meta_changes;
struct lister;

struct lister_config {
	struct jfs *jfs;
	struct meta *meta;
	uint64_t root_id;           /* the mount's root node: walks never go above it */
	double dir_cache_time;      /* seconds a listing stays fresh */
	uint64_t session_gen;       /* listings of a lower generation come from an earlier
				       mount (meta_gen_next() at mount) */
	unsigned threads;           /* background workers; 0: 3 */
	/* Receives what a listing changed (called with no lock held). */
	void (*changes)(void *ctx, struct meta_changes *ch);
	void *changes_ctx;
	/* May be NULL. True hides a listed entry (its delete is pending, see
	 * cache/deletes.h): @dir/@sub/@sname is its server path (@sub may be
	 * ""), @listed_at when the listing was requested. No lock held. */
	bool (*hide)(void *ctx, const char *dir, const char *sub, const char *sname,
		     time_t listed_at);
	void *hide_ctx;
};

enum {
	LISTER_READDIR = 1,         /* the caller is reading the directory (walk detection) */
	LISTER_SYNC = 2,            /* never serve a listing from an earlier mount */
	LISTER_FORCE = 4,           /* list even when fresh (revalidation) */
};

int lister_new(const struct lister_config *cfg, struct lister **out);
/* Start the background workers (after fork). Work queued before runs then. */
int lister_start(struct lister *l);
/* Stop the workers (streams in flight are abandoned) and free. */
void lister_free(struct lister *l);

/*
 * Make the listing of directory @dir servable (see above). 0, -ENOENT (gone),
 * -ENOTDIR, or the error of the request when nothing is cached
 * (-EHOSTUNREACH, -ETIMEDOUT, -EACCES, -EIO, ...). *@refreshed (may be NULL)
 * tells whether a listing was applied during the call.
 */
int lister_fresh(struct lister *l, uint64_t dir, int flags, bool *refreshed);
/* List the subtree at @dir with one liststream, in the background. */
void lister_prefetch(struct lister *l, uint64_t dir);
/* Resolve the POSIX path @subpath ("a/b", "" for the root) below the
 * mountpoint root with synchronous listings; the node id in *id. -ENOENT,
 * -ENOTDIR, or a request error. For mount time (no workers needed). */
int lister_resolve(struct lister *l, const char *subpath, uint64_t *id);

struct lister_stats {
	uint64_t lists;             /* folder GETs sent */
	uint64_t streams;           /* liststreams sent */
	uint64_t stream_entries;    /* entries received by them */
	uint64_t walks;             /* recursive walks detected */
};
void lister_stats(struct lister *l, struct lister_stats *out);

#endif
