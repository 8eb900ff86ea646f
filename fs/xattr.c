/*
 * fs/xattr.c — extended attributes: read-only user.jottacloud.md5,
 * .revision, .created, .updated and .state on files (and .control on the
 * root: the control directory's name, for `jottafs status`); setting or
 * removing any is ENOTSUP.
 */
#include "fs/fs.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cache/lister.h"
#include "cache/meta.h"
#include "cache/upload.h"
#include "fs/control.h"
#include "fs/options.h"

#define XATTR_PREFIX    "user.jottacloud."
#define XATTR_STATE     XATTR_PREFIX "state"   /* fs/control.c: upload state */
#define XATTR_CONTROL   XATTR_PREFIX "control" /* on the root: the control directory's name */

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

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
	return err ? err : fs_attr_check(a);
}

/* getxattr/listxattr's answer: the size asked about (@size 0), -ERANGE when
 * the caller's buffer is too small, else the @len bytes of @buf. */
static void reply_value(fuse_req_t req, const char *buf, size_t len, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fs_reply_err(req, -ERANGE);
	else
		fuse_reply_buf(req, buf, len);
}

void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
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
	reply_value(req, val, len, size);
}

void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
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
	reply_value(req, list, len, size);
}

void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		    size_t size, int flags)
{
	(void)ino;
	(void)name;
	(void)value;
	(void)size;
	(void)flags;
	fs_reply_err(req, -ENOTSUP);
}

void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino;
	(void)name;
	fs_reply_err(req, -ENOTSUP);
}
