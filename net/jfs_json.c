/*
 * net/jfs_json.c — see jfs_json.h. cJSON does the parsing and printing;
 * this file only decides what is acceptable.
 */
#include "net/jfs_json.h"

#include "lib/md5.h"
#include "net/http.h"
#include "net/jtime.h"
#include "net/url.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define JSON_EXACT_MAX 9007199254740992.0     /* 2^53: larger doubles skip integers */

/* A JSON number that is an exact integer in [-2^53, 2^53]. */
static bool json_i64(const cJSON *item, int64_t *out)
{
	if (!cJSON_IsNumber(item))
		return false;
	double d = item->valuedouble;
	if (!isfinite(d) || d != floor(d) || d > JSON_EXACT_MAX || d < -JSON_EXACT_MAX)
		return false;
	*out = (int64_t)d;
	return true;
}

/* Parse @len bytes as a JSON object; NULL when it is not one. */
static cJSON *parse_object(const char *body, size_t len)
{
	if (!body || !len)
		return NULL;
	cJSON *root = cJSON_ParseWithLength(body, len);
	if (root && !cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

int jfs_json_alloc_request(const char *device, const char *mountpoint,
			   const struct jfs_alloc_req *req, char **out)
{
	*out = NULL;
	if (!req->path || !*req->path || req->size < 0 || !md5_hex_valid(req->md5))
		return -EINVAL;
	char created[JTIME_BUFSZ], modified[JTIME_BUFSZ], bytes[24];
	if (jtime_format_rfc3339(req->created, created, sizeof(created)) < 0 ||
	    jtime_format_rfc3339(req->modified, modified, sizeof(modified)) < 0)
		return -EINVAL;
	snprintf(bytes, sizeof(bytes), "%" PRId64, req->size);

	size_t plen = strlen(device) + strlen(mountpoint) + strlen(req->path) + 8;
	char *path = malloc(plen);
	if (!path)
		return -ENOMEM;
	snprintf(path, plen, "/jfs/%s/%s/%s", device, mountpoint, req->path);

	int err = -ENOMEM;
	cJSON *root = cJSON_CreateObject();
	if (root && cJSON_AddRawToObject(root, "bytes", bytes) &&
	    (!req->reject_conflicts ||
	     cJSON_AddStringToObject(root, "conflict_handler", "REJECT_CONFLICTS")) &&
	    cJSON_AddStringToObject(root, "created", created) &&
	    cJSON_AddStringToObject(root, "md5", req->md5) &&
	    cJSON_AddStringToObject(root, "modified", modified) &&
	    cJSON_AddStringToObject(root, "path", path)) {
		*out = cJSON_PrintUnformatted(root);
		if (*out)
			err = 0;
	}
	cJSON_Delete(root);
	free(path);
	return err;
}

int jfs_json_alloc_response(const char *body, size_t len, int64_t size, struct jfs_alloc *out)
{
	memset(out, 0, sizeof(*out));
	cJSON *root = parse_object(body, len);
	if (!root)
		return -EIO;
	int err = -EIO;
	const cJSON *state = cJSON_GetObjectItemCaseSensitive(root, "state");
	const cJSON *url = cJSON_GetObjectItemCaseSensitive(root, "upload_url");
	const cJSON *pos = cJSON_GetObjectItemCaseSensitive(root, "resume_pos");
	const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(root, "bytes");
	if (!cJSON_IsString(state) || !state->valuestring[0] ||
	    strlen(state->valuestring) >= sizeof(out->state))
		goto out;
	memcpy(out->state, state->valuestring, strlen(state->valuestring) + 1);
	out->completed = !strcmp(out->state, "COMPLETED");

	int64_t b;
	if (bytes && !cJSON_IsNull(bytes) && (!json_i64(bytes, &b) || b != size))
		goto out;
	if (pos && !cJSON_IsNull(pos)) {
		if (!json_i64(pos, &out->resume_pos) || out->resume_pos < 0 ||
		    out->resume_pos > size)
			goto out;
	} else {
		out->resume_pos = out->completed ? size : 0;
	}
	if (!out->completed) {
		if (!cJSON_IsString(url) || url_check(url->valuestring) == URL_REFUSED)
			goto out;
		out->upload_url = strdup(url->valuestring);
		if (!out->upload_url) {
			err = -ENOMEM;
			goto out;
		}
	}
	err = 0;
out:
	cJSON_Delete(root);
	if (err) {
		free(out->upload_url);
		memset(out, 0, sizeof(*out));
	}
	return err;
}

int jfs_json_upload_response(const char *body, size_t len, int64_t size, const char *md5,
			     time_t *modified)
{
	if (modified)
		*modified = 0;
	cJSON *root = parse_object(body, len);
	if (!root)
		return -EIO;
	int err = -EIO;
	int64_t b, ms;
	const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(root, "bytes");
	const cJSON *sum = cJSON_GetObjectItemCaseSensitive(root, "md5");
	const cJSON *mod = cJSON_GetObjectItemCaseSensitive(root, "modified");
	if (!json_i64(bytes, &b) || b != size)
		goto out;
	if (!cJSON_IsString(sum) || strlen(sum->valuestring) != 32 ||
	    strcasecmp(sum->valuestring, md5))
		goto out;
	if (mod && !cJSON_IsNull(mod)) {
		if (!json_i64(mod, &ms) || ms < 0)
			goto out;
		if (modified)
			*modified = (time_t)(ms / 1000);
	}
	err = 0;
out:
	cJSON_Delete(root);
	return err;
}

int jfs_json_customer_username(const char *body, size_t len, char **out)
{
	*out = NULL;
	cJSON *root = parse_object(body, len);
	if (!root)
		return -EIO;
	int err = -EIO;
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "username");
	if (!cJSON_IsString(u))
		goto out;
	size_t n = strlen(u->valuestring);
	if (n == 0 || n > 255 || !strcmp(u->valuestring, ".") || !strcmp(u->valuestring, ".."))
		goto out;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)u->valuestring[i];
		if (c < 0x20 || c == 0x7f || c == '/')
			goto out;
	}
	*out = strdup(u->valuestring);
	err = *out ? 0 : -ENOMEM;
out:
	cJSON_Delete(root);
	return err;
}

int jfs_json_purge_response(const char *body, size_t len, int64_t *folders, int64_t *files)
{
	*folders = *files = -1;
	cJSON *root = parse_object(body, len);
	if (!root)
		return -EIO;
	int64_t v;
	if (json_i64(cJSON_GetObjectItemCaseSensitive(root, "folders"), &v) && v >= 0)
		*folders = v;
	if (json_i64(cJSON_GetObjectItemCaseSensitive(root, "files"), &v) && v >= 0)
		*files = v;
	cJSON_Delete(root);
	return 0;
}

/* A string member of @root, "" when absent or not a string. */
static const char *member(const cJSON *root, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
	return cJSON_IsString(v) ? v->valuestring : "";
}

int jfs_json_error_errno(long status, const char *body, size_t len, int fallback)
{
	/* Only the structured fields are looked at: a message quoting a path
	 * may contain any word. */
	cJSON *root = parse_object(body, len);
	const char *id = member(root, "error_id");
	const char *msg = member(root, "message");
	int err = http_status_errno_or(status, fallback);
	/* A full account outranks the message; a body naming a cause
	 * outranks the status's generic meaning (413 with a name too long). */
	if (status == 507 || strcasestr(id, "quota") || strcasestr(id, "InsufficientStorage") ||
	    strcasestr(id, "StorageFull"))
		err = -ENOSPC;
	else if (strstr(msg, "longer than 255"))
		err = -ENAMETOOLONG;
	else if (strstr(id, "CorruptUpload") || strstr(id, "IncompleteUpload"))
		err = -EIO;
	cJSON_Delete(root);
	return err;
}
