/*
 * fs/main.c — entry point: subcommands (login, logout, about, devices) or
 * the mount. Placeholder until the CLI lands.
 */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version"))) {
		printf("jottafs %s\n", JOTTAFS_VERSION);
		return 0;
	}
	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("usage: jottafs [options] [REMOTE] MOUNTPOINT\n");
		return 0;
	}
	fprintf(stderr, "jottafs: not implemented yet\n");
	return 1;
}
