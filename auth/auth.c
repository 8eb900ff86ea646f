/*
 * auth/auth.c — see auth.h: opening a stored account (auth_open), its
 * accessors, and the helpers the files of auth/ share (auth/auth_int.h).
 * The account file lives in auth/account.c, the decoders in auth/decode.c,
 * login in auth/login.c, the refresh in auth/tokens.c.
 *
 * The account file (JSON, mode 0600, in a 0700 directory):
 *   { "version": 1, "login_user": "...", "username": "<internal>",
 *     "api_url": "...", "jfs_url": "...", "token_url": "...", "cafile": "...",
 *     "client_id": "jottacli", "client_auth": "body" | "basic",
 *     "token_type": "Bearer", "access_token": "...", "refresh_token": "...",
 *     "expiry": <unix seconds>, "lifetime": <expires_in seconds at issue> }
 * A login through the authorization-code flow (auth_login_code) also has
 * "service": "<key of the service table>", its client_id ("desktop", ...)
 * and the token_url its discovery named; refreshes use those.
 * Unknown members are kept when tokens are rewritten.
 *
 * Threading model and lock order
 * ------------------------------
 * struct auth is shared by every thread of a process. a->lock protects the
 * token state (access/refresh token, expiry, generation, refreshing, dead).
 * It is never held across I/O. A refresh runs with a->refreshing set (single
 * flight): other threads that need a new token wait on a->cond and take the
 * result. The refresh itself holds, across processes, flock(LOCK_EX) on the
 * account file — taken by auth_lock_account_file(), which re-checks after locking
 * that the path still names the locked inode (the atomic rename of a writer
 * replaces it) and retries otherwise. Lock order: flock, then a->lock
 * (briefly, to publish the result); a->lock is never held while waiting for
 * the flock.
 *
 * Refresh (refresh_tokens in auth/tokens.c):
 *   1. flock the account file; 2. re-read it: if another process rotated the
 *   refresh token, adopt its tokens, and when its access token is usable
 *   (and, for a forced refresh, differs from the refused one) stop there;
 *   3. POST grant_type=refresh_token (client_id in the body; HTTP Basic if
 *   the server says unauthorized_client); 4. write the new tokens atomically
 *   (temp + fsync + rename + fsync dir) BEFORE releasing the flock and before
 *   anyone uses them; 5. invalid_grant: the login is dead (logged once).
 *   A dead login comes back by itself when the user logs in again: every
 *   few seconds a caller looks at the file, and adopts a new token family
 *   found there (try_revive).
 *
 * Secrets (login token, tokens, request bodies that carry them) are never
 * logged and are wiped from memory when freed. The long-lived copies (the
 * tokens in struct auth) live in pages kept out of core dumps
 * (lib/secret.h); the short-lived ones (parsing, request bodies, the copy
 * handed to each request) are on the heap.
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
/* Small helpers                                                          */

void auth_tokens_release(struct auth_tokens *t)
{
	free_secret(t->access);
	free_secret(t->refresh);
	memset(t, 0, sizeof(*t));
}

/* strdup of a JSON string member, or NULL when absent / not a string / "". */
char *auth_json_str(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!cJSON_IsString(v) || !v->valuestring || !*v->valuestring)
		return NULL;
	return strdup(v->valuestring);
}

/* "scheme://host[:port]" of @url (user info dropped), for messages. malloc'd. */
char *auth_url_origin(const char *url)
{
	const char *sep = strstr(url, "://");
	size_t scheme_len = sep ? (size_t)(sep + 3 - url) : 0;
	const char *host = url + scheme_len;
	size_t n = strcspn(host, "/?#");
	const char *at = memchr(host, '@', n);
	if (at) {
		n -= (size_t)(at + 1 - host);
		host = at + 1;
	}
	return xasprintf("%.*s%.*s", (int)scheme_len, url, (int)n, host);
}

/*
 * The plain-HTTP policy (net/url.h) for the endpoint @what ("api_url", ...)
 * that the user chose, @where saying how ("given with -o api_url", "stored
 * in '<file>'"): 0 when it may be used — with a warning when only
 * insecure_http lets it through — else -EINVAL or -EPERM with *errmsg set.
 */
int auth_endpoint_ok(const char *what, const char *where, const char *url, bool insecure_http,
		     char **errmsg)
{
	int err = url_allowed(url, insecure_http);
	if (err == -EINVAL) {
		set_errmsg(errmsg, xasprintf("the %s %s is not a usable http(s) URL: give an "
					     "absolute https:// URL", what, where));
		return err;
	}
	if (err == 0 && url_check(url) == URL_OK)
		return 0;
	char *origin = auth_url_origin(url);
	if (err == -EPERM)
		set_errmsg(errmsg, xasprintf("refusing the plain-http %s '%s' (%s): the access "
					     "and refresh tokens would travel unencrypted; use "
					     "https, or pass -o insecure_http to accept that",
					     what, origin ? origin : "?", where));
	else
		log_warn("the %s '%s' is plain http (insecure_http): tokens and data travel "
			 "unencrypted", what, origin ? origin : "?");
	free(origin);
	return err;
}

/*
 * A link that came with a login token (its discovery link, and the token
 * endpoint the discovery document names) may be plain http only to a
 * loopback host: insecure_http does not apply to what a pasted token or a
 * server says. 0, or -EPERM with *errmsg set (the caller checked the form).
 */
int auth_login_link_ok(const char *url, const char *what, char **errmsg)
{
	if (url_check(url) == URL_OK)
		return 0;
	char *origin = auth_url_origin(url);
	set_errmsg(errmsg, xasprintf("refusing %s '%s': it is plain http to a host that is not "
				     "loopback, and the login would travel unencrypted "
				     "(-o insecure_http does not apply to links from a login "
				     "token): check that the token comes from your service, or "
				     "pass -o token_url=URL", what, origin ? origin : "?"));
	free(origin);
	return -EPERM;
}

/* Wipe the token strings inside an account/token JSON tree before it is freed. */
void auth_json_wipe_secrets(cJSON *j)
{
	static const char *const keys[] = { "access_token", "refresh_token", "id_token",
					    "auth_token", NULL };
	for (unsigned i = 0; j && keys[i]; i++) {
		cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
		if (cJSON_IsString(v) && v->valuestring)
			explicit_bzero(v->valuestring, strlen(v->valuestring));
	}
}

/* Strip trailing '/' characters of a malloc'd URL in place. */
void auth_strip_slashes(char *url)
{
	size_t n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		url[--n] = '\0';
}

const char *auth_login_cmd(const char *account, char buf[AUTH_LOGIN_CMD_MAX])
{
	if (!strcmp(account, "default"))
		return "jottafs login";
	snprintf(buf, AUTH_LOGIN_CMD_MAX, "jottafs login --account %s", account);
	return buf;
}

/* ---------------------------------------------------------------------- */
/* Open, accessors                                                        */

/* Settle a decoded account member: @override (may be NULL), when set,
 * replaces it; then @dflt (may be NULL) fills it when absent. A copy that
 * failed leaves NULL (the caller reports ENOMEM). */
static void settle(char **member, const char *override, const char *dflt)
{
	if (override) {
		free(*member);
		*member = strdup(override);
	} else if (!*member && dflt) {
		*member = strdup(dflt);
	}
}

int auth_open(struct http_client *http, const char *config_dir, const char *account,
	      const struct auth_endpoints *ep, struct auth **out, char **errmsg)
{
	static const struct auth_endpoints none;
	char cmd[AUTH_LOGIN_CMD_MAX];
	if (errmsg)
		*errmsg = NULL;
	if (!ep)
		ep = &none;
	if (auth_account_name_valid(account) < 0) {
		set_errmsg(errmsg, xasprintf("invalid account name '%s'", account));
		return -EINVAL;
	}
	/* Only we (and root) can change the directory and those above it
	 * (lib/privdir.h); the resolved path is used from here on. */
	char dir_why[2 * PATH_MAX + 300], *real_dir = NULL;
	int err = privdir_check(config_dir, geteuid(), &real_dir, dir_why, sizeof(dir_why));
	if (err < 0 && err != -ENOENT) {
		set_errmsg(errmsg, xasprintf("cannot use the configuration directory: %s", dir_why));
		return err;
	}
	char *path = auth_account_path(real_dir ? real_dir : config_dir, account);
	free(real_dir);
	if (!path)
		return -ENOMEM;
	char *text = NULL;
	size_t text_len = 0;
	struct auth_account acc;
	err = auth_read_account_file(path, -1, &text, &text_len);
	if (err == 0) {
		err = auth_account_decode(text, text_len, &acc);
		explicit_bzero(text, text_len);
		free(text);
	}
	if (err == -ENOENT) {
		set_errmsg(errmsg, xasprintf("not logged in (no account '%s'): run '%s' first",
					     account, auth_login_cmd(account, cmd)));
		free(path);
		return err;
	}
	if (err == -ELOOP || err == -EPERM) {
		char file_why[PATH_MAX + 200];
		set_errmsg(errmsg, xasprintf("cannot use the account file: %s",
					     privdir_file_error(path, err, file_why,
								sizeof(file_why))));
		free(path);
		return err;
	}
	if (err < 0) {
		set_errmsg(errmsg, xasprintf("cannot read the account file '%s' (%s): run "
					     "'%s' again", path,
					     err == -EINVAL ? "not valid JSON" : strerror(-err),
					     auth_login_cmd(account, cmd)));
		free(path);
		return err;
	}
	/* Written 0600; one that others can read is made private again. */
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077)) {
		log_warn("the account file '%s' was readable by others (mode %03o): made it 0600; "
			 "if someone may have read it, run '%s' with a new token",
			 path, (unsigned)(st.st_mode & 0777), auth_login_cmd(account, cmd));
		chmod(path, 0600);
	}

	struct auth *a = calloc(1, sizeof(*a));
	if (!a) {
		auth_account_release(&acc);
		free(path);
		return -ENOMEM;
	}
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	a->http = http;
	a->path = path;
	a->account = strdup(account);
	/* the live tokens go to secret memory (auth_set_tokens) */
	struct auth_tokens t = acc.tokens;
	memset(&acc.tokens, 0, sizeof(acc.tokens));
	a->acc = acc;
	settle(&a->acc.login_user, NULL, "");
	settle(&a->acc.api_url, ep->api_url, AUTH_DEFAULT_API_URL);
	settle(&a->acc.jfs_url, ep->jfs_url, AUTH_DEFAULT_JFS_URL);
	settle(&a->acc.token_url, ep->token_url, AUTH_DEFAULT_TOKEN_URL);
	settle(&a->acc.cafile, ep->cafile, NULL);
	settle(&a->acc.client_id, NULL, AUTH_CLIENT_ID);
	if (!t.refresh || !a->acc.username) {
		set_errmsg(errmsg, xasprintf("the account file '%s' is incomplete (%s missing): run "
					     "'%s' again", path,
					     !t.refresh ? "refresh_token" : "username",
					     auth_login_cmd(account, cmd)));
		auth_tokens_release(&t);
		auth_free(a);
		return -EINVAL;
	}
	if (!a->account || !a->acc.login_user || !a->acc.api_url || !a->acc.jfs_url ||
	    !a->acc.token_url || !a->acc.client_id) {
		auth_tokens_release(&t);
		auth_free(a);
		return -ENOMEM;
	}
	auth_strip_slashes(a->acc.api_url);
	auth_strip_slashes(a->acc.jfs_url);
	{
		bool insecure = http_client_insecure_http(http);
		static const char *const names[] = { "api_url", "jfs_url", "token_url" };
		const char *given[] = { ep->api_url, ep->jfs_url, ep->token_url };
		const char *urls[] = { a->acc.api_url, a->acc.jfs_url, a->acc.token_url };
		for (unsigned i = 0; i < 3; i++) {
			char *where = given[i] ? xasprintf("given with -o %s", names[i])
					       : xasprintf("stored in '%s'", path);
			err = auth_endpoint_ok(names[i], where ? where : "", urls[i], insecure,
					       errmsg);
			free(where);
			if (err < 0) {
				auth_tokens_release(&t);
				auth_free(a);
				return err;
			}
		}
	}
	err = auth_set_tokens(a, &t);
	auth_tokens_release(&t);
	if (err) {
		auth_free(a);
		return err;
	}
	if (a->acc.cafile && !http_client_cafile(http)) {
		err = http_client_set_cafile(http, a->acc.cafile);
		if (err < 0) {
			set_errmsg(errmsg, xasprintf("cannot use cafile '%s': %s", a->acc.cafile,
						     err == -EINVAL ? "no PEM certificate in it"
								    : strerror(-err)));
			auth_free(a);
			return err;
		}
	}
	*out = a;
	return 0;
}

void auth_free(struct auth *a)
{
	if (!a)
		return;
	secret_free(a->acc.tokens.access);
	secret_free(a->acc.tokens.refresh);
	memset(&a->acc.tokens, 0, sizeof(a->acc.tokens));
	auth_account_release(&a->acc);
	free(a->path);
	free(a->account);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

const char *auth_username(const struct auth *a) { return a->acc.username; }
const char *auth_api_url(const struct auth *a) { return a->acc.api_url; }
const char *auth_jfs_url(const struct auth *a) { return a->acc.jfs_url; }
const char *auth_cafile(const struct auth *a) { return a->acc.cafile; }
const char *auth_login_user(const struct auth *a) { return a->acc.login_user; }
