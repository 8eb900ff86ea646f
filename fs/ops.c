/*
 * fs/ops.c — the FUSE low-level operations of jottafs.
 *
 * Every operation follows one pattern: map the inode number to a node id,
 * make the metadata it needs servable (fs/lister.h: from the index while
 * fresh, one folder GET when stale), answer from the index (cache/meta.h)
 * or the content cache (cache/data.h), reply. Only this file talks to
 * libfuse's reply functions.
 *
 * Threading model: libfuse's multi-threaded loop calls these functions on
 * up to max_threads threads at once. This file holds no lock of its own
 * except per-handle ones (struct dirh.lock) and fs->qlock, both leaves;
 * every shared structure below (index, content cache, lister, inode table,
 * notifier) is thread-safe and documents its own locks. Nothing here holds
 * a lock while replying or while a request is out. Kernel invalidations are
 * queued to the notifier thread (fs/notify.h), never sent from here.
 *
 * Lookup counts: every successful entry reply (lookup, create, mkdir, and
 * each entry of readdirplus except "." and "..") adds one to the inode's
 * count in the inode table; a reply the kernel did not take is undone;
 * forget subtracts.
 */
#include "fs/fs.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "auth/auth.h"
#include "cache/data.h"
#include "cache/meta.h"
#include "fs/itable.h"
#include "fs/lister.h"
#include "fs/notify.h"
#include "fs/options.h"
#include "lib/log.h"
#include "net/names.h"

#define XATTR_PREFIX    "user.jottacloud."
#define QUOTA_TTL_S     60.0
#define UNLIMITED_TOTAL (1LL << 50)     /* 1 PiB shown for accounts without a quota */
#define STATFS_BSIZE    4096

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reply with a negative errno from the modules (mapping what the kernel
 * should not see). */
static void reply_err(fuse_req_t req, int err)
{
	if (err > 0)
		err = -err;
	switch (err) {
	case -EKEYREJECTED:
	case -ECANCELED:
		err = -EIO;
		break;
	case 0:
		err = -EIO;
		break;
	default:
		break;
	}
	fuse_reply_err(req, -err);
}

/* Fill @st from node attributes. */
static void fill_stat(const struct fs *fs, const struct meta_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = fs_ino(fs, a->id);
	st->st_mode = a->is_dir ? (S_IFDIR | fs->dmode) : (S_IFREG | fs->fmode);
	/* 1 for directories: "unknown", so find(1) does not trust it to skip
	 * sub-directories (as on btrfs). */
	st->st_nlink = 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_size = a->is_dir ? 0 : a->size;
	st->st_blksize = 128 * 1024;
	st->st_blocks = a->is_dir ? 0 : (a->size + 511) / 512;
	st->st_mtim.tv_sec = a->mtime;
	st->st_atim.tv_sec = a->mtime;
	st->st_ctim.tv_sec = a->updated ? a->updated : a->mtime;
}

static void fill_entry(const struct fs *fs, const struct meta_attr *a, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = fs_ino(fs, a->id);
	e->generation = 1;
	fill_stat(fs, a, &e->attr);
	e->attr_timeout = fs->timeout;
	e->entry_timeout = fs->timeout;
}

/* Reply to a lookup-like request with @a, counting the reference. */
static void reply_entry(fuse_req_t req, struct fs *fs, const struct meta_attr *a)
{
	struct fuse_entry_param e;
	int err;

	fill_entry(fs, a, &e);
	err = itable_ref(fs->it, e.ino);
	if (err) {
		reply_err(req, err);
		return;
	}
	if (fuse_reply_entry(req, &e))
		itable_forget(fs->it, e.ino, 1);       /* the kernel never got it */
}

/* Writes are refused when mounted read-only or when the login is dead. */
static int check_writable(struct fs *fs)
{
	if (fs->ro)
		return -EROFS;
	if (fs->auth && auth_is_dead(fs->auth)) {
		if (!atomic_exchange(&fs->dead_logged, true))
			log_err("the service refused the login: run 'jottafs login' to log in "
				"again; until then the mount is read-only");
		return -EROFS;
	}
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
			if (fs->dc && meta_get(fs->meta, c->id, &a) == 0)
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
	(void)userdata;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* Always readdirplus: attributes come with the listing anyway. */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_SPLICE_MOVE)
		conn->want |= FUSE_CAP_SPLICE_MOVE;
	if (conn->capable & FUSE_CAP_SPLICE_READ)
		conn->want |= FUSE_CAP_SPLICE_READ;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
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

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	uint64_t pid = fs_id(fs, parent);
	struct meta_attr a;
	int err;

	err = lister_fresh(fs->ls, pid, 0, NULL);
	if (err) {
		reply_err(req, err);
		return;
	}
	err = meta_lookup(fs->meta, pid, name, &a);
	if (err == -ENOENT) {
		char *enc = NULL;
		struct fuse_entry_param e;

		if (names_encode(name, strlen(name), &enc) == -ENAMETOOLONG) {
			fuse_reply_err(req, ENAMETOOLONG);
			return;
		}
		free(enc);
		/* A negative entry, cached as long as the listing is trusted. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs->timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	if (err) {
		reply_err(req, err);
		return;
	}
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

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct meta_attr a;
	struct stat st;
	int err;

	(void)fi;
	err = get_fresh(fs, fs_id(fs, ino), &a);
	if (err) {
		reply_err(req, err);
		return;
	}
	fill_stat(fs, &a, &st);
	fuse_reply_attr(req, &st, fs->timeout);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct meta_attr a;
	struct stat st;
	int err;

	(void)fi;
	(void)attr;
	err = meta_get(fs->meta, fs_id(fs, ino), &a);
	if (err) {
		reply_err(req, err);
		return;
	}
	/* chmod and chown are accepted without effect (modes come from the
	 * mount options), so that cp -a and rsync -a work. */
	if (to_set & ~(FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
		       FUSE_SET_ATTR_CTIME)) {
		err = check_writable(fs);
		reply_err(req, err ? err : -EROFS);
		return;
	}
	fill_stat(fs, &a, &st);
	fuse_reply_attr(req, &st, fs->timeout);
}

/* ---- directories ------------------------------------------------------------- */

/* One entry of a directory snapshot. */
struct dent {
	struct meta_attr a;
	char *name;
};

/* An open directory: a snapshot of its entries taken at the first read
 * (offset 0), so offsets stay stable while the directory changes. */
struct dirh {
	pthread_mutex_t lock;           /* protects the fields below */
	struct dent *v;
	size_t n, cap;
	bool loaded;
};

static void dirh_clear(struct dirh *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].name);
	free(d->v);
	d->v = NULL;
	d->n = d->cap = 0;
	d->loaded = false;
}

static int snap_cb(void *ctx, const struct meta_attr *a, const char *name)
{
	struct dirh *d = ctx;

	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		struct dent *v = reallocarray(d->v, cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		d->v = v;
		d->cap = cap;
	}
	d->v[d->n].a = *a;
	d->v[d->n].name = strdup(name);
	if (!d->v[d->n].name)
		return -ENOMEM;
	d->n++;
	return 0;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct meta_attr a;
	struct dirh *d;
	int err;

	err = meta_get(fs->meta, fs_id(fs, ino), &a);
	if (err) {
		reply_err(req, err);
		return;
	}
	if (!a.is_dir) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_init(&d->lock, NULL);
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi)) {
		pthread_mutex_destroy(&d->lock);
		free(d);
	}
}

/* Load the snapshot of directory @id. d->lock held. */
static int dirh_load(struct fs *fs, struct dirh *d, uint64_t id)
{
	int err;

	dirh_clear(d);
	err = lister_fresh(fs->ls, id, LISTER_READDIR, NULL);
	if (!err)
		err = meta_children(fs->meta, id, snap_cb, d);
	if (err) {
		dirh_clear(d);
		return err;
	}
	d->loaded = true;
	return 0;
}

/* readdir and readdirplus: "." and ".." at offsets 0 and 1, then the
 * snapshot; an entry's offset is its index + 1. */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct fs *fs = fs_of(req);
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	uint64_t id = fs_id(fs, ino);
	char *buf;
	size_t pos = 0;
	int err = 0;

	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&d->lock);
	if (off == 0 || !d->loaded)
		err = dirh_load(fs, d, id);
	if (err) {
		pthread_mutex_unlock(&d->lock);
		free(buf);
		reply_err(req, err);
		return;
	}
	for (size_t i = off < 0 ? 0 : (size_t)off; i < d->n + 2; i++) {
		struct fuse_entry_param e;
		const char *name;
		size_t need;

		if (i < 2) {
			memset(&e, 0, sizeof(e));
			e.ino = ino;
			e.attr.st_ino = ino;
			e.attr.st_mode = S_IFDIR;
			name = i == 0 ? "." : "..";
		} else {
			fill_entry(fs, &d->v[i - 2].a, &e);
			name = d->v[i - 2].name;
		}
		if (plus)
			need = fuse_add_direntry_plus(req, buf + pos, size - pos, name, &e,
						      (off_t)(i + 1));
		else
			need = fuse_add_direntry(req, buf + pos, size - pos, name, &e.attr,
						 (off_t)(i + 1));
		if (need > size - pos)
			break;
		if (plus && i >= 2 && itable_ref(fs->it, e.ino)) {
			/* Cannot count it: do not hand it out (retry on the next call). */
			break;
		}
		pos += need;
	}
	pthread_mutex_unlock(&d->lock);
	fuse_reply_buf(req, buf, pos);
	/* If the kernel failed to take the buffer, its entries were never
	 * looked up; the kernel then forgets nothing — a leak of counts we
	 * cannot detect here. libfuse reports such failures only on a dead
	 * connection, when counts no longer matter. */
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;

	(void)ino;
	dirh_clear(d);
	pthread_mutex_destroy(&d->lock);
	free(d);
	fuse_reply_err(req, 0);
}

/* ---- files ------------------------------------------------------------------------ */

/* An open file. */
struct fileh {
	struct dfile *df;
	struct dcache_seq seq;
};

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct meta_attr a;
	struct fileh *h;
	bool kept = false;
	int err;

	err = meta_get(fs->meta, fs_id(fs, ino), &a);
	if (err) {
		reply_err(req, err);
		return;
	}
	if (a.is_dir) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		err = check_writable(fs);
		reply_err(req, err ? err : -EROFS);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	err = dcache_open(fs->dc, a.id, a.size, a.md5, &h->df, &kept);
	if (err) {
		free(h);
		reply_err(req, err);
		return;
	}
	fi->fh = (uintptr_t)h;
	fi->keep_cache = kept;
	if (fuse_reply_open(req, fi)) {
		dcache_close(h->df);
		free(h);
	}
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fileh *h = (struct fileh *)(uintptr_t)fi->fh;
	struct dcache_buf b;
	int err;

	(void)ino;
	err = dcache_read(h->df, &h->seq, off, size, &b);
	if (err) {
		reply_err(req, err == -ENOSPC ? -EIO : err);
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
	fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
	dcache_buf_release(h->df, &b);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fileh *h = (struct fileh *)(uintptr_t)fi->fh;

	(void)ino;
	dcache_close(h->df);
	free(h);
	fuse_reply_err(req, 0);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, 0);
}

/* ---- what the service cannot hold --------------------------------------------------- */

static void op_refuse_write(fuse_req_t req)
{
	struct fs *fs = fs_of(req);
	int err = check_writable(fs);

	reply_err(req, err ? err : -EROFS);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)parent;
	(void)name;
	(void)mode;
	op_refuse_write(req);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent;
	(void)name;
	op_refuse_write(req);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent;
	(void)name;
	op_refuse_write(req);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	(void)parent;
	(void)name;
	(void)newparent;
	(void)newname;
	(void)flags;
	op_refuse_write(req);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)fi;
	op_refuse_write(req);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link;
	(void)parent;
	(void)name;
	fuse_reply_err(req, EPERM);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	fuse_reply_err(req, EPERM);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)rdev;
	fuse_reply_err(req, EPERM);
}

/* ---- statfs ----------------------------------------------------------------------- */

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct jfs_quota q = { 0 };
	struct statvfs st;
	bool ok;
	int64_t total, used;

	(void)ino;
	pthread_mutex_lock(&fs->qlock);
	bool stale = !fs->quota_at || mono() - fs->quota_at > QUOTA_TTL_S;
	q = fs->quota;
	ok = fs->quota_ok;
	pthread_mutex_unlock(&fs->qlock);
	if (stale) {
		struct jfs_quota nq;
		int err = jfs_quota(fs->jfs, &nq);
		pthread_mutex_lock(&fs->qlock);
		fs->quota_at = mono();
		if (!err) {
			fs->quota = nq;
			fs->quota_ok = true;
			q = nq;
			ok = true;
		} else {
			log_debug("statfs: cannot read the quota: %s", strerror(-err));
		}
		pthread_mutex_unlock(&fs->qlock);
	}
	used = ok && q.usage > 0 ? q.usage : 0;
	if (ok && q.capacity >= 0) {
		total = q.capacity;
	} else {
		/* No quota (or unknown): a nominal total far above the usage,
		 * so that free = total - used stays meaningful (man page, CAVEATS). */
		total = UNLIMITED_TOTAL;
		while (total < used && total < INT64_MAX / 2)
			total *= 2;
	}
	memset(&st, 0, sizeof(st));
	st.f_bsize = STATFS_BSIZE;
	st.f_frsize = STATFS_BSIZE;
	st.f_blocks = (fsblkcnt_t)(total / STATFS_BSIZE);
	st.f_bfree = st.f_bavail = total > used ? (fsblkcnt_t)((total - used) / STATFS_BSIZE) : 0;
	st.f_files = 1ULL << 32;
	st.f_ffree = st.f_favail = 1ULL << 32;
	st.f_namemax = 255;
	fuse_reply_statfs(req, &st);
}

/* ---- extended attributes ----------------------------------------------------------- */

/* The value of xattr @name of node @a in @buf (NUL-terminated); -ENODATA
 * when the node has none. */
static int xattr_value(const struct meta_attr *a, const char *name, char *buf, size_t len)
{
	struct tm tm;
	time_t t;

	if (strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)))
		return -ENODATA;
	name += strlen(XATTR_PREFIX);
	if (!strcmp(name, "md5")) {
		if (a->is_dir || !a->md5[0])
			return -ENODATA;
		snprintf(buf, len, "%s", a->md5);
		return 0;
	}
	if (!strcmp(name, "revision")) {
		if (a->is_dir || a->revision <= 0)
			return -ENODATA;
		snprintf(buf, len, "%" PRId64, a->revision);
		return 0;
	}
	if (!strcmp(name, "created"))
		t = a->created;
	else if (!strcmp(name, "updated"))
		t = a->updated;
	else
		return -ENODATA;
	if (a->is_dir || !t || !gmtime_r(&t, &tm))
		return -ENODATA;
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return 0;
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs *fs = fs_of(req);
	struct meta_attr a;
	char val[64];
	size_t len;
	int err;

	/* Cheap refusals first: the kernel asks for security.capability on
	 * every write. */
	if (strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX))) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	err = meta_get(fs->meta, fs_id(fs, ino), &a);
	if (!err)
		err = xattr_value(&a, name, val, sizeof(val));
	if (err) {
		reply_err(req, err);
		return;
	}
	len = strlen(val);
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, len);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	static const char *const names[] = { XATTR_PREFIX "md5", XATTR_PREFIX "revision",
					     XATTR_PREFIX "created", XATTR_PREFIX "updated" };
	struct fs *fs = fs_of(req);
	struct meta_attr a;
	char list[256], val[64];
	size_t len = 0;
	int err;

	err = meta_get(fs->meta, fs_id(fs, ino), &a);
	if (err) {
		reply_err(req, err);
		return;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (xattr_value(&a, names[i], val, sizeof(val)))
			continue;
		memcpy(list + len, names[i], strlen(names[i]) + 1);
		len += strlen(names[i]) + 1;
	}
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, list, len);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	(void)ino;
	(void)name;
	(void)value;
	(void)size;
	(void)flags;
	fuse_reply_err(req, ENOTSUP);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino;
	(void)name;
	fuse_reply_err(req, ENOTSUP);
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.flush = op_flush,
	.fsync = op_fsync,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.create = op_create,
	.symlink = op_symlink,
	.link = op_link,
	.mknod = op_mknod,
	.statfs = op_statfs,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
};

const struct fuse_lowlevel_ops *fs_ops(void)
{
	return &ops;
}
