/*
 * fs/control_versions.c — the control directory's versions/:
 * the index's folders and files, and a file's revisions named like
 * conflict copies. Private structures: fs/control_int.h.
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
#include "lib/log.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/jfs.h"
#include "net/jfs_xml.h"
#include "net/names.h"

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
	t->err = ctl_specs_add(t->out, &s);
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
	err = ctl_specs_add(t->out, &s);
	free(s.name);
	return err;
}

/* Children of versions folder @dir (V_VDIR): the node's children in the index. */
int ctl_list_vdir(struct fs *fs, const struct vnode *dir, struct vspecs *out)
{
	struct vdir_collect t = { .out = out };
	int err = lister_fresh(fs->ls, dir->node, 0, NULL);
	if (!err)
		err = meta_children(fs->meta, dir->node, vdir_cb, &t);
	return err ? err : t.err;
}

/* Children of V_VFILE @dir: the file's revisions. */
int ctl_list_vfile(struct fs *fs, const struct vnode *dir, struct vspecs *out)
{
	char *path = NULL, *name = NULL;
	int err = meta_path(fs->meta, dir->node, &path);
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
