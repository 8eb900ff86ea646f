/*
 * lib/redact.h — server-provided text made fit for a log line or a message.
 *
 * Anything a server (or a proxy in front of it) answers may echo what we
 * sent it: the Authorization header, a refresh token, the login token. Every
 * piece of server text that reaches a log (at any level, -d included) or a
 * message for the user goes through redact_text() first, which
 *   - replaces what looks like a credential by "[redacted]":
 *       the value after "Bearer " (any case);
 *       the value of a credential key ("access_token", "refresh_token",
 *       "id_token", "auth_token", "token", "authorization", "password",
 *       "client_secret", "code", ...) written key=value or "key": "value";
 *       a JWT-like run (three or more base64url segments joined by '.', the
 *       first starting "eyJ", i.e. a JSON header);
 *       any run of REDACT_MIN_RUN or more base64url characters, '+' and
 *       '=' included ([A-Za-z0-9_+=-]), also as a segment of a dotted run
 *       (so an MD5 in hex or a long file name without a dot is hidden too:
 *       we prefer that to a leaked token). '/' separates runs, so paths
 *       stay readable; a standard-base64 token with a '/' in it is hidden
 *       when it follows "Bearer" or a credential key, or when a piece of it
 *       is long enough;
 *   - masks every byte that is not printable ASCII as '?' (no terminal
 *     escapes, no line breaks in a log line);
 *   - caps the length: the output ends with "..." when text was left out.
 * Decisions are made on the whole input before it is cut, so the cap never
 * shows the start of a token that the full text would have hidden.
 *
 * Pure: no allocation, no I/O, thread-safe.
 */
#ifndef JOTTAFS_LIB_REDACT_H
#define JOTTAFS_LIB_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#define REDACT_MARK    "[redacted]"
#define REDACT_MIN_RUN 32   /* a base64(url) run this long is taken for a token */

/*
 * Copy @len bytes of @text (not necessarily NUL-terminated; NULL with @len 0
 * is fine) into @out, redacted and masked as above, cut to fit @outsz bytes
 * (NUL included; @outsz >= 1; a cut shows "..." when @outsz >= 4). Returns
 * @out, always NUL-terminated.
 */
char *redact_text(const char *text, size_t len, char *out, size_t outsz);

/* The same for a NUL-terminated @text (NULL gives ""). */
char *redact_str(const char *text, char *out, size_t outsz);

/*
 * Is all of @s (@len bytes) one token-like run (a JWT, or base64url
 * characters with a segment of REDACT_MIN_RUN or more)? For text that is
 * split into fields first, e.g. the segments of a URL path in a trace.
 */
bool redact_is_token(const char *s, size_t len);

#endif
