/*
 * fs/ops.c — the FUSE low-level operations of jottafs: the table, and the
 * operations on names, attributes and files.
 *
 * Every operation follows one pattern: map the inode number to a node id,
 * make the metadata it needs servable (cache/lister.h: from the index while
 * fresh, one folder GET when stale), answer from the index (cache/meta.h)
 * or the content cache (cache/data.h), or hand a change to the write path
 * (cache/write.h), and reply. Open directories are fs/dir.c, extended
 * attributes fs/xattr.c, statfs fs/statfs.c; only fs/ talks to libfuse's
 * reply functions, and errors reach the kernel through fs_reply_err().
 *
 * Threading model: libfuse's multi-threaded loop calls these functions on
 * up to max_threads threads at once. The fs/ files hold no lock of their
 * own except per-handle ones (struct dirh.lock, fs/dir.c), fs->qlock
 * (fs/statfs.c) and fs->h_lock (the list of open handles), all leaves;
 * every shared structure below (index, content cache, lister, write path,
 * inode table, notifier) is thread-safe and documents its own locks
 * (cache/write.h: the lock order of the write path). Nothing here holds a
 * lock while replying or while a request is out. Kernel invalidations are
 * queued to the notifier thread (fs/notify.h), never sent from here.
 *
 * Lookup counts: every successful entry reply (lookup, create, mkdir, and
 * each entry of readdirplus except "." and "..") adds one to the inode's
 * count in the inode table; a reply the kernel did not take is undone;
 * forget subtracts.
 *
 * Writes land in the content cache and are visible at once. close() —
 * FUSE's flush, which close(2) waits for, unlike release — commits the
 * file and journals its upload (writer_commit) before it returns; fsync()
 * additionally waits for the upload. Namespace changes (mkdir, rmdir,
 * unlink, rename, utimens of a clean file) are done on the service first,
 * then in the index (cache/write.h).
 */
#include "fs/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <fuse_lowlevel.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "auth/auth.h"
#include "cache/data.h"
#include "cache/lister.h"
#include "cache/meta.h"
#include "cache/write.h"
#include "fs/control.h"
#include "fs/itable.h"
#include "fs/notify.h"
#include "fs/options.h"
#include "fs/reply.h"
#include "lib/log.h"
#include "net/names.h"

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

void fs_reply_err(fuse_req_t req, int err)
{
	if (err > 0)
		err = -err;
	if (err == 0 || err == -EKEYREJECTED || err == -ECANCELED)
		err = -EIO;
	fuse_reply_err(req, -err);
}

void fs_reply_status(fuse_req_t req, int err)
{
	if (err)
		fs_reply_err(req, err);
	else
		fuse_reply_err(req, 0);
}

/* -EIO for a node whose listed attributes were refused (META_SIZE_BAD:
 * lister.c logged why), else 0. Checked wherever attributes reach the
 * kernel or content is opened. */
int fs_attr_check(const struct meta_attr *a)
{
	return !a->is_dir && a->size < 0 ? -EIO : 0;
}

/* Fill @st from node attributes (sizes never negative here: attr_check). */
void fs_fill_stat(const struct fs *fs, const struct meta_attr *a, struct stat *st)
{
	int64_t size = a->is_dir || a->size < 0 ? 0 : a->size;

	memset(st, 0, sizeof(*st));
	st->st_ino = fs_ino(fs, a->id);
	st->st_mode = a->is_dir ? (S_IFDIR | fs->dmode) : (S_IFREG | fs->fmode);
	/* 1 for directories: "unknown", so find(1) does not trust it to skip
	 * sub-directories (as on btrfs). */
	st->st_nlink = 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_size = size;
	st->st_blksize = 128 * 1024;
	st->st_blocks = size / 512 + (size % 512 != 0);    /* (size + 511) may overflow */
	/* Local content: what the cache file holds (a sparse file's holes
	 * take no room here until its upload). */
	if (!a->is_dir && a->local && fs->dc) {
		int64_t blocks = dcache_blocks(fs->dc, a->id);
		if (blocks >= 0)
			st->st_blocks = blocks;
	}
	st->st_mtim.tv_sec = a->mtime;
	st->st_atim.tv_sec = a->mtime;
	st->st_ctim.tv_sec = a->updated ? a->updated : a->mtime;
}

/* Files open with local changes: size and mtime come from the content cache. */
void fs_overlay_local(struct fs *fs, struct meta_attr *a)
{
	int64_t size;
	time_t mtime;

	if (!a->is_dir && fs->dc && dcache_peek(fs->dc, a->id, &size, &mtime)) {
		a->size = size;
		a->mtime = mtime;
	}
}

void fs_fill_entry(const struct fs *fs, const struct meta_attr *a, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = fs_ino(fs, a->id);
	e->generation = 1;
	fs_fill_stat(fs, a, &e->attr);
	e->attr_timeout = fs->timeout;
	e->entry_timeout = fs->timeout;
}

/* Reply to a lookup-like request with @a, counting the reference. */
static void reply_entry(fuse_req_t req, struct fs *fs, struct meta_attr *a)
{
	struct fuse_entry_param e;
	int err;

	fs_overlay_local(fs, a);
	fs_fill_entry(fs, a, &e);
	err = itable_ref(fs->it, e.ino);
	if (err) {
		fs_reply_err(req, err);
		return;
	}
	if (fuse_reply_entry(req, &e))
		itable_forget(fs->it, e.ino, 1);       /* the kernel never got it */
}

/* Is the login dead (the refresh token refused)? Says so once. From then
 * on the mount serves what it has cached, read-only. */
bool fs_login_dead(struct fs *fs)
{
	if (!fs->auth || !auth_is_dead(fs->auth))
		return false;
	if (!atomic_exchange(&fs->dead_logged, true))
		log_err("the service refused the login: run 'jottafs login%s%s' to log in "
			"again; until then the mount serves its cache, read-only",
			strcmp(fs->o->account, "default") ? " --account " : "",
			strcmp(fs->o->account, "default") ? fs->o->account : "");
	return true;
}

/* Writes are refused when mounted read-only or when the login is dead. */
int fs_check_writable(struct fs *fs)
{
	if (fs->ro || fs_login_dead(fs))
		return -EROFS;
	return 0;
}

/* ---- callbacks from the lister and the content cache ------------------------- */

void fs_changes(void *ctx, struct meta_changes *ch)
{
	struct fs *fs = ctx;

	for (size_t i = 0; i < ch->n; i++) {
		const struct meta_change *c = &ch->v[i];
		uint64_t pino = fs_ino(fs, c->parent), ino = fs_ino(fs, c->id);
		struct meta_attr a;

		switch (c->kind) {
		case META_REMOVED:
		case META_ADDED:
			/* Drop the dentry (or the negative one) if the kernel may hold it. */
			if (pino && c->name && (pino == 1 || itable_known(fs->it, pino)))
				notifier_inval_entry(fs->nt, pino, c->name);
			break;
		case META_CONTENT:
			/* A file turned bad keeps the content its open handles
			 * read; new opens fail (attr_check). */
			if (fs->dc && meta_get(fs->meta, c->id, &a) == 0 && !fs_attr_check(&a))
				dcache_invalidate(fs->dc, c->id, a.size, a.md5);
			if (ino && itable_known(fs->it, ino))
				notifier_inval_inode(fs->nt, ino, true);
			break;
		case META_ATTR:
			if (ino && itable_known(fs->it, ino))
				notifier_inval_inode(fs->nt, ino, false);
			break;
		}
	}
	if (fs->dc)
		dcache_gc(fs->dc);
}

void fs_mismatch(void *ctx, uint64_t id)
{
	struct fs *fs = ctx;
	struct meta_attr a;
	uint64_t ino = fs_ino(fs, id);

	/* The kernel may have cached some of the discarded bytes. */
	if (ino && itable_known(fs->it, ino))
		notifier_inval_inode(fs->nt, ino, true);
	/* Maybe the file changed on the service: relist its folder now, so a
	 * new revision is noticed before the content is fetched again. */
	if (meta_get(fs->meta, id, &a) == 0 && a.parent) {
		meta_set_stale(fs->meta, a.parent);
		lister_fresh(fs->ls, a.parent, LISTER_SYNC, NULL);
	}
}

/* ---- session ---------------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;

	/* libfuse fails the session unless init repeats -o max_read. */
	if (fs->o->max_read)
		conn->max_read = fs->o->max_read;
	/* What we want where the kernel offers it: readdirplus (attributes
	 * come with the listing anyway), splice both ways, asynchronous reads,
	 * parallel directory operations, and O_TRUNC with open() rather than
	 * as a separate truncate. */
	conn->want |= conn->capable & (FUSE_CAP_READDIRPLUS | FUSE_CAP_SPLICE_WRITE |
				       FUSE_CAP_SPLICE_MOVE | FUSE_CAP_SPLICE_READ |
				       FUSE_CAP_ASYNC_READ | FUSE_CAP_PARALLEL_DIROPS |
				       FUSE_CAP_ATOMIC_O_TRUNC);
	/* Always readdirplus, never the kernel's adaptive choice. */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	/* The kernel's writeback cache is unsafe for a network filesystem. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* The kernel may only lower what it offered; our own read-ahead in
	 * the content cache does the wide windows. */
	if (conn->max_readahead > 1024 * 1024)
		conn->max_readahead = 1024 * 1024;
	conn->max_write = 1024 * 1024;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

/* ---- names and attributes ----------------------------------------------------- */

/* Whether node attributes @a, read with result @err, can be shown (a
 * malformed record is EIO: fs_attr_check); if not, the error is the reply. */
static bool attr_usable(fuse_req_t req, int err, const struct meta_attr *a)
{
	if (!err)
		err = fs_attr_check(a);
	if (err)
		fs_reply_err(req, err);
	return !err;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	uint64_t pid = fs_id(fs, parent);
	struct meta_attr a;
	int err;

	if (control_ino(parent) || control_is_entry(fs, parent, name)) {
		control_op_lookup(req, parent, name);
		return;
	}
	err = lister_fresh(fs->ls, pid, 0, NULL);
	fs_login_dead(fs);
	if (err) {
		fs_reply_err(req, err);
		return;
	}
	err = meta_lookup(fs->meta, pid, name, &a);
	if (err == -ENOENT) {
		char *enc = NULL;
		struct fuse_entry_param e;

		if (names_encode(name, strlen(name), &enc) == -ENAMETOOLONG) {
			fs_reply_err(req, -ENAMETOOLONG);
			return;
		}
		free(enc);
		/* A negative entry, cached as long as the listing is trusted. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs->timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	if (!attr_usable(req, err, &a))
		return;
	reply_entry(req, fs, &a);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs *fs = fs_of(req);

	itable_forget(fs->it, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs *fs = fs_of(req);

	for (size_t i = 0; i < count; i++)
		itable_forget(fs->it, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

/* The current attributes of @id, revalidating its folder's listing when stale. */
static int get_fresh(struct fs *fs, uint64_t id, struct meta_attr *a)
{
	bool refreshed = false;
	int err = meta_get(fs->meta, id, a);

	if (err)
		return err;
	if (id != fs->root_id && a->parent) {
		err = lister_fresh(fs->ls, a->parent, 0, &refreshed);
		if (err && err != -ENOENT)
			return err;
		if (err || refreshed)
			return meta_get(fs->meta, id, a);
	}
	return 0;
}

/* An open file. */
struct fileh {
	struct fileh *prev, *next;      /* fs->files, under fs->h_lock */
	struct dfile *df;
	struct dcache_seq seq;
	uint64_t id;
	bool writable;
};

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct meta_attr a;
	struct stat st;
	int err;

	if (control_ino(ino)) {
		control_op_getattr(req, ino);
		return;
	}
	err = get_fresh(fs, fs_id(fs, ino), &a);
	if (err == -ENOENT) {
		/* fstat of a file unlinked (or renamed over) while open: it lives
		 * on, with no name. The kernel asks without the handle. */
		memset(&a, 0, sizeof(a));
		a.id = fs_id(fs, ino);
		if (fs->dc && dcache_peek_open(fs->dc, a.id, &a.size, &a.mtime)) {
			if (!a.mtime)
				a.mtime = time(NULL);
			fs_fill_stat(fs, &a, &st);
			st.st_nlink = 0;
			fuse_reply_attr(req, &st, 0);
			return;
		}
	}
	if (!attr_usable(req, err, &a))
		return;
	fs_overlay_local(fs, &a);
	fs_fill_stat(fs, &a, &st);
	fuse_reply_attr(req, &st, fs->timeout);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fileh *h = fi ? (struct fileh *)(uintptr_t)fi->fh : NULL;
	uint64_t id = fs_id(fs, ino);
	struct meta_attr a;
	struct stat st;
	int err;

	if (control_ino(ino)) {
		fs_reply_err(req, -EPERM);
		return;
	}
	err = meta_get(fs->meta, id, &a);
	if (!attr_usable(req, err, &a))
		return;
	if (h && a.is_dir)
		h = NULL;
	/* chmod and chown are accepted without effect (modes come from the
	 * mount options), so that cp -a and rsync -a work; so is atime. */
	if (to_set & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
		err = fs_check_writable(fs);
		if (err) {
			fs_reply_err(req, err);
			return;
		}
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (a.is_dir) {
			fs_reply_err(req, -EISDIR);
			return;
		}
		err = writer_set_size(fs->wr, &a, h ? h->df : NULL, attr->st_size);
		if (!err)
			err = meta_get(fs->meta, id, &a);
	}
	if (!err && (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))) {
		time_t t = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? time(NULL) : attr->st_mtim.tv_sec;
		err = writer_set_mtime(fs->wr, &a, h ? h->df : NULL, t);
		if (!err)
			err = meta_get(fs->meta, id, &a);
	}
	if (err) {
		fs_reply_err(req, err);
		return;
	}
	fs_overlay_local(fs, &a);
	fs_fill_stat(fs, &a, &st);
	fuse_reply_attr(req, &st, fs->timeout);
}

/* ---- files ------------------------------------------------------------------------ */

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	bool writable = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);
	struct meta_attr a;
	struct fileh *h;
	bool kept = false;
	int err;

	if (control_ino(ino)) {
		control_op_open(req, ino, fi);
		return;
	}
	err = meta_get(fs->meta, fs_id(fs, ino), &a);
	if (!attr_usable(req, err, &a))
		return;
	if (a.is_dir) {
		fs_reply_err(req, -EISDIR);
		return;
	}
	if (writable && (err = fs_check_writable(fs))) {
		fs_reply_err(req, err);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		fs_reply_err(req, -ENOMEM);
		return;
	}
	h->id = a.id;
	h->writable = writable;
	err = dcache_open(fs->dc, a.id, a.size, a.md5, &h->df, &kept);
	if (!err && (fi->flags & O_TRUNC)) {
		err = writer_truncate(fs->wr, h->df, a.id, 0);
		kept = false;
	}
	if (err) {
		if (h->df)
			dcache_close(h->df);
		free(h);
		fs_reply_err(req, err);
		return;
	}
	fi->fh = (uintptr_t)h;
	fi->keep_cache = kept;
	HLIST_ADD(fs, fs->files, h);
	if (fuse_reply_open(req, fi)) {
		HLIST_DEL(fs, fs->files, h);
		dcache_close(h->df);
		free(h);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fileh *h = (struct fileh *)(uintptr_t)fi->fh;

	if (control_ino(ino)) {
		control_op_read(req, ino, size, off, fi);
		return;
	}
	/* After the reply the kernel may release the file at once (on
	 * another thread): @h is not touched after this. */
	fs_reply_dcache(req, h->df, &h->seq, off, size);
}

/* Moves a write's data (in memory or in a pipe) into the cache file. */
static int copy_bufvec(void *ctx, int fd, int64_t off, size_t len, size_t *done)
{
	struct fuse_bufvec *src = ctx;
	struct fuse_bufvec dst = FUSE_BUFVEC_INIT(len);
	ssize_t n;

	dst.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	dst.buf[0].fd = fd;
	dst.buf[0].pos = off;
	n = fuse_buf_copy(&dst, src, 0);
	if (n < 0)
		return (int)n;
	*done = (size_t)n;
	return 0;
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv, off_t off,
			 struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fileh *h = (struct fileh *)(uintptr_t)fi->fh;
	size_t written = 0;
	int err;

	(void)ino;
	if (!h->writable) {
		fs_reply_err(req, -EBADF);
		return;
	}
	err = writer_write(fs->wr, h->df, h->id, off, fuse_buf_size(bufv), copy_bufvec, bufv,
			   &written);
	if (err && !written) {
		fs_reply_err(req, err);
		return;
	}
	fuse_reply_write(req, written);
}

/* close(2) waits for flush: commit here, so that a closed file is durable. */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fileh *h = (struct fileh *)(uintptr_t)fi->fh;
	int err = 0;

	if (control_ino(ino)) {
		fs_reply_status(req, 0);
		return;
	}
	if (h->writable)
		err = writer_commit(fs->wr, h->df, h->id);
	fs_reply_status(req, err);
}

/* Close handle @h: release, or the end of the session. */
static void fileh_release(struct fs *fs, struct fileh *h)
{
	/* Normally flush committed everything; writes through a shared mmap
	 * can arrive after it. */
	if (h->writable && dcache_uncommitted(h->df)) {
		int err = writer_commit(fs->wr, h->df, h->id);
		if (err)
			log_err("cannot keep the changes to node %llu: %s",
				(unsigned long long)h->id, strerror(-err));
	}
	dcache_close(h->df);
	free(h);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fileh *h = (struct fileh *)(uintptr_t)fi->fh;

	if (control_ino(ino)) {
		control_op_release(req, ino, fi);
		return;
	}
	HLIST_DEL(fs, fs->files, h);
	fileh_release(fs, h);
	fs_reply_status(req, 0);
}

void fs_release_all(struct fs *fs)
{
	unsigned n = 0;

	pthread_mutex_lock(&fs->h_lock);
	struct fileh *files = fs->files;
	struct dirh *dirs = fs->dirs;
	fs->files = NULL;
	fs->dirs = NULL;
	pthread_mutex_unlock(&fs->h_lock);
	while (files) {
		struct fileh *h = files;
		files = h->next;
		fileh_release(fs, h);
		n++;
	}
	while (dirs) {
		dirs = fs_dirh_free(dirs);
		n++;
	}
	if (n)
		log_debug("closed %u handle%s the kernel did not release before the unmount",
			  n, n == 1 ? "" : "s");
}

/*
 * copy_file_range of a whole clean file (the service holds exactly what the
 * index says) into a new or emptied file becomes a server-side copy (cp=,
 * docs 8.5): no content moves. Everything else — a partial range, a source
 * with local changes or a pending upload, a destination with content, a
 * file over 4 GiB (the kernel caps one request below it), a failed copy —
 * answers EOPNOTSUPP, and the kernel copies through read and write itself
 * (cache/write.h writer_copy).
 */
static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct fs *fs = fs_of(req);
	struct fileh *dst = fi_out ? (struct fileh *)(uintptr_t)fi_out->fh : NULL;
	int64_t copied = 0;
	int err = -EOPNOTSUPP;

	(void)fi_in;
	if (!control_ino(ino_in) && !control_ino(ino_out) && dst && dst->writable &&
	    off_in == 0 && off_out == 0 && flags == 0 && ino_in != ino_out)
		err = fs_check_writable(fs) ? -EOPNOTSUPP :
		      writer_copy(fs->wr, fs_id(fs, ino_in), dst->id, &dst->df, len, &copied);
	if (err)
		fs_reply_err(req, err == -EOPNOTSUPP ? -EOPNOTSUPP : -EIO);
	else
		fuse_reply_write(req, (size_t)copied);
}

/* fsync: commit, then wait until the service confirmed the upload. */
static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fileh *h = fi ? (struct fileh *)(uintptr_t)fi->fh : NULL;
	(void)datasync;
	if (control_ino(ino)) {
		fs_reply_status(req, 0);
		return;
	}
	fs_reply_status(req, writer_fsync(fs->wr, h && h->writable ? h->df : NULL,
					  fs_id(fs, ino)));
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fs_reply_status(req, 0);       /* namespace changes are on the service already */
}

/* ---- the namespace ---------------------------------------------------------------- */

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fuse_entry_param e;
	struct meta_attr a;
	struct fileh *h;
	int err;

	if (!S_ISREG(mode) || control_ino(parent)) {
		fs_reply_err(req, -EPERM);
		return;
	}
	h = calloc(1, sizeof(*h));
	err = h ? fs_check_writable(fs) : -ENOMEM;
	if (!err)
		err = writer_create(fs->wr, fs_id(fs, parent), name, &a, &h->df);
	if (err) {
		free(h);
		fs_reply_err(req, err);
		return;
	}
	h->id = a.id;
	h->writable = true;
	fi->fh = (uintptr_t)h;
	fs_fill_entry(fs, &a, &e);
	if (itable_ref(fs->it, e.ino)) {
		dcache_close(h->df);
		free(h);
		fs_reply_err(req, -ENOMEM);
		return;
	}
	HLIST_ADD(fs, fs->files, h);
	if (fuse_reply_create(req, &e, fi)) {
		HLIST_DEL(fs, fs->files, h);
		itable_forget(fs->it, e.ino, 1);
		dcache_close(h->df);
		free(h);
	}
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fs *fs = fs_of(req);
	struct meta_attr a;
	int err;

	(void)mode;
	if (control_ino(parent)) {
		fs_reply_err(req, -EPERM);
		return;
	}
	err = fs_check_writable(fs);
	if (!err)
		err = writer_mkdir(fs->wr, fs_id(fs, parent), name, &a);
	if (err) {
		fs_reply_err(req, err);
		return;
	}
	reply_entry(req, fs, &a);
}

/* unlink and rmdir: the control directory's own, or the write path's. */
static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, bool dir)
{
	struct fs *fs = fs_of(req);

	if (control_ino(parent)) {
		if (dir)
			control_op_rmdir(req, parent, name);
		else
			control_op_unlink(req, parent, name);
		return;
	}
	int err = fs_check_writable(fs);
	if (!err)
		err = dir ? writer_rmdir(fs->wr, fs_id(fs, parent), name)
			  : writer_unlink(fs->wr, fs_id(fs, parent), name);
	fs_reply_status(req, err);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, false);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, true);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct fs *fs = fs_of(req);
	int err;

	if (control_ino(parent) || control_ino(newparent)) {
		control_op_rename(req, parent, name, newparent, newname, flags);
		return;
	}
	if (control_is_entry(fs, parent, name) || control_is_entry(fs, newparent, newname)) {
		fs_reply_err(req, -EPERM);     /* the control directory stays where it is */
		return;
	}
	if (flags & ~RENAME_NOREPLACE) {
		fs_reply_err(req, -EINVAL);    /* RENAME_EXCHANGE, WHITEOUT */
		return;
	}
	err = fs_check_writable(fs);
	if (!err)
		err = writer_rename(fs->wr, fs_id(fs, parent), name, fs_id(fs, newparent), newname,
				    flags & RENAME_NOREPLACE);
	fs_reply_status(req, err);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link;
	(void)parent;
	(void)name;
	fs_reply_err(req, -EPERM);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	fs_reply_err(req, -EPERM);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)rdev;
	fs_reply_err(req, -EPERM);
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.opendir = fs_op_opendir,
	.readdir = fs_op_readdir,
	.readdirplus = fs_op_readdirplus,
	.releasedir = fs_op_releasedir,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.flush = op_flush,
	.fsync = op_fsync,
	.fsyncdir = op_fsyncdir,
	.write_buf = op_write_buf,
	.copy_file_range = op_copy_file_range,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.create = op_create,
	.symlink = op_symlink,
	.link = op_link,
	.mknod = op_mknod,
	.statfs = fs_op_statfs,
	.getxattr = fs_op_getxattr,
	.listxattr = fs_op_listxattr,
	.setxattr = fs_op_setxattr,
	.removexattr = fs_op_removexattr,
};

const struct fuse_lowlevel_ops *fs_ops(void)
{
	return &ops;
}
