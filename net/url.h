/*
 * net/url.h — the one check of a URL we are about to use, and the
 * plain-HTTP policy.
 *
 * Bearer and refresh tokens travel with every request, so a plain http://
 * endpoint is accepted only where nobody can listen: a literal loopback
 * host (tests, the emulator). Anywhere else it needs the user's explicit
 * -o insecure_http, and a link that arrives inside a login token (its
 * discovery link, and the token endpoint the discovery document names) is
 * never allowed to be plain http to another host, whatever the options.
 *
 * Host names are never resolved here: only the literal name "localhost"
 * (any case, no trailing dot) and literal loopback addresses count —
 * dotted-quad 127.0.0.0/8, [::1] and [::ffff:127.x.y.z]. "127.1", "0x7f.1",
 * "localhost." or "foo.localhost" are other hosts (libcurl would resolve
 * them; we do not guess what they resolve to).
 *
 * Every URL that enters goes through url_check(): the endpoint options
 * (api_url, jfs_url, token_url) and the account file (auth/), the login
 * token's discovery link and the discovery document (auth/), a server's
 * upload_url (net/jfs_json), and net/http before every request.
 *
 * Pure: no allocation, no I/O, no resolution; thread-safe.
 */
#ifndef JOTTAFS_NET_URL_H
#define JOTTAFS_NET_URL_H

#include <stdbool.h>
#include <stddef.h>

#define URL_MAX 8192   /* longer URLs are refused */

enum url_verdict {
	URL_OK,          /* https://, or http:// to a literal loopback host */
	URL_NEEDS_FLAG,  /* http:// to any other host: only with -o insecure_http */
	URL_REFUSED,     /* not a URL we use: not http(s), no host, user info with
			    more than one '@', a bad port, a space or control
			    byte, longer than URL_MAX */
};

/*
 * The verdict on @url (NULL: URL_REFUSED). The scheme is case-insensitive;
 * the authority ends at the first '/', '?' or '#'; user info before one
 * '@' is skipped; the port, when present, is 1 to 5 digits.
 */
enum url_verdict url_check(const char *url);

/*
 * url_check() with the user's choice applied: 0 when @url may be used,
 * -EPERM when it is plain http to a host that is not loopback and
 * @insecure_http is false, -EINVAL when it is refused.
 */
int url_allowed(const char *url, bool insecure_http);

/*
 * Is the host @host (@len bytes, without port; an IPv6 literal with its
 * brackets) a literal loopback host as described above?
 */
bool url_host_is_loopback(const char *host, size_t len);

#endif
