/*
 * cache/data_hash.c — the content cache's MD5s: the running MD5
 * of clean content as its prefix arrives and its verification against the
 * server's once complete, and the MD5 of local content (sequential writes,
 * holes, the slices of a commit). Private structures: cache/data_int.h.
 */
#include "cache/data.h"
#include "cache/data_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "cache/meta.h"
#include "cache/ranges.h"
#include "lib/log.h"
#include "lib/md5.h"
#include "lib/privdir.h"
#include "net/http.h"
#include "net/jfs.h"

/* ---- verification -------------------------------------------------------- */

/*
 * Extend the MD5 of clean content over the present prefix (a download
 * worker, after each fetch). One thread hashes at a time; it reads the
 * cache file without the lock (present bytes of clean content never change
 * within an epoch). The comparison with the server's MD5 is verify_locked's,
 * on the path of the read that finds the file complete.
 */
void dc_hash_advance(struct dfile *f)
{
	unsigned char *buf = NULL;

	pthread_mutex_lock(&f->lock);
	if (f->hashing || f->verified || f->broken || f->local) {
		pthread_mutex_unlock(&f->lock);
		return;
	}
	f->hashing = true;
	for (;;) {
		int64_t prefix = ranges_prefix(&f->present);
		uint64_t epoch = f->epoch;
		struct dbody *b = f->body;
		int64_t pos = f->md5_pos;
		size_t n;
		ssize_t r;

		if (prefix > f->size)
			prefix = f->size;
		if (pos >= prefix || f->local || f->verified)
			break;
		n = prefix - pos > DC_HASH_CHUNK ? DC_HASH_CHUNK : (size_t)(prefix - pos);
		if (!buf && !(buf = malloc(DC_HASH_CHUNK)))
			break;
		dc_body_ref(b);
		pthread_mutex_unlock(&f->lock);
		r = pread(b->fd, buf, n, pos);
		pthread_mutex_lock(&f->lock);
		dc_body_unref(b);
		if (f->local || f->verified)
			break;
		if (epoch != f->epoch || f->md5_pos != pos)
			continue;       /* reset meanwhile: md5_pos is 0 again */
		if (r != (ssize_t)n) {
			log_err("cache: cannot read back the cache file of node %" PRIu64 ": %s",
				f->id, r < 0 ? strerror(errno) : "short read");
			break;
		}
		EVP_DigestUpdate(f->md5ctx, buf, n);
		f->md5_pos += (int64_t)n;
	}
	f->hashing = false;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	free(buf);
}


/*
 * Clean content that is complete: check it against the server's MD5 before
 * any more of it is served. 0 (verified, or nothing to check yet), or -EIO:
 * it did not match (*@mismatch is set: the caller runs the mismatch
 * callback) — the content is discarded and its epoch marked bad; the first
 * time, a later read by a handle that was not served from it fetches it
 * again; the second time (for this revision, remembered beyond the last
 * close) every read fails until the revision changes. f->lock held; waits
 * for a worker that is hashing.
 */
int dc_verify_locked(struct dfile *f, bool *mismatch)
{
	unsigned char dig[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	char hex[33], md5[33];
	EVP_MD_CTX *c;
	int err;

	while (f->hashing)
		pthread_cond_wait(&f->cond, &f->lock);
	if (f->broken)
		return f->broken;
	/* (an unlinked file's content is what its descriptors wrote and read:
	 * there is no server revision left to check it against) */
	if (f->verified || f->local || f->discarded || f->size == 0 ||
	    !ranges_covers(&f->present, 0, f->size))
		return 0;
	err = dc_hash_locked(f, f->size);
	if (err)
		return -EIO;
	if (!(c = EVP_MD_CTX_new()))
		return -ENOMEM;
	EVP_MD_CTX_copy_ex(c, f->md5ctx);
	EVP_DigestFinal_ex(c, dig, &dlen);
	EVP_MD_CTX_free(c);
	md5_hex(dig, hex);
	if (!f->md5[0] || !strcmp(hex, f->md5)) {
		f->verified = true;
		dc_persist(f);
		return 0;
	}
	pthread_mutex_lock(&f->dc->lock);
	f->dc->stats.mismatches++;
	unsigned n = dc_bad_note(f->dc, f->id, f->size, f->md5);
	pthread_mutex_unlock(&f->dc->lock);
	snprintf(md5, sizeof(md5), "%s", f->md5);
	*mismatch = true;
	f->bad_epoch = f->epoch;
	dc_reset_locked(f, f->size, md5);
	if (n >= 2) {
		log_err("cache: node %" PRIu64 " still does not match the server's MD5 after "
			"fetching it again (got %s, want %s): reads fail with EIO until it "
			"changes on the server", f->id, hex, md5);
		f->broken = -EIO;
	} else {
		log_warn("cache: node %" PRIu64 " does not match the server's MD5 (got %s, want "
			 "%s): discarded; reads that were served from it fail with EIO, a new "
			 "open fetches it again", f->id, hex, md5);
	}
	return -EIO;
}

/* ---- local content ------------------------------------------------------ */

void dc_md5_reset(struct dfile *f)
{
	EVP_DigestInit_ex(f->md5ctx, EVP_md5(), NULL);
	f->md5_pos = 0;
	f->md5_gen++;
}

/* Zeros for the holes of sparse cache files. */
static const unsigned char zeros[DC_HASH_CHUNK];

/* Extend the running MD5 of local content to @upto (bytes present, read
 * back from the page cache; holes, found with SEEK_DATA, are hashed from
 * zeros[] without reading them). f->lock held. */
int dc_hash_locked(struct dfile *f, int64_t upto)
{
	unsigned char *buf;
	int64_t data = -1;              /* start of the next data at or after md5_pos */

	if (f->md5_pos >= upto)
		return 0;
	buf = malloc(DC_HASH_CHUNK);
	if (!buf)
		return -ENOMEM;
	while (f->md5_pos < upto) {
		size_t n = upto - f->md5_pos > DC_HASH_CHUNK ? DC_HASH_CHUNK
							     : (size_t)(upto - f->md5_pos);
		if (data < f->md5_pos) {
			off_t d = lseek(f->body->fd, f->md5_pos, SEEK_DATA);
			/* ENXIO: a hole to the end; other errors: read it all */
			data = d >= 0 ? d : errno == ENXIO ? upto : f->md5_pos;
		}
		if (data > f->md5_pos) {
			if ((int64_t)n > data - f->md5_pos)
				n = (size_t)(data - f->md5_pos);
			EVP_DigestUpdate(f->md5ctx, zeros, n);
			f->md5_pos += (int64_t)n;
			continue;
		}
		ssize_t r = pread(f->body->fd, buf, n, f->md5_pos);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int err = r < 0 ? -errno : -EIO;
			log_err("cache: cannot read back the cache file of node %" PRIu64 ": %s",
				f->id, strerror(-err));
			free(buf);
			return err;
		}
		EVP_DigestUpdate(f->md5ctx, buf, (size_t)r);
		f->md5_pos += r;
	}
	free(buf);
	return 0;
}

/*
 * Extend the running MD5 of local content to its size, for a commit: like
 * dc_hash_locked(), but f->lock is dropped for each slice (a copy of the
 * context is extended, and kept only if nothing reset the MD5 meanwhile),
 * so that a huge file does not stop stat, unlink or other writers for the
 * whole time. -ENOENT when the file was unlinked meanwhile. f->lock held.
 */
int dc_hash_local(struct dfile *f)
{
	EVP_MD_CTX *c = NULL;
	unsigned char *buf = NULL;
	int err = 0;

	while (f->hashing)
		pthread_cond_wait(&f->cond, &f->lock);
	f->hashing = true;
	while (!err && f->md5_pos < f->size) {
		int64_t pos = f->md5_pos, end = f->size, data = -1;
		uint64_t gen = f->md5_gen;
		struct dbody *b = f->body;

		if (f->discarded) {
			err = -ENOENT;
			break;
		}
		if (end - pos > DC_HASH_SLICE)
			end = pos + DC_HASH_SLICE;
		if ((!c && !(c = EVP_MD_CTX_new())) || (!buf && !(buf = malloc(DC_HASH_CHUNK)))) {
			err = -ENOMEM;
			break;
		}
		EVP_MD_CTX_copy_ex(c, f->md5ctx);
		dc_body_ref(b);
		pthread_mutex_unlock(&f->lock);
		for (int64_t p = pos; !err && p < end;) {
			size_t n = end - p > DC_HASH_CHUNK ? DC_HASH_CHUNK : (size_t)(end - p);
			if (data < p) {
				off_t d = lseek(b->fd, p, SEEK_DATA);
				data = d >= 0 ? d : errno == ENXIO ? end : p;
			}
			if (data > p) {         /* a hole: zeros, not read */
				if ((int64_t)n > data - p)
					n = (size_t)(data - p);
				EVP_DigestUpdate(c, zeros, n);
				p += (int64_t)n;
				continue;
			}
			ssize_t r = pread(b->fd, buf, n, p);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				err = r < 0 ? -errno : -EIO;
				log_err("cache: cannot read back the cache file of node %" PRIu64
					": %s", f->id, strerror(-err));
				break;
			}
			EVP_DigestUpdate(c, buf, (size_t)r);
			p += r;
		}
		pthread_mutex_lock(&f->lock);
		dc_body_unref(b);
		/* Bytes below @end rewritten, or the file cut, meanwhile: this
		 * slice is stale; go on from where the MD5 is now. */
		if (!err && gen == f->md5_gen && f->md5_pos == pos && b == f->body &&
		    end <= f->size) {
			EVP_MD_CTX_copy_ex(f->md5ctx, c);
			f->md5_pos = end;
		}
	}
	if (!err && f->discarded)
		err = -ENOENT;
	f->hashing = false;
	pthread_cond_broadcast(&f->cond);
	EVP_MD_CTX_free(c);
	free(buf);
	return err;
}

/* ---- background hashing of big local content ------------------------- */

/*
 * The hasher: extends the MD5 of local content to its size (slices without
 * the lock, dc_hash_local) until it has caught up with the writer, then
 * exits; the next write that leaves DC_HASH_BG_BATCH bytes unhashed starts
 * another. A commit waits for its slice (f->hashing) and finishes the rest.
 * It holds a reference to @f; dcache_stop() waits for every hasher.
 */
static void *bg_hash_main(void *arg)
{
	struct dfile *f = arg;
	struct dcache *dc = f->dc;

	pthread_mutex_lock(&f->lock);
	while (f->local && !f->discarded && f->md5_pos < f->size && !f->hashing &&
	       ranges_covers(&f->present, 0, f->size))
		if (dc_hash_local(f))
			break;          /* the commit hashes (and reports) */
	f->bg_hash = false;
	pthread_mutex_unlock(&f->lock);
	dc_dfile_unref(f);
	pthread_mutex_lock(&dc->lock);
	if (!--dc->hashers)
		pthread_cond_broadcast(&dc->qcond);
	pthread_mutex_unlock(&dc->lock);
	return NULL;
}

int dc_hash_bg_start(struct dfile *f)
{
	struct dcache *dc = f->dc;
	pthread_attr_t attr;
	pthread_t t;
	int err;

	pthread_mutex_lock(&dc->lock);
	if (dc->stop) {
		pthread_mutex_unlock(&dc->lock);
		return -ECANCELED;
	}
	f->refs++;
	dc->hashers++;
	pthread_mutex_unlock(&dc->lock);
	f->bg_hash = true;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	err = pthread_create(&t, &attr, bg_hash_main, f);
	pthread_attr_destroy(&attr);
	if (!err)
		return 0;
	f->bg_hash = false;
	pthread_mutex_lock(&dc->lock);
	f->refs--;              /* not the last: the caller holds one */
	if (!--dc->hashers)
		pthread_cond_broadcast(&dc->qcond);
	pthread_mutex_unlock(&dc->lock);
	return -err;
}

void dc_hash_bg_wait(struct dcache *dc)
{
	pthread_mutex_lock(&dc->lock);
	while (dc->hashers)
		pthread_cond_wait(&dc->qcond, &dc->lock);
	pthread_mutex_unlock(&dc->lock);
}
