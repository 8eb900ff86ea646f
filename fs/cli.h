/*
 * fs/cli.h — the subcommands that need no mount:
 *
 *   jottafs login   [--account NAME] [-o api_url=,jfs_url=,token_url=,cafile=] [-d]
 *   jottafs logout  [--account NAME]
 *   jottafs about   [--account NAME] [--json] [-o endpoint overrides] [-d]
 *   jottafs devices [--account NAME] [--json] [-o endpoint overrides] [-d]
 *
 * login reads the personal login token from the terminal without echo, or
 * from standard input when that is not a terminal — never from argv (a token
 * given as an argument is refused). Endpoint options given to login are
 * stored with the account and used later unless overridden.
 *
 * Exit status: 0 ok, 1 error (one line on stderr: what failed, why, what to
 * do next), 2 usage error. Nothing printed ever contains a token.
 */
#ifndef JOTTAFS_FS_CLI_H
#define JOTTAFS_FS_CLI_H

#include <stdbool.h>

/* Is @word (argv[1]) the name of a subcommand? */
bool cli_is_subcommand(const char *word);

/* Run the subcommand argv[1] with its arguments; returns the exit status. */
int cli_main(int argc, char **argv);

#endif
