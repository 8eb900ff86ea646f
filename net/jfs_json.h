/*
 * net/jfs_json.h — the JSON bodies of the Jottacloud JSON API
 * (shared/docs/jottacloud-api.md §2.3, §7.2, §7.3, §8.7, §9.2), built and
 * checked with cJSON. Pure: no I/O, no globals; thread-safe.
 *
 * JSON numbers are doubles in cJSON: a size, position or count is accepted
 * only when it is finite, integral and within +-2^53 (so it converts to
 * int64 exactly); everything else from the server is -EIO. Sizes we send
 * are written as exact integers (not through a double).
 */
#ifndef JOTTAFS_NET_JFS_JSON_H
#define JOTTAFS_NET_JFS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "net/jfs.h"

/*
 * The allocate request body, compact, fields in rclone's order:
 * {"bytes":N,"created":"<RFC 3339>","md5":"…","modified":"<RFC 3339>",
 *  "path":"/jfs/<device>/<mountpoint>/<req->path>"}. *out is malloc'd.
 * -EINVAL for an empty path, a negative size, an MD5 that is not 32
 * lower-case hex digits or a time outside years 0000-9999; -ENOMEM.
 */
int jfs_json_alloc_request(const char *device, const char *mountpoint,
			   const struct jfs_alloc_req *req, char **out);

/*
 * Check the allocate answer for a file of @size bytes and fill @out
 * (out->upload_url malloc'd, or NULL when COMPLETED). The state must be a
 * short string; unless COMPLETED an upload_url that url_check() does not
 * refuse is required (net/http applies the plain-HTTP policy when it is used);
 * resume_pos must be within [0, size] (absent: 0, or @size when COMPLETED);
 * "bytes", when present, must equal @size. -EIO otherwise, -ENOMEM.
 */
int jfs_json_alloc_response(const char *body, size_t len, int64_t size, struct jfs_alloc *out);

/*
 * Check the answer to the data POST: "bytes" must equal @size and "md5"
 * @md5 (the service reports the whole file), else -EIO. *modified (may be
 * NULL) gets "modified" (epoch ms) in seconds, 0 when absent.
 */
int jfs_json_upload_response(const char *body, size_t len, int64_t size, const char *md5,
			     time_t *modified);

/* The "username" of the customer document: non-empty, at most 255 bytes, no
 * '/' and no control characters, else -EIO. *out is malloc'd. */
int jfs_json_customer_username(const char *body, size_t len, char **out);

/* The purge_trash answer {"folders":n,"files":m}: counts (-1 when absent). */
int jfs_json_purge_response(const char *body, size_t len, int64_t *folders, int64_t *files);

/*
 * The errno of a failed JSON API request from its status and error body
 * ({"code","message","error_id",...}, or anything else): quota exceeded
 * (a status the table maps to -ENOSPC, or an error_id naming
 * quota/insufficient storage) -ENOSPC; a message "... longer than 255 ..."
 * -ENAMETOOLONG; the Corrupt/IncompleteUpload error_ids -EIO; else the one
 * status table, http_status_errno_or(@status, @fallback) (net/http.h).
 */
int jfs_json_error_errno(long status, const char *body, size_t len, int fallback);

#endif
