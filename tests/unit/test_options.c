/*
 * tests/unit/test_options.c — fs/options: the mount command line. Defaults,
 * every option, what is left for libfuse, fstab noise, REMOTE forms, sizes,
 * and the usage errors.
 */
#include "fs/options.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"

/* Parse a NULL-terminated argument list (argv[0] is added). */
static int parse(struct mount_options *o, struct fuse_args *args, ...)
{
	va_list ap;
	*args = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
	fuse_opt_add_arg(args, "jottafs");
	va_start(ap, args);
	for (const char *a; (a = va_arg(ap, const char *)) != NULL;)
		fuse_opt_add_arg(args, a);
	va_end(ap);
	return options_parse(args, o);
}

/* The args left for libfuse, joined by spaces (argv[0] skipped). */
static void left(const struct fuse_args *args, char *buf, size_t sz)
{
	buf[0] = '\0';
	for (int i = 1; i < args->argc; i++) {
		strncat(buf, args->argv[i], sz - strlen(buf) - 2);
		strcat(buf, " ");
	}
}

static int setup(void **state)
{
	setenv("XDG_CACHE_HOME", "/xdg/cache", 1);
	return 0;
}

static void test_defaults(void **state)
{
	struct mount_options o;
	struct fuse_args args;
	char rest[512];
	assert_int_equal(parse(&o, &args, "/tmp", NULL), 0);
	assert_string_equal(o.account, "default");
	assert_string_equal(o.device, "Jotta");
	assert_string_equal(o.mountpoint, "Archive");
	assert_string_equal(o.subpath, "");
	assert_string_equal(o.local_mountpoint, "/tmp");
	assert_string_equal(o.cache_dir, "/xdg/cache/jottafs/default/Jotta/Archive");
	assert_null(o.api_url);
	assert_null(o.cafile);
	assert_true(o.dir_cache_time == 60.0);
	assert_true(o.cache_max_size == 10ULL << 30);
	assert_int_equal(o.umask, 022);
	assert_int_equal(o.uid, getuid());
	assert_int_equal(o.gid, getgid());
	assert_int_equal(o.transfers, 4);
	assert_int_equal(o.read_streams, 1);
	assert_int_equal(o.unmount_wait, 300);
	assert_int_equal(o.max_threads, 10);
	assert_string_equal(o.control_dir, ".jottacloud");
	assert_true(o.poll_interval == 5.0);
	assert_true(o.max_listing_entries == 1000000);
	assert_true(o.max_listing_bytes == 1ULL << 30);
	assert_true(o.max_stream_entries == 10000000);
	assert_true(o.max_stream_bytes == 4ULL << 30);
	assert_false(o.ro || o.allow_other || o.prefetch || o.hard_delete || o.foreground ||
		     o.debug);
	left(&args, rest, sizeof(rest));
	assert_string_equal(rest, ""); /* nothing for libfuse, no positional */
	options_release(&o);
	fuse_opt_free_args(&args);
}

static void test_every_option(void **state)
{
	struct mount_options o;
	struct fuse_args args;
	char rest[512];
	assert_int_equal(parse(&o, &args, "-f", "-o",
			       "account=work,device=Laptop,mountpoint=Docs,cache_dir=/c,"
			       "dir_cache_time=2.5,cache_max_size=512M,prefetch,uid=1234,gid=99,"
			       "umask=077,ro,allow_other,api_url=http://a,jfs_url=http://a/jfs,"
			       "token_url=http://a/t,cafile=/ca.pem,transfers=8,unmount_wait=0,"
			       "hard_delete,max_threads=3,control_dir=.jc,poll_interval=0,insecure_http,"
			       "max_listing_entries=7,max_listing_bytes=64K,max_stream_entries=9,"
			       "max_stream_bytes=1,read_streams=4",
			       "/tmp", NULL), 0);
	assert_string_equal(o.account, "work");
	assert_string_equal(o.device, "Laptop");
	assert_string_equal(o.mountpoint, "Docs");
	assert_string_equal(o.cache_dir, "/c");
	assert_true(o.dir_cache_time == 2.5);
	assert_true(o.cache_max_size == 512ULL << 20);
	assert_true(o.prefetch && o.ro && o.allow_other && o.hard_delete && o.foreground);
	assert_false(o.debug);
	assert_int_equal(o.uid, 1234);
	assert_int_equal(o.gid, 99);
	assert_int_equal(o.umask, 077);
	assert_string_equal(o.api_url, "http://a");
	assert_string_equal(o.jfs_url, "http://a/jfs");
	assert_string_equal(o.token_url, "http://a/t");
	assert_string_equal(o.cafile, "/ca.pem");
	assert_int_equal(o.transfers, 8);
	assert_int_equal(o.read_streams, 4);
	assert_int_equal(o.unmount_wait, 0);
	assert_int_equal(o.max_threads, 3);
	assert_string_equal(o.control_dir, ".jc");
	assert_true(o.poll_interval == 0.0);
	assert_true(o.insecure_http);
	assert_true(o.max_listing_entries == 7);
	assert_true(o.max_listing_bytes == 64 << 10);
	assert_true(o.max_stream_entries == 9);
	assert_true(o.max_stream_bytes == 1);
	/* ro goes to the kernel, allow_other to libfuse */
	left(&args, rest, sizeof(rest));
	assert_string_equal(rest, "-o ro,allow_other ");
	options_release(&o);
	fuse_opt_free_args(&args);

	/* -d: debug and foreground; -s: one thread; repeated options: last wins */
	assert_int_equal(parse(&o, &args, "-d", "-s", "-o", "account=a", "-o", "account=b",
			       "/tmp", NULL), 0);
	assert_true(o.debug && o.foreground);
	assert_int_equal(o.max_threads, 1);
	assert_string_equal(o.account, "b");
	assert_string_equal(o.cache_dir, "/xdg/cache/jottafs/b/Jotta/Archive");
	options_release(&o);
	fuse_opt_free_args(&args);
}

static void test_fstab_noise(void **state)
{
	struct mount_options o;
	struct fuse_args args;
	char rest[512];
	assert_int_equal(parse(&o, &args, "jottafs#Jotta/Sync", "/tmp", "-o",
			       "rw,_netdev,noauto,auto,user,users,nofail,defaults,"
			       "x-systemd.automount,x-systemd.requires=network-online.target,"
			       "comment=x,auto_unmount,nodev,nosuid,account=default", NULL), 0);
	assert_string_equal(o.device, "Jotta");
	assert_string_equal(o.mountpoint, "Sync");
	left(&args, rest, sizeof(rest));
	assert_string_equal(rest, "-o auto_unmount,nodev,nosuid ");
	options_release(&o);
	fuse_opt_free_args(&args);

	/* a placeholder source from fstab */
	assert_int_equal(parse(&o, &args, "none", "/tmp", NULL), 0);
	assert_string_equal(o.mountpoint, "Archive");
	options_release(&o);
	fuse_opt_free_args(&args);
}

static void test_remote_forms(void **state)
{
	static const struct {
		const char *remote, *dev, *mp, *sub;
	} v[] = {
		{ "Jotta/Sync", "Jotta", "Sync", "" },
		{ ":/photos/2024", NULL, NULL, "photos/2024" },
		{ ":photos", NULL, NULL, "photos" },
		{ "Jotta/Archive:/a/./b//c/", "Jotta", "Archive", "a/b/c" },
		{ "Laptop/C:", "Laptop", "C", "" },
		{ "", NULL, NULL, "" },
		{ "Jotta/My Files:/sp ace", "Jotta", "My Files", "sp ace" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char *d, *m, *s;
		assert_int_equal(options_parse_remote(v[i].remote, &d, &m, &s), 0);
		if (v[i].dev)
			assert_string_equal(d, v[i].dev);
		else
			assert_null(d);
		if (v[i].mp)
			assert_string_equal(m, v[i].mp);
		else
			assert_null(m);
		assert_string_equal(s, v[i].sub);
		free(d);
		free(m);
		free(s);
	}
	static const char *const bad[] = {
		"Archive", "Jotta/", "/Archive", "Jotta/a/b", "Jotta/..", "Jotta/Archive:/a/../b",
		"./x", NULL,
	};
	for (int i = 0; bad[i]; i++) {
		char *d = (char *)1, *m = (char *)1, *s = (char *)1;
		if (options_parse_remote(bad[i], &d, &m, &s) != -EINVAL)
			fail_msg("REMOTE '%s' accepted", bad[i]);
		assert_null(d);
		assert_null(m);
		assert_null(s);
	}

	/* via options_parse, with -o mountpoint agreeing or not */
	struct mount_options o;
	struct fuse_args args;
	assert_int_equal(parse(&o, &args, "-o", "mountpoint=Sync", "Jotta/Sync:/x", "/tmp", NULL), 0);
	assert_string_equal(o.subpath, "x");
	options_release(&o);
	fuse_opt_free_args(&args);
	assert_int_equal(parse(&o, &args, "-o", "mountpoint=Sync", "Jotta/Archive", "/tmp", NULL),
			 -EINVAL);
	options_release(&o);
	fuse_opt_free_args(&args);
}

static void test_sizes(void **state)
{
	static const struct { const char *s; uint64_t v; } ok[] = {
		{ "0", 0 }, { "4096", 4096 }, { "1k", 1024 }, { "1K", 1024 },
		{ "512M", 512ULL << 20 }, { "10G", 10ULL << 30 }, { "2T", 2ULL << 40 },
		{ "1GiB", 1ULL << 30 }, { "3MB", 3ULL << 20 },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint64_t v = 1;
		assert_int_equal(options_parse_size(ok[i].s, &v), 0);
		assert_true(v == ok[i].v);
	}
	static const char *const bad[] = { "", "-1", "+1", " 1", "1X", "1.5G", "G", "1GG",
					   "1Gx", NULL };
	for (int i = 0; bad[i]; i++) {
		uint64_t v;
		if (options_parse_size(bad[i], &v) != -EINVAL)
			fail_msg("size '%s' accepted", bad[i]);
	}
	uint64_t v;
	assert_int_equal(options_parse_size("99999999999T", &v), -ERANGE);
}

static void test_errors(void **state)
{
	static const char *const bad_opts[] = {
		"bogus", "transfers=0", "transfers=65", "transfers=x", "read_streams=0",
		"read_streams=9", "umask=8", "umask=1000",
		"uid=-1", "uid=abc", "gid=", "dir_cache_time=-1", "dir_cache_time=nan",
		"dir_cache_time=1s", "cache_max_size=lots", "unmount_wait=-5", "max_threads=0",
		"account=.hidden", "account=a/b", "device=..",
		"control_dir=", "control_dir=a/b", "control_dir=..", "poll_interval=-1",
		"poll_interval=x", "max_listing_entries=0", "max_listing_entries=-1",
		"max_stream_entries=x", "max_listing_bytes=0", "max_stream_bytes=lots",
		/* cannot work (issue 7 item 8) */
		"max_read=0", "max_read=4095", "max_read=x", "blkdev", "blksize=4096",
		"relatime", "nodiratime", "strictatime", "lazytime", NULL,
	};
	struct mount_options o;
	struct fuse_args args;
	for (int i = 0; bad_opts[i]; i++) {
		int rc = parse(&o, &args, "-o", bad_opts[i], "/tmp", NULL);
		if (rc != -EINVAL)
			fail_msg("-o %s: %d", bad_opts[i], rc);
		options_release(&o);
		fuse_opt_free_args(&args);
	}
	assert_int_equal(parse(&o, &args, "--frobnicate", "/tmp", NULL), -EINVAL);
	options_release(&o);
	fuse_opt_free_args(&args);
	assert_int_equal(parse(&o, &args, NULL), -EINVAL); /* missing MOUNTPOINT */
	options_release(&o);
	fuse_opt_free_args(&args);
	assert_int_equal(parse(&o, &args, "a/b", "/tmp", "/tmp", NULL), -EINVAL);
	options_release(&o);
	fuse_opt_free_args(&args);
	assert_int_equal(parse(&o, &args, "/nonexistent/dir", NULL), -ENOENT);
	options_release(&o);
	fuse_opt_free_args(&args);
	char file[] = "/tmp/jottafs-test-options-XXXXXX";
	int fd = mkstemp(file);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(parse(&o, &args, file, NULL), -ENOTDIR);
	unlink(file);
	options_release(&o);
	fuse_opt_free_args(&args);
}

/* -o max_read reaches both the kernel and init; -o nonempty is ours. */
static void test_max_read_and_nonempty(void **state)
{
	struct mount_options o;
	struct fuse_args args;
	char rest[512];
	assert_int_equal(parse(&o, &args, "-o", "max_read=65536,nonempty,noatime", "/tmp", NULL), 0);
	assert_int_equal(o.max_read, 65536);
	assert_true(o.nonempty);
	left(&args, rest, sizeof(rest));
	assert_string_equal(rest, "-o max_read=65536,noatime ");
	options_release(&o);
	fuse_opt_free_args(&args);
	assert_int_equal(parse(&o, &args, "/tmp", NULL), 0);
	assert_int_equal(o.max_read, 0);
	assert_false(o.nonempty);
	options_release(&o);
	fuse_opt_free_args(&args);
}

/* Issue 7 item 6: the built-in device's special mountpoints. */
static void test_special_mountpoints(void **state)
{
	static const struct {
		const char *remote;
		int rc;
		bool ro;
	} v[] = {
		{ "Jotta/Trash", -EINVAL, false }, { "jotta/TRASH", -EINVAL, false },
		{ "Jotta/Shared", 0, true }, { "Jotta/Latest", 0, true },
		{ "JOTTA/links", 0, true }, { "Jotta/Sync", 0, false },
		{ "Jotta/Archive", 0, false }, { "Laptop/Trash", 0, false },
		{ "Laptop/Shared", 0, false },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct mount_options o;
		struct fuse_args args;
		char rest[512];
		int rc = parse(&o, &args, v[i].remote, "/tmp", NULL);
		if (rc != v[i].rc || (!rc && o.ro != v[i].ro))
			fail_msg("%s: rc %d ro %d", v[i].remote, rc, o.ro);
		left(&args, rest, sizeof(rest));
		assert_string_equal(rest, ""); /* fs/mount.c adds ro for the kernel */
		options_release(&o);
		fuse_opt_free_args(&args);
	}
}

static void test_help_and_version(void **state)
{
	struct mount_options o;
	struct fuse_args args;
	assert_int_equal(parse(&o, &args, "-h", NULL), 1);
	options_release(&o);
	fuse_opt_free_args(&args);
	assert_int_equal(parse(&o, &args, "--version", NULL), 1);
	options_release(&o);
	fuse_opt_free_args(&args);
}

UNIT_TEST_PROGRAM(setup, NULL,
	cmocka_unit_test(test_defaults),
	cmocka_unit_test(test_every_option),
	cmocka_unit_test(test_fstab_noise),
	cmocka_unit_test(test_remote_forms),
	unit_test_alone(test_sizes),
	cmocka_unit_test(test_errors),
	cmocka_unit_test(test_max_read_and_nonempty),
	cmocka_unit_test(test_special_mountpoints),
	cmocka_unit_test(test_help_and_version),
)
