/*
 * cache/data.h — the content cache: one sparse cache file per file node,
 * <cache_dir>/data/<id>, plus the set of byte ranges present in it
 * (cache/ranges.h), persisted in the index (meta_content_*).
 *
 * Reads. dcache_read() makes a byte range present and hands back the cache
 * file's descriptor, so the caller replies straight from it
 * (fuse_reply_data with FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK). Missing bytes
 * are fetched by a pool of download workers with ranged GETs
 * (jfs_download); a reader waits only until ITS bytes are present, not for
 * the whole request. A read that misses fetches what it asks for and 128
 * KiB more (the first read of a run at least 240 KiB), in one request, so
 * a probe costs one request: what it reads and the kernel's read-ahead. A reader that has read 1 MiB in one sequential run
 * gets a stream: one ranged GET to the end of the file that writes into
 * the cache file as bytes arrive and pauses (flow control, no new request)
 * once it is as far ahead of its reader as the run is long (at most 32
 * MiB); a read elsewhere, a close of the file, or a reader idle for 15 s
 * ends it. Received bytes go from curl's buffer to the cache file and the
 * running MD5, never copied or read back on the way.
 * Two readers of one missing range wait for one fetch. A fetch cut off
 * mid-body resumes from the byte where it stopped; the service delivering
 * fewer bytes than asked is -EIO, never zeros.
 *
 * Verification. When every byte of a file is present, its MD5 (computed
 * incrementally as the present prefix grows, so the check at the end
 * covers only the last bytes) is compared with the server's before the
 * read that found it complete is answered. On mismatch the content is
 * discarded (logged) and that read fails with -EIO, as does every later
 * read of a handle that was reading the discarded content (its reader
 * holds some of those bytes); other handles (a new open) fetch it again.
 * A second mismatch of the same revision makes every read fail with -EIO
 * until the revision changes; it is remembered beyond the last close. The
 * caller drops the kernel's copy through the mismatch callback, and opens
 * after a mismatch do not keep the kernel's page cache until the content
 * was verified.
 *
 * Revisions. Content belongs to one server revision (size, md5). Opening a
 * file whose revision changed, or dcache_invalidate(), drops it; an open
 * file is then reset in place (a fresh cache file; readers still replying
 * from the old one finish on it).
 *
 * Bound. Clean content is evicted least recently used first once the total
 * exceeds max_size; open files and local (dirty) content are never evicted,
 * and local content may exceed the bound (logged): only a full disk fails
 * a write, with ENOSPC.
 *
 * Local content (the write path). A file written locally holds "local"
 * content: every byte written is present, bytes of the server revision it
 * started from (its base) that were not overwritten are fetched in the
 * background and at the latest by dcache_commit() — so a write never waits
 * for the network, an upload never sends a hole. Local content is recorded
 * dirty in the index: never evicted, never dropped for a new server
 * revision, kept across restarts; dcache_set_clean() ends that once the
 * upload is confirmed.
 *
 * Threads: all functions are thread-safe. Lock order: dfile lock, then the
 * dcache lock, then the index's (leaf). No lock is held across network I/O.
 * Bytes enter a cache file under its dfile lock (a download worker writes
 * only bytes still missing, so it never overwrites a local write); replies
 * read present bytes from the descriptor without it.
 */
#ifndef JOTTAFS_CACHE_DATA_H
#define JOTTAFS_CACHE_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct jfs;
struct meta;
struct dcache;
struct dfile;

struct dcache_config {
	const char *dir;          /* content files live here (created, 0700) */
	struct meta *meta;        /* must outlive the cache */
	struct jfs *jfs;          /* must outlive the cache */
	uint64_t max_size;        /* bound on clean cached bytes; 0: unbounded */
	unsigned fetch_threads;   /* download workers; 0: 8 */
	unsigned stream_idle_ms;  /* a stream whose reader stays away this long
				     ends; 0: 15 s */
	unsigned read_streams;    /* ranged GETs a sequential reader keeps in
				     flight: 0 or 1, one stream; more: its window
				     in parts fetched side by side */
	/* Called (on the reading thread, no lock held) when a fully fetched file
	 * did not match the server's MD5: the caller may refresh its metadata
	 * and should drop the kernel's cached pages of the file. */
	void (*mismatch)(void *ctx, uint64_t id);
	void *mismatch_ctx;
	/* dcache_commit() of content up to this size does not fsync the cache
	 * file: it hands the bytes to the caller (dcache_commit.inline_data),
	 * who makes them durable with the upload record (one sync for both;
	 * cache/journal.c restores the cache file from them after a crash).
	 * 0: every commit fsyncs. */
	size_t inline_max;
	/* True when a cache file holds the content of a pending upload: after
	 * an unclean shutdown such a file is kept even if the index (which is
	 * not synced) lost its record. NULL: none is. Called from
	 * dcache_start(). */
	bool (*pending)(void *ctx, uint64_t id);
	void *pending_ctx;
};

/* Create the cache (no threads yet). After an unclean shutdown, clean
 * content is dropped: its cache files may hold bytes that never reached disk. */
int dcache_new(const struct dcache_config *cfg, struct dcache **out);
/* Start the download workers and collect garbage. Call after fork(). */
int dcache_start(struct dcache *dc);
/* Stop the download workers (fetches in flight are cancelled); the cache
 * stays usable for bookkeeping (invalidate, gc, close) but fetches no more.
 * NULL: nothing. */
void dcache_stop(struct dcache *dc);
/* Stop (if not yet), persist the state of files still open, free. */
void dcache_free(struct dcache *dc);

/*
 * Open the content of file @id whose server revision is (@size, @md5).
 * Content recorded for another revision is dropped. *@kept (may be NULL)
 * is true when the content (and so the kernel's page cache) still belongs
 * to this revision. Every open is paired with dcache_close().
 */
int dcache_open(struct dcache *dc, uint64_t id, int64_t size, const char *md5,
		struct dfile **out, bool *kept);
void dcache_close(struct dfile *f);
/*
 * dcache_open() of immutable content that is not a node's current
 * revision — revision @revision (0: current) of server path @path, e.g. an
 * old version or a trashed file shown in the control directory — under a
 * private @id that no index node uses. Fetched, verified against
 * (@size, @md5) and evicted like any content. Read-only: never write it.
 */
int dcache_open_ref(struct dcache *dc, uint64_t id, int64_t size, const char *md5,
		    const char *path, int64_t revision, struct dfile **out);

/* Read state of one open file handle (zero-initialise it); dcache_read()
 * calls on one handle are serialised by the dfile's lock. */
struct dcache_seq {
	int64_t next;             /* where a sequential read would start; 0 before any */
	int64_t run;              /* bytes asked for by the current sequential run */
	bool started;
	uint64_t epoch;           /* the content it is served from; 0 before any read */
};

/* A byte range of a cache file to reply from; release with dcache_buf_release().
 * It holds the cache file open by itself: it may be released after the file
 * was closed (a reply done, the kernel may release the file at once). */
struct dcache_buf {
	int fd;
	int64_t off;
	size_t len;               /* 0 at end of file */
	void *body_;              /* private */
};

/*
 * Make bytes [off, off+len) of @f present (clamped to the file size),
 * fetching what is missing, and describe where they are in *buf. 0, or
 * -EIO (download failed, short body, the file did not match its MD5: see
 * Verification above), -EINTR never.
 */
int dcache_read(struct dfile *f, struct dcache_seq *seq, int64_t off, size_t len,
		struct dcache_buf *buf);
void dcache_buf_release(struct dcache_buf *buf);

/* The size of the revision @f holds. */
int64_t dcache_size(struct dfile *f);

/* The server revision of @id is now (@size, @md5): drop content of another
 * revision (open files are reset in place). */
void dcache_invalidate(struct dcache *dc, uint64_t id, int64_t size, const char *md5);
/* Delete the cache files queued by the index (removed nodes, dropped
 * revisions), except those open. */
void dcache_gc(struct dcache *dc);

/* ---- local content (the write path) ---- */

/* The content of a new, empty local file @id (not yet committed). */
int dcache_create(struct dcache *dc, uint64_t id, struct dfile **out);

/*
 * Write @len bytes at @off: @copy moves them into descriptor @fd at @off
 * (pwrite, or fuse_buf_copy from a pipe) and stores the count in *done.
 * The first change turns the file's content local and starts fetching the
 * rest of its base in the background; *@first (may be NULL) tells the
 * caller (to record the node as locally changed). -ENOSPC when the disk
 * is full.
 */
typedef int (*dcache_copy_fn)(void *ctx, int fd, int64_t off, size_t len, size_t *done);
int dcache_write(struct dfile *f, int64_t off, size_t len, dcache_copy_fn copy, void *ctx,
		 size_t *written, bool *first);
/* Set the size (truncate or extend with zeros); a change like a write. */
int dcache_truncate(struct dfile *f, int64_t size, bool *first);
/* Set the modification time of local content (utimens on a changed file). */
void dcache_set_mtime(struct dfile *f, time_t mtime);

struct dcache_commit {
	bool committed;           /* false: nothing changed since the last commit */
	int64_t size;
	char md5[33];             /* "": not hashed yet (a huge sparse file): the upload
				     hashes the cache file */
	uint64_t seq;             /* this commit's number, for dcache_set_clean() */
	time_t mtime;
	char path[4096];          /* the cache file (for the upload journal) */
	/* Content within dcache_config.inline_max: its bytes (malloc'd, the
	 * caller frees them with dcache_commit_release()); the cache file was
	 * not fsync'd. NULL: the cache file is durable. */
	void *inline_data;
	size_t inline_len;
};
/*
 * Make the local content complete and durable: fetch the bytes of the base
 * still missing, finish the MD5, fsync the cache file (or, for small
 * content, hand its bytes over: inline_max), record the state.
 * When more than 256 MiB are left to hash (a huge sparse file, a rewrite
 * far from the end), the MD5 is left to the upload (out->md5 ""), so that
 * close() returns promptly whatever the file's apparent size.
 * 0 (out->committed false when there was nothing to commit), -EIO when the
 * base could not be fetched, -ENOENT when the file was discarded.
 */
int dcache_commit(struct dfile *f, struct dcache_commit *out);
/* Free what a dcache_commit() handed over (inline_data). */
void dcache_commit_release(struct dcache_commit *c);
/* Does the open file have changes not yet committed? */
bool dcache_uncommitted(struct dfile *f);

/*
 * The upload of @id's content (@size, @md5) was confirmed: unless it was
 * changed again meanwhile, the content is clean now (evictable, the new
 * base). Content committed without its MD5 is taken to be that upload's
 * when its commit was number @seq (0: not known — then only if no commit
 * happened since the file was opened). Returns true when it became clean,
 * with its mtime in *mtime.
 */
bool dcache_set_clean(struct dcache *dc, uint64_t id, int64_t size, const char *md5,
		      uint64_t seq, time_t *mtime);
/* @id was unlinked: drop its content, local or not (an open file keeps
 * working on its descriptor, and records nothing any more). */
void dcache_discard(struct dcache *dc, uint64_t id);
/* If @id is open with local content, its current size and mtime. */
bool dcache_peek(struct dcache *dc, uint64_t id, int64_t *size, time_t *mtime);
/* If @id is open at all (also unlinked while open), its current size and
 * the mtime of its local content (0 when it never had any). */
bool dcache_peek_open(struct dcache *dc, uint64_t id, int64_t *size, time_t *mtime);
/* 512-byte blocks the cache file of @id has allocated (its local extent:
 * holes take none), or -1 when there is none. */
int64_t dcache_blocks(struct dcache *dc, uint64_t id);
/* Path of @id's cache file in @buf. */
void dcache_path(struct dcache *dc, uint64_t id, char *buf, size_t len);

/* Counters for tests and reports. */
struct dcache_stats {
	uint64_t fetches;         /* ranged GETs sent */
	uint64_t fetched_bytes;   /* bytes received */
	uint64_t streams;         /* streams started (ranged GETs that follow a
				     sequential reader) */
	uint64_t parts;           /* parts fetched side by side (read_streams) */
	uint64_t mismatches;      /* MD5 mismatches */
	int64_t cached_bytes;     /* bytes present in cache files */
	int64_t local_bytes;      /* size of local (not yet uploaded) content */
	unsigned jobs;            /* fetches queued or running (0: the workers are idle) */
};
void dcache_stats(struct dcache *dc, struct dcache_stats *out);

#endif
