/*
 * fs/control.c — the control directory (see fs/control.h).
 *
 * The virtual tree:
 *
 *   .jottacloud/                  V_ROOT
 *     status, status.json         V_STATUS, V_STATUS_JSON (rendered at open)
 *     trash/                      V_TDIR with path "" (the mount root)
 *       a/                        V_TDIR: a live folder with trashed items below
 *         gone.txt                V_TFILE: a trashed file (server path kept)
 *         old/                    V_TITEM: a trashed folder (its tombstone tree)
 *     versions/                   V_VDIR of the mount root node
 *       a/                        V_VDIR of a real folder (index node)
 *         notes.txt/              V_VFILE of a real file (index node)
 *           notes (v1 2026-12-03 101500).txt    V_VREV
 *
 * The trash comes from the device's Trash view (one request, cached for a
 * moment), filtered to the items whose original parent lies under the mount
 * root; inside a trashed folder, its tombstone tree is listed (folder GET).
 * Revisions come from the file's document (<revisions>). Content is read
 * with Range GETs (the revision's, or the trashed file's); revision files
 * are immutable, so the kernel keeps their pages (keep_cache).
 *
 * Restoring (rename out of trash/): a file is brought back at its original
 * path with cphash (docs 8.7) and then moved where the user asked; a folder
 * is recreated (mkDir) and its files brought back one by one, then its
 * tombstone is removed. rm inside trash/ deletes for good (rm=true /
 * rmDir=true), after checking that the path still holds a tombstone (a live
 * file at the same path is never touched).
 *
 * Files: this one holds the node table, listings, attributes and the FUSE
 * operations; control_status.c, control_trash.c and control_versions.c the
 * rest (fs/control_int.h).
 *
 * Locks: c->lock protects the node table, the trash snapshot and the
 * upload outcome lists; a leaf lock, never held across a request.
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
#include "cache/meta.h"
#include "cache/upload.h"
#include "fs/fs.h"
#include "fs/itable.h"
#include "cache/lister.h"
#include "fs/notify.h"
#include "fs/options.h"
#include "fs/reply.h"
#include "lib/grow.h"
#include "lib/log.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/jfs.h"
#include "net/jfs_xml.h"
#include "net/names.h"
/* ---- the node table ------------------------------------------------------------ */

static size_t hash_of(uint64_t parent, const char *name)
{
	uint64_t h = parent * 0x9e3779b97f4a7c15ULL;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	return (size_t)(h >> 32) & (HASH_BUCKETS - 1);
}

static struct vnode *vget(struct control *c, uint64_t ino)
{
	if (ino < CONTROL_INO_MIN || ino - CONTROL_INO_MIN >= c->n)
		return NULL;
	return c->nodes[ino - CONTROL_INO_MIN];
}

/* A copy of node @ino (strings duplicated). -ENOENT. */
static int vcopy(struct control *c, uint64_t ino, struct vnode *out)
{
	int err = 0;

	pthread_mutex_lock(&c->lock);
	struct vnode *v = vget(c, ino);
	if (!v) {
		err = -ENOENT;
	} else {
		*out = *v;
		out->name = strdup(v->name);
		out->path = v->path ? strdup(v->path) : NULL;
		if (!out->name || (v->path && !out->path)) {
			free(out->name);
			free(out->path);
			err = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return err;
}

void ctl_vrelease(struct vnode *v)
{
	free(v->name);
	free(v->path);
	v->name = v->path = NULL;
}


/* The node for child @s of @parent: the existing one (refreshed with @s's
 * attributes) or a new one. Its ino in *ino. c->lock held. */
static int vput_locked(struct control *c, uint64_t parent, const struct vspec *s, uint64_t *ino)
{
	size_t h = hash_of(parent, s->name);
	struct vnode *v;

	for (v = c->hash[h]; v; v = v->hnext)
		/* One inode per name and type: a trash folder that became a
		 * trashed folder keeps its inode (the kernel may hold it). */
		if (v->parent == parent && !strcmp(v->name, s->name) &&
		    ctl_is_dir_kind(v->kind) == ctl_is_dir_kind(s->kind))
			break;
	if (!v) {
		if (array_grow(&c->nodes, &c->cap, c->n, sizeof(*c->nodes), 64) < 0)
			return -ENOMEM;
		v = calloc(1, sizeof(*v));
		if (!v || !(v->name = strdup(s->name))) {
			free(v);
			return -ENOMEM;
		}
		v->ino = CONTROL_INO_MIN + c->n;
		v->parent = parent;
		v->kind = s->kind;
		c->nodes[c->n++] = v;
		v->hnext = c->hash[h];
		c->hash[h] = v;
	}
	if (s->path && (!v->path || strcmp(v->path, s->path))) {
		char *p = strdup(s->path);
		if (!p)
			return -ENOMEM;
		free(v->path);
		v->path = p;
	}
	v->kind = s->kind;
	v->node = s->node;
	v->rev = s->rev;
	v->size = s->size;
	v->mtime = s->mtime;
	v->created = s->created;
	memcpy(v->md5, s->md5, sizeof(v->md5));
	*ino = v->ino;
	return 0;
}

static int vput(struct control *c, uint64_t parent, const struct vspec *s, uint64_t *ino)
{
	pthread_mutex_lock(&c->lock);
	int err = vput_locked(c, parent, s, ino);
	pthread_mutex_unlock(&c->lock);
	return err;
}

bool ctl_is_dir_kind(enum vkind k)
{
	return k == V_ROOT || k == V_TDIR || k == V_TITEM || k == V_VDIR || k == V_VFILE;
}

/* ---- specs ----------------------------------------------------------------------- */

void ctl_specs_release(struct vspecs *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].path);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* Append a spec (strings copied); a name already present is skipped. */
int ctl_specs_add(struct vspecs *l, const struct vspec *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].name, s->name))
			return 0;
	if (array_grow(&l->v, &l->cap, l->n, sizeof(*l->v), 16) < 0)
		return -ENOMEM;
	struct vspec *d = &l->v[l->n];
	*d = *s;
	d->name = strdup(s->name);
	d->path = s->path ? strdup(s->path) : NULL;
	if (!d->name || (s->path && !d->path)) {
		free(d->name);
		free(d->path);
		return -ENOMEM;
	}
	l->n++;
	return 0;
}

/* "a/b" + "c" -> "a/b/c"; "" + "c" -> "c". NULL on ENOMEM. */
char *ctl_path_join(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s%s%s", dir, *dir ? "/" : "", name) < 0)
		return NULL;
	return p;
}

/* The POSIX path of server path @path (each segment decoded). */
char *ctl_path_decode(const char *path)
{
	size_t cap = strlen(path) * 3 + 1, len = 0;
	char *out = malloc(cap);

	if (!out)
		return NULL;
	out[0] = '\0';
	for (const char *seg = path; *seg;) {
		const char *end = strchrnul(seg, '/');
		char *s = strndup(seg, (size_t)(end - seg)), *d = NULL;
		if (!s || names_decode(s, &d)) {
			free(s);
			free(out);
			return NULL;
		}
		size_t need = len + strlen(d) + 2;
		if (need > cap) {
			char *n = realloc(out, need);
			if (!n) {
				free(s);
				free(d);
				free(out);
				return NULL;
			}
			out = n;
			cap = need;
		}
		len += (size_t)sprintf(out + len, "%s%s", len ? "/" : "", d);
		free(s);
		free(d);
		seg = *end ? end + 1 : end;
	}
	return out;
}

/* ---- listing any control directory --------------------------------------------------- */

int ctl_list_dir(struct fs *fs, const struct vnode *dir, struct vspecs *out)
{
	int err = 0;

	switch (dir->kind) {
	case V_ROOT: {
		static const struct { const char *name; enum vkind kind; } fixed[] = {
			{ "status", V_STATUS }, { "status.json", V_STATUS_JSON },
			{ "trash", V_TDIR }, { "versions", V_VDIR },
		};
		for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]) && !err; i++) {
			struct vspec s = { .kind = fixed[i].kind, .name = (char *)fixed[i].name };
			if (s.kind == V_VDIR)
				s.node = fs->root_id;
			if (s.kind == V_TDIR)
				s.path = (char *)"";
			err = ctl_specs_add(out, &s);
		}
		return err;
	}
	case V_TDIR:
		return ctl_list_tdir(fs, dir, out);
	case V_TITEM:
		return ctl_list_titem(fs, dir, out);
	case V_VDIR:
		return ctl_list_vdir(fs, dir, out);
	case V_VFILE:
		return ctl_list_vfile(fs, dir, out);
	default:
		return -ENOTDIR;
	}
}

/* ---- attributes -------------------------------------------------------------------------- */

static void fill_attr(struct fs *fs, const struct vnode *v, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = v->ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_nlink = 1;
	if (ctl_is_dir_kind(v->kind)) {
		/* trash folders take unlink, rmdir and rename; the rest is read-only */
		bool trash = v->kind == V_TDIR || v->kind == V_TITEM;
		st->st_mode = S_IFDIR | (trash ? (0755 & fs->dmode) : (0555 & fs->dmode));
	} else {
		st->st_mode = S_IFREG | (0444 & fs->fmode);
		int64_t size = v->size > 0 ? v->size : 0;

		st->st_size = size;
		st->st_blocks = size / 512 + (size % 512 != 0);
	}
	st->st_blksize = 128 * 1024;
	st->st_mtim.tv_sec = v->mtime;
	st->st_atim.tv_sec = v->mtime;
	st->st_ctim.tv_sec = v->mtime;
}

/* Fresh attributes of @v (status files: the size of a render now). */
static void refresh_attr(struct fs *fs, struct vnode *v)
{
	if (v->kind == V_STATUS || v->kind == V_STATUS_JSON) {
		char *s;
		size_t len = 0;
		if (ctl_status_render(fs, v->kind == V_STATUS_JSON, &s, &len) == 0)
			free(s);
		v->size = (int64_t)len;
		v->mtime = time(NULL);
	} else if (v->kind == V_ROOT || v->kind == V_TDIR || v->kind == V_VDIR) {
		if (!v->mtime)
			v->mtime = time(NULL);
	}
}

/*
 * Kernel timeouts: the status files change all the time; the trash changes
 * under the kernel's feet (a folder trashed after a file in it turns a
 * path into a trashed folder), so its names are looked up every time (the
 * trash view itself is reused for TRASH_TTL_S); versions are stable.
 */
static double vtimeout(const struct vnode *v)
{
	switch (v->kind) {
	/* versions/PATH follows the node at PATH, which an rm, a restore or a
	 * rename replaces at any moment: looked up again at every use */
	case V_STATUS: case V_STATUS_JSON: case V_TDIR: case V_TITEM: case V_TFILE:
	case V_VDIR: case V_VFILE:
		return 0;
	default:
		return CTL_TIMEOUT;
	}
}

static void reply_vnode_entry(fuse_req_t req, struct fs *fs, struct vnode *v)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = v->ino;
	e.generation = 1;
	refresh_attr(fs, v);
	fill_attr(fs, v, &e.attr);
	e.attr_timeout = e.entry_timeout = vtimeout(v);
	if (itable_ref(fs->it, e.ino)) {
		fs_reply_err(req, -ENOMEM);
		return;
	}
	if (fuse_reply_entry(req, &e))
		itable_forget(fs->it, e.ino, 1);
}

/* ---- life cycle ------------------------------------------------------------------------------ */

int control_new(struct fs *fs, struct control **out)
{
	struct control *c = calloc(1, sizeof(*c));
	struct vspec root = { .kind = V_ROOT, .name = fs->o->control_dir };
	uint64_t ino;
	int err;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->fs = fs;
	pthread_mutex_init(&c->lock, NULL);
	err = vput(c, 0, &root, &ino);
	if (err) {
		control_free(c);
		return err;
	}
	*out = c;
	return 0;
}

void control_free(struct control *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		free(c->nodes[i]->name);
		free(c->nodes[i]->path);
		free(c->nodes[i]);
	}
	free(c->nodes);
	ctl_trash_free(c->trash, c->ntrash);
	for (size_t i = 0; i < c->nconflicts; i++)
		free(c->conflicts[i]);
	for (size_t i = 0; i < c->nfailed; i++)
		free(c->failed[i]);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

bool control_is_entry(struct fs *fs, fuse_ino_t parent, const char *name)
{
	return fs->ctl && parent == FUSE_ROOT_ID && !strcmp(name, fs->o->control_dir);
}

/* ---- operations ----------------------------------------------------------------------------- */

/* Find child @name of control directory @parent (listing it). */
int ctl_child(struct fs *fs, uint64_t parent, const char *name, struct vnode *out)
{
	struct vnode dir;
	struct vspecs l = { 0 };
	uint64_t ino = 0;
	int err = vcopy(fs->ctl, parent, &dir);

	if (err)
		return err;
	if (!ctl_is_dir_kind(dir.kind)) {
		ctl_vrelease(&dir);
		return -ENOTDIR;
	}
	err = ctl_list_dir(fs, &dir, &l);
	ctl_vrelease(&dir);
	for (size_t i = 0; !err && i < l.n; i++)
		if (!strcmp(l.v[i].name, name)) {
			err = vput(fs->ctl, parent, &l.v[i], &ino);
			break;
		}
	ctl_specs_release(&l);
	if (!err && !ino)
		err = -ENOENT;
	return err ? err : vcopy(fs->ctl, ino, out);
}

void control_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct vnode v;
	int err;

	if (parent == FUSE_ROOT_ID) {
		struct meta_attr a;
		if (!atomic_load(&fs->ctl->shadow_logged) &&
		    meta_lookup(fs->meta, fs->root_id, name, &a) == 0 &&
		    !atomic_exchange(&fs->ctl->shadow_logged, true)) {
			log_warn("the server folder '%s' at the mount root is hidden by the control "
				 "directory; mount with -o control_dir=OTHER to reach it", name);
		}
		err = vcopy(fs->ctl, CONTROL_INO_MIN, &v);
	} else {
		err = ctl_child(fs, parent, name, &v);
	}
	if (err == -ENOENT) {
		struct fuse_entry_param e;
		memset(&e, 0, sizeof(e));
		fuse_reply_entry(req, &e);      /* negative, not cached */
		return;
	}
	if (err) {
		fs_reply_err(req, err);
		return;
	}
	reply_vnode_entry(req, fs, &v);
	ctl_vrelease(&v);
}

void control_op_getattr(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct vnode v;
	struct stat st;
	int err = vcopy(fs->ctl, ino, &v);

	if (err) {
		fs_reply_err(req, err);
		return;
	}
	refresh_attr(fs, &v);
	fill_attr(fs, &v, &st);
	fuse_reply_attr(req, &st, vtimeout(&v));
	ctl_vrelease(&v);
}

/* An open control directory: a snapshot taken at opendir. */
struct cdir {
	struct vspecs l;
	uint64_t *inos;
};

void control_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct cdir *d = calloc(1, sizeof(*d));
	struct vnode v;
	int err = d ? vcopy(fs->ctl, ino, &v) : -ENOMEM;

	if (!err) {
		err = ctl_is_dir_kind(v.kind) ? ctl_list_dir(fs, &v, &d->l) : -ENOTDIR;
		ctl_vrelease(&v);
	}
	if (!err && d->l.n && !(d->inos = calloc(d->l.n, sizeof(*d->inos))))
		err = -ENOMEM;
	for (size_t i = 0; !err && i < d->l.n; i++)
		err = vput(fs->ctl, ino, &d->l.v[i], &d->inos[i]);
	if (err) {
		if (d) {
			ctl_specs_release(&d->l);
			free(d->inos);
			free(d);
		}
		fs_reply_err(req, err);
		return;
	}
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi)) {
		ctl_specs_release(&d->l);
		free(d->inos);
		free(d);
	}
}

void control_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi, bool plus)
{
	struct fs *fs = fs_of(req);
	struct cdir *d = (struct cdir *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t pos = 0;

	if (!buf) {
		fs_reply_err(req, -ENOMEM);
		return;
	}
	for (size_t i = off < 0 ? 0 : (size_t)off; i < d->l.n + 2; i++) {
		struct fuse_entry_param e;
		const char *name;
		struct vnode v = { 0 };
		size_t need;

		memset(&e, 0, sizeof(e));
		if (i < 2) {
			e.ino = ino;
			e.attr.st_ino = ino;
			e.attr.st_mode = S_IFDIR;
			name = i == 0 ? "." : "..";
		} else {
			if (vcopy(fs->ctl, d->inos[i - 2], &v))
				continue;
			e.ino = v.ino;
			e.generation = 1;
			refresh_attr(fs, &v);
			fill_attr(fs, &v, &e.attr);
			e.attr_timeout = e.entry_timeout = vtimeout(&v);
			name = d->l.v[i - 2].name;
		}
		need = fs_add_direntry(req, buf + pos, size - pos, name, &e, (off_t)(i + 1), plus);
		ctl_vrelease(&v);
		if (need > size - pos)
			break;
		if (plus && i >= 2 && itable_ref(fs->it, e.ino))
			break;
		pos += need;
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

void control_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct cdir *d = (struct cdir *)(uintptr_t)fi->fh;

	(void)ino;
	if (d) {
		ctl_specs_release(&d->l);
		free(d->inos);
		free(d);
	}
	fs_reply_status(req, 0);
}

/* An open control file: the rendered status, or where to read content from. */
struct cfile {
	char *text;             /* status: rendered at open */
	size_t len;
	struct vnode v;         /* trash file / revision */
	struct dfile *df;       /* its content in the content cache (NULL: no md5 known) */
	struct dcache_seq seq;
};

void control_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct cfile *f;
	int err;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fs_reply_err(req, -EROFS);
		return;
	}
	f = calloc(1, sizeof(*f));
	err = f ? vcopy(fs->ctl, ino, &f->v) : -ENOMEM;
	if (!err && ctl_is_dir_kind(f->v.kind))
		err = -EISDIR;
	if (!err && (f->v.kind == V_STATUS || f->v.kind == V_STATUS_JSON)) {
		err = ctl_status_render(fs, f->v.kind == V_STATUS_JSON, &f->text, &f->len);
		fi->direct_io = 1;      /* its size changes at every open */
	} else if (!err && f->v.md5[0]) {
		/* Immutable content (by md5): cached like any, under the vnode's
		 * inode number, which no index node uses. */
		char *path = NULL;
		if (f->v.kind == V_VREV)
			err = meta_path(fs->meta, f->v.node, &path);
		if (!err)
			err = dcache_open_ref(fs->dc, f->v.ino, f->v.size, f->v.md5,
					      path ? path : f->v.path,
					      f->v.kind == V_VREV ? f->v.rev : 0, &f->df);
		free(path);
		fi->keep_cache = 1;
	}
	if (err) {
		if (f) {
			ctl_vrelease(&f->v);
			free(f);
		}
		fs_reply_err(req, err);
		return;
	}
	fi->fh = (uintptr_t)f;
	if (fuse_reply_open(req, fi)) {
		if (f->df)
			dcache_close(f->df);
		free(f->text);
		ctl_vrelease(&f->v);
		free(f);
	}
}

/* A bounded memory sink for ranged reads. */
struct memsink {
	char *buf;
	size_t len, cap;
};

static int mem_write(void *ctx, const void *data, size_t len)
{
	struct memsink *m = ctx;

	if (len > m->cap - m->len)
		return -EIO;
	memcpy(m->buf + m->len, data, len);
	m->len += len;
	return 0;
}

static int mem_reset(void *ctx)
{
	((struct memsink *)ctx)->len = 0;
	return 0;
}

void control_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct cfile *f = (struct cfile *)(uintptr_t)fi->fh;
	struct memsink m = { 0 };
	struct http_sink sink = { .write = mem_write, .reset = mem_reset, .ctx = &m };
	char *path = NULL;
	int64_t got = 0;
	int err;

	(void)ino;
	if (f->text) {
		/* Copied: once the reply is in, the kernel may release the file
		 * (freeing f) on another thread before fuse_reply_buf returns. */
		size_t o = (size_t)off < f->len ? (size_t)off : f->len;
		size_t n = size < f->len - o ? size : f->len - o;
		char *copy = n ? malloc(n) : NULL;
		if (n && !copy) {
			fs_reply_err(req, -ENOMEM);
			return;
		}
		if (n)
			memcpy(copy, f->text + o, n);
		fuse_reply_buf(req, copy, n);
		free(copy);
		return;
	}
	if (f->df) {
		/* @f may be released as soon as the kernel has the reply. */
		fs_reply_dcache(req, f->df, &f->seq, off, size);
		return;
	}
	if (off >= f->v.size || size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > MAX_READ)
		size = MAX_READ;
	if ((int64_t)size > f->v.size - off)
		size = (size_t)(f->v.size - off);
	m.cap = size;
	m.buf = malloc(size);
	if (!m.buf) {
		fs_reply_err(req, -ENOMEM);
		return;
	}
	if (f->v.kind == V_VREV) {
		err = meta_path(fs->meta, f->v.node, &path);
		if (!err)
			err = jfs_download_revision(fs->jfs, path, f->v.rev, off,
						    off + (int64_t)size - 1, &sink, &got);
	} else {
		err = jfs_download(fs->jfs, f->v.path, off, off + (int64_t)size - 1, &sink, &got);
	}
	free(path);
	if (!err && m.len != size)
		err = -EIO;             /* a short read is an error, never zeros */
	if (err)
		fs_reply_err(req, err);
	else
		fuse_reply_buf(req, m.buf, m.len);
	free(m.buf);
}

void control_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct cfile *f = (struct cfile *)(uintptr_t)fi->fh;

	(void)ino;
	if (f) {
		if (f->df)
			dcache_close(f->df);
		free(f->text);
		ctl_vrelease(&f->v);
		free(f);
	}
	fs_reply_status(req, 0);
}
