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
#include <stddef.h>

/* Is @word (argv[1]) the name of a subcommand? */
bool cli_is_subcommand(const char *word);

/* Run the subcommand argv[1] with its arguments; returns the exit status. */
int cli_main(int argc, char **argv);

/*
 * When a request to the service failed because of the connection itself
 * (-EPROTO: TLS; -ECONNREFUSED, -EHOSTUNREACH, -ETIMEDOUT, -ENETUNREACH:
 * unreachable), write why and what to do as one phrase into @buf and return
 * true; false for any other error (the caller words it). The subcommands and
 * the mount both use it, so that they say the same thing.
 */
bool cli_connection_advice(int err, char *buf, size_t len);

#endif
