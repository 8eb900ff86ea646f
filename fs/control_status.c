/*
 * fs/control_status.c — the control directory's status and
 * status.json files, the upload outcomes (conflicts, given up) they list,
 * and the user.jottacloud.state value of a file. Private structures:
 * fs/control_int.h.
 */
#include "fs/control.h"
#include "fs/control_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "cache/data.h"
#include "cache/meta.h"
#include "cache/deletes.h"
#include "cache/upload.h"
#include "fs/fs.h"
#include "fs/itable.h"
#include "cache/lister.h"
#include "fs/notify.h"
#include "fs/options.h"
#include "lib/log.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/jfs.h"
#include "net/jfs_xml.h"
#include "net/names.h"

/* ---- status ------------------------------------------------------------------------ */

/* Connectivity, from the mount's one state (net/conn.h). */
struct conn_view {
	const char *state;      /* "online", "degraded", "offline" or "unknown" */
	time_t since;           /* 0 unknown */
	char last_error[128];   /* "" none */
};

static void conn_view(struct fs *fs, struct conn_view *cv)
{
	struct conn_info ci;

	memset(cv, 0, sizeof(*cv));
	cv->state = "unknown";
	if (!fs->conn)
		return;
	conn_get_info(fs->conn, &ci);
	cv->state = conn_state_name(ci.state);
	cv->since = ci.since;
	snprintf(cv->last_error, sizeof(cv->last_error), "%s", ci.last_error);
}

static void iso_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (!t || !gmtime_r(&t, &tm))
		snprintf(buf, len, "-");
	else
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

#define MAX_XFERS 64

/* Files kept in lost+found (uploads given up, not yet dealt with by the
 * user: removing them there clears the count). */
static _Thread_local unsigned lf_count;

static int lf_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)path;
	(void)sb;
	(void)ftw;
	if (type == FTW_F)
		lf_count++;
	return 0;
}

static unsigned lost_found_files(const char *dir)
{
	lf_count = 0;
	nftw(dir, lf_cb, 16, FTW_PHYS);
	return lf_count;
}

/* The status as a cJSON tree (NULL on ENOMEM). */
static cJSON *status_json(struct fs *fs)
{
	struct control *c = fs->ctl;
	struct upload_xfer xf[MAX_XFERS];
	struct conn_view cv;
	unsigned files = 0, given_up = 0;
	int64_t bytes = 0;
	size_t nx = 0;
	char t[32];
	cJSON *j = cJSON_CreateObject(), *o, *a;

	if (!j)
		return NULL;
	cJSON_AddStringToObject(j, "mountpoint", fs->o->local_mountpoint);
	char remote[512];
	snprintf(remote, sizeof(remote), "%s/%s%s%s", fs->o->device, fs->o->mountpoint,
		 *fs->o->subpath ? ":/" : "", fs->o->subpath);
	cJSON_AddStringToObject(j, "remote", remote);
	conn_view(fs, &cv);
	o = cJSON_AddObjectToObject(j, "connectivity");
	if (o) {
		cJSON_AddStringToObject(o, "state", cv.state);
		iso_time(cv.since, t, sizeof(t));
		if (cv.since)
			cJSON_AddStringToObject(o, "since", t);
		else
			cJSON_AddNullToObject(o, "since");
		if (cv.last_error[0])
			cJSON_AddStringToObject(o, "last_error", cv.last_error);
		else
			cJSON_AddNullToObject(o, "last_error");
	}
	if (fs->up) {
		upload_stats(fs->up, &files, &bytes);
		given_up = upload_given_up(fs->up);
		upload_running(fs->up, xf, MAX_XFERS, &nx);
	}
	o = cJSON_AddObjectToObject(j, "pending");
	if (o) {
		unsigned dels = 0, mkdirs = 0;
		if (fs->dq)
			delq_counts(fs->dq, &dels, &mkdirs);
		cJSON_AddNumberToObject(o, "files", files);
		cJSON_AddNumberToObject(o, "bytes", (double)bytes);
		/* the namespace queue (cache/deletes.h): unlink/rmdir, mkdir */
		cJSON_AddNumberToObject(o, "deletes", dels);
		cJSON_AddNumberToObject(o, "mkdirs", mkdirs);
	}
	a = cJSON_AddArrayToObject(j, "transfers");
	for (size_t i = 0; i < nx; i++) {
		cJSON *x = cJSON_CreateObject();
		char *p = ctl_path_decode(xf[i].path);
		if (x) {
			cJSON_AddStringToObject(x, "path", p ? p : xf[i].path);
			cJSON_AddNumberToObject(x, "done", (double)xf[i].done);
			cJSON_AddNumberToObject(x, "total", (double)xf[i].total);
			cJSON_AddItemToArray(a, x);
		}
		free(p);
		free(xf[i].path);
	}
	o = cJSON_AddObjectToObject(j, "conflicts");
	a = o ? cJSON_AddArrayToObject(o, "paths") : NULL;
	pthread_mutex_lock(&c->lock);
	if (o)
		cJSON_AddNumberToObject(o, "count", (double)c->conflicts_total);
	for (size_t i = 0; a && i < c->nconflicts; i++) {
		char *p = ctl_path_decode(c->conflicts[i]);
		cJSON_AddItemToArray(a, cJSON_CreateString(p ? p : c->conflicts[i]));
		free(p);
	}
	pthread_mutex_unlock(&c->lock);
	o = cJSON_AddObjectToObject(j, "lost_found");
	if (o) {
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s/lost+found", fs->o->cache_dir);
		cJSON_AddNumberToObject(o, "files", lost_found_files(dir));
		cJSON_AddNumberToObject(o, "given_up", given_up);
		cJSON_AddStringToObject(o, "dir", dir);
	}
	return j;
}

/* Render the status file (@json: status.json). *out malloc'd. */
int ctl_status_render(struct fs *fs, bool json, char **out, size_t *len)
{
	cJSON *j = status_json(fs);
	char *s = NULL;

	*out = NULL;
	if (!j)
		return -ENOMEM;
	if (json) {
		char *p = cJSON_Print(j);
		if (p && asprintf(&s, "%s\n", p) < 0)
			s = NULL;
		cJSON_free(p);
	} else {
		FILE *f;
		size_t n = 0;
		f = open_memstream(&s, &n);
		if (f) {
			const cJSON *cn = cJSON_GetObjectItem(j, "connectivity");
			const cJSON *pd = cJSON_GetObjectItem(j, "pending");
			const cJSON *cf = cJSON_GetObjectItem(j, "conflicts");
			const cJSON *lf = cJSON_GetObjectItem(j, "lost_found");
			const cJSON *x;
			fprintf(f, "jottafs %s on %s\n",
				cJSON_GetStringValue(cJSON_GetObjectItem(j, "remote")),
				cJSON_GetStringValue(cJSON_GetObjectItem(j, "mountpoint")));
			fprintf(f, "connectivity:    %s",
				cJSON_GetStringValue(cJSON_GetObjectItem(cn, "state")));
			if (cJSON_IsString(cJSON_GetObjectItem(cn, "since")))
				fprintf(f, " since %s",
					cJSON_GetStringValue(cJSON_GetObjectItem(cn, "since")));
			if (cJSON_IsString(cJSON_GetObjectItem(cn, "last_error")))
				fprintf(f, " (last error: %s)",
					cJSON_GetStringValue(cJSON_GetObjectItem(cn, "last_error")));
			double nf = cJSON_GetNumberValue(cJSON_GetObjectItem(pd, "files"));
			fprintf(f, "\npending uploads: %.0f file%s, %.0f bytes\n", nf,
				nf == 1 ? "" : "s",
				cJSON_GetNumberValue(cJSON_GetObjectItem(pd, "bytes")));
			fprintf(f, "pending namespace changes: %.0f delete(s), %.0f mkdir(s)\n",
				cJSON_GetNumberValue(cJSON_GetObjectItem(pd, "deletes")),
				cJSON_GetNumberValue(cJSON_GetObjectItem(pd, "mkdirs")));
			x = cJSON_GetObjectItem(j, "transfers");
			for (x = x ? x->child : NULL; x; x = x->next) {
				double d = cJSON_GetNumberValue(cJSON_GetObjectItem(x, "done"));
				double tt = cJSON_GetNumberValue(cJSON_GetObjectItem(x, "total"));
				fprintf(f, "  uploading %s: %.0f/%.0f bytes (%.0f%%)\n",
					cJSON_GetStringValue(cJSON_GetObjectItem(x, "path")), d, tt,
					tt > 0 ? 100.0 * d / tt : 100.0);
			}
			fprintf(f, "conflicts made:  %.0f\n",
				cJSON_GetNumberValue(cJSON_GetObjectItem(cf, "count")));
			x = cJSON_GetObjectItem(cf, "paths");
			for (x = x ? x->child : NULL; x; x = x->next)
				fprintf(f, "  %s\n", cJSON_GetStringValue(x));
			double nl = cJSON_GetNumberValue(cJSON_GetObjectItem(lf, "files"));
			fprintf(f, "lost+found:      %.0f file%s (%s)\n", nl, nl == 1 ? "" : "s",
				cJSON_GetStringValue(cJSON_GetObjectItem(lf, "dir")));
			if (fclose(f))
				s = NULL;
		}
	}
	cJSON_Delete(j);
	if (!s)
		return -ENOMEM;
	*out = s;
	*len = strlen(s);
	return 0;
}

/* ---- upload outcomes and the state xattr ------------------------------------------------ */

static bool list_has(char **v, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i], path))
			return true;
	return false;
}

static void list_add(char **v, size_t *n, const char *path)
{
	char *p;

	if (list_has(v, *n, path) || !(p = strdup(path)))
		return;
	if (*n == MAX_OUTCOMES) {
		free(v[0]);
		memmove(v, v + 1, (MAX_OUTCOMES - 1) * sizeof(*v));
		(*n)--;
	}
	v[(*n)++] = p;
}

static void list_del(char **v, size_t *n, const char *path)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp(v[i], path)) {
			free(v[i]);
			memmove(v + i, v + i + 1, (*n - i - 1) * sizeof(*v));
			(*n)--;
			return;
		}
}

void control_upload_done(struct control *c, uint64_t id, int err, const char *server_path)
{
	char *path = NULL;

	if (!c || !server_path)
		return;
	meta_path(c->fs->meta, id, &path);
	pthread_mutex_lock(&c->lock);
	if (err) {
		list_add(c->failed, &c->nfailed, path ? path : server_path);
	} else if (path && strcmp(path, server_path)) {
		list_add(c->conflicts, &c->nconflicts, server_path);
		c->conflicts_total++;
	} else {
		list_del(c->failed, &c->nfailed, server_path);
	}
	pthread_mutex_unlock(&c->lock);
	free(path);
}

int control_file_state(struct fs *fs, const struct meta_attr *a, char *buf, size_t len)
{
	struct control *c = fs->ctl;
	struct upload_state st;
	char *path = NULL;
	bool conflict = false, failed = false;

	if (a->is_dir)
		return -ENODATA;
	if (fs->up && upload_state(fs->up, a->id, &st) == 0) {
		if (st.running) {
			snprintf(buf, len, "uploading %" PRId64 "/%" PRId64, st.done, st.total);
			return 0;
		}
		if (st.pending) {
			snprintf(buf, len, "pending");
			return 0;
		}
		failed = st.given_up;
	}
	if (a->local && !failed) {
		snprintf(buf, len, "pending");      /* being written, not closed yet */
		return 0;
	}
	if (c && meta_path(fs->meta, a->id, &path) == 0) {
		pthread_mutex_lock(&c->lock);
		conflict = list_has(c->conflicts, c->nconflicts, path);
		failed = failed || list_has(c->failed, c->nfailed, path);
		pthread_mutex_unlock(&c->lock);
	}
	free(path);
	snprintf(buf, len, "%s", failed ? "failed" : conflict ? "conflict" : "synced");
	return 0;
}
