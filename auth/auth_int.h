/*
 * auth/auth_int.h — what the files of auth/ share (nothing else includes
 * it): auth/auth.c (small helpers, auth_open, the accessors),
 * auth/account.c (the account file: paths, locking, reading, atomic
 * writes, its JSON), auth/decode.c (the pure decoders of auth.h),
 * auth/login.c (the token endpoint, discovery, the customer API, login),
 * auth/tokens.c (refresh and rotation: the token provider), and
 * auth/codeflow.c. The threading model and lock order are described at the
 * top of auth/auth.c.
 */
#ifndef JOTTAFS_AUTH_INT_H
#define JOTTAFS_AUTH_INT_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"

struct http_client;
struct http_response;

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
#define AUTH_REVIVE_CHECK_S    5        /* a dead login looks for a new one this often */

struct auth {
	struct http_client *http;
	/* immutable after auth_open() */
	char *path;              /* the account file */
	char *account;
	/* The account file's members, with the -o overrides and the defaults
	 * applied: the strings are immutable after auth_open(); acc.tokens
	 * (secret_strdup() copies, see auth_set_tokens) and acc.basic_auth
	 * (client auth with HTTP Basic, else client_id in the body) are
	 * protected by lock. */
	struct auth_account acc;

	pthread_mutex_t lock;
	pthread_cond_t cond;     /* signalled when a refresh ends */
	/* protected by lock: */
	bool refreshing;
	uint64_t generation;     /* bumped whenever the tokens change */
	bool dead;
	bool dead_logged;
	double dead_checked;     /* last look for a new login (clock_mono()) */
};

/* auth/auth.c */
/* Wipe and free a heap string that may hold a secret; NULL is fine. */
static inline void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Replace *@errmsg (when @errmsg is not NULL) by @msg, which is taken over. */
static inline void set_errmsg(char **errmsg, char *msg)
{
	if (errmsg) {
		free(*errmsg);
		*errmsg = msg;
	} else {
		free(msg);
	}
}

/* strdup of a JSON string member, or NULL when absent / not a string / "". */
char *auth_json_str(const cJSON *obj, const char *name);
/* "scheme://host[:port]" of @url (user info dropped), for messages. malloc'd. */
char *auth_url_origin(const char *url);
/* The plain-HTTP policy for an endpoint the user chose (see auth.c). */
int auth_endpoint_ok(const char *what, const char *where, const char *url, bool insecure_http,
		     char **errmsg);
/* The plain-HTTP policy for a link from a login token or a server (see auth.c). */
int auth_login_link_ok(const char *url, const char *what, char **errmsg);
/* Wipe the token strings inside an account/token JSON tree before it is freed. */
void auth_json_wipe_secrets(cJSON *j);
/* Strip trailing '/' characters of a malloc'd URL in place. */
void auth_strip_slashes(char *url);
/* The command that logs @account in again, for messages: "jottafs login",
 * or "jottafs login --account NAME" (in @buf) for an account not "default". */
#define AUTH_LOGIN_CMD_MAX (sizeof("jottafs login --account ") + AUTH_ACCOUNT_MAX)
const char *auth_login_cmd(const char *account, char buf[AUTH_LOGIN_CMD_MAX]);

/* auth/account.c */
char *auth_account_path(const char *config_dir, const char *account);
/* Open and flock(LOCK_EX) the account file: the locked fd or -errno. */
int auth_lock_account_file(const char *path);
void auth_unlock_account_file(int fd);
/* Read the account file through @fd (or @path when fd < 0); *out malloc'd. */
int auth_read_account_file(const char *path, int fd, char **out, size_t *out_len);
int auth_read_account_json(const char *path, int fd, cJSON **out);
/* Serialise @j and write it atomically to @path. */
int auth_write_account_json(const char *path, const cJSON *j);
/* Set (replace) string member @name of @j; NULL removes it. */
int auth_json_set_str(cJSON *j, const char *name, const char *value);
/* Put @t (and the client auth style) into the account JSON @j. */
int auth_json_set_tokens(cJSON *j, const struct auth_tokens *t, bool basic_auth);
/* Tokens stored in the account JSON. -EINVAL when the refresh token is missing. */
int auth_json_get_tokens(const cJSON *j, struct auth_tokens *t);

/* auth/login.c */
/* POST a form to the token endpoint (client_id added: body, or Basic). */
int auth_token_post(struct http_client *http, const char *token_url, const char *client_id,
		    bool basic, const char *form, struct http_response *resp);
/* Whether a token endpoint refused the client authentication style. */
bool auth_client_auth_refused(const struct http_response *r);

/* auth/tokens.c */
/* Replace the live tokens of @a by secret copies of @t's (a->lock held, or
 * before @a is shared). 0 or -ENOMEM (@a unchanged). */
int auth_set_tokens(struct auth *a, const struct auth_tokens *t);

#endif
