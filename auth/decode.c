/*
 * auth/decode.c — the pure decoders of auth.h: the personal
 * login token, the token endpoint's answers (tokens, OAuth errors) and the
 * OIDC discovery document. No I/O, no globals.
 */
#include "auth/auth.h"
#include "auth/auth_int.h"

#include "lib/log.h"
#include "lib/privdir.h"
#include "lib/redact.h"
#include "lib/secret.h"
#include "lib/xstr.h"
#include "net/http.h"
#include "net/jfs_json.h"
#include "net/url.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------- */
/* Login token                                                            */

void auth_login_token_release(struct auth_login_token *t)
{
	if (!t)
		return;
	free(t->username);
	free(t->realm);
	free(t->well_known_link);
	free_secret(t->auth_token);
	memset(t, 0, sizeof(*t));
}

int auth_login_token_decode(const char *text, struct auth_login_token *out, char **why)
{
	memset(out, 0, sizeof(*out));
	if (why)
		*why = NULL;
#define FAIL(...)                                          \
	do {                                               \
		if (why)                                   \
			*why = xasprintf(__VA_ARGS__);     \
		goto fail;                                 \
	} while (0)
	char *b64 = NULL;
	unsigned char *raw = NULL;
	size_t rawcap = 0;
	cJSON *j = NULL;

	while (*text && isspace((unsigned char)*text))
		text++;
	size_t n = strlen(text);
	while (n > 0 && isspace((unsigned char)text[n - 1]))
		n--;
	if (n == 0)
		FAIL("it is empty");
	if (n > AUTH_LOGIN_TOKEN_MAX)
		FAIL("it is too long (%zu characters)", n);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)text[i];
		if (isascii(ch) && (isalnum(ch) || ch == '-' || ch == '_'))
			continue;
		if (ch == '=')
			FAIL("it has '=' padding, which a personal login token never has");
		if (ch == '+' || ch == '/')
			FAIL("it uses the base64 character '%c' instead of base64url", ch);
		if (isspace(ch))
			FAIL("it contains white space (was it cut in pieces?)");
		FAIL("it contains a character that is not base64url (byte %u at offset %zu)",
		     (unsigned)ch, i);
	}
	if (n % 4 == 1)
		FAIL("its length (%zu characters) is impossible for base64url (truncated?)", n);

	/* Translate to the standard alphabet with padding for EVP_DecodeBlock. */
	size_t pad = (4 - n % 4) % 4;
	b64 = malloc(n + pad + 1);
	rawcap = (n + pad) / 4 * 3 + 1;
	raw = malloc(rawcap);
	if (!b64 || !raw)
		FAIL("out of memory");
	for (size_t i = 0; i < n; i++)
		b64[i] = text[i] == '-' ? '+' : text[i] == '_' ? '/' : text[i];
	memset(b64 + n, '=', pad);
	b64[n + pad] = '\0';
	int len = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)(n + pad));
	if (len < 0)
		FAIL("it is not valid base64url");
	len -= (int)pad; /* EVP_DecodeBlock counts the padding as zero bytes */
	j = cJSON_ParseWithLength((const char *)raw, (size_t)len);
	if (!j || !cJSON_IsObject(j))
		FAIL("it does not decode to a JSON object");
	out->username = auth_json_str(j, "username");
	out->auth_token = auth_json_str(j, "auth_token");
	out->well_known_link = auth_json_str(j, "well_known_link");
	if (!out->well_known_link)
		out->well_known_link = auth_json_str(j, "wellKnownLink");
	out->realm = auth_json_str(j, "realm");
	if (!out->realm)
		out->realm = strdup("");
	if (!out->username)
		FAIL("the field 'username' is missing");
	if (!out->auth_token)
		FAIL("the field 'auth_token' is missing");
	if (!out->well_known_link)
		FAIL("the field 'well_known_link' is missing");
	if (url_check(out->well_known_link) == URL_REFUSED)
		FAIL("the field 'well_known_link' is not an http(s) URL");
	if (!out->realm)
		FAIL("out of memory");
	auth_json_wipe_secrets(j);
	cJSON_Delete(j);
	explicit_bzero(raw, rawcap);
	explicit_bzero(b64, n + pad);
	free(raw);
	free(b64);
	return 0;
fail:
	auth_json_wipe_secrets(j);
	cJSON_Delete(j);
	if (raw)
		explicit_bzero(raw, rawcap);
	if (b64)
		explicit_bzero(b64, strlen(b64));
	free(raw);
	free(b64);
	auth_login_token_release(out);
	return -EINVAL;
#undef FAIL
}

/* ---------------------------------------------------------------------- */
/* Token endpoint                                                          */

int auth_token_response_decode(const char *body, size_t len, const char *old_refresh,
			       time_t now, struct auth_tokens *t)
{
	memset(t, 0, sizeof(*t));
	cJSON *j = body ? cJSON_ParseWithLength(body, len) : NULL;
	if (!j || !cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return -EIO;
	}
	int err = -EIO;
	t->access = auth_json_str(j, "access_token");
	t->refresh = auth_json_str(j, "refresh_token");
	if (!t->refresh && old_refresh) {
		t->refresh = strdup(old_refresh);
		if (!t->refresh)
			err = -ENOMEM;
	}
	/* a lifetime out of range (or a numeric string that overflows) is
	 * ignored: 3600 is what the service gives */
	long expires_in = 3600;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "expires_in");
	if (cJSON_IsNumber(e) && e->valuedouble >= 1 && e->valuedouble <= AUTH_LIFETIME_MAX) {
		expires_in = (long)e->valuedouble;
	} else if (cJSON_IsString(e) && e->valuestring) {
		char *end;
		errno = 0;
		long v = strtol(e->valuestring, &end, 10);
		if (!errno && end != e->valuestring && !*end && v >= 1 && v <= AUTH_LIFETIME_MAX)
			expires_in = v;
	}
	const cJSON *tt = cJSON_GetObjectItemCaseSensitive(j, "token_type");
	if (cJSON_IsString(tt) && tt->valuestring && strcasecmp(tt->valuestring, "bearer")) {
		char shown[33];
		log_warn("token endpoint returned token_type '%s'; using it as Bearer",
			 redact_str(tt->valuestring, shown, sizeof(shown)));
	}
	auth_json_wipe_secrets(j);
	cJSON_Delete(j);
	if (!t->access || !t->refresh) {
		auth_tokens_release(t);
		return err;
	}
	t->lifetime = expires_in;
	t->expiry = now + expires_in;
	return 0;
}

void auth_oauth_error_decode(const char *body, size_t len, char *err, size_t errsz, char *desc,
			     size_t descsz)
{
	err[0] = desc[0] = '\0';
	cJSON *j = body ? cJSON_ParseWithLength(body, len) : NULL;
	if (j && cJSON_IsObject(j)) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "error_description");
		/* the text goes into logs and user-facing messages: printable,
		 * capped, and nothing of a token a server may echo */
		if (cJSON_IsString(e) && e->valuestring)
			redact_str(e->valuestring, err, errsz);
		if (cJSON_IsString(d) && d->valuestring)
			redact_str(d->valuestring, desc, descsz);
	}
	cJSON_Delete(j);
}

/* ---------------------------------------------------------------------- */
/* Login                                                                  */

/* The URL member @name of the discovery document @j, malloc'd; NULL when
 * absent or refused by url_check() (*err -EIO) or on ENOMEM (*err -ENOMEM). */
static char *discovery_url(const cJSON *j, const char *name, int *err)
{
	const cJSON *v = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, name) : NULL;
	*err = -EIO;
	if (!cJSON_IsString(v) || !v->valuestring || url_check(v->valuestring) == URL_REFUSED)
		return NULL;
	char *u = strdup(v->valuestring);
	*err = u ? 0 : -ENOMEM;
	return u;
}

int auth_discovery_decode(const char *body, size_t len, char **token_endpoint)
{
	cJSON *j = body ? cJSON_ParseWithLength(body, len) : NULL;
	int err;
	*token_endpoint = discovery_url(j, "token_endpoint", &err);
	cJSON_Delete(j);
	return err;
}

int auth_discovery_endpoints_decode(const char *body, size_t len, char **authorization_endpoint,
				    char **token_endpoint)
{
	cJSON *j = body ? cJSON_ParseWithLength(body, len) : NULL;
	int err, err2;
	*authorization_endpoint = discovery_url(j, "authorization_endpoint", &err);
	*token_endpoint = discovery_url(j, "token_endpoint", &err2);
	cJSON_Delete(j);
	if (err == 0 && err2 == 0)
		return 0;
	free(*authorization_endpoint);
	free(*token_endpoint);
	*authorization_endpoint = *token_endpoint = NULL;
	return err == -ENOMEM || err2 == -ENOMEM ? -ENOMEM : -EIO;
}
