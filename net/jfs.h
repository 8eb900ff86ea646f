/*
 * net/jfs.h — the Jottacloud client: JFS XML API (listings, metadata,
 * downloads, commands) and the JSON API (customer, allocate, upload,
 * purge trash). Protocol: shared/docs/jottacloud-api.md.
 *
 * Paths: a "path" argument is relative to the mountpoint root and made of
 * exact SERVER names (already encoded by net/names, or taken verbatim from a
 * listing) joined by '/', without leading or trailing '/'. "" is the
 * mountpoint root. This module URL-escapes each segment itself (every byte
 * outside A-Za-z0-9-._~, so '+', ';' and '%' never go out raw). It does not
 * encode names.
 *
 * Errors: 0 or -errno. -ENOENT for a missing path (XML <code>404</code>),
 * -ENOTDIR/-EISDIR when the path is the other kind, -EACCES for refused
 * credentials, -EKEYREJECTED when the login is dead, -EIO for malformed,
 * truncated, hostile or oversized responses (logged once), -ENOSPC when the
 * quota is exceeded, -ENAMETOOLONG when the service refuses a name as too
 * long, -EINVAL when it refuses a name or path as invalid.
 *
 * Listings are parsed with expat as the bytes arrive: a listing of a million
 * entries is never held in memory; each entry is handed to a callback.
 *
 * Thread-safe: a struct jfs is immutable after jfs_new() and may be used from
 * any number of threads at once.
 */
#ifndef JOTTAFS_NET_JFS_H
#define JOTTAFS_NET_JFS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct http_client;
struct http_sink;
struct jfs;

/*
 * What a server can make us believe or hold. The one maximum size believed
 * from the service: a listed size above it (or negative) makes that entry
 * bad (struct jfs_entry.bad). 1 PiB, far above any real file (the service
 * and jottafs write at most tens of GB per file).
 */
#define JFS_SIZE_MAX (1LL << 50)

/*
 * Limits on one listing (defaults; jfs_config overrides them, fs/options
 * -o max_listing_entries= ...). A listing over one is refused: one log line
 * naming the folder and the limit, and the call fails with -EIO. They bound
 * memory (a folder listing is collected before it is applied: about 200
 * bytes per entry plus its names) and index growth (at most one row per
 * entry; a row holds the entry's names, which come from the body). A real
 * folder entry takes about 600 bytes, a liststream file 300-400.
 */
#define JFS_LIST_MAX_ENTRIES   1000000ULL      /* entries of one folder listing */
#define JFS_LIST_MAX_BYTES     (1ULL << 30)    /* its body: 1 GiB */
#define JFS_STREAM_MAX_ENTRIES 10000000ULL     /* entries of one recursive listing */
#define JFS_STREAM_MAX_BYTES   (4ULL << 30)    /* its body: 4 GiB */

struct jfs_config {
	const char *jfs_url;      /* e.g. "https://jfs.jottacloud.com/jfs" (no trailing '/') */
	const char *api_url;      /* e.g. "https://api.jottacloud.com" (no trailing '/') */
	const char *username;     /* internal user name (from the customer API) */
	const char *device;       /* "Jotta" */
	const char *mountpoint;   /* "Archive" */
	/* Listing limits; 0: the JFS_*_MAX_* default. Folder listings (also
	 * of the trash) take the list limits, liststream the stream ones. */
	uint64_t max_list_entries;
	uint64_t max_list_bytes;
	uint64_t max_stream_entries;
	uint64_t max_stream_bytes;
};

/* Copies every string of @cfg. The http client must outlive the jfs. */
int jfs_new(struct http_client *http, const struct jfs_config *cfg, struct jfs **out);
void jfs_free(struct jfs *j);

/*
 * One directory entry, one file's metadata or one liststream item. Strings
 * are owned by the caller of the callback and valid only during the call
 * (copy what you keep), except for jfs_stat() where they are owned by the
 * entry until jfs_entry_release().
 */
struct jfs_entry {
	const char *name;        /* exact server name (never NULL) */
	const char *parent;      /* liststream only: parent path relative to the listed
				    folder, server names joined by '/', "" for the folder itself */
	bool is_dir;
	bool deleted;            /* carries deleted="…" (a trash tombstone) */
	bool completed;          /* file: has a COMPLETED currentRevision */
	int64_t size;            /* file: bytes of the current revision */
	char md5[33];            /* file: lower-case hex, "" when unknown */
	int64_t revision;        /* file: current revision number, 0 when unknown */
	time_t created;          /* 0 when unknown */
	time_t modified;         /* 0 when unknown */
	time_t updated;          /* 0 when unknown */
	const char *mime;        /* may be NULL */
	/* file: a newer, not completed revision exists (an upload in progress) */
	bool has_latest;
	char latest_md5[33];
	int64_t latest_size;     /* bytes received so far, -1 when unknown */
	const char *latest_state;/* "INCOMPLETE", "CORRUPT", ... or NULL */
	/* jfs_trash() only: the original parent folder, "/<user>/<device>/<mountpoint>[/...]"
	   (server names), NULL when the service did not say */
	const char *origin;
	/* Listings only: non-NULL when the service sent a value for this file
	 * that is refused (negative or over JFS_SIZE_MAX, not a number, a bad
	 * time or MD5): why, e.g. "<size> above 1125899906842624 bytes" (no
	 * server text). Its numbers are then 0, md5 "" and completed false, so
	 * a caller that ignores this field hides the entry; fs/ shows it and
	 * answers EIO for it. */
	const char *bad;
};

/*
 * Called once per entry. Return 0 to go on, or -errno to stop (returned by
 * the listing call). Entries that rclone hides are NOT filtered here:
 * callers decide (deleted, !completed); jfs_list() flags them. To show what
 * rclone shows, hide every entry with e->deleted (a trash tombstone) and
 * every file without e->completed (never finished uploading); a completed
 * file with has_latest shows its current revision (an upload of a newer
 * one is in progress).
 */
typedef int (*jfs_entry_cb)(void *ctx, const struct jfs_entry *e);

/*
 * List the direct children of folder @path (folder GET). -ENOENT if it is
 * missing or trashed, -ENOTDIR if it is a file.
 */
int jfs_list(struct jfs *j, const char *path, jfs_entry_cb cb, void *ctx);

/*
 * Recursive listing of the live subtree under @path (mode=liststream): every
 * folder (the listed one included, parent "" and name "") and every live
 * COMPLETED file, each with e->parent set. Checks the <stats> counts: a
 * mismatch or a truncated stream is -EIO. As in rclone, a folder is
 * delivered before the first file in it even when the stream names it only
 * later, and then once more: take folder entries as idempotent.
 * (Both listings: a transfer that breaks in the middle is retried from the
 * start; entries the callback already had are skipped once they are seen
 * to come again identically, so each entry is delivered once. A listing
 * that changed in between is -EIO.)
 */
int jfs_liststream(struct jfs *j, const char *path, jfs_entry_cb cb, void *ctx);

/* Metadata of one file or folder (GET). -ENOENT when missing, and for a
 * trashed item (as rclone). "" is the mountpoint itself (a folder). For a
 * folder only its own attributes are read (the transfer of its listing is
 * stopped early). */
int jfs_stat(struct jfs *j, const char *path, struct jfs_entry *out);
void jfs_entry_release(struct jfs_entry *e);

/*
 * Download bytes [first, last] (inclusive) of the current revision of @path
 * (mode=bin + Range) into @sink; last == -1 means "to the end". A response
 * that is not 206 with the requested Content-Range (or 200 for a whole-file
 * request) is -EIO, never silently wrong data. @got (may be NULL) receives
 * the number of bytes delivered, also on error, so the caller can continue.
 * When the file ends before @last, the server's shorter range ending at the
 * end of the file is accepted (*got says how much). The sink's reset, when
 * set, lets net/http retry a broken transfer from the start.
 */
int jfs_download(struct jfs *j, const char *path, int64_t first, int64_t last,
		 const struct http_sink *sink, int64_t *got);

/* Quota and usage (user document). capacity < 0 means unlimited. */
struct jfs_quota {
	int64_t usage;
	int64_t capacity;
	char account_type[64];
};
int jfs_quota(struct jfs *j, struct jfs_quota *out);

/*
 * Connectivity probe (net/conn.h conn_probe_fn): one GET of the user
 * document, sent even while offline, never retried. 0 when the service
 * answered (any status below 500), else -errno.
 */
int jfs_ping(struct jfs *j);

/* Devices with their mountpoints (user + device documents), for `jottafs devices`. */
struct jfs_device_info {
	const char *name;
	const char *type;
	int64_t size;
	const char *const *mountpoints; /* NULL-terminated */
};
typedef int (*jfs_device_cb)(void *ctx, const struct jfs_device_info *d);
int jfs_devices(struct jfs *j, jfs_device_cb cb, void *ctx);
/* Checks that the configured device and mountpoint exist; -ENOENT otherwise. */
int jfs_check_mountpoint(struct jfs *j);

/*
 * Customer API: the internal user name that every JFS path starts with.
 * Needs no struct jfs (called at login, before the username is known).
 * *username is malloc'd.
 */
int jfs_customer_username(struct http_client *http, const char *api_url, char **username);

/* Commands (POST with an empty body and no Content-Type). */
int jfs_mkdir(struct jfs *j, const char *path);                 /* mkdir -p, idempotent */
int jfs_delete(struct jfs *j, const char *path, bool is_dir, bool hard); /* dl/rm, dlDir/rmDir */
int jfs_move(struct jfs *j, const char *from, const char *to, bool is_dir); /* mv / mvDir */
/* Set times of existing content, restore from trash or dedup-create (cphash).
 * -ENOENT when the service would need an upload. */
int jfs_cphash(struct jfs *j, const char *path, int64_t size, const char *md5,
	       time_t created, time_t modified);

/* Upload, step 1: allocate (JSON API). */
struct jfs_alloc_req {
	const char *path;        /* server path under the mountpoint */
	int64_t size;
	const char *md5;         /* 32 lower-case hex */
	time_t created;
	time_t modified;
	/* conflict_handler REJECT_CONFLICTS: the service refuses (an error,
	 * -EEXIST for its 409) when a different file is at @path already. */
	bool reject_conflicts;
};
struct jfs_alloc {
	bool completed;          /* state COMPLETED: nothing to send (instant upload) */
	char *upload_url;        /* malloc'd; NULL when completed */
	int64_t resume_pos;      /* send bytes from here */
	char state[16];
};
int jfs_allocate(struct jfs *j, const struct jfs_alloc_req *req, struct jfs_alloc *out);
void jfs_alloc_release(struct jfs_alloc *a);

/*
 * Upload, step 2: POST bytes [resume_pos, size) of @fd to @upload_url. The
 * service's answer is checked: its total bytes and MD5 must equal @size and
 * @md5, else -EIO. Not retried here (the caller re-allocates to learn the
 * new resume_pos). @out_modified (may be NULL) gets the server mtime.
 */
int jfs_upload(struct jfs *j, const char *upload_url, int fd, int64_t resume_pos,
	       int64_t size, const char *md5, time_t *out_modified);

/*
 * jfs_upload() that another thread can abort (cache/upload: unlink or
 * rename of a file being uploaded, and unmount). @cancel (may be NULL)
 * is polled while the request runs (net/http: http_request.cancel, at
 * least every 100 ms, mid-body too); once it reads true the transfer is
 * cut and -ECANCELED returned. The service keeps the bytes it got (the
 * next allocate of the same path, size and md5 reports them as
 * resume_pos).
 * jfs_upload(...) is jfs_upload_cancellable(..., NULL, ...).
 */
int jfs_upload_cancellable(struct jfs *j, const char *upload_url, int fd,
			   int64_t resume_pos, int64_t size, const char *md5,
			   const atomic_bool *cancel, time_t *out_modified);

/* jfs_upload_cancellable() that stores the bytes sent so far (from
 * @resume_pos) in *@sent (may be NULL) as the transfer runs. */
int jfs_upload_progress(struct jfs *j, const char *upload_url, int fd, int64_t resume_pos,
			int64_t size, const char *md5, const atomic_bool *cancel,
			_Atomic int64_t *sent, time_t *out_modified);

/* Empty the trash (JSON API). */
int jfs_purge_trash(struct jfs *j);

/* ---- Copies, revisions and the trash (the control directory, fs/control*.c) ---- */

/*
 * Server-side copy of file @from to @to (cp=, docs 8.5): no content moves.
 * The destination's metadata in *@out (release with jfs_entry_release). If
 * the service left the copy in the trash (its quirk when a trashed file
 * was at @to) it is brought back with cphash, as rclone does. -ENOENT when
 * @from is missing.
 */
int jfs_copy(struct jfs *j, const char *from, const char *to, struct jfs_entry *out);

/* The older revisions of file @path (the <revisions> of its document, not
 * the current one), one call of @cb each; a trashed file is listed too. */
struct jfs_xml_revision;
typedef int (*jfs_revision_cb)(void *ctx, const struct jfs_xml_revision *r);
int jfs_revisions(struct jfs *j, const char *path, jfs_revision_cb cb, void *ctx);

/* jfs_download() of revision @revision (mode=bin&revision=N). */
int jfs_download_revision(struct jfs *j, const char *path, int64_t revision, int64_t first,
			  int64_t last, const struct http_sink *sink, int64_t *got);

/*
 * The Content-Range of a 206 answer to a download of
 * [@first, @last] (@last -1: to the end): "bytes a-b/total", or "bytes a-b/"
 * and a star for an unknown total; decimal digits only, a <= b < total. It
 * must start at @first and end at @last, or earlier at the end of the file
 * (total - 1); for a download to the end it must end at total - 1 when the
 * total is known. 0 with *expect = the body's length, or -EIO. Pure: what
 * jfs_download checks, exposed for tests and fuzzing.
 */
int jfs_content_range_check(const char *content_range, int64_t first, int64_t last,
			    int64_t *expect);

/*
 * The device's trash view (GET /<user>/<device>/Trash): the top-level
 * trashed items of every mountpoint of the device, each with e->origin set.
 */
int jfs_trash(struct jfs *j, jfs_entry_cb cb, void *ctx);

/* jfs_list() of a folder that may be in the trash (its tombstone tree):
 * entries keep their e->deleted flags. */
int jfs_list_trashed(struct jfs *j, const char *path, jfs_entry_cb cb, void *ctx);

/* The prefix of e->origin that is this jfs's mountpoint root:
 * "/<user>/<device>/<mountpoint>". */
const char *jfs_origin_prefix(const struct jfs *j);

#endif
