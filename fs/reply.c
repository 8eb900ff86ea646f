/*
 * fs/reply.c — replies built alike by the mount's operations and the
 * control directory (see fs/reply.h).
 */
#include "fs/reply.h"

#include <errno.h>

#include "cache/data.h"
#include "fs/fs.h"

void fs_reply_dcache(fuse_req_t req, struct dfile *df, struct dcache_seq *seq, off_t off,
		     size_t size)
{
	struct dcache_buf b;
	int err = dcache_read(df, seq, off, size, &b);

	if (err) {
		fs_reply_err(req, err == -ENOSPC ? -EIO : err);
		return;
	}
	if (!b.len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(b.len);
	bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	bv.buf[0].fd = b.fd;
	bv.buf[0].pos = b.off;
	/* After the reply the kernel may release the file at once (on
	 * another thread): the handle and its dfile are not touched from here;
	 * @b holds its own reference to the cache file. */
	fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
	dcache_buf_release(&b);
}

size_t fs_add_direntry(fuse_req_t req, char *buf, size_t room, const char *name,
		       const struct fuse_entry_param *e, off_t next, bool plus)
{
	if (plus)
		return fuse_add_direntry_plus(req, buf, room, name, e, next);
	return fuse_add_direntry(req, buf, room, name, &e->attr, next);
}
