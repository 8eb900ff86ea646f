/*
 * auth/login.c — logging in: the token endpoint (client
 * authentication styles), the OIDC discovery, the customer API for the
 * user name, the password grant of a login token (auth_login), the code
 * grant (auth_login_code) and the account file both end with; the
 * user-facing messages for their failures.
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

/*
 * POST a form to the token endpoint. @form must not contain client_id: it is
 * added to the body, or sent as HTTP Basic ("<id>:") when @basic. Returns
 * http_request_do()'s result with @resp filled in.
 */
int auth_token_post(struct http_client *http, const char *token_url, const char *client_id,
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
bool auth_client_auth_refused(const struct http_response *r)
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
	char *origin = auth_url_origin(url);
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
	int err2 = auth_login_link_ok(te, "the token_endpoint of the login service's "
				      "configuration", errmsg);
	if (!err2 && ae)
		err2 = auth_login_link_ok(ae, "the authorization_endpoint of the login "
					  "service's configuration", errmsg);
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
	int err = auth_login_link_ok(link, "the login service's configuration link", errmsg);
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
		if (urls[i] &&
		    (err = auth_endpoint_ok(names[i], where, urls[i], insecure, errmsg)) < 0)
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
	auth_strip_slashes(api_url);
	auth_strip_slashes(jfs_url);
	err = customer_username(http, api_url, t->access, &username, errmsg);
	if (err < 0)
		goto out;

	j = cJSON_CreateObject();
	if (!j) {
		err = -ENOMEM;
		goto out;
	}
	if (!cJSON_AddNumberToObject(j, "version", 1) ||
	    auth_json_set_str(j, "login_user", login_user) ||
	    auth_json_set_str(j, "username", username) ||
	    auth_json_set_str(j, "service", service) ||
	    auth_json_set_str(j, "api_url", api_url) ||
	    auth_json_set_str(j, "jfs_url", jfs_url) ||
	    auth_json_set_str(j, "token_url", token_url) ||
	    auth_json_set_str(j, "cafile", ep->cafile) ||
	    auth_json_set_str(j, "client_id", client_id) ||
	    auth_json_set_tokens(j, t, basic)) {
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
	path = auth_account_path(real_dir, account);
	if (!path) {
		err = -ENOMEM;
		goto out;
	}
	/* Replacing an existing login: hold its lock so that a running mount
	 * does not refresh the old family into the new file meanwhile. */
	lockfd = auth_lock_account_file(path);
	err = auth_write_account_json(path, j);
	if (err < 0)
		set_errmsg(errmsg, xasprintf("cannot write the account file '%s': %s", path,
					     strerror(-err)));
	else if (service)
		log_info("logged in with service '%s' as %s (account '%s')", service, username,
			 account);
	else
		log_info("logged in as %s (account '%s')", login_user, account);
out:
	auth_unlock_account_file(lockfd);
	auth_json_wipe_secrets(j);
	cJSON_Delete(j);
	free(username);
	free(api_url);
	free(jfs_url);
	free(path);
	free(real_dir);
	return err;
}

/* The start of every login: *@errmsg cleared, *@ep defaulted, @account
 * checked. 0 or -EINVAL (with *@errmsg). */
static int login_start(const char *account, const struct auth_endpoints **ep, char **errmsg)
{
	static const struct auth_endpoints none;
	if (errmsg)
		*errmsg = NULL;
	if (!*ep)
		*ep = &none;
	if (auth_account_name_valid(account) < 0) {
		set_errmsg(errmsg, xasprintf("invalid account name '%s': use letters, digits, "
					     "'-', '_' and '.' (not first), at most %d",
					     account, AUTH_ACCOUNT_MAX));
		return -EINVAL;
	}
	return 0;
}

/* Why the token endpoint refused a grant, for the caller's message. */
struct grant_refusal {
	bool refused;            /* invalid_grant, or HTTP 400/401 */
	long status;             /* the HTTP status */
	char e[64], d[160];      /* OAuth error and description ("" when absent) */
};

/*
 * The answer to a grant at @token_url (@err and @resp from auth_token_post();
 * @resp is released here): the tokens in *@t; or -EKEYREJECTED when the
 * server refused the grant (@why says how; the caller writes *@errmsg); or
 * another error with *@errmsg set.
 */
static int grant_answer(int err, struct http_response *resp, const char *token_url,
			struct auth_tokens *t, struct grant_refusal *why, char **errmsg)
{
	memset(why, 0, sizeof(*why));
	if (err < 0) {
		auth_oauth_error_decode(resp->body, resp->body_len, why->e, sizeof(why->e), why->d,
					sizeof(why->d));
		why->status = resp->status;
		if (!strcmp(why->e, "invalid_grant") || resp->status == 400 || resp->status == 401) {
			why->refused = true;
			err = -EKEYREJECTED;
		} else {
			set_errmsg(errmsg, describe_http_failure("cannot log in", token_url, err, resp));
		}
		http_response_release(resp);
		return err;
	}
	err = auth_token_response_decode(resp->body, resp->body_len, NULL, time(NULL), t);
	http_response_release(resp);
	if (err < 0)
		set_errmsg(errmsg, xasprintf("cannot log in: the token endpoint %s returned no "
					     "usable tokens", token_url));
	return err;
}

int auth_login(struct http_client *http, const char *config_dir, const char *account,
	       const char *login_token, const struct auth_endpoints *ep, char **errmsg)
{
	struct auth_login_token lt;
	char *why = NULL, *token_url = NULL, *form = NULL;
	struct auth_tokens t = { 0 };
	int err;

	if ((err = login_start(account, &ep, errmsg)) < 0)
		return err;
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
		    (err = auth_login_link_ok(lt.well_known_link,
					      "the login token's discovery link", errmsg)) < 0)
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
	struct grant_refusal no;
	err = auth_token_post(http, token_url, AUTH_CLIENT_ID, false, form, &resp);
	err = grant_answer(err, &resp, token_url, &t, &no, errmsg);
	if (no.refused && !strcmp(no.e, "invalid_grant"))
		set_errmsg(errmsg, xasprintf(
			"the login token was refused by the server (invalid_grant%s%s): "
			"it has already been used or has expired; create a new personal "
			"login token under Settings > Security and run 'jottafs login' again",
			no.d[0] ? ": " : "", no.d));
	else if (no.refused)
		set_errmsg(errmsg, xasprintf(
			"the server refused the login (HTTP %ld%s%s%s%s): create a new "
			"personal login token under Settings > Security and run "
			"'jottafs login' again", no.status, no.e[0] ? ", " : "", no.e,
			no.d[0] ? ": " : "", no.d));
	if (err < 0)
		goto out;

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
	int err = auth_token_post(http, g->token_url, g->client_id, basic, form, &resp);
	if (err < 0 && auth_client_auth_refused(&resp)) {
		http_response_release(&resp);
		basic = true;
		err = auth_token_post(http, g->token_url, g->client_id, basic, form, &resp);
	}
	free_secret(form);
	struct grant_refusal no;
	err = grant_answer(err, &resp, g->token_url, t, &no, errmsg);
	if (no.refused && !strcmp(no.e, "invalid_grant"))
		set_errmsg(errmsg, xasprintf(
			"the authorization code was refused by the server (invalid_grant%s%s): "
			"it has expired or was already used; run 'jottafs login --service %s' "
			"again and return to it within a few minutes",
			no.d[0] ? ": " : "", no.d, g->service));
	else if (no.refused)
		set_errmsg(errmsg, xasprintf(
			"the server refused the login (HTTP %ld%s%s%s%s) for client '%s': check "
			"the service's entry in the service table, then run 'jottafs login "
			"--service %s' again", no.status, no.e[0] ? ", " : "", no.e,
			no.d[0] ? ": " : "", no.d, g->client_id, g->service));
	*basic_out = basic;
	return err;
}

int auth_login_code(struct http_client *http, const char *config_dir, const char *account,
		    const struct auth_code_grant *g, const struct auth_endpoints *ep,
		    char **errmsg)
{
	struct auth_tokens t = { 0 };
	bool basic = false;
	int err = login_start(account, &ep, errmsg);
	if (err < 0)
		return err;
	err = check_endpoint_options(http, ep, errmsg);
	if (!err)
		err = auth_login_link_ok(g->token_url, "the token endpoint", errmsg);
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
