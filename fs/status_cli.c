/*
 * fs/status_cli.c — `jottafs status [MOUNTPOINT] [--json]`: print the status
 * file of one mount (MOUNT/CONTROL/status, see fs/control.h), or of every
 * jottafs mount of the user (from /proc/self/mountinfo: type fuse.jottafs,
 * user_id = ours) when none is named.
 *
 * The control directory's name is read from the mount root's xattr
 * user.jottacloud.control (it may be changed with -o control_dir=).
 *
 * Exit status, so that scripts can wait (`until jottafs status ~/J; do
 * sleep 5; done`): 0 nothing pending or failed; 1 error (not a jottafs
 * mount, status unreadable, no mount at all); 2 usage error; 3 uploads
 * pending; 4 uploads given up (files in lost+found). With several mounts
 * the highest applies.
 */
#include "fs/status_cli.h"
#include "fs/mountinfo.h"
#include "lib/fsutil.h"
#include "lib/log.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#define ST_OK      0
#define ST_ERROR   1
#define ST_USAGE   2
#define ST_PENDING 3
#define ST_FAILED  4

#define MAX_STATUS (1 << 20)

static void usage(FILE *f)
{
	fprintf(f, "usage: jottafs status [MOUNTPOINT] [--json]\n"
		"Print the state of a jottafs mount (of every mount of yours when none is\n"
		"named): connectivity, pending uploads, transfers, conflicts, lost+found.\n"
		"Exit status: 0 nothing pending or failed, 1 error, 2 usage error,\n"
		"3 uploads pending, 4 uploads given up (files in lost+found).\n");
}

/* The status of the mount at @mnt: text and JSON. */
static int read_status(const char *mnt, char **text, cJSON **json)
{
	char name[256] = ".jottacloud", path[PATH_MAX + 300];
	ssize_t n = getxattr(mnt, "user.jottacloud.control", name, sizeof(name) - 1);
	char *js = NULL;
	int err;

	*text = NULL;
	*json = NULL;
	if (n > 0)
		name[n] = '\0';
	else if (n < 0 && errno != ENODATA && errno != ENOTSUP)
		return -errno;
	/* else: the default name (a jottafs that does not say) */
	snprintf(path, sizeof(path), "%s/%s/status.json", mnt, name);
	err = file_read_max(path, MAX_STATUS, &js, NULL);
	if (err == -ENOENT || err == -ENOTDIR)
		return -ENOTSUP;        /* not a jottafs mount */
	if (err)
		return err;
	*json = cJSON_Parse(js);
	free(js);
	if (!*json)
		return -EIO;
	snprintf(path, sizeof(path), "%s/%s/status", mnt, name);
	err = file_read_max(path, MAX_STATUS, text, NULL);
	if (err) {
		cJSON_Delete(*json);
		*json = NULL;
	}
	return err;
}

static int verdict(const cJSON *j)
{
	double pending = cJSON_GetNumberValue(
		cJSON_GetObjectItem(cJSON_GetObjectItem(j, "pending"), "files"));
	double lost = cJSON_GetNumberValue(
		cJSON_GetObjectItem(cJSON_GetObjectItem(j, "lost_found"), "files"));

	if (lost > 0)
		return ST_FAILED;
	if (pending > 0)
		return ST_PENDING;
	return ST_OK;
}

struct mount_list {
	char **v;
	size_t n;
	bool oom;
};

static bool collect_mine(const struct mountinfo_entry *e, void *ctx)
{
	struct mount_list *l = ctx;
	char **nv;

	if (e->user_id != getuid())
		return false;
	nv = realloc(l->v, (l->n + 2) * sizeof(*nv));
	if (!nv || !(nv[l->n] = strdup(e->mountpoint))) {
		if (nv)
			l->v = nv;
		l->oom = true;
		return true;
	}
	l->v = nv;
	l->v[++l->n] = NULL;
	return false;
}

/* Every jottafs mount of the calling user; NULL-terminated, malloc'd;
 * NULL with errno set when mountinfo cannot be read. */
static char **find_mounts(void)
{
	struct mount_list l = { .v = calloc(1, sizeof(char *)) };
	int err;

	if (!l.v)
		return NULL;
	err = mountinfo_each_jottafs(collect_mine, &l);
	if (err || l.oom) {
		for (size_t i = 0; i < l.n; i++)
			free(l.v[i]);
		free(l.v);
		errno = err ? -err : ENOMEM;
		return NULL;
	}
	return l.v;
}

int status_cli_main(int argc, char **argv)
{
	const char *target = NULL;
	bool json = false;
	char **mounts = NULL;
	int rc = ST_OK;

	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return ST_OK;
		} else if (argv[i][0] == '-' || target) {
			log_user("unexpected argument '%s' (see 'jottafs status -h')",
				argv[i]);
			return ST_USAGE;
		} else {
			target = argv[i];
		}
	}
	if (!target) {
		mounts = find_mounts();
		if (!mounts) {
			log_user("cannot read /proc/self/mountinfo: %s",
				strerror(errno));
			return ST_ERROR;
		}
		if (!mounts[0]) {
			log_user("no jottafs mount of yours is mounted");
			free(mounts);
			return ST_ERROR;
		}
	}
	cJSON *all = json && !target ? cJSON_CreateArray() : NULL;
	for (size_t i = 0; target ? i < 1 : mounts[i] != NULL; i++) {
		const char *mnt = target ? target : mounts[i];
		char *text = NULL;
		cJSON *j = NULL;
		int err = read_status(mnt, &text, &j);
		if (err) {
			if (err == -ENOTSUP)
				log_user("'%s' is not a jottafs mount", mnt);
			else
				log_user("cannot read the status of '%s': %s", mnt,
					strerror(-err));
			rc = rc > ST_ERROR ? rc : ST_ERROR;
			continue;
		}
		int v = verdict(j);
		rc = v > rc ? v : rc;
		if (json && all) {
			cJSON_AddItemToArray(all, j);
			j = NULL;
		} else if (json) {
			char *s = cJSON_Print(j);
			if (s)
				printf("%s\n", s);
			free(s);
		} else {
			printf("%s%s", i ? "\n" : "", text);
		}
		cJSON_Delete(j);
		free(text);
	}
	if (all) {
		char *s = cJSON_Print(all);
		if (s)
			printf("%s\n", s);
		free(s);
		cJSON_Delete(all);
	}
	for (size_t i = 0; mounts && mounts[i]; i++)
		free(mounts[i]);
	free(mounts);
	fflush(stdout);
	return rc;
}
