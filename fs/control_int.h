/*
 * fs/control_int.h — the control directory's private part, shared by its
 * files: fs/control.c (the node table, listing, attributes, the FUSE
 * operations), fs/control_status.c (status, status.json, upload outcomes,
 * the state xattr), fs/control_trash.c (the trash view, deleting for good,
 * restoring), fs/control_versions.c (revisions). Nothing else includes it.
 * Locks: c->lock (see fs/control.c) is a leaf, never held across a request.
 */
#ifndef JOTTAFS_FS_CONTROL_INT_H
#define JOTTAFS_FS_CONTROL_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <time.h>

#include "fs/control.h"

#define TRASH_TTL_S     2.0     /* the trash view is reused this long */
#define CTL_TIMEOUT     1.0     /* kernel entry/attribute timeout of the tree */
#define MAX_OUTCOMES    256     /* conflict / failed paths remembered */
#define MAX_READ        (1 << 20)

enum vkind {
	V_ROOT, V_STATUS, V_STATUS_JSON,
	V_TDIR,         /* trash: a folder on the way to trashed items */
	V_TITEM,        /* trash: a trashed folder, or a folder inside one */
	V_TFILE,        /* trash: a trashed file */
	V_VDIR,         /* versions: a real folder (node) */
	V_VFILE,        /* versions: a real file (node), a folder of revisions */
	V_VREV,         /* versions: one revision */
};

/* A virtual node; lives as long as the mount. */
struct vnode {
	uint64_t ino;
	uint64_t parent;        /* ino of the parent, 0 for V_ROOT */
	enum vkind kind;
	char *name;             /* POSIX name in its parent */
	char *path;             /* trash: server path under the mountpoint */
	uint64_t node;          /* versions: index node id */
	int64_t rev;            /* V_VREV: revision number */
	int64_t size;
	time_t mtime;
	time_t created;
	char md5[33];
	struct vnode *hnext;    /* hash chain by (parent, name) */
};

/* One child as a listing describes it, before it gets a vnode. */
struct vspec {
	enum vkind kind;
	char *name, *path;
	uint64_t node;
	int64_t rev, size;
	time_t mtime, created;
	char md5[33];
};

struct vspecs {
	struct vspec *v;
	size_t n, cap;
};

/* A top-level trashed item of this mount. */
struct titem {
	char *rel;              /* original parent, server path relative to the mount root */
	char *sname;
	bool is_dir;
	int64_t size;
	time_t mtime, created;
	char md5[33];
};

#define HASH_BUCKETS 1024

struct control {
	struct fs *fs;
	pthread_mutex_t lock;           /* protects everything below */
	struct vnode **nodes;           /* by ino - CONTROL_INO_MIN */
	size_t n, cap;
	struct vnode *hash[HASH_BUCKETS];
	struct titem *trash;            /* snapshot of the trash view */
	size_t ntrash;
	double trash_at;                /* monotonic time of the snapshot, 0 none */
	char *conflicts[MAX_OUTCOMES];  /* conflict copies made (server paths) */
	size_t nconflicts;
	uint64_t conflicts_total;
	char *failed[MAX_OUTCOMES];     /* given up (server paths) */
	size_t nfailed;
	atomic_bool shadow_logged;      /* the shadowed server folder was logged */
};

static inline struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* fs/control.c */
void ctl_vrelease(struct vnode *v);
bool ctl_is_dir_kind(enum vkind k);
void ctl_specs_release(struct vspecs *l);
/* Append a spec (strings copied); a name already present is skipped. */
int ctl_specs_add(struct vspecs *l, const struct vspec *s);
char *ctl_path_join(const char *dir, const char *name);
/* The POSIX path of server path @path (each segment decoded). */
char *ctl_path_decode(const char *path);
/* The children of control directory @dir. */
int ctl_list_dir(struct fs *fs, const struct vnode *dir, struct vspecs *out);
/* Find child @name of control directory @parent (listing it). */
int ctl_child(struct fs *fs, uint64_t parent, const char *name, struct vnode *out);

/* fs/control_status.c */
/* Render the status file (@json: status.json). *out malloc'd. */
int ctl_status_render(struct fs *fs, bool json, char **out, size_t *len);

/* fs/control_trash.c */
void ctl_trash_free(struct titem *v, size_t n);
/* Children of trash folder @dir (V_TDIR, mount-relative path @dir->path). */
int ctl_list_tdir(struct fs *fs, const struct vnode *dir, struct vspecs *out);
int ctl_list_titem(struct fs *fs, const struct vnode *dir, struct vspecs *out);

/* fs/control_versions.c */
int ctl_list_vdir(struct fs *fs, const struct vnode *dir, struct vspecs *out);
int ctl_list_vfile(struct fs *fs, const struct vnode *dir, struct vspecs *out);

#endif
