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
 * Locks: c->lock protects the node table, the trash snapshot and the
 * upload outcome lists; a leaf lock, never held across a request.
 */
#include "fs/control.h"

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
#include "fs/lister.h"
#include "fs/notify.h"
#include "fs/options.h"
#include "lib/log.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/jfs.h"
#include "net/jfs_xml.h"
#include "net/names.h"

#define TRASH_TTL_S     2.0     /* the trash view is reused this long */
#define CTL_TIMEOUT     1.0     /* kernel entry/attribute timeout of the tree */
#define MAX_OUTCOMES    256     /* conflict / failed paths remembered */
#define MAX_READ        (1 << 20)

enum vkind {
	V_ROOT, V_STATUS, V_STATUS_JSON,
	V_TDIR,         /* trash: a folder on the way to trashed items */
	V_TITEM,        /* trash: a trashed folder, or a folder inside one */
	V_TFILE,        /* trash: a trashed file */
	V_VDIR,         /* versions: a real folder (node) */
	V_VFILE,        /* versions: a real file (node), a folder of revisions */
	V_VREV,         /* versions: one revision */
};

/* A virtual node; lives as long as the mount. */
struct vnode {
	uint64_t ino;
	uint64_t parent;        /* ino of the parent, 0 for V_ROOT */
	enum vkind kind;
	char *name;             /* POSIX name in its parent */
	char *path;             /* trash: server path under the mountpoint */
	uint64_t node;          /* versions: index node id */
	int64_t rev;            /* V_VREV: revision number */
	int64_t size;
	time_t mtime;
	time_t created;
	char md5[33];
	struct vnode *hnext;    /* hash chain by (parent, name) */
};

/* One child as a listing describes it, before it gets a vnode. */
struct vspec {
	enum vkind kind;
	char *name, *path;
	uint64_t node;
	int64_t rev, size;
	time_t mtime, created;
	char md5[33];
};

struct vspecs {
	struct vspec *v;
	size_t n, cap;
};

/* A top-level trashed item of this mount. */
struct titem {
	char *rel;              /* original parent, server path relative to the mount root */
	char *sname;
	bool is_dir;
	int64_t size;
	time_t mtime, created;
	char md5[33];
};

#define HASH_BUCKETS 1024

struct control {
	struct fs *fs;
	pthread_mutex_t lock;           /* protects everything below */
	struct vnode **nodes;           /* by ino - CONTROL_INO_MIN */
	size_t n, cap;
	struct vnode *hash[HASH_BUCKETS];
	struct titem *trash;            /* snapshot of the trash view */
	size_t ntrash;
	double trash_at;                /* monotonic time of the snapshot, 0 none */
	char *conflicts[MAX_OUTCOMES];  /* conflict copies made (server paths) */
	size_t nconflicts;
	uint64_t conflicts_total;
	char *failed[MAX_OUTCOMES];     /* given up (server paths) */
	size_t nfailed;
	atomic_bool shadow_logged;      /* the shadowed server folder was logged */
};

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

static void vrelease(struct vnode *v)
{
	free(v->name);
	free(v->path);
	v->name = v->path = NULL;
}

static bool is_dir_kind(enum vkind k);

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
		    is_dir_kind(v->kind) == is_dir_kind(s->kind))
			break;
	if (!v) {
		if (c->n == c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 64;
			struct vnode **nv = reallocarray(c->nodes, cap, sizeof(*nv));
			if (!nv)
				return -ENOMEM;
			c->nodes = nv;
			c->cap = cap;
		}
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

static bool is_dir_kind(enum vkind k)
{
	return k == V_ROOT || k == V_TDIR || k == V_TITEM || k == V_VDIR || k == V_VFILE;
}

/* ---- specs ----------------------------------------------------------------------- */

static void specs_release(struct vspecs *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].path);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* Append a spec (strings copied); a name already present is skipped. */
static int specs_add(struct vspecs *l, const struct vspec *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].name, s->name))
			return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct vspec *v = reallocarray(l->v, cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
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
static char *path_join(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s%s%s", dir, *dir ? "/" : "", name) < 0)
		return NULL;
	return p;
}

/* The POSIX path of server path @path (each segment decoded). */
static char *path_decode(const char *path)
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

/* ---- status ------------------------------------------------------------------------ */

/* Connectivity, from the mount's one state (net/conn.h). */
struct conn_view {
	const char *state;      /* "online", "degraded", "offline" or "unknown" */
	time_t since;           /* 0 unknown */
	char last_error[128];   /* "" none */
};

static void conn_view(struct fs *fs, struct conn_view *cv)
{
	struct conn_info ci;

	memset(cv, 0, sizeof(*cv));
	cv->state = "unknown";
	if (!fs->conn)
		return;
	conn_get_info(fs->conn, &ci);
	cv->state = conn_state_name(ci.state);
	cv->since = ci.since;
	snprintf(cv->last_error, sizeof(cv->last_error), "%s", ci.last_error);
}

static void iso_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (!t || !gmtime_r(&t, &tm))
		snprintf(buf, len, "-");
	else
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

#define MAX_XFERS 64

/* Files kept in lost+found (uploads given up, not yet dealt with by the
 * user: removing them there clears the count). */
static _Thread_local unsigned lf_count;

static int lf_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)path;
	(void)sb;
	(void)ftw;
	if (type == FTW_F)
		lf_count++;
	return 0;
}

static unsigned lost_found_files(const char *dir)
{
	lf_count = 0;
	nftw(dir, lf_cb, 16, FTW_PHYS);
	return lf_count;
}

/* The status as a cJSON tree (NULL on ENOMEM). */
static cJSON *status_json(struct fs *fs)
{
	struct control *c = fs->ctl;
	struct upload_xfer xf[MAX_XFERS];
	struct conn_view cv;
	unsigned files = 0, given_up = 0;
	int64_t bytes = 0;
	size_t nx = 0;
	char t[32];
	cJSON *j = cJSON_CreateObject(), *o, *a;

	if (!j)
		return NULL;
	cJSON_AddStringToObject(j, "mountpoint", fs->o->local_mountpoint);
	char remote[512];
	snprintf(remote, sizeof(remote), "%s/%s%s%s", fs->o->device, fs->o->mountpoint,
		 *fs->o->subpath ? ":/" : "", fs->o->subpath);
	cJSON_AddStringToObject(j, "remote", remote);
	conn_view(fs, &cv);
	o = cJSON_AddObjectToObject(j, "connectivity");
	if (o) {
		cJSON_AddStringToObject(o, "state", cv.state);
		iso_time(cv.since, t, sizeof(t));
		if (cv.since)
			cJSON_AddStringToObject(o, "since", t);
		else
			cJSON_AddNullToObject(o, "since");
		if (cv.last_error[0])
			cJSON_AddStringToObject(o, "last_error", cv.last_error);
		else
			cJSON_AddNullToObject(o, "last_error");
	}
	if (fs->up) {
		upload_stats(fs->up, &files, &bytes);
		given_up = upload_given_up(fs->up);
		upload_running(fs->up, xf, MAX_XFERS, &nx);
	}
	o = cJSON_AddObjectToObject(j, "pending");
	if (o) {
		cJSON_AddNumberToObject(o, "files", files);
		cJSON_AddNumberToObject(o, "bytes", (double)bytes);
	}
	a = cJSON_AddArrayToObject(j, "transfers");
	for (size_t i = 0; i < nx; i++) {
		cJSON *x = cJSON_CreateObject();
		char *p = path_decode(xf[i].path);
		if (x) {
			cJSON_AddStringToObject(x, "path", p ? p : xf[i].path);
			cJSON_AddNumberToObject(x, "done", (double)xf[i].done);
			cJSON_AddNumberToObject(x, "total", (double)xf[i].total);
			cJSON_AddItemToArray(a, x);
		}
		free(p);
		free(xf[i].path);
	}
	o = cJSON_AddObjectToObject(j, "conflicts");
	a = o ? cJSON_AddArrayToObject(o, "paths") : NULL;
	pthread_mutex_lock(&c->lock);
	if (o)
		cJSON_AddNumberToObject(o, "count", (double)c->conflicts_total);
	for (size_t i = 0; a && i < c->nconflicts; i++) {
		char *p = path_decode(c->conflicts[i]);
		cJSON_AddItemToArray(a, cJSON_CreateString(p ? p : c->conflicts[i]));
		free(p);
	}
	pthread_mutex_unlock(&c->lock);
	o = cJSON_AddObjectToObject(j, "lost_found");
	if (o) {
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s/lost+found", fs->o->cache_dir);
		cJSON_AddNumberToObject(o, "files", lost_found_files(dir));
		cJSON_AddNumberToObject(o, "given_up", given_up);
		cJSON_AddStringToObject(o, "dir", dir);
	}
	return j;
}

/* Render the status file (@json: status.json). *out malloc'd. */
static int status_render(struct fs *fs, bool json, char **out, size_t *len)
{
	cJSON *j = status_json(fs);
	char *s = NULL;

	*out = NULL;
	if (!j)
		return -ENOMEM;
	if (json) {
		char *p = cJSON_Print(j);
		if (p && asprintf(&s, "%s\n", p) < 0)
			s = NULL;
		cJSON_free(p);
	} else {
		FILE *f;
		size_t n = 0;
		f = open_memstream(&s, &n);
		if (f) {
			const cJSON *cn = cJSON_GetObjectItem(j, "connectivity");
			const cJSON *pd = cJSON_GetObjectItem(j, "pending");
			const cJSON *cf = cJSON_GetObjectItem(j, "conflicts");
			const cJSON *lf = cJSON_GetObjectItem(j, "lost_found");
			const cJSON *x;
			fprintf(f, "jottafs %s on %s\n",
				cJSON_GetStringValue(cJSON_GetObjectItem(j, "remote")),
				cJSON_GetStringValue(cJSON_GetObjectItem(j, "mountpoint")));
			fprintf(f, "connectivity:    %s",
				cJSON_GetStringValue(cJSON_GetObjectItem(cn, "state")));
			if (cJSON_IsString(cJSON_GetObjectItem(cn, "since")))
				fprintf(f, " since %s",
					cJSON_GetStringValue(cJSON_GetObjectItem(cn, "since")));
			if (cJSON_IsString(cJSON_GetObjectItem(cn, "last_error")))
				fprintf(f, " (last error: %s)",
					cJSON_GetStringValue(cJSON_GetObjectItem(cn, "last_error")));
			double nf = cJSON_GetNumberValue(cJSON_GetObjectItem(pd, "files"));
			fprintf(f, "\npending uploads: %.0f file%s, %.0f bytes\n", nf,
				nf == 1 ? "" : "s",
				cJSON_GetNumberValue(cJSON_GetObjectItem(pd, "bytes")));
			x = cJSON_GetObjectItem(j, "transfers");
			for (x = x ? x->child : NULL; x; x = x->next) {
				double d = cJSON_GetNumberValue(cJSON_GetObjectItem(x, "done"));
				double tt = cJSON_GetNumberValue(cJSON_GetObjectItem(x, "total"));
				fprintf(f, "  uploading %s: %.0f/%.0f bytes (%.0f%%)\n",
					cJSON_GetStringValue(cJSON_GetObjectItem(x, "path")), d, tt,
					tt > 0 ? 100.0 * d / tt : 100.0);
			}
			fprintf(f, "conflicts made:  %.0f\n",
				cJSON_GetNumberValue(cJSON_GetObjectItem(cf, "count")));
			x = cJSON_GetObjectItem(cf, "paths");
			for (x = x ? x->child : NULL; x; x = x->next)
				fprintf(f, "  %s\n", cJSON_GetStringValue(x));
			double nl = cJSON_GetNumberValue(cJSON_GetObjectItem(lf, "files"));
			fprintf(f, "lost+found:      %.0f file%s (%s)\n", nl, nl == 1 ? "" : "s",
				cJSON_GetStringValue(cJSON_GetObjectItem(lf, "dir")));
			if (fclose(f))
				s = NULL;
		}
	}
	cJSON_Delete(j);
	if (!s)
		return -ENOMEM;
	*out = s;
	*len = strlen(s);
	return 0;
}

/* ---- upload outcomes and the state xattr ------------------------------------------------ */

static bool list_has(char **v, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i], path))
			return true;
	return false;
}

static void list_add(char **v, size_t *n, const char *path)
{
	char *p;

	if (list_has(v, *n, path) || !(p = strdup(path)))
		return;
	if (*n == MAX_OUTCOMES) {
		free(v[0]);
		memmove(v, v + 1, (MAX_OUTCOMES - 1) * sizeof(*v));
		(*n)--;
	}
	v[(*n)++] = p;
}

static void list_del(char **v, size_t *n, const char *path)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp(v[i], path)) {
			free(v[i]);
			memmove(v + i, v + i + 1, (*n - i - 1) * sizeof(*v));
			(*n)--;
			return;
		}
}

void control_upload_done(struct control *c, uint64_t id, int err, const char *server_path)
{
	char *path = NULL;

	if (!c || !server_path)
		return;
	meta_path(c->fs->meta, id, &path);
	pthread_mutex_lock(&c->lock);
	if (err) {
		list_add(c->failed, &c->nfailed, path ? path : server_path);
	} else if (path && strcmp(path, server_path)) {
		list_add(c->conflicts, &c->nconflicts, server_path);
		c->conflicts_total++;
	} else {
		list_del(c->failed, &c->nfailed, server_path);
	}
	pthread_mutex_unlock(&c->lock);
	free(path);
}

int control_file_state(struct fs *fs, const struct meta_attr *a, char *buf, size_t len)
{
	struct control *c = fs->ctl;
	struct upload_state st;
	char *path = NULL;
	bool conflict = false, failed = false;

	if (a->is_dir)
		return -ENODATA;
	if (fs->up && upload_state(fs->up, a->id, &st) == 0) {
		if (st.running) {
			snprintf(buf, len, "uploading %" PRId64 "/%" PRId64, st.done, st.total);
			return 0;
		}
		if (st.pending) {
			snprintf(buf, len, "pending");
			return 0;
		}
		failed = st.given_up;
	}
	if (a->local && !failed) {
		snprintf(buf, len, "pending");      /* being written, not closed yet */
		return 0;
	}
	if (c && meta_path(fs->meta, a->id, &path) == 0) {
		pthread_mutex_lock(&c->lock);
		conflict = list_has(c->conflicts, c->nconflicts, path);
		failed = failed || list_has(c->failed, c->nfailed, path);
		pthread_mutex_unlock(&c->lock);
	}
	free(path);
	snprintf(buf, len, "%s", failed ? "failed" : conflict ? "conflict" : "synced");
	return 0;
}

/* ---- the trash ------------------------------------------------------------------------- */

static void trash_free(struct titem *v, size_t n)
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
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 32;
		struct titem *v = reallocarray(t->v, cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		t->v = v;
		t->cap = cap;
	}
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

	pthread_mutex_lock(&c->lock);
	bool fresh = !force && c->trash_at && mono() - c->trash_at < TRASH_TTL_S;
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
		trash_free(t.v, t.n);
		return err;
	}
	pthread_mutex_lock(&c->lock);
	trash_free(c->trash, c->ntrash);
	c->trash = t.v;
	c->ntrash = t.n;
	c->trash_at = mono();
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
	p = *rel ? path_join(root, rel) : strdup(root);
	free(root);
	return p;
}

/* Children of trash folder @dir (V_TDIR, mount-relative path @dir->path). */
static int list_tdir(struct fs *fs, const struct vnode *dir, struct vspecs *out)
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
			char *rel = path_join(it->rel, it->sname);
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
			s.path = seg ? (pl ? path_join(p, seg) : strdup(seg)) : NULL;
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
		err = specs_add(out, &s);
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
	s.path = path_join(t->dir, e->name);
	s.size = e->size;
	s.mtime = e->modified;
	s.created = e->created;
	memcpy(s.md5, e->md5, sizeof(s.md5));
	err = s.path ? specs_add(t->out, &s) : -ENOMEM;
	free(name);
	free(s.path);
	return err;
}

/* ---- versions -------------------------------------------------------------------------- */

struct vdir_collect {
	struct vspecs *out;
	int err;
};

static int vdir_cb(void *ctx, const struct meta_attr *a, const char *name)
{
	struct vdir_collect *t = ctx;
	struct vspec s = { 0 };

	s.kind = a->is_dir ? V_VDIR : V_VFILE;
	s.name = (char *)name;
	s.node = a->id;
	s.mtime = a->mtime;
	t->err = specs_add(t->out, &s);
	return t->err;
}

/* "notes.txt", 3, t -> "notes (v3 2026-12-03 101500).txt" (the conflict-name
 * pattern: the extension stays, so the file still opens with its program). */
static char *rev_name(const char *name, int64_t number, time_t t)
{
	const char *dot = strrchr(name, '.');
	char stamp[32], *out;
	struct tm tm;

	if (!dot || dot == name || !dot[1])
		dot = name + strlen(name);
	if (!gmtime_r(&t, &tm))
		memset(&tm, 0, sizeof(tm));
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H%M%S", &tm);
	if (asprintf(&out, "%.*s (v%" PRId64 " %s)%s", (int)(dot - name), name, number, stamp,
		     dot) < 0)
		return NULL;
	return out;
}

struct rev_collect {
	const char *fname;      /* POSIX name of the file */
	struct vspecs *out;
	uint64_t node;
};

static int rev_cb(void *ctx, const struct jfs_xml_revision *r)
{
	struct rev_collect *t = ctx;
	struct vspec s = { 0 };
	int err;

	if (strcmp(r->state, "COMPLETED") || r->number <= 0 || r->size < 0)
		return 0;
	s.kind = V_VREV;
	s.name = rev_name(t->fname, r->number, r->modified);
	if (!s.name)
		return -ENOMEM;
	s.node = t->node;
	s.rev = r->number;
	s.size = r->size;
	s.mtime = r->modified;
	s.created = r->created;
	memcpy(s.md5, r->md5, sizeof(s.md5));
	err = specs_add(t->out, &s);
	free(s.name);
	return err;
}

/* ---- listing any control directory --------------------------------------------------- */

static int list_dir(struct fs *fs, const struct vnode *dir, struct vspecs *out)
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
			err = specs_add(out, &s);
		}
		return err;
	}
	case V_TDIR:
		return list_tdir(fs, dir, out);
	case V_TITEM: {
		struct titem_collect t = { .dir = dir->path, .out = out };
		return jfs_list_trashed(fs->jfs, dir->path, titem_cb, &t);
	}
	case V_VDIR: {
		struct vdir_collect t = { .out = out };
		err = lister_fresh(fs->ls, dir->node, 0, NULL);
		if (!err)
			err = meta_children(fs->meta, dir->node, vdir_cb, &t);
		return err ? err : t.err;
	}
	case V_VFILE: {
		char *path = NULL, *name = NULL;
		err = meta_path(fs->meta, dir->node, &path);
		if (!err)
			err = meta_names(fs->meta, dir->node, &name, NULL);
		if (!err) {
			struct rev_collect t = { .fname = name, .out = out, .node = dir->node };
			err = jfs_revisions(fs->jfs, path, rev_cb, &t);
			if (err == -ENOENT || err == -EISDIR)
				err = 0;        /* never uploaded, or not a file any more */
		}
		free(path);
		free(name);
		return err;
	}
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
	if (is_dir_kind(v->kind)) {
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
		if (status_render(fs, v->kind == V_STATUS_JSON, &s, &len) == 0)
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
	trash_free(c->trash, c->ntrash);
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
static int child(struct fs *fs, uint64_t parent, const char *name, struct vnode *out)
{
	struct vnode dir;
	struct vspecs l = { 0 };
	uint64_t ino = 0;
	int err = vcopy(fs->ctl, parent, &dir);

	if (err)
		return err;
	if (!is_dir_kind(dir.kind)) {
		vrelease(&dir);
		return -ENOTDIR;
	}
	err = list_dir(fs, &dir, &l);
	vrelease(&dir);
	for (size_t i = 0; !err && i < l.n; i++)
		if (!strcmp(l.v[i].name, name)) {
			err = vput(fs->ctl, parent, &l.v[i], &ino);
			break;
		}
	specs_release(&l);
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
		err = child(fs, parent, name, &v);
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
	vrelease(&v);
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
	vrelease(&v);
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
		err = is_dir_kind(v.kind) ? list_dir(fs, &v, &d->l) : -ENOTDIR;
		vrelease(&v);
	}
	if (!err && d->l.n && !(d->inos = calloc(d->l.n, sizeof(*d->inos))))
		err = -ENOMEM;
	for (size_t i = 0; !err && i < d->l.n; i++)
		err = vput(fs->ctl, ino, &d->l.v[i], &d->inos[i]);
	if (err) {
		if (d) {
			specs_release(&d->l);
			free(d->inos);
			free(d);
		}
		fs_reply_err(req, err);
		return;
	}
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi)) {
		specs_release(&d->l);
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
		if (plus)
			need = fuse_add_direntry_plus(req, buf + pos, size - pos, name, &e,
						      (off_t)(i + 1));
		else
			need = fuse_add_direntry(req, buf + pos, size - pos, name, &e.attr,
						 (off_t)(i + 1));
		vrelease(&v);
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
		specs_release(&d->l);
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
	if (!err && is_dir_kind(f->v.kind))
		err = -EISDIR;
	if (!err && (f->v.kind == V_STATUS || f->v.kind == V_STATUS_JSON)) {
		err = status_render(fs, f->v.kind == V_STATUS_JSON, &f->text, &f->len);
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
			vrelease(&f->v);
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
		vrelease(&f->v);
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
		struct dcache_buf b;
		err = dcache_read(f->df, &f->seq, off, size, &b);
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
		/* @f may be released as soon as the kernel has the reply. */
		fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
		dcache_buf_release(&b);
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
		vrelease(&f->v);
		free(f);
	}
	fs_reply_status(req, 0);
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
	int err = fs->ro ? -EROFS : child(fs, parent, name, &v);

	if (err) {
		fs_reply_status(req, err);
		return;
	}
	if (v.kind == V_TFILE)
		err = purge_item(fs, &v);
	else
		err = is_dir_kind(v.kind) ? -EISDIR : -EPERM;
	vrelease(&v);
	fs_reply_status(req, err);
}

void control_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct vnode v;
	struct vspecs l = { 0 };
	int err = fs->ro ? -EROFS : child(fs, parent, name, &v);

	if (err) {
		fs_reply_status(req, err);
		return;
	}
	if (v.kind == V_TITEM) {
		err = purge_item(fs, &v);
	} else if (v.kind == V_TDIR && parent != CONTROL_INO_MIN) {
		/* A folder on the way to trashed items: gone when they are. */
		trash_forget(fs->ctl);
		err = list_dir(fs, &v, &l);
		if (!err && l.n)
			err = -ENOTEMPTY;
		specs_release(&l);
	} else {
		err = is_dir_kind(v.kind) ? -EPERM : -ENOTDIR;
	}
	vrelease(&v);
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
	char *from = path_join(r->from, e->name), *to = path_join(r->to, e->name);
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
	err = child(fs, parent, name, &v);
	if (err) {
		fs_reply_status(req, err);
		return;
	}
	if (v.kind != V_TFILE && v.kind != V_TITEM) {
		vrelease(&v);
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
	if (!err && !(to = path_join(dir, sname)))
		err = -ENOMEM;
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
	vrelease(&v);
	fs_reply_status(req, err);
	/* The kernel moved the trash entry's dentry to the new name: drop it,
	 * so the next lookup finds the restored file itself. */
	if (!err)
		notifier_inval_entry(fs->nt, newparent, newname);
}
