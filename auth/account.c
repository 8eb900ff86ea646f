/*
 * auth/account.c — the account file: the configuration
 * directory, account names, locking (flock, re-checked against renames),
 * reading, atomic writes, its JSON members, auth_account_decode and
 * auth_logout. The file's format is described at the top of auth/auth.c.
 */
#include "auth/auth.h"
#include "auth/auth_int.h"

#include "lib/fsutil.h"
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

char *auth_account_path(const char *config_dir, const char *account)
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
int auth_lock_account_file(const char *path)
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

void auth_unlock_account_file(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}

/* Read the account file through @fd (or @path when fd < 0): *out is
 * malloc'd and NUL-terminated (the caller wipes and frees it). */
int auth_read_account_file(const char *path, int fd, char **out, size_t *out_len)
{
	int own = fd < 0;
	if (own) {
		/* a regular file of ours, not through a symlink (lib/privdir.h);
		 * -ELOOP, -EPERM: see privdir_file_error() */
		fd = privdir_open_file(AT_FDCWD, path, O_RDONLY, false);
		if (fd < 0)
			return fd == -EINVAL ? -EPERM : fd;
	}
	int err = fd_read_max(fd, AUTH_FILE_MAX, out, out_len);
	if (own)
		close(fd);
	return err;
}

/* The account file's text as a JSON object; -EINVAL when it is not one.
 * (The caller wipes the tree's secrets with auth_json_wipe_secrets.) */
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
int auth_read_account_json(const char *path, int fd, cJSON **out)
{
	char *buf = NULL;
	size_t len = 0;
	int err = auth_read_account_file(path, fd, &buf, &len);
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
int auth_write_account_json(const char *path, const cJSON *j)
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
int auth_json_set_str(cJSON *j, const char *name, const char *value)
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
int auth_json_set_tokens(cJSON *j, const struct auth_tokens *t, bool basic_auth)
{
	int err = auth_json_set_str(j, "access_token", t->access);
	if (!err)
		err = auth_json_set_str(j, "refresh_token", t->refresh);
	if (!err)
		err = auth_json_set_str(j, "token_type", "Bearer");
	if (!err)
		err = json_set_num(j, "expiry", (double)t->expiry);
	if (!err)
		err = json_set_num(j, "lifetime", (double)t->lifetime);
	if (!err)
		err = auth_json_set_str(j, "client_auth", basic_auth ? "basic" : "body");
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
int auth_json_get_tokens(const cJSON *j, struct auth_tokens *t)
{
	memset(t, 0, sizeof(*t));
	t->refresh = auth_json_str(j, "refresh_token");
	if (!t->refresh)
		return -EINVAL;
	t->access = auth_json_str(j, "access_token");
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
	*dst = auth_json_str(j, name);
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
	auth_json_get_tokens(j, &out->tokens);
	err = 0;
out:
	auth_json_wipe_secrets(j);
	cJSON_Delete(j);
	if (err < 0)
		auth_account_release(out);
	return err;
}

int auth_logout(const char *config_dir, const char *account)
{
	if (auth_account_name_valid(account) < 0)
		return -EINVAL;
	char *path = auth_account_path(config_dir, account);
	if (!path)
		return -ENOMEM;
	int fd = auth_lock_account_file(path);
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
	auth_unlock_account_file(fd);
	free(path);
	return err;
}
