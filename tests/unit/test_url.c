/*
 * Unit tests of net/url: the one URL check and the plain-HTTP policy
 * (issue 14, item 5): plain http only to literal loopback hosts, or with
 * -o insecure_http. Nothing here resolves or connects.
 */
#include <stddef.h>
#include <stdint.h>
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/url.h"

/* url_check() says URL_OK to every URL of the NULL-terminated @urls */
static void expect_ok(const char *const *urls)
{
	for (unsigned i = 0; urls[i]; i++)
		if (url_check(urls[i]) != URL_OK)
			fail_msg("%s: verdict %d", urls[i], url_check(urls[i]));
}

static void test_https_always_ok(void **state)
{
	(void)state;
	static const char *const https[] = {
		"https://api.jottacloud.com", "https://jfs.jottacloud.com/jfs/",
		"HTTPS://Up.Jottacloud.com/files/v1/upload/x?a=b#c", "https://10.0.0.1:8443/x",
		"https://[2001:db8::1]:443/", "https://u:p@host/x", "https://h?x", NULL,
	};
	expect_ok(https);
}

static void test_plain_http_loopback_ok(void **state)
{
	(void)state;
	static const char *const loopback[] = {
		"http://127.0.0.1:1234/jfs", "HTTP://127.0.0.1:1234/u", "http://127.0.0.1",
		"http://127.255.3.4/x", "http://localhost:8080/", "http://LocalHost/",
		"http://[::1]:80/x", "http://[0:0:0:0:0:0:0:1]/", "http://[::ffff:127.0.0.1]/",
		"http://user:pw@127.0.0.1:9/t?refresh_token=x", "http://127.0.0.1?x=1",
		"http://127.0.0.1#f", NULL,
	};
	expect_ok(loopback);
}

static void test_plain_http_elsewhere_needs_flag(void **state)
{
	(void)state;
	static const char *const remote[] = {
		"http://api.jottacloud.com", "http://a", "http://h/jfs/", "http://192.0.2.1/x",
		"http://10.0.0.1:80/", "http://0.0.0.0/", "http://128.0.0.1/", "http://[::2]/",
		"http://[::]/", "http://[::ffff:10.0.0.1]/",
		/* names and spellings that would need resolving or guessing */
		"http://localhost./", "http://foo.localhost/", "http://localhost.example.com/",
		"http://127.1/", "http://0x7f.0.0.1/", "http://2130706433/",
		"http://127.0.0.1.nip.io/", "http://127.000.000.001/", "http://[::1%25lo]/",
		"http://%31%32%37.0.0.1/",
		/* the host is what follows the user info */
		"http://127.0.0.1@evil.example/", "http://localhost:80@192.0.2.1/", NULL,
	};
	for (unsigned i = 0; remote[i]; i++) {
		if (url_check(remote[i]) != URL_NEEDS_FLAG)
			fail_msg("%s: verdict %d", remote[i], url_check(remote[i]));
		assert_int_equal(url_allowed(remote[i], false), -EPERM);
		assert_int_equal(url_allowed(remote[i], true), 0);
	}
}

static void test_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", "https:/x", "https:///x", "//x/y", "https://x/\x7f", "javascript:alert(1)",
		"ftp://127.0.0.1/", "file:///etc/passwd", "127.0.0.1", "http://", "https://",
		"http://:80/", "http://a b/", "http://a/b c", "http://a/\n", "http://[::1/x",
		"http://[::1]x/", "http://a:/", "http://a:123456/", "http://a:8o/", "http://a@b@c/",
		"http://@/", " http://127.0.0.1/", NULL,
	};
	assert_int_equal(url_check(NULL), URL_REFUSED);
	assert_int_equal(url_allowed(NULL, true), -EINVAL);
	for (unsigned i = 0; bad[i]; i++) {
		if (url_check(bad[i]) != URL_REFUSED)
			fail_msg("'%s': verdict %d", bad[i], url_check(bad[i]));
		assert_int_equal(url_allowed(bad[i], true), -EINVAL);
	}
	/* the length cap */
	char *big = malloc(URL_MAX + 2);
	assert_non_null(big);
	memset(big, 'a', URL_MAX + 1);
	memcpy(big, "https://h/", 10);
	big[URL_MAX] = '\0';
	assert_int_equal(url_check(big), URL_OK);
	big[URL_MAX] = 'a';
	big[URL_MAX + 1] = '\0';
	assert_int_equal(url_check(big), URL_REFUSED);
	free(big);
}

static void test_host_is_loopback(void **state)
{
	(void)state;
	assert_true(url_host_is_loopback("localhost", 9));
	assert_true(url_host_is_loopback("127.0.0.1", 9));
	assert_true(url_host_is_loopback("[::1]", 5));
	assert_true(url_host_is_loopback("127.0.0.1:80", 9)); /* the length bounds it */
	assert_false(url_host_is_loopback("localhos", 8));
	assert_false(url_host_is_loopback("localhostx", 10));
	assert_false(url_host_is_loopback("::1", 3));          /* IPv6 needs brackets */
	assert_false(url_host_is_loopback("[::1", 4));
	assert_false(url_host_is_loopback("[]", 2));
	assert_false(url_host_is_loopback("", 0));
	assert_false(url_host_is_loopback(NULL, 0));
}

UNIT_TEST_PROGRAM(NULL, NULL,
	cmocka_unit_test(test_https_always_ok),
	cmocka_unit_test(test_plain_http_loopback_ok),
	cmocka_unit_test(test_plain_http_elsewhere_needs_flag),
	cmocka_unit_test(test_refused),
	cmocka_unit_test(test_host_is_loopback),
)
