/*
 * auth/services.c — see services.h.
 *
 * An addition works on a copy of the table and swaps it in only when every
 * entry of the file is valid, so a bad file leaves the table as it was.
 */
#include "auth/services.h"

#include "lib/fsutil.h"
#include "lib/xstr.h"
#include "net/url.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SERVICES_FILE_MAX (1 << 20)
#define SCOPES_MAX 16

enum { F_KEY, F_NAME, F_DOMAIN, F_REALM, F_CLIENT_ID, F_SCOPES, F_URL, F_COUNT };
static const char *const field_names[F_COUNT] = {
	"key", "name", "domain", "realm", "client_id", "scopes", "url"
};

struct entry {
	char *f[F_COUNT];        /* F_URL: as given (NULL: none) */
	char *url;               /* effective base URL */
	struct service view;
};

struct services {
	struct entry *e;
	size_t n;
};

static void entry_release(struct entry *e)
{
	for (int i = 0; i < F_COUNT; i++)
		free(e->f[i]);
	free(e->url);
	memset(e, 0, sizeof(*e));
}

static void table_release(struct entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		entry_release(&e[i]);
	free(e);
}

int services_new(struct services **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void services_free(struct services *s)
{
	if (!s)
		return;
	table_release(s->e, s->n);
	free(s);
}

size_t services_count(const struct services *s) { return s->n; }

const struct service *services_at(const struct services *s, size_t i)
{
	return i < s->n ? &s->e[i].view : NULL;
}

const struct service *services_find(const struct services *s, const char *key)
{
	for (size_t i = 0; key && i < s->n; i++)
		if (!strcmp(s->e[i].f[F_KEY], key))
			return &s->e[i].view;
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* Member rules                                                           */

static bool chars_in(const char *v, const char *extra, bool upper)
{
	for (const char *p = v; *p; p++) {
		char c = *p;
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    (upper && c >= 'A' && c <= 'Z') || (c && strchr(extra, c)))
			continue;
		return false;
	}
	return true;
}

static bool domain_ok(const char *v)
{
	size_t n = strlen(v), label = 0;
	if (n == 0 || n > 253 || !chars_in(v, ".-", true))
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || v[i] == '.') {
			if (label == 0 || label > 63 || v[i - 1] == '-' || v[i - label] == '-')
				return false;
			label = 0;
		} else {
			label++;
		}
	}
	return true;
}

/* RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ) */
static bool scope_token_ok(const char *v)
{
	if (!*v || strlen(v) > 128)
		return false;
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p < 0x21 || *p == 0x22 || *p == 0x5c || *p > 0x7e)
			return false;
	return true;
}

static bool printable_ok(const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n > 100)
		return false;
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* Why the value @v of member @f is wrong, or NULL when it is fine. */
static const char *member_problem(int f, const char *v)
{
	size_t n = strlen(v);
	switch (f) {
	case F_KEY:
		return n >= 1 && n <= 32 && chars_in(v, "_", false)
			       ? NULL : "must be 1 to 32 of a-z, 0-9 and '_'";
	case F_NAME:
		return printable_ok(v) ? NULL : "must be 1 to 100 bytes of printable text";
	case F_DOMAIN:
		return domain_ok(v) ? NULL : "must be a host name";
	case F_REALM:
	case F_CLIENT_ID:
		return n >= 1 && n <= 64 && chars_in(v, "_.-", true)
			       ? NULL : "must be 1 to 64 of A-Z, a-z, 0-9, '_', '.' and '-'";
	case F_URL:
		if (url_check(v) == URL_REFUSED || strpbrk(v, "?#"))
			return "must be an http(s) URL without query or fragment";
		return NULL;
	}
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* Reading one entry                                                      */

/*
 * Read the members of @obj into @e (existing values replaced). *why gets a
 * malloc'd reason naming the member. 0, -EINVAL, -ENOMEM.
 */
static int entry_read(struct entry *e, const cJSON *obj, char **why)
{
	const cJSON *m;
	bool given[F_COUNT] = { false };
	cJSON_ArrayForEach(m, obj) {
		int f = -1;
		for (int i = 0; i < F_COUNT; i++)
			if (m->string && !strcmp(m->string, field_names[i]))
				f = i;
		if (f < 0) {
			*why = xasprintf("unknown member '%.40s' (known: key, name, domain, realm, "
					 "client_id, scopes, url)", m->string ? m->string : "");
			return -EINVAL;
		}
		/* JSON allows a member twice; the key checks read the first 'key',
		 * so a second one would slip a duplicate key past them */
		if (given[f]) {
			*why = xasprintf("'%s' is given twice", field_names[f]);
			return -EINVAL;
		}
		given[f] = true;
		char *v = NULL;
		if (f == F_SCOPES) {
			int count = cJSON_IsArray(m) ? cJSON_GetArraySize(m) : 0;
			if (count < 1 || count > SCOPES_MAX) {
				*why = xasprintf("'scopes' must be an array of 1 to %d scope names",
						 SCOPES_MAX);
				return -EINVAL;
			}
			size_t len = 0;
			const cJSON *s;
			cJSON_ArrayForEach(s, m) {
				if (!cJSON_IsString(s) || !s->valuestring ||
				    !scope_token_ok(s->valuestring)) {
					*why = xasprintf("'scopes' holds something that is not a scope "
							 "name (printable ASCII without spaces, quotes "
							 "or backslashes)");
					return -EINVAL;
				}
				len += strlen(s->valuestring) + 1;
			}
			v = calloc(1, len);
			if (!v)
				return -ENOMEM;
			cJSON_ArrayForEach(s, m) {
				if (*v)
					strcat(v, " ");
				strcat(v, s->valuestring);
			}
		} else {
			if (!cJSON_IsString(m) || !m->valuestring) {
				*why = xasprintf("'%s' must be a string", field_names[f]);
				return -EINVAL;
			}
			const char *p = member_problem(f, m->valuestring);
			if (p) {
				*why = xasprintf("'%s' %s", field_names[f], p);
				return -EINVAL;
			}
			if (!(v = strdup(m->valuestring)))
				return -ENOMEM;
		}
		free(e->f[f]);
		e->f[f] = v;
	}
	return 0;
}

/* Complete @e: every required member present; the view and the URL set. */
static int entry_finish(struct entry *e, char **why)
{
	for (int i = 0; i < F_URL; i++) {
		if (!e->f[i]) {
			*why = xasprintf("'%s' is missing", field_names[i]);
			return -EINVAL;
		}
	}
	free(e->url);
	if (e->f[F_URL]) {
		e->url = strdup(e->f[F_URL]);
		if (e->url)
			for (size_t n = strlen(e->url); n > 0 && e->url[n - 1] == '/'; n--)
				e->url[n - 1] = '\0';
	} else {
		e->url = xasprintf("https://%s", e->f[F_DOMAIN]);
	}
	if (!e->url)
		return -ENOMEM;
	e->view = (struct service){
		.key = e->f[F_KEY], .name = e->f[F_NAME], .domain = e->f[F_DOMAIN],
		.realm = e->f[F_REALM], .client_id = e->f[F_CLIENT_ID], .scopes = e->f[F_SCOPES],
		.url = e->url,
	};
	return 0;
}

static int entry_copy(struct entry *dst, const struct entry *src)
{
	memset(dst, 0, sizeof(*dst));
	for (int i = 0; i < F_COUNT; i++)
		if (src->f[i] && !(dst->f[i] = strdup(src->f[i])))
			return -ENOMEM;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Adding a file                                                          */

int services_add_json(struct services *s, const char *text, size_t len, const char *origin,
		      int amend, char **errmsg)
{
	*errmsg = NULL;
	cJSON *j = text ? cJSON_ParseWithLength(text, len) : NULL;
	const cJSON *list = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "services")
					      : NULL;
	if (!cJSON_IsArray(list)) {
		*errmsg = xasprintf("the service table '%s' is not a JSON object with a "
				    "'services' array", origin);
		cJSON_Delete(j);
		return -EINVAL;
	}
	int n_new = cJSON_GetArraySize(list);
	if (s->n + (size_t)n_new > SERVICES_MAX) {
		*errmsg = xasprintf("the service table '%s' has too many entries (at most %d)",
				    origin, SERVICES_MAX);
		cJSON_Delete(j);
		return -EINVAL;
	}
	struct entry *t = calloc(s->n + (size_t)n_new + 1, sizeof(*t));
	bool *seen = calloc(s->n + (size_t)n_new + 1, sizeof(*seen)); /* named in this file */
	size_t n = 0;
	int err = t && seen ? 0 : -ENOMEM;
	for (size_t i = 0; !err && i < s->n; i++, n++)
		err = entry_copy(&t[i], &s->e[i]);

	char *why = NULL;
	int pos = 0;
	const cJSON *obj;
	const char *key = NULL;
	cJSON_ArrayForEach(obj, list) {
		if (err)
			break;
		pos++;
		const cJSON *k = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, "key")
						     : NULL;
		key = cJSON_IsString(k) ? k->valuestring : NULL;
		if (!cJSON_IsObject(obj)) {
			why = xasprintf("not a JSON object");
			err = -EINVAL;
			break;
		}
		if (!key) {
			why = xasprintf("'key' is missing or not a string");
			err = -EINVAL;
			break;
		}
		struct entry *e = NULL;
		for (size_t i = 0; i < n; i++)
			if (!strcmp(t[i].f[F_KEY], key))
				e = &t[i];
		if (e && (!amend || seen[e - t])) {
			why = xasprintf("the key is used twice");
			err = -EINVAL;
			break;
		}
		if (!e)
			e = &t[n++];
		seen[e - t] = true;
		err = entry_read(e, obj, &why);
		if (!err)
			err = entry_finish(e, &why);
	}
	if (err == -EINVAL)
		*errmsg = xasprintf("the service table '%s': entry %d%s%.40s%s: %s: fix or remove "
				    "the entry", origin, pos, key ? " ('" : "", key ? key : "",
				    key ? "')" : "", why ? why : "invalid");
	free(why);
	free(seen);
	cJSON_Delete(j);
	if (err) {
		table_release(t, n);
		return err;
	}
	/* views point into t: rebuild them for the entries copied over */
	for (size_t i = 0; i < n; i++) {
		char *unused = NULL;
		if ((err = entry_finish(&t[i], &unused)) < 0) {
			free(unused);
			table_release(t, n);
			return err;
		}
	}
	table_release(s->e, s->n);
	s->e = t;
	s->n = n;
	return 0;
}

int services_load_file(struct services *s, const char *path, int optional, int amend,
		       char **errmsg)
{
	char *buf = NULL;
	size_t len = 0;
	*errmsg = NULL;
	int err = file_read_max(path, SERVICES_FILE_MAX, &buf, &len);
	if (err == -ENOENT && optional)
		return 0;
	if (err) {
		*errmsg = xasprintf("cannot read the service table '%s': %s", path,
				    err == -EINVAL ? "not a regular file" : strerror(-err));
		return err;
	}
	err = services_add_json(s, buf, len, path, amend, errmsg);
	free(buf);
	return err;
}
