/*
 * net/jfs_xml.h — streaming decoders of the JFS XML documents
 * (shared/docs/jottacloud-api.md §3, §5, §9.1). Pure: no I/O, no globals.
 *
 * A decoder is made for one kind of document, fed the response body chunk
 * by chunk as it arrives (jfs_xml_feed, e.g. from an http_sink), then
 * finished (jfs_xml_finish, which also catches a truncated body). Entries
 * are handed to a callback as each one completes. Nothing proportional to
 * the document is kept: a folder of a million files goes through a fixed
 * set of buffers. The single exception is the liststream consistency check
 * (below), which needs one 64-bit hash per distinct folder path (16 bytes
 * per folder at most, capped at JFS_XML_MAX_FOLDERS folders).
 *
 *   kind        root element             delivers
 *   list        folder | mountPoint      each child folder/file (jfs_entry_cb),
 *                                        with its <abspath> (the trash view)
 *               (file: -ENOTDIR; trashed folder: -ENOENT)
 *   stat        folder | mountPoint | file   the root as one jfs_entry, and the
 *               older revisions of a file (optional callback); on a folder
 *               it stops at the first child (JFS_XML_DONE), so a stat of a
 *               huge folder does not download the listing
 *   liststream  any                      every folder and file of the subtree
 *               (jfs_entry_cb, parent set); finish checks <stats>
 *   user        user                     quota fields; each device summary
 *   device      device                   name/type/size; each mountpoint
 *   error       error                    code, message, reason (one shot)
 *
 * Text rules (as Go's encoding/xml does for rclone): element names are
 * matched by local name; names are taken verbatim (xml:space="preserve":
 * never trimmed); numbers are trimmed of surrounding white space, an empty
 * element is 0, white space only or anything non-numeric is an error; the
 * `deleted` attribute counts when present, whatever its value.
 *
 * Hostile input is -EIO, never a crash or unbounded memory: a DOCTYPE (so no
 * entity expansion at all), nesting deeper than JFS_XML_MAX_DEPTH, more than
 * JFS_XML_MAX_ATTRS attributes, a text node or attribute value over
 * JFS_XML_MAX_TEXT bytes, an unfinished token (tag, comment, ...) holding
 * more than JFS_XML_MAX_PENDING bytes inside expat, malformed XML, invalid
 * UTF-8, NUL and control characters. The parser is stopped at the first
 * error and every later call returns the same error; jfs_xml_errmsg() says
 * why. A listing over its limits (jfs_xml_set_limits) is -EFBIG.
 *
 * Refused values: numbers that overflow int64, negative sizes and counts,
 * sizes above JFS_SIZE_MAX, malformed times and MD5s, an over-long revision
 * state. In a value of one listed file (a list's child file, a liststream
 * <file>) only that entry is the casualty: it is delivered with e->bad set
 * to the reason, its numbers 0 and completed false, and the listing goes
 * on. Anywhere else (a stat's root or revisions, <stats>, the user and
 * device documents, an error's <code>) the document fails with -EIO.
 *
 * A callback returning -errno stops the parser; that error is returned by
 * jfs_xml_feed() and jfs_xml_finish().
 *
 * Threads: a decoder is used by one thread at a time; distinct decoders are
 * independent.
 */
#ifndef JOTTAFS_NET_JFS_XML_H
#define JOTTAFS_NET_JFS_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "net/jfs.h"

#define JFS_XML_MAX_TEXT    (64u << 10)  /* bytes of one text node or attribute value */
#define JFS_XML_MAX_DEPTH   32           /* element nesting */
#define JFS_XML_MAX_ATTRS   32           /* attributes of one element */
#define JFS_XML_MAX_PENDING (1u << 20)   /* bytes expat may buffer in one unfinished token */
#define JFS_XML_MAX_FOLDERS (4u << 20)   /* distinct folder paths of one liststream */

/* jfs_xml_feed(): the document is complete, no more input is needed. */
#define JFS_XML_DONE 1

struct jfs_xml;

/* The root element of an object document (list, stat). */
enum jfs_xml_root {
	JFS_XML_ROOT_NONE = 0,   /* not seen yet */
	JFS_XML_ROOT_FOLDER,
	JFS_XML_ROOT_MOUNTPOINT,
	JFS_XML_ROOT_FILE,
	JFS_XML_ROOT_OTHER,
};

/* One <revision> of a file document's <revisions>. Strings valid during the call. */
struct jfs_xml_revision {
	int64_t number;          /* 0 when absent */
	const char *state;       /* "" when absent */
	int64_t size;            /* -1 when absent */
	char md5[33];            /* "" when absent */
	time_t created;
	time_t modified;
	time_t updated;
	const char *mime;        /* "" when absent */
};
typedef int (*jfs_xml_revision_cb)(void *ctx, const struct jfs_xml_revision *r);

/* A device: a <device> summary of the user document, or a device document's root. */
struct jfs_xml_device {
	const char *name;        /* never NULL or "" when handed to a callback */
	const char *type;        /* "" when absent */
	int64_t size;
};
typedef int (*jfs_xml_device_cb)(void *ctx, const struct jfs_xml_device *d);
/* One <mountPoint> of a device document. @name is never "". */
typedef int (*jfs_xml_mountpoint_cb)(void *ctx, const char *name, int64_t size);

/* The user document (quota). */
struct jfs_xml_user {
	int64_t usage;
	int64_t capacity;        /* < 0: unlimited */
	char account_type[64];   /* truncated if longer */
};

/* A JFS error body. Texts are truncated (at a UTF-8 boundary) to fit. */
struct jfs_xml_error {
	long code;               /* <code>; 0 when absent */
	char message[1024];
	char reason[128];
};

/*
 * Constructors. Each returns 0 or -ENOMEM; *out is freed with jfs_xml_free().
 * Callbacks may be NULL (entries are then only validated and counted).
 */
int jfs_xml_new_list(jfs_entry_cb cb, void *ctx, struct jfs_xml **out);
int jfs_xml_new_stat(jfs_xml_revision_cb cb, void *ctx, struct jfs_xml **out);
/* list: accept a trashed folder (root with `deleted`) instead of -ENOENT,
 * to browse the trash (docs 8.7). Call before the first feed. */
void jfs_xml_list_trashed(struct jfs_xml *x);
/* Limits on one document (0: none), kept across jfs_xml_reset: delivering
 * more than @max_entries entries or being fed more than @max_bytes bytes
 * fails the decoder with -EFBIG (errmsg "more than N entries|bytes"). */
void jfs_xml_set_limits(struct jfs_xml *x, uint64_t max_entries, uint64_t max_bytes);
/* @prefix: "/<mountpoint>[/<path>]" of the listed folder, as the stream
 * writes paths (matched ASCII case-insensitively; copied). Paths outside it
 * are -EIO. Implied folders (a file's parent not yet seen as a <folder>) are
 * delivered before the file, as rclone does. */
int jfs_xml_new_liststream(const char *prefix, jfs_entry_cb cb, void *ctx,
			   struct jfs_xml **out);
int jfs_xml_new_user(jfs_xml_device_cb cb, void *ctx, struct jfs_xml **out);
int jfs_xml_new_device(jfs_xml_mountpoint_cb cb, void *ctx, struct jfs_xml **out);
void jfs_xml_free(struct jfs_xml *x);

/*
 * Feed @len bytes. Returns 0, JFS_XML_DONE (the decoder needs nothing more:
 * stop the transfer), or -errno (-EIO malformed/hostile/over a hard limit,
 * -EFBIG over a jfs_xml_set_limits() limit,
 * -ENOENT/-ENOTDIR from a list's root, a callback's error, -ENOMEM).
 */
int jfs_xml_feed(struct jfs_xml *x, const void *data, size_t len);
/* End of input: 0 when the document was complete and consistent, else -errno
 * (-EIO for a truncated body, a liststream without or with wrong <stats>). */
int jfs_xml_finish(struct jfs_xml *x);
/* Start over with an empty document (an HTTP retry); buffers are kept. */
int jfs_xml_reset(struct jfs_xml *x);

/* Why the decoder failed ("" when it did not). Valid until reset/free. */
const char *jfs_xml_errmsg(const struct jfs_xml *x);
/* Entries delivered to the entry callback since creation or reset. */
uint64_t jfs_xml_count(const struct jfs_xml *x);
/* Bytes of memory the decoder allocated itself (expat's own buffers are
 * bounded by JFS_XML_MAX_PENDING and not counted): now and at the peak. */
size_t jfs_xml_mem(const struct jfs_xml *x);
size_t jfs_xml_mem_peak(const struct jfs_xml *x);

/* Root element seen (list, stat). */
enum jfs_xml_root jfs_xml_root(const struct jfs_xml *x);
/* stat: the root entry after a successful jfs_xml_finish() (which also
 * succeeds after JFS_XML_DONE); NULL otherwise. Strings are owned by the
 * decoder until reset/free. */
const struct jfs_entry *jfs_xml_stat_entry(const struct jfs_xml *x);
/* user: the quota fields after a successful finish. */
const struct jfs_xml_user *jfs_xml_user_info(const struct jfs_xml *x);
/* device: the root's name/type/size after a successful finish. */
const struct jfs_xml_device *jfs_xml_device_info(const struct jfs_xml *x);

/*
 * Decode an error body (buffered, @len bytes). 0 when it is a JFS <error>
 * document; -EIO otherwise (HTML, plain text, truncated...), with *out
 * zeroed so the caller falls back to the HTTP status.
 */
int jfs_xml_parse_error(const void *body, size_t len, struct jfs_xml_error *out);

/*
 * The errno of a failed JFS request: from the XML <code> when @e has one
 * (rclone compares <code>, not the HTTP status), else from @http_status.
 * A message "longer than 255" -ENAMETOOLONG; the NoSuch*Exception
 * messages -ENOENT; else the one status table applied to that code,
 * http_status_errno_or(code, @fallback) (net/http.h: 404 -ENOENT, 400
 * -EINVAL, 401/403 -EACCES, 507 -ENOSPC, ...; @fallback, the HTTP layer's
 * errno, for a code it does not name). @e may be NULL.
 */
int jfs_xml_error_errno(long http_status, const struct jfs_xml_error *e, int fallback);

#endif
