/*
 * fs/main.c — entry point: a subcommand (login, logout, about, devices; see
 * fs/cli.h; status, see fs/status_cli.h; help), or the mount: options (fs/options.h), then mount_main().
 *
 * Every form starts not dumpable (lib/secret.h).
 *
 * Exit status: 0 ok, 1 error, 2 usage error.
 */
#include "fs/cli.h"
#include "fs/mount.h"
#include "fs/options.h"
#include "fs/status_cli.h"
#include "lib/log.h"
#include "lib/secret.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <string.h>

int main(int argc, char **argv)
{
	/* The process holds tokens: no core dump, no same-user ptrace or /proc
	 * memory access; mount_main() allows them again for -d or -o coredump. */
	secret_set_dumpable(false);
	if (argc > 1 && cli_is_subcommand(argv[1]))
		return cli_main(argc, argv);
	if (argc > 1 && !strcmp(argv[1], "status"))
		return status_cli_main(argc, argv);
	if (argc == 2 && !strcmp(argv[1], "help")) {
		/* `jottafs help`: what --help prints (not a mount on ./help) */
		static char help_opt[] = "--help";
		argv[1] = help_opt;
	}

	/* Until mount_main() sets the final sink (syslog once daemonized). */
	log_setup(LOG_LVL_INFO, false);
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct mount_options o;
	int rc = options_parse(&args, &o);
	if (rc == 1) {
		rc = 0;         /* -h / -V */
	} else if (rc < 0) {
		rc = rc == -EINVAL ? 2 : 1;
	} else {
		rc = mount_main(&o, &args);
	}
	options_release(&o);
	fuse_opt_free_args(&args);
	return rc;
}
