/*
 * fs/control_trash.c — the control directory's trash/: the trash
 * view of this mount, the tombstone trees of trashed folders, deleting for
 * good (unlink, rmdir) and restoring (rename out of trash/). Private
 * structures: fs/control_int.h.
 */
#include "fs/control.h"
#include "fs/control_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "cache/data.h"
#include "cache/deletes.h"
#include "cache/meta.h"
#include "cache/upload.h"
#include "fs/fs.h"
#include "fs/itable.h"
#include "cache/lister.h"
#include "fs/notify.h"
#include "fs/options.h"
#include "lib/clock.h"
#include "lib/grow.h"
#include "lib/log.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/jfs.h"
#include "net/jfs_xml.h"
#include "net/names.h"

/* ---- the trash ------------------------------------------------------------------------- */

void ctl_trash_free(struct titem *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].rel);
		free(v[i].sname);
	}
	free(v);
}

struct trash_collect {
	struct fs *fs;
	const char *prefix;     /* "/<user>/<device>/<mountpoint>" */
	const char *root;       /* mount root, server path under the mountpoint */
	struct titem *v;
	size_t n, cap;
	int err;
};

/* Keep a trash view entry when its original parent is under the mount root. */
static int trash_cb(void *ctx, const struct jfs_entry *e)
{
	struct trash_collect *t = ctx;
	size_t pl = strlen(t->prefix), rl = strlen(t->root);
	const char *o = e->origin, *rel;

	if (!o || strncasecmp(o, t->prefix, pl) || (o[pl] && o[pl] != '/'))
		return 0;               /* another mountpoint */
	o += pl;
	if (*o == '/')
		o++;
	if (rl) {
		if (strncmp(o, t->root, rl) || (o[rl] && o[rl] != '/'))
			return 0;       /* outside the mounted sub path */
		o += rl;
		if (*o == '/')
			o++;
	}
	rel = o;
	if (!e->is_dir && !e->completed)
		return 0;
	if (array_grow(&t->v, &t->cap, t->n, sizeof(*t->v), 32) < 0)
		return -ENOMEM;
	struct titem *it = &t->v[t->n];
	memset(it, 0, sizeof(*it));
	it->rel = strdup(rel);
	it->sname = strdup(e->name);
	if (!it->rel || !it->sname) {
		free(it->rel);
		free(it->sname);
		return -ENOMEM;
	}
	it->is_dir = e->is_dir;
	it->size = e->size;
	it->mtime = e->modified;
	it->created = e->created;
	memcpy(it->md5, e->md5, sizeof(it->md5));
	t->n++;
	return 0;
}

/* Refresh the trash snapshot unless it is recent (@force: always). */
static int trash_load(struct fs *fs, bool force)
{
	struct control *c = fs->ctl;
	struct trash_collect t = { .fs = fs, .prefix = jfs_origin_prefix(fs->jfs) };
	char *root = NULL;
	int err;

	/* the trash shows what was deleted here: deletes still queued go
	 * first (each one done forgets the snapshot) */
	if (fs->dq)
		delq_flush(fs->dq, "", true);
	pthread_mutex_lock(&c->lock);
	bool fresh = !force && c->trash_at && clock_mono() - c->trash_at < TRASH_TTL_S;
	pthread_mutex_unlock(&c->lock);
	if (fresh)
		return 0;
	err = meta_path(fs->meta, fs->root_id, &root);
	if (err)
		return err;
	t.root = root;
	err = jfs_trash(fs->jfs, trash_cb, &t);
	free(root);
	if (err) {
		ctl_trash_free(t.v, t.n);
		return err;
	}
	pthread_mutex_lock(&c->lock);
	ctl_trash_free(c->trash, c->ntrash);
	c->trash = t.v;
	c->ntrash = t.n;
	c->trash_at = clock_mono();
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static void trash_forget(struct control *c)
{
	pthread_mutex_lock(&c->lock);
	c->trash_at = 0;
	pthread_mutex_unlock(&c->lock);
}

void control_trash_changed(struct control *c)
{
	if (c)
		trash_forget(c);
}

/* The server path (under the mountpoint) of mount-relative @rel. */
static char *mount_path(struct fs *fs, const char *rel)
{
	char *root = NULL, *p;

	if (meta_path(fs->meta, fs->root_id, &root))
		return NULL;
	p = *rel ? ctl_path_join(root, rel) : strdup(root);
	free(root);
	return p;
}

/* Children of trash folder @dir (V_TDIR, mount-relative path @dir->path). */
int ctl_list_tdir(struct fs *fs, const struct vnode *dir, struct vspecs *out)
{
	struct control *c = fs->ctl;
	const char *p = dir->path ? dir->path : "";
	size_t pl = strlen(p);
	int err = trash_load(fs, false);

	if (err)
		return err;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->ntrash && !err; i++) {
		const struct titem *it = &c->trash[i];
		struct vspec s = { 0 };
		char *name = NULL, *seg = NULL;

		if (!strcmp(it->rel, p)) {
			/* A trashed item right here. */
			char *rel = ctl_path_join(it->rel, it->sname);
			s.kind = it->is_dir ? V_TITEM : V_TFILE;
			s.path = rel ? mount_path(fs, rel) : NULL;
			free(rel);
			if (!s.path || names_decode(it->sname, &name)) {
				free(s.path);
				err = -ENOMEM;
				break;
			}
			s.size = it->size;
			s.mtime = it->mtime;
			s.created = it->created;
			memcpy(s.md5, it->md5, sizeof(s.md5));
		} else if ((!pl && *it->rel) ||
			   (pl && !strncmp(it->rel, p, pl) && it->rel[pl] == '/')) {
			/* Trashed items further down: the next folder on the way. */
			const char *rest = it->rel + (pl ? pl + 1 : 0);
			seg = strndup(rest, (size_t)(strchrnul(rest, '/') - rest));
			s.kind = V_TDIR;
			s.path = seg ? (pl ? ctl_path_join(p, seg) : strdup(seg)) : NULL;
			if (!s.path || names_decode(seg, &name)) {
				free(seg);
				free(s.path);
				err = -ENOMEM;
				break;
			}
			free(seg);
		} else {
			continue;
		}
		s.name = name;
		err = ctl_specs_add(out, &s);
		free(name);
		free(s.path);
	}
	pthread_mutex_unlock(&c->lock);
	return err;
}

struct titem_collect {
	const char *dir;        /* server path of the listed trashed folder */
	struct vspecs *out;
};

static int titem_cb(void *ctx, const struct jfs_entry *e)
{
	struct titem_collect *t = ctx;
	struct vspec s = { 0 };
	char *name = NULL;
	int err;

	if (!e->is_dir && !e->completed)
		return 0;
	if (names_decode(e->name, &name))
		return -ENOMEM;
	s.kind = e->is_dir ? V_TITEM : V_TFILE;
	s.name = name;
	s.path = ctl_path_join(t->dir, e->name);
	s.size = e->size;
	s.mtime = e->modified;
	s.created = e->created;
	memcpy(s.md5, e->md5, sizeof(s.md5));
	err = s.path ? ctl_specs_add(t->out, &s) : -ENOMEM;
	free(name);
	free(s.path);
	return err;
}

/* Children of V_TITEM @dir: the tombstone tree below a trashed folder. */
int ctl_list_titem(struct fs *fs, const struct vnode *dir, struct vspecs *out)
{
	struct titem_collect t = { .dir = dir->path, .out = out };
	return jfs_list_trashed(fs->jfs, dir->path, titem_cb, &t);
}

/* ---- deleting for good, restoring ---------------------------------------------------------- */

struct tomb_find {
	const char *sname;
	bool is_dir;
	bool deleted;
	bool found;
};

static int tomb_cb(void *ctx, const struct jfs_entry *e)
{
	struct tomb_find *t = ctx;

	if (e->is_dir == t->is_dir && !strcmp(e->name, t->sname)) {
		t->found = true;
		t->deleted = e->deleted;
	}
	return 0;
}

/* Does server path @path still hold a tombstone (not a live item)? */
static int still_trashed(struct fs *fs, const char *path, bool is_dir)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash ? strndup(path, (size_t)(slash - path)) : strdup("");
	struct tomb_find t = { .sname = slash ? slash + 1 : path, .is_dir = is_dir };
	int err = dir ? jfs_list_trashed(fs->jfs, dir, tomb_cb, &t) : -ENOMEM;

	free(dir);
	if (err)
		return err;
	return t.found && t.deleted ? 0 : -ENOENT;
}

/* Remove trashed item @v for good. */
static int purge_item(struct fs *fs, const struct vnode *v)
{
	bool is_dir = v->kind == V_TITEM;
	int err = still_trashed(fs, v->path, is_dir);

	if (!err)
		err = jfs_delete(fs->jfs, v->path, is_dir, true);
	trash_forget(fs->ctl);
	return err;
}

void control_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct vnode v;
	int err = fs->ro ? -EROFS : ctl_child(fs, parent, name, &v);

	if (err) {
		fs_reply_status(req, err);
		return;
	}
	if (v.kind == V_TFILE)
		err = purge_item(fs, &v);
	else
		err = ctl_is_dir_kind(v.kind) ? -EISDIR : -EPERM;
	ctl_vrelease(&v);
	fs_reply_status(req, err);
}

void control_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct vnode v;
	struct vspecs l = { 0 };
	int err = fs->ro ? -EROFS : ctl_child(fs, parent, name, &v);

	if (err) {
		fs_reply_status(req, err);
		return;
	}
	if (v.kind == V_TITEM) {
		err = purge_item(fs, &v);
	} else if (v.kind == V_TDIR && parent != CONTROL_INO_MIN) {
		/* A folder on the way to trashed items: gone when they are. */
		trash_forget(fs->ctl);
		err = ctl_list_dir(fs, &v, &l);
		if (!err && l.n)
			err = -ENOTEMPTY;
		ctl_specs_release(&l);
	} else {
		err = ctl_is_dir_kind(v.kind) ? -EPERM : -ENOTDIR;
	}
	ctl_vrelease(&v);
	fs_reply_status(req, err);
}

struct restore_ctx {
	struct fs *fs;
	const char *from;       /* trashed folder (server path) */
	const char *to;         /* where it comes back */
	int err;
};

static int restore_file(struct fs *fs, const char *from, const char *to, int64_t size,
			const char *md5, time_t created, time_t modified);
static int restore_dir(struct fs *fs, const char *from, const char *to);

static int restore_child_cb(void *ctx, const struct jfs_entry *e)
{
	struct restore_ctx *r = ctx;
	char *from = ctl_path_join(r->from, e->name), *to = ctl_path_join(r->to, e->name);
	int err = -ENOMEM;

	if (from && to) {
		if (e->bad)             /* its size and MD5 cannot be trusted */
			err = -EIO;
		else if (e->is_dir)
			err = restore_dir(r->fs, from, to);
		else if (e->completed)
			err = restore_file(r->fs, from, to, e->size, e->md5, e->created,
					   e->modified);
		else
			err = 0;
	}
	free(from);
	free(to);
	if (err && !r->err)
		r->err = err;
	return 0;               /* restore what can be, report the first error */
}

/* Bring trashed file @from back at @to (cphash, docs 8.7). */
static int restore_file(struct fs *fs, const char *from, const char *to, int64_t size,
			const char *md5, time_t created, time_t modified)
{
	int err = jfs_cphash(fs->jfs, to, size, md5, created ? created : modified, modified);

	if (err == -ENOENT && strcmp(from, to)) {
		/* No dedup to the new path: back in place, then moved. */
		err = jfs_cphash(fs->jfs, from, size, md5, created ? created : modified, modified);
		if (!err)
			return jfs_move(fs->jfs, from, to, false);
	}
	if (!err && strcmp(from, to))
		jfs_delete(fs->jfs, from, false, true);         /* the tombstone: restored */
	return err;
}

/* Recreate trashed folder @from at @to with everything in it. */
static int restore_dir(struct fs *fs, const char *from, const char *to)
{
	struct restore_ctx r = { .fs = fs, .from = from, .to = to };
	int err = jfs_mkdir(fs->jfs, to);

	if (!err)
		err = jfs_list_trashed(fs->jfs, from, restore_child_cb, &r);
	return err ? err : r.err;
}

void control_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		       fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct fs *fs = fs_of(req);
	struct vnode v;
	struct meta_attr dst;
	uint64_t npid = newparent == FUSE_ROOT_ID ? fs->root_id : newparent;
	char *sname = NULL, *dir = NULL, *to = NULL;
	int err;

	if (!control_ino(parent) || control_ino(newparent) ||
	    (flags & ~RENAME_NOREPLACE)) {
		fs_reply_err(req, control_ino(newparent) ? -EPERM : -EINVAL);
		return;
	}
	if (fs->ro) {
		fs_reply_err(req, -EROFS);
		return;
	}
	err = ctl_child(fs, parent, name, &v);
	if (err) {
		fs_reply_status(req, err);
		return;
	}
	if (v.kind != V_TFILE && v.kind != V_TITEM) {
		ctl_vrelease(&v);
		fs_reply_err(req, -EPERM);     /* only trashed items can be moved out */
		return;
	}
	/* The destination must be free: a restore never overwrites. */
	err = lister_fresh(fs->ls, npid, LISTER_SYNC, NULL);
	if (!err && meta_lookup(fs->meta, npid, newname, &dst) == 0)
		err = -EEXIST;
	if (!err)
		err = names_encode(newname, strlen(newname), &sname);
	if (!err)
		err = meta_path(fs->meta, npid, &dir);
	if (!err && !(to = ctl_path_join(dir, sname)))
		err = -ENOMEM;
	/* a delete pending there goes first; listings show the name again */
	if (!err && fs->dq)
		err = delq_flush(fs->dq, to, true);
	if (!err && v.kind == V_TFILE)
		err = restore_file(fs, v.path, to, v.size, v.md5, v.created, v.mtime);
	else if (!err) {
		err = restore_dir(fs, v.path, to);
		if (!err && strcmp(v.path, to))
			jfs_delete(fs->jfs, v.path, true, true);   /* restored: off the trash */
	}
	trash_forget(fs->ctl);
	if (!err) {
		/* Show it: the destination folder is listed again. */
		meta_set_stale(fs->meta, npid);
		lister_fresh(fs->ls, npid, LISTER_SYNC | LISTER_FORCE, NULL);
	}
	if (err)
		log_warn("cannot restore '%s' to '%s': %s", v.path, to ? to : newname,
			 strerror(-err));
	free(sname);
	free(dir);
	free(to);
	ctl_vrelease(&v);
	fs_reply_status(req, err);
	/* The kernel moved the trash entry's dentry to the new name: drop it,
	 * so the next lookup finds the restored file itself. */
	if (!err)
		notifier_inval_entry(fs->nt, newparent, newname);
}
