/*
 * auth/codeflow.h — the OAuth 2 authorization-code flow ("traditional"
 * login of jottacloud-api.md §2.4) for the services of auth/services.h.
 *
 *   1. GET <service url>/auth/realms/<realm>/.well-known/openid-configuration
 *   2. print the authorization URL on its own line (and open a browser when
 *      a display is present):
 *        <authorization_endpoint>?access_type=offline&client_id=<id>
 *          &redirect_uri=http%3A%2F%2Flocalhost%3A<port>%2F&response_type=code
 *          &scope=<scopes>&state=<random>
 *      No PKCE: the reference documents the flow the services accept, and it
 *      has none; we send nothing it does not describe.
 *   3. take the answer from whichever comes first:
 *      - the loopback listener on 127.0.0.1:<port> (53682, the port rclone
 *        users know, else any free port; the redirect URI names the port
 *        actually bound). It answers only GET of the path "/" with the
 *        expected state, from a loopback peer, once, with a short "you can
 *        close this tab" page; anything else gets an error page and is
 *        otherwise ignored;
 *      - standard input: the whole address the browser was sent to, its
 *        query, or the bare code (one line). A pasted state that differs is
 *        refused.
 *      Both are always offered; the wait ends after a timeout.
 *   4. auth_login_code() (auth/auth.h): code -> tokens, username, account.
 *
 * Single-threaded. No globals. The parsers are pure (unit-tested).
 */
#ifndef JOTTAFS_AUTH_CODEFLOW_H
#define JOTTAFS_AUTH_CODEFLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct http_client;
struct auth_endpoints;
struct service;

#define CODEFLOW_PORT       53682
#define CODEFLOW_TIMEOUT_S  300
#define CODEFLOW_STATE_SIZE 44      /* 43 base64url characters and the NUL */
#define CODEFLOW_INPUT_MAX  8192    /* bytes of a pasted line or request head */

/* A fresh random state (32 bytes from the OpenSSL CSPRNG, base64url). 0 or -EIO. */
int codeflow_state_new(char out[CODEFLOW_STATE_SIZE]);

/*
 * The authorization URL for @authz_endpoint (which may already carry a
 * query), parameters in the order Go's url.Values.Encode gives them, values
 * escaped through curl. *out is malloc'd. 0 or -ENOMEM.
 */
int codeflow_auth_url(const char *authz_endpoint, const char *client_id,
		      const char *redirect_uri, const char *scopes, const char *state,
		      char **out);

/*
 * What the user pasted (@text, @len bytes; surrounding white space
 * ignored): a redirect URL, its "?query", a bare query, or the bare code.
 * With a query, its state must equal @state. *code is malloc'd; on error
 * *why (malloc'd, may be NULL) says in a few words what is wrong (it never
 * holds the code). Returns 0, -ENODATA (nothing pasted), -EPERM (state
 * missing or different), -EACCES (error=access_denied: consent denied),
 * -EKEYREJECTED (another error= from the service), -EINVAL (no code in it,
 * or not a code), -ENOMEM.
 */
int codeflow_parse_paste(const char *text, size_t len, const char *state, char **code,
			 char **why);

/*
 * A request head the listener received (@head, @len bytes). Only "GET
 * /?query HTTP/1.x" (path exactly "/") counts; the query is judged as in
 * codeflow_parse_paste, except that a bare code is not accepted. Returns as
 * codeflow_parse_paste, and -ENOENT for another method or path.
 */
int codeflow_parse_request(const char *head, size_t len, const char *state, char **code,
			   char **why);

/* The loopback listener. */
struct codeflow_listener;

/*
 * Listen on 127.0.0.1:@port, or on a free port when that one is taken
 * (@port 0: any free port). 0 or -errno.
 */
int codeflow_listen(uint16_t port, struct codeflow_listener **out);
uint16_t codeflow_listener_port(const struct codeflow_listener *l);
void codeflow_listener_free(struct codeflow_listener *l);

/*
 * Wait up to @timeout_s seconds for the code, from the listener @l and from
 * @paste_fd (-1: none; its end of file only stops reading it). Returns 0
 * with *code (malloc'd), -ETIMEDOUT, or codeflow_parse_paste()'s errors for
 * the answer that ended the wait; *errmsg (malloc'd) is a one-line message.
 */
int codeflow_wait(struct codeflow_listener *l, int paste_fd, const char *state, int timeout_s,
		  char **code, char **errmsg);

struct codeflow_options {
	uint16_t port;           /* preferred listener port (0: CODEFLOW_PORT) */
	int timeout_s;           /* 0: CODEFLOW_TIMEOUT_S */
	int paste_fd;            /* where a pasted answer comes from (-1: none) */
	FILE *out;               /* where the URL and the instructions go */
	bool open_browser;       /* run xdg-open when DISPLAY/WAYLAND_DISPLAY is set */
};

/*
 * The whole flow for @svc, ending in the account file of @account (see
 * auth_login_code). @ep as for auth_login (a token_url there replaces the
 * discovered token endpoint). 0 or -errno with *errmsg set.
 */
int codeflow_login(struct http_client *http, const char *config_dir, const char *account,
		   const struct service *svc, const struct codeflow_options *o,
		   const struct auth_endpoints *ep, char **errmsg);

#endif
