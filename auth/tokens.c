/*
 * auth/tokens.c — the live tokens of an open account: the
 * token provider for net/http, single-flight refresh with rotation across
 * processes, and the dead login that comes back after a new login. The
 * protocol and lock order are described at the top of auth/auth.c.
 */
#include "auth/auth.h"
#include "auth/auth_int.h"

#include "lib/clock.h"
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

/* Replace the tokens of @a (a->lock held, or before @a is shared) by copies
 * of @t's in memory kept out of core dumps (lib/secret.h); @t keeps its
 * own. 0 or -ENOMEM (@a unchanged). */
int auth_set_tokens(struct auth *a, const struct auth_tokens *t)
{
	char *access = t->access ? secret_strdup(t->access) : NULL;
	char *refresh = t->refresh ? secret_strdup(t->refresh) : NULL;

	if ((t->access && !access) || (t->refresh && !refresh)) {
		secret_free(access);
		secret_free(refresh);
		return -ENOMEM;
	}
	secret_free(a->acc.tokens.access);
	secret_free(a->acc.tokens.refresh);
	a->acc.tokens.access = access;
	a->acc.tokens.refresh = refresh;
	a->acc.tokens.expiry = t->expiry;
	a->acc.tokens.lifetime = t->lifetime;
	return 0;
}

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
	int fd = auth_lock_account_file(a->path);
	if (fd < 0) {
		if (fd == -ENOENT) {
			log_err("the account file '%s' was removed (logged out): run 'jottafs login' "
				"again", a->path);
			return -EKEYREJECTED;
		}
		log_err("cannot lock the account file '%s': %s", a->path, strerror(-fd));
		return fd;
	}
	err = auth_read_account_json(a->path, fd, &j);
	if (err == 0)
		err = auth_json_get_tokens(j, &file);
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
	err = auth_token_post(a->http, a->acc.token_url, a->acc.client_id, basic, form, &resp);
	if (err < 0 && auth_client_auth_refused(&resp)) {
		/* The other client authentication style; the server refused the
		 * client, not the token, so the token is still unused. */
		http_response_release(&resp);
		basic = !basic;
		log_debug("auth: token endpoint refused %s client auth; trying %s",
			  basic ? "body" : "basic", basic ? "basic" : "body");
		err = auth_token_post(a->http, a->acc.token_url, a->acc.client_id, basic, form,
				      &resp);
	}
	if (err < 0) {
		char e[64], d[160];
		auth_oauth_error_decode(resp.body, resp.body_len, e, sizeof(e), d, sizeof(d));
		if (!strcmp(e, "invalid_grant")) {
			err = -EKEYREJECTED;
		} else if (resp.status) {
			log_err("token refresh failed: %s answered HTTP %ld%s%s", a->acc.token_url,
				resp.status, e[0] ? ": " : "", e);
		} else {
			log_err("token refresh failed: cannot reach %s (%s)", a->acc.token_url,
				resp.transport_error ? resp.transport_error : strerror(-err));
		}
		http_response_release(&resp);
		goto out;
	}
	err = auth_token_response_decode(resp.body, resp.body_len, rt, time(NULL), out);
	http_response_release(&resp);
	if (err < 0) {
		log_err("token refresh failed: %s returned no usable tokens", a->acc.token_url);
		goto out;
	}
	*basic_out = basic;

	/* Persist before anyone uses the new tokens (the old refresh token is
	 * dead now). If that fails this process still works with them. */
	err = auth_json_set_tokens(j, out, basic);
	if (!err)
		err = auth_write_account_json(a->path, j);
	if (err < 0)
		log_err("cannot save the refreshed tokens to '%s' (%s): other jottafs processes of "
			"this account will be logged out", a->path, strerror(-err));
	err = 0;
out:
	auth_unlock_account_file(fd);
	auth_json_wipe_secrets(j);
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
	double now = clock_mono();
	if (now - a->dead_checked < AUTH_REVIVE_CHECK_S)
		return;
	a->dead_checked = now;
	pthread_mutex_unlock(&a->lock);
	cJSON *j = NULL;
	struct auth_tokens t = { 0 };
	bool got = auth_read_account_json(a->path, -1, &j) == 0 && auth_json_get_tokens(j, &t) == 0;
	auth_json_wipe_secrets(j);
	cJSON_Delete(j);
	pthread_mutex_lock(&a->lock);
	if (got && a->dead && strcmp(t.refresh, a->acc.tokens.refresh) &&
	    auth_set_tokens(a, &t) == 0) {
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

	const struct auth_tokens *live = &a->acc.tokens; /* a->lock */

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
		bool fresh = token_fresh(live->access, live->expiry, live->lifetime, now);
		/* A token that arrived after we were called is new enough even
		 * when forced (it is not the one the server refused). */
		bool newer = a->generation != gen0 && live->access && live->expiry > now;
		if ((fresh && !force) || newer) {
			*token = strdup(live->access);
			err = *token ? 0 : -ENOMEM;
			break;
		}
		if (a->refreshing) {
			pthread_cond_wait(&a->cond, &a->lock);
			continue;
		}

		/* This thread refreshes; the others wait for it. */
		a->refreshing = true;
		struct auth_tokens cur = { .access = live->access ? strdup(live->access) : NULL,
					   .refresh = strdup(live->refresh) };
		bool basic = a->acc.basic_auth, basic_out = basic;
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
			err = auth_set_tokens(a, &fresh_tokens);
		if (err == 0) {
			a->acc.basic_auth = basic_out;
			a->generation++;
		} else if (err == -EKEYREJECTED) {
			a->dead = true;
			a->dead_checked = clock_mono();
			if (!a->dead_logged) {
				a->dead_logged = true;
				char cmd[AUTH_LOGIN_CMD_MAX];
				log_err("the login was revoked (invalid_grant): run '%s' again",
					auth_login_cmd(a->account, cmd));
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
