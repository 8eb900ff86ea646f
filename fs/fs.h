/*
 * fs/fs.h — the mounted filesystem, shared by fs/mount.c (which builds it)
 * and fs/ops.c (the FUSE low-level operations, the only code that replies
 * to the kernel). Internal to fs/.
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

	/* Uploads journalled by this mount, per node (fs/ops.c): commits and
	 * upload-done callbacks are serialised on up_lock, so that a commit
	 * never journals a base the service no longer holds. */
	pthread_mutex_t up_lock;        /* protects upend; taken before cache/upload's */
	pthread_cond_t up_cond;         /* a done callback ran */
	struct upend **upend;           /* hash by node id, UPEND_BUCKETS chains */

	/* Open file and directory handles (fs/ops.c): the kernel does not
	 * send every release before an unmount ends the session, so the ones
	 * left are closed by fs_release_all(). */
	pthread_mutex_t h_lock;         /* protects the two lists; a leaf */
	struct fileh *files;
	struct dirh *dirs;
};

#define UPEND_BUCKETS 4096

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
/* Upload queue callback (cache/upload.h upload_done_cb). */
void fs_upload_done(void *ctx, uint64_t id, uint64_t gen, int err, const char *server_path,
		    const char *md5);
/* At mount: settle local changes left without a journalled upload. */
void fs_recover(struct fs *fs);
/* After the session ended: close the handles whose release never came
 * (committing what a writable one still holds), as release would. */
void fs_release_all(struct fs *fs);
/* Free the upload bookkeeping (after the upload queue is closed). */
void fs_upend_free(struct fs *fs);

#endif
