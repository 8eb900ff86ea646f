/*
 * fs/mount.h — run a mount: open the account, check the remote path, open
 * the cache directory, create the FUSE session, mount, daemonize (unless
 * -f/-d), serve until unmounted, drain uploads, clean up in reverse order.
 * Everything that can fail for a reason the user can fix (not logged in,
 * bad remote path, cache directory locked by another daemon, mountpoint
 * missing) fails BEFORE daemonizing, with a one-line message on stderr.
 */
#ifndef JOTTAFS_FS_MOUNT_H
#define JOTTAFS_FS_MOUNT_H

struct fuse_args;
struct mount_options;

/* Returns the process exit status (0 after a clean unmount). */
int mount_main(struct mount_options *o, struct fuse_args *args);

#endif
