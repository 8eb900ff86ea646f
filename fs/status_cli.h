/*
 * fs/status_cli.h — `jottafs status [MOUNTPOINT] [--json]` (fs/status_cli.c):
 * reads the status file of running mounts; needs no account.
 */
#ifndef JOTTAFS_FS_STATUS_CLI_H
#define JOTTAFS_FS_STATUS_CLI_H

/* argv[1] is "status". Returns the exit status (see fs/status_cli.c). */
int status_cli_main(int argc, char **argv);

#endif
