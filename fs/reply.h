/*
 * fs/reply_data.h — answering a FUSE read from the content cache.
 *
 * One function for every read served by cache/data: it makes the bytes
 * present (dcache_read) and replies straight from the cache file's
 * descriptor (fuse_reply_data with FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK), or
 * replies with the error (-ENOSPC, which a read cannot mean, becomes EIO).
 */
#ifndef JOTTAFS_FS_REPLY_DATA_H
#define JOTTAFS_FS_REPLY_DATA_H

#include <fuse_lowlevel.h>
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

#endif
