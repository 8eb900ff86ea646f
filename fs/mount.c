/* fs/mount.c — placeholder until the mount lands (see mount.h). */
#include "fs/mount.h"

#include <stdio.h>

int mount_main(struct mount_options *o, struct fuse_args *args)
{
	(void)o;
	(void)args;
	fprintf(stderr, "jottafs: mounting is not implemented yet\n");
	return 1;
}
