/*
 * fs/options.h — the mount's configuration, filled from the command line by
 * a fuse_opt table (options_parse) and read by fs/mount.c. Subcommands
 * (login, logout, about, devices) are dispatched in fs/main.c before this.
 *
 * Usage (sshfs style):
 *   jottafs [options] [REMOTE] MOUNTPOINT
 *   REMOTE = [DEVICE/MOUNTPOINT][:/sub/path]   (default Jotta/Archive)
 */
#ifndef JOTTAFS_FS_OPTIONS_H
#define JOTTAFS_FS_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct fuse_args;

struct mount_options {
	/* remote */
	char *account;          /* -o account=NAME (default "default") */
	char *device;           /* -o device= or REMOTE (default "Jotta") */
	char *mountpoint;       /* -o mountpoint= or REMOTE (default "Archive") */
	char *subpath;          /* REMOTE ":/sub/path", POSIX names, no leading/trailing '/'; "" = root */
	char *local_mountpoint; /* the directory to mount on (absolute path) */
	/* endpoints (override what the account file stores) */
	char *api_url;
	char *jfs_url;
	char *token_url;
	char *cafile;
	bool insecure_http;     /* -o insecure_http: plain http:// to hosts that are not loopback */
	/* cache */
	char *cache_dir;        /* default $XDG_CACHE_HOME/jottafs/<account>/<device>/<mountpoint> */
	double dir_cache_time;  /* seconds metadata is fresh (default 60) */
	uint64_t cache_max_size;/* bytes (default 10G) */
	bool prefetch;          /* list whole subtrees with liststream eagerly */
	/* permissions */
	uid_t uid;
	gid_t gid;
	mode_t umask;           /* default 022 */
	bool ro;
	bool allow_other;
	/* write path */
	unsigned transfers;     /* upload workers (default 4) */
	unsigned small_transfers; /* more workers for files up to 4 MiB (default 28; 0: none) */
	unsigned unmount_wait;  /* seconds to wait for pending uploads at unmount (default 300) */
	bool hard_delete;       /* unlink/rmdir skip the trash */
	/* process */
	bool foreground;        /* -f */
	bool debug;             /* -d: foreground + debug log (and core dumps allowed) */
	bool coredump;          /* -o coredump: core dumps allowed (default: not dumpable) */
	unsigned max_threads;   /* FUSE worker threads (default 10) */
	/* control directory and change detection */
	char *control_dir;      /* -o control_dir=NAME (default ".jottacloud") */
	double poll_interval;   /* -o poll_interval=SECS: revalidate the directory in use
				   (default 5; 0: off) */
	unsigned read_streams;  /* -o read_streams=N: ranged GETs ahead of a sequential
				   reader (default 1: one stream) */
	unsigned max_read;      /* -o max_read=N, also given to the kernel (0: unset) */
	/* mount directory */
	bool nonempty;          /* -o nonempty: mount over a non-empty directory */
	/* what a server can make us hold (net/jfs.h JFS_*_MAX_* defaults) */
	uint64_t max_listing_entries;   /* -o max_listing_entries=N: one folder listing */
	uint64_t max_listing_bytes;     /* -o max_listing_bytes=SIZE: its body */
	uint64_t max_stream_entries;    /* -o max_stream_entries=N: one recursive listing */
	uint64_t max_stream_bytes;      /* -o max_stream_bytes=SIZE: its body */
};

/*
 * Parse @args (argv of the mount form) into @o, leaving in @args only what
 * libfuse itself must see (argv[0] and the -o options it knows: ro,
 * allow_other, auto_unmount, fsname=, ...; no positional argument). Every
 * member of @o is set: defaults filled in, cache_dir and local_mountpoint
 * absolute, uid/gid default to the caller's. Prints a one-line error and
 * returns -EINVAL on bad input (usage error), or -ENOENT/-ENOTDIR/-EACCES
 * when MOUNTPOINT is unusable; returns 1 when -h/-V was handled (exit 0).
 * @o must be released with options_release() in every case.
 */
int options_parse(struct fuse_args *args, struct mount_options *o);
void options_release(struct mount_options *o);

/* Pure helpers, also used by the tests: */
/* "512M", "20G", "1T", "4096", "1GiB" (base 1024) -> bytes. 0, -EINVAL, -ERANGE. */
int options_parse_size(const char *s, uint64_t *out);
/*
 * REMOTE "[DEVICE/MOUNTPOINT][:/sub/path]" -> *device and *mountpoint
 * (malloc'd, NULL when not given) and *subpath (malloc'd; segments joined by
 * '/', empty and "." segments dropped, "" for the root). "..", an empty
 * device or mountpoint, or a DEVICE without "/MOUNTPOINT" give -EINVAL.
 */
int options_parse_remote(const char *remote, char **device, char **mountpoint, char **subpath);

#endif
