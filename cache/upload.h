/*
 * cache/upload.h — the durable upload journal and its worker pool.
 *
 * Contract (design.md §4): when upload_enqueue() returns 0 the pending upload
 * is on disk (SQLite journal, synchronous=FULL) and survives kill -9, power
 * loss and reboots; the caller has fsync'd the content file before calling.
 * Workers then upload in the background: allocate (instant when the service
 * already has the content), otherwise a data POST from resume_pos; the
 * service's answer (total bytes, MD5) is checked before the record is
 * cleared. Failures are retried with capped exponential backoff; an upload
 * that can never succeed (refused name, quota, repeated CORRUPT) is given up
 * after a bounded number of attempts: its content is hard-linked (or copied)
 * to <cache_dir>/lost+found/<path> and the error logged — never deleted.
 *
 * Items are keyed by @id (the node's stable id in the cache index). A newer
 * enqueue of the same id supersedes the older one; if the older one is being
 * uploaded at that moment, the newer content is uploaded again afterwards.
 *
 * Conflicts (design.md §3): if the server's current revision of the path is
 * no longer @base_md5/@base_size (someone else changed it since the local
 * copy was opened), the content is uploaded as
 * "NAME (conflict YYYY-MM-DD hhmmss).EXT" next to it and logged.
 *
 * The journal lives in <cache_dir>/journal.db. Threads: all functions are
 * thread-safe; callbacks run on worker threads with no queue lock held.
 *
 * For the caller (fs/), in detail:
 * - Content files belong to the cache. This module only reads them (opened
 *   by name at every attempt) and, when giving up, hard-links them into
 *   lost+found; it never writes, truncates or removes one. Keep a content
 *   file until the done callback of its generation (or of a newer one) or
 *   until upload_cancel() returned; a content file that disappears is given
 *   up after 3 attempts. Rewriting it in place is fine when a new
 *   generation is enqueued after the rewrite (a transfer of the older
 *   generation reading that same file is aborted; one reading another inode
 *   finishes). Before each attempt the file's inode, size and mtime are
 *   compared with those at enqueue; only if they differ is it re-hashed:
 *   same bytes -> uploaded; different and written to in the last 5 s ->
 *   retried later; different and quiet (a crash while a writer had it open)
 *   -> its current content is uploaded, with a warning.
 * - Generations: enqueue with a strictly increasing @gen per id; an older
 *   @gen than the journalled one is ignored (returns 0). The done callback
 *   names the generation it confirms; a newer one may still be pending
 *   (check upload_pending()).
 * - Base: pass the server revision (md5, size) the local copy started from.
 *   After a done callback with err 0 and server_path == item->path, that
 *   content IS the server revision: use it as the base of later
 *   generations. (Generations already queued are updated here, and so are
 *   those enqueued before that done callback returned that still carry the
 *   confirmed generation's base: no need to wait for the callback.)
 * - Write-back delay: an upload starts cfg->write_back_ms (default 2 s)
 *   after its enqueue, so that rename/unlink/rewrite right after close()
 *   costs no transfer; a file of 64 MiB or more after at most 250 ms (its
 *   transfer takes seconds: the delay would only postpone it);
 *   upload_wait() (fsync) and upload_drain() (unmount) start it at once.
 * - unlink: call upload_cancel(); it returns once no transfer of the file
 *   is running. Then delete the server path as usual, even if the file was
 *   never uploaded, when upload_pending() was true: a transfer may have
 *   completed just before the cancel (dl=true on a missing path is fine).
 * - rename of a file: call upload_rename() first; it aborts a transfer to
 *   the old path and returns once none is running (the upload restarts at
 *   the new path, from byte 0). Then move old -> new on the server as usual
 *   if anything may be at the old path (the file existed there, or an
 *   upload was pending and upload_rename() says a transfer may have left
 *   something there), treating -ENOENT as success. A file that was new
 *   (base_size -1) then replaces whatever is at the new path (POSIX rename
 *   over a target, rsync's temp file + rename), without a conflict check.
 *   Directories: upload_rename_dir(), then mvDir. A renamed upload that had
 *   been given up is tried again (its name was the likely reason).
 * - The done callback runs on a worker thread, after the job has freed its
 *   slot and with no lock of this module held. It may call upload_enqueue,
 *   _cancel, _rename*, _pending and _stats, but must not block on uploads
 *   (no upload_wait/_drain/_close: it would hold a worker). upload_wait()
 *   only returns once workers run: upload_start() before serving requests.
 */
#ifndef JOTTAFS_CACHE_UPLOAD_H
#define JOTTAFS_CACHE_UPLOAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct jfs;
struct upload_queue;

/* Content up to this size may travel in the journal with its record
 * (upload_item.inline_data): the bytes of most files a tar or rsync writes. */
#define UPLOAD_INLINE_MAX (64 * 1024)

struct upload_item {
	uint64_t id;              /* node id (stable in the cache index) */
	uint64_t gen;             /* content generation; bumped by every change */
	const char *path;         /* server path under the mountpoint (jfs.h form) */
	const char *content_file; /* absolute path of the cache file holding the content */
	int64_t size;
	char md5[33];             /* of the content, lower-case hex; "" when not hashed yet:
				     the worker hashes the content file before its first
				     attempt (a huge sparse file whose close() did not) */
	time_t created;
	time_t modified;
	char base_md5[33];        /* server content the local copy was based on; "" for a new file */
	int64_t base_size;        /* -1 for a new file */
	/* Small content whose cache file was not fsync'd (dcache_commit): its
	 * @size bytes, journalled with the record in one sync; the journal
	 * restores the cache file from them when it opens. NULL: the content
	 * file is durable already. */
	const void *inline_data;
	size_t inline_len;
	/* Only the times changed since a durable record of the same content
	 * (utimensat after close, as tar and rsync do): the record is written
	 * without waiting for a sync of its own (POSIX does not make times
	 * durable before fsync); a crash in between keeps the earlier times. */
	bool times_only;
};

/* Called when an upload finished: err 0 (server confirmed size+md5, @server_path
 * is where it landed — differs from item->path after a conflict), or -errno
 * when it was given up (content in lost+found). @md5: the content's MD5 (the
 * worker's when the item came without one; "" if it was never hashed). */
typedef void (*upload_done_cb)(void *ctx, uint64_t id, uint64_t gen, int err,
			       const char *server_path, const char *md5);

struct upload_ops;

struct upload_config {
	const char *cache_dir;    /* journal.db and lost+found/ live here */
	struct jfs *jfs;          /* must outlive the queue */
	unsigned transfers;       /* worker threads for files of any size (default 4) */
	int small_transfers;      /* more workers that take only files of at most
				     @small_max bytes: many small uploads are bound by
				     latency, not bandwidth (0: default 28; < 0: none) */
	int64_t small_max;        /* the small-file lane's size limit (0: default 4 MiB) */
	unsigned max_attempts;    /* before giving up (default 10) */
	upload_done_cb done;      /* may be NULL */
	void *done_ctx;
	/* May be NULL. Called by a worker before each attempt at @path: what
	 * must reach the service first (the namespace queue's deletes at the
	 * path or above it, cache/deletes.h) is applied; an error fails the
	 * attempt like a transfer error (-EHOSTDOWN: offline, retried). */
	int (*before)(void *ctx, const char *path);
	void *before_ctx;
	/* Zero means the default for each of these. */
	int write_back_ms;        /* an enqueued upload starts after this delay, so that a
				     rename/unlink/rewrite right after close() costs nothing
				     (default 2000; < 0: none). upload_wait() and upload_drain()
				     skip the delay. */
	unsigned backoff_min_ms;  /* first retry delay (default 1000) */
	unsigned backoff_max_ms;  /* retry delay cap (default 300000) */
	const struct upload_ops *ops; /* NULL: net/jfs through @jfs; else copied (a test fake) */
};

/* Open the journal (creating it). Does not start workers. */
int upload_open(const struct upload_config *cfg, struct upload_queue **out);
/* Start the workers; every record left in the journal (from a crash) is resumed. */
int upload_start(struct upload_queue *q);
/* Durably record a pending upload (see above). -ESTALE: the content file
 * no longer has @item->size bytes (written again since its commit). */
int upload_enqueue(struct upload_queue *q, const struct upload_item *item);
/* Block until the upload of @id at generation >= @gen is confirmed (0), given
 * up (-EIO), or cancelled (-ENOENT), or an attempt found the service offline
 * (-EHOSTDOWN, net/conn.h; the upload stays queued). For fsync(). */
int upload_wait(struct upload_queue *q, uint64_t id, uint64_t gen);
/* The file was unlinked: drop its pending upload (abort it if running). */
int upload_cancel(struct upload_queue *q, uint64_t id);
/* The file was renamed: the pending upload goes to @new_path instead. If the
 * old path was already (partly) uploaded the caller moves it on the server.
 * @touched (may be NULL: treated as true) is in and out: in, whether
 * @new_path may hold what a transfer of this file left there (false for a
 * rename; an undo passes back what the rename said); out, whether the old
 * path may: a transfer of the record ran (or an earlier process may have
 * run one) there. When it says false, nothing of this upload can be on the
 * service and a new file's rename needs no request. */
int upload_rename(struct upload_queue *q, uint64_t id, const char *new_path, bool *touched);
/* Is an upload of @id pending or running? */
bool upload_pending(struct upload_queue *q, uint64_t id);
/* Numbers for progress reports. */
void upload_stats(struct upload_queue *q, unsigned *files, int64_t *bytes);
/* Wait up to @timeout_s for the queue to empty, logging progress (files and
 * bytes left) every few seconds. 0 when empty, -ETIMEDOUT otherwise (what is
 * left stays journalled, and the log says so). */
int upload_drain(struct upload_queue *q, unsigned timeout_s);
/* Stop workers (running transfers are aborted, stay journalled) and close. */
void upload_close(struct upload_queue *q);

/*
 * A directory was renamed: every pending upload under @old_dir (server
 * path, no trailing '/') now goes under @new_dir. Running transfers under
 * @old_dir are aborted first; returns when none is left. The caller moves
 * the directory on the server (mvDir) as usual.
 */
int upload_rename_dir(struct upload_queue *q, const char *old_dir, const char *new_dir);

/*
 * The login was renewed: retry uploads paused by a dead login
 * (-EKEYREJECTED) now instead of at the next probe.
 */
void upload_resume(struct upload_queue *q);

/*
 * The service is reachable again (net/conn.h, offline -> online): every
 * pending upload waiting out a retry delay starts now, its backoff reset.
 */
void upload_retry_now(struct upload_queue *q);

/* Uploads given up (content in lost+found); their records stay in the journal. */
unsigned upload_given_up(struct upload_queue *q);

/*
 * The conflict name of server path @path detected at @t (UTC):
 * "dir/NAME (conflict YYYY-MM-DD hhmmss).EXT". EXT is the text after the
 * last '.' of the last segment; there is none when that segment has no '.',
 * when its only '.' is the first byte (".bashrc") or when it ends in '.'.
 * So "archive.tar.gz" gives "archive.tar (conflict ...).gz". A name that
 * would exceed NAMES_MAX_UNITS has its NAME shortened (at a character
 * boundary; names_insert_tag). Returns 0, -ENAMETOOLONG (@len too small),
 * -EINVAL or -ENOMEM.
 */
int upload_conflict_name(const char *path, time_t t, char *buf, size_t len);

/*
 * Retry delay in ms after @attempt failed attempts (1, 2, ...): min_ms
 * doubling per attempt up to max_ms, then "equal jitter" from @rnd: the
 * result lies in [d/2, d] where d is the un-jittered delay.
 */
int64_t upload_backoff_ms(unsigned attempt, unsigned min_ms, unsigned max_ms, uint32_t rnd);

/*
 * The network calls the workers make. The default (cfg->ops NULL) calls
 * net/jfs; unit tests pass a fake. Each returns 0 or -errno as the jfs_*
 * function of the same name. upload() must return -ECANCELED soon after
 * *cancel becomes true (a transfer aborted for unlink/rename/close).
 */
struct jfs_entry;
struct jfs_alloc;
struct jfs_alloc_req;
struct upload_ops {
	int (*stat)(void *ctx, const char *path, struct jfs_entry *out);
	void (*entry_release)(void *ctx, struct jfs_entry *e);
	int (*allocate)(void *ctx, const struct jfs_alloc_req *req, struct jfs_alloc *out);
	void (*alloc_release)(void *ctx, struct jfs_alloc *a);
	int (*upload)(void *ctx, const char *upload_url, int fd, int64_t resume_pos,
		      int64_t size, const char *md5, const atomic_bool *cancel);
	void *ctx;
	/* Optional: upload() that also stores the bytes sent so far (from
	 * resume_pos) in *sent; used instead of upload() when set. */
	int (*upload_progress)(void *ctx, const char *upload_url, int fd, int64_t resume_pos,
			       int64_t size, const char *md5, const atomic_bool *cancel,
			       _Atomic int64_t *sent);
};

/* Where the upload of one node stands. */
struct upload_state {
	bool pending;             /* journalled, not given up */
	bool running;             /* a transfer of it runs now */
	bool given_up;            /* given up: content in lost+found */
	int64_t done;             /* running: bytes the service has (resume_pos + sent) */
	int64_t total;            /* its size */
};
/* -ENOENT when no upload of @id is journalled. */
int upload_state(struct upload_queue *q, uint64_t id, struct upload_state *out);

/* A transfer running now. */
struct upload_xfer {
	char *path;               /* server path, malloc'd */
	int64_t done, total;
};
/* Up to @max running transfers in @v (*n of them); free each path. */
void upload_running(struct upload_queue *q, struct upload_xfer *v, size_t max, size_t *n);

#endif
