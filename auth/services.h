/*
 * auth/services.h — the table of login services (white-label brands) for
 * the authorization-code flow, loaded from data, never compiled in.
 *
 * The table is a JSON file installed with the program
 * ($(PREFIX)/share/jottafs/services.json), optionally amended by the user's
 * $XDG_CONFIG_HOME/jottafs/services.json:
 *
 *   { "services": [
 *       { "key": "telia_se", "name": "Telia Cloud (Sweden)",
 *         "domain": "cloud-auth.telia.se", "realm": "telia_se",
 *         "client_id": "desktop",
 *         "scopes": ["openid", "jotta-default", "offline_access"] },
 *       ... ] }
 *
 * Members of an entry:
 *   key        [a-z0-9_], 1..32, unique: what --service takes
 *   name       printable text, 1..100 bytes: what the user reads
 *   domain     host name ([A-Za-z0-9.-], labels not empty, <= 253)
 *   realm      Keycloak realm ([A-Za-z0-9_.-], 1..64)
 *   client_id  OAuth client id ([A-Za-z0-9_.-], 1..64)
 *   scopes     array of 1..16 OAuth scope tokens (RFC 6749 3.3)
 *   url        optional: the base URL of the login service instead of
 *              https://<domain> (tests point it at an emulator; plain http
 *              is used only where net/url.h allows it)
 * Unknown members are refused (a misspelt member is an error, not a
 * silent default). In the user's file an entry whose key is already known
 * replaces only the members it gives; a new key must be complete.
 *
 * Loading validates everything; an error names the file, the entry (its
 * position and key) and the member. Pure except services_load_file(),
 * which reads a file. Not thread-safe while being built; read-only after.
 */
#ifndef JOTTAFS_AUTH_SERVICES_H
#define JOTTAFS_AUTH_SERVICES_H

#include <stddef.h>

#define SERVICES_MAX 256

/* One service; strings owned by the table, valid while it lives. */
struct service {
	const char *key;
	const char *name;
	const char *domain;
	const char *realm;
	const char *client_id;
	const char *scopes;      /* the scope tokens joined by single spaces */
	const char *url;         /* base URL: "url", else "https://<domain>" */
};

struct services;

/* An empty table. 0 or -ENOMEM. */
int services_new(struct services **out);
void services_free(struct services *s);

/*
 * Add the entries of the JSON text @text (@len bytes) to the table; @origin
 * (a file name) is used in messages. With @amend, entries with a known key
 * amend it (the user's file); without, a known key is an error. On error
 * the table is unchanged and *errmsg (malloc'd) names the bad entry.
 * 0, -EINVAL (bad table), -ENOMEM.
 */
int services_add_json(struct services *s, const char *text, size_t len, const char *origin,
		      int amend, char **errmsg);

/*
 * services_add_json() of the file @path. With @optional, a missing file is
 * not an error (returns 0). -ENOENT, -EFBIG (over 1 MiB), -errno of the
 * read, or services_add_json()'s errors; *errmsg says which.
 */
int services_load_file(struct services *s, const char *path, int optional, int amend,
		       char **errmsg);

size_t services_count(const struct services *s);
/* The @i-th service in the order of the files (NULL past the end). */
const struct service *services_at(const struct services *s, size_t i);
/* The service @key (exact), or NULL. */
const struct service *services_find(const struct services *s, const char *key);

#endif
