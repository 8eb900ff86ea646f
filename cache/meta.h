/*
 * cache/meta.h — the metadata index: every node of the remote tree that we
 * have seen (files and folders, with the attributes of their current
 * revision), directory freshness, and the state of cached content. SQLite in
 * <cache_dir>/index.db (through cache/db.h: WAL mode, 0600, no symlinks), so
 * it survives remounts: a remount lists a known tree at once.
 *
 * Nodes. A node's id is its SQLite rowid (AUTOINCREMENT: never reused, so it
 * is a stable inode number within a mount and across remounts). Node 1 is
 * the mountpoint root (parent 0, empty names). Each node keeps both its
 * exact server name (as listed, reused in every later request) and the POSIX
 * name shown in the mount (names_decode of it; the caller decodes). Two
 * server names may decode to one POSIX name ("twins": "a:b" and "a：b"
 * made by other clients, "．．" and "‛．‛．"). All stay reachable: the
 * canonical spelling (names_encode(name) == sname, flagged by the caller)
 * keeps the name, every other one is shown as "NAME (jottacloud
 * XXXXXXXX).EXT" (names_dup_name: a hash of its own server name, another
 * round of it if that name is taken), and a listing that applies such an
 * entry logs one warning for it. A name without twins costs nothing more.
 * The service is case-insensitive; meta_fold() gives the key under which
 * names collide there.
 *
 * Freshness. A directory's listed_at is when its last complete listing was
 * applied (0: never). Listings are applied with a generation number taken
 * BEFORE the request was sent (meta_gen_next), and so are local changes: a
 * listing never overwrites or removes a row written by a later generation
 * (a slow recursive listing cannot undo a newer listing — sshfs's "write
 * counter" lesson — nor a local create), never brings back a name removed
 * locally after it was sent (tombstones), and never touches a node with
 * local changes (META_LOCAL_DIRTY: its attributes are the local ones).
 *
 * Content. The data cache records per file which byte ranges of which
 * revision (md5, size) are present in its cache file (meta_content_*).
 * Content of removed nodes is queued for garbage collection, never lost
 * silently when it is dirty.
 *
 * Threads: one connection, every call serialised by one mutex inside this
 * module (a leaf lock: no callback runs under it). No transaction is ever
 * held open across a call, so never across an HTTP request. Errors: 0 or
 * -errno (an SQLite failure mapped by db_errno() and logged once with the
 * statement: -ENOSPC disk full, -EIO most others).
 */
#ifndef JOTTAFS_CACHE_META_H
#define JOTTAFS_CACHE_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct meta;

#define META_ROOT_ID 1          /* the mountpoint root */

/* Local state of a node (the write path). */
enum {
	META_LOCAL_NONE = 0,    /* as on the server */
	META_LOCAL_DIRTY = 1,   /* content changed locally, not yet uploaded:
				   never removed by a listing, attributes are local */
	META_LOCAL_NEWDIR = 2,  /* a folder made here whose creation the service has
				   not confirmed yet (cache/deletes.h): never removed
				   by a listing, never listed itself (all it holds is
				   here) */
};

/*
 * The size of a file whose listed attributes were refused (jfs_entry.bad:
 * a negative or absurd size, a bad time...): the node is kept so that its
 * name is listed, and fs/ answers EIO for every access to it until a
 * listing gives it usable attributes. A size, not a column, so that the
 * index schema stays as it is; nothing else stores a negative size.
 */
#define META_SIZE_BAD (-1)

/* Attributes of one node. */
struct meta_attr {
	uint64_t id;
	uint64_t parent;        /* 0 for the mountpoint root */
	bool is_dir;
	int64_t size;           /* file: bytes; META_SIZE_BAD: refused attributes */
	time_t mtime;           /* file: client-supplied modified; dir: first seen */
	time_t created;         /* client-supplied created, 0 unknown */
	time_t updated;         /* server time of the current revision, 0 unknown */
	char md5[33];           /* file: lower-case hex, "" unknown */
	int64_t revision;       /* file: revision number, 0 unknown */
	time_t listed_at;       /* dir: last complete listing, 0 never */
	int local;              /* META_LOCAL_* */
	char base_md5[33];      /* file: the server revision local changes started */
	int64_t base_size;      /*   from (and that is on the server); -1: none (new) */
	uint64_t listed_gen;    /* dir: generation of its last listing */
};

/* One entry of a listing, as given to meta_apply_listing()/meta_stream_add(). */
struct meta_entry {
	const char *sname;      /* exact server name */
	const char *name;       /* POSIX name (decoded) */
	bool canonical;         /* names_encode(name) == sname */
	bool is_dir;
	int64_t size;
	time_t mtime, created, updated;
	char md5[33];
	int64_t revision;       /* 0: unknown (liststream); an existing value is kept */
	bool has_updated;       /* false: keep the stored updated time */
};

/* What an applied listing changed, for kernel cache invalidation. */
enum meta_change_kind {
	META_REMOVED,           /* (parent, name) is gone; id was its node */
	META_ADDED,             /* (parent, name) appeared in a directory listed before */
	META_CONTENT,           /* file id has a new revision: cached content was dropped */
	META_ATTR,              /* attributes of id changed (times) */
};
struct meta_change {
	enum meta_change_kind kind;
	uint64_t id;
	uint64_t parent;
	char *name;             /* POSIX name (REMOVED, ADDED), malloc'd */
};
struct meta_changes {
	struct meta_change *v;
	size_t n, cap;
};
void meta_changes_release(struct meta_changes *c);

/*
 * Open (creating) the index at @path. @identity names the remote
 * ("user/device/mountpoint"): an index made for another remote is emptied.
 * Marks the session unclean until meta_close(m, true).
 */
int meta_open(const char *path, const char *identity, struct meta **out);
/* Close; @clean records a clean shutdown (cached content is then trusted
 * without re-verification at the next open). */
void meta_close(struct meta *m, bool clean);
/* Did the previous session end with meta_close(m, true)? */
bool meta_was_clean(const struct meta *m);

/* The account's quota (jfs_quota's usage and capacity, capacity < 0:
 * unlimited) as last read from the service, kept so that statfs can show it
 * while the service cannot be reached. get: -ENOENT when none is recorded. */
int meta_quota_get(struct meta *m, int64_t *usage, int64_t *capacity);
int meta_quota_put(struct meta *m, int64_t usage, int64_t capacity);

/* Case-folded form of a server name, as the service compares names.
 * malloc'd; NULL on ENOMEM. */
char *meta_fold(const char *sname);

/* Attributes of node @id. -ENOENT if there is none. */
int meta_get(struct meta *m, uint64_t id, struct meta_attr *out);
/* The visible child of @parent named @name (POSIX; a twin's suffixed name
 * finds that twin). -ENOENT if none. */
int meta_lookup(struct meta *m, uint64_t parent, const char *name, struct meta_attr *out);
/* Child of @parent whose server name folds like @sname (the service would
 * see them as one name); its id in *id, 0 when none. */
int meta_lookup_fold(struct meta *m, uint64_t parent, const char *sname, uint64_t *id,
		     char **found_sname);
/* Server path of @id relative to the mountpoint root (jfs.h form: server
 * names joined by '/', "" for the root). *path malloc'd. */
int meta_path(struct meta *m, uint64_t id, char **path);
/* Names of @id: POSIX and server name (either out pointer may be NULL). */
int meta_names(struct meta *m, uint64_t id, char **name, char **sname);

/*
 * The visible children of @parent, ordered by POSIX name (twins follow
 * the canonical spelling of their name), one call of @cb each with the name
 * it is shown under. @cb runs under the module lock: it must not call back into meta;
 * copy what you keep. Returning non-zero from @cb stops (that value is
 * returned).
 */
typedef int (*meta_child_cb)(void *ctx, const struct meta_attr *a, const char *name);
int meta_children(struct meta *m, uint64_t parent, meta_child_cb cb, void *ctx);
/* Number of children (visible or not) of @parent, and how many are dirs. */
int meta_count_children(struct meta *m, uint64_t parent, uint64_t *all, uint64_t *dirs);

/* A new generation: take it before sending a listing request. Generations
 * grow across restarts (they start at least at the wall clock in µs). */
uint64_t meta_gen_next(struct meta *m);

/*
 * Apply the complete listing @v[0..n) of directory @dir, taken with
 * generation @gen: upsert every entry, remove children not listed (except
 * local ones), drop cached content of files whose (md5, size) changed, set
 * listed_at = @now. Changes are appended to @ch (may be NULL). -ENOENT when
 * @dir is gone, -ENOTDIR when it is a file. A listing older than the last
 * one applied to @dir is ignored (0).
 */
int meta_apply_listing(struct meta *m, uint64_t dir, uint64_t gen,
		       const struct meta_entry *v, size_t n, time_t now,
		       struct meta_changes *ch);
/* Ensure a child folder @e of @dir exists without listing @dir (used to
 * resolve a sub path); its id in *id. */
int meta_upsert_child(struct meta *m, uint64_t dir, uint64_t gen, const struct meta_entry *e,
		      uint64_t *id);
/* The server says @id is gone: remove it and its subtree. */
int meta_remove(struct meta *m, uint64_t id, struct meta_changes *ch);
/* Mark directory @dir stale (its next access lists it again). */
int meta_set_stale(struct meta *m, uint64_t dir);

/*
 * A recursive listing (liststream) of the subtree at @root, applied in
 * batches as it streams in. Entries name their parent by a server path
 * relative to @root ("" for @root itself); a folder must come before its
 * contents. meta_stream_end() with @complete sweeps, in every folder the
 * stream listed, the children it did not list (not local ones, not in
 * folders refreshed after @gen) and marks those folders listed at @now.
 * Without @complete (the stream failed) nothing is swept or marked. Changes
 * are appended to @ch (may be NULL) as batches are applied; @ch must stay
 * valid until meta_stream_end().
 */
struct meta_stream;
int meta_stream_begin(struct meta *m, uint64_t root, uint64_t gen, struct meta_changes *ch,
		      struct meta_stream **out);
int meta_stream_add(struct meta_stream *s, const char *parent_path, const struct meta_entry *e);
int meta_stream_end(struct meta_stream *s, bool complete, time_t now);
/* Entries applied so far (progress). */
uint64_t meta_stream_count(const struct meta_stream *s);

/*
 * Local changes (the write path). Each takes its own generation, so that
 * listings sent before it cannot undo it.
 *
 * meta_create: a new child of @parent. A directory is created clean and
 * listed (empty) at @now; a file is created META_LOCAL_DIRTY, empty, with
 * no base (base_size -1). -EEXIST when (@parent, @sname) exists.
 */
int meta_create(struct meta *m, uint64_t parent, const char *name, const char *sname,
		bool is_dir, time_t now, uint64_t *id);
/* meta_create of a folder; @pending: its creation on the service is
 * pending (META_LOCAL_NEWDIR). */
int meta_mkdir(struct meta *m, uint64_t parent, const char *name, const char *sname,
	       time_t now, bool pending, uint64_t *id);
/* The creation of folder @id is done: listings follow the service again.
 * 0 also when it was not pending, or is gone. */
int meta_set_dir_made(struct meta *m, uint64_t id);
/* Every folder whose creation is pending, @cb once each (no lock held). */
int meta_new_dirs(struct meta *m, int (*cb)(void *ctx, uint64_t id), void *ctx);
/* File @id has local content (@size, @md5 — "" while unknown — @mtime).
 * The first call records the server revision it started from as its base. */
int meta_set_local(struct meta *m, uint64_t id, int64_t size, time_t mtime, const char *md5);
/* File @id's content (@size, @md5, @mtime) is now the server's revision. */
int meta_set_clean(struct meta *m, uint64_t id, int64_t size, const char *md5, time_t mtime);
/* The server now holds (@size, @md5) for @id (an upload was confirmed
 * while newer local changes wait): later changes start from it. */
int meta_set_base(struct meta *m, uint64_t id, int64_t size, const char *md5);
/* Set the modification time (clean files: after the server took it). */
int meta_set_mtime(struct meta *m, uint64_t id, time_t mtime);
/* Times of folder @id: mtime, and ctime (kept as its "updated"). The
 * service keeps no folder times and listings leave these alone, so they
 * last as long as the index. */
int meta_set_dir_times(struct meta *m, uint64_t id, time_t mtime, time_t ctime);
/* Move @id to (@parent, @name, @sname) (canonical). A node at the target
 * server name, or at a name the service sees as the same (case), is removed
 * with its subtree first (its id, or 0, in *@replaced). */
int meta_rename(struct meta *m, uint64_t id, uint64_t parent, const char *name,
		const char *sname, uint64_t *replaced);
/* Remove @id (and its subtree) after a local unlink/rmdir. Clean content
 * goes to gc; dirty content is the caller's (dcache_discard). */
int meta_unlink(struct meta *m, uint64_t id);
/* Every file with local changes, @cb once each (no lock held during @cb). */
int meta_local_nodes(struct meta *m, int (*cb)(void *ctx, uint64_t id), void *ctx);

/* Content state of a file's cache file. */
struct meta_content {
	int64_t size;           /* size of the revision the content belongs to */
	char md5[33];           /* its md5 ("" for local content not hashed yet) */
	bool verified;          /* fully present and checked against md5 */
	bool dirty;             /* local content not yet uploaded: never evicted */
	time_t atime;           /* last use, for LRU eviction */
	int64_t bytes;          /* bytes present */
	void *ranges;           /* ranges_encode() blob (malloc'd by meta_content_get) */
	size_t ranges_len;
};
/* -ENOENT when no content is recorded for @id. */
int meta_content_get(struct meta *m, uint64_t id, struct meta_content *out);
void meta_content_release(struct meta_content *c);
int meta_content_put(struct meta *m, uint64_t id, const struct meta_content *c);
int meta_content_touch(struct meta *m, uint64_t id, time_t atime);
int meta_content_delete(struct meta *m, uint64_t id);
/* Sum of bytes present over all content, and over dirty content. */
int meta_content_usage(struct meta *m, int64_t *total, int64_t *dirty);
/* Up to @max clean content ids, least recently used first. */
int meta_content_lru(struct meta *m, uint64_t *ids, size_t max, size_t *n);
/* Up to @max ids whose cache file must be deleted (the node is gone or its
 * revision changed); each returned id is removed from the queue. */
int meta_gc_take(struct meta *m, uint64_t *ids, size_t max, size_t *n);
/* Drop every clean content record (after an unclean shutdown the cache files
 * may hold unsynced data); their files are queued for deletion. */
int meta_content_drop_clean(struct meta *m);

#endif
