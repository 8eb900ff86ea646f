/*
 * tests/fuzz/fuzz_jfs_json.c — libFuzzer target for net/jfs_json (the JSON
 * API answers: allocate, data POST, customer, purge_trash and the error
 * bodies; and the allocate request we build).
 *
 * The input is a response body, handed over with its exact length (no NUL
 * after it). Every decoder sees it:
 *   allocate  for sizes 0, 12, 300000 and the body's own "bytes": on success
 *             the state is a short non-empty string, resume_pos within
 *             [0, size], and an upload_url that url_check() does not refuse
 *             exactly when the state is not COMPLETED; on failure -EIO and an
 *             all-zero result;
 *   upload    for the same sizes and a fixed MD5 or the body's own: success
 *             only when the body names that size and MD5, modified >= 0;
 *   customer  a username of 1-255 bytes without '/' or control characters;
 *   purge     counts >= -1;
 *   error     a negative errno for every status, @fallback when nothing
 *             matches.
 * Then the input (cut at its first NUL) is a path for jfs_json_alloc_request,
 * whose output must parse back to the same path, size and MD5.
 *
 * Build: make fuzz
 * Run:   build-fuzz/fuzz/fuzz_jfs_json -dict=tests/fuzz/jfs_json.dict \
 *          -max_total_time=60 /tmp/corpus-json tests/fuzz/jfs_json_seeds
 */
#include "fuzz.h"
#include "net/jfs_json.h"
#include "net/url.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXED_MD5 "6f5902ac237024bdd0c176cb93063dc4"

static int all_zero(const void *p, size_t n)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++)
		if (s[i])
			return 0;
	return 1;
}

static void check_alloc(const char *body, size_t len, int64_t size)
{
	struct jfs_alloc a;
	memset(&a, 0x5a, sizeof(a));
	int rc = jfs_json_alloc_response(body, len, size, &a);
	if (rc < 0) {
		CHECK(rc == -EIO || rc == -ENOMEM);
		CHECK(all_zero(&a, sizeof(a)));
		return;
	}
	CHECK(rc == 0);
	size_t sl = strnlen(a.state, sizeof(a.state));
	CHECK(sl > 0 && sl < sizeof(a.state));
	CHECK(a.completed == (strcmp(a.state, "COMPLETED") == 0));
	CHECK(a.resume_pos >= 0 && a.resume_pos <= size);
	if (a.completed)
		CHECK(a.upload_url == NULL);
	else
		CHECK(a.upload_url && url_check(a.upload_url) != URL_REFUSED);
	jfs_alloc_release(&a);
}

static void check_upload(const char *body, size_t len, int64_t size, const char *md5)
{
	time_t mod = 12345;
	int rc = jfs_json_upload_response(body, len, size, md5, &mod);
	CHECK(rc == 0 || rc == -EIO);
	if (rc == 0)
		CHECK(mod >= 0);
	CHECK(jfs_json_upload_response(body, len, size, md5, NULL) == rc);
}

static void check_customer(const char *body, size_t len)
{
	char *u = (char *)"untouched";
	int rc = jfs_json_customer_username(body, len, &u);
	if (refused(rc, u))
		return;
	size_t n = strlen(u);
	CHECK(n >= 1 && n <= 255);
	CHECK(strcmp(u, ".") && strcmp(u, ".."));
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)u[i] >= 0x20 && u[i] != 0x7f && u[i] != '/');
	free(u);
}

static void check_errors(const char *body, size_t len)
{
	static const long statuses[] = { 0, 200, 400, 401, 403, 404, 409, 420, 429, 500, 507 };
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		int e = jfs_json_error_errno(statuses[i], body, len, -EPROTO);
		CHECK(e < 0);
		if (statuses[i] == 507)
			CHECK(e == -ENOSPC);
	}
}

/* The path round trip of the allocate request. */
static void check_request(const char *path, int64_t size)
{
	struct jfs_alloc_req req = {
		.path = path, .size = size, .md5 = FIXED_MD5,
		.created = 1795443404, .modified = 1795443404, .reject_conflicts = size & 1,
	};
	char *out = NULL;
	int rc = jfs_json_alloc_request("Jotta", "Archive", &req, &out);
	if (!path[0] || size < 0) {
		CHECK(rc == -EINVAL && out == NULL);
		return;
	}
	CHECK(rc == 0 && out != NULL);
	cJSON *j = cJSON_Parse(out);
	CHECK(cJSON_IsObject(j));
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "path");
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "bytes");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "md5");
	CHECK(cJSON_IsString(p) && !strncmp(p->valuestring, "/jfs/Jotta/Archive/", 19) &&
	      !strcmp(p->valuestring + 19, path));
	CHECK(cJSON_IsNumber(b) && b->valuedouble == (double)size);
	CHECK(cJSON_IsString(m) && !strcmp(m->valuestring, FIXED_MD5));
	cJSON_Delete(j);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the body, without a terminator: ASan sees any over-read */
	char *body = malloc(size ? size : 1);
	CHECK(body != NULL);
	if (size)
		memcpy(body, data, size);

	/* the sizes and MD5s that can lead deep into the decoders */
	int64_t sizes[4] = { 0, 12, 300000, 12 };
	const char *md5s[2] = { FIXED_MD5, FIXED_MD5 };
	char own_md5[33] = "";
	cJSON *j = cJSON_ParseWithLength(body, size);
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "bytes");
	if (cJSON_IsNumber(b) && isfinite(b->valuedouble) && fabs(b->valuedouble) < 9e18)
		sizes[3] = (int64_t)b->valuedouble;
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "md5");
	if (cJSON_IsString(m) && strlen(m->valuestring) == 32) {
		memcpy(own_md5, m->valuestring, 33);
		md5s[1] = own_md5;
	}
	cJSON_Delete(j);

	/* the callers only ever pass a size >= 0 (the request checks it) */
	int64_t own_size = sizes[3];
	if (sizes[3] < 0)
		sizes[3] = 12;
	for (size_t i = 0; i < 4; i++) {
		check_alloc(body, size, sizes[i]);
		for (size_t k = 0; k < 2; k++)
			check_upload(body, size, sizes[i], md5s[k]);
	}
	check_customer(body, size);
	int64_t folders = -7, files = -7;
	int rc = jfs_json_purge_response(body, size, &folders, &files);
	CHECK(rc == 0 || rc == -EIO);
	CHECK(folders >= -1 && files >= -1);
	check_errors(body, size);

	char *path = strndup(body, size);
	CHECK(path != NULL);
	/* the server's text as a URL (what net/url checks an upload_url with) */
	enum url_verdict v = url_check(path);
	CHECK(v == URL_OK || v == URL_NEEDS_FLAG || v == URL_REFUSED);
	check_request(path, own_size);
	free(path);
	free(body);
	return 0;
}
