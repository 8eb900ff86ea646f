/*
 * fs/notify.h — kernel cache invalidations, sent from one helper thread.
 *
 * fuse_lowlevel_notify_inval_entry/inode must never run in a request
 * handler holding a lock that a kernel operation needs (the kernel may be
 * waiting on that very request), so every invalidation is queued here and
 * sent by a dedicated thread that holds none of our locks while it talks
 * to the kernel. The queue is bounded; when it overflows, invalidations are
 * dropped (logged once) and the kernel's caches expire by their timeouts.
 *
 * Thread-safe.
 */
#ifndef JOTTAFS_FS_NOTIFY_H
#define JOTTAFS_FS_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

struct fuse_session;
struct notifier;

int notifier_new(struct notifier **out);
/* Start sending to @se (call after fuse_session_mount and fork). */
int notifier_start(struct notifier *n, struct fuse_session *se);
/* Stop sending: pending and later invalidations are dropped (call before
 * the session is unmounted: its device is closed then). */
void notifier_stop(struct notifier *n);
/* Stop (if not yet) and free. */
void notifier_free(struct notifier *n);

/* The kernel's dentry @name in directory @parent (an inode number) is stale. */
void notifier_inval_entry(struct notifier *n, uint64_t parent, const char *name);
/* The kernel's cached attributes of @ino are stale; @data: its page cache too. */
void notifier_inval_inode(struct notifier *n, uint64_t ino, bool data);

#endif
