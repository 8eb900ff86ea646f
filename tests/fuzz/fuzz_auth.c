/*
 * tests/fuzz/fuzz_auth.c — libFuzzer target for the decoders of auth/auth:
 * the personal login token, the token endpoint's answer, its OAuth error
 * body, the OIDC discovery document and the account file.
 *
 * The input goes to every decoder with its exact length (the login token,
 * which is a C string, gets a NUL-terminated copy cut at the first NUL):
 *   login token  as given, and base64url-encoded here first (so that the
 *                fuzzer mutates the JSON inside a well-formed token): on
 *                success every field is set and url_check() takes the
 *                link; on
 *                failure every field is NULL and the reason never quotes
 *                the token;
 *   token answer with and without a refresh token to keep: access and
 *                refresh tokens set, 1 <= lifetime <= AUTH_LIFETIME_MAX and
 *                expiry = now + lifetime; else -EIO and nothing kept;
 *   OAuth error  NUL-terminated, printable, cut to the buffer (also 1 byte);
 *   discovery    a token endpoint url_check() takes, or -EIO;
 *   account file non-empty strings, expiry and lifetime within [0, 2^53].
 * Memory safety and leaks (of the secrets too) are ASan's job; undefined
 * conversions of server numbers UBSan's.
 *
 * Build: make fuzz
 * Run:   build-fuzz/fuzz/fuzz_auth -dict=tests/fuzz/auth.dict -max_total_time=60 \
 *          /tmp/corpus-auth tests/fuzz/auth_seeds
 */
#include "fuzz.h"
#include "auth/auth.h"
#include "lib/log.h"
#include "net/url.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW ((time_t)1795443404)
#define EXACT_MAX 9007199254740992LL     /* 2^53 */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* the token_type warning would flood the run */
	log_setup(LOG_LVL_ERR, false);
	return 0;
}

static void check_login_token(const char *text)
{
	struct auth_login_token t;
	char *why = (char *)"untouched";
	int rc = auth_login_token_decode(text, &t, &why);
	if (rc == 0) {
		CHECK(why == NULL);
		CHECK(t.username && t.username[0] && t.auth_token && t.auth_token[0]);
		CHECK(t.realm && t.well_known_link);
		CHECK(url_check(t.well_known_link) != URL_REFUSED);
		auth_login_token_release(&t);
		CHECK(!t.username && !t.realm && !t.well_known_link && !t.auth_token);
		return;
	}
	CHECK(rc == -EINVAL);
	CHECK(!t.username && !t.realm && !t.well_known_link && !t.auth_token);
	if (why) {
		/* the reason is for the terminal: never the token itself (a
		 * text with other characters may be a reason's own words) */
		static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					       "0123456789-_";
		size_t n = strlen(text);
		if (n >= 12 && strspn(text, alphabet) == n)
			CHECK(strstr(why, text) == NULL);
		free(why);
	}
}

/* The input as a personal login token: unpadded base64url. */
static char *as_login_token(const uint8_t *data, size_t size)
{
	if (size > 12000)
		return NULL;
	char *b64 = malloc(size / 3 * 4 + 5);
	CHECK(b64 != NULL);
	int n = EVP_EncodeBlock((unsigned char *)b64, data, (int)size);
	CHECK(n >= 0);
	while (n > 0 && b64[n - 1] == '=')
		n--;
	b64[n] = '\0';
	for (int i = 0; i < n; i++)
		b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	return b64;
}

static void check_tokens_zero(const struct auth_tokens *t)
{
	CHECK(!t->access && !t->refresh && !t->expiry && !t->lifetime);
}

static void check_token_answer(const char *body, size_t len, const char *old_refresh)
{
	struct auth_tokens t;
	int rc = auth_token_response_decode(body, len, old_refresh, NOW, &t);
	if (rc < 0) {
		CHECK(rc == -EIO || rc == -ENOMEM);
		check_tokens_zero(&t);
		return;
	}
	CHECK(rc == 0);
	CHECK(t.access && t.access[0] && t.refresh && t.refresh[0]);
	CHECK(t.lifetime >= 1 && t.lifetime <= AUTH_LIFETIME_MAX);
	CHECK(t.expiry == NOW + t.lifetime);
	auth_tokens_release(&t);
	check_tokens_zero(&t);
}

static void check_printable(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);
	CHECK(n < cap);
	for (size_t i = 0; i < n; i++)
		CHECK(isprint((unsigned char)s[i]));
}

static void check_oauth_error(const char *body, size_t len)
{
	char e[64], d[160], e1[1], d1[1];
	auth_oauth_error_decode(body, len, e, sizeof(e), d, sizeof(d));
	check_printable(e, sizeof(e));
	check_printable(d, sizeof(d));
	auth_oauth_error_decode(body, len, e1, sizeof(e1), d1, sizeof(d1));
	CHECK(e1[0] == '\0' && d1[0] == '\0');
}

static void check_discovery(const char *body, size_t len)
{
	char *te = (char *)"untouched";
	int rc = auth_discovery_decode(body, len, &te);
	if (refused(rc, te))
		return;
	CHECK(rc == 0 && te);
	CHECK(url_check(te) != URL_REFUSED);
	free(te);
}

static void check_str(const char *s)
{
	CHECK(s == NULL || s[0] != '\0');
}

static void check_account(const char *text, size_t len)
{
	struct auth_account a;
	int rc = auth_account_decode(text, len, &a);
	if (rc < 0) {
		CHECK(rc == -EINVAL || rc == -ENOMEM);
		CHECK(!a.username && !a.api_url && !a.tokens.refresh && !a.tokens.access);
		return;
	}
	CHECK(rc == 0);
	check_str(a.username);
	check_str(a.login_user);
	check_str(a.api_url);
	check_str(a.jfs_url);
	check_str(a.token_url);
	check_str(a.cafile);
	check_str(a.client_id);
	check_str(a.tokens.access);
	check_str(a.tokens.refresh);
	if (!a.tokens.refresh)
		CHECK(!a.tokens.access);
	CHECK(a.tokens.expiry >= 0 && a.tokens.expiry <= EXACT_MAX);
	CHECK(a.tokens.lifetime >= 0 && a.tokens.lifetime <= EXACT_MAX);
	auth_account_release(&a);
	CHECK(!a.username && !a.tokens.refresh);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the body, without a terminator: ASan sees any over-read */
	char *body = malloc(size ? size : 1);
	CHECK(body != NULL);
	if (size)
		memcpy(body, data, size);

	char *text = strndup(body, size);
	CHECK(text != NULL);
	check_login_token(text);
	free(text);
	char *tok = as_login_token(data, size);
	if (tok) {
		check_login_token(tok);
		free(tok);
	}

	check_token_answer(body, size, NULL);
	check_token_answer(body, size, "old-refresh-token");
	check_oauth_error(body, size);
	check_discovery(body, size);
	check_account(body, size);
	free(body);
	return 0;
}
