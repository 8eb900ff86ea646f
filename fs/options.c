/*
 * fs/options.c — the mount command line (see options.h).
 *
 * One fuse_opt table maps every option onto struct mount_options. Options
 * that need validation (numbers, sizes, modes) are keys handled in
 * opt_proc() so that a bad value gets our own one-line message. What the
 * kernel or libfuse must see (ro, allow_other and the libfuse mount options
 * in fuse_passthrough[]) stays in the argument vector; fstab noise is
 * dropped; anything else is an error: "jottafs: unknown option 'x'".
 *
 * Positional arguments: [REMOTE] MOUNTPOINT, where REMOTE is
 * [DEVICE/MOUNTPOINT][:/sub/path]. mount.fuse may pass the source as
 * "jottafs#REMOTE", or a placeholder ("jottafs", "none") when fstab has no
 * real source; both are understood.
 *
 * Single-threaded; no global state.
 */
#include "fs/options.h"

#include "auth/auth.h"
#include "lib/log.h"
#include "net/jfs.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <fuse_opt.h>
#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_ACCOUNT        "default"
#define DEFAULT_DEVICE         "Jotta"
#define DEFAULT_MOUNTPOINT     "Archive"
#define DEFAULT_DIR_CACHE_TIME 60.0
#define DEFAULT_CACHE_MAX      (10ULL << 30)
#define DEFAULT_UMASK          022
#define DEFAULT_TRANSFERS      4
#define DEFAULT_SMALL_TRANSFERS 28
/* One stream per sequential reader. Measured (cold 1 GiB through TLS, 2
 * cores shared with the emulator, 3 runs each): 1 stream 322-358 MB/s at
 * 3.0-3.2 daemon CPU-s/GiB, 2 parts 258-285 MB/s, 4 parts 245-266 MB/s at
 * 3.4-3.6 (parts past the hashed prefix are read back for the MD5). More
 * parts pay off only where one connection cannot fill the link. */
#define DEFAULT_READ_STREAMS 1
#define DEFAULT_UNMOUNT_WAIT   300
#define DEFAULT_MAX_THREADS    10
#define DEFAULT_CONTROL_DIR    ".jottacloud"
#define DEFAULT_POLL_INTERVAL  5.0

enum {
	KEY_HELP,
	KEY_VERSION,
	KEY_FOREGROUND,
	KEY_DEBUG,
	KEY_SINGLE,
	KEY_RO,
	KEY_ALLOW_OTHER,
	KEY_PREFETCH,
	KEY_HARD_DELETE,
	KEY_DIR_CACHE_TIME,
	KEY_CACHE_MAX_SIZE,
	KEY_UID,
	KEY_GID,
	KEY_UMASK,
	KEY_TRANSFERS,
	KEY_SMALL_TRANSFERS,
	KEY_READ_STREAMS,
	KEY_UNMOUNT_WAIT,
	KEY_MAX_THREADS,
	KEY_POLL_INTERVAL,
	KEY_MAX_READ,
	KEY_NONEMPTY,
	KEY_INSECURE_HTTP,
	KEY_COREDUMP,
	KEY_MAX_LIST_ENTRIES,
	KEY_MAX_LIST_BYTES,
	KEY_MAX_STREAM_ENTRIES,
	KEY_MAX_STREAM_BYTES,
};

/* Parsing state: the result plus what needs checking after the table. The
 * options are embedded (not pointed to): fuse_opt stores "%s" values at
 * offsets from the data pointer it is given, which is this struct. */
struct parse_state {
	struct mount_options opts;
	struct mount_options *o;  /* == &opts */
	char *positional[2];
	int n_positional;
	bool help;
	bool version;
	bool failed;
	bool uid_set;
	bool gid_set;
};

/* string options only ("%s" stores a malloc'd copy, freeing the previous one) */
#define MOPT(t, field) { t, offsetof(struct parse_state, opts.field), 0 }

static const struct fuse_opt mount_opts[] = {
	MOPT("account=%s", account),
	MOPT("device=%s", device),
	MOPT("mountpoint=%s", mountpoint),
	MOPT("cache_dir=%s", cache_dir),
	MOPT("api_url=%s", api_url),
	MOPT("jfs_url=%s", jfs_url),
	MOPT("token_url=%s", token_url),
	MOPT("cafile=%s", cafile),
	MOPT("control_dir=%s", control_dir),
	/* flags are keys: fuse_opt would store an int into our bool fields */
	FUSE_OPT_KEY("prefetch", KEY_PREFETCH),
	FUSE_OPT_KEY("hard_delete", KEY_HARD_DELETE),
	FUSE_OPT_KEY("dir_cache_time=", KEY_DIR_CACHE_TIME),
	FUSE_OPT_KEY("cache_max_size=", KEY_CACHE_MAX_SIZE),
	FUSE_OPT_KEY("uid=", KEY_UID),
	FUSE_OPT_KEY("gid=", KEY_GID),
	FUSE_OPT_KEY("umask=", KEY_UMASK),
	FUSE_OPT_KEY("transfers=", KEY_TRANSFERS),
	FUSE_OPT_KEY("small_transfers=", KEY_SMALL_TRANSFERS),
	FUSE_OPT_KEY("read_streams=", KEY_READ_STREAMS),
	FUSE_OPT_KEY("unmount_wait=", KEY_UNMOUNT_WAIT),
	FUSE_OPT_KEY("max_threads=", KEY_MAX_THREADS),
	FUSE_OPT_KEY("poll_interval=", KEY_POLL_INTERVAL),
	FUSE_OPT_KEY("max_read=", KEY_MAX_READ),
	FUSE_OPT_KEY("nonempty", KEY_NONEMPTY),
	FUSE_OPT_KEY("insecure_http", KEY_INSECURE_HTTP),
	FUSE_OPT_KEY("coredump", KEY_COREDUMP),
	FUSE_OPT_KEY("max_listing_entries=", KEY_MAX_LIST_ENTRIES),
	FUSE_OPT_KEY("max_listing_bytes=", KEY_MAX_LIST_BYTES),
	FUSE_OPT_KEY("max_stream_entries=", KEY_MAX_STREAM_ENTRIES),
	FUSE_OPT_KEY("max_stream_bytes=", KEY_MAX_STREAM_BYTES),
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("--debug", KEY_DEBUG),
	FUSE_OPT_KEY("-s", KEY_SINGLE),
	/* fstab noise: accepted and ignored */
	FUSE_OPT_KEY("_netdev", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("noauto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("auto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("user", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("users", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nouser", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nofail", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("rw", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("defaults", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("comment=", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_END
};

/* libfuse / kernel mount options handed through unchanged (prefix match
 * when the entry ends in '='). Each was mounted with and used: the
 * generic flags are the kernel's (nosuid, nodev and noexec also apply to a
 * user mount; suid and dev only to root's), debug is libfuse's request
 * trace. max_read= is a key: init must repeat it to libfuse. */
static const char *const fuse_passthrough[] = {
	"allow_root", "auto_unmount", "default_permissions", "fsname=", "subtype=",
	"context=", "fscontext=", "defcontext=", "rootcontext=", "debug", "suid",
	"nosuid", "dev", "nodev", "exec", "noexec", "async", "sync", "dirsync", "atime",
	"noatime", NULL,
};

/* FUSE and mount(8) options that cannot work here, refused before anything
 * is done rather than failing (or being ignored) after the mount. */
static const struct {
	const char *name;               /* prefix match when it ends in '=' */
	const char *why;
} refused[] = {
	{ "blkdev", "a block-device FUSE mount needs a device; jottafs has none" },
	{ "blksize=", "only a block-device FUSE mount (blkdev) has a block size" },
	{ "nodiratime", "FUSE does not support it; jottafs keeps no access times" },
	{ "relatime", "FUSE does not support it; jottafs keeps no access times" },
	{ "strictatime", "FUSE does not support it; jottafs keeps no access times" },
	{ "lazytime", "FUSE does not support it; jottafs keeps no access times" },
};

static int usage_error(struct parse_state *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int usage_error(struct parse_state *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vuser(fmt, ap);
	va_end(ap);
	st->failed = true;
	return -1;
}

/* The value of "name=value" (the text after the first '='). */
static const char *opt_value(const char *arg)
{
	const char *eq = strchr(arg, '=');
	return eq ? eq + 1 : "";
}

/* Parse an unsigned decimal (base 8 when @octal) in [min, max]. */
static int parse_uint(const char *s, bool octal, unsigned long long min,
		      unsigned long long max, unsigned long long *out)
{
	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, octal ? 8 : 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int options_parse_size(const char *s, uint64_t *out)
{
	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	unsigned shift = 0;
	if (*end) {
		switch (*end) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		case 't': case 'T': shift = 40; break;
		default: return -EINVAL;
		}
		end++;
		/* optional "B" or "iB" */
		if (!strcmp(end, "iB") || !strcmp(end, "ib") || !strcmp(end, "B") || !strcmp(end, "b"))
			end += strlen(end);
		if (*end)
			return -EINVAL;
	}
	uint64_t r;
	if (shift && __builtin_mul_overflow((uint64_t)v, (uint64_t)1 << shift, &r))
		return -ERANGE;
	*out = shift ? r : v;
	return 0;
}

/* How each numeric option is read and where it is stored. */
enum num_kind { NUM_UINT, NUM_OCTAL, NUM_SECONDS, NUM_SIZE };

static const struct num_opt {
	int key;
	const char *name;
	enum num_kind kind;
	unsigned long long min, max;    /* NUM_UINT/NUM_OCTAL/NUM_SIZE bounds */
	double max_s;                   /* NUM_SECONDS upper bound */
	size_t off, width;              /* field in struct mount_options */
	const char *expect;             /* "(expected ...)" in the error */
} num_opts[] = {
#define F(field) offsetof(struct mount_options, field), sizeof(((struct mount_options *)0)->field)
	{ KEY_DIR_CACHE_TIME, "dir_cache_time", NUM_SECONDS, 0, 0, 365.0 * 86400,
	  F(dir_cache_time), "seconds, e.g. 60 or 0.5" },
	{ KEY_POLL_INTERVAL, "poll_interval", NUM_SECONDS, 0, 0, 86400,
	  F(poll_interval), "seconds, 0 to turn polling off" },
	{ KEY_CACHE_MAX_SIZE, "cache_max_size", NUM_SIZE, 0, UINT64_MAX, 0,
	  F(cache_max_size), "a size such as 512M, 20G or 1T" },
	{ KEY_UID, "uid", NUM_UINT, 0, (uid_t)-2, 0, F(uid), "a numeric id" },
	{ KEY_GID, "gid", NUM_UINT, 0, (gid_t)-2, 0, F(gid), "a numeric id" },
	{ KEY_UMASK, "umask", NUM_OCTAL, 0, 0777, 0, F(umask), "an octal mode such as 022" },
	{ KEY_TRANSFERS, "transfers", NUM_UINT, 1, 64, 0, F(transfers), "a number from 1 to 64" },
	{ KEY_SMALL_TRANSFERS, "small_transfers", NUM_UINT, 0, 64, 0, F(small_transfers),
	  "a number from 0 to 64" },
	{ KEY_READ_STREAMS, "read_streams", NUM_UINT, 1, 8, 0, F(read_streams),
	  "a number from 1 to 8" },
	{ KEY_UNMOUNT_WAIT, "unmount_wait", NUM_UINT, 0, 7 * 86400, 0, F(unmount_wait), "seconds" },
	{ KEY_MAX_THREADS, "max_threads", NUM_UINT, 1, 1024, 0, F(max_threads),
	  "a number from 1 to 1024" },
	{ KEY_MAX_LIST_ENTRIES, "max_listing_entries", NUM_UINT, 1, UINT64_MAX, 0,
	  F(max_listing_entries), "a number of entries, at least 1" },
	{ KEY_MAX_STREAM_ENTRIES, "max_stream_entries", NUM_UINT, 1, UINT64_MAX, 0,
	  F(max_stream_entries), "a number of entries, at least 1" },
	{ KEY_MAX_LIST_BYTES, "max_listing_bytes", NUM_SIZE, 1, UINT64_MAX, 0,
	  F(max_listing_bytes), "a size such as 512M or 4G" },
	{ KEY_MAX_STREAM_BYTES, "max_stream_bytes", NUM_SIZE, 1, UINT64_MAX, 0,
	  F(max_stream_bytes), "a size such as 512M or 4G" },
	/* The kernel reads at least a page at a time. */
	{ KEY_MAX_READ, "max_read", NUM_UINT, 4096, 1U << 30, 0, F(max_read),
	  "bytes from 4096 to 1073741824" },
#undef F
};

/* Store an unsigned value in a field of @width bytes (the bounds fit it). */
static void store_uint(void *field, size_t width, unsigned long long v)
{
	switch (width) {
	case sizeof(uint32_t): { uint32_t x = (uint32_t)v; memcpy(field, &x, width); break; }
	case sizeof(uint64_t): { uint64_t x = v; memcpy(field, &x, width); break; }
	default: abort();       /* a table entry with an unexpected field type */
	}
}

/* The numeric option of @key, or NULL. */
static const struct num_opt *num_opt(int key)
{
	for (size_t i = 0; i < sizeof(num_opts) / sizeof(num_opts[0]); i++)
		if (num_opts[i].key == key)
			return &num_opts[i];
	return NULL;
}

/* Store a validated number into @o: 0, or -1 after the message. */
static int opt_number(struct parse_state *st, const char *arg, int key)
{
	const char *v = opt_value(arg);
	const struct num_opt *no = num_opt(key);
	if (!no)
		return -1;
	char *field = (char *)st->o + no->off;
	unsigned long long n = 0;
	bool ok;
	if (no->kind == NUM_SECONDS) {
		char *end;
		errno = 0;
		double d = strtod(v, &end);
		ok = *v && !errno && !*end && isfinite(d) && d >= 0 && d <= no->max_s;
		if (ok)
			memcpy(field, &d, sizeof(d));
	} else if (no->kind == NUM_SIZE) {
		uint64_t size;
		ok = options_parse_size(v, &size) == 0 && size >= no->min && size <= no->max;
		n = size;
	} else {
		ok = parse_uint(v, no->kind == NUM_OCTAL, no->min, no->max, &n) == 0;
	}
	if (!ok)
		return usage_error(st, "bad value for option '%s': '%s' (expected %s)", no->name, v,
				   no->expect);
	if (no->kind != NUM_SECONDS)
		store_uint(field, no->width, n);
	if (key == KEY_UID)
		st->uid_set = true;
	else if (key == KEY_GID)
		st->gid_set = true;
	return 0;
}

/* Whether @arg (an -o item) is a libfuse/kernel option we pass through. */
static bool is_passthrough(const char *arg)
{
	for (int i = 0; fuse_passthrough[i]; i++) {
		const char *p = fuse_passthrough[i];
		size_t n = strlen(p);
		if (p[n - 1] == '=' ? !strncmp(arg, p, n) : !strcmp(arg, p))
			return true;
	}
	return false;
}

/* Whether an SELinux context option can work: only with SELinux. */
static bool selinux_enabled(void)
{
	return access("/sys/fs/selinux/enforce", F_OK) == 0;
}

/* Refuse @arg when it cannot work (refused[], or a context without
 * SELinux): -1 after the message, 0 when it may go on. */
static int refuse_unworkable(struct parse_state *st, const char *arg)
{
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		const char *p = refused[i].name;
		size_t n = strlen(p);
		if (p[n - 1] == '=' ? !strncmp(arg, p, n) : !strcmp(arg, p))
			return usage_error(st, "option '%s' cannot be used: %s", arg,
					   refused[i].why);
	}
	if (strstr(arg, "context=") && is_passthrough(arg) && !selinux_enabled())
		return usage_error(st, "option '%s' cannot be used: SELinux is not enabled", arg);
	return 0;
}

/* Flags: set to true; @keep 1 passes the option on to libfuse as well. */
static const struct flag_opt {
	int key;
	size_t off;
	int keep;
} flag_opts[] = {
	{ KEY_FOREGROUND, offsetof(struct mount_options, foreground), 0 },
	{ KEY_RO, offsetof(struct mount_options, ro), 1 },     /* the kernel mounts it ro too */
	{ KEY_ALLOW_OTHER, offsetof(struct mount_options, allow_other), 1 },
	{ KEY_PREFETCH, offsetof(struct mount_options, prefetch), 0 },
	{ KEY_HARD_DELETE, offsetof(struct mount_options, hard_delete), 0 },
	{ KEY_COREDUMP, offsetof(struct mount_options, coredump), 0 },
	{ KEY_NONEMPTY, offsetof(struct mount_options, nonempty), 0 },
	{ KEY_INSECURE_HTTP, offsetof(struct mount_options, insecure_http), 0 },
};

/* fuse_opt callback: 0 drop, 1 keep for libfuse, -1 error. */
static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct parse_state *st = data;
	struct mount_options *o = st->o;
	for (size_t i = 0; i < sizeof(flag_opts) / sizeof(flag_opts[0]); i++) {
		if (flag_opts[i].key == key) {
			*(bool *)((char *)o + flag_opts[i].off) = true;
			return flag_opts[i].keep;
		}
	}
	if (num_opt(key)) {
		if (opt_number(st, arg, key) < 0)
			return -1;
		return key == KEY_MAX_READ; /* the kernel needs max_read too */
	}
	switch (key) {
	case KEY_HELP:
		st->help = true;
		return 0;
	case KEY_VERSION:
		st->version = true;
		return 0;
	case KEY_DEBUG:
		o->debug = true;
		o->foreground = true;
		return 0;
	case KEY_SINGLE:
		o->max_threads = 1;
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		if (st->n_positional >= 2)
			return usage_error(st, "too many arguments: '%s' (usage: jottafs [options] "
					   "[REMOTE] MOUNTPOINT)", arg);
		st->positional[st->n_positional] = strdup(arg);
		if (!st->positional[st->n_positional])
			return usage_error(st, "out of memory");
		st->n_positional++;
		return 0;
	case FUSE_OPT_KEY_OPT:
		if (arg[0] == '-')
			return usage_error(st, "unknown option '%s' (see 'jottafs -h')", arg);
		if (!strncmp(arg, "x-systemd.", 10) || !strncmp(arg, "x-gvfs", 6))
			return 0; /* fstab noise */
		if (refuse_unworkable(st, arg))
			return -1;
		if (is_passthrough(arg))
			return 1;
		return usage_error(st, "unknown option '%s' (see 'jottafs -h')", arg);
	}
	return usage_error(st, "unknown option '%s'", arg);
}

/* A device or mountpoint name: non-empty, no '/', not "." or "..". */
static bool remote_name_ok(const char *s)
{
	return *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

/* Replace *field with a malloc'd copy of @len bytes of @s. */
static int set_field(char **field, const char *s, size_t len)
{
	char *c = strndup(s, len);
	if (!c)
		return -ENOMEM;
	free(*field);
	*field = c;
	return 0;
}

int options_parse_remote(const char *remote, char **device, char **mountpoint, char **subpath)
{
	*device = *mountpoint = *subpath = NULL;
	const char *colon = strchr(remote, ':');
	size_t left = colon ? (size_t)(colon - remote) : strlen(remote);
	if (left) {
		const char *slash = memchr(remote, '/', left);
		if (!slash)
			return -EINVAL;
		size_t dlen = (size_t)(slash - remote);
		if (set_field(device, remote, dlen) || set_field(mountpoint, slash + 1, left - dlen - 1))
			goto nomem;
		if (!remote_name_ok(*device) || !remote_name_ok(*mountpoint))
			goto bad;
	}
	/* sub path: POSIX names between '/'; empty and "." segments dropped */
	const char *p = colon ? colon + 1 : "";
	char *sub = calloc(1, strlen(p) + 1);
	if (!sub)
		goto nomem;
	*subpath = sub;
	while (*p) {
		size_t n = strcspn(p, "/");
		if (n == 2 && !strncmp(p, "..", 2))
			goto bad;
		if (n && !(n == 1 && *p == '.')) {
			if (*sub)
				strcat(sub, "/");
			strncat(sub, p, n);
		}
		p += n;
		if (*p == '/')
			p++;
	}
	return 0;
bad:
	free(*device);
	free(*mountpoint);
	free(*subpath);
	*device = *mountpoint = *subpath = NULL;
	return -EINVAL;
nomem:
	free(*device);
	free(*mountpoint);
	free(*subpath);
	*device = *mountpoint = *subpath = NULL;
	return -ENOMEM;
}

/* $XDG_CACHE_HOME/jottafs/<account>/<device>/<mountpoint>, else under ~/.cache. */
static char *default_cache_dir(const struct mount_options *o)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	char *dir = NULL;
	int n;
	if (xdg && xdg[0] == '/')
		n = asprintf(&dir, "%s/jottafs/%s/%s/%s", xdg, o->account, o->device, o->mountpoint);
	else if (home && home[0] == '/')
		n = asprintf(&dir, "%s/.cache/jottafs/%s/%s/%s", home, o->account, o->device,
			     o->mountpoint);
	else
		return NULL;
	return n < 0 ? NULL : dir;
}

/* Print "jottafs: <message>" and return @err (for finish()). */
static int finish_error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int finish_error(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vuser(fmt, ap);
	va_end(ap);
	return err;
}

static void print_help(const char *prog)
{
	printf("usage: %s [options] [REMOTE] MOUNTPOINT\n"
	       "       %s login [--account NAME] [-o api_url=URL,jfs_url=URL,token_url=URL,cafile=FILE,\n"
	       "                insecure_http]\n"
	       "       %s login --service NAME|list [--account NAME]\n"
	       "                [-o services=FILE,login_port=PORT,login_timeout=SECONDS]\n"
	       "       %s logout [--account NAME]\n"
	       "       %s about [--account NAME] [--json]\n"
	       "       %s devices [--account NAME] [--json]\n"
	       "       %s status [MOUNTPOINT] [--json]\n"
	       "\n"
	       "REMOTE is [DEVICE/MOUNTPOINT][:/sub/path] (default Jotta/Archive).\n"
	       "\n"
	       "general options:\n"
	       "    -h, --help             print this help and exit\n"
	       "    -V, --version          print the version and exit\n"
	       "    -f                     stay in the foreground\n"
	       "    -d, --debug            foreground, with debug logging (core dumps allowed)\n"
	       "    -s                     serve requests on one thread\n"
	       "\n"
	       "jottafs options:\n"
	       "    -o account=NAME        the login to use (default default)\n"
	       "    -o device=DEVICE       remote device (default Jotta)\n"
	       "    -o mountpoint=NAME     remote mountpoint (default Archive)\n"
	       "    -o cache_dir=DIR       cache directory\n"
	       "                           (default $XDG_CACHE_HOME/jottafs/ACCOUNT/DEVICE/MOUNTPOINT)\n"
	       "    -o cache_max_size=SIZE bound on cached content, K/M/G/T suffix (default 10G)\n"
	       "    -o dir_cache_time=SECS how long listings are trusted (default 60)\n"
	       "    -o prefetch            list the whole tree with one request at mount\n"
	       "    -o transfers=N         parallel uploads (default 4)\n"
	       "    -o small_transfers=N   more parallel uploads of files up to 4 MiB (default 28)\n"
	       "    -o read_streams=N      ranged GETs ahead of a sequential reader (default 1)\n"
	       "    -o unmount_wait=SECS   how long unmount waits for uploads (default 300)\n"
	       "    -o hard_delete         delete without the trash\n"
	       "    -o uid=N,gid=N         owner shown for every file (default: yours)\n"
	       "    -o umask=MODE          permission mask, octal (default 022)\n"
	       "    -o ro                  read-only mount\n"
	       "    -o allow_other         let other users in (needs user_allow_other)\n"
	       "    -o allow_root          let root in as well as you\n"
	       "    -o auto_unmount        unmount when jottafs ends\n"
	       "    -o max_threads=N       FUSE worker threads (default 10)\n"
	       "    -o max_read=BYTES      largest read request the kernel sends (>= 4096)\n"
	       "    -o control_dir=NAME    name of the control directory (default .jottacloud)\n"
	       "    -o poll_interval=SECS  revalidate the directory in use this often (default 5;\n"
	       "                           0: off)\n"
	       "    -o nonempty            mount over a directory that is not empty\n"
	       "    -o coredump            allow core dumps (they can hold the tokens)\n"
	       "    -o max_listing_entries=N, max_listing_bytes=SIZE\n"
	       "                           refuse a folder listing beyond these (default\n"
	       "                           1000000 entries, 1G)\n"
	       "    -o max_stream_entries=N, max_stream_bytes=SIZE\n"
	       "                           refuse a recursive listing beyond these (default\n"
	       "                           10000000 entries, 4G)\n"
	       "    -o api_url=URL         JSON API endpoint (default https://api.jottacloud.com)\n"
	       "    -o jfs_url=URL         JFS endpoint (default https://jfs.jottacloud.com/jfs)\n"
	       "    -o token_url=URL       OAuth token endpoint (default: from the login)\n"
	       "    -o cafile=FILE         trust an extra CA (certificates are always verified)\n"
	       "    -o insecure_http       accept plain http:// endpoints on hosts that are not\n"
	       "                           loopback (tokens travel unencrypted)\n"
	       "\n"
	       "Passed on to the kernel: default_permissions (always on), fsname=, subtype=,\n"
	       "debug, suid, nosuid, dev, nodev, exec, noexec, async, sync, dirsync, atime,\n"
	       "noatime, context=, fscontext=, defcontext=, rootcontext=.\n"
	       "fstab options _netdev, noauto, auto, user, users, nofail, rw, defaults and\n"
	       "x-systemd.* are accepted and ignored.\n",
	       prog, prog, prog, prog, prog, prog, prog);
}

/* The built-in device's special mountpoints (docs 3.2): Trash is a virtual
 * view of deleted items (-1: cannot be mounted); Shared, Latest and Links
 * are not ordinary file trees (1: read-only). The service compares names
 * case-insensitively. */
static int special_mountpoint(const char *device, const char *mountpoint)
{
	static const char *const ro[] = { "Shared", "Latest", "Links" };

	if (strcasecmp(device, DEFAULT_DEVICE))
		return 0;
	if (!strcasecmp(mountpoint, "Trash"))
		return -1;
	for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++)
		if (!strcasecmp(mountpoint, ro[i]))
			return 1;
	return 0;
}

/* Fill unset members with defaults; validate names and the mountpoint. */
static int finish(const struct parse_state *st)
{
	struct mount_options *o = st->o;
	char *remote = NULL, *local = NULL;

	if (st->n_positional == 0)
		return finish_error(-EINVAL, "missing MOUNTPOINT (usage: jottafs [options] [REMOTE] "
				    "MOUNTPOINT; see 'jottafs -h')");
	if (st->n_positional == 2) {
		remote = st->positional[0];
		local = st->positional[1];
	} else {
		local = st->positional[0];
	}
	if (remote && !strncmp(remote, "jottafs#", 8))
		remote += 8;
	if (remote && (!strcmp(remote, "jottafs") || !strcmp(remote, "none")))
		remote = NULL;
	if (remote) {
		char *dev, *mp, *sub;
		int err = options_parse_remote(remote, &dev, &mp, &sub);
		if (err == -ENOMEM)
			return finish_error(-ENOMEM, "out of memory");
		if (err < 0)
			return finish_error(-EINVAL, "bad REMOTE '%s': expected [DEVICE/MOUNTPOINT][:/sub/path], "
					   "e.g. Jotta/Archive or Jotta/Sync:/photos", remote);
		bool clash = (dev && o->device && strcmp(dev, o->device)) ||
			     (mp && o->mountpoint && strcmp(mp, o->mountpoint));
		if (clash) {
			finish_error(-EINVAL, "REMOTE '%s' contradicts -o device=%s / mountpoint=%s",
				     remote, o->device ? o->device : DEFAULT_DEVICE,
				     o->mountpoint ? o->mountpoint : DEFAULT_MOUNTPOINT);
			free(dev);
			free(mp);
			free(sub);
			return -EINVAL;
		}
		if (dev) {
			free(o->device);
			o->device = dev;
		}
		if (mp) {
			free(o->mountpoint);
			o->mountpoint = mp;
		}
		free(o->subpath);
		o->subpath = sub;
	}
	if ((!o->account && !(o->account = strdup(DEFAULT_ACCOUNT))) ||
	    (!o->device && !(o->device = strdup(DEFAULT_DEVICE))) ||
	    (!o->mountpoint && !(o->mountpoint = strdup(DEFAULT_MOUNTPOINT))) ||
	    (!o->subpath && !(o->subpath = strdup(""))))
		return finish_error(-ENOMEM, "out of memory");
	if (auth_account_name_valid(o->account) < 0)
		return finish_error(-EINVAL, "invalid account name '%s': use letters, digits, '-', '_' "
				   "and '.' (not first), at most 64", o->account);
	if (!o->control_dir && !(o->control_dir = strdup(DEFAULT_CONTROL_DIR)))
		return finish_error(-ENOMEM, "out of memory");
	if (!*o->control_dir || strchr(o->control_dir, '/') || !strcmp(o->control_dir, ".") ||
	    !strcmp(o->control_dir, "..") || strlen(o->control_dir) > 255)
		return finish_error(-EINVAL, "invalid control_dir '%s': one file name expected",
				    o->control_dir);
	if (!remote_name_ok(o->device))
		return finish_error(-EINVAL, "invalid device name '%s'", o->device);
	if (!remote_name_ok(o->mountpoint))
		return finish_error(-EINVAL, "invalid mountpoint name '%s'", o->mountpoint);
	int special = special_mountpoint(o->device, o->mountpoint);
	if (special < 0)
		return finish_error(-EINVAL, "'%s/%s' is the service's view of deleted items, not a "
				    "folder tree, and cannot be mounted; a mount lists its part of "
				    "the trash in .jottacloud/trash", o->device, o->mountpoint);
	if (special)
		o->ro = true;
	if (!o->cache_dir) {
		o->cache_dir = default_cache_dir(o);
		if (!o->cache_dir)
			return finish_error(-EINVAL, "cannot find a cache directory (set HOME or "
					   "XDG_CACHE_HOME, or pass -o cache_dir=DIR)");
	} else if (o->cache_dir[0] != '/') {
		char *abs = realpath(".", NULL);
		char *joined = NULL;
		if (!abs || asprintf(&joined, "%s/%s", abs, o->cache_dir) < 0)
			joined = NULL;
		free(abs);
		if (!joined)
			return finish_error(-ENOMEM, "out of memory");
		free(o->cache_dir);
		o->cache_dir = joined;
	}

	/* MOUNTPOINT: an existing directory, made absolute */
	struct stat sb;
	if (stat(local, &sb) < 0) {
		int err = errno;
		return finish_error(-err, "cannot use MOUNTPOINT '%s': %s", local, strerror(err));
	}
	if (!S_ISDIR(sb.st_mode))
		return finish_error(-ENOTDIR, "MOUNTPOINT '%s' is not a directory", local);
	free(o->local_mountpoint);
	o->local_mountpoint = realpath(local, NULL);
	if (!o->local_mountpoint) {
		int err = errno;
		return finish_error(-err, "cannot use MOUNTPOINT '%s': %s", local, strerror(err));
	}
	return 0;
}

int options_parse(struct fuse_args *args, struct mount_options *out)
{
	struct parse_state st = { .o = NULL };
	struct mount_options *o = &st.opts;
	st.o = o;
	o->dir_cache_time = DEFAULT_DIR_CACHE_TIME;
	o->cache_max_size = DEFAULT_CACHE_MAX;
	o->umask = DEFAULT_UMASK;
	o->transfers = DEFAULT_TRANSFERS;
	o->small_transfers = DEFAULT_SMALL_TRANSFERS;
	o->read_streams = DEFAULT_READ_STREAMS;
	o->unmount_wait = DEFAULT_UNMOUNT_WAIT;
	o->max_threads = DEFAULT_MAX_THREADS;
	o->poll_interval = DEFAULT_POLL_INTERVAL;
	o->max_listing_entries = JFS_LIST_MAX_ENTRIES;
	o->max_listing_bytes = JFS_LIST_MAX_BYTES;
	o->max_stream_entries = JFS_STREAM_MAX_ENTRIES;
	o->max_stream_bytes = JFS_STREAM_MAX_BYTES;

	int rc = fuse_opt_parse(args, &st, mount_opts, opt_proc);
	int result = 0;
	if (rc < 0 || st.failed) {
		if (!st.failed)
			log_user("invalid arguments (see 'jottafs -h')");
		result = -EINVAL;
	} else if (st.help) {
		print_help("jottafs");
		result = 1;
	} else if (st.version) {
		printf("jottafs %s\nFUSE library version %s\n", JOTTAFS_VERSION, fuse_pkgversion());
		fflush(stdout);
		fuse_lowlevel_version();
		result = 1;
	} else {
		result = finish(&st);
		if (!st.uid_set)
			o->uid = getuid();
		if (!st.gid_set)
			o->gid = getgid();
	}
	for (int i = 0; i < st.n_positional; i++)
		free(st.positional[i]);
	*out = st.opts;
	return result;
}

void options_release(struct mount_options *o)
{
	if (!o)
		return;
	/* every "%s" option of the spec holds a malloc'd string, and so do the
	 * two fields derived from the positional arguments */
	for (size_t i = 0; mount_opts[i].templ; i++)
		if (strstr(mount_opts[i].templ, "%s"))
			free(*(char **)((char *)o + mount_opts[i].offset -
					offsetof(struct parse_state, opts)));
	free(o->subpath);
	free(o->local_mountpoint);
	memset(o, 0, sizeof(*o));
}
