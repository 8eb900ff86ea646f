/*
 * fs/mount.c — run one mount (see mount.h).
 *
 * Order of events (clean-up runs in reverse):
 *   0. the mount directory: not already a jottafs mount, and empty
 *      unless -o nonempty;
 *   1. account: http client, auth_open, token provider, jfs client;
 *   2. remote checks: the mountpoint exists, the sub path resolves to a
 *      folder (this lists its ancestors into the index);
 *   3. cache directory: created 0700 and refused unless only we (and
 *      root) can change it and the directories above it (lib/privdir.h);
 *      locked with flock(LOCK_EX) on <cache_dir>/lock (a second daemon on
 *      it is refused, naming the pid);
 *   4. FUSE: session, signal handlers, mount;
 *   5. fuse_daemonize() unless -f/-d; from here on the log goes to syslog;
 *   6. threads: notifier, content cache workers, lister workers, upload
 *      workers — only now, because fork() keeps only the calling thread;
 *      the index and the upload journal are reopened here too (an SQLite
 *      connection must not cross a fork); local changes left without a
 *      journalled upload by a crash are settled (writer_recover);
 *   7. the multi-threaded loop until unmount or a signal;
 *   8. unmount, wait up to unmount_wait for pending uploads (what is left
 *      stays journalled), stop workers, close the index (clean shutdown).
 * Everything the user can fix (not logged in, no such remote path, cache
 * directory in use, bad or busy mountpoint) fails before step 5, on stderr.
 *
 * Offline start: when the service cannot be reached in step 2 (net/conn
 * says offline, after a few seconds at most) and the cache holds an index
 * of the mount root, the mount comes up offline from that index and goes
 * online when the connectivity probe gets an answer; without an index it
 * fails at once, saying why.
 */
#include "fs/mount.h"
#include "fs/mountinfo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "cache/data.h"
#include "cache/deletes.h"
#include "cache/lister.h"
#include "cache/meta.h"
#include "cache/upload.h"
#include "cache/write.h"
#include "fs/cli.h"
#include "fs/fs.h"
#include "fs/control.h"
#include "fs/itable.h"
#include "fs/poll.h"
#include "fs/notify.h"
#include "fs/options.h"
#include "lib/log.h"
#include "lib/privdir.h"
#include "lib/secret.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/jfs.h"

/* Everything a mount owns, so that clean-up can undo what was done. */
struct mount {
	struct mount_options *o;
	char *config_dir;
	char *cache_dir;
	char *index_path;
	char *data_dir;
	char *identity;
	int lock_fd;
	struct http_client *http;
	struct conn *conn;
	bool start_offline;             /* the service was unreachable in step 2 */
	struct auth *auth;
	struct jfs *jfs;
	struct fuse_session *se;
	bool signals;
	bool mounted;
	struct fs fs;
};

struct mounted_on {
	const char *path;
	char *src;
	size_t srcsz;
	bool found;
};

static bool mounted_on_cb(const struct mountinfo_entry *e, void *ctx)
{
	struct mounted_on *m = ctx;

	if (strcmp(e->mountpoint, m->path))
		return false;
	snprintf(m->src, m->srcsz, "%s", e->source);
	m->found = true;
	return true;
}

/* Whether a jottafs is mounted on @path (absolute, resolved): its source
 * ("Device/Mountpoint") in @src, else "". */
static bool jottafs_mounted_on(const char *path, char *src, size_t srcsz)
{
	struct mounted_on m = { .path = path, .src = src, .srcsz = srcsz };

	return mountinfo_each_jottafs(mounted_on_cb, &m) == 0 && m.found;
}

/* Step 0: refuse a mount directory that cannot be right: one a jottafs is
 * already mounted on (a second would stack on top of it), or one with
 * files in it, which the mount would hide (unless -o nonempty). */
static int check_mount_dir(const struct mount_options *o)
{
	char src[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if (jottafs_mounted_on(o->local_mountpoint, src, sizeof(src))) {
		log_user("'%s' is already mounted (jottafs %s); unmount it first "
			 "(fusermount3 -u '%s')", o->local_mountpoint, src, o->local_mountpoint);
		return -1;
	}
	if (o->nonempty)
		return 0;
	d = opendir(o->local_mountpoint);
	if (!d) {
		log_user("cannot use MOUNTPOINT '%s': %s", o->local_mountpoint, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) && (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")))
		;
	closedir(d);
	if (de) {
		log_user("MOUNTPOINT '%s' is not empty: the mount would hide its files "
			 "(use -o nonempty to mount over them anyway)", o->local_mountpoint);
		return -1;
	}
	return 0;
}

/* Lock the cache directory for this process. */
static int lock_cache_dir(struct mount *m)
{
	char *path;
	int fd;

	if (asprintf(&path, "%s/lock", m->cache_dir) < 0)
		return -ENOMEM;
	/* Not through a symlink, and only a file of ours: a planted link to a
	 * file of root's would have a root mount write its pid there. */
	fd = privdir_open_file(AT_FDCWD, path, O_RDWR | O_CREAT, true);
	if (fd < 0) {
		char why[PATH_MAX + 200];
		log_user("cannot use the cache directory: %s",
			 privdir_file_error(path, fd, why, sizeof(why)));
		free(path);
		return -1;
	}
	free(path);
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		char buf[32] = "";
		ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
		if (errno == EWOULDBLOCK || errno == EAGAIN || n >= 0) {
			buf[n > 0 ? n : 0] = '\0';
			buf[strcspn(buf, "\n")] = '\0';
			log_user("cache directory '%s' is in use by another jottafs (pid %s)",
				 m->cache_dir, buf[0] ? buf : "unknown");
		} else {
			log_user("cannot lock cache directory '%s': %s", m->cache_dir, strerror(errno));
		}
		close(fd);
		return -1;
	}
	m->lock_fd = fd;
	return 0;
}

/* Record our pid in the lock file (again after daemonizing: the pid changed). */
static void write_pid(struct mount *m)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());

	if (ftruncate(m->lock_fd, 0) == 0 && pwrite(m->lock_fd, buf, (size_t)n, 0) == n)
		return;
	log_warn("cannot write the pid to the cache lock file: %s", strerror(errno));
}

/* The connectivity probe (net/conn.h). */
static int probe(void *ctx)
{
	return jfs_ping(ctx);
}

/* Does @err (of the mountpoint check) mean the service cannot be reached? */
static bool unreachable(struct mount *m, int err)
{
	switch (err) {
	case -EHOSTDOWN: case -ECONNREFUSED: case -EHOSTUNREACH: case -ENETUNREACH:
	case -ENETDOWN: case -ETIMEDOUT: case -ECONNRESET: case -ECONNABORTED:
		return true;
	case -EIO:      /* 5xx or a broken transfer, unless the service answers fine */
		return conn_state(m->conn) != CONN_ONLINE;
	default:
		return false;
	}
}

/* Step 1 and 2: account, service, remote path. */
static int open_remote(struct mount *m)
{
	struct mount_options *o = m->o;
	struct http_config hc = { .cafile = o->cafile, .insecure_http = o->insecure_http };
	struct auth_endpoints ep = { .api_url = o->api_url, .jfs_url = o->jfs_url,
				     .token_url = o->token_url };
	struct http_token_provider tp;
	char *errmsg = NULL;
	int err;

	err = auth_config_dir(&m->config_dir);
	if (err) {
		log_user("cannot find the configuration directory: %s", strerror(-err));
		return -1;
	}
	err = http_client_new(&hc, &m->http);
	if (!err)
		err = conn_new(NULL, &m->conn);
	if (err) {
		log_user("cannot set up the HTTP client: %s", strerror(-err));
		return -1;
	}
	http_client_set_conn(m->http, m->conn);
	err = auth_open(m->http, m->config_dir, o->account, &ep, &m->auth, &errmsg);
	if (err) {
		if (errmsg)
			log_user("%s", errmsg);
		else
			log_user("cannot open account '%s': %s", o->account, strerror(-err));
		free(errmsg);
		return -1;
	}
	auth_token_provider(m->auth, &tp);
	http_client_set_token_provider(m->http, &tp);
	struct jfs_config jc = {
		.jfs_url = auth_jfs_url(m->auth),
		.api_url = auth_api_url(m->auth),
		.username = auth_username(m->auth),
		.device = o->device,
		.mountpoint = o->mountpoint,
		.max_list_entries = o->max_listing_entries,
		.max_list_bytes = o->max_listing_bytes,
		.max_stream_entries = o->max_stream_entries,
		.max_stream_bytes = o->max_stream_bytes,
	};
	err = jfs_new(m->http, &jc, &m->jfs);
	if (err) {
		log_user("cannot set up the service client: %s", strerror(-err));
		return -1;
	}
	conn_set_probe(m->conn, probe, m->jfs);
	err = jfs_check_mountpoint(m->jfs);
	if (err == -ENOENT) {
		log_user("the account has no mountpoint '%s/%s': see 'jottafs devices' for the "
			 "devices and mountpoints it has", o->device, o->mountpoint);
		return -1;
	}
	if (err == -EKEYREJECTED || err == -EACCES) {
		log_user("the service refused the login (%s): run 'jottafs login%s%s' again",
			 strerror(-err), strcmp(o->account, "default") ? " --account " : "",
			 strcmp(o->account, "default") ? o->account : "");
		return -1;
	}
	if (err && unreachable(m, err)) {
		/* Decided in open_cache(): offline from the index, if there is one. */
		m->start_offline = true;
		conn_set_offline(m->conn, strerror(-err));
		err = 0;
	}
	if (err) {
		char why[256];
		if (!cli_connection_advice(err, why, sizeof(why)))
			snprintf(why, sizeof(why), "%s", strerror(-err));
		log_user("cannot check '%s/%s' on the service: %s", o->device, o->mountpoint, why);
		return -1;
	}
	if (asprintf(&m->identity, "%s/%s/%s", auth_username(m->auth), o->device,
		     o->mountpoint) < 0)
		return -1;
	return 0;
}

/* Step 3 (and the remote sub path, which needs the index). */
static int open_cache(struct mount *m)
{
	struct mount_options *o = m->o;
	struct meta *meta = NULL;
	struct lister *ls = NULL;
	char why[2 * PATH_MAX + 300];
	int err;

	/* options_finish() chose the default cache directory if none was given.
	 * Created 0700; refused unless only we (and root) can change it or any
	 * directory above it (lib/privdir.h). Resolved: the daemon changes to
	 * '/', and a symlink in the option is followed once, here. */
	err = privdir_make(o->cache_dir, geteuid(), &m->cache_dir, why, sizeof(why));
	if (err) {
		log_user("cannot use the cache directory: %s", why);
		return -1;
	}
	if (lock_cache_dir(m))
		return -1;
	write_pid(m);
	if (asprintf(&m->index_path, "%s/index.db", m->cache_dir) < 0 ||
	    asprintf(&m->data_dir, "%s/data", m->cache_dir) < 0)
		return -1;

	err = meta_open(m->index_path, m->identity, &meta);
	if (err) {
		log_user("cannot open the cache index '%s': %s", m->index_path, strerror(-err));
		return -1;
	}
	struct lister_config lc = { .jfs = m->jfs, .meta = meta, .root_id = META_ROOT_ID,
				    .dir_cache_time = 0, .session_gen = meta_gen_next(meta) };
	err = lister_new(&lc, &ls);
	if (!err)
		err = lister_resolve(ls, o->subpath ? o->subpath : "", &m->fs.root_id);
	lister_free(ls);
	if (m->start_offline) {
		struct conn_info ci;
		struct meta_attr a;
		conn_get_info(m->conn, &ci);
		if (!err && (meta_get(meta, m->fs.root_id, &a) || !a.listed_at))
			err = -EHOSTDOWN;
		if (err == -EHOSTDOWN || unreachable(m, err)) {
			meta_close(meta, meta_was_clean(meta));
			log_user("cannot reach the service (%s) and the cache '%s' holds no index of "
				 "'%s/%s' to start from: mount again when the service is reachable",
				 ci.last_error, m->cache_dir, o->device, o->mountpoint);
			return -1;
		}
		if (!err)
			log_info("mounting offline from the local index (the service cannot be "
				 "reached: %s); online again as soon as it answers", ci.last_error);
	}
	/* Closed across the fork; the clean flag of the last session is kept. */
	meta_close(meta, meta_was_clean(meta));
	if (err == -ENOENT || err == -ENOTDIR) {
		log_user("'%s/%s:/%s' %s", o->device, o->mountpoint, o->subpath,
			 err == -ENOENT ? "does not exist" : "is not a folder");
		return -1;
	}
	if (err) {
		log_user("cannot list '%s/%s:/%s': %s", o->device, o->mountpoint,
			 o->subpath ? o->subpath : "", strerror(-err));
		return -1;
	}
	/* The upload journal: opened once here to report problems on the
	 * terminal, then again in the daemon. */
	struct upload_queue *q = NULL;
	struct upload_config uc = { .cache_dir = m->cache_dir, .jfs = m->jfs };
	err = upload_open(&uc, &q);
	if (err) {
		log_user("cannot open the upload journal in '%s': %s", m->cache_dir, strerror(-err));
		return -1;
	}
	upload_close(q);
	return 0;
}

/* Append -o options for the kernel mount. */
static int add_mount_args(struct mount *m, struct fuse_args *args)
{
	struct mount_options *o = m->o;
	char fsname[512], opt[600];
	size_t n = 0;

	/* fsname "Device/Mountpoint", with fuse_opt's separators escaped. */
	for (const char *s = o->device; *s && n < sizeof(fsname) / 2 - 4; s++) {
		if (*s == ',' || *s == '\\')
			fsname[n++] = '\\';
		fsname[n++] = *s;
	}
	fsname[n++] = '/';
	for (const char *s = o->mountpoint; *s && n < sizeof(fsname) - 4; s++) {
		if (*s == ',' || *s == '\\')
			fsname[n++] = '\\';
		fsname[n++] = *s;
	}
	fsname[n] = '\0';
	/* What the user gave (passed through by fs/options.c) wins. */
	bool has_fsname = false, has_subtype = false;
	for (int i = 0; i < args->argc; i++) {
		has_fsname |= strstr(args->argv[i], "fsname=") != NULL;
		has_subtype |= strstr(args->argv[i], "subtype=") != NULL;
	}
	snprintf(opt, sizeof(opt), "-odefault_permissions%s%s%s%s",
		 has_fsname ? "" : ",fsname=", has_fsname ? "" : fsname,
		 has_subtype ? "" : ",subtype=jottafs", o->ro ? ",ro" : "");
	return fuse_opt_add_arg(args, opt) ? -ENOMEM : 0;
}

/* The service is back: queued work restarts now, not after its backoff. */
static void on_online(void *ctx)
{
	struct fs *fs = ctx;

	if (fs->up)
		upload_retry_now(fs->up);
	if (fs->dq)
		delq_retry_now(fs->dq);
}

/* The write path's hooks: the control directory hears of every upload
 * that finished, and of deletions (its trash view). */
static void on_uploaded(void *ctx, uint64_t id, int err, const char *server_path)
{
	struct fs *fs = ctx;

	control_upload_done(fs->ctl, id, err, server_path);
	if (!err && fs->dq)
		delq_made(fs->dq, server_path);     /* its folders exist now */
}

/* The namespace queue's hooks: a folder's creation is done; and folder
 * creations wait while uploads (which make folders) are pending. */
static void on_dir_made(void *ctx, uint64_t node)
{
	struct fs *fs = ctx;

	meta_set_dir_made(fs->meta, node);
}

static bool uploads_pending(void *ctx)
{
	struct fs *fs = ctx;
	unsigned files = 0;

	upload_stats(fs->up, &files, NULL);
	return files != 0;
}

/* upload_config.before: an upload to @path waits for the deletes queued at
 * it or above it (rm f; echo x > f offline: the create went ahead). */
static int upload_before(void *ctx, const char *path)
{
	struct fs *fs = ctx;

	return delq_flush_above(fs->dq, path);
}

static void on_trashed(void *ctx)
{
	struct fs *fs = ctx;

	control_trash_changed(fs->ctl);
}

/* Listings hide what the delete queue is deleting. */
static bool hide_deleted(void *ctx, const char *dir, const char *sub, const char *sname,
			 time_t listed_at)
{
	struct fs *fs = ctx;

	return fs->dq && delq_hides(fs->dq, dir, sub, sname, listed_at);
}

/* Step 6: what runs in the daemon. */
/* dcache_config.pending: the journal (opened before the cache starts) has
 * an upload of @id. */
static bool fs_upload_pending(void *ctx, uint64_t id)
{
	struct fs *fs = ctx;

	return fs->up && upload_pending(fs->up, id);
}

static int start_daemon_side(struct mount *m)
{
	struct mount_options *o = m->o;
	struct fs *fs = &m->fs;
	int err;

	err = meta_open(m->index_path, m->identity, &fs->meta);
	if (err) {
		log_err("cannot open the cache index '%s': %s", m->index_path, strerror(-err));
		return err;
	}
	err = itable_new(&fs->it);
	if (!err)
		err = notifier_new(&fs->nt);
	if (!err)
		err = control_new(fs, &fs->ctl);
	if (err)
		return err;
	struct dcache_config dcfg = {
		.dir = m->data_dir, .meta = fs->meta, .jfs = m->jfs,
		.max_size = o->cache_max_size, .fetch_threads = 8,
		.read_streams = o->read_streams,
		.mismatch = fs_mismatch, .mismatch_ctx = fs,
		/* small files: one sync at close() (the journal's), not two */
		.inline_max = UPLOAD_INLINE_MAX,
		.pending = fs_upload_pending, .pending_ctx = fs,
	};
	err = dcache_new(&dcfg, &fs->dc);
	if (err) {
		log_err("cannot open the content cache '%s': %s", m->data_dir, strerror(-err));
		return err;
	}
	struct delq_config qc = {
		.cache_dir = m->cache_dir, .jfs = m->jfs, .hard_delete = o->hard_delete,
		.deleted = on_trashed, .made = on_dir_made, .ctx = fs,
	};
	err = delq_open(&qc, &fs->dq);
	if (err) {
		log_err("cannot open the delete journal in '%s': %s", m->cache_dir,
			strerror(-err));
		return err;
	}
	struct lister_config lc = {
		.jfs = m->jfs, .meta = fs->meta, .root_id = fs->root_id,
		.dir_cache_time = fs->timeout, .session_gen = meta_gen_next(fs->meta),
		.changes = fs_changes, .changes_ctx = fs,
		.hide = hide_deleted, .hide_ctx = fs,
	};
	err = lister_new(&lc, &fs->ls);
	if (err)
		return err;
	struct writer_config wc = {
		.meta = fs->meta, .dc = fs->dc, .ls = fs->ls, .jfs = m->jfs, .conn = m->conn,
		.root_id = fs->root_id, .hard_delete = o->hard_delete, .deletes = fs->dq,
		.changes = fs_changes, .uploaded = on_uploaded, .trashed = on_trashed, .ctx = fs,
	};
	err = writer_new(&wc, &fs->wr);
	if (err)
		return err;
	struct upload_config uc = {
		.cache_dir = m->cache_dir, .jfs = m->jfs, .transfers = o->transfers,
		.small_transfers = o->small_transfers ? (int)o->small_transfers : -1,
		.done = writer_upload_done, .done_ctx = fs->wr,
		.before = upload_before, .before_ctx = fs,
	};
	err = upload_open(&uc, &fs->up);
	if (err) {
		log_err("cannot open the upload journal in '%s': %s", m->cache_dir, strerror(-err));
		return err;
	}
	writer_set_queue(fs->wr, fs->up);
	delq_set_hold(fs->dq, uploads_pending, fs);
	err = conn_on_online(m->conn, on_online, fs);
	if (!err)
		err = notifier_start(fs->nt, m->se);
	if (!err)
		err = dcache_start(fs->dc);
	if (!err)
		err = lister_start(fs->ls);
	if (!err)
		err = poller_new(fs, o->poll_interval, &fs->poll);
	if (!err)
		err = poller_start(fs->poll);
	if (!err)
		err = upload_start(fs->up);
	if (!err)
		err = delq_start(fs->dq);
	if (!err)
		err = conn_start(m->conn, probe, m->jfs);
	if (err)
		return err;
	writer_recover(fs->wr);
	writer_recover_dirs(fs->wr);
	if (o->prefetch)
		lister_prefetch(fs->ls, fs->root_id);
	return 0;
}

/* Step 8 and the undo of everything before it. */
static void mount_cleanup(struct mount *m, bool clean)
{
	struct fs *fs = &m->fs;

	/* The device closes with the unmount: no invalidation after it. */
	if (fs->nt)
		notifier_stop(fs->nt);
	if (m->mounted)
		fuse_session_unmount(m->se);
	/* Before the uploads drain: a writable one may still commit. */
	fs_release_all(fs);
	if (fs->up) {
		unsigned files = 0;
		int64_t bytes = 0;
		upload_stats(fs->up, &files, &bytes);
		if (files)
			log_info("waiting up to %u s for %u pending upload%s (%lld bytes)",
				 m->o->unmount_wait, files, files == 1 ? "" : "s", (long long)bytes);
		if (files && upload_drain(fs->up, m->o->unmount_wait))
			log_warn("uploads left pending; they resume at the next mount");
		/* Its done callback uses everything below: close it first. */
		conn_stop(m->conn);     /* its listener uses the queue */
		if (fs->dq)
			delq_set_hold(fs->dq, NULL, NULL);
		upload_close(fs->up);
		fs->up = NULL;
	}
	conn_stop(m->conn);
	writer_free(fs->wr);
	fs->wr = NULL;
	/* Workers call into each other (content cache -> lister on an MD5
	 * mismatch, lister -> content cache on new revisions): stop the
	 * content cache's workers first, then the lister, then free. The
	 * poller uses the lister: it goes first. */
	poller_free(fs->poll);
	fs->poll = NULL;
	dcache_stop(fs->dc);
	lister_free(fs->ls);
	/* After the lister (its listings ask it what to hide) and the
	 * connectivity listener: what is left resumes at the next mount. */
	delq_close(fs->dq, m->o->unmount_wait);
	fs->dq = NULL;
	dcache_free(fs->dc);
	notifier_free(fs->nt);
	control_free(fs->ctl);
	fs->ctl = NULL;
	itable_free(fs->it);
	meta_close(fs->meta, clean);
	if (m->signals)
		fuse_remove_signal_handlers(m->se);
	if (m->se)
		fuse_session_destroy(m->se);
	jfs_free(m->jfs);
	auth_free(m->auth);
	http_client_free(m->http);
	conn_free(m->conn);
	if (m->lock_fd >= 0)
		close(m->lock_fd);
	pthread_mutex_destroy(&fs->qlock);
	pthread_mutex_destroy(&fs->h_lock);
	free(m->config_dir);
	free(m->cache_dir);
	free(m->index_path);
	free(m->data_dir);
	free(m->identity);
}

int mount_main(struct mount_options *o, struct fuse_args *args)
{
	struct mount m = { .o = o, .lock_fd = -1 };
	struct fs *fs = &m.fs;
	struct fuse_loop_config *lcfg;
	enum log_level level = o->debug ? LOG_LVL_DEBUG : LOG_LVL_INFO;
	int ret;

	log_setup(level, false);
	/* main() made the process not dumpable: it holds tokens. */
	if ((o->debug || o->coredump) && secret_set_dumpable(true) == 0)
		log_debug("core dumps allowed (%s); the tokens are kept out of them",
			  o->coredump ? "-o coredump" : "-d");
	pthread_mutex_init(&fs->qlock, NULL);
	pthread_mutex_init(&fs->h_lock, NULL);
	fs->o = o;
	fs->ro = o->ro;
	fs->uid = o->uid;
	fs->gid = o->gid;
	fs->fmode = 0666 & ~o->umask;
	fs->dmode = 0777 & ~o->umask;
	fs->timeout = o->dir_cache_time > 0 ? o->dir_cache_time : 60;
	fs->root_id = META_ROOT_ID;

	if (check_mount_dir(o) || open_remote(&m) || open_cache(&m))
		goto fail;
	fs->auth = m.auth;
	fs->jfs = m.jfs;
	fs->conn = m.conn;
	if (add_mount_args(&m, args))
		goto fail;
	m.se = fuse_session_new(args, fs_ops(), sizeof(*fs_ops()), fs);
	if (!m.se) {
		log_user("cannot create the FUSE session (see the message above)");
		goto fail;
	}
	if (fuse_set_signal_handlers(m.se)) {
		log_user("cannot install signal handlers");
		goto fail;
	}
	m.signals = true;
	if (fuse_session_mount(m.se, o->local_mountpoint)) {
		log_user("cannot mount on '%s' (see the message above)", o->local_mountpoint);
		goto fail;
	}
	m.mounted = true;
	fs->se = m.se;
	if (!o->foreground && !o->debug) {
		if (fuse_daemonize(0)) {
			log_user("cannot become a daemon");
			goto fail;
		}
		log_setup(level, true);
		write_pid(&m);
	}
	if (start_daemon_side(&m)) {
		log_err("cannot start the mount; unmounting");
		goto fail;
	}
	log_info("mounted %s/%s%s%s on %s", o->device, o->mountpoint,
		 o->subpath && *o->subpath ? ":/" : "", o->subpath ? o->subpath : "",
		 o->local_mountpoint);

	lcfg = fuse_loop_cfg_create();
	if (!lcfg) {
		log_err("cannot configure the FUSE loop");
		goto fail;
	}
	fuse_loop_cfg_set_max_threads(lcfg, o->max_threads ? o->max_threads : 10);
	fuse_loop_cfg_set_clone_fd(lcfg, 0);
	ret = fuse_session_loop_mt(m.se, lcfg);
	fuse_loop_cfg_destroy(lcfg);
	/* 0 after fusermount -u; the signal number after SIGTERM/SIGINT/SIGHUP
	 * (an orderly unmount too); negative on a loop failure. */
	if (ret < 0)
		log_err("the FUSE loop failed: %s", strerror(-ret));
	else
		log_info("unmounting %s", o->local_mountpoint);
	mount_cleanup(&m, true);
	return ret < 0 ? 1 : 0;
fail:
	mount_cleanup(&m, false);
	return 1;
}
