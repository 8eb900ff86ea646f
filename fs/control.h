/*
 * fs/control.h — the control directory MOUNT/.jottacloud/ (name set with
 * -o control_dir=NAME), modelled on ZFS's .zfs: reachable by path, never
 * listed in the root, never uploaded. It holds
 *
 *   status, status.json   the mount's state (connectivity, pending uploads,
 *                         transfers, conflicts, lost+found), rendered afresh
 *                         at every open
 *   trash/PATH            the service's trashed items that belonged under the
 *                         mount root, at their relative paths; readable;
 *                         mv out restores, rm deletes for good
 *   versions/PATH/        for a file PATH, its older revisions as read-only
 *                         files "NAME (vN YYYY-MM-DD hhmmss).EXT"
 *
 * Inodes of the control tree are virtual: numbers from CONTROL_INO_MIN up,
 * far above any node id of the index (SQLite rowids), so fs/ops.c sends
 * every request on such an inode here. They stay valid for the life of
 * the mount (a name that vanished answers ENOENT on use). Lookup counts go
 * through the inode table like any other inode.
 *
 * Every control_op_*() replies to the request. Thread-safe: the virtual
 * node table has one mutex (a leaf lock, never held across a request or a
 * reply); remote state is fetched with no lock held.
 */
#ifndef JOTTAFS_FS_CONTROL_H
#define JOTTAFS_FS_CONTROL_H

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fs;
struct meta_attr;
struct control;

#define CONTROL_INO_MIN (1ULL << 62)

static inline bool control_ino(uint64_t ino)
{
	return ino >= CONTROL_INO_MIN;
}

int control_new(struct fs *fs, struct control **out);
void control_free(struct control *c);

/* Is (@parent, @name) the control directory itself (the root's NAME)? */
bool control_is_entry(struct fs *fs, fuse_ino_t parent, const char *name);

/* Requests on control inodes (or naming the control directory). */
void control_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void control_op_getattr(fuse_req_t req, fuse_ino_t ino);
void control_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void control_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi, bool plus);
void control_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void control_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void control_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi);
void control_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void control_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void control_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
/* rename out of trash/ (restore); anything else into or inside the control
 * tree is EPERM. */
void control_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		       fuse_ino_t newparent, const char *newname, unsigned int flags);

/*
 * Events from the write path (cache/write.h hooks, wired in fs/mount.c):
 * an upload of node @id finished: landed at @server_path (a conflict copy
 * when that is not the node's path) or was given up (@err). Called before
 * the node changes.
 */
void control_upload_done(struct control *c, uint64_t id, int err, const char *server_path);

/* Something was deleted through the mount: the trash view is read again. */
void control_trash_changed(struct control *c);

/*
 * user.jottacloud.state of file @a: "synced", "pending", "uploading
 * DONE/TOTAL", "conflict" or "failed". 0, or -ENODATA for a directory.
 */
int control_file_state(struct fs *fs, const struct meta_attr *a, char *buf, size_t len);

#endif
