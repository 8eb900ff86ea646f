/*
 * fs/reply.h — building replies that the mount's operations and the
 * control directory's give alike.
 *
 * fs_reply_dcache() answers every read served by cache/data: it makes the
 * bytes present (dcache_read) and replies straight from the cache file's
 * descriptor (fuse_reply_data with FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK), or
 * replies with the error (-ENOSPC, which a read cannot mean, becomes EIO).
 * fs_add_direntry() adds one entry to a readdir or readdirplus reply.
 * (Error replies: fs_reply_err() in fs/fs.h.)
 */
#ifndef JOTTAFS_FS_REPLY_H
#define JOTTAFS_FS_REPLY_H

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stddef.h>

struct dfile;
struct dcache_seq;

/*
 * Reply to @req with up to @size bytes of @df at @off (fewer at the end of
 * the file, none past it). @seq is the handle's sequential-read state. Once
 * the reply is sent the kernel may release the file on another thread, so
 * @df and @seq are not touched after it: the caller must not touch them
 * either.
 */
void fs_reply_dcache(fuse_req_t req, struct dfile *df, struct dcache_seq *seq, off_t off,
		     size_t size);

/*
 * Add entry @name to a directory reply being built in @buf, which has
 * @room bytes left: with @plus a readdirplus entry (@e's inode, attributes
 * and timeouts), else a readdir one (@e->attr's inode and mode). @next is
 * the offset of the entry after it. Returns the size the entry needs; more
 * than @room means it did not fit and nothing was added.
 */
size_t fs_add_direntry(fuse_req_t req, char *buf, size_t room, const char *name,
		       const struct fuse_entry_param *e, off_t next, bool plus);

#endif
