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
 */
#ifndef JOTTAFS_CACHE_UPLOAD_H
#define JOTTAFS_CACHE_UPLOAD_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct jfs;
struct upload_queue;

struct upload_item {
	uint64_t id;              /* node id (stable in the cache index) */
	uint64_t gen;             /* content generation; bumped by every change */
	const char *path;         /* server path under the mountpoint (jfs.h form) */
	const char *content_file; /* absolute path of the cache file holding the content */
	int64_t size;
	char md5[33];             /* of the content, lower-case hex */
	time_t created;
	time_t modified;
	char base_md5[33];        /* server content the local copy was based on; "" for a new file */
	int64_t base_size;        /* -1 for a new file */
};

/* Called when an upload finished: err 0 (server confirmed size+md5, @server_path
 * is where it landed — differs from item->path after a conflict), or -errno
 * when it was given up (content in lost+found). */
typedef void (*upload_done_cb)(void *ctx, uint64_t id, uint64_t gen, int err,
			       const char *server_path);

struct upload_config {
	const char *cache_dir;    /* journal.db and lost+found/ live here */
	struct jfs *jfs;          /* must outlive the queue */
	unsigned transfers;       /* worker threads (default 4) */
	unsigned max_attempts;    /* before giving up (default 10) */
	upload_done_cb done;      /* may be NULL */
	void *done_ctx;
};

/* Open the journal (creating it). Does not start workers. */
int upload_open(const struct upload_config *cfg, struct upload_queue **out);
/* Start the workers; every record left in the journal (from a crash) is resumed. */
int upload_start(struct upload_queue *q);
/* Durably record a pending upload (see above). */
int upload_enqueue(struct upload_queue *q, const struct upload_item *item);
/* Block until the upload of @id at generation >= @gen is confirmed (0), given
 * up (-EIO), or cancelled (-ENOENT). For fsync(). */
int upload_wait(struct upload_queue *q, uint64_t id, uint64_t gen);
/* The file was unlinked: drop its pending upload (abort it if running). */
int upload_cancel(struct upload_queue *q, uint64_t id);
/* The file was renamed: the pending upload goes to @new_path instead. If the
 * old path was already (partly) uploaded the caller moves it on the server. */
int upload_rename(struct upload_queue *q, uint64_t id, const char *new_path);
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

#endif
