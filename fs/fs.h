/*
 * fs/fs.h — the mounted filesystem, shared by fs/mount.c (which builds it)
 * and the FUSE low-level operations (fs/ops.c and the files it names: the
 * only code that replies to the kernel). Internal to fs/.
 *
 * The lock hierarchy of jottafs, every lock in one list. A lock is only
 * taken while holding locks above it, never the other way; each module's
 * header or first comment says what its locks protect.
 *   1. struct dirh.lock (fs/dir.c), per open directory: held while its
 *      snapshot is filled from the index and the content cache, never
 *      across the listing request or a reply;
 *   2. the write path's per-node stripes (cache/write.h): held from reading
 *      a node's base to journalling its upload (a SQLite commit and its
 *      sync, shared with the closes of the moment: cache/db.h group sync),
 *      never across network I/O; one stripe per thread at a time;
 *   3. the content cache: a dfile's lock, then the dcache's (cache/data.h);
 *   4. the upload queue: its journal lock q->db_lock, the journal
 *      database's lock (cache/db.h), then its memory lock q->lock
 *      (cache/upload_int.h);
 *   5. the namespace queue's lock (deletes, mkdirs), then its journal
 *      database's lock (cache/deletes.h), never held across a request or
 *      a hook but its @made one (which only writes the index, below);
 *   6. the index database's lock (cache/meta.h, cache/db.h).
 * Leaves (nothing is taken while one is held): fs->h_lock, fs->qlock, the
 * control directory's lock (fs/control.c), the inode table's, the
 * notifier's, the poller's, the lister's (cache/lister.c), the
 * connectivity state's (net/conn.c), the HTTP client's pool, throttle
 * gate and curl share locks (net/http.c), and an account's a->lock (auth/).
 * Outside the list: the account file's flock (auth/account.c) is taken
 * before a->lock, never under it, and is the one lock held across a
 * request (a token refresh, serialised across processes by design); the
 * cache directory's flock (fs/mount.c) is held for the mount's life.
 * A database's group sync lock (cache/db.c) is a leaf as well.
 * No other lock is held across network I/O or a reply to the kernel.
 *
 * Inode numbers are node ids of the index (cache/meta.h), except that the
 * mount's root node is FUSE_ROOT_ID; fs_ino()/fs_id() convert. Nodes above
 * the mount root (a REMOTE ":/sub/path" mount) are never shown.
 */
#ifndef JOTTAFS_FS_FS_H
#define JOTTAFS_FS_FS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <fuse_lowlevel.h>

#include "net/jfs.h"

struct auth;
struct conn;
struct control;
struct poller;
struct dcache;
struct delq;
struct dirh;
struct fileh;
struct fuse_lowlevel_ops;
struct fuse_session;
struct itable;
struct lister;
struct meta;
struct meta_changes;
struct mount_options;
struct notifier;
struct upload_queue;
struct writer;
struct meta_attr;
struct stat;

struct fs {
	/* Set up by mount_main() before the session starts; read-only afterwards. */
	const struct mount_options *o;
	struct auth *auth;
	struct jfs *jfs;
	struct conn *conn;              /* connectivity (net/conn.h): state, since, cause */
	struct meta *meta;
	struct dcache *dc;
	struct lister *ls;
	struct itable *it;
	struct notifier *nt;
	struct upload_queue *up;        /* NULL until the write path is wired */
	struct writer *wr;              /* the write path (cache/write.h) */
	struct delq *dq;                /* background deletes (cache/deletes.h) */
	struct control *ctl;            /* the control directory (fs/control.h) */
	struct poller *poll;            /* change detection (fs/poll.h); NULL: off */
	struct fuse_session *se;
	uint64_t root_id;               /* node id of the mount root */
	double timeout;                 /* kernel entry/attribute timeout, seconds */
	bool ro;                        /* -o ro */
	uid_t uid;
	gid_t gid;
	mode_t fmode, dmode;            /* permission bits shown for files, directories */

	/* statfs: the account's quota, read at most once a minute (a failed
	 * read is retried after a few seconds); the last one read is kept in
	 * the index for when the service cannot be reached. */
	pthread_mutex_t qlock;          /* protects the four fields below */
	struct jfs_quota quota;
	double quota_at;                /* monotonic time of the last attempt, 0 never */
	bool quota_ok;                  /* @quota holds a quota (read or remembered) */
	bool quota_fresh;               /* ... read from the service at quota_at */

	atomic_bool dead_logged;        /* "log in again" was said */

	/* Open file and directory handles (fs/ops.c): the kernel does not
	 * send every release before an unmount ends the session, so the ones
	 * left are closed by fs_release_all(). */
	pthread_mutex_t h_lock;         /* protects the two lists; a leaf */
	struct fileh *files;
	struct dirh *dirs;
};

/* The operation table (fs/ops.c). */
const struct fuse_lowlevel_ops *fs_ops(void);

static inline uint64_t fs_id(const struct fs *fs, uint64_t ino)
{
	return ino == 1 ? fs->root_id : ino;
}

/* The inode number of node @id, or 0 when the node is outside the mount. */
static inline uint64_t fs_ino(const struct fs *fs, uint64_t id)
{
	if (id == fs->root_id)
		return 1;
	return id == 1 ? 0 : id;
}

/*
 * The one way an outcome reaches the kernel (fs/ops.c and fs/control.c
 * reply through these only): fs_reply_status(req, 0) is success, and a
 * negative errno (a positive one is taken as its negation) is passed on,
 * except the modules' internal codes, which become EIO: -EKEYREJECTED (the
 * login is dead; said in the log) and -ECANCELED. fs_reply_err() is for
 * failures: a 0 there is a bug and answers EIO.
 */
void fs_reply_status(fuse_req_t req, int err);
void fs_reply_err(fuse_req_t req, int err);

/* Lister callback: invalidate what a listing changed (fs/ops.c). */
void fs_changes(void *ctx, struct meta_changes *ch);
/* Data cache callback: a fully fetched file did not match its MD5. */
void fs_mismatch(void *ctx, uint64_t id);
/* After the session ended: close the handles whose release never came
 * (committing what a writable one still holds), as release would. */
void fs_release_all(struct fs *fs);

/* ---- shared by the operation files (fs/ops.c, dir.c, xattr.c, statfs.c) ---- */

/* -EIO for a node whose listed attributes were refused (META_SIZE_BAD:
 * the lister logged why), else 0. Checked wherever attributes reach the
 * kernel or content is opened. */
int fs_attr_check(const struct meta_attr *a);
/* Fill @st / @e from node attributes. */
void fs_fill_stat(const struct fs *fs, const struct meta_attr *a, struct stat *st);
void fs_fill_entry(const struct fs *fs, const struct meta_attr *a, struct fuse_entry_param *e);
/* Files open with local changes: size and mtime come from the content cache. */
void fs_overlay_local(struct fs *fs, struct meta_attr *a);
/* Is the login dead (the refresh token refused)? Says so once. From then
 * on the mount serves what it has cached, read-only. */
bool fs_login_dead(struct fs *fs);
/* -EROFS when mounted read-only or when the login is dead, else 0. */
int fs_check_writable(struct fs *fs);

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

/* fs/dir.c: open directories. */
void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi);
void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi);
void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* Free an open directory no longer listed in fs->dirs; its next one. */
struct dirh *fs_dirh_free(struct dirh *d);
/* fs/statfs.c */
void fs_op_statfs(fuse_req_t req, fuse_ino_t ino);
/* fs/xattr.c */
void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		    size_t size, int flags);
void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

#endif
