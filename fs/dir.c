/*
 * fs/dir.c — open directories: opendir, readdir(plus), releasedir. An open
 * directory holds a snapshot of its entries taken at the first read
 * (offset 0), so offsets stay stable while the directory changes.
 *
 * Locks: a handle's d->lock protects its snapshot; it is a leaf held only
 * while the snapshot is filled from the index and the content cache, and
 * while entries are copied out — never across the listing request
 * (lister_fresh runs before it is taken) nor the reply.
 */
#include "fs/fs.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cache/lister.h"
#include "cache/meta.h"
#include "fs/control.h"
#include "fs/itable.h"
#include "fs/poll.h"
#include "fs/reply.h"

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* One entry of a directory snapshot. */
struct dent {
	struct meta_attr a;
	char *name;
};

/* An open directory. */
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

void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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

/* Make the listing of directory @id servable: the listing request, if
 * one is needed, runs here, before the handle's lock is taken. */
static int dir_fresh(struct fs *fs, uint64_t id)
{
	int err = lister_fresh(fs->ls, id, LISTER_READDIR, NULL);

	fs_login_dead(fs);
	if (!err)
		poller_note(fs->poll, id);      /* in use: revalidated in the background */
	return err;
}

/* Take the snapshot of directory @id from the index. d->lock held. */
static int dirh_load(struct fs *fs, struct dirh *d, uint64_t id)
{
	int err;

	dirh_clear(d);
	err = meta_children(fs->meta, id, snap_cb, d);
	if (err) {
		dirh_clear(d);
		return err;
	}
	/* Not in snap_cb: it runs under the index lock, which comes after the
	 * content cache's locks. */
	for (size_t i = 0; i < d->n; i++)
		if (d->v[i].a.local)
			fs_overlay_local(fs, &d->v[i].a);
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
	bool load = off == 0 || !d->loaded;
	pthread_mutex_unlock(&d->lock);
	if (load)
		err = dir_fresh(fs, id);
	if (err) {
		pthread_mutex_lock(&d->lock);
		dirh_clear(d);          /* the next read lists again */
		pthread_mutex_unlock(&d->lock);
		free(buf);
		fs_reply_err(req, err);
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
			fs_fill_entry(fs, &d->v[i - 2].a, &e);
			name = d->v[i - 2].name;
			/* Refused attributes: the name only (node id 0: the
			 * kernel makes no entry, a lookup then gets EIO). */
			if (fs_attr_check(&d->v[i - 2].a))
				e.ino = 0;
		}
		need = fs_add_direntry(req, buf + pos, size - pos, name, &e, (off_t)(i + 1), plus);
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

void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;

	if (control_ino(ino)) {
		control_op_releasedir(req, ino, fi);
		return;
	}
	HLIST_DEL(d->fs, d->fs->dirs, d);
	fs_dirh_free(d);
	fs_reply_status(req, 0);
}

struct dirh *fs_dirh_free(struct dirh *d)
{
	struct dirh *next = d->next;

	dirh_clear(d);
	pthread_mutex_destroy(&d->lock);
	free(d);
	return next;
}
