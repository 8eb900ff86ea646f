/*
 * net/names.h — POSIX name <-> Jottacloud server name, exactly as rclone's
 * jottacloud encoder (shared/docs/jottacloud-api.md §11, the HEAD set:
 * Slash,LtGt,DoubleQuote,Colon,Question,Asterisk,Pipe,Percent,Del,Ctl,
 * InvalidUtf8,Dot, plus Zero).
 *
 * Pure functions: no I/O, no global state, thread-safe.
 *
 * names_decode(names_encode(x)) == x for every POSIX name x (non-empty, no
 * '/' or NUL, not "." or ".."); names_decode_raw(names_encode(x)) == x for
 * every non-empty byte string x. Decoding is not injective: a server name
 * made by another client may be non-canonical ("a:b" and "a：b" both decode
 * to "a:b"), so callers keep the exact server name from the listing and
 * reuse it, and use names_encode() only for names the user types (create,
 * mkdir, rename targets).
 */
#ifndef JOTTAFS_NET_NAMES_H
#define JOTTAFS_NET_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The service's per-name limit, counted in UTF-16 code units. */
#define NAMES_MAX_UNITS 255

/*
 * Encode @len bytes of POSIX name @posix (one path segment) to the server
 * form. *out is malloc'd and NUL-terminated. Returns 0, -ENOMEM, or
 * -ENAMETOOLONG when the encoded name exceeds NAMES_MAX_UNITS; -EINVAL for
 * an empty name (an empty segment would address the parent).
 */
int names_encode(const char *posix, size_t len, char **out);

/*
 * Encode with the rclone 1.60.1 set (no Percent: '%' stays '%'). Used only
 * to look up names that an older rclone wrote. Same contract as names_encode.
 */
int names_encode_legacy(const char *posix, size_t len, char **out);

/*
 * Decode server name @server (NUL-terminated, as listed) to the name shown
 * in the mount. What POSIX cannot hold is shown as rclone's local backend
 * shows it: '/' -> U+FF0F, NUL -> U+2400, whole names "." and ".." ->
 * U+FF0E / U+FF0E U+FF0E. An empty server name gives -EINVAL. *out is
 * malloc'd. Returns 0, -EINVAL or -ENOMEM. The result never contains '/' or
 * NUL and is never "", "." or "..".
 */
int names_decode(const char *server, char **out);

/*
 * Decode exactly as rclone does, without the POSIX fix-ups of names_decode:
 * the result may hold '/' and NUL bytes and may be "." or "..". *out is
 * malloc'd and NUL-terminated; *out_len (if not NULL) gets its length in
 * bytes. Returns 0, -EINVAL (empty name) or -ENOMEM. For tests and
 * diagnostics; the mount shows names_decode() results.
 */
int names_decode_raw(const char *server, char **out, size_t *out_len);

/*
 * @name (one segment, NUL-terminated) with @tag inserted before its
 * extension: "a.txt" -> "a TAG.txt". The extension is the text from the
 * last '.'; there is none when the name has no '.', when its only '.' is
 * the first byte (".bashrc") or when it ends in '.' ("archive.tar.gz" gives
 * "archive.tar TAG.gz"). When the result would exceed NAMES_MAX_UNITS
 * UTF-16 units, the part before the extension is shortened at a character
 * boundary. *out malloc'd. Returns 0, -EINVAL (empty name), -ENAMETOOLONG
 * (tag and extension alone are too long) or -ENOMEM.
 */
int names_insert_tag(const char *name, const char *tag, char **out);

/*
 * Two server entries of one folder that decode to the same name. The
 * canonical spelling (names_encode(name) == server name) keeps the name;
 * every other spelling is shown as "NAME (jottacloud XXXXXXXX).EXT", where
 * XXXXXXXX is names_dup_hash() of its server name in lower-case hex — so
 * the name depends on the server name alone, not on the listing order or
 * on the other entries. Should that name be taken, the caller tries the
 * next @round (1, 2, ...), which hashes differently.
 *
 * names_dup_hash: 32-bit FNV-1a of @sname (and of @round when it is not 0).
 * Stable: the man page promises these names; never change the function.
 * names_dup_name: the shown name for decoded name @name and hash @hash,
 * within NAMES_MAX_UNITS units (names_insert_tag).
 * Same returns as names_insert_tag.
 */
#define NAMES_DUP_TAG " (jottacloud "
uint32_t names_dup_hash(const char *sname, unsigned round);
int names_dup_name(const char *name, uint32_t hash, char **out);

/* Length of UTF-8 string @s in UTF-16 code units (invalid bytes count 1). */
size_t names_utf16_units(const char *s, size_t len);

#endif
