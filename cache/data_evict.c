/*
 * cache/data_evict.c — the content cache's bound: invalidation,
 * gc, the LRU eviction of clean content, free disk space, and the sweep of
 * orphan cache files after an unclean shutdown. Private structures:
 * cache/data_int.h.
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
#include "lib/privdir.h"
#include "net/http.h"
#include "net/jfs.h"

/* ---- invalidation, gc, eviction ------------------------------------------ */

void dcache_invalidate(struct dcache *dc, uint64_t id, int64_t size, const char *md5)
{
	struct dfile *f = dc_find_ref(dc, id);

	if (!f) {
		dcache_gc(dc);
		return;
	}
	pthread_mutex_lock(&f->lock);
	if (!f->local && (f->size != size || strcmp(f->md5, md5)))
		dc_reset_locked(f, size, md5);
	pthread_mutex_unlock(&f->lock);
	dc_dfile_unref(f);
}

/* Delete the cache file of @id unless it is open. dc->lock held. */
void dc_unlink_content(struct dcache *dc, uint64_t id)
{
	char name[32];

	snprintf(name, sizeof(name), "%" PRIu64, id);
	if (unlinkat(dc->dirfd, name, 0) && errno != ENOENT)
		log_warn("cache: cannot delete '%s/%s': %s", dc->dir, name, strerror(errno));
}

void dcache_gc(struct dcache *dc)
{
	uint64_t ids[256];
	size_t n;

	do {
		if (meta_gc_take(dc->cfg.meta, ids, 256, &n))
			return;
		for (size_t i = 0; i < n; i++) {
			struct meta_content c;
			pthread_mutex_lock(&dc->lock);
			/* Open files were reset by dcache_invalidate(); content
			 * recorded again meanwhile (a new open) is alive. */
			if (!dc_hash_find(dc, ids[i]) &&
			    meta_content_get(dc->cfg.meta, ids[i], &c) == -ENOENT)
				dc_unlink_content(dc, ids[i]);
			else if (!dc_hash_find(dc, ids[i]))
				meta_content_release(&c);
			pthread_mutex_unlock(&dc->lock);
		}
	} while (n == 256);
	dc_recount(dc);
}

/*
 * With no file open every state is persisted: take the exact byte counts
 * from the index (the running counts drift while files are open: bytes of
 * removed content are only known from the records the gc deletes).
 */
void dc_recount(struct dcache *dc)
{
	int64_t total, dirty;

	pthread_mutex_lock(&dc->lock);
	if (!dc->nopen && !meta_content_usage(dc->cfg.meta, &total, &dirty)) {
		dc->bytes = total;
		dc->local_bytes = dirty;
		dc->stats.cached_bytes = total;
		dc->stats.local_bytes = dirty;
	}
	pthread_mutex_unlock(&dc->lock);
}

/*
 * Is less than max(@pct % of the cache filesystem, @reserves times
 * DC_DISK_RESERVE_MIN) free for unprivileged use?
 */
bool dc_disk_below(struct dcache *dc, unsigned pct, unsigned reserves)
{
	struct statvfs sv;

	if (fstatvfs(dc->dirfd, &sv) || !sv.f_blocks)
		return false;
	uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	uint64_t want = (uint64_t)sv.f_blocks * sv.f_frsize / 100 * pct;
	if (want < (uint64_t)reserves * DC_DISK_RESERVE_MIN)
		want = (uint64_t)reserves * DC_DISK_RESERVE_MIN;
	return avail < want;
}

#define DISK_LOW(dc)  dc_disk_below(dc, DC_DISK_LOW_PCT, 2)
#define DISK_OK(dc)   (!dc_disk_below(dc, DC_DISK_OK_PCT, 3))

/* Is there room for content to grow (above the reserve)? */
bool dc_disk_room(struct dcache *dc)
{
	return !dc_disk_below(dc, DC_DISK_RESERVE_PCT, 1);
}

/*
 * Evict least recently used clean content (already on the service) until
 * under 90 % of the bound, and, when the cache filesystem is nearly full
 * (< DC_DISK_LOW_PCT free), until DC_DISK_OK_PCT of it is free: so that
 * writes work again (changed content not yet uploaded is never evicted).
 */
void dc_maybe_evict(struct dcache *dc)
{
	uint64_t max = dc->cfg.max_size;
	uint64_t ids[64];
	size_t n;
	bool low = DISK_LOW(dc);

	pthread_mutex_lock(&dc->lock);
	bool say = low && !dc->disk_low_logged;
	dc->disk_low_logged = low;
	pthread_mutex_unlock(&dc->lock);
	if (say)
		log_warn("cache: the cache filesystem of '%s' is nearly full; evicting cached "
			 "content that is already on the service", dc->dir);
	if (!max && !low)
		return;
	dc_recount(dc);
	pthread_mutex_lock(&dc->lock);
	if (dc->evicting)
		dc->evict_again = true;
	if (dc->evicting || (!low && dc->bytes <= (int64_t)max)) {
		pthread_mutex_unlock(&dc->lock);
		return;
	}
	dc->evicting = true;
again:
	dc->evict_again = false;
	pthread_mutex_unlock(&dc->lock);
	dcache_gc(dc);
	for (unsigned round = 0; round < 64; round++) {
		size_t evicted = 0;
		pthread_mutex_lock(&dc->lock);
		bool over = max && dc->bytes > (int64_t)(max / 10 * 9);
		pthread_mutex_unlock(&dc->lock);
		if (!over && low)
			over = low = !DISK_OK(dc);
		if (!over || meta_content_lru(dc->cfg.meta, ids, 64, &n) || !n)
			break;
		for (size_t i = 0; i < n; i++) {
			struct meta_content c;
			pthread_mutex_lock(&dc->lock);
			if (!dc_hash_find(dc, ids[i]) && !meta_content_get(dc->cfg.meta, ids[i], &c)) {
				if (!c.dirty) {
					dc_unlink_content(dc, ids[i]);
					meta_content_delete(dc->cfg.meta, ids[i]);
					dc->bytes -= c.bytes;
					dc->stats.cached_bytes = dc->bytes;
					evicted++;
				}
				meta_content_release(&c);
			}
			bool done = (!max || dc->bytes <= (int64_t)(max / 10 * 9)) &&
				    (!low || DISK_OK(dc));
			pthread_mutex_unlock(&dc->lock);
			if (done)
				break;
		}
		if (!evicted)
			break;          /* everything left is open */
	}
	pthread_mutex_lock(&dc->lock);
	/* Someone closed a file meanwhile (it may be evictable now). */
	if (dc->evict_again && ((max && dc->bytes > (int64_t)max) ||
				(low = DISK_LOW(dc))))
		goto again;
	dc->evicting = false;
	pthread_mutex_unlock(&dc->lock);
}

/* After an unclean shutdown: delete cache files the index does not know,
 * but for those of pending uploads (the journal is synced at every close,
 * the index is not). */
void dc_sweep_orphans(struct dcache *dc)
{
	int fd = dup(dc->dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d))) {
		char *endp;
		struct meta_content c;
		unsigned long long id;

		if (de->d_name[0] == '.')
			continue;
		errno = 0;
		id = strtoull(de->d_name, &endp, 10);
		if (errno || *endp || !id)
			continue;
		if (meta_content_get(dc->cfg.meta, id, &c) != -ENOENT)
			meta_content_release(&c);
		else if (!dc->cfg.pending || !dc->cfg.pending(dc->cfg.pending_ctx, id))
			unlinkat(dc->dirfd, de->d_name, 0);
	}
	closedir(d);
}
