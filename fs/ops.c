/*
 * fs/ops.c — the FUSE low-level operations of jottafs.
 *
 * Every operation follows one pattern: map the inode number to a node id,
 * make the metadata it needs servable (cache/lister.h: from the index while
 * fresh, one folder GET when stale), answer from the index (cache/meta.h)
 * or the content cache (cache/data.h), reply. Only this file talks to
 * libfuse's reply functions.
 *
 * Threading model: libfuse's multi-threaded loop calls these functions on
 * up to max_threads threads at once. This file holds no lock of its own
 * except per-handle ones (struct dirh.lock), fs->qlock and fs->h_lock (the
 * list of open handles), all leaves;
 * every shared structure below (index, content cache, lister, inode table,
 * notifier) is thread-safe and documents its own locks. Nothing here holds
 * a lock while replying or while a request is out. Kernel invalidations are
 * queued to the notifier thread (fs/notify.h), never sent from here.
 *
 * Lookup counts: every successful entry reply (lookup, create, mkdir, and
 * each entry of readdirplus except "." and "..") adds one to the inode's
 * count in the inode table; a reply the kernel did not take is undone;
 * forget subtracts.
 *
 * Writes land in the content cache (cache/data.h) and are visible at once
 * (the index marks the node locally changed; open files' sizes come from
 * the cache). close() — FUSE's flush, which close(2) waits for, unlike
 * release — commits: the rest of the base is fetched, the MD5 finished, the
 * cache file fsync'd, the upload journalled (cache/upload.h), then it
 * returns. fsync() additionally waits for the upload. Namespace changes
 * (mkdir, rmdir, unlink, rename, utimens of a clean file) are done on the
 * service first, then in the index.
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
#include <unistd.h>

#include "auth/auth.h"
#include "cache/data.h"
#include "cache/meta.h"
#include "cache/upload.h"
#include "fs/control.h"
#include "fs/itable.h"
#include "cache/lister.h"
#include "fs/notify.h"
#include "fs/poll.h"
#include "fs/options.h"
#include "lib/log.h"
#include "net/conn.h"
#include "net/names.h"

#define XATTR_PREFIX    "user.jottacloud."
#define XATTR_STATE     XATTR_PREFIX "state"   /* fs/control.c: upload state */
#define XATTR_CONTROL   XATTR_PREFIX "control" /* on the root: the control directory's name */
#define QUOTA_TTL_S     60.0
#define QUOTA_RETRY_S   5.0             /* after a failed read */
#define UNLIMITED_TOTAL (1LL << 50)     /* 1 PiB shown for accounts without a quota */
#define STATFS_BSIZE    4096
/* The largest file jottafs writes (writes and truncates past it: EFBIG).
 * close() hashes the whole file, holes included (the service takes the MD5
 * before the content, and an upload is one POST: docs 7.6); MD5 runs at
 * about 0.7 GB/s, so at this size a close() may take about 100 s. */
#define FILE_SIZE_MAX   (64LL << 30)

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
static int attr_check(const struct meta_attr *a)
{
	return !a->is_dir && a->size < 0 ? -EIO : 0;
}

/* Fill @st from node attributes (sizes never negative here: attr_check). */
static void fill_stat(const struct fs *fs, const struct meta_attr *a, struct stat *st)
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
static void overlay_local(struct fs *fs, struct meta_attr *a)
{
	int64_t size;
	time_t mtime;

	if (!a->is_dir && fs->dc && dcache_peek(fs->dc, a->id, &size, &mtime)) {
		a->size = size;
		a->mtime = mtime;
	}
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
static void reply_entry(fuse_req_t req, struct fs *fs, struct meta_attr *a)
{
	struct fuse_entry_param e;
	int err;

	overlay_local(fs, a);
	fill_entry(fs, a, &e);
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
static bool login_dead(struct fs *fs)
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
static int check_writable(struct fs *fs)
{
	if (fs->ro || login_dead(fs))
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
			if (fs->dc && meta_get(fs->meta, c->id, &a) == 0 && !attr_check(&a))
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
	/* O_TRUNC arrives with open(), not as a separate truncate. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
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

	if (control_ino(parent) || control_is_entry(fs, parent, name)) {
		control_op_lookup(req, parent, name);
		return;
	}
	err = lister_fresh(fs->ls, pid, 0, NULL);
	login_dead(fs);
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
	if (!err)
		err = attr_check(&a);
	if (err) {
		fs_reply_err(req, err);
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

/* An open file. */
struct fileh {
	struct fileh *prev, *next;      /* fs->files, under fs->h_lock */
	struct dfile *df;
	struct dcache_seq seq;
	uint64_t id;
	bool writable;
};

/* Open handles are listed in fs->files / fs->dirs from just before the
 * open reply to their release (fs_release_all). */
#define HLIST_ADD(fs, head, h) do {                                     \
		pthread_mutex_lock(&(fs)->h_lock);                      \
		(h)->prev = NULL;                                       \
		(h)->next = (head);                                     \
		if ((head))                                             \
			(head)->prev = (h);                             \
		(head) = (h);                                           \
		pthread_mutex_unlock(&(fs)->h_lock);                    \
	} while (0)
#define HLIST_DEL(fs, head, h) do {                                     \
		pthread_mutex_lock(&(fs)->h_lock);                      \
		if ((h)->prev)                                          \
			(h)->prev->next = (h)->next;                    \
		else                                                    \
			(head) = (h)->next;                             \
		if ((h)->next)                                          \
			(h)->next->prev = (h)->prev;                    \
		pthread_mutex_unlock(&(fs)->h_lock);                    \
	} while (0)

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
			fill_stat(fs, &a, &st);
			st.st_nlink = 0;
			fuse_reply_attr(req, &st, 0);
			return;
		}
	}
	if (!err)
		err = attr_check(&a);
	if (err) {
		fs_reply_err(req, err);
		return;
	}
	overlay_local(fs, &a);
	fill_stat(fs, &a, &st);
	fuse_reply_attr(req, &st, fs->timeout);
}

static int commit_file(struct fs *fs, struct dfile *df, uint64_t id);
static int local_changed(struct fs *fs, struct dfile *df, uint64_t id);

/* Truncate (or extend) file @a to @size, through @h when open. */
static int set_size(struct fs *fs, struct meta_attr *a, struct fileh *h, int64_t size)
{
	struct dfile *df = h ? h->df : NULL;
	bool first = false;
	int err = 0;

	if (size > FILE_SIZE_MAX)
		return -EFBIG;
	if (!df)
		err = dcache_open(fs->dc, a->id, a->size, a->md5, &df, NULL);
	if (!err)
		err = dcache_truncate(df, size, &first);
	if (!err && first)
		err = local_changed(fs, df, a->id);
	/* truncate(2) of a file nobody has open: that is its close. */
	if (!err && !h)
		err = commit_file(fs, df, a->id);
	if (!h && df)
		dcache_close(df);
	return err;
}

/* utimens: mtime at 1 s precision (atime is not kept). */
static int set_mtime(struct fs *fs, struct meta_attr *a, struct fileh *h, time_t mtime)
{
	struct dfile *df = h ? h->df : NULL;
	int64_t size;
	time_t old;
	char *path = NULL;
	int err;

	if (a->is_dir)          /* the service keeps none: the index does */
		return meta_set_dir_times(fs->meta, a->id, mtime, time(NULL));
	if (dcache_peek(fs->dc, a->id, &size, &old) || a->local) {
		/* Changed locally: the upload carries the time (again, if one is
		 * queued already: it is superseded). */
		err = df ? 0 : dcache_open(fs->dc, a->id, a->size, a->md5, &df, NULL);
		if (err)
			return err;
		dcache_set_mtime(df, mtime);
		err = meta_set_local(fs->meta, a->id, a->size, mtime, a->md5);
		if (!err && !h)
			err = commit_file(fs, df, a->id);
		if (!h)
			dcache_close(df);
		return err;
	}
	/* Clean: the service sets the time of the content it has (cphash). */
	err = meta_path(fs->meta, a->id, &path);
	if (!err)
		err = jfs_cphash(fs->jfs, path, a->size, a->md5, a->created ? a->created : mtime,
				 mtime);
	free(path);
	if (!err)
		return meta_set_mtime(fs->meta, a->id, mtime);
	if (err != -ENOENT)
		return err;
	/* The service wants the content again: upload it with the new time. */
	err = df ? 0 : dcache_open(fs->dc, a->id, a->size, a->md5, &df, NULL);
	if (err)
		return err;
	err = dcache_truncate(df, a->size, NULL);
	if (!err)
		err = local_changed(fs, df, a->id);
	if (!err) {
		dcache_set_mtime(df, mtime);
		if (!h)
			err = commit_file(fs, df, a->id);
	}
	if (!h)
		dcache_close(df);
	return err;
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
	if (!err)
		err = attr_check(&a);
	if (err) {
		fs_reply_err(req, err);
		return;
	}
	if (h && a.is_dir)
		h = NULL;
	/* chmod and chown are accepted without effect (modes come from the
	 * mount options), so that cp -a and rsync -a work; so is atime. */
	if (to_set & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
		err = check_writable(fs);
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
		err = set_size(fs, &a, h, attr->st_size);
		if (!err)
			err = meta_get(fs->meta, id, &a);
	}
	if (!err && (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))) {
		time_t t = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? time(NULL) : attr->st_mtim.tv_sec;
		err = set_mtime(fs, &a, h, t);
		if (!err)
			err = meta_get(fs->meta, id, &a);
	}
	if (err) {
		fs_reply_err(req, err);
		return;
	}
	overlay_local(fs, &a);
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
	struct dirh *prev, *next;       /* fs->dirs, under fs->h_lock */
	struct fs *fs;
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

	if (control_ino(ino)) {
		control_op_opendir(req, ino, fi);
		return;
	}
	err = meta_get(fs->meta, fs_id(fs, ino), &a);
	if (err) {
		fs_reply_err(req, err);
		return;
	}
	if (!a.is_dir) {
		fs_reply_err(req, -ENOTDIR);
		return;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		fs_reply_err(req, -ENOMEM);
		return;
	}
	pthread_mutex_init(&d->lock, NULL);
	d->fs = fs;
	fi->fh = (uintptr_t)d;
	HLIST_ADD(fs, fs->dirs, d);
	if (fuse_reply_open(req, fi)) {
		HLIST_DEL(fs, fs->dirs, d);
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
	login_dead(fs);
	if (!err)
		poller_note(fs->poll, id);      /* in use: revalidated in the background */
	if (!err)
		err = meta_children(fs->meta, id, snap_cb, d);
	if (err) {
		dirh_clear(d);
		return err;
	}
	/* Not in snap_cb: it runs under the index lock, which comes after the
	 * content cache's locks. */
	for (size_t i = 0; i < d->n; i++)
		if (d->v[i].a.local)
			overlay_local(fs, &d->v[i].a);
	/* A server folder named like the control directory is shadowed by it
	 * (control_op_lookup says so in the log): not listed either. */
	for (size_t i = 0; id == fs->root_id && i < d->n; i++)
		if (control_is_entry(fs, FUSE_ROOT_ID, d->v[i].name)) {
			free(d->v[i].name);
			memmove(d->v + i, d->v + i + 1, (d->n - i - 1) * sizeof(*d->v));
			d->n--;
			break;
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

	if (control_ino(ino)) {
		control_op_readdir(req, ino, size, off, fi, plus);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fs_reply_err(req, -ENOMEM);
		return;
	}
	pthread_mutex_lock(&d->lock);
	if (off == 0 || !d->loaded)
		err = dirh_load(fs, d, id);
	if (err) {
		pthread_mutex_unlock(&d->lock);
		free(buf);
		fs_reply_err(req, err);
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
			/* Refused attributes: the name only (node id 0: the
			 * kernel makes no entry, a lookup then gets EIO). */
			if (attr_check(&d->v[i - 2].a))
				e.ino = 0;
		}
		if (plus)
			need = fuse_add_direntry_plus(req, buf + pos, size - pos, name, &e,
						      (off_t)(i + 1));
		else
			need = fuse_add_direntry(req, buf + pos, size - pos, name, &e.attr,
						 (off_t)(i + 1));
		if (need > size - pos)
			break;
		if (plus && i >= 2 && e.ino && itable_ref(fs->it, e.ino)) {
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

	if (control_ino(ino)) {
		control_op_releasedir(req, ino, fi);
		return;
	}
	HLIST_DEL(d->fs, d->fs->dirs, d);
	dirh_clear(d);
	pthread_mutex_destroy(&d->lock);
	free(d);
	fs_reply_status(req, 0);
}

/* ---- files ------------------------------------------------------------------------ */

/* ---- the write path: commits and uploads ---------------------------------------- */

/* The node's content just became local (its first change): record it, so
 * that listings leave its attributes alone. */
static int local_changed(struct fs *fs, struct dfile *df, uint64_t id)
{
	struct meta_attr a;
	int err = meta_get(fs->meta, id, &a);

	if (err)
		return err == -ENOENT ? 0 : err;        /* unlinked meanwhile: fine */
	err = meta_set_local(fs->meta, id, dcache_size(df), time(NULL), "");
	return err == -ENOENT ? 0 : err;
}

/*
 * What this mount journalled for one node: the latest item (to journal it
 * again with a corrected base) and the content of every generation not yet
 * confirmed (to know what the service holds once one of them is: any may be,
 * however many were journalled while it uploaded). Lives in fs->upend
 * under fs->up_lock.
 */
struct upgen {
	uint64_t gen;
	int64_t size;
	char md5[33];                   /* "": hashed by the upload (see dcache_commit) */
	uint64_t seq;                   /* the data cache's commit number */
};
struct upend {
	struct upend *next;
	uint64_t id;
	uint64_t last_enq;              /* generation journalled last */
	uint64_t last_done;             /* generation of the last done callback */
	struct upload_item it;          /* the last item; path/content_file owned */
	struct upgen *hist;             /* generations after last_done, oldest first */
	size_t nhist, caphist;
};

static struct upend **upend_slot(struct fs *fs, uint64_t id)
{
	struct upend **p = &fs->upend[(id * 0x9e3779b97f4a7c15ULL) >> 40 & (UPEND_BUCKETS - 1)];

	while (*p && (*p)->id != id)
		p = &(*p)->next;
	return p;
}

static void upend_free(struct upend *e)
{
	free((char *)e->it.path);
	free((char *)e->it.content_file);
	free(e->hist);
	free(e);
}

/* The content of generation @gen, and forget it and every older one (they
 * can no longer be confirmed: the service took a newer one). */
static bool upend_take(struct upend *e, uint64_t gen, struct upgen *out)
{
	bool found = false;
	size_t k = 0;

	for (; k < e->nhist && e->hist[k].gen <= gen; k++) {
		if (e->hist[k].gen == gen) {
			*out = e->hist[k];
			found = true;
		}
	}
	memmove(e->hist, e->hist + k, (e->nhist - k) * sizeof(*e->hist));
	e->nhist -= k;
	return found;
}

/* Forget node @id (clean again, or unlinked). up_lock held. */
static void upend_drop(struct fs *fs, uint64_t id)
{
	struct upend **p = upend_slot(fs, id), *e = *p;

	if (e) {
		*p = e->next;
		upend_free(e);
	}
}

/* Record item @it (data cache commit @seq) as journalled. up_lock held. */
static void upend_record(struct fs *fs, const struct upload_item *it, uint64_t seq)
{
	struct upend **p = upend_slot(fs, it->id), *e = *p;
	char *path = strdup(it->path), *cf = strdup(it->content_file);

	if (e && e->nhist == e->caphist) {
		size_t cap = e->caphist ? e->caphist * 2 : 4;
		struct upgen *h = reallocarray(e->hist, cap, sizeof(*h));
		if (!h) {
			free(path);
			free(cf);
			return;
		}
		e->hist = h;
		e->caphist = cap;
	}
	if (!e && path && cf) {
		e = calloc(1, sizeof(*e));
		if (e && !(e->hist = calloc(4, sizeof(*e->hist)))) {
			free(e);
			e = NULL;
		}
		if (e) {
			e->caphist = 4;
			e->id = it->id;
			*p = e;         /* the hash owns it */
		}
	}
	if (!e || !path || !cf) {
		free(path);
		free(cf);
		return;         /* best effort: only the base correction is lost */
	}
	free((char *)e->it.path);
	free((char *)e->it.content_file);
	e->it = *it;
	e->it.path = path;
	e->it.content_file = cf;
	e->last_enq = it->gen;
	e->hist[e->nhist].gen = it->gen;
	e->hist[e->nhist].size = it->size;
	memcpy(e->hist[e->nhist].md5, it->md5, sizeof(e->hist[0].md5));
	e->hist[e->nhist].seq = seq;
	e->nhist++;
}

void fs_upend_free(struct fs *fs)
{
	if (!fs->upend)
		return;
	for (size_t i = 0; i < UPEND_BUCKETS; i++)
		while (fs->upend[i]) {
			struct upend *e = fs->upend[i];
			fs->upend[i] = e->next;
			upend_free(e);
		}
	free(fs->upend);
	fs->upend = NULL;
}

/*
 * If an upload of node @id finished but its done callback has not run yet,
 * wait for the callback (at most ~10 s): it tells the index what the service
 * holds now, and where. up_lock held.
 */
static void wait_upload_settled(struct fs *fs, uint64_t id)
{
	struct upend *e = *upend_slot(fs, id);

	for (int i = 0; e && e->last_done < e->last_enq && i < 100 &&
	     !upload_pending(fs->up, id); i++) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&fs->up_cond, &fs->up_lock, &ts);
		e = *upend_slot(fs, id);
	}
}

/*
 * Commit the local changes of @df (node @id) and journal their upload: on
 * return 0 the content and the pending upload are on disk. The upload
 * generation is taken before the index records the content, so it stays
 * above every generation the index stores (and so above every earlier
 * upload of the node, even across restarts).
 *
 * The base (the revision the service holds, for its conflict check): if an
 * upload of ours finished but its done callback has not run yet, wait for
 * it (it updates the base); if one is still pending, the upload queue
 * rebases this generation when it completes.
 */
static int commit_file(struct fs *fs, struct dfile *df, uint64_t id)
{
	struct dcache_commit c;
	struct upload_item it;
	struct meta_attr a;
	char *path = NULL;
	uint64_t gen;
	int err;

	if (!fs->up)
		return -EROFS;
	err = dcache_commit(df, &c);
	if (err == -ENOENT)
		return 0;               /* unlinked: nothing to upload */
	if (err || !c.committed)
		return err;
	pthread_mutex_lock(&fs->up_lock);
	wait_upload_settled(fs, id);
	gen = meta_gen_next(fs->meta);
	err = meta_set_local(fs->meta, id, c.size, c.mtime, c.md5);
	if (!err)
		err = meta_get(fs->meta, id, &a);
	if (!err)
		err = meta_path(fs->meta, id, &path);
	if (err) {
		pthread_mutex_unlock(&fs->up_lock);
		return err == -ENOENT ? 0 : err;        /* unlinked meanwhile */
	}
	memset(&it, 0, sizeof(it));
	it.id = id;
	it.gen = gen;
	it.path = path;
	it.content_file = c.path;
	it.size = c.size;
	memcpy(it.md5, c.md5, sizeof(it.md5));
	it.created = a.created ? a.created : c.mtime;
	it.modified = c.mtime;
	it.base_size = a.base_size >= 0 && a.base_md5[0] ? a.base_size : -1;
	if (it.base_size >= 0)
		memcpy(it.base_md5, a.base_md5, sizeof(it.base_md5));
	err = upload_enqueue(fs->up, &it);
	if (!err)
		upend_record(fs, &it, c.seq);
	pthread_mutex_unlock(&fs->up_lock);
	if (err == -ESTALE) {
		/* Written again since the commit (through another handle: a
		 * release commits after the next open wrote): that write left
		 * the file uncommitted, and its handle's flush or release
		 * commits and journals the content. */
		log_debug("upload of '%s': changed again while committed; the next commit "
			  "queues it", path);
		err = 0;
	} else if (err) {
		log_err("cannot queue the upload of '%s': %s", path, strerror(-err));
	}
	free(path);
	return err ? -EIO : 0;
}

/*
 * The local changes of @a are not what the service will hold at its path
 * (uploaded under a conflict name, or given up into lost+found): forget
 * them, and let the next listing show the service's version.
 */
static void revert_local(struct fs *fs, const struct meta_attr *a)
{
	struct meta_changes ch = { 0 };

	dcache_discard(fs->dc, a->id);
	if (meta_remove(fs->meta, a->id, &ch) == 0)
		fs_changes(fs, &ch);
	meta_changes_release(&ch);
	if (a->parent)
		meta_set_stale(fs->meta, a->parent);
}

void fs_upload_done(void *ctx, uint64_t id, uint64_t gen, int err, const char *server_path,
		    const char *md5)
{
	struct fs *fs = ctx;
	struct meta_attr a;
	struct upend *e;
	char *path = NULL;
	bool here;

	control_upload_done(fs->ctl, id, err, server_path);
	pthread_mutex_lock(&fs->up_lock);
	e = *upend_slot(fs, id);
	if (e && gen > e->last_done)
		e->last_done = gen;
	pthread_cond_broadcast(&fs->up_cond);
	if (meta_get(fs->meta, id, &a) || !a.local)
		goto out;               /* unlinked, or clean already */
	here = !err && md5 && md5[0] && meta_path(fs->meta, id, &path) == 0 &&
	       !strcmp(path, server_path);
	struct upgen g = { 0 };
	bool known = false;
	if (here && e && (known = upend_take(e, gen, &g))) {
		/* (committed without its MD5: the upload's is the content's) */
		if (!g.md5[0])
			snprintf(g.md5, sizeof(g.md5), "%s", md5);
		/* The service holds generation @gen now: the base of what follows. */
		meta_set_base(fs->meta, id, g.size, g.md5);
		/* A newer generation journalled with the older base (in the
		 * moment between this upload's end and this callback): journal
		 * it again with the right one. */
		if (e->it.gen > gen && upload_pending(fs->up, id) &&
		    (e->it.base_size != g.size || strcmp(e->it.base_md5, g.md5))) {
			e->it.base_size = g.size;
			memcpy(e->it.base_md5, g.md5, sizeof(e->it.base_md5));
			upload_enqueue(fs->up, &e->it);
		}
	} else if (e) {
		upend_take(e, gen, &g);
	}
	if (upload_pending(fs->up, id))
		goto out;               /* a newer generation is on its way */
	if (here) {
		/* The service holds what the index says: clean, unless it was
		 * changed again meanwhile. (An index without the MD5: the
		 * content was committed without it, and the data cache knows
		 * whether that commit is the one confirmed.) */
		const char *m = a.md5[0] ? a.md5 : md5;
		if (dcache_set_clean(fs->dc, id, a.size, m, known ? g.seq : 0, NULL)) {
			meta_set_clean(fs->meta, id, a.size, m, a.mtime);
			upend_drop(fs, id);
		}
	} else {
		/* A conflict copy (the name here holds another client's
		 * version), or given up into lost+found. A file still open
		 * with changes is left to its next commit. */
		int64_t size;
		time_t mtime;
		if (!dcache_peek(fs->dc, id, &size, &mtime)) {
			upend_drop(fs, id);
			pthread_mutex_unlock(&fs->up_lock);
			revert_local(fs, &a);
			free(path);
			return;
		}
	}
out:
	pthread_mutex_unlock(&fs->up_lock);
	free(path);
}

/* Startup: local changes with no journalled upload were never closed (or
 * their upload finished just before a crash): the service's version wins. */
static int recover_one(void *ctx, uint64_t id)
{
	struct fs *fs = ctx;
	struct meta_attr a;
	char *path = NULL;

	if (upload_pending(fs->up, id) || meta_get(fs->meta, id, &a))
		return 0;
	meta_path(fs->meta, id, &path);
	log_warn("'%s' was being changed when jottafs stopped and never closed; "
		 "the changes are dropped", path ? path : "?");
	free(path);
	revert_local(fs, &a);
	return 0;
}

void fs_recover(struct fs *fs)
{
	meta_local_nodes(fs->meta, recover_one, fs);
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
	if (!err)
		err = attr_check(&a);
	if (err) {
		fs_reply_err(req, err);
		return;
	}
	if (a.is_dir) {
		fs_reply_err(req, -EISDIR);
		return;
	}
	if (writable && (err = check_writable(fs))) {
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
		bool first = false;
		err = dcache_truncate(h->df, 0, &first);
		if (!err && first)
			err = local_changed(fs, h->df, a.id);
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
	struct dcache_buf b;
	int err;

	if (control_ino(ino)) {
		control_op_read(req, ino, size, off, fi);
		return;
	}
	err = dcache_read(h->df, &h->seq, off, size, &b);
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
	 * another thread): @h and its dfile must not be touched from here. */
	fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
	dcache_buf_release(&b);
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
	bool first = false;
	int err;

	(void)ino;
	if (!h->writable) {
		fs_reply_err(req, -EBADF);
		return;
	}
	/* Past the largest size jottafs uploads: as much as fits, then EFBIG. */
	size_t len = fuse_buf_size(bufv);
	if (len && (off >= FILE_SIZE_MAX || dcache_size(h->df) > FILE_SIZE_MAX)) {
		fs_reply_err(req, -EFBIG);
		return;
	}
	if ((int64_t)len > FILE_SIZE_MAX - off)
		len = (size_t)(FILE_SIZE_MAX - off);
	err = dcache_write(h->df, off, len, copy_bufvec, bufv, &written, &first);
	if (!err && first)
		err = local_changed(fs, h->df, h->id);
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
		err = commit_file(fs, h->df, h->id);
	fs_reply_status(req, err);
}

/* Close handle @h: release, or the end of the session. */
static void fileh_release(struct fs *fs, struct fileh *h)
{
	/* Normally flush committed everything; writes through a shared mmap
	 * can arrive after it. */
	if (h->writable && dcache_uncommitted(h->df)) {
		int err = commit_file(fs, h->df, h->id);
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
		struct dirh *d = dirs;
		dirs = d->next;
		dirh_clear(d);
		pthread_mutex_destroy(&d->lock);
		free(d);
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
 * answers EOPNOTSUPP, and the kernel copies through read and write itself.
 * The destination's handle is reopened on the copied revision, so later
 * writes through it are ordinary changes of that content.
 */
static int server_copy(struct fs *fs, uint64_t src_id, struct fileh *dst, size_t len,
		       int64_t *copied)
{
	struct meta_attr s, d;
	struct jfs_entry e;
	char *from = NULL, *to = NULL;
	int64_t size;
	time_t mtime;
	int err;

	if (meta_get(fs->meta, src_id, &s) || meta_get(fs->meta, dst->id, &d) || s.is_dir ||
	    s.local || !s.md5[0] || s.size <= 0 || (uint64_t)s.size > len ||
	    (fs->up && (upload_pending(fs->up, s.id) || upload_pending(fs->up, d.id))) ||
	    dcache_peek(fs->dc, s.id, &size, &mtime) || dcache_size(dst->df) != 0 ||
	    check_writable(fs))
		return -EOPNOTSUPP;
	err = meta_path(fs->meta, s.id, &from);
	if (!err)
		err = meta_path(fs->meta, d.id, &to);
	if (!err)
		err = jfs_copy(fs->jfs, from, to, &e);
	if (err) {
		log_debug("copy '%s' -> '%s' on the service: %s; copying through the mount",
			  from ? from : "?", to ? to : "?", strerror(-err));
		free(from);
		free(to);
		return -EOPNOTSUPP;
	}
	log_debug("copied '%s' -> '%s' on the service (%" PRId64 " bytes)", from, to, e.size);
	free(from);
	free(to);
	/* The destination is the service's copy now: its (empty) local content
	 * is dropped, and the handle serves the copied revision. */
	pthread_mutex_lock(&fs->up_lock);
	upend_drop(fs, d.id);
	pthread_mutex_unlock(&fs->up_lock);
	dcache_discard(fs->dc, d.id);
	err = meta_set_clean(fs->meta, d.id, e.size, e.md5, e.modified);
	if (!err) {
		struct dfile *df = NULL;
		err = dcache_open(fs->dc, d.id, e.size, e.md5, &df, NULL);
		if (!err) {
			dcache_close(dst->df);
			dst->df = df;
		}
	}
	*copied = e.size;
	jfs_entry_release(&e);
	return err;
}

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
		err = server_copy(fs, fs_id(fs, ino_in), dst, len, &copied);
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
	uint64_t id = fs_id(fs, ino);
	int err = 0;

	(void)datasync;
	if (control_ino(ino)) {
		fs_reply_status(req, 0);
		return;
	}
	if (h && h->writable)
		err = commit_file(fs, h->df, id);
	/* offline: ask the service once now, it may be back already */
	if (!err && fs->up && fs->conn && conn_state(fs->conn) == CONN_OFFLINE)
		conn_recheck(fs->conn);
	if (!err && fs->up) {
		/* The generation journalled last, not any: an older upload
		 * landing now does not make this content durable. */
		uint64_t gen = 0;
		struct upend *e;

		pthread_mutex_lock(&fs->up_lock);
		e = *upend_slot(fs, id);
		if (e)
			gen = e->last_enq;
		pthread_mutex_unlock(&fs->up_lock);
		err = upload_wait(fs->up, id, gen);
		if (err == -ENOENT)
			err = 0;        /* cancelled: the file was unlinked */
	}
	/* offline: the content is journalled and uploaded when the service is back */
	fs_reply_status(req, err && err != -ENOSPC && err != -EHOSTDOWN ? -EIO : err);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fs_reply_status(req, 0);       /* namespace changes are on the service already */
}

/* ---- the namespace ---------------------------------------------------------------- */

/*
 * The server name for a new entry @name in @pid: encoded (-ENAMETOOLONG
 * over 255 units), and refused with -EEXIST when the directory shows an
 * entry of that name (another spelling of it on the server, or a twin's
 * suffixed name) or holds one the case-insensitive service sees as the
 * same name (other than @self).
 */
static int new_name(struct fs *fs, uint64_t pid, const char *name, uint64_t self, char **sname)
{
	struct meta_attr a;
	uint64_t other = 0;
	int err;

	*sname = NULL;
	err = names_encode(name, strlen(name), sname);
	if (!err)
		err = lister_fresh(fs->ls, pid, 0, NULL);
	if (!err) {
		err = meta_lookup(fs->meta, pid, name, &a);
		if (!err)
			other = a.id;
		else if (err == -ENOENT)
			err = 0;
	}
	if (!err && (!other || other == self))
		err = meta_lookup_fold(fs->meta, pid, *sname, &other, NULL);
	if (!err && other && other != self)
		err = -EEXIST;
	if (err) {
		free(*sname);
		*sname = NULL;
	}
	return err;
}

/* The server path of a new child @sname of @pid. */
static int child_path(struct fs *fs, uint64_t pid, const char *sname, char **out)
{
	char *dir = NULL;
	int err = meta_path(fs->meta, pid, &dir);

	*out = NULL;
	if (err)
		return err;
	if (asprintf(out, "%s%s%s", dir, *dir ? "/" : "", sname) < 0)
		err = -ENOMEM;
	free(dir);
	return err;
}

/* An entry of folder @id was added, removed or renamed: its mtime and
 * ctime move, as on any disk (the kernel drops its cached attributes). */
static void dir_changed(struct fs *fs, uint64_t id)
{
	time_t now = time(NULL);
	int err = meta_set_dir_times(fs->meta, id, now, now);

	if (err)
		log_warn("cannot set the times of folder node %" PRIu64 ": %s", id,
			 strerror(-err));
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	uint64_t pid = fs_id(fs, parent), id = 0;
	struct fuse_entry_param e;
	struct meta_attr a;
	struct fileh *h;
	char *sname = NULL;
	int err;

	if (!S_ISREG(mode) || control_ino(parent)) {
		fs_reply_err(req, -EPERM);
		return;
	}
	err = check_writable(fs);
	if (!err)
		err = new_name(fs, pid, name, 0, &sname);
	if (!err)
		err = meta_create(fs->meta, pid, name, sname, false, time(NULL), &id);
	free(sname);
	h = err ? NULL : calloc(1, sizeof(*h));
	if (!err && !h)
		err = -ENOMEM;
	if (!err) {
		h->id = id;
		h->writable = true;
		err = dcache_create(fs->dc, id, &h->df);
	}
	if (!err)
		err = meta_get(fs->meta, id, &a);
	if (err) {
		if (h && h->df)
			dcache_close(h->df);
		free(h);
		if (id)
			meta_unlink(fs->meta, id);
		fs_reply_err(req, err);
		return;
	}
	dir_changed(fs, pid);
	fi->fh = (uintptr_t)h;
	fill_entry(fs, &a, &e);
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
	uint64_t pid = fs_id(fs, parent), id;
	struct meta_attr a;
	char *sname = NULL, *path = NULL;
	int err;

	(void)mode;
	if (control_ino(parent)) {
		fs_reply_err(req, -EPERM);
		return;
	}
	err = check_writable(fs);
	if (!err)
		err = new_name(fs, pid, name, 0, &sname);
	if (!err)
		err = child_path(fs, pid, sname, &path);
	if (!err)
		err = jfs_mkdir(fs->jfs, path);
	if (!err) {
		err = meta_create(fs->meta, pid, name, sname, true, time(NULL), &id);
		/* A listing of the parent that ran meanwhile (e.g. the background
		 * revalidation after a remount) may already have inserted the
		 * folder this mkdir just made: that is success, not EEXIST. */
		if (err == -EEXIST && meta_lookup_fold(fs->meta, pid, sname, &id, NULL) == 0 &&
		    id && meta_get(fs->meta, id, &a) == 0 && a.is_dir)
			err = 0;
	}
	if (!err)
		err = meta_get(fs->meta, id, &a);
	free(sname);
	free(path);
	if (err) {
		fs_reply_err(req, err);
		return;
	}
	dir_changed(fs, pid);
	reply_entry(req, fs, &a);
}

/* Remove file @a: cancel its upload, delete it on the service (unless it
 * never got there), drop its content and its node. */
static int remove_file(struct fs *fs, const struct meta_attr *a)
{
	struct meta_attr now;
	bool pending;
	char *path = NULL;
	int err;

	if (fs->up && a->local) {
		/* As for rename: an upload that landed (an fsync just before)
		 * but whose done callback has not run yet is on the service
		 * although the index still says "new, local": let the callback
		 * record it, so that it is deleted rather than left behind. */
		pthread_mutex_lock(&fs->up_lock);
		wait_upload_settled(fs, a->id);
		pthread_mutex_unlock(&fs->up_lock);
		err = meta_get(fs->meta, a->id, &now);
		if (err)
			return err == -ENOENT ? 0 : err;
		a = &now;
	}
	pending = fs->up && upload_pending(fs->up, a->id);

	if (pending)
		upload_cancel(fs->up, a->id);
	err = meta_path(fs->meta, a->id, &path);
	if (!err && (!a->local || a->base_size >= 0 || pending)) {
		err = jfs_delete(fs->jfs, path, false, fs->o->hard_delete);
		if (err == -ENOENT)
			err = 0;        /* never arrived, or gone already */
	}
	free(path);
	if (err)
		return err;
	pthread_mutex_lock(&fs->up_lock);
	upend_drop(fs, a->id);
	pthread_mutex_unlock(&fs->up_lock);
	dcache_discard(fs->dc, a->id);
	control_trash_changed(fs->ctl);
	return meta_unlink(fs->meta, a->id);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	uint64_t pid = fs_id(fs, parent);
	struct meta_attr a;
	int err;

	if (control_ino(parent)) {
		control_op_unlink(req, parent, name);
		return;
	}
	err = check_writable(fs);
	if (!err)
		err = lister_fresh(fs->ls, pid, 0, NULL);
	if (!err)
		err = meta_lookup(fs->meta, pid, name, &a);
	if (!err && a.is_dir)
		err = -EISDIR;
	if (!err)
		err = remove_file(fs, &a);
	if (!err)
		dir_changed(fs, pid);
	fs_reply_status(req, err);
}

/* Is directory @id empty (listing it if needed)? 0, -ENOTEMPTY or -errno. */
static int dir_empty(struct fs *fs, uint64_t id)
{
	uint64_t all = 0, dirs = 0;
	int err = lister_fresh(fs->ls, id, 0, NULL);

	if (!err)
		err = meta_count_children(fs->meta, id, &all, &dirs);
	return err ? err : all ? -ENOTEMPTY : 0;
}

static int remove_dir(struct fs *fs, const struct meta_attr *a)
{
	char *path = NULL;
	int err;

	if (a->id == fs->root_id)
		return -EBUSY;
	err = dir_empty(fs, a->id);
	if (!err)
		err = meta_path(fs->meta, a->id, &path);
	if (!err) {
		err = jfs_delete(fs->jfs, path, true, fs->o->hard_delete);
		if (err == -ENOENT)
			err = 0;
	}
	free(path);
	if (!err)
		control_trash_changed(fs->ctl);
	return err ? err : meta_unlink(fs->meta, a->id);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	uint64_t pid = fs_id(fs, parent);
	struct meta_attr a;
	int err;

	if (control_ino(parent)) {
		control_op_rmdir(req, parent, name);
		return;
	}
	err = check_writable(fs);
	if (!err)
		err = lister_fresh(fs->ls, pid, 0, NULL);
	if (!err)
		err = meta_lookup(fs->meta, pid, name, &a);
	if (!err && !a.is_dir)
		err = -ENOTDIR;
	if (!err)
		err = remove_dir(fs, &a);
	if (!err)
		dir_changed(fs, pid);
	fs_reply_status(req, err);
}

/*
 * A local file moved away from @path, where the service holds none of it
 * (mv said -ENOENT): an upload of it cut there (by the rename, or given up)
 * may have left a partial revision, a file with no completed revision that
 * no listing shows. Remove that, and only that: a tombstone in the trash
 * (jfs_stat: -ENOENT) may be another client's deletion, still restorable.
 * Best effort: a partial left behind stays invisible.
 */
static void remove_partial(struct fs *fs, const char *path)
{
	struct jfs_entry e;
	int err = jfs_stat(fs->jfs, path, &e);

	if (err)
		return;
	if (!e.is_dir && !e.completed) {
		err = jfs_delete(fs->jfs, path, false, true);
		if (err && err != -ENOENT)
			log_warn("cannot remove the partial upload left at '%s': %s", path,
				 strerror(-err));
		else
			log_debug("rename: removed the partial upload at '%s'", path);
	}
	jfs_entry_release(&e);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct fs *fs = fs_of(req);
	uint64_t pid = fs_id(fs, parent), npid = fs_id(fs, newparent);
	struct meta_attr src, dst;
	char *nsname = NULL, *from = NULL, *to = NULL;
	bool have_dst = false, pending = false;
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
	err = check_writable(fs);
	if (!err)
		err = lister_fresh(fs->ls, pid, 0, NULL);
	if (!err)
		err = meta_lookup(fs->meta, pid, name, &src);
	if (!err) {
		err = meta_lookup(fs->meta, npid, newname, &dst);
		have_dst = !err;
		err = err == -ENOENT ? 0 : err;
	}
	if (!err && have_dst && dst.id == src.id)
		goto done;              /* the same entry: nothing to do */
	/* A name the case-insensitive service sees as another entry: EEXIST,
	 * except the target itself or a case-only rename of the source. */
	if (!err)
		err = new_name(fs, npid, newname, have_dst ? dst.id : src.id, &nsname);
	if (!err && have_dst) {
		if (flags & RENAME_NOREPLACE)
			err = -EEXIST;
		else if (dst.is_dir && !src.is_dir)
			err = -EISDIR;
		else if (!dst.is_dir && src.is_dir)
			err = -ENOTDIR;
		else if (dst.is_dir)
			err = remove_dir(fs, &dst);
		else
			err = remove_file(fs, &dst);
	}
	if (!err)
		err = meta_path(fs->meta, src.id, &from);
	if (!err)
		err = child_path(fs, npid, nsname, &to);
	if (!err && src.is_dir) {
		if (fs->up)
			err = upload_rename_dir(fs->up, from, to);
		if (!err)
			err = jfs_move(fs->jfs, from, to, true);
		if (err && fs->up)
			upload_rename_dir(fs->up, to, from);
	} else if (!err) {
		if (fs->up && src.local) {
			/* An upload that landed at the old name but whose done
			 * callback has not run yet (an fsync just before, say) is
			 * on the service although the index still says "new,
			 * local": let the callback record it first, so that it is
			 * moved along instead of left behind under the old name
			 * and then taken for someone else's version. */
			pthread_mutex_lock(&fs->up_lock);
			wait_upload_settled(fs, src.id);
			pthread_mutex_unlock(&fs->up_lock);
			err = meta_get(fs->meta, src.id, &src);
		}
		pending = !err && fs->up && upload_pending(fs->up, src.id);
		if (pending)
			err = upload_rename(fs->up, src.id, to);
		if (!err && (!src.local || src.base_size >= 0 || pending)) {
			err = jfs_move(fs->jfs, from, to, false);
			if (err == -ENOENT && src.local) {
				/* Its upload never completed at the old path. */
				err = 0;
				remove_partial(fs, from);
			}
		}
		if (err && pending)
			upload_rename(fs->up, src.id, from);
	}
	if (!err)
		err = meta_rename(fs->meta, src.id, npid, newname, nsname, NULL);
	if (!err) {
		dir_changed(fs, pid);
		if (npid != pid)
			dir_changed(fs, npid);
	}
done:
	free(nsname);
	free(from);
	free(to);
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

/* ---- statfs ----------------------------------------------------------------------- */

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct jfs_quota q = { 0 };
	struct statvfs st;
	bool ok, due;
	int64_t total, used;

	(void)ino;
	pthread_mutex_lock(&fs->qlock);
	due = !fs->quota_at ||
	      mono() - fs->quota_at > (fs->quota_fresh ? QUOTA_TTL_S : QUOTA_RETRY_S);
	if (due)
		fs->quota_at = mono();  /* one reader at a time; the others use what is here */
	q = fs->quota;
	ok = fs->quota_ok;
	pthread_mutex_unlock(&fs->qlock);
	if (due) {
		struct jfs_quota nq;
		int64_t u, c;
		int err = jfs_quota(fs->jfs, &nq);
		bool remembered = !err ? false : meta_quota_get(fs->meta, &u, &c) == 0;

		pthread_mutex_lock(&fs->qlock);
		fs->quota_at = mono();
		fs->quota_fresh = !err;
		if (!err) {
			fs->quota = nq;
			fs->quota_ok = true;
		} else if (!fs->quota_ok && remembered) {
			/* The last quota this cache saw, rather than nothing. */
			memset(&fs->quota, 0, sizeof(fs->quota));
			fs->quota.usage = u;
			fs->quota.capacity = c;
			fs->quota_ok = true;
		}
		q = fs->quota;
		ok = fs->quota_ok;
		pthread_mutex_unlock(&fs->qlock);
		if (!err)
			meta_quota_put(fs->meta, nq.usage, nq.capacity);
		else
			log_debug("statfs: cannot read the quota: %s", strerror(-err));
	}
	memset(&st, 0, sizeof(st));
	st.f_bsize = STATFS_BSIZE;
	st.f_frsize = STATFS_BSIZE;
	st.f_files = 1ULL << 32;
	st.f_ffree = st.f_favail = 1ULL << 32;
	/* The service counts UTF-16 units: 255 of them are up to 765 bytes
	 * here (3 per BMP character; 4 per pair outside it). */
	st.f_namemax = NAMES_MAX_UNITS * 3;
	if (ok) {
		used = q.usage > 0 ? q.usage : 0;
		if (q.capacity >= 0) {
			total = q.capacity;
		} else {
			/* No quota: a nominal total far above the usage, so that
			 * free = total - used stays meaningful (man page, CAVEATS). */
			total = UNLIMITED_TOTAL;
			while (total < used && total < INT64_MAX / 2)
				total *= 2;
		}
		st.f_blocks = (fsblkcnt_t)(total / STATFS_BSIZE);
		st.f_bfree = st.f_bavail = total > used ?
					   (fsblkcnt_t)((total - used) / STATFS_BSIZE) : 0;
	}
	/* else: never read and unreachable: sizes unknown (0), never "unlimited". */
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

/*
 * The attributes of @id for its xattrs. A file just uploaded has no
 * revision number in the index yet (the upload answer carries none): its
 * folder is listed again once, so that revision and updated are there
 * right after the upload, not only after the next revalidation.
 */
static int xattr_attr(struct fs *fs, uint64_t id, struct meta_attr *a)
{
	int err = meta_get(fs->meta, id, a);

	if (!err && !a->is_dir && !a->local && a->revision <= 0 && a->md5[0] && a->parent &&
	    !(fs->up && upload_pending(fs->up, id))) {
		meta_set_stale(fs->meta, a->parent);
		if (lister_fresh(fs->ls, a->parent, LISTER_SYNC, NULL) == 0)
			err = meta_get(fs->meta, id, a);
	}
	return err ? err : attr_check(a);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs *fs = fs_of(req);
	struct meta_attr a;
	char val[256];
	size_t len;
	int err;

	/* Cheap refusals first: the kernel asks for security.capability on
	 * every write. */
	if (strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX))) {
		fs_reply_err(req, -ENODATA);
		return;
	}
	if (control_ino(ino)) {
		fs_reply_err(req, -ENODATA);
		return;
	}
	if (ino == FUSE_ROOT_ID && !strcmp(name, XATTR_CONTROL)) {
		/* The control directory's name, for `jottafs status`. */
		snprintf(val, sizeof(val), "%s", fs->o->control_dir);
		err = strlen(fs->o->control_dir) < sizeof(val) ? 0 : -ERANGE;
		goto reply;
	}
	err = xattr_attr(fs, fs_id(fs, ino), &a);
	if (!err && !strcmp(name, XATTR_STATE))
		err = control_file_state(fs, &a, val, sizeof(val));
	else if (!err)
		err = xattr_value(&a, name, val, sizeof(val));
reply:
	if (err) {
		fs_reply_err(req, err);
		return;
	}
	len = strlen(val);
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fs_reply_err(req, -ERANGE);
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

	if (control_ino(ino)) {
		fuse_reply_xattr(req, 0);
		return;
	}
	err = xattr_attr(fs, fs_id(fs, ino), &a);
	if (err) {
		fs_reply_err(req, err);
		return;
	}
	if (!a.is_dir) {
		memcpy(list, XATTR_STATE, sizeof(XATTR_STATE));
		len = sizeof(XATTR_STATE);
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
		fs_reply_err(req, -ERANGE);
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
	fs_reply_err(req, -ENOTSUP);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino;
	(void)name;
	fs_reply_err(req, -ENOTSUP);
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
