/*
 * fs/mountinfo.h — the jottafs mounts the kernel lists in
 * /proc/self/mountinfo, one callback per mount, fields unescaped.
 *
 * A line is "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] - FSTYPE
 * SOURCE SUPER" (proc(5)); spaces and the like in MOUNTPOINT and SOURCE
 * are written as octal escapes ("\040").
 */
#ifndef JOTTAFS_FS_MOUNTINFO_H
#define JOTTAFS_FS_MOUNTINFO_H

#include <stdbool.h>
#include <sys/types.h>

struct mountinfo_entry {
	const char *mountpoint;	/* absolute, unescaped */
	const char *source;	/* "Device/Mountpoint", unescaped; "" if none */
	uid_t user_id;		/* the mount's user_id= super option */
};

/* Return true to stop the walk. */
typedef bool (*mountinfo_cb)(const struct mountinfo_entry *e, void *ctx);

/* Call @cb for every mount of type fuse.jottafs until it returns true.
 * 0, or -errno when mountinfo cannot be read. */
int mountinfo_each_jottafs(mountinfo_cb cb, void *ctx);

#endif
