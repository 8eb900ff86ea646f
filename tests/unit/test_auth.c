/*
 * tests/unit/test_auth.c — auth: login-token decoding vectors, account name
 * validation, the config directory, and login / store / refresh against a
 * fake OpenID provider (testsrv.h) that rotates refresh tokens and kills the
 * token family on reuse, like Keycloak. Threads and forked processes refresh
 * concurrently and must never trigger the reuse detection.
 */
#include "auth/auth.h"

#include "lib/log.h"
#include "net/http.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <unistd.h>

#include "unit.h"

#include "testsrv.h"

/* ---------------------------------------------------------------------- */
/* Token helpers                                                          */

/* base64 of @json: url-safe or standard alphabet, with or without padding. */
static char *encode(const char *json, bool urlsafe, bool pad)
{
	size_t n = strlen(json);
	char *out = malloc(n * 2 + 8);
	int len = EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)json, (int)n);
	out[len] = '\0';
	if (!pad)
		while (len > 0 && out[len - 1] == '=')
			out[--len] = '\0';
	if (urlsafe)
		for (char *p = out; *p; p++)
			*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	return out;
}

static char *login_token_for(const char *link, const char *secret)
{
	char json[1024];
	snprintf(json, sizeof(json),
		 "{\"username\":\"fake@example.com\",\"realm\":\"jottacloud\","
		 "\"well_known_link\":\"%s\",\"auth_token\":\"%s\"}", link, secret);
	return encode(json, true, false);
}

static void test_token_decode_valid(void **state)
{
	struct auth_login_token t;
	char *why = NULL;
	char *tok = login_token_for("https://id.example.com/auth/realms/jottacloud/.well-known/"
				    "openid-configuration", "s3cr3t");
	assert_null(strchr(tok, '='));
	assert_int_equal(auth_login_token_decode(tok, &t, &why), 0);
	assert_null(why);
	assert_string_equal(t.username, "fake@example.com");
	assert_string_equal(t.realm, "jottacloud");
	assert_string_equal(t.auth_token, "s3cr3t");
	assert_string_equal(t.well_known_link,
			    "https://id.example.com/auth/realms/jottacloud/.well-known/"
			    "openid-configuration");
	auth_login_token_release(&t);

	/* surrounding white space (a pasted line) is fine */
	char buf[2048];
	snprintf(buf, sizeof(buf), "  %s\r\n", tok);
	assert_int_equal(auth_login_token_decode(buf, &t, &why), 0);
	auth_login_token_release(&t);
	free(tok);

	/* the aeroftp spelling of the link, realm optional */
	tok = encode("{\"username\":\"u\",\"wellKnownLink\":\"http://127.0.0.1:1/x\","
		     "\"auth_token\":\"a\"}", true, false);
	assert_int_equal(auth_login_token_decode(tok, &t, &why), 0);
	assert_string_equal(t.well_known_link, "http://127.0.0.1:1/x");
	assert_string_equal(t.realm, "");
	auth_login_token_release(&t);
	free(tok);
}

/* Decoding fails with -EINVAL, a reason containing @needle, and never the secret. */
static void expect_bad(const char *tok, const char *needle)
{
	struct auth_login_token t;
	char *why = NULL;
	assert_int_equal(auth_login_token_decode(tok, &t, &why), -EINVAL);
	assert_non_null(why);
	if (!strstr(why, needle))
		fail_msg("reason '%s' lacks '%s'", why, needle);
	assert_null(strstr(why, "s3cr3t"));
	assert_null(t.auth_token);
	free(why);
}

/* expect_bad() of the token that encodes @json. */
static void expect_bad_json(const char *json, const char *needle)
{
	char *tok = encode(json, true, false);
	expect_bad(tok, needle);
	free(tok);
}

static void test_token_decode_invalid(void **state)
{
	const char *good = "{\"username\":\"u\",\"realm\":\"r\",\"well_known_link\":"
			   "\"https://x/y\",\"auth_token\":\"s3cr3t~~~~~~~~~\"}";
	char *tok;

	/* padded */
	tok = encode(good, true, true);
	assert_non_null(strchr(tok, '='));
	expect_bad(tok, "'='");
	free(tok);

	/* the standard alphabet (the nine '~' make a '+' appear) */
	tok = encode(good, false, false);
	assert_true(strchr(tok, '+') || strchr(tok, '/'));
	expect_bad(tok, "base64");
	free(tok);

	/* impossible length, junk, empty, cut in two */
	tok = encode(good, true, false);
	size_t n = strlen(tok);
	while (n % 4 != 1)
		n--;
	tok[n] = '\0';
	expect_bad(tok, "length");
	free(tok);
	expect_bad("abc$def", "not base64url");
	expect_bad("   \n", "empty");
	expect_bad("eyJ1c2Vy bmFtZSI6", "white space");

	/* not JSON, not an object */
	expect_bad_json("hello, world", "JSON");
	expect_bad_json("[\"username\"]", "JSON");

	/* fields missing */
	expect_bad_json("{\"realm\":\"r\",\"well_known_link\":\"https://x/y\",\"auth_token\":\"s3cr3t\"}",
			"username");
	expect_bad_json("{\"username\":\"u\",\"well_known_link\":\"https://x/y\"}", "auth_token");
	expect_bad_json("{\"username\":\"u\",\"auth_token\":\"s3cr3t\"}", "well_known_link");
	expect_bad_json("{\"username\":\"u\",\"auth_token\":\"s3cr3t\",\"well_known_link\":\"file:///x\"}",
			"well_known_link");
	expect_bad_json("{\"username\":7,\"auth_token\":\"s3cr3t\",\"well_known_link\":\"https://x\"}",
			"username");
}

static void test_account_name(void **state)
{
	assert_int_equal(auth_account_name_valid("default"), 0);
	assert_int_equal(auth_account_name_valid("work-2"), 0);
	assert_int_equal(auth_account_name_valid("a.b_c"), 0);
	assert_int_equal(auth_account_name_valid("A9"), 0);
	char name[80];
	memset(name, 'a', 64);
	name[64] = '\0';
	assert_int_equal(auth_account_name_valid(name), 0);
	name[64] = 'a';
	name[65] = '\0';
	assert_int_equal(auth_account_name_valid(name), -EINVAL);
	static const char *const bad[] = {
		"", ".hidden", "..", "a/b", "a b", "x\n", "\xc3\xa6", "a:b", "../x", NULL,
	};
	for (int i = 0; bad[i]; i++)
		assert_int_equal(auth_account_name_valid(bad[i]), -EINVAL);
	assert_int_equal(auth_account_name_valid(NULL), -EINVAL);
}

static void test_config_dir(void **state)
{
	char *d = NULL;
	setenv("XDG_CONFIG_HOME", "/xdg/conf", 1);
	assert_int_equal(auth_config_dir(&d), 0);
	assert_string_equal(d, "/xdg/conf/jottafs");
	free(d);
	setenv("XDG_CONFIG_HOME", "relative/ignored", 1); /* the spec says: ignore */
	setenv("HOME", "/home/someone", 1);
	assert_int_equal(auth_config_dir(&d), 0);
	assert_string_equal(d, "/home/someone/.config/jottafs");
	free(d);
	unsetenv("XDG_CONFIG_HOME");
	assert_int_equal(auth_config_dir(&d), 0);
	assert_string_equal(d, "/home/someone/.config/jottafs");
	free(d);
}

/* ---------------------------------------------------------------------- */
/* A fake OpenID provider + customer API                                  */

#define MAX_GEN 4096
struct provider {
	struct testsrv *srv;
	char secret[64];          /* the login token's single-use secret */
	bool secret_used;
	long expires_in;
	bool require_basic;       /* refuse body client_id with 401 unauthorized_client */
	/* one token family: generation n has refresh "R<n>" and access "A<n>" */
	int gen;
	bool family_dead;
	bool revoke_access;       /* answer 401 to every API call */
	int password_grants;
	int refreshes;
	int reuse_detected;
	int basic_seen;
	int api_calls;
	int fail_refresh_status;  /* answer refreshes with this status (0: normal) */
	const char *token_endpoint; /* discovery names this one (NULL: ours) */
	int discoveries;          /* discovery documents served */
};

/* Value of form field @key in @body (percent-decoded into @out). */
static bool form_get(const char *body, const char *key, char *out, size_t outsz)
{
	size_t klen = strlen(key);
	for (const char *p = body; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
		if (strncmp(p, key, klen) || p[klen] != '=')
			continue;
		const char *v = p + klen + 1;
		size_t o = 0;
		while (*v && *v != '&' && o + 1 < outsz) {
			if (*v == '%' && v[1] && v[2]) {
				char hex[3] = { v[1], v[2], 0 };
				out[o++] = (char)strtol(hex, NULL, 16);
				v += 3;
			} else {
				out[o++] = *v == '+' ? ' ' : *v;
				v++;
			}
		}
		out[o] = '\0';
		return true;
	}
	return false;
}

static void json_answer(struct testsrv_resp *rs, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void json_answer(struct testsrv_resp *rs, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rs->buf, sizeof(rs->buf), fmt, ap);
	va_end(ap);
	rs->status = status;
	rs->body = rs->buf;
	snprintf(rs->headers, sizeof(rs->headers), "Content-Type: application/json\r\n");
}

static void issue(struct provider *p, struct testsrv_resp *rs)
{
	p->gen++;
	json_answer(rs, 200,
		    "{\"access_token\":\"A%d\",\"refresh_token\":\"R%d\",\"token_type\":\"bearer\","
		    "\"expires_in\":%ld,\"refresh_expires_in\":0,\"scope\":\"openid offline_access\"}",
		    p->gen, p->gen, p->expires_in);
}

static void provider_handler(void *ctx, const struct testsrv_req *rq, struct testsrv_resp *rs)
{
	struct provider *p = ctx;
	char v[256], cid[64];
	if (!strcmp(rq->path, "/auth/realms/jottacloud/.well-known/openid-configuration")) {
		p->discoveries++;
		if (p->token_endpoint) {
			json_answer(rs, 200, "{\"token_endpoint\":\"%s\"}", p->token_endpoint);
			return;
		}
		json_answer(rs, 200, "{\"issuer\":\"%s/auth/realms/jottacloud\",\"token_endpoint\":"
			    "\"%s/auth/realms/jottacloud/protocol/openid-connect/token\"}",
			    p->srv->url, p->srv->url);
		return;
	}
	if (!strcmp(rq->path, "/auth/realms/jottacloud/protocol/openid-connect/token")) {
		bool basic = strstr(rq->head, "Authorization: Basic am90dGFjbGk6\r\n") != NULL;
		bool body_id = form_get(rq->body, "client_id", cid, sizeof(cid)) &&
			       !strcmp(cid, "jottacli");
		if (basic)
			p->basic_seen++;
		if (!form_get(rq->body, "grant_type", v, sizeof(v))) {
			json_answer(rs, 400, "{\"error\":\"invalid_request\"}");
			return;
		}
		if (!strcmp(v, "password")) {
			char pw[128], scope[128], user[128];
			if (!body_id || !form_get(rq->body, "password", pw, sizeof(pw)) ||
			    !form_get(rq->body, "scope", scope, sizeof(scope)) ||
			    !form_get(rq->body, "username", user, sizeof(user)) ||
			    strcmp(scope, "openid offline_access") || strcmp(user, "fake@example.com")) {
				json_answer(rs, 400, "{\"error\":\"invalid_request\"}");
				return;
			}
			if (strcmp(pw, p->secret) || p->secret_used) {
				json_answer(rs, 400, "{\"error\":\"invalid_grant\","
					    "\"error_description\":\"Invalid user credentials\"}");
				return;
			}
			p->secret_used = true;
			p->password_grants++;
			p->gen = 0;
			p->family_dead = false;
			issue(p, rs);
			return;
		}
		if (!strcmp(v, "refresh_token")) {
			if (p->require_basic && !basic) {
				json_answer(rs, 401, "{\"error\":\"unauthorized_client\"}");
				return;
			}
			if (!basic && !body_id) {
				json_answer(rs, 401, "{\"error\":\"invalid_client\"}");
				return;
			}
			if (p->fail_refresh_status) {
				json_answer(rs, p->fail_refresh_status, "{\"error\":\"temporarily\"}");
				return;
			}
			char rt[64], want[64];
			form_get(rq->body, "refresh_token", rt, sizeof(rt));
			snprintf(want, sizeof(want), "R%d", p->gen);
			if (p->family_dead) {
				json_answer(rs, 400, "{\"error\":\"invalid_grant\","
					    "\"error_description\":\"Session not active\"}");
				return;
			}
			if (strcmp(rt, want)) {
				/* reuse of a rotated token: the whole family dies */
				p->reuse_detected++;
				p->family_dead = true;
				json_answer(rs, 400, "{\"error\":\"invalid_grant\","
					    "\"error_description\":\"Session doesn't have required client\"}");
				return;
			}
			p->refreshes++;
			issue(p, rs);
			return;
		}
		json_answer(rs, 400, "{\"error\":\"unsupported_grant_type\"}");
		return;
	}
	/* API calls: only the newest access token is accepted */
	char want[80];
	snprintf(want, sizeof(want), "Authorization: Bearer A%d\r\n", p->gen);
	bool ok = strstr(rq->head, want) && !p->family_dead && !p->revoke_access;
	p->api_calls++;
	if (!strcmp(rq->path, "/account/v1/customer")) {
		if (ok)
			json_answer(rs, 200, "{\"username\":\"internaluser0123\",\"email\":"
				    "\"fake@example.com\"}");
		else
			json_answer(rs, 401, "{\"code\":401,\"message\":\"Unauthorized\"}");
		return;
	}
	if (!strcmp(rq->path, "/api/check")) {
		json_answer(rs, ok ? 200 : 401, "{}");
		return;
	}
	json_answer(rs, 404, "{}");
}

struct fixture {
	struct provider p;
	struct http_client *http;
	char dir[256];            /* temp root */
	char cfg[300];            /* config dir (created by login) */
	char api[128];
	struct auth_endpoints ep;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->p.secret, sizeof(f->p.secret), "single-use-secret");
	f->p.expires_in = 3600;
	f->p.srv = testsrv_start(provider_handler, &f->p);
	assert_non_null(f->p.srv);
	struct http_config cfg = { .backoff_min_ms = 1, .backoff_max_ms = 5, .max_retries = 2 };
	assert_int_equal(http_client_new(&cfg, &f->http), 0);
	unit_tmpdir(f->dir, sizeof(f->dir), "jottafs-test-auth");
	snprintf(f->cfg, sizeof(f->cfg), "%s/conf/jottafs", f->dir);
	snprintf(f->api, sizeof(f->api), "%s", f->p.srv->url);
	f->ep.api_url = f->api;
	f->ep.jfs_url = f->api; /* not used by auth */
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	http_client_free(f->http);
	testsrv_stop(f->p.srv);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", f->dir);
	free(f);
	return 0;
}

static void do_login(struct fixture *f, const char *account)
{
	char link[256];
	snprintf(link, sizeof(link), "%s/auth/realms/jottacloud/.well-known/openid-configuration",
		 f->p.srv->url);
	char *tok = login_token_for(link, f->p.secret);
	char *msg = NULL;
	int err = auth_login(f->http, f->cfg, account, tok, &f->ep, &msg);
	if (err)
		fail_msg("login failed: %d %s", err, msg ? msg : "");
	assert_null(msg);
	free(tok);
}

static cJSON *read_account(struct fixture *f, const char *account)
{
	char path[512], buf[8192];
	snprintf(path, sizeof(path), "%s/%s.json", f->cfg, account);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
	cJSON *j = cJSON_Parse(buf);
	assert_non_null(j);
	return j;
}

static const char *jstr(const cJSON *j, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
	return cJSON_IsString(v) ? v->valuestring : "(missing)";
}

static void test_login_and_store(void **state)
{
	struct fixture *f = *state;
	do_login(f, "default");
	assert_int_equal(f->p.password_grants, 1);

	struct stat st;
	assert_int_equal(stat(f->cfg, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	char path[512];
	snprintf(path, sizeof(path), "%s/default.json", f->cfg);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_true(S_ISREG(st.st_mode));

	/* nothing else (no temp file) in the directory */
	DIR *d = opendir(f->cfg);
	struct dirent *de;
	int entries = 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			entries++;
	closedir(d);
	assert_int_equal(entries, 1);

	cJSON *j = read_account(f, "default");
	assert_string_equal(jstr(j, "username"), "internaluser0123");
	assert_string_equal(jstr(j, "login_user"), "fake@example.com");
	assert_string_equal(jstr(j, "refresh_token"), "R1");
	assert_string_equal(jstr(j, "access_token"), "A1");
	assert_string_equal(jstr(j, "api_url"), f->api);
	assert_string_equal(jstr(j, "client_id"), "jottacli");
	assert_non_null(strstr(jstr(j, "token_url"), "/protocol/openid-connect/token"));
	cJSON_Delete(j);

	/* round trip through auth_open */
	struct auth *a = NULL;
	char *msg = NULL;
	assert_int_equal(auth_open(f->http, f->cfg, "default", NULL, &a, &msg), 0);
	assert_string_equal(auth_username(a), "internaluser0123");
	assert_string_equal(auth_api_url(a), f->api);
	assert_string_equal(auth_login_user(a), "fake@example.com");
	assert_null(auth_cafile(a));
	assert_false(auth_is_dead(a));
	auth_free(a);

	/* overrides are not persisted */
	struct auth_endpoints ov = { .api_url = "https://override.invalid/" };
	assert_int_equal(auth_open(f->http, f->cfg, "default", &ov, &a, &msg), 0);
	assert_string_equal(auth_api_url(a), "https://override.invalid");
	auth_free(a);
	j = read_account(f, "default");
	assert_string_equal(jstr(j, "api_url"), f->api);
	cJSON_Delete(j);

	/* logout */
	assert_int_equal(auth_logout(f->cfg, "default"), 0);
	assert_int_equal(auth_logout(f->cfg, "default"), -ENOENT);
	assert_int_equal(auth_open(f->http, f->cfg, "default", NULL, &a, &msg), -ENOENT);
	assert_non_null(strstr(msg, "jottafs login"));
	free(msg);
}

static void test_login_errors(void **state)
{
	struct fixture *f = *state;
	char *msg = NULL;
	char link[256];

	/* malformed */
	assert_int_equal(auth_login(f->http, f->cfg, "default", "not a token", &f->ep, &msg),
			 -EINVAL);
	assert_non_null(strstr(msg, "malformed"));
	assert_non_null(strstr(msg, "jottafs login"));
	free(msg);

	/* already used */
	do_login(f, "default");
	snprintf(link, sizeof(link), "%s/auth/realms/jottacloud/.well-known/openid-configuration",
		 f->p.srv->url);
	char *tok = login_token_for(link, f->p.secret);
	assert_int_equal(auth_login(f->http, f->cfg, "other", tok, &f->ep, &msg), -EKEYREJECTED);
	assert_non_null(strstr(msg, "already been used"));
	assert_non_null(strstr(msg, "jottafs login"));
	assert_null(strstr(msg, f->p.secret));
	free(msg);
	free(tok);

	/* unreachable */
	snprintf(link, sizeof(link), "http://127.0.0.1:%d/.well-known/openid-configuration",
		 testsrv_dead_port());
	tok = login_token_for(link, "x");
	assert_int_equal(auth_login(f->http, f->cfg, "other", tok, &f->ep, &msg), -ECONNREFUSED);
	assert_non_null(strstr(msg, "cannot reach http://127.0.0.1:"));
	free(msg);
	free(tok);

	/* bad account name */
	assert_int_equal(auth_login(f->http, f->cfg, "../evil", "x", &f->ep, &msg), -EINVAL);
	assert_non_null(strstr(msg, "account name"));
	free(msg);

	/* a damaged account file */
	char path[512];
	snprintf(path, sizeof(path), "%s/broken.json", f->cfg);
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_int_equal(write(fd, "{not json", 9), 9);
	close(fd);
	struct auth *a = NULL;
	assert_int_equal(auth_open(f->http, f->cfg, "broken", NULL, &a, &msg), -EINVAL);
	assert_non_null(strstr(msg, "jottafs login --account broken"));
	free(msg);
}

/* Plain http:// only to loopback hosts, or with insecure_http; never from a
 * login token's discovery link or the token endpoint its document names
 * (issue 14). Every refusal comes before anything is sent: the hosts here
 * are never resolved or connected to. */
static void test_plain_http_policy(void **state)
{
	struct fixture *f = *state;
	char *msg = NULL, link[256];
	struct auth *a = NULL;
	struct http_client *insecure = NULL;
	struct http_config icfg = { .backoff_min_ms = 1, .backoff_max_ms = 5, .max_retries = 2,
				    .insecure_http = true };
	assert_int_equal(http_client_new(&icfg, &insecure), 0);
	assert_false(http_client_insecure_http(f->http));
	assert_true(http_client_insecure_http(insecure));

	/* an endpoint option: refused without the flag, before any request */
	snprintf(link, sizeof(link), "%s/auth/realms/jottacloud/.well-known/openid-configuration",
		 f->p.srv->url);
	char *tok = login_token_for(link, f->p.secret);
	struct auth_endpoints ep = f->ep;
	ep.jfs_url = "http://192.0.2.1/jfs";
	assert_int_equal(auth_login(f->http, f->cfg, "default", tok, &ep, &msg), -EPERM);
	assert_non_null(strstr(msg, "plain-http jfs_url 'http://192.0.2.1'"));
	assert_non_null(strstr(msg, "-o insecure_http"));
	assert_int_equal(f->p.discoveries, 0);
	free(msg);
	msg = NULL;
	ep.jfs_url = "jfs.example.com";
	assert_int_equal(auth_login(insecure, f->cfg, "default", tok, &ep, &msg), -EINVAL);
	assert_non_null(strstr(msg, "jfs_url given with -o jfs_url is not a usable"));
	free(msg);
	msg = NULL;
	/* with the flag the login goes through (jfs_url is only stored) */
	ep.jfs_url = "http://192.0.2.1/jfs";
	assert_int_equal(auth_login(insecure, f->cfg, "default", tok, &ep, &msg), 0);
	assert_null(msg);
	free(tok);

	/* the stored plain-http jfs_url needs the flag again at every open */
	assert_int_equal(auth_open(f->http, f->cfg, "default", NULL, &a, &msg), -EPERM);
	assert_null(a);
	assert_non_null(strstr(msg, "stored in '"));
	assert_non_null(strstr(msg, "-o insecure_http"));
	free(msg);
	msg = NULL;
	assert_int_equal(auth_open(insecure, f->cfg, "default", NULL, &a, &msg), 0);
	assert_string_equal(auth_jfs_url(a), "http://192.0.2.1/jfs");
	auth_free(a);
	/* an https or loopback override is fine without the flag */
	struct auth_endpoints ov = { .jfs_url = "http://localhost:1/jfs" };
	assert_int_equal(auth_open(f->http, f->cfg, "default", &ov, &a, &msg), 0);
	auth_free(a);
	ov.jfs_url = "http://[::1]:1/jfs";
	assert_int_equal(auth_open(f->http, f->cfg, "default", &ov, &a, &msg), 0);
	auth_free(a);
	ov.jfs_url = "http://127.1/jfs"; /* not a literal loopback address */
	assert_int_equal(auth_open(f->http, f->cfg, "default", &ov, &a, &msg), -EPERM);
	assert_non_null(strstr(msg, "given with -o jfs_url"));
	free(msg);
	msg = NULL;

	/* the login token's discovery link: never plain http elsewhere, flag or not */
	tok = login_token_for("http://192.0.2.1/auth/realms/jottacloud/.well-known/"
			      "openid-configuration", "s");
	assert_int_equal(auth_login(insecure, f->cfg, "other", tok, &f->ep, &msg), -EPERM);
	assert_non_null(strstr(msg, "discovery link 'http://192.0.2.1'"));
	assert_non_null(strstr(msg, "does not apply"));
	free(msg);
	msg = NULL;
	free(tok);

	/* the token endpoint a discovery document names: the same */
	f->p.token_endpoint = "http://192.0.2.1/token";
	int discoveries = f->p.discoveries;
	tok = login_token_for(link, f->p.secret);
	assert_int_equal(auth_login(insecure, f->cfg, "other", tok, &f->ep, &msg), -EPERM);
	assert_int_equal(f->p.discoveries, discoveries + 1);
	assert_non_null(strstr(msg, "token_endpoint"));
	assert_non_null(strstr(msg, "'http://192.0.2.1'"));
	free(msg);
	msg = NULL;
	f->p.token_endpoint = NULL;
	free(tok);
	http_client_free(insecure);
}

static int get(struct auth *a, bool force, char *out, size_t outsz)
{
	struct http_token_provider tp;
	auth_token_provider(a, &tp);
	char *t = NULL;
	int err = tp.get_token(tp.ctx, force, &t);
	if (!err) {
		snprintf(out, outsz, "%s", t);
		free(t);
	}
	return err;
}

/* Log in as "default", turn on the provider's @flag (NULL: none), then
 * open its auth: both succeed */
static struct auth *open_default(struct fixture *f, bool *flag)
{
	struct auth *a = NULL;

	do_login(f, "default");
	if (flag)
		*flag = true;
	assert_int_equal(auth_open(f->http, f->cfg, "default", NULL, &a, NULL), 0);
	return a;
}

static void test_refresh_and_persist(void **state)
{
	struct fixture *f = *state;
	char tok[64];
	struct auth *a = open_default(f, NULL);

	/* fresh: no refresh */
	assert_int_equal(get(a, false, tok, sizeof(tok)), 0);
	assert_string_equal(tok, "A1");
	assert_int_equal(f->p.refreshes, 0);

	/* forced: rotate, and the file has the new tokens */
	assert_int_equal(get(a, true, tok, sizeof(tok)), 0);
	assert_string_equal(tok, "A2");
	assert_int_equal(f->p.refreshes, 1);
	cJSON *j = read_account(f, "default");
	assert_string_equal(jstr(j, "refresh_token"), "R2");
	assert_string_equal(jstr(j, "access_token"), "A2");
	assert_string_equal(jstr(j, "client_auth"), "body");
	cJSON_Delete(j);
	struct stat st;
	char path[512];
	snprintf(path, sizeof(path), "%s/default.json", f->cfg);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* short-lived tokens: refreshed before they expire */
	f->p.expires_in = 2;
	assert_int_equal(get(a, true, tok, sizeof(tok)), 0);
	assert_string_equal(tok, "A3");
	sleep(2); /* not synchronisation: the 2 s lifetime must run out */
	assert_int_equal(get(a, false, tok, sizeof(tok)), 0);
	assert_string_equal(tok, "A4");
	assert_int_equal(f->p.reuse_detected, 0);

	/* a temporary failure is not a dead login */
	f->p.fail_refresh_status = 503;
	assert_true(get(a, true, tok, sizeof(tok)) < 0);
	assert_false(auth_is_dead(a));
	f->p.fail_refresh_status = 0;
	assert_int_equal(get(a, true, tok, sizeof(tok)), 0);
	auth_free(a);
}

/* Two handles on one account (as two processes would have): the second sees
 * the first one's rotation in the file and uses it instead of reusing its
 * stale refresh token. */
static void test_rotation_by_other_holder(void **state)
{
	struct fixture *f = *state;
	char tok[64];
	struct auth *a1 = NULL, *a2 = NULL;
	do_login(f, "default");
	assert_int_equal(auth_open(f->http, f->cfg, "default", NULL, &a1, NULL), 0);
	assert_int_equal(auth_open(f->http, f->cfg, "default", NULL, &a2, NULL), 0);
	assert_int_equal(get(a1, true, tok, sizeof(tok)), 0);
	assert_string_equal(tok, "A2");
	/* a2 still holds A1/R1; the server refused A1: it must adopt A2 */
	assert_int_equal(get(a2, true, tok, sizeof(tok)), 0);
	assert_string_equal(tok, "A2");
	assert_int_equal(f->p.refreshes, 1);
	/* A2 refused too: a2 refreshes with R2 */
	assert_int_equal(get(a2, true, tok, sizeof(tok)), 0);
	assert_string_equal(tok, "A3");
	/* and a1, still on R2 in memory, adopts A3 from the file */
	assert_int_equal(get(a1, true, tok, sizeof(tok)), 0);
	assert_string_equal(tok, "A3");
	assert_int_equal(f->p.reuse_detected, 0);
	assert_int_equal(f->p.refreshes, 2);
	auth_free(a1);
	auth_free(a2);
}

static void test_basic_client_auth_fallback(void **state)
{
	struct fixture *f = *state;
	char tok[64];
	struct auth *a = open_default(f, &f->p.require_basic);
	assert_int_equal(get(a, true, tok, sizeof(tok)), 0);
	assert_string_equal(tok, "A2");
	assert_int_equal(f->p.basic_seen, 1);
	cJSON *j = read_account(f, "default");
	assert_string_equal(jstr(j, "client_auth"), "basic");
	cJSON_Delete(j);
	/* remembered: the next refresh goes straight to Basic */
	assert_int_equal(get(a, true, tok, sizeof(tok)), 0);
	assert_int_equal(f->p.basic_seen, 2);
	assert_int_equal(f->p.reuse_detected, 0);
	auth_free(a);
}

static void test_invalid_grant_is_dead(void **state)
{
	struct fixture *f = *state;
	char tok[64];
	struct auth *a = open_default(f, &f->p.family_dead); /* revoked on the server */
	assert_int_equal(get(a, true, tok, sizeof(tok)), -EKEYREJECTED);
	assert_true(auth_is_dead(a));
	int calls = f->p.srv->served;
	/* dead: no more requests, same answer, also for unforced calls */
	assert_int_equal(get(a, false, tok, sizeof(tok)), -EKEYREJECTED);
	assert_int_equal(f->p.srv->served, calls);
	auth_free(a);
}

/* A dead login comes back when the user logs in again (new family in the file). */
static void test_dead_login_revives_after_new_login(void **state)
{
	struct fixture *f = *state;
	char tok[64];
	struct auth *a = open_default(f, NULL);
	/* (one rotation first: the fake provider's new family restarts at R1) */
	assert_int_equal(get(a, true, tok, sizeof(tok)), 0);
	f->p.family_dead = true;
	assert_int_equal(get(a, true, tok, sizeof(tok)), -EKEYREJECTED);
	assert_true(auth_is_dead(a));
	/* 'jottafs login' again, with a new login token */
	snprintf(f->p.secret, sizeof(f->p.secret), "second-secret");
	f->p.secret_used = false;
	do_login(f, "default");
	assert_true(auth_is_dead(a)); /* looked at most every 5 s */
	sleep(6); /* not synchronisation: past that 5 s interval (monotonic) */
	assert_false(auth_is_dead(a));
	assert_int_equal(get(a, false, tok, sizeof(tok)), 0);
	assert_string_equal(tok, "A1");
	auth_free(a);
}

/* net/http + the provider: a 401 from the API refreshes once and retries. */
static void test_http_401_refresh(void **state)
{
	struct fixture *f = *state;
	struct auth *a = open_default(f, NULL);
	struct http_token_provider tp;
	auth_token_provider(a, &tp);
	http_client_set_token_provider(f->http, &tp);
	char url[128];
	snprintf(url, sizeof(url), "%s/api/check", f->p.srv->url);
	struct http_request req;
	http_request_init(&req, "GET", url);
	req.idempotent = true;
	assert_int_equal(http_request_do(f->http, &req, NULL), 0);
	assert_int_equal(f->p.refreshes, 0);
	/* another process rotated (server now wants A2): our A1 gets a 401 */
	struct http_response resp;
	{
		/* rotate through a second handle, exactly as another process would */
		struct auth *other = NULL;
		char tok[64];
		assert_int_equal(auth_open(f->http, f->cfg, "default", NULL, &other, NULL), 0);
		assert_int_equal(get(other, true, tok, sizeof(tok)), 0);
		auth_free(other);
	}
	assert_int_equal(http_request_do(f->http, &req, &resp), 0);
	assert_int_equal(resp.attempts, 2);
	http_response_release(&resp);
	assert_int_equal(f->p.refreshes, 1); /* adopted from the file, no second refresh */
	assert_int_equal(f->p.reuse_detected, 0);
	http_client_set_token_provider(f->http, NULL);
	auth_free(a);
}

struct thr_arg {
	struct auth *a;
	int rounds;
	int failures;
};

static void *hammer(void *arg)
{
	struct thr_arg *t = arg;
	char tok[64];
	for (int i = 0; i < t->rounds; i++)
		if (get(t->a, i % 2 == 0, tok, sizeof(tok)) != 0)
			t->failures++;
	return NULL;
}

/* Many threads forcing refreshes at once: single flight, never a reuse. */
static void test_threads_single_flight(void **state)
{
	struct fixture *f = *state;
	struct auth *a = open_default(f, NULL);
	pthread_t th[8];
	struct thr_arg args[8];
	for (int i = 0; i < 8; i++) {
		args[i] = (struct thr_arg){ .a = a, .rounds = 10 };
		pthread_create(&th[i], NULL, hammer, &args[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].failures, 0);
	}
	assert_int_equal(f->p.reuse_detected, 0);
	assert_false(f->p.family_dead);
	assert_true(f->p.refreshes >= 1);
	auth_free(a);
}

/* Forked processes refreshing the same account: the flock + re-read keep
 * the token family alive. */
static void test_processes_share_account(void **state)
{
	struct fixture *f = *state;
	do_login(f, "default");
	pid_t pids[3];
	for (int i = 0; i < 3; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct http_client *h = NULL;
			struct auth *a = NULL;
			char tok[64];
			int bad = 0;
			if (http_client_new(NULL, &h) || auth_open(h, f->cfg, "default", NULL, &a, NULL))
				_exit(3);
			for (int k = 0; k < 15; k++)
				if (get(a, true, tok, sizeof(tok)) != 0)
					bad++;
			auth_free(a);
			http_client_free(h);
			_exit(bad ? 1 : 0);
		}
	}
	for (int i = 0; i < 3; i++) {
		int status = 0;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	/* the server thread wrote the counters: join it before reading them */
	testsrv_stop(f->p.srv);
	f->p.srv = NULL;
	assert_int_equal(f->p.reuse_detected, 0);
	assert_false(f->p.family_dead);
	assert_true(f->p.refreshes >= 15);
	/* and the file ends with the newest generation */
	cJSON *j = read_account(f, "default");
	char want[16];
	snprintf(want, sizeof(want), "R%d", f->p.gen);
	assert_string_equal(jstr(j, "refresh_token"), want);
	cJSON_Delete(j);
}

/* ---------------------------------------------------------------------- */
/* The pure decoders (issue 14; found by tests/fuzz/fuzz_auth)            */

/* An expires_in out of range — a numeric string that overflows long, a
 * fraction below one second — is ignored (3600), never added to the clock
 * (a signed overflow before). */
static void test_token_answer_lifetime(void **state)
{
	static const struct {
		const char *json;
		long lifetime;
	} cases[] = {
		{ "{\"access_token\":\"a\",\"refresh_token\":\"r\",\"expires_in\":300}", 300 },
		{ "{\"access_token\":\"a\",\"refresh_token\":\"r\",\"expires_in\":\"300\"}", 300 },
		{ "{\"access_token\":\"a\",\"refresh_token\":\"r\","
		  "\"expires_in\":\"9223372036854775807\"}", 3600 },
		{ "{\"access_token\":\"a\",\"refresh_token\":\"r\","
		  "\"expires_in\":\"99999999999999999999999\"}", 3600 },
		{ "{\"access_token\":\"a\",\"refresh_token\":\"r\",\"expires_in\":\"30x\"}", 3600 },
		{ "{\"access_token\":\"a\",\"refresh_token\":\"r\",\"expires_in\":0.5}", 3600 },
		{ "{\"access_token\":\"a\",\"refresh_token\":\"r\",\"expires_in\":1e300}", 3600 },
		{ "{\"access_token\":\"a\",\"refresh_token\":\"r\",\"expires_in\":-5}", 3600 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct auth_tokens t;
		const char *j = cases[i].json;
		assert_int_equal(auth_token_response_decode(j, strlen(j), NULL, 1000, &t), 0);
		assert_string_equal(t.access, "a");
		assert_string_equal(t.refresh, "r");
		assert_int_equal(t.lifetime, cases[i].lifetime);
		assert_int_equal(t.expiry, 1000 + cases[i].lifetime);
		auth_tokens_release(&t);
	}
	/* no refresh token: the old one is kept, or the answer is unusable */
	struct auth_tokens t;
	const char *j = "{\"access_token\":\"a\"}";
	assert_int_equal(auth_token_response_decode(j, strlen(j), "old", 0, &t), 0);
	assert_string_equal(t.refresh, "old");
	auth_tokens_release(&t);
	assert_int_equal(auth_token_response_decode(j, strlen(j), NULL, 0, &t), -EIO);
	assert_null(t.access);
	assert_int_equal(auth_token_response_decode("[1]", 3, "old", 0, &t), -EIO);
	assert_int_equal(auth_token_response_decode(NULL, 0, "old", 0, &t), -EIO);
}

/* expiry/lifetime in the account file: whole seconds within [0, 2^53],
 * else 0; a double out of range of time_t was converted before (UB). */
static void test_account_decode_numbers(void **state)
{
	static const struct {
		const char *num;
		long long want;
	} cases[] = {
		{ "1795447004", 1795447004 }, { "0", 0 }, { "1e300", 0 }, { "-1e300", 0 },
		{ "-5", 0 }, { "12.5", 0 }, { "9007199254740992", 9007199254740992LL },
		{ "9007199254740994", 0 }, { "\"3600\"", 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text),
			 "{\"username\":\"u\",\"refresh_token\":\"r\",\"expiry\":%s,\"lifetime\":%s}",
			 cases[i].num, cases[i].num);
		struct auth_account a;
		assert_int_equal(auth_account_decode(text, strlen(text), &a), 0);
		assert_string_equal(a.username, "u");
		assert_string_equal(a.tokens.refresh, "r");
		assert_null(a.tokens.access);
		assert_int_equal((long long)a.tokens.expiry, cases[i].want);
		assert_int_equal((long long)a.tokens.lifetime, cases[i].want);
		auth_account_release(&a);
	}
	struct auth_account a;
	const char *basic = "{\"client_auth\":\"basic\",\"api_url\":\"\",\"cafile\":7}";
	assert_int_equal(auth_account_decode(basic, strlen(basic), &a), 0);
	assert_true(a.basic_auth);
	assert_null(a.api_url);
	assert_null(a.cafile);
	assert_null(a.tokens.refresh);
	auth_account_release(&a);
	assert_int_equal(auth_account_decode("[]", 2, &a), -EINVAL);
	assert_int_equal(auth_account_decode("{", 1, &a), -EINVAL);
}

static void test_discovery_and_oauth_error(void **state)
{
	char *te = NULL;
	const char *d = "{\"issuer\":\"x\",\"token_endpoint\":\"https://id.example/token\"}";
	assert_int_equal(auth_discovery_decode(d, strlen(d), &te), 0);
	assert_string_equal(te, "https://id.example/token");
	free(te);
	const char *bad[] = { "{\"token_endpoint\":\"ftp://x\"}", "{\"token_endpoint\":1}",
			      "[\"https://x\"]", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(auth_discovery_decode(bad[i], strlen(bad[i]), &te), -EIO);
		assert_null(te);
	}

	char e[16], desc[16];
	const char *o = "{\"error\":\"invalid_grant\",\"error_description\":\"Stale\\ntoken!\"}";
	auth_oauth_error_decode(o, strlen(o), e, sizeof(e), desc, sizeof(desc));
	assert_string_equal(e, "invalid_grant");
	assert_string_equal(desc, "Stale?token!"); /* the newline made printable */
	auth_oauth_error_decode(NULL, 0, e, sizeof(e), desc, sizeof(desc));
	assert_string_equal(e, "");
	assert_string_equal(desc, "");
}

int main(void)
{
	log_setup(LOG_LVL_WARN, false);
	struct CMUnitTest tests[] = {
		unit_test_alone(test_token_decode_valid),
		unit_test_alone(test_token_decode_invalid),
		unit_test_alone(test_account_name),
		unit_test_alone(test_token_answer_lifetime),
		unit_test_alone(test_account_decode_numbers),
		unit_test_alone(test_discovery_and_oauth_error),
		unit_test_alone(test_config_dir),
		cmocka_unit_test(test_login_and_store),
		cmocka_unit_test(test_login_errors),
		cmocka_unit_test(test_plain_http_policy),
		cmocka_unit_test(test_refresh_and_persist),
		cmocka_unit_test(test_rotation_by_other_holder),
		cmocka_unit_test(test_basic_client_auth_fallback),
		cmocka_unit_test(test_invalid_grant_is_dead),
		cmocka_unit_test(test_dead_login_revives_after_new_login),
		cmocka_unit_test(test_http_401_refresh),
		cmocka_unit_test(test_threads_single_flight),
		cmocka_unit_test(test_processes_share_account),
	};
	return UNIT_MAIN_FIXTURE(tests, NULL, NULL, setup, teardown);
}
