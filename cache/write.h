/*
 * cache/write.h — the write path: what a change of the mounted tree does to
 * the index (cache/meta.h), the content cache (cache/data.h), the upload
 * journal (cache/upload.h) and the service (net/jfs.h).
 *
 * fs/ maps inode numbers to node ids, calls one function here and replies;
 * everything between — names the case-insensitive service would refuse,
 * unlink of a file whose upload is pending, rename over a target, a
 * pending upload following its file, the upload-done bookkeeping — lives
 * here, and is unit-tested without FUSE (tests/unit/test_write.c).
 *
 * Content. Writes land in the content cache and are visible at once; the
 * first change of a file records it in the index as locally changed, so
 * that listings leave its attributes alone. writer_commit() (close(2)
 * through FUSE's flush, and a truncate or utimens of a file nobody has
 * open) fetches the rest of the base, finishes the MD5, fsyncs the cache
 * file and journals the upload: on 0 the change is durable (design.md §4).
 * writer_fsync() then also waits for the service to confirm it. The upload
 * queue's done callback (writer_upload_done) records what the service
 * holds: the base of later changes, clean content, or — a conflict copy, a
 * given-up upload — drops the local changes so that the service's version
 * shows.
 *
 * Namespace. rename and utimens of a clean file are done on the service
 * first, then in the index; unlink, rmdir and mkdir are journalled in the
 * namespace queue (cache/deletes.h) and change the index at once, the
 * service following in the background (without a queue: on the service
 * first). A new folder stays marked in the index (META_LOCAL_NEWDIR) until
 * the service has it. What is made or moved at a path with a delete pending
 * there waits for that delete (delq_flush); what the service holds and is
 * moved into a new folder waits for the folder (delq_flush_parents). A folder whose entries changed gets new times. A new name that the service sees as an existing
 * entry (case, another spelling) is -EEXIST; over 255 UTF-16 units
 * -ENAMETOOLONG.
 *
 * Per node, the writer keeps what it journalled: the generation journalled
 * last (fsync waits for it), the last one confirmed, and the content of
 * every generation in between (any of them may be the one the service
 * confirms, however many were journalled while it uploaded).
 *
 * Locks, in the order they are taken (a lock is only taken while holding
 * those above it, never the other way):
 *   1. w->stripe[k].lock — the per-node state of the node ids that hash to
 *      stripe k (one of WRITER_STRIPES). A commit holds it from reading the
 *      node's base to journalling it, the done callback of that node while
 *      it records the new base: so a commit never journals a base the
 *      service no longer holds. It is held across upload_enqueue (an
 *      fsync'd SQLite commit), but only changes of nodes of the same stripe
 *      wait on it; closes, fsyncs, unlinks and done callbacks of other
 *      nodes proceed. Never held across network I/O; one thread holds at
 *      most one stripe (operations on two nodes take them one after the
 *      other). Waits on it (an upload that landed but whose callback has
 *      not run: at most ~10 s) use CLOCK_MONOTONIC.
 *   2. the content cache's locks (cache/data.h: dfile, then dcache);
 *   3. the upload queue's lock (cache/upload.h);
 *   4. the index's lock (cache/meta.h), a leaf.
 * The lister's lock (cache/lister.h) is a leaf never taken under a stripe.
 * Hooks are called with no lock of this module held.
 *
 * Errors: 0 or -errno; -EKEYREJECTED (the login is dead) and -ECANCELED
 * may come back from the service calls: the caller maps them (fs/fs.h).
 */
#ifndef JOTTAFS_CACHE_WRITE_H
#define JOTTAFS_CACHE_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cache/data.h"

struct conn;
struct delq;
struct jfs;
struct lister;
struct meta;
struct meta_attr;
struct meta_changes;
struct upload_queue;
struct writer;

/* The largest file jottafs writes (writes and truncates past it: -EFBIG).
 * close() hashes the whole file, holes included (the service takes the MD5
 * before the content, and an upload is one POST: docs 7.6); MD5 runs at
 * about 0.7 GB/s, so at this size a close() may take about 100 s. */
#define WRITER_FILE_MAX (64LL << 30)

struct writer_config {
	struct meta *meta;          /* each must outlive the writer */
	struct dcache *dc;
	struct lister *ls;
	struct jfs *jfs;
	struct conn *conn;          /* may be NULL; fsync asks an offline one again */
	uint64_t root_id;           /* the mount root: never removed (-EBUSY) */
	bool hard_delete;           /* deletions skip the trash */
	struct delq *deletes;       /* may be NULL: unlink and rmdir delete on the
				       service before they return */
	/* Hooks (each may be NULL), called with no lock of this module held: */
	void (*changes)(void *ctx, struct meta_changes *ch);   /* nodes dropped */
	void (*uploaded)(void *ctx, uint64_t id, int err,      /* first thing in */
			 const char *server_path);             /* every done callback */
	void (*trashed)(void *ctx);                            /* a deletion was made */
	void *ctx;
};

/* A writer with no upload queue yet (commits answer -EROFS until
 * writer_set_queue). */
int writer_new(const struct writer_config *cfg, struct writer **out);
/* The upload queue, opened with writer_upload_done as its done callback
 * and this writer as its context; set before requests are served and
 * before upload_start(). The queue must be closed before writer_free(). */
void writer_set_queue(struct writer *w, struct upload_queue *up);
void writer_free(struct writer *w);

/* ---- content (@df: the open content of node @id) ---- */

/* Write @len bytes at @off through @copy (dcache_write). Past
 * WRITER_FILE_MAX: as much as fits, then -EFBIG. *@written is what was
 * written even on error. */
int writer_write(struct writer *w, struct dfile *df, uint64_t id, int64_t off, size_t len,
		 dcache_copy_fn copy, void *ctx, size_t *written);
/* Set the size of the open content @df (O_TRUNC: 0). */
int writer_truncate(struct writer *w, struct dfile *df, uint64_t id, int64_t size);
/* Commit @df and journal its upload (see above): 0 when durable, -EIO
 * when it could not be journalled, -EROFS without a queue. */
int writer_commit(struct writer *w, struct dfile *df, uint64_t id);
/* fsync: commit @df (NULL: nothing to commit), then wait until the service
 * confirmed the generation journalled last. 0 (also: the file was
 * unlinked meanwhile), -EHOSTDOWN (the service is offline: the upload
 * stays journalled), -ENOSPC, or -EIO. */
int writer_fsync(struct writer *w, struct dfile *df, uint64_t id);
/* truncate(2): file @a to @size, through @df when open (NULL: opened,
 * committed and closed here — that is its close). */
int writer_set_size(struct writer *w, const struct meta_attr *a, struct dfile *df,
		    int64_t size);
/* utimens: mtime at 1 s precision of @a (a folder: in the index only; a
 * clean file: on the service, without upload; a changed one: with its
 * upload), through @df when open. */
int writer_set_mtime(struct writer *w, const struct meta_attr *a, struct dfile *df,
		     time_t mtime);
/*
 * copy_file_range of all of clean file @src into the empty file @dst (open
 * as *@dst_df) becomes a copy on the service: on 0, *@copied bytes and
 * *@dst_df is reopened on the copied revision. Anything else — a partial
 * range (@len below the size), local changes or a pending upload on
 * either side, content in @dst, a failed copy — is -EOPNOTSUPP (the caller
 * copies through read and write), or -errno when reopening failed.
 */
int writer_copy(struct writer *w, uint64_t src, uint64_t dst, struct dfile **dst_df,
		size_t len, int64_t *copied);

/* ---- namespace (@pid: a folder's node id; @name: a POSIX name) ---- */

/* A new empty local file: its attributes in *@a, its open content in *@df
 * (the caller closes it). */
int writer_create(struct writer *w, uint64_t pid, const char *name, struct meta_attr *a,
		  struct dfile **df);
/* A new folder, on the service first: its attributes in *@a. */
int writer_mkdir(struct writer *w, uint64_t pid, const char *name, struct meta_attr *a);
/* Remove file @name (its pending upload cancelled); -EISDIR for a folder. */
int writer_unlink(struct writer *w, uint64_t pid, const char *name);
/* Remove empty folder @name: -ENOTEMPTY, -ENOTDIR, -EBUSY for the root. */
int writer_rmdir(struct writer *w, uint64_t pid, const char *name);
/* rename(2): a target is replaced (POSIX) unless @noreplace (-EEXIST); a
 * pending upload follows its file. */
int writer_rename(struct writer *w, uint64_t pid, const char *name, uint64_t npid,
		  const char *newname, bool noreplace);

/* ---- uploads ---- */

/* The upload queue's done callback (cache/upload.h upload_done_cb; @ctx is
 * the writer). */
void writer_upload_done(void *ctx, uint64_t id, uint64_t gen, int err, const char *server_path,
			const char *md5);
/* At mount, after upload_start(): local changes with no journalled upload
 * (never closed, or uploaded just before a crash) are dropped — the
 * service's version wins (logged). */
void writer_recover(struct writer *w);
/* Startup, after the namespace queue is open: folders marked as pending in
 * the index whose creation is not journalled follow the service again. */
void writer_recover_dirs(struct writer *w);

#endif
