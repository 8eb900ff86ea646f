/*
 * fs/statfs.c — statfs: the account's quota, read from the service at most
 * once a minute (a failed read is retried after a few seconds) and kept in
 * the index for when the service cannot be reached. fs->qlock (a leaf)
 * protects the quota fields of struct fs; it is never held across the
 * request.
 */
#include "fs/fs.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "cache/meta.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "net/jfs.h"
#include "net/names.h"

#define QUOTA_TTL_S     60.0
#define QUOTA_RETRY_S   5.0             /* after a failed read */
#define UNLIMITED_TOTAL (1LL << 50)     /* 1 PiB shown for accounts without a quota */
#define STATFS_BSIZE    4096

void fs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fuse_req_userdata(req);
	struct jfs_quota q = { 0 };
	struct statvfs st;
	bool ok, due;
	int64_t total, used;

	(void)ino;
	pthread_mutex_lock(&fs->qlock);
	due = !fs->quota_at ||
	      clock_mono() - fs->quota_at > (fs->quota_fresh ? QUOTA_TTL_S : QUOTA_RETRY_S);
	if (due)
		fs->quota_at = clock_mono();  /* one reader at a time; the others use what is here */
	q = fs->quota;
	ok = fs->quota_ok;
	pthread_mutex_unlock(&fs->qlock);
	if (due) {
		struct jfs_quota nq;
		int64_t u, c;
		int err = jfs_quota(fs->jfs, &nq);
		bool remembered = !err ? false : meta_quota_get(fs->meta, &u, &c) == 0;

		pthread_mutex_lock(&fs->qlock);
		fs->quota_at = clock_mono();
		fs->quota_fresh = !err;
		if (!err) {
			fs->quota = nq;
			fs->quota_ok = true;
		} else if (!fs->quota_ok && remembered) {
			/* The last quota this cache saw, rather than nothing. */
			memset(&fs->quota, 0, sizeof(fs->quota));
			fs->quota.usage = u;
			fs->quota.capacity = c;
			fs->quota_ok = true;
		}
		q = fs->quota;
		ok = fs->quota_ok;
		pthread_mutex_unlock(&fs->qlock);
		if (!err)
			meta_quota_put(fs->meta, nq.usage, nq.capacity);
		else
			log_debug("statfs: cannot read the quota: %s", strerror(-err));
	}
	memset(&st, 0, sizeof(st));
	st.f_bsize = STATFS_BSIZE;
	st.f_frsize = STATFS_BSIZE;
	st.f_files = 1ULL << 32;
	st.f_ffree = st.f_favail = 1ULL << 32;
	/* The service counts UTF-16 units: 255 of them are up to 765 bytes
	 * here (3 per BMP character; 4 per pair outside it). */
	st.f_namemax = NAMES_MAX_UNITS * 3;
	if (ok) {
		used = q.usage > 0 ? q.usage : 0;
		if (q.capacity >= 0) {
			total = q.capacity;
		} else {
			/* No quota: a nominal total far above the usage, so that
			 * free = total - used stays meaningful (man page, CAVEATS). */
			total = UNLIMITED_TOTAL;
			while (total < used && total < INT64_MAX / 2)
				total *= 2;
		}
		st.f_blocks = (fsblkcnt_t)(total / STATFS_BSIZE);
		st.f_bfree = st.f_bavail = total > used ?
					   (fsblkcnt_t)((total - used) / STATFS_BSIZE) : 0;
	}
	/* else: never read and unreachable: sizes unknown (0), never "unlimited". */
	fuse_reply_statfs(req, &st);
}
