/*
 * auth/auth.h — login, the token store and token refresh.
 *
 * An account is one file, $XDG_CONFIG_HOME/jottafs/<account>.json (directory
 * 0700, file 0600), holding the OAuth tokens, the token endpoint and client
 * id, the internal username and the API endpoints used at login. Writes are
 * atomic: temp file, fsync, rename, fsync of the directory.
 *
 * Refresh tokens rotate and a reused one kills the whole token family, so a
 * refresh is:
 *   single-flight inside the process (one mutex; other threads wait for it),
 *   serialised across processes (flock(LOCK_EX) on the account file),
 *   preceded by a re-read of the file (another process may have rotated),
 *   followed by an atomic write of the new tokens BEFORE they are used.
 * Access tokens are refreshed 60 s before they expire.
 *
 * Secrets (login token, access/refresh tokens) never reach a log.
 */
#ifndef JOTTAFS_AUTH_H
#define JOTTAFS_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct http_client;
struct http_token_provider;
struct auth;

/* Endpoints to use; NULL members take the defaults (the real service). */
struct auth_endpoints {
	const char *api_url;     /* default https://api.jottacloud.com */
	const char *jfs_url;     /* default https://jfs.jottacloud.com/jfs */
	const char *token_url;   /* overrides the discovered token endpoint */
	/* An extra CA (PEM) trusted besides the system's.
	 * auth_login stores it; auth_open applies the stored one to the http
	 * client when the client has none (see auth_open). */
	const char *cafile;
};

/*
 * Directory of the account files: $XDG_CONFIG_HOME/jottafs, else
 * $HOME/.config/jottafs. *out is malloc'd.
 */
int auth_config_dir(char **out);

/*
 * Validate an account name (letters, digits, '-', '_', '.', not starting
 * with '.'; at most 64 bytes). 0 or -EINVAL.
 */
int auth_account_name_valid(const char *account);

/*
 * Trade a personal login token for OAuth tokens and store the account
 * (standard flow: decode the unpadded base64url JSON, GET the discovery
 * document, password grant with client "jottacli" and scope
 * "openid offline_access", then the customer API for the username).
 * On failure *errmsg (malloc'd, may be NULL) is a one-line message for the
 * user: what failed, why, and what to do next. Returns 0 or -errno
 * (-EINVAL malformed token, -EKEYREJECTED token refused or already used,
 * -EHOSTUNREACH/-ECONNREFUSED/-ETIMEDOUT unreachable, -EPROTO TLS failure).
 */
int auth_login(struct http_client *http, const char *config_dir, const char *account,
	       const char *login_token, const struct auth_endpoints *ep, char **errmsg);

/*
 * The end of the authorization-code flow (auth/codeflow.h runs the rest):
 * trade @g->code for tokens at @g->token_url (client_id in the body, HTTP
 * Basic when the server refuses that), then exactly what auth_login does
 * after its grant: the customer API for the username and the account file,
 * which records @g->service, @g->token_url and @g->client_id so that
 * refreshes use them. 0, -EKEYREJECTED (code expired, used, or the client
 * refused), -EINVAL, network errors as auth_login.
 */
struct auth_code_grant {
	const char *service;      /* the service table key (messages, account file) */
	const char *token_url;    /* from the discovery document (or -o token_url) */
	const char *client_id;
	const char *code;         /* the authorization code (a secret) */
	const char *redirect_uri; /* exactly as sent in the authorization request */
};
int auth_login_code(struct http_client *http, const char *config_dir, const char *account,
		    const struct auth_code_grant *g, const struct auth_endpoints *ep,
		    char **errmsg);

/*
 * GET the OIDC discovery document at @link (https, or http to a loopback
 * host) and return its authorization_endpoint and token_endpoint
 * (malloc'd), each checked like the login token's links. *errmsg as
 * auth_login.
 */
int auth_discover(struct http_client *http, const char *link, char **authz_endpoint,
		  char **token_endpoint, char **errmsg);

/*
 * A personal login token, decoded: unpadded base64url (alphabet
 * A-Za-z0-9-_, no '=') of a JSON object with string fields username, realm
 * (optional), well_known_link (or wellKnownLink) and auth_token. Surrounding whitespace is ignored. On -EINVAL *why (malloc'd,
 * may be NULL) says what is wrong, in a few words, without the token.
 */
struct auth_login_token {
	char *username;
	char *realm;             /* "" when absent */
	char *well_known_link;
	char *auth_token;        /* the single-use secret */
};
int auth_login_token_decode(const char *text, struct auth_login_token *out, char **why);
/* Wipe and free the fields. */
void auth_login_token_release(struct auth_login_token *t);

/*
 * The decoders of what the login servers and the account file give us
 * (auth/decode.c, auth/account.c): pure (no I/O, no globals, nothing logged
 * but a warning about an unexpected token_type), the very functions
 * auth_login, auth_open and the refresh use; exposed for the unit tests and
 * the fuzz target.
 */

/* OAuth tokens, from a token endpoint answer or the account file. */
struct auth_tokens {
	char *access;            /* access token; NULL when the account file has none */
	char *refresh;           /* refresh token */
	time_t expiry;           /* unix seconds (0: unknown) */
	long lifetime;           /* expires_in when issued, seconds (0: unknown) */
};
/* Wipe and free the tokens; the struct is zeroed. */
void auth_tokens_release(struct auth_tokens *t);

/*
 * A token endpoint's success answer: a JSON object with string members
 * access_token and refresh_token (@old_refresh, may be NULL, is kept when
 * the answer has none) and expires_in, a number or a numeric string within
 * 1..AUTH_LIFETIME_MAX seconds (otherwise 3600 is assumed). expiry is
 * @now + lifetime. 0, or -EIO (not such an object, a token missing) with
 * @out zeroed; -ENOMEM.
 */
#define AUTH_LIFETIME_MAX 999999999L
int auth_token_response_decode(const char *body, size_t len, const char *old_refresh,
			       time_t now, struct auth_tokens *out);

/*
 * The OAuth "error" and "error_description" of an error answer, through
 * redact_str() (lib/redact.h: printable, capped, nothing token-like) into
 * @err (@errsz > 0) and @desc (@descsz > 0); "" when absent or when @body
 * (may be NULL) is not a JSON object.
 */
void auth_oauth_error_decode(const char *body, size_t len, char *err, size_t errsz, char *desc,
			     size_t descsz);

/*
 * The OIDC discovery document: its token_endpoint, which must be a URL
 * that url_check() (net/url.h) does not refuse; whether plain http is
 * allowed is the caller's decision. *token_endpoint is malloc'd. 0, -EIO,
 * -ENOMEM.
 */
int auth_discovery_decode(const char *body, size_t len, char **token_endpoint);
/* The same for both authorization_endpoint and token_endpoint;
 * -EIO unless both are there. */
int auth_discovery_endpoints_decode(const char *body, size_t len, char **authorization_endpoint,
				    char **token_endpoint);

/*
 * The account file (its members are listed at the top of auth/auth.c), decoded. String members
 * are malloc'd, NULL when absent, empty or not strings; tokens.refresh NULL
 * means the file holds no login. expiry and lifetime are whole seconds
 * within [0, 2^53] (anything else: 0).
 */
struct auth_account {
	char *username;
	char *login_user;
	char *api_url;
	char *jfs_url;
	char *token_url;
	char *cafile;
	char *client_id;
	bool basic_auth;         /* client_auth "basic" */
	struct auth_tokens tokens;
};
/* 0, -EINVAL (not a JSON object), -ENOMEM (@out zeroed on error). */
int auth_account_decode(const char *text, size_t len, struct auth_account *out);
/* Free the members (tokens wiped); the struct is zeroed. */
void auth_account_release(struct auth_account *acc);

/* Remove the account file. -ENOENT when there was none. */
int auth_logout(const char *config_dir, const char *account);

/*
 * Open a stored account. -ENOENT when not logged in (errmsg says to run
 * 'jottafs login'). @ep members that are not NULL override the stored
 * endpoints for this process (not persisted). The extra CA: @ep->cafile if
 * set, else the stored one; when @http has no extra CA yet
 * (http_client_cafile() == NULL) this one is installed on it.
 */
int auth_open(struct http_client *http, const char *config_dir, const char *account,
	      const struct auth_endpoints *ep, struct auth **out, char **errmsg);
void auth_free(struct auth *a);

/* Stored values; valid while @a lives. */
const char *auth_username(const struct auth *a);
const char *auth_api_url(const struct auth *a);
const char *auth_jfs_url(const struct auth *a);
/* The extra CA file in effect (NULL: none), and the login name from
 * the login token (e-mail; "" when unknown). */
const char *auth_cafile(const struct auth *a);
const char *auth_login_user(const struct auth *a);

/* The token provider for net/http, backed by @a (which must outlive the client's use). */
void auth_token_provider(struct auth *a, struct http_token_provider *out);

/*
 * True once the service refused the refresh token (invalid_grant): the user
 * must log in again; the mount serves what it has cached, read-only. It
 * turns false again by itself after the user logs in again (the account
 * file is looked at every few seconds while dead).
 */
bool auth_is_dead(struct auth *a);

#endif
