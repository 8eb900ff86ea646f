/*
 * net/jfs_ns.c — namespace commands of the Jottacloud client: mkdir,
 * delete (trash or for good), move and rename (mv, mvDir), cphash (times,
 * restore, dedup-create) and server-side copy (cp).
 *
 * Namespace commands that are not idempotent (mv, mvDir, rm, rmDir, dlDir)
 * are retried here instead, safely: after an ambiguous failure (a 5xx, a
 * connection cut before the answer, a timeout) the service's state is
 * read (stat of the source and target) and the command is sent again only
 * if it did not happen; if it did, that is success. At most NS_ATTEMPTS
 * sends within NS_BUDGET_MS, never while offline (-EHOSTDOWN).
 */
#include "net/jfs_int.h"

#include "lib/backoff.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/md5.h"
#include "net/jfs_xml.h"
#include "net/jtime.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_ATTEMPTS         10            /* sends of one namespace command */
#define NS_BUDGET_MS        60000         /* ... within this long */
#define NS_BACKOFF_MIN_MS   200
#define NS_BACKOFF_MAX_MS   5000

int jfs_mkdir(struct jfs *j, const char *path)
{
	int rc = jfs_path_check(path);
	if (rc || !*path)
		return rc;               /* the mountpoint root always exists */
	char *url;
	if ((rc = jfs_path_url(j, path, "", "mkDir=true", &url)))
		return rc;
	struct http_request req;
	http_request_init(&req, "POST", url);
	req.idempotent = true;           /* mkdir -p */
	rc = jfs_request_command(j, &req, "mkdir", path);
	free(url);
	return rc;
}

static int delete_once(struct jfs *j, const char *path, bool is_dir, bool hard)
{
	if (jfs_path_check(path) || !*path)
		return -EINVAL;          /* never the mountpoint root */
	const char *q = is_dir ? (hard ? "rmDir=true" : "dlDir=true")
			       : (hard ? "rm=true" : "dl=true");
	char *url;
	int rc = jfs_path_url(j, path, "", q, &url);
	if (rc)
		return rc;
	struct http_request req;
	http_request_init(&req, "POST", url);
	req.idempotent = !is_dir && !hard;   /* dl=true answers 2xx on a missing path */
	rc = jfs_request_command(j, &req, is_dir ? "delete folder" : "delete", path);
	free(url);
	return rc;
}

/* One mv/mvDir; -EBADMSG when the service answered with something that is
 * not the moved file (jfs_move() reports that as -EIO, not retried). */
static int move_once(struct jfs *j, const char *from, const char *to, bool is_dir)
{
	if (jfs_path_check(from) || jfs_path_check(to) || !*from || !*to)
		return -EINVAL;
	char *q = jfs_dest_query(j, is_dir ? "mvDir" : "mv", to);
	if (!q)
		return -ENOMEM;
	char *url;
	/* mvDir wants the source with a trailing slash (§8.6) */
	int rc = jfs_path_url(j, from, is_dir ? "/" : "", q, &url);
	free(q);
	if (rc)
		return rc;
	struct http_request req;
	http_request_init(&req, "POST", url);
	if (is_dir) {
		rc = jfs_request_command(j, &req, "move folder", from);
	} else {
		/* The answer is the destination's document: a move counts only
		 * when it shows a live file (rclone also wants it COMPLETED; a
		 * file whose upload is still in progress may be moved too). */
		struct xml_sink s = { 0 };
		const struct jfs_entry *e;
		rc = jfs_request_object(j, &req, &s, "move", from, &e);
		if (!rc && (jfs_xml_root(s.x) != JFS_XML_ROOT_FILE || e->deleted)) {
			log_err("jfs: move '%s' -> '%s': the answer shows no live file", from, to);
			rc = -EBADMSG;
		} else if (rc == -EIO && s.err == -EIO) {
			rc = -EBADMSG;   /* a malformed answer: not a transient failure */
		}
		jfs_xml_free(s.x);
	}
	free(url);
	return rc;
}

/* ---- safe retries of namespace commands ---- */

/* A failure after which the service may or may not have done the command. */
static bool ambiguous(int rc)
{
	switch (rc) {
	case -EIO: case -ETIMEDOUT: case -ECONNRESET: case -ECONNABORTED: case -EPIPE:
	case -EAGAIN: case -EHOSTUNREACH: case -ECONNREFUSED:
		return true;
	default:
		return false;
	}
}

/* Sleep before send number @attempt + 1 of a namespace command. 0, or
 * -ETIMEDOUT when that would end past @deadline. */
static int ns_pause(unsigned attempt, int64_t deadline)
{
	long ms = http_backoff_ms(NS_BACKOFF_MIN_MS, NS_BACKOFF_MAX_MS, attempt, rng_u64());
	if (ms < NS_BACKOFF_MIN_MS / 2)
		ms = NS_BACKOFF_MIN_MS / 2;
	if (clock_mono_ms() + ms > deadline)
		return -ETIMEDOUT;
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
	return 0;
}

/* The last segment of @path. */
static const char *last_seg(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/*
 * Did the move @from -> @to happen? 1 yes, 0 no (the source is still
 * there under its old name), -errno when that cannot be told. A
 * case-only rename is told apart by the exact name the service shows.
 */
static int move_happened(struct jfs *j, const char *from, const char *to)
{
	struct jfs_entry e;
	int rc = jfs_stat(j, to, &e);

	if (rc == 0) {
		bool exact = strcmp(e.name, last_seg(to)) == 0;
		jfs_entry_release(&e);
		return exact ? 1 : 0;
	}
	if (rc != -ENOENT)
		return rc;
	rc = jfs_stat(j, from, &e);
	if (rc == 0) {
		jfs_entry_release(&e);
		return 0;
	}
	return rc;   /* -ENOENT: neither (never there, or someone else moved it) */
}

/* Is @path gone (deleted, or in the trash)? 1 yes, 0 no, -errno. */
static int is_gone(struct jfs *j, const char *path)
{
	struct jfs_entry e;
	int rc = jfs_stat(j, path, &e);

	if (rc == 0) {
		jfs_entry_release(&e);
		return 0;
	}
	return rc == -ENOENT ? 1 : rc;
}

int jfs_delete(struct jfs *j, const char *path, bool is_dir, bool hard)
{
	int64_t deadline = clock_mono_ms() + NS_BUDGET_MS;
	int rc = delete_once(j, path, is_dir, hard);

	for (unsigned attempt = 1; rc < 0 && ambiguous(rc) && attempt < NS_ATTEMPTS; attempt++) {
		int st = is_gone(j, path);
		if (st == 1) {
			log_debug("jfs: delete '%s': done although the answer was lost", path);
			return 0;
		}
		if (st < 0)
			return st == -EHOSTDOWN ? st : rc;
		if (ns_pause(attempt - 1, deadline))
			break;
		log_debug("jfs: delete '%s' failed (%s); sending it again", path, strerror(-rc));
		rc = delete_once(j, path, is_dir, hard);
	}
	return rc;
}

int jfs_move(struct jfs *j, const char *from, const char *to, bool is_dir)
{
	int64_t deadline = clock_mono_ms() + NS_BUDGET_MS;
	int rc = move_once(j, from, to, is_dir);

	for (unsigned attempt = 1; rc < 0 && ambiguous(rc) && attempt < NS_ATTEMPTS; attempt++) {
		int st = move_happened(j, from, to);
		if (st == 1) {
			log_debug("jfs: move '%s' -> '%s': done although the answer was lost",
				  from, to);
			return 0;
		}
		/* -ENOENT: the source is not there (as a 404 to the move says) */
		if (st < 0)
			return st == -EHOSTDOWN || st == -ENOENT ? st : rc;
		if (ns_pause(attempt - 1, deadline))
			break;
		log_debug("jfs: move '%s' -> '%s' failed (%s); sending it again", from, to,
			  strerror(-rc));
		rc = move_once(j, from, to, is_dir);
	}
	return rc == -EBADMSG ? -EIO : rc;
}

int jfs_cphash(struct jfs *j, const char *path, int64_t size, const char *md5,
	       time_t created, time_t modified)
{
	char tc[JTIME_BUFSZ], tm[JTIME_BUFSZ];
	if (jfs_path_check(path) || !*path || size < 0 || !md5_hex_valid(md5) ||
	    jtime_format_jotta(created, tc, sizeof(tc)) ||
	    jtime_format_jotta(modified, tm, sizeof(tm)))
		return -EINVAL;
	char h_size[48], h_md5[48], h_created[48], h_modified[48];
	snprintf(h_size, sizeof(h_size), "JSize: %" PRId64, size);
	snprintf(h_md5, sizeof(h_md5), "JMd5: %s", md5);
	snprintf(h_created, sizeof(h_created), "JCreated: %s", tc);
	snprintf(h_modified, sizeof(h_modified), "JModified: %s", tm);
	const char *const headers[] = { h_size, h_md5, h_created, h_modified, NULL };
	char *url;
	int rc = jfs_path_url(j, path, "", "cphash=true", &url);
	if (rc)
		return rc;
	struct http_request req;
	http_request_init(&req, "POST", url);
	req.headers = headers;
	req.idempotent = true;
	struct xml_sink s = { 0 };
	const struct jfs_entry *e;
	rc = jfs_request_object(j, &req, &s, "cphash", path, &e);
	if (!rc && (jfs_xml_root(s.x) != JFS_XML_ROOT_FILE || e->deleted || !e->completed ||
		    e->size != size || strcmp(e->md5, md5))) {
		log_err("jfs: cphash '%s': the answer does not show the requested content", path);
		rc = -EIO;
	}
	jfs_xml_free(s.x);
	free(url);
	return rc;
}

int jfs_copy(struct jfs *j, const char *from, const char *to, struct jfs_entry *out)
{
	memset(out, 0, sizeof(*out));
	if (jfs_path_check(from) || jfs_path_check(to) || !*from || !*to)
		return -EINVAL;
	char *q = jfs_dest_query(j, "cp", to);
	if (!q)
		return -ENOMEM;
	char *url;
	int rc = jfs_path_url(j, from, "", q, &url);
	free(q);
	if (rc)
		return rc;
	struct http_request req;
	http_request_init(&req, "POST", url);
	struct xml_sink s = { 0 };
	const struct jfs_entry *e;
	bool trashed = false;
	rc = jfs_request_object(j, &req, &s, "copy", from, &e);
	if (!rc && (jfs_xml_root(s.x) != JFS_XML_ROOT_FILE || !e->completed)) {
		log_err("jfs: copy '%s' -> '%s': the answer shows no completed file", from, to);
		rc = -EIO;
	}
	if (!rc) {
		trashed = e->deleted;
		rc = jfs_entry_copy(out, e);
	}
	jfs_xml_free(s.x);
	free(url);
	if (!rc && trashed) {
		/* The service's quirk (docs 8.5): the copy landed in the trash. */
		rc = jfs_cphash(j, to, out->size, out->md5, out->created, out->modified);
		if (!rc) {
			jfs_entry_release(out);
			rc = jfs_stat(j, to, out);
		}
	}
	if (rc)
		jfs_entry_release(out);
	return rc;
}
