/*
 * Unit tests of net/jfs_json: the allocate request (byte-exact with what
 * rclone 1.60.1 sent, samples §B.3/B.4), the allocate and upload answers
 * (C.5, C.6), the customer document (C.4), purge_trash and JSON error
 * mapping; malformed and hostile answers are -EIO.
 */
#include <stddef.h>
#include <stdint.h>
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http.h"
#include "net/jfs_json.h"
#include "net/jtime.h"

static time_t rt(const char *s)
{
	time_t t;
	assert_int_equal(jtime_parse_rfc3339(s, strlen(s), &t), 0);
	return t;
}

static void test_alloc_request(void **state)
{
	(void)state;
	struct jfs_alloc_req r = {
		.path = "Docs/a b+c.txt", .size = 12, .md5 = "6f5902ac237024bdd0c176cb93063dc4",
		.created = rt("2024-03-04T08:09:10Z"), .modified = rt("2024-03-04T08:09:10Z"),
	};
	char *body;
	assert_int_equal(jfs_json_alloc_request("Jotta", "Archive", &r, &body), 0);
	/* byte for byte what rclone 1.60.1 sent (B.3) */
	assert_string_equal(body, "{\"bytes\":12,\"created\":\"2024-03-04T08:09:10Z\",\"md5\":"
			    "\"6f5902ac237024bdd0c176cb93063dc4\",\"modified\":"
			    "\"2024-03-04T08:09:10Z\",\"path\":\"/jfs/Jotta/Archive/Docs/a b+c.txt\"}");
	free(body);

	/* B.4: a large size is an exact integer; created != modified */
	r.path = "resume/big.bin";
	r.size = 9007199254740993LL;     /* 2^53 + 1: not representable as a double */
	r.created = rt("2018-07-05T15:08:02Z");
	r.modified = rt("2020-01-02T02:04:05Z");
	assert_int_equal(jfs_json_alloc_request("Jotta", "Archive", &r, &body), 0);
	assert_non_null(strstr(body, "\"bytes\":9007199254740993,"));
	assert_non_null(strstr(body, "\"created\":\"2018-07-05T15:08:02Z\""));
	assert_non_null(strstr(body, "\"modified\":\"2020-01-02T02:04:05Z\""));
	free(body);

	/* JSON escaping of odd names is cJSON's job */
	r.path = "q\"uote\\back\x01" "ctl";
	r.size = 0;
	assert_int_equal(jfs_json_alloc_request("Jotta", "Archive", &r, &body), 0);
	assert_non_null(strstr(body, "\"path\":\"/jfs/Jotta/Archive/q\\\"uote\\\\back\\u0001ctl\""));
	free(body);

	/* refused arguments */
	struct jfs_alloc_req bad = r;
	bad.path = "";
	assert_int_equal(jfs_json_alloc_request("Jotta", "Archive", &bad, &body), -EINVAL);
	assert_null(body);
	bad = r;
	bad.size = -1;
	assert_int_equal(jfs_json_alloc_request("Jotta", "Archive", &bad, &body), -EINVAL);
	bad = r;
	bad.md5 = "6F5902AC237024BDD0C176CB93063DC4";
	assert_int_equal(jfs_json_alloc_request("Jotta", "Archive", &bad, &body), -EINVAL);
	bad.md5 = "6f5902ac";
	assert_int_equal(jfs_json_alloc_request("Jotta", "Archive", &bad, &body), -EINVAL);
	bad = r;
	bad.modified = (time_t)400000000000LL;       /* year 14645 */
	assert_int_equal(jfs_json_alloc_request("Jotta", "Archive", &bad, &body), -EINVAL);
}

static int alloc(const char *json, int64_t size, struct jfs_alloc *a)
{
	return jfs_json_alloc_response(json, strlen(json), size, a);
}

static void test_alloc_response(void **state)
{
	(void)state;
	struct jfs_alloc a;
	/* C.5: new upload */
	assert_int_equal(alloc("{\"name\":\"block.csv\",\"path\":\"/jfs/Jotta/Archive/dir/block.csv\","
			       "\"state\":\"INCOMPLETE\",\"upload_id\":\"eyJ\",\"upload_url\":"
			       "\"https://up-no-001.jottacloud.com/files/v1/upload/eyJ\","
			       "\"bytes\":30827730,\"resume_pos\":0}", 30827730, &a), 0);
	assert_false(a.completed);
	assert_string_equal(a.state, "INCOMPLETE");
	assert_string_equal(a.upload_url, "https://up-no-001.jottacloud.com/files/v1/upload/eyJ");
	assert_int_equal(a.resume_pos, 0);
	free(a.upload_url);
	/* resumed */
	assert_int_equal(alloc("{\"state\":\"INCOMPLETE\",\"upload_url\":\"http://127.0.0.1:8/u/1\","
			       "\"bytes\":30827730,\"resume_pos\":8388608}", 30827730, &a), 0);
	assert_int_equal(a.resume_pos, 8388608);
	free(a.upload_url);
	/* instant upload */
	assert_int_equal(alloc("{\"name\":\"block.csv\",\"state\":\"COMPLETED\",\"upload_id\":\"\","
			       "\"upload_url\":\"\",\"bytes\":30827730,\"resume_pos\":30827730}",
			       30827730, &a), 0);
	assert_true(a.completed);
	assert_null(a.upload_url);
	assert_int_equal(a.resume_pos, 30827730);
	assert_int_equal(alloc("{\"state\":\"COMPLETED\"}", 5, &a), 0);
	assert_int_equal(a.resume_pos, 5);
	/* CORRUPT still wants data; resume_pos may be absent */
	assert_int_equal(alloc("{\"state\":\"CORRUPT\",\"upload_url\":\"https://u.example/x\"}", 5, &a), 0);
	assert_int_equal(a.resume_pos, 0);
	free(a.upload_url);

	static const char *const bad[] = {
		"",
		"[]",
		"null",
		"{",
		"{\"state\":\"INCOMPLETE\",\"resume_pos\":0}",                       /* no url */
		"{\"state\":\"INCOMPLETE\",\"upload_url\":\"\",\"resume_pos\":0}",
		"{\"state\":\"INCOMPLETE\",\"upload_url\":\"file:///etc/passwd\"}",
		"{\"state\":\"INCOMPLETE\",\"upload_url\":\"ftp://x/y\"}",
		"{\"state\":\"INCOMPLETE\",\"upload_url\":\"https://\"}",
		"{\"state\":\"INCOMPLETE\",\"upload_url\":\"https://a b/\"}",
		"{\"state\":\"INCOMPLETE\",\"upload_url\":\"https://a/\\n\"}",
		"{\"state\":\"INCOMPLETE\",\"upload_url\":7}",
		"{\"state\":\"INCOMPLETE\",\"upload_url\":\"https://a/\",\"resume_pos\":-1}",
		"{\"state\":\"INCOMPLETE\",\"upload_url\":\"https://a/\",\"resume_pos\":11}",
		"{\"state\":\"INCOMPLETE\",\"upload_url\":\"https://a/\",\"resume_pos\":1.5}",
		"{\"state\":\"INCOMPLETE\",\"upload_url\":\"https://a/\",\"resume_pos\":\"3\"}",
		"{\"state\":\"INCOMPLETE\",\"upload_url\":\"https://a/\",\"resume_pos\":1e400}",
		"{\"state\":\"INCOMPLETE\",\"upload_url\":\"https://a/\",\"bytes\":11}",
		"{\"state\":\"\",\"upload_url\":\"https://a/\"}",
		"{\"state\":\"INCOMPLETE-AND-MUCH-LONGER\",\"upload_url\":\"https://a/\"}",
		"{\"state\":5}",
		"{\"upload_url\":\"https://a/\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&a, 0x55, sizeof(a));
		assert_int_equal(alloc(bad[i], 10, &a), -EIO);
		assert_null(a.upload_url);
		assert_false(a.completed);
	}
}

static int upl(const char *json, int64_t size, const char *md5, time_t *mod)
{
	return jfs_json_upload_response(json, strlen(json), size, md5, mod);
}

static void test_upload_response(void **state)
{
	(void)state;
	const char *md5 = "1e8a7b728ab678048df00075c9507158";
	time_t mod = -1;
	/* C.6 */
	assert_int_equal(upl("{\"path\":\"/jfs/Jotta/Archive/dir/block.csv\",\"content_id\":\"b5f1\","
			     "\"bytes\":30827730,\"md5\":\"1e8a7b728ab678048df00075c9507158\","
			     "\"modified\":1578020645000}", 30827730, md5, &mod), 0);
	assert_int_equal(mod, 1578020645);
	assert_int_equal(upl("{\"bytes\":30827730,\"md5\":\"1E8A7B728AB678048DF00075C9507158\"}",
			     30827730, md5, &mod), 0);
	assert_int_equal(mod, 0);
	assert_int_equal(upl("{\"bytes\":30827730,\"md5\":\"1e8a7b728ab678048df00075c9507158\","
			     "\"modified\":1578020645999}", 30827730, md5, NULL), 0);
	/* B.4: the fake reported only this chunk's bytes: refused */
	assert_int_equal(upl("{\"bytes\":299900,\"md5\":\"1e8a7b728ab678048df00075c9507158\"}",
			     300000, md5, &mod), -EIO);
	static const char *const bad[] = {
		"{\"bytes\":30827730,\"md5\":\"2e8a7b728ab678048df00075c9507158\"}",
		"{\"bytes\":30827730}",
		"{\"md5\":\"1e8a7b728ab678048df00075c9507158\"}",
		"{\"bytes\":\"30827730\",\"md5\":\"1e8a7b728ab678048df00075c9507158\"}",
		"{\"bytes\":30827730,\"md5\":\"1e8a7b728ab678048df00075c9507158\",\"modified\":-5}",
		"{\"bytes\":30827730,\"md5\":\"1e8a7b728ab678048df00075c9507158\",\"modified\":\"x\"}",
		"{\"bytes\":30827730.5,\"md5\":\"1e8a7b728ab678048df00075c9507158\"}",
		"not json",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(upl(bad[i], 30827730, md5, &mod), -EIO);
}

static void test_customer(void **state)
{
	(void)state;
	/* C.4 */
	const char *c4 = "{\"username\":\"2940e57271a93d987d6f8a21\",\"email\":\"user@example.com\","
			 "\"name\":\"Ola Nordmann\",\"country_code\":\"NO\",\"language_code\":\"nb\","
			 "\"customer_group_code\":\"CORE\",\"brand_code\":\"JOTTA\",\"account_type\":"
			 "\"unlimited\",\"subscription_type\":\"PERSONAL\",\"usage\":1234567890,"
			 "\"quota\":-1,\"business_usage\":0,\"business_quota\":0,\"write_locked\":false,"
			 "\"read_locked\":false,\"locked_cause\":null,\"web_hash\":\"x\"}";
	char *u;
	assert_int_equal(jfs_json_customer_username(c4, strlen(c4), &u), 0);
	assert_string_equal(u, "2940e57271a93d987d6f8a21");
	free(u);
	assert_int_equal(jfs_json_customer_username("{\"username\":\"hgl\"}", 18, &u), 0);
	assert_string_equal(u, "hgl");
	free(u);
	static const char *const bad[] = {
		"{}", "{\"username\":\"\"}", "{\"username\":null}", "{\"username\":5}",
		"{\"username\":\"a/b\"}", "{\"username\":\"..\"}", "{\"username\":\"a\\u0001b\"}",
		"[\"username\"]", "<html/>",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(jfs_json_customer_username(bad[i], strlen(bad[i]), &u), -EIO);
		assert_null(u);
	}
	char big[400] = "{\"username\":\"";
	memset(big + 13, 'a', 300);
	strcpy(big + 313, "\"}");
	assert_int_equal(jfs_json_customer_username(big, strlen(big), &u), -EIO);
}

static void test_purge_and_errors(void **state)
{
	(void)state;
	int64_t fo, fi;
	assert_int_equal(jfs_json_purge_response("{\"files\":0,\"folders\":2}", 24, &fo, &fi), 0);
	assert_int_equal(fo, 2);
	assert_int_equal(fi, 0);
	assert_int_equal(jfs_json_purge_response("{}", 2, &fo, &fi), 0);
	assert_int_equal(fo, -1);
	assert_int_equal(jfs_json_purge_response("x", 1, &fo, &fi), -EIO);

	const char *e400 = "{\"code\":400,\"message\":\"no.jotta.backup.errors.InvalidArgumentException: "
			   "JFS file names may not be longer than 255 characters\",\"cause\":\"\","
			   "\"error_id\":\"InvalidArgumentException\",\"x-id\":\"1\"}";
	assert_int_equal(jfs_json_error_errno(400, e400, strlen(e400), -EPROTO), -ENAMETOOLONG);
	/* the body's cause outranks a status's generic meaning (413: ENOSPC) */
	assert_int_equal(jfs_json_error_errno(413, e400, strlen(e400), -EPROTO), -ENAMETOOLONG);
	assert_int_equal(jfs_json_error_errno(413, "{}", 2, -EPROTO), -ENOSPC);
	assert_int_equal(jfs_json_error_errno(507, e400, strlen(e400), -EPROTO), -ENOSPC);
	const char *inv = "{\"code\":400,\"message\":\"bad\",\"error_id\":\"InvalidArgumentException\"}";
	assert_int_equal(jfs_json_error_errno(400, inv, strlen(inv), -EPROTO), -EINVAL);
	assert_int_equal(jfs_json_error_errno(507, "", 0, -EPROTO), -ENOSPC);
	const char *quota = "{\"code\":403,\"error_id\":\"QuotaExceededException\"}";
	assert_int_equal(jfs_json_error_errno(403, quota, strlen(quota), -EPROTO), -ENOSPC);
	/* a path quoting the word "quota" is not a quota error */
	const char *path = "{\"code\":400,\"message\":\"bad path /jfs/Jotta/Archive/quota.txt\"}";
	assert_int_equal(jfs_json_error_errno(400, path, strlen(path), -EPROTO), -EINVAL);
	const char *inc = "{\"code\":420,\"error_id\":\"IncompleteUploadOpenApiException\"}";
	assert_int_equal(jfs_json_error_errno(420, inc, strlen(inc), -EPROTO), -EIO);
	const char *cor = "{\"code\":400,\"error_id\":\"CorruptUploadOpenApiException\"}";
	assert_int_equal(jfs_json_error_errno(400, cor, strlen(cor), -EPROTO), -EIO);
	assert_int_equal(jfs_json_error_errno(404, "x", 1, -EPROTO), -ENOENT);
	assert_int_equal(jfs_json_error_errno(401, NULL, 0, -EPROTO), -EACCES);
	assert_int_equal(jfs_json_error_errno(500, "{}", 2, -EPROTO), -EPROTO);
}

/* upload_url goes through the one URL check (net/url.h): what is not a
 * usable URL is a bad answer; plain http elsewhere than loopback is decoded
 * (net/http refuses it at request time unless -o insecure_http). */
static void test_upload_url(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", "https:/x", "https:///x", "//x/y", "https://x/\\u007f", "javascript:alert(1)",
		"ftp://127.0.0.1/u", "http://a@b@c/u", NULL,
	};
	struct jfs_alloc a;
	char json[256];
	for (unsigned i = 0; bad[i]; i++) {
		snprintf(json, sizeof(json), "{\"state\":\"INCOMPLETE\",\"upload_url\":\"%s\"}",
			 bad[i]);
		assert_int_equal(alloc(json, 10, &a), -EIO);
	}
	assert_int_equal(alloc("{\"state\":\"INCOMPLETE\",\"upload_url\":\"HTTP://127.0.0.1:1234/u\"}",
			       10, &a), 0);
	free(a.upload_url);
	assert_int_equal(alloc("{\"state\":\"INCOMPLETE\",\"upload_url\":\"http://192.0.2.1/u\"}",
			       10, &a), 0);
	assert_string_equal(a.upload_url, "http://192.0.2.1/u");
	free(a.upload_url);
}

/* A body that names nothing leaves the status to the one table (net/http.h). */
static void test_errors_use_the_table(void **state)
{
	(void)state;
	for (long s = 0; s < 600; s++) {
		int want = http_status_errno_or(s, -EPROTO);
		if (jfs_json_error_errno(s, "{}", 2, -EPROTO) != want ||
		    jfs_json_error_errno(s, NULL, 0, -EPROTO) != want)
			fail_msg("status %ld: %d, want %d", s, jfs_json_error_errno(s, "{}", 2, -EPROTO),
				 want);
	}
}

UNIT_TEST_PROGRAM(NULL, NULL,
	cmocka_unit_test(test_alloc_request),
	cmocka_unit_test(test_alloc_response),
	cmocka_unit_test(test_upload_response),
	cmocka_unit_test(test_customer),
	cmocka_unit_test(test_purge_and_errors),
	cmocka_unit_test(test_upload_url),
	cmocka_unit_test(test_errors_use_the_table),
)
