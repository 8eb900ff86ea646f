/*
 * Unit tests of lib/redact: server text on its way to a log line or a user
 * message loses anything that looks like a credential, is masked to
 * printable ASCII and is cut to size (issue 14, item 3).
 */
#include <stddef.h>
#include <stdint.h>
#include "unit.h"

#include <string.h>

#include "lib/redact.h"

#define JWT "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDAsImp0aSI6IngifQ.c2lnbmF0dXJl"

/* redact @in (whole) into a 512-byte buffer and compare with @want */
static void check(const char *in, const char *want)
{
	char out[512];
	redact_str(in, out, sizeof(out));
	assert_string_equal(out, want);
}

static void test_plain_text_kept(void **state)
{
	(void)state;
	check("", "");
	check("Bad credentials", "Bad credentials");
	check("no.jotta.backup.errors.NoSuchPathException: Directory /u/Jotta/Archive/x",
	      "no.jotta.backup.errors.NoSuchPathException: Directory /u/Jotta/Archive/x");
	check("{\"code\": 404, \"message\": \"not found\"}",
	      "{\"code\": 404, \"message\": \"not found\"}");
	check("host api.jottacloud.com said 503", "host api.jottacloud.com said 503");
	check("a token was refused", "a token was refused");       /* no separator: a word */
	check("tokens=", "tokens=");                                /* not a key */
	check("unauthorized_client", "unauthorized_client");
	char out[64];
	assert_string_equal(redact_str(NULL, out, sizeof(out)), "");
	assert_string_equal(redact_text(NULL, 0, out, sizeof(out)), "");
}

static void test_bearer(void **state)
{
	(void)state;
	check("Authorization: Bearer abc", "Authorization: Bearer [redacted]");
	check("authorization=bearer abc; x", "authorization=bearer [redacted]; x");
	check("got BEARER  short-token", "got BEARER  [redacted]");
	check("{'Authorization': 'Bearer " JWT "', 'Host': '127.0.0.1'}",
	      "{'Authorization': 'Bearer [redacted]', 'Host': '127.0.0.1'}");
	check("Authorization: Basic amNsaTo=", "Authorization: Basic [redacted]");
	check("Authorization: opaque123", "Authorization: [redacted]");
	/* header lines as a proxy echoes them */
	check("Host: x\r\nAuthorization: Bearer t0k\r\nAccept: */*",
	      "Host: x??Authorization: Bearer [redacted]??Accept: */*");
	check("Bearer", "Bearer");
	check("Bearer ", "Bearer ");
	check("xBearer abc", "xBearer abc"); /* not a word start */
}

static void test_keys(void **state)
{
	(void)state;
	check("access_token=abc&x=1", "access_token=[redacted]&x=1");
	check("{\"access_token\":\"abc\",\"refresh_token\": \"def\",\"expires_in\":300}",
	      "{\"access_token\":\"[redacted]\",\"refresh_token\": \"[redacted]\",\"expires_in\":300}");
	check("<refresh_token>r1</refresh_token>", "<refresh_token>[redacted]</refresh_token>");
	check("password = hunter2, user = u", "password = [redacted], user = u");
	check("ID_TOKEN: zz", "ID_TOKEN: [redacted]");
	check("x.access_token=abc", "x.access_token=[redacted]");
	check("token=t client_secret=s auth_token=a",
	      "token=[redacted] client_secret=[redacted] auth_token=[redacted]");
	check("access_token=", "access_token=");
	check("my_access_token=abc", "my_access_token=abc"); /* not a word start */
}

static void test_runs(void **state)
{
	(void)state;
	check("token " JWT " refused", "token [redacted] refused");
	check("x " JWT, "x [redacted]");
	check("eyJa.b.c", "[redacted]");                  /* JWT shape, however short */
	check("eyJa.b", "eyJa.b");                        /* two segments: not a JWT */
	check("eyJa..c", "eyJa..c");                      /* empty segment */
	/* 31 characters kept, 32 hidden */
	check("k 0123456789abcdef0123456789abcde k", "k 0123456789abcdef0123456789abcde k");
	check("k 0123456789abcdef0123456789abcdef k", "k [redacted] k");
	check("(d41d8cd98f00b204e9800998ecf8427e)", "([redacted])");
	check("b+c=d-e_f0123456789ABCDEFGHIJKLMNOPQ", "[redacted]");  /* base64 '+', '=' too */
	/* '/' separates runs: paths stay readable, long pieces do not */
	check("NoSuchPathException: /56dc8df5e86ff7dee1d0e67a/Jotta/Archive/some/dir/f.txt",
	      "NoSuchPathException: /56dc8df5e86ff7dee1d0e67a/Jotta/Archive/some/dir/f.txt");
	check("/files/v1/upload/0123456789abcdef0123456789abcdef/x",
	      "/files/v1/upload/[redacted]/x");
	check("Bearer ab/cd+ef==", "Bearer [redacted]");  /* a value after Bearer: whole */
	check("name.0123456789abcdef0123456789abcdef.txt", "[redacted]");
	/* a login token (base64url JSON, unpadded) */
	check("login eyJ1c2VybmFtZSI6InUiLCJhdXRoX3Rva2VuIjoicyJ9 failed",
	      "login [redacted] failed");
}

static void test_mask(void **state)
{
	(void)state;
	check("a\x1b[31mred\x7f\xc3\xa6", "a?[31mred???");
	char in[] = { 'a', '\0', 'b' };
	char out[16];
	assert_string_equal(redact_text(in, sizeof(in), out, sizeof(out)), "a?b");
}

static void test_cap(void **state)
{
	(void)state;
	char out[16];
	assert_string_equal(redact_str("0123456789abcdefghij", out, sizeof(out)),
			    "0123456789ab...");
	assert_string_equal(redact_str("0123456789abcde", out, sizeof(out)), "0123456789abcde");
	/* a token across the cap is judged on the whole text: nothing of it shows */
	assert_string_equal(redact_str("0123456 " JWT, out, sizeof(out)), "0123456 [red...");
	assert_string_equal(redact_str("Bearer abcdefghijklmnopqrstuvwxyz", out, sizeof(out)),
			    "Bearer [reda...");
	char big[4096];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_string_equal(redact_str(big, out, sizeof(out)), "[redacted]");
	char tiny[3];
	assert_string_equal(redact_str("abcdef", tiny, sizeof(tiny)), "ab");
	char one[1];
	assert_string_equal(redact_str("abcdef", one, sizeof(one)), "");
	/* the input's length is honoured: no read past it */
	assert_string_equal(redact_text("Bearer abc", 7, out, sizeof(out)), "Bearer ");
}

static void test_is_token(void **state)
{
	(void)state;
	assert_true(redact_is_token(JWT, strlen(JWT)));
	assert_true(redact_is_token("0123456789abcdef0123456789abcdef", 32));
	assert_false(redact_is_token("0123456789abcdef0123456789abcde", 31));
	assert_false(redact_is_token("upload", 6));
	assert_false(redact_is_token("", 0));
	assert_false(redact_is_token(NULL, 0));
	/* only when all of it is the token */
	assert_false(redact_is_token("x " JWT, strlen(JWT) + 2));
	assert_false(redact_is_token(JWT "/x", strlen(JWT) + 2));
	/* the length bounds it */
	assert_true(redact_is_token(JWT "/x", strlen(JWT)));
}

UNIT_TEST_PROGRAM(NULL, NULL,
	cmocka_unit_test(test_plain_text_kept),
	cmocka_unit_test(test_bearer),
	cmocka_unit_test(test_keys),
	cmocka_unit_test(test_runs),
	cmocka_unit_test(test_mask),
	cmocka_unit_test(test_cap),
	cmocka_unit_test(test_is_token),
)
