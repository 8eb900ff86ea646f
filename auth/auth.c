/*
 * auth/auth.c — see auth.h.
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
 * account file — taken by lock_account_file(), which re-checks after locking
 * that the path still names the locked inode (the atomic rename of a writer
 * replaces it) and retries otherwise. Lock order: flock, then a->lock
 * (briefly, to publish the result); a->lock is never held while waiting for
 * the flock.
 *
 * Refresh (refresh_tokens):
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

#define AUTH_DEFAULT_API_URL   "https://api.jottacloud.com"
#define AUTH_DEFAULT_JFS_URL   "https://jfs.jottacloud.com/jfs"
#define AUTH_DEFAULT_TOKEN_URL \
	"https://id.jottacloud.com/auth/realms/jottacloud/protocol/openid-connect/token"
#define AUTH_CLIENT_ID         "jottacli"
#define AUTH_SCOPE             "openid offline_access"
#define AUTH_REFRESH_MARGIN_S  60       /* refresh this long before expiry */
#define AUTH_LOGIN_TOKEN_MAX   16384    /* bytes of a login token we accept */
#define AUTH_FILE_MAX          (1u << 20)
#define AUTH_ACCOUNT_MAX       64

struct auth {
	struct http_client *http;
	/* immutable after auth_open() */
	char *path;              /* the account file */
	char *account;
	char *username;
	char *login_user;
	char *api_url;
	char *jfs_url;
	char *token_url;
	char *cafile;
	char *client_id;

	pthread_mutex_t lock;
	pthread_cond_t cond;     /* signalled when a refresh ends */
	/* protected by lock: */
	char *access_token;      /* secret_strdup() copies (set_tokens) */
	char *refresh_token;
	time_t expiry;
	long lifetime;
	bool basic_auth;         /* client auth with HTTP Basic (else body client_id) */
	bool refreshing;
	uint64_t generation;     /* bumped whenever the tokens change */
	bool dead;
	bool dead_logged;
	time_t dead_checked;     /* last look for a new login in the file */
};

#define AUTH_REVIVE_CHECK_S 5     /* a dead login looks for a new one this often */

/* ---------------------------------------------------------------------- */
/* Small helpers                                                          */

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void auth_tokens_release(struct auth_tokens *t)
{
	free_secret(t->access);
	free_secret(t->refresh);
	memset(t, 0, sizeof(*t));
}

/* Replace the tokens of @a (a->lock held, or before @a is shared) by copies
 * of @t's in memory kept out of core dumps (lib/secret.h); @t keeps its
 * own. 0 or -ENOMEM (@a unchanged). */
static int set_tokens(struct auth *a, const struct auth_tokens *t)
{
	char *access = t->access ? secret_strdup(t->access) : NULL;
	char *refresh = t->refresh ? secret_strdup(t->refresh) : NULL;

	if ((t->access && !access) || (t->refresh && !refresh)) {
		secret_free(access);
		secret_free(refresh);
		return -ENOMEM;
	}
	secret_free(a->access_token);
	secret_free(a->refresh_token);
	a->access_token = access;
	a->refresh_token = refresh;
	a->expiry = t->expiry;
	a->lifetime = t->lifetime;
	return 0;
}

static void set_errmsg(char **errmsg, char *msg)
{
	if (errmsg) {
		free(*errmsg);
		*errmsg = msg;
	} else {
		free(msg);
	}
}

/* strdup of a JSON string member, or NULL when absent / not a string / "". */
static char *json_str(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!cJSON_IsString(v) || !v->valuestring || !*v->valuestring)
		return NULL;
	return strdup(v->valuestring);
}

/* "scheme://host[:port]" of @url (user info dropped), for messages. malloc'd. */
static char *url_origin(const char *url)
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
static int endpoint_ok(const char *what, const char *where, const char *url,
		       bool insecure_http, char **errmsg)
{
	int err = url_allowed(url, insecure_http);
	if (err == -EINVAL) {
		set_errmsg(errmsg, xasprintf("the %s %s is not a usable http(s) URL: give an "
					     "absolute https:// URL", what, where));
		return err;
	}
	if (err == 0 && url_check(url) == URL_OK)
		return 0;
	char *origin = url_origin(url);
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
static int login_link_ok(const char *url, const char *what, char **errmsg)
{
	if (url_check(url) == URL_OK)
		return 0;
	char *origin = url_origin(url);
	set_errmsg(errmsg, xasprintf("refusing %s '%s': it is plain http to a host that is not "
				     "loopback, and the login would travel unencrypted "
				     "(-o insecure_http does not apply to links from a login "
				     "token): check that the token comes from your service, or "
				     "pass -o token_url=URL", what, origin ? origin : "?"));
	free(origin);
	return -EPERM;
}

/* Wipe the token strings inside an account/token JSON tree before it is freed. */
static void json_wipe_secrets(cJSON *j)
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
static void strip_slashes(char *url)
{
	size_t n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		url[--n] = '\0';
}

/* Margin before expiry at which the access token is refreshed: 60 s, or a
 * quarter of the token's lifetime when that is short. */
static long refresh_margin(long lifetime)
{
	if (lifetime <= 0 || lifetime >= 4 * AUTH_REFRESH_MARGIN_S)
		return AUTH_REFRESH_MARGIN_S;
	return lifetime / 4;
}

static bool token_fresh(const char *access, time_t expiry, long lifetime, time_t now)
{
	return access && now + refresh_margin(lifetime) < expiry;
}

/* ---------------------------------------------------------------------- */
/* Paths and names                                                        */

int auth_config_dir(char **out)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	char *dir;
	if (xdg && xdg[0] == '/') {
		dir = xasprintf("%s/jottafs", xdg);
	} else {
		const char *home = getenv("HOME");
		if (!home || home[0] != '/') {
			struct passwd pw, *res = NULL;
			char buf[4096];
			if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) != 0 || !res)
				return -ENOENT;
			home = res->pw_dir;
			dir = xasprintf("%s/.config/jottafs", home);
		} else {
			dir = xasprintf("%s/.config/jottafs", home);
		}
	}
	if (!dir)
		return -ENOMEM;
	*out = dir;
	return 0;
}

int auth_account_name_valid(const char *account)
{
	if (!account || !*account || account[0] == '.')
		return -EINVAL;
	size_t n = 0;
	for (const char *p = account; *p; p++, n++) {
		unsigned char ch = (unsigned char)*p;
		if (n >= AUTH_ACCOUNT_MAX)
			return -EINVAL;
		if (!(isascii(ch) && (isalnum(ch) || ch == '-' || ch == '_' || ch == '.')))
			return -EINVAL;
	}
	return 0;
}

static char *account_path(const char *config_dir, const char *account)
{
	return xasprintf("%s/%s.json", config_dir, account);
}

/* ---------------------------------------------------------------------- */
/* The account file                                                       */

/*
 * Open and flock(LOCK_EX) the account file at @path. A writer replaces the
 * file by rename while holding the lock, so after locking, check that @path
 * still names the locked inode; if not, try again on the new file. Returns
 * the locked fd or -errno (-ENOENT: no such account).
 */
static int lock_account_file(const char *path)
{
	for (int tries = 0; tries < 1000; tries++) {
		int fd = privdir_open_file(AT_FDCWD, path, O_RDONLY, false);
		if (fd < 0)
			return fd;
		while (flock(fd, LOCK_EX) < 0) {
			if (errno != EINTR) {
				int err = -errno;
				close(fd);
				return err;
			}
		}
		struct stat a, b;
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino)
			return fd;
		close(fd); /* replaced (or removed) while we waited */
	}
	return -EAGAIN;
}

static void unlock_account_file(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}

/* Read the account file through @fd (or @path when fd < 0): *out is
 * malloc'd and NUL-terminated (the caller wipes and frees it). */
static int read_account_file(const char *path, int fd, char **out, size_t *out_len)
{
	int own = fd < 0;
	if (own) {
		/* a regular file of ours, not through a symlink (lib/privdir.h);
		 * -ELOOP, -EPERM: see privdir_file_error() */
		fd = privdir_open_file(AT_FDCWD, path, O_RDONLY, false);
		if (fd < 0)
			return fd == -EINVAL ? -EPERM : fd;
	}
	struct stat st;
	int err = 0;
	if (fstat(fd, &st) < 0)
		err = -errno;
	else if (st.st_size > (off_t)AUTH_FILE_MAX)
		err = -EFBIG;
	if (err) {
		if (own)
			close(fd);
		return err;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		if (own)
			close(fd);
		return -ENOMEM;
	}
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	if (own)
		close(fd);
	*out = buf;
	*out_len = got;
	return 0;
}

/* The account file's text as a JSON object; -EINVAL when it is not one.
 * (The caller wipes the tree's secrets with json_wipe_secrets.) */
static int parse_account_json(const char *text, size_t len, cJSON **out)
{
	cJSON *j = text ? cJSON_ParseWithLength(text, len) : NULL;
	if (!j || !cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return -EINVAL;
	}
	*out = j;
	return 0;
}

/* Read and parse the account file through @fd (or @path when fd < 0). */
static int read_account_json(const char *path, int fd, cJSON **out)
{
	char *buf = NULL;
	size_t len = 0;
	int err = read_account_file(path, fd, &buf, &len);
	if (err < 0)
		return err;
	err = parse_account_json(buf, len, out);
	explicit_bzero(buf, len);
	free(buf);
	return err;
}

/* Write @data to @path atomically: a temp file in the same directory
 * (O_EXCL, 0600), fsync, rename over @path, fsync of the directory. */
static int write_file_atomic(const char *path, const char *data, size_t len)
{
	char *tmp = xasprintf("%s.tmp-XXXXXX", path);
	if (!tmp)
		return -ENOMEM;
	char *slash = strrchr(tmp, '/');
	char *dir = slash ? strndup(tmp, (size_t)(slash - tmp)) : strdup(".");
	if (!dir) {
		free(tmp);
		return -ENOMEM;
	}
	int err = 0;
	int fd = mkostemp(tmp, O_CLOEXEC); /* O_CREAT|O_EXCL, mode 0600 */
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	if (fchmod(fd, 0600) < 0)
		err = -errno;
	for (size_t off = 0; !err && off < len;) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			err = -errno;
		else
			off += (size_t)n;
	}
	if (!err && fsync(fd) < 0)
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (err) {
		unlink(tmp);
		goto out;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		if (fsync(dfd) < 0)
			err = -errno;
		close(dfd);
	}
out:
	free(tmp);
	free(dir);
	return err;
}

/* Serialise @j and write it atomically to @path. */
static int write_account_json(const char *path, const cJSON *j)
{
	char *text = cJSON_Print(j);
	if (!text)
		return -ENOMEM;
	size_t len = strlen(text);
	char *withnl = malloc(len + 2);
	int err = -ENOMEM;
	if (withnl) {
		memcpy(withnl, text, len);
		withnl[len] = '\n';
		withnl[len + 1] = '\0';
		err = write_file_atomic(path, withnl, len + 1);
		explicit_bzero(withnl, len + 1);
		free(withnl);
	}
	explicit_bzero(text, len);
	free(text);
	return err;
}

/* Set (replace) string member @name of @j; NULL removes it. */
static int json_set_str(cJSON *j, const char *name, const char *value)
{
	cJSON *old = cJSON_GetObjectItemCaseSensitive(j, name);
	if (cJSON_IsString(old) && old->valuestring) /* may be a token: wipe it */
		explicit_bzero(old->valuestring, strlen(old->valuestring));
	cJSON_DeleteItemFromObjectCaseSensitive(j, name);
	if (!value)
		return 0;
	return cJSON_AddStringToObject(j, name, value) ? 0 : -ENOMEM;
}

static int json_set_num(cJSON *j, const char *name, double value)
{
	cJSON_DeleteItemFromObjectCaseSensitive(j, name);
	return cJSON_AddNumberToObject(j, name, value) ? 0 : -ENOMEM;
}

/* Put @t (and the client auth style) into the account JSON @j. */
static int json_set_tokens(cJSON *j, const struct auth_tokens *t, bool basic_auth)
{
	int err = json_set_str(j, "access_token", t->access);
	if (!err)
		err = json_set_str(j, "refresh_token", t->refresh);
	if (!err)
		err = json_set_str(j, "token_type", "Bearer");
	if (!err)
		err = json_set_num(j, "expiry", (double)t->expiry);
	if (!err)
		err = json_set_num(j, "lifetime", (double)t->lifetime);
	if (!err)
		err = json_set_str(j, "client_auth", basic_auth ? "basic" : "body");
	return err;
}

/* A count of seconds from the account file: a whole number within
 * [0, 2^53], else 0 (unknown). A double out of range of time_t or long must
 * never be converted. */
static int64_t json_seconds(const cJSON *v)
{
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 9007199254740992.0) ||
	    v->valuedouble != floor(v->valuedouble))
		return 0;
	return (int64_t)v->valuedouble;
}

/* Tokens stored in the account JSON. -EINVAL when the refresh token is missing. */
static int json_get_tokens(const cJSON *j, struct auth_tokens *t)
{
	memset(t, 0, sizeof(*t));
	t->refresh = json_str(j, "refresh_token");
	if (!t->refresh)
		return -EINVAL;
	t->access = json_str(j, "access_token");
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "expiry");
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(j, "lifetime");
	t->expiry = (time_t)json_seconds(e);
	t->lifetime = (long)json_seconds(l);
	return 0;
}

void auth_account_release(struct auth_account *acc)
{
	if (!acc)
		return;
	free(acc->username);
	free(acc->login_user);
	free(acc->api_url);
	free(acc->jfs_url);
	free(acc->token_url);
	free(acc->cafile);
	free(acc->client_id);
	auth_tokens_release(&acc->tokens);
	memset(acc, 0, sizeof(*acc));
}

/* strdup of a string member into *@dst (NULL when absent); false on ENOMEM. */
static bool json_str_into(const cJSON *j, const char *name, char **dst)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
	*dst = json_str(j, name);
	return *dst || !cJSON_IsString(v) || !v->valuestring || !*v->valuestring;
}

int auth_account_decode(const char *text, size_t len, struct auth_account *out)
{
	memset(out, 0, sizeof(*out));
	cJSON *j = NULL;
	int err = parse_account_json(text, len, &j);
	if (err < 0)
		return err;
	err = -ENOMEM;
	if (!json_str_into(j, "username", &out->username) ||
	    !json_str_into(j, "login_user", &out->login_user) ||
	    !json_str_into(j, "api_url", &out->api_url) ||
	    !json_str_into(j, "jfs_url", &out->jfs_url) ||
	    !json_str_into(j, "token_url", &out->token_url) ||
	    !json_str_into(j, "cafile", &out->cafile) ||
	    !json_str_into(j, "client_id", &out->client_id))
		goto out;
	const cJSON *ca = cJSON_GetObjectItemCaseSensitive(j, "client_auth");
	out->basic_auth = cJSON_IsString(ca) && ca->valuestring && !strcmp(ca->valuestring, "basic");
	/* no refresh token (tokens.refresh NULL): the caller says what is missing */
	json_get_tokens(j, &out->tokens);
	err = 0;
out:
	json_wipe_secrets(j);
	cJSON_Delete(j);
	if (err < 0)
		auth_account_release(out);
	return err;
}

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
	out->username = json_str(j, "username");
	out->auth_token = json_str(j, "auth_token");
	out->well_known_link = json_str(j, "well_known_link");
	if (!out->well_known_link)
		out->well_known_link = json_str(j, "wellKnownLink");
	out->realm = json_str(j, "realm");
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
	json_wipe_secrets(j);
	cJSON_Delete(j);
	explicit_bzero(raw, rawcap);
	explicit_bzero(b64, n + pad);
	free(raw);
	free(b64);
	return 0;
fail:
	json_wipe_secrets(j);
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
	t->access = json_str(j, "access_token");
	t->refresh = json_str(j, "refresh_token");
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
	json_wipe_secrets(j);
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

/*
 * POST a form to the token endpoint. @form must not contain client_id: it is
 * added to the body, or sent as HTTP Basic ("<id>:") when @basic. Returns
 * http_request_do()'s result with @resp filled in.
 */
static int token_post(struct http_client *http, const char *token_url, const char *client_id,
		      bool basic, const char *form, struct http_response *resp)
{
	char *body = NULL, *hdr = NULL;
	const char *headers[2] = { NULL, NULL };
	char *eid = http_escape(client_id, strlen(client_id));
	if (!eid)
		return -ENOMEM;
	if (basic) {
		/* x/oauth2 style: base64(url-escaped id ":" url-escaped empty secret) */
		char *cred = xasprintf("%s:", eid);
		unsigned char b64[512];
		if (cred && strlen(cred) < 300) {
			EVP_EncodeBlock(b64, (const unsigned char *)cred, (int)strlen(cred));
			hdr = xasprintf("Authorization: Basic %s", b64);
		}
		free(cred);
		body = strdup(form);
		headers[0] = hdr;
	} else {
		body = xasprintf("client_id=%s&%s", eid, form);
	}
	free(eid);
	if (!body || (basic && !hdr)) {
		free_secret(body);
		free(hdr);
		return -ENOMEM;
	}
	struct http_request req;
	http_request_init(&req, "POST", token_url);
	req.headers = basic ? headers : NULL;
	req.content_type = "application/x-www-form-urlencoded";
	req.body = body;
	req.body_len = strlen(body);
	req.no_auth = true;
	req.secret_body = true;
	req.idempotent = false; /* a refresh rotates the token: never re-send blindly */
	int err = http_request_do(http, &req, resp);
	free_secret(body);
	free(hdr);
	return err;
}

/* Whether a token endpoint refused the client authentication style. */
static bool client_auth_refused(const struct http_response *r)
{
	char e[64], d[16];
	if (r->status != 400 && r->status != 401)
		return false;
	auth_oauth_error_decode(r->body, r->body_len, e, sizeof(e), d, sizeof(d));
	return !strcmp(e, "unauthorized_client") || !strcmp(e, "invalid_client");
}

/* ---------------------------------------------------------------------- */
/* User-facing failure messages                                           */

/*
 * One line for a failed request to @url: what failed (@what), why, what to
 * do next. @err and @r come from http_request_do().
 */
static char *describe_http_failure(const char *what, const char *url, int err,
				   const struct http_response *r)
{
	char *origin = url_origin(url);
	const char *host = origin ? origin : url;
	const char *why = r && r->transport_error ? r->transport_error : strerror(-err);
	char *msg;
	switch (err) {
	case -ECONNREFUSED:
	case -EHOSTUNREACH:
	case -ETIMEDOUT:
	case -ENETUNREACH:
		msg = xasprintf("%s: cannot reach %s (%s): check the network connection, "
				"the endpoint options (api_url, jfs_url, token_url) and HTTPS_PROXY",
				what, host, why);
		break;
	case -EPROTO:
		msg = xasprintf("%s: the TLS connection to %s failed (%s): the server's "
				"certificate is not trusted or the handshake failed; "
				"to trust a private CA, pass -o cafile=FILE",
				what, host, why);
		break;
	default:
		if (r && r->status)
			msg = xasprintf("%s: %s answered HTTP %ld: try again later; if it "
					"persists, run 'jottafs login' again",
					what, host, r->status);
		else
			msg = xasprintf("%s: request to %s failed (%s)", what, host, why);
	}
	free(origin);
	return msg;
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

/*
 * GET the OIDC discovery document; *token_endpoint is malloc'd, and so is
 * *authz_endpoint when @authz_endpoint is not NULL (the code flow needs it).
 */
static int discover(struct http_client *http, const char *link, char **authz_endpoint,
		    char **token_endpoint, char **errmsg)
{
	struct http_request req;
	struct http_response resp;
	http_request_init(&req, "GET", link);
	req.no_auth = true;
	req.idempotent = true;
	req.max_body = 256 << 10;
	int err = http_request_do(http, &req, &resp);
	if (err < 0) {
		if (resp.status == 404)
			set_errmsg(errmsg, xasprintf("cannot fetch the login service's configuration: "
						     "%s does not exist (HTTP 404): %s", link,
						     authz_endpoint
						     ? "check the service's domain and realm in the "
						       "service table"
						     : "is the login token from this service?"));
		else
			set_errmsg(errmsg, describe_http_failure("cannot fetch the login service's "
								 "configuration", link, err, &resp));
		http_response_release(&resp);
		return err;
	}
	char *te = NULL, *ae = NULL;
	if (authz_endpoint)
		err = auth_discovery_endpoints_decode(resp.body, resp.body_len, &ae, &te);
	else
		err = auth_discovery_decode(resp.body, resp.body_len, &te);
	http_response_release(&resp);
	if (err == -ENOMEM)
		return err;
	if (err < 0) {
		set_errmsg(errmsg, xasprintf("the login service's configuration at %s has no "
					     "usable %s: the service may have changed%s", link,
					     authz_endpoint ? "authorization_endpoint and "
							      "token_endpoint" : "token_endpoint",
					     authz_endpoint ? "" : "; pass -o token_url=URL"));
		return -EIO;
	}
	int err2 = login_link_ok(te, "the token_endpoint of the login service's configuration",
				 errmsg);
	if (!err2 && ae)
		err2 = login_link_ok(ae, "the authorization_endpoint of the login service's "
				     "configuration", errmsg);
	if (err2 < 0) {
		free(te);
		free(ae);
		return err2;
	}
	*token_endpoint = te;
	if (authz_endpoint)
		*authz_endpoint = ae;
	return 0;
}

int auth_discover(struct http_client *http, const char *link, char **authz_endpoint,
		  char **token_endpoint, char **errmsg)
{
	if (errmsg)
		*errmsg = NULL;
	*authz_endpoint = *token_endpoint = NULL;
	int err = login_link_ok(link, "the login service's configuration link", errmsg);
	if (err == 0)
		err = discover(http, link, authz_endpoint, token_endpoint, errmsg);
	if (err < 0 && errmsg && !*errmsg)
		*errmsg = xasprintf("cannot fetch the login service's configuration: %s",
				    strerror(-err));
	return err;
}

/* Customer API: the internal user name (every JFS path starts with it). */
static int customer_username(struct http_client *http, const char *api_url,
			     const char *access_token, char **username, char **errmsg)
{
	char *url = xasprintf("%s/account/v1/customer", api_url);
	char *auth = xasprintf("Authorization: Bearer %s", access_token);
	if (!url || !auth) {
		free(url);
		free_secret(auth);
		return -ENOMEM;
	}
	const char *headers[] = { auth, NULL };
	struct http_request req;
	struct http_response resp;
	http_request_init(&req, "GET", url);
	req.headers = headers;
	req.no_auth = true; /* the token is ours, not the provider's */
	req.idempotent = true;
	req.max_body = 1 << 20;
	int err = http_request_do(http, &req, &resp);
	free_secret(auth);
	if (err < 0) {
		set_errmsg(errmsg, describe_http_failure("cannot read the account's user name",
							 url, err, &resp));
		free(url);
		http_response_release(&resp);
		return err;
	}
	/* the same decoder as net/jfs's (one set of rules for the name) */
	char *u = NULL;
	err = jfs_json_customer_username(resp.body, resp.body_len, &u);
	http_response_release(&resp);
	if (err == -ENOMEM) {
		free(url);
		return err;
	}
	if (err < 0) {
		set_errmsg(errmsg, xasprintf("cannot read the account's user name: %s returned "
					     "no usable 'username': check the api_url option", url));
		free(url);
		return -EIO;
	}
	free(url);
	*username = u;
	return 0;
}

/* The endpoint options' plain-HTTP policy, before anything is sent. */
static int check_endpoint_options(struct http_client *http, const struct auth_endpoints *ep,
				  char **errmsg)
{
	bool insecure = http_client_insecure_http(http);
	static const char *const names[] = { "api_url", "jfs_url", "token_url" };
	const char *urls[] = { ep->api_url, ep->jfs_url, ep->token_url };
	for (unsigned i = 0; i < 3; i++) {
		char where[32];
		snprintf(where, sizeof(where), "given with -o %s", names[i]);
		int err;
		if (urls[i] && (err = endpoint_ok(names[i], where, urls[i], insecure, errmsg)) < 0)
			return err;
	}
	return 0;
}

/*
 * The end of every login: the internal user name from the customer API with
 * the new access token, then the account file (written atomically, under
 * the old file's lock). @service is the key of the login service of the
 * code flow (NULL: login token); @token_url and @client_id are what
 * refreshes use from now on; @basic the client auth style that worked.
 */
static int store_login(struct http_client *http, const char *config_dir, const char *account,
		       const char *login_user, const char *service, const char *token_url,
		       const char *client_id, bool basic, const struct auth_tokens *t,
		       const struct auth_endpoints *ep, char **errmsg)
{
	char *username = NULL, *api_url = NULL, *jfs_url = NULL, *path = NULL, *real_dir = NULL;
	char dir_why[2 * PATH_MAX + 300];
	cJSON *j = NULL;
	int err, lockfd = -1;

	api_url = strdup(ep->api_url ? ep->api_url : AUTH_DEFAULT_API_URL);
	jfs_url = strdup(ep->jfs_url ? ep->jfs_url : AUTH_DEFAULT_JFS_URL);
	if (!api_url || !jfs_url) {
		err = -ENOMEM;
		goto out;
	}
	strip_slashes(api_url);
	strip_slashes(jfs_url);
	err = customer_username(http, api_url, t->access, &username, errmsg);
	if (err < 0)
		goto out;

	j = cJSON_CreateObject();
	if (!j) {
		err = -ENOMEM;
		goto out;
	}
	if (!cJSON_AddNumberToObject(j, "version", 1) ||
	    json_set_str(j, "login_user", login_user) ||
	    json_set_str(j, "username", username) ||
	    json_set_str(j, "service", service) ||
	    json_set_str(j, "api_url", api_url) ||
	    json_set_str(j, "jfs_url", jfs_url) ||
	    json_set_str(j, "token_url", token_url) ||
	    json_set_str(j, "cafile", ep->cafile) ||
	    json_set_str(j, "client_id", client_id) ||
	    json_set_tokens(j, t, basic)) {
		err = -ENOMEM;
		goto out;
	}
	/* Made 0700; refused unless only we (and root) can change it and the
	 * directories above it (lib/privdir.h). */
	err = privdir_make(config_dir, geteuid(), &real_dir, dir_why, sizeof(dir_why));
	if (err < 0) {
		set_errmsg(errmsg, xasprintf("cannot use the configuration directory: %s", dir_why));
		goto out;
	}
	path = account_path(real_dir, account);
	if (!path) {
		err = -ENOMEM;
		goto out;
	}
	/* Replacing an existing login: hold its lock so that a running mount
	 * does not refresh the old family into the new file meanwhile. */
	lockfd = lock_account_file(path);
	err = write_account_json(path, j);
	if (err < 0)
		set_errmsg(errmsg, xasprintf("cannot write the account file '%s': %s", path,
					     strerror(-err)));
	else if (service)
		log_info("logged in with service '%s' as %s (account '%s')", service, username,
			 account);
	else
		log_info("logged in as %s (account '%s')", login_user, account);
out:
	unlock_account_file(lockfd);
	json_wipe_secrets(j);
	cJSON_Delete(j);
	free(username);
	free(api_url);
	free(jfs_url);
	free(path);
	free(real_dir);
	return err;
}

int auth_login(struct http_client *http, const char *config_dir, const char *account,
	       const char *login_token, const struct auth_endpoints *ep, char **errmsg)
{
	static const struct auth_endpoints none;
	struct auth_login_token lt;
	char *why = NULL, *token_url = NULL, *form = NULL;
	struct auth_tokens t = { 0 };
	int err;

	if (errmsg)
		*errmsg = NULL;
	if (!ep)
		ep = &none;
	if (auth_account_name_valid(account) < 0) {
		set_errmsg(errmsg, xasprintf("invalid account name '%s': use letters, digits, "
					     "'-', '_' and '.' (not first), at most %d",
					     account, AUTH_ACCOUNT_MAX));
		return -EINVAL;
	}
	err = auth_login_token_decode(login_token, &lt, &why);
	if (err < 0) {
		set_errmsg(errmsg, xasprintf("the login token is malformed: %s: copy the whole "
					     "personal login token from Settings > Security in "
					     "the web interface and run 'jottafs login' again",
					     why ? why : "unreadable"));
		free(why);
		return err;
	}
	if (ep->cafile && !http_client_cafile(http)) {
		err = http_client_set_cafile(http, ep->cafile);
		if (err < 0) {
			set_errmsg(errmsg, xasprintf("cannot use cafile '%s': %s", ep->cafile,
						     err == -EINVAL ? "no PEM certificate in it"
								    : strerror(-err)));
			goto out;
		}
	}

	/* 0. the plain-HTTP policy, before anything is sent */
	{
		if ((err = check_endpoint_options(http, ep, errmsg)) < 0)
			goto out;
		if (!ep->token_url &&
		    (err = login_link_ok(lt.well_known_link, "the login token's discovery link",
					 errmsg)) < 0)
			goto out;
	}

	/* 1. the token endpoint */
	if (ep->token_url)
		token_url = strdup(ep->token_url);
	else if ((err = discover(http, lt.well_known_link, NULL, &token_url, errmsg)) < 0)
		goto out;
	if (!token_url) {
		err = -ENOMEM;
		goto out;
	}

	/* 2. password grant */
	{
		char *u = http_escape(lt.username, strlen(lt.username));
		char *p = http_escape(lt.auth_token, strlen(lt.auth_token));
		char *s = http_escape(AUTH_SCOPE, strlen(AUTH_SCOPE));
		if (u && p && s)
			form = xasprintf("grant_type=password&password=%s&scope=%s&username=%s",
					 p, s, u);
		free(u);
		free_secret(p);
		free(s);
		if (!form) {
			err = -ENOMEM;
			goto out;
		}
	}
	struct http_response resp;
	err = token_post(http, token_url, AUTH_CLIENT_ID, false, form, &resp);
	if (err < 0) {
		char e[64], d[160];
		auth_oauth_error_decode(resp.body, resp.body_len, e, sizeof(e), d, sizeof(d));
		if (!strcmp(e, "invalid_grant")) {
			err = -EKEYREJECTED;
			set_errmsg(errmsg, xasprintf(
				"the login token was refused by the server (invalid_grant%s%s): "
				"it has already been used or has expired; create a new personal "
				"login token under Settings > Security and run 'jottafs login' again",
				d[0] ? ": " : "", d));
		} else if (resp.status == 400 || resp.status == 401) {
			err = -EKEYREJECTED;
			set_errmsg(errmsg, xasprintf(
				"the server refused the login (HTTP %ld%s%s%s%s): create a new "
				"personal login token under Settings > Security and run "
				"'jottafs login' again", resp.status, e[0] ? ", " : "", e,
				d[0] ? ": " : "", d));
		} else {
			set_errmsg(errmsg, describe_http_failure("cannot log in", token_url, err,
								 &resp));
		}
		http_response_release(&resp);
		goto out;
	}
	err = auth_token_response_decode(resp.body, resp.body_len, NULL, time(NULL), &t);
	http_response_release(&resp);
	if (err < 0) {
		set_errmsg(errmsg, xasprintf("cannot log in: the token endpoint %s returned no "
					     "usable tokens", token_url));
		goto out;
	}

	/* 3. and 4. */
	err = store_login(http, config_dir, account, lt.username, NULL, token_url, AUTH_CLIENT_ID,
			  false, &t, ep, errmsg);
out:
	auth_tokens_release(&t);
	auth_login_token_release(&lt);
	free_secret(form);
	free(token_url);
	if (err < 0 && errmsg && !*errmsg)
		*errmsg = xasprintf("login failed: %s", strerror(-err));
	return err;
}

/* The code grant: the answer of the token endpoint for @g. */
static int code_grant(struct http_client *http, const struct auth_code_grant *g,
		      struct auth_tokens *t, bool *basic_out, char **errmsg)
{
	char *c = http_escape(g->code, strlen(g->code));
	char *r = http_escape(g->redirect_uri, strlen(g->redirect_uri));
	char *form = c && r ? xasprintf("code=%s&grant_type=authorization_code&redirect_uri=%s",
					c, r) : NULL;
	free_secret(c);
	free(r);
	if (!form)
		return -ENOMEM;
	/* client_id in the body first (what the reference's services take, and
	 * what a refresh sends); HTTP Basic when the server refuses that. A code
	 * the server refused for the client style is still unused. */
	bool basic = false;
	struct http_response resp;
	int err = token_post(http, g->token_url, g->client_id, basic, form, &resp);
	if (err < 0 && client_auth_refused(&resp)) {
		http_response_release(&resp);
		basic = true;
		err = token_post(http, g->token_url, g->client_id, basic, form, &resp);
	}
	free_secret(form);
	if (err < 0) {
		char e[64], d[160];
		auth_oauth_error_decode(resp.body, resp.body_len, e, sizeof(e), d, sizeof(d));
		if (!strcmp(e, "invalid_grant")) {
			err = -EKEYREJECTED;
			set_errmsg(errmsg, xasprintf(
				"the authorization code was refused by the server (invalid_grant%s%s): "
				"it has expired or was already used; run 'jottafs login --service %s' "
				"again and return to it within a few minutes",
				d[0] ? ": " : "", d, g->service));
		} else if (resp.status == 400 || resp.status == 401) {
			err = -EKEYREJECTED;
			set_errmsg(errmsg, xasprintf(
				"the server refused the login (HTTP %ld%s%s%s%s) for client '%s': check "
				"the service's entry in the service table, then run 'jottafs login "
				"--service %s' again", resp.status, e[0] ? ", " : "", e,
				d[0] ? ": " : "", d, g->client_id, g->service));
		} else {
			set_errmsg(errmsg, describe_http_failure("cannot log in", g->token_url, err,
								 &resp));
		}
		http_response_release(&resp);
		return err;
	}
	err = auth_token_response_decode(resp.body, resp.body_len, NULL, time(NULL), t);
	http_response_release(&resp);
	if (err < 0)
		set_errmsg(errmsg, xasprintf("cannot log in: the token endpoint %s returned no "
					     "usable tokens", g->token_url));
	*basic_out = basic;
	return err;
}

int auth_login_code(struct http_client *http, const char *config_dir, const char *account,
		    const struct auth_code_grant *g, const struct auth_endpoints *ep,
		    char **errmsg)
{
	static const struct auth_endpoints none;
	struct auth_tokens t = { 0 };
	bool basic = false;
	if (errmsg)
		*errmsg = NULL;
	if (!ep)
		ep = &none;
	if (auth_account_name_valid(account) < 0) {
		set_errmsg(errmsg, xasprintf("invalid account name '%s': use letters, digits, "
					     "'-', '_' and '.' (not first), at most %d",
					     account, AUTH_ACCOUNT_MAX));
		return -EINVAL;
	}
	int err = check_endpoint_options(http, ep, errmsg);
	if (!err)
		err = login_link_ok(g->token_url, "the token endpoint", errmsg);
	if (!err)
		err = code_grant(http, g, &t, &basic, errmsg);
	if (!err)
		err = store_login(http, config_dir, account, "", g->service, g->token_url,
				  g->client_id, basic, &t, ep, errmsg);
	auth_tokens_release(&t);
	if (err < 0 && errmsg && !*errmsg)
		*errmsg = xasprintf("login failed: %s", strerror(-err));
	return err;
}

int auth_logout(const char *config_dir, const char *account)
{
	if (auth_account_name_valid(account) < 0)
		return -EINVAL;
	char *path = account_path(config_dir, account);
	if (!path)
		return -ENOMEM;
	int fd = lock_account_file(path);
	int err = 0;
	if (fd < 0) {
		err = fd;
	} else if (unlink(path) < 0) {
		err = -errno;
	} else {
		int dfd = open(config_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	unlock_account_file(fd);
	free(path);
	return err;
}

/* ---------------------------------------------------------------------- */
/* Open, accessors                                                        */

/* A decoded account member, taken over from *@stored; @override (may be
 * NULL), when set, replaces it (a copy; NULL on ENOMEM). */
static char *take(char **stored, const char *override)
{
	char *v = *stored;
	*stored = NULL;
	if (!override)
		return v;
	free(v);
	return strdup(override);
}

int auth_open(struct http_client *http, const char *config_dir, const char *account,
	      const struct auth_endpoints *ep, struct auth **out, char **errmsg)
{
	static const struct auth_endpoints none;
	const char *named = strcmp(account, "default") ? account : NULL;
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
	char *path = account_path(real_dir ? real_dir : config_dir, account);
	free(real_dir);
	if (!path)
		return -ENOMEM;
	char *text = NULL;
	size_t text_len = 0;
	struct auth_account acc;
	err = read_account_file(path, -1, &text, &text_len);
	if (err == 0) {
		err = auth_account_decode(text, text_len, &acc);
		explicit_bzero(text, text_len);
		free(text);
	}
	if (err == -ENOENT) {
		set_errmsg(errmsg, xasprintf("not logged in (no account '%s'): run 'jottafs login%s%s' "
					     "first", account, named ? " --account " : "",
					     named ? named : ""));
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
					     "'jottafs login%s%s' again", path,
					     err == -EINVAL ? "not valid JSON" : strerror(-err),
					     named ? " --account " : "", named ? named : ""));
		free(path);
		return err;
	}
	/* Written 0600; one that others can read is made private again. */
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077)) {
		log_warn("the account file '%s' was readable by others (mode %03o): made it 0600; "
			 "if someone may have read it, run 'jottafs login%s%s' with a new token",
			 path, (unsigned)(st.st_mode & 0777), named ? " --account " : "",
			 named ? named : "");
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
	a->username = take(&acc.username, NULL);
	a->login_user = take(&acc.login_user, NULL);
	a->api_url = take(&acc.api_url, ep->api_url);
	a->jfs_url = take(&acc.jfs_url, ep->jfs_url);
	a->token_url = take(&acc.token_url, ep->token_url);
	a->cafile = take(&acc.cafile, ep->cafile);
	a->client_id = take(&acc.client_id, NULL);
	a->basic_auth = acc.basic_auth;
	struct auth_tokens t = acc.tokens;
	memset(&acc.tokens, 0, sizeof(acc.tokens));
	auth_account_release(&acc);
	if (!a->login_user)
		a->login_user = strdup("");
	if (!a->api_url)
		a->api_url = strdup(AUTH_DEFAULT_API_URL);
	if (!a->jfs_url)
		a->jfs_url = strdup(AUTH_DEFAULT_JFS_URL);
	if (!a->token_url)
		a->token_url = strdup(AUTH_DEFAULT_TOKEN_URL);
	if (!a->client_id)
		a->client_id = strdup(AUTH_CLIENT_ID);
	if (!t.refresh || !a->username) {
		set_errmsg(errmsg, xasprintf("the account file '%s' is incomplete (%s missing): run "
					     "'jottafs login%s%s' again", path,
					     !t.refresh ? "refresh_token" : "username",
					     named ? " --account " : "", named ? named : ""));
		auth_tokens_release(&t);
		auth_free(a);
		return -EINVAL;
	}
	if (!a->account || !a->login_user || !a->api_url || !a->jfs_url || !a->token_url ||
	    !a->client_id) {
		auth_tokens_release(&t);
		auth_free(a);
		return -ENOMEM;
	}
	strip_slashes(a->api_url);
	strip_slashes(a->jfs_url);
	{
		bool insecure = http_client_insecure_http(http);
		static const char *const names[] = { "api_url", "jfs_url", "token_url" };
		const char *given[] = { ep->api_url, ep->jfs_url, ep->token_url };
		const char *urls[] = { a->api_url, a->jfs_url, a->token_url };
		for (unsigned i = 0; i < 3; i++) {
			char *where = given[i] ? xasprintf("given with -o %s", names[i])
					       : xasprintf("stored in '%s'", path);
			err = endpoint_ok(names[i], where ? where : "", urls[i], insecure, errmsg);
			free(where);
			if (err < 0) {
				auth_tokens_release(&t);
				auth_free(a);
				return err;
			}
		}
	}
	err = set_tokens(a, &t);
	auth_tokens_release(&t);
	if (err) {
		auth_free(a);
		return err;
	}
	if (a->cafile && !http_client_cafile(http)) {
		err = http_client_set_cafile(http, a->cafile);
		if (err < 0) {
			set_errmsg(errmsg, xasprintf("cannot use cafile '%s': %s", a->cafile,
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
	secret_free(a->access_token);
	secret_free(a->refresh_token);
	free(a->path);
	free(a->account);
	free(a->username);
	free(a->login_user);
	free(a->api_url);
	free(a->jfs_url);
	free(a->token_url);
	free(a->cafile);
	free(a->client_id);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

const char *auth_username(const struct auth *a) { return a->username; }
const char *auth_api_url(const struct auth *a) { return a->api_url; }
const char *auth_jfs_url(const struct auth *a) { return a->jfs_url; }
const char *auth_cafile(const struct auth *a) { return a->cafile; }
const char *auth_login_user(const struct auth *a) { return a->login_user; }

static void try_revive(struct auth *a);

bool auth_is_dead(struct auth *a)
{
	pthread_mutex_lock(&a->lock);
	if (a->dead)
		try_revive(a);
	bool dead = a->dead;
	pthread_mutex_unlock(&a->lock);
	return dead;
}

/* ---------------------------------------------------------------------- */
/* Refresh                                                                */

/*
 * One refresh (see the top of the file). Runs with a->refreshing set and no
 * mutex held. @cur: the tokens this process had when the refresh started;
 * @refused_access: the access token the server refused (force), or NULL.
 * On success *out holds the tokens to use; @basic_out the client auth style.
 * Returns 0, -EKEYREJECTED (dead login), or another -errno (try later).
 */
static int refresh_tokens(struct auth *a, const struct auth_tokens *cur, bool basic_in,
			  const char *refused_access, struct auth_tokens *out, bool *basic_out)
{
	struct auth_tokens file = { 0 };
	cJSON *j = NULL;
	char *form = NULL;
	bool basic = basic_in;
	int err;

	memset(out, 0, sizeof(*out));
	*basic_out = basic_in;
	int fd = lock_account_file(a->path);
	if (fd < 0) {
		if (fd == -ENOENT) {
			log_err("the account file '%s' was removed (logged out): run 'jottafs login' "
				"again", a->path);
			return -EKEYREJECTED;
		}
		log_err("cannot lock the account file '%s': %s", a->path, strerror(-fd));
		return fd;
	}
	err = read_account_json(a->path, fd, &j);
	if (err == 0)
		err = json_get_tokens(j, &file);
	if (err < 0) {
		log_err("cannot read the account file '%s' (%s): run 'jottafs login' again", a->path,
			err == -EINVAL ? "damaged" : strerror(-err));
		goto out;
	}

	/* Another process may have rotated the tokens already: theirs are newer. */
	const char *rt = cur->refresh;
	if (strcmp(file.refresh, cur->refresh)) {
		time_t now = time(NULL);
		bool usable = file.access && file.expiry > now &&
			      (refused_access ? strcmp(file.access, refused_access) != 0
					      : token_fresh(file.access, file.expiry, file.lifetime, now));
		log_debug("auth: the account file has newer tokens (rotated by another process)%s",
			  usable ? "; using them" : "; refreshing them");
		if (usable) {
			*out = file;
			memset(&file, 0, sizeof(file));
			err = 0;
			goto out;
		}
		rt = file.refresh;
	}

	char *ert = http_escape(rt, strlen(rt));
	if (ert)
		form = xasprintf("grant_type=refresh_token&refresh_token=%s", ert);
	free_secret(ert);
	if (!form) {
		err = -ENOMEM;
		goto out;
	}
	struct http_response resp;
	err = token_post(a->http, a->token_url, a->client_id, basic, form, &resp);
	if (err < 0 && client_auth_refused(&resp)) {
		/* The other client authentication style; the server refused the
		 * client, not the token, so the token is still unused. */
		http_response_release(&resp);
		basic = !basic;
		log_debug("auth: token endpoint refused %s client auth; trying %s",
			  basic ? "body" : "basic", basic ? "basic" : "body");
		err = token_post(a->http, a->token_url, a->client_id, basic, form, &resp);
	}
	if (err < 0) {
		char e[64], d[160];
		auth_oauth_error_decode(resp.body, resp.body_len, e, sizeof(e), d, sizeof(d));
		if (!strcmp(e, "invalid_grant")) {
			err = -EKEYREJECTED;
		} else if (resp.status) {
			log_err("token refresh failed: %s answered HTTP %ld%s%s", a->token_url,
				resp.status, e[0] ? ": " : "", e);
		} else {
			log_err("token refresh failed: cannot reach %s (%s)", a->token_url,
				resp.transport_error ? resp.transport_error : strerror(-err));
		}
		http_response_release(&resp);
		goto out;
	}
	err = auth_token_response_decode(resp.body, resp.body_len, rt, time(NULL), out);
	http_response_release(&resp);
	if (err < 0) {
		log_err("token refresh failed: %s returned no usable tokens", a->token_url);
		goto out;
	}
	*basic_out = basic;

	/* Persist before anyone uses the new tokens (the old refresh token is
	 * dead now). If that fails this process still works with them. */
	err = json_set_tokens(j, out, basic);
	if (!err)
		err = write_account_json(a->path, j);
	if (err < 0)
		log_err("cannot save the refreshed tokens to '%s' (%s): other jottafs processes of "
			"this account will be logged out", a->path, strerror(-err));
	err = 0;
out:
	unlock_account_file(fd);
	json_wipe_secrets(j);
	cJSON_Delete(j);
	auth_tokens_release(&file);
	free_secret(form);
	return err;
}

/*
 * Called with a->lock held on a dead login: if the account file now holds
 * another token family (the user ran 'jottafs login' again), adopt it and
 * bring the login back. The lock is dropped around the read (no flock:
 * writers replace the file atomically). At most once per AUTH_REVIVE_CHECK_S.
 */
static void try_revive(struct auth *a)
{
	time_t now = time(NULL);
	if (now - a->dead_checked < AUTH_REVIVE_CHECK_S)
		return;
	a->dead_checked = now;
	pthread_mutex_unlock(&a->lock);
	cJSON *j = NULL;
	struct auth_tokens t = { 0 };
	bool got = read_account_json(a->path, -1, &j) == 0 && json_get_tokens(j, &t) == 0;
	json_wipe_secrets(j);
	cJSON_Delete(j);
	pthread_mutex_lock(&a->lock);
	if (got && a->dead && strcmp(t.refresh, a->refresh_token) && set_tokens(a, &t) == 0) {
		a->generation++;
		a->dead = false;
		a->dead_logged = false;
		log_info("a new login was found in '%s': using it", a->path);
	}
	auth_tokens_release(&t);
}

/*
 * http_token_provider.get_token: the cached access token while it is fresh
 * (and @force is false); otherwise one refresh for the whole process, which
 * concurrent callers wait for and share.
 */
static int provider_get_token(void *ctx, bool force, char **token)
{
	struct auth *a = ctx;
	int err = 0;

	pthread_mutex_lock(&a->lock);
	uint64_t gen0 = a->generation;
	for (;;) {
		if (a->dead)
			try_revive(a);
		time_t now = time(NULL);
		if (a->dead) {
			err = -EKEYREJECTED;
			break;
		}
		bool fresh = token_fresh(a->access_token, a->expiry, a->lifetime, now);
		/* A token that arrived after we were called is new enough even
		 * when forced (it is not the one the server refused). */
		bool newer = a->generation != gen0 && a->access_token && a->expiry > now;
		if ((fresh && !force) || newer) {
			*token = strdup(a->access_token);
			err = *token ? 0 : -ENOMEM;
			break;
		}
		if (a->refreshing) {
			pthread_cond_wait(&a->cond, &a->lock);
			continue;
		}

		/* This thread refreshes; the others wait for it. */
		a->refreshing = true;
		struct auth_tokens cur = { .access = a->access_token ? strdup(a->access_token) : NULL,
				      .refresh = strdup(a->refresh_token) };
		bool basic = a->basic_auth, basic_out = basic;
		pthread_mutex_unlock(&a->lock);

		struct auth_tokens fresh_tokens = { 0 };
		if (!cur.refresh)
			err = -ENOMEM;
		else
			err = refresh_tokens(a, &cur, basic, force ? cur.access : NULL,
					     &fresh_tokens, &basic_out);

		pthread_mutex_lock(&a->lock);
		a->refreshing = false;
		if (err == 0)
			err = set_tokens(a, &fresh_tokens);
		if (err == 0) {
			a->basic_auth = basic_out;
			a->generation++;
		} else if (err == -EKEYREJECTED) {
			a->dead = true;
			a->dead_checked = time(NULL);
			if (!a->dead_logged) {
				a->dead_logged = true;
				log_err("the login was revoked (invalid_grant): run 'jottafs login%s%s' "
					"again", strcmp(a->account, "default") ? " --account " : "",
					strcmp(a->account, "default") ? a->account : "");
			}
		}
		pthread_cond_broadcast(&a->cond);
		auth_tokens_release(&cur);
		auth_tokens_release(&fresh_tokens);
		if (err < 0)
			break;
		/* loop: hand out the new token (generation changed) */
	}
	pthread_mutex_unlock(&a->lock);
	return err;
}

void auth_token_provider(struct auth *a, struct http_token_provider *out)
{
	out->get_token = provider_get_token;
	out->ctx = a;
}
