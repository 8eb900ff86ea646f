/*
 * net/jfs_int.h — what the files of the Jottacloud client share (net/jfs.c,
 * jfs_list.c, jfs_download.c, jfs_account.c, jfs_ns.c, jfs_upload.c): the
 * client structure, path and URL building, and the request helpers that
 * map failures to errno once. Private to net/jfs*.c; everyone else uses
 * net/jfs.h.
 */
#ifndef JOTTAFS_NET_JFS_INT_H
#define JOTTAFS_NET_JFS_INT_H

#include "lib/buf.h"
#include "net/http.h"
#include "net/jfs.h"
#include "net/jfs_xml.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JFS_JSON_BODY_MAX   (64u << 10)   /* allocate, upload, purge answers */

struct jfs {
	struct http_client *http;
	char *api_url;           /* no trailing '/' */
	char *jfs_url;           /* no trailing '/' */
	char *user_url;          /* <jfs_url>/<user>, escaped */
	char *base_url;          /* <user_url>/<device>/<mountpoint>, escaped */
	char *dest_prefix;       /* "/<user>/<device>/<mountpoint>" raw (mv/cp targets) */
	char *ls_prefix;         /* "/<mountpoint>" raw (liststream paths) */
	char *device;
	char *mountpoint;
	uint64_t list_entries, list_bytes;      /* limits (jfs.h), defaults applied */
	uint64_t stream_entries, stream_bytes;
};

/* ---- paths and URLs (jfs.c) ---- */

/* A path (jfs.h form): "" or segments joined by '/', none "", "." or "..".
 * 0 or -EINVAL. */
int jfs_path_check(const char *path);
/* A usable endpoint URL (net/url.h does not refuse it). */
bool jfs_url_ok(const char *u);
/* A copy of @s without trailing '/'; NULL on ENOMEM. */
char *jfs_dup_trimmed(const char *s);
/* Append @n bytes of @s percent-encoded (http_escape) to @b; the error
 * sticks in @b like buf_add's. */
void jfs_buf_add_escaped(struct buf *b, const char *s, size_t n);
/*
 * URL of @path under the mountpoint, each segment escaped, then @suffix
 * ("" or "/") and "?@query" when @query is not NULL (already escaped).
 * *out is malloc'd. -EINVAL for a bad path, -ENOMEM.
 */
int jfs_path_url(const struct jfs *j, const char *path, const char *suffix, const char *query,
		 char **out);
/* "<key>=<escaped /<user>/<device>/<mountpoint>/@to>": the query naming the
 * target of mv, mvDir and cp. NULL on ENOMEM. */
char *jfs_dest_query(const struct jfs *j, const char *key, const char *to);

/* ---- requests (jfs.c) ---- */

/* A GET of @url that may be retried (every read of the service). */
void jfs_get_init(struct http_request *req, const char *url);

/* The errno of a request that failed with @rc: from the error body (JSON
 * when @json, else XML) when the server answered with an error status,
 * else @rc as net/http mapped it. */
int jfs_map_failure(int rc, const struct http_response *resp, bool json);

/* Streaming an XML body into a decoder (http_sink context). */
struct xml_sink {
	struct jfs_xml *x;
	/* The decoder's limits (jfs_xml_set_limits) and the options that set them. */
	uint64_t max_entries, max_bytes;
	const char *opt_entries, *opt_bytes;
	bool done;               /* the decoder needs no more input */
	int err;                 /* the decoder's error */
	void (*on_reset)(void *ctx);   /* before a retry (may be NULL) */
	void *reset_ctx;
};

/* Set the limits of @s's decoder, named by the options that set them. */
void jfs_sink_limits(struct xml_sink *s, uint64_t entries, const char *opt_entries,
		     uint64_t bytes, const char *opt_bytes);
/*
 * Run @req (method, URL, headers, idempotency set by the caller) with its
 * body streamed into @s->x, then finish the decoder. @what and @path name
 * the operation in logs. Returns 0 or -errno.
 */
int jfs_request_xml(struct jfs *j, const struct http_request *req, struct xml_sink *s,
		    const char *what, const char *path);
/* GET-like request answered by an object document, decoded by a stat
 * decoder made here; on success *root is the document's root entry (owned
 * by @s->x, which the caller frees). */
int jfs_request_object(struct jfs *j, const struct http_request *req, struct xml_sink *s,
		       const char *what, const char *path, const struct jfs_entry **root);
/* GET the document of @path (jfs_stat) into a stat decoder made here,
 * older revisions to @cb (may be NULL); @s->x is the caller's to free,
 * also on error. @what names the operation in logs. */
int jfs_get_document(struct jfs *j, const char *path, jfs_xml_revision_cb cb, void *ctx,
		     struct xml_sink *s, const char *what);
/* Run a command whose answer is not needed (its body is drained). */
int jfs_request_command(struct jfs *j, struct http_request *req, const char *what,
			const char *path);
/* A JSON API request with a buffered answer in *resp (released by the
 * caller in every case); errors mapped from the JSON error body. */
int jfs_request_json(struct http_client *http, struct http_request *req,
		     struct http_response *resp, const char *what);
/* A sink that drops the body (answers nobody reads). */
extern const struct http_sink jfs_discard;

/* Copy @src into @dst with owned strings (jfs_entry_release). -ENOMEM. */
int jfs_entry_copy(struct jfs_entry *dst, const struct jfs_entry *src);

#endif
