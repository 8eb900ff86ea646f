/*
 * Unit tests of auth/services: the service table loader and validator
 * (issue 12): the installed table, amendments by the user's file, and an
 * error naming the file, the entry and the member for every bad entry.
 */
#include <stddef.h>
#include <stdint.h>
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/services.h"

#define ONE(extra) \
	"{\"services\":[{\"key\":\"telia_se\",\"name\":\"Telia Cloud (Sweden)\"," \
	"\"domain\":\"cloud-auth.telia.se\",\"realm\":\"telia_se\",\"client_id\":\"desktop\"," \
	"\"scopes\":[\"openid\",\"jotta-default\",\"offline_access\"]" extra "}]}"

static int add(struct services *s, const char *json, int amend, char **msg)
{
	return services_add_json(s, json, strlen(json), "t.json", amend, msg);
}

static void test_installed_table(void **state)
{
	(void)state;
	struct services *s;
	char *msg = NULL;
	assert_int_equal(services_new(&s), 0);
	assert_int_equal(services_load_file(s, "share/services.json", 0, 0, &msg), 0);
	assert_null(msg);
	assert_int_equal(services_count(s), 13);
	assert_string_equal(services_at(s, 0)->key, "jottacloud");
	const struct service *p = services_find(s, "phonero");
	assert_non_null(p);
	assert_string_equal(p->client_id, "desktop-win");
	assert_string_equal(p->scopes, "openid offline_access");
	assert_string_equal(p->url, "https://sky.phonero.no");
	const struct service *t = services_find(s, "tele2");
	assert_string_equal(t->realm, "comhem");
	assert_string_equal(t->scopes, "openid jotta-default offline_access");
	assert_string_equal(services_find(s, "onlime")->realm, "onlime_wl");
	assert_string_equal(services_find(s, "telia_no")->realm, "get");
	assert_string_equal(services_find(s, "letsgo")->domain, "letsgo.jotta.cloud");
	assert_null(services_find(s, "Telia_se"));
	assert_null(services_find(s, "nosuch"));
	assert_null(services_at(s, 13));
	services_free(s);
}

static void test_amend_by_user_file(void **state)
{
	(void)state;
	struct services *s;
	char *msg = NULL;
	services_new(&s);
	assert_int_equal(add(s, ONE(""), 0, &msg), 0);
	/* the user's file: one member of a known entry, and a new service */
	assert_int_equal(add(s, "{\"services\":[{\"key\":\"telia_se\",\"url\":\"http://127.0.0.1:9/\"},"
			     "{\"key\":\"newbrand\",\"name\":\"New\",\"domain\":\"id.new.example\","
			     "\"realm\":\"new\",\"client_id\":\"desktop\",\"scopes\":[\"openid\"]}]}",
			     1, &msg), 0);
	assert_int_equal(services_count(s), 2);
	const struct service *t = services_find(s, "telia_se");
	assert_string_equal(t->url, "http://127.0.0.1:9");   /* trailing '/' dropped */
	assert_string_equal(t->client_id, "desktop");          /* kept */
	assert_string_equal(services_find(s, "newbrand")->url, "https://id.new.example");
	/* the installed table may not define a key twice */
	assert_int_equal(add(s, ONE(""), 0, &msg), -EINVAL);
	assert_non_null(strstr(msg, "used twice"));
	free(msg);
	services_free(s);
}

/* A bad table: -EINVAL, the table unchanged, a message naming @needle. */
static void bad(const char *json, int amend, const char *needle)
{
	struct services *s;
	char *msg = NULL;
	services_new(&s);
	assert_int_equal(add(s, ONE(""), 0, &msg), 0);
	assert_int_equal(add(s, json, amend, &msg), -EINVAL);
	assert_non_null(msg);
	if (!strstr(msg, needle))
		fail_msg("message '%s' lacks '%s'", msg, needle);
	assert_non_null(strstr(msg, "'t.json'"));
	assert_int_equal(services_count(s), 1);
	assert_string_equal(services_find(s, "telia_se")->url, "https://cloud-auth.telia.se");
	free(msg);
	services_free(s);
}

static void test_bad_entries_named(void **state)
{
	(void)state;
	/* each document amends a good one and fails with a message naming the bad part */
	static const struct {
		const char *json, *needle;
	} cases[] = {
		{ "[]", "not a JSON object with a 'services' array" },
		{ "{\"services\":{}}", "'services' array" },
		{ "{\"services\":[1]}", "entry 1: not a JSON object" },
		{ "{\"services\":[{\"name\":\"x\"}]}", "entry 1: 'key' is missing" },
		{ "{\"services\":[{\"key\":\"Bad Key\"}]}", "entry 1 ('Bad Key'): 'key' must be" },
		{ "{\"services\":[{\"key\":\"telia_se\",\"clientid\":\"x\"}]}",
		  "entry 1 ('telia_se'): unknown member 'clientid'" },
		{ "{\"services\":[{\"key\":\"telia_se\"},{\"key\":\"x2\",\"name\":\"n\"}]}",
		  "entry 2 ('x2'): 'domain' is missing" },
		{ "{\"services\":[{\"key\":\"telia_se\",\"domain\":\"-a.b\"}]}",
		  "'domain' must be" },
		{ "{\"services\":[{\"key\":\"telia_se\",\"domain\":\"a..b\"}]}",
		  "'domain' must be" },
		{ "{\"services\":[{\"key\":\"telia_se\",\"domain\":\"a/b\"}]}",
		  "'domain' must be" },
		{ "{\"services\":[{\"key\":\"telia_se\",\"realm\":\"\"}]}", "'realm' must be" },
		{ "{\"services\":[{\"key\":\"telia_se\",\"realm\":\"a/b\"}]}", "'realm' must be" },
		{ "{\"services\":[{\"key\":\"telia_se\",\"client_id\":\"a b\"}]}",
		  "'client_id' must be" },
		{ "{\"services\":[{\"key\":\"telia_se\",\"client_id\":5}]}",
		  "'client_id' must be a string" },
		{ "{\"services\":[{\"key\":\"telia_se\",\"name\":\"a\\nb\"}]}", "'name' must be" },
		{ "{\"services\":[{\"key\":\"telia_se\",\"scopes\":[]}]}", "'scopes' must be" },
		{ "{\"services\":[{\"key\":\"telia_se\",\"scopes\":\"openid\"}]}",
		  "'scopes' must be" },
		{ "{\"services\":[{\"key\":\"telia_se\",\"scopes\":[\"a b\"]}]}",
		  "'scopes' holds something" },
		{ "{\"services\":[{\"key\":\"telia_se\",\"scopes\":[\"a\\\"\"]}]}",
		  "'scopes' holds something" },
		{ "{\"services\":[{\"key\":\"telia_se\",\"url\":\"ftp://x\"}]}", "'url' must be" },
		{ "{\"services\":[{\"key\":\"telia_se\",\"url\":\"https://x/?a=b\"}]}",
		  "'url' must be" },
		{ "{\"services\":[{\"key\":\"telia_se\"},{\"key\":\"telia_se\"}]}", "used twice" },
		/* a member given twice (the fuzzer's find: a second 'key' slipped a
		 * duplicate past the key check) */
		{ "{\"services\":[{\"key\":\"telia_se\"},{\"key\":\"x\",\"key\":\"telia_se\"}]}",
		  "'key' is given twice" },
		{ "not json", "'services' array" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		bad(cases[i].json, 1, cases[i].needle);
}

static void test_load_file(void **state)
{
	(void)state;
	struct services *s;
	char *msg = NULL;
	services_new(&s);
	assert_int_equal(services_load_file(s, "/nonexistent/services.json", 1, 1, &msg), 0);
	assert_null(msg);
	assert_int_equal(services_load_file(s, "/nonexistent/services.json", 0, 0, &msg), -ENOENT);
	assert_non_null(strstr(msg, "cannot read the service table '/nonexistent/services.json'"));
	free(msg);
	char path[] = "/tmp/test_services_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *text = ONE(",\"oops\":1");
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(services_load_file(s, path, 0, 0, &msg), -EINVAL);
	assert_non_null(strstr(msg, path));
	assert_non_null(strstr(msg, "entry 1 ('telia_se'): unknown member 'oops'"));
	free(msg);
	unlink(path);
	services_free(s);
}

UNIT_TEST_PROGRAM(NULL, NULL,
	cmocka_unit_test(test_installed_table),
	cmocka_unit_test(test_amend_by_user_file),
	cmocka_unit_test(test_bad_entries_named),
	cmocka_unit_test(test_load_file),
)
