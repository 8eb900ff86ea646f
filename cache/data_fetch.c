/*
 * cache/data_fetch.c — the content cache's downloads: the fetch
 * queue and its workers (ranged GETs that resume after a cut), the
 * streams that follow sequential readers, and dcache_read() (wait for the
 * bytes a read needs).
 * Private structures: cache/data_int.h.
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
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/privdir.h"
#include "net/http.h"
#include "net/jfs.h"

/* ---- fetching ------------------------------------------------------------ */

/* Queue a fetch of [start, end) of @f; *@out (may be NULL) is the job.
 * f->lock held. */
static int job_start(struct dfile *f, int64_t start, int64_t end, struct fjob **out)
{
	struct dcache *dc = f->dc;
	struct fjob *j = calloc(1, sizeof(*j));

	if (!j)
		return -ENOMEM;
	j->f = f;
	j->body = f->body;
	dc_body_ref(f->body);
	j->epoch = f->epoch;
	j->start = j->cur = start;
	j->end = end;
	j->refs = 1;                    /* the worker's */
	j->wait_pos = INT64_MAX;
	j->next = f->jobs;
	f->jobs = j;
	pthread_mutex_lock(&dc->lock);
	f->refs++;                      /* released by the worker */
	dc->stats.jobs++;               /* until the worker is done with it */
	if (dc->qtail)
		dc->qtail->qnext = j;
	else
		dc->qhead = j;
	dc->qtail = j;
	pthread_cond_signal(&dc->qcond);
	pthread_mutex_unlock(&dc->lock);
	if (out)
		*out = j;
	return 0;
}

/* Will @j still deliver bytes of the current content? f->lock held. */
static bool job_live(const struct dfile *f, const struct fjob *j)
{
	return !j->done && !j->cancel && j->epoch == f->epoch;
}

/* Where @j's bytes stop coming without anyone waiting longer: its end, or
 * for a stream as far as it runs before it pauses for its reader (another
 * reader further on fetches for itself rather than wait for that reader).
 * f->lock held. */
static int64_t job_reach(const struct fjob *j)
{
	int64_t r;

	if (!j->stream)
		return j->end;
	r = j->reader + j->ahead > j->cur ? j->reader + j->ahead : j->cur;
	return r < j->end ? r : j->end;
}

/* The job in flight that will deliver byte @pos, or NULL. f->lock held. */
static struct fjob *job_covering(struct dfile *f, int64_t pos)
{
	for (struct fjob *j = f->jobs; j; j = j->next)
		if (job_live(f, j) && j->cur <= pos && pos < job_reach(j))
			return j;
	return NULL;
}

/* Where the next job in flight after @pos starts (or @limit). f->lock held. */
static int64_t job_next_start(struct dfile *f, int64_t pos, int64_t limit)
{
	for (struct fjob *j = f->jobs; j; j = j->next)
		if (job_live(f, j) && j->cur > pos && j->cur < limit)
			limit = j->cur;
	return limit;
}

/*
 * Start fetches for every byte of [pos, end) that is neither present nor
 * in flight, as few jobs as possible, none longer than DC_WINDOW_MAX.
 * f->lock held.
 */
int dc_fetch_missing(struct dfile *f, int64_t pos, int64_t end)
{
	while (pos < end) {
		struct fjob *j;
		int64_t m = ranges_next_missing(&f->present, pos, end), stop;
		int err;

		if (m >= end)
			return 0;
		j = job_covering(f, m);
		if (j) {
			pos = job_reach(j);
			continue;
		}
		stop = ranges_next_present(&f->present, m, end);
		stop = job_next_start(f, m, stop);
		if (stop - m > DC_WINDOW_MAX)
			stop = m + DC_WINDOW_MAX;
		err = job_start(f, m, stop, NULL);
		if (err)
			return err;
		pos = stop;
	}
	return 0;
}

/* End of the run of bytes after @pos that are present or in flight. f->lock held. */
static int64_t covered_until(struct dfile *f, int64_t pos)
{
	for (;;) {
		int64_t m = ranges_next_missing(&f->present, pos, f->size);
		struct fjob *j;

		if (m >= f->size)
			return f->size;
		j = job_covering(f, m);
		if (!j)
			return m;
		pos = job_reach(j);
	}
}

/* ---- streams --------------------------------------------------------------
 *
 * A reader that proved sequential (DC_STREAM_RUN bytes read in one run) gets
 * one long ranged GET from the first byte it lacks to the end of the file
 * (or of the gap before bytes already present): a stream. Its bytes go into
 * the cache file as they arrive; it runs at most @ahead unread bytes ahead
 * of its reader (the window grows with the run, up to DC_STREAM_AHEAD_MAX),
 * and beyond that its worker waits in the write callback: the transfer
 * pauses (TCP flow control holds the service), no new request is needed
 * when the reader catches up. A read away from the run, or the close of a
 * handle of the file, cancels the stream at its next byte (the connection
 * is dropped, never drained); so does a reader idle for DC_STREAM_IDLE_MS,
 * since the service would cut a stalled transfer anyway. Readers waiting
 * on a cancelled stream start fetches of their own.
 */

/* The live stream of reader @owner of @f, or NULL. f->lock held. */
static struct fjob *stream_of(struct dfile *f, const void *owner)
{
	for (struct fjob *j = f->jobs; j; j = j->next)
		if (j->stream && j->owner == owner && job_live(f, j))
			return j;
	return NULL;
}

void dc_stream_cancel(struct dfile *f, const void *owner)
{
	bool any = false;

	for (struct fjob *j = f->jobs; j; j = j->next) {
		if ((j->stream || j->part) && !j->done && !j->cancel &&
		    (!owner || j->owner == owner)) {
			j->cancel = true;
			any = true;
		}
	}
	if (any)
		pthread_cond_broadcast(&f->cond);
}

/*
 * -o read_streams=N (N > 1): reader @owner's window, from @off to @end +
 * @ahead, is fetched in parts of @ahead / N (DC_PART_MIN to DC_PART_MAX)
 * by up to N ranged GETs side by side, each to the end of its part, issued
 * in order as the reader moves on. A read away from the run, or a close,
 * cancels the parts in flight at their next byte, as it does a stream.
 * Parts past the hashed prefix are hashed when it reaches them (read back:
 * dc_hash_advance). f->lock held.
 */
static int parts_feed(struct dfile *f, const void *owner, int64_t off, int64_t end,
		      int64_t ahead, unsigned n)
{
	int64_t part = ahead / n, limit = end + ahead < f->size ? end + ahead : f->size, c;
	unsigned live = 0;

	for (struct fjob *j = f->jobs; j; j = j->next)
		if (j->part && j->owner == owner && job_live(f, j))
			live++;
	if (part < DC_PART_MIN)
		part = DC_PART_MIN;
	if (part > DC_PART_MAX)
		part = DC_PART_MAX;
	for (c = covered_until(f, off); live < n && c < limit; c = covered_until(f, c)) {
		int64_t stop = ranges_next_present(&f->present, c, f->size);
		struct fjob *j;
		int err;

		stop = job_next_start(f, c, stop);
		if (stop - c > part)
			stop = c + part;
		if ((err = job_start(f, c, stop, &j)))
			return err;
		j->part = true;
		j->owner = owner;
		live++;
		pthread_mutex_lock(&f->dc->lock);
		f->dc->stats.parts++;
		pthread_mutex_unlock(&f->dc->lock);
	}
	return 0;
}

/*
 * Reader @owner, in a sequential run, reads [off, end) now: keep its stream
 * going @ahead bytes beyond @end, starting one at the first byte from @off
 * neither present nor in flight when it has none (or its parts, with
 * -o read_streams above 1). f->lock held.
 */
static int stream_feed(struct dfile *f, const void *owner, int64_t off, int64_t end,
		       int64_t ahead)
{
	struct fjob *s;
	int64_t c, stop;

	if (f->dc->cfg.read_streams > 1)
		return parts_feed(f, owner, off, end, ahead, f->dc->cfg.read_streams);
	s = stream_of(f, owner);
	if (s) {
		if (end > s->reader)
			s->reader = end;
		s->ahead = ahead;
		if (s->paused && s->cur < s->reader + s->ahead / 2)
			pthread_cond_broadcast(&f->cond);
		return 0;
	}
	c = covered_until(f, off);
	if (c >= f->size || c - end >= ahead)
		return 0;
	/* A paused stream holds a worker: at most half of them stream, so
	 * that other reads are never stuck behind idle readers. Past that, a
	 * window of the same size, as a plain fetch. */
	struct dcache *dc = f->dc;
	pthread_mutex_lock(&dc->lock);
	bool room = dc->nstreams < (dc->nworkers > 1 ? dc->nworkers / 2 : 1);
	if (room)
		dc->nstreams++;
	pthread_mutex_unlock(&dc->lock);
	if (!room)
		return dc_fetch_missing(f, c, end + ahead < f->size ? end + ahead : f->size);
	stop = ranges_next_present(&f->present, c, f->size);
	stop = job_next_start(f, c, stop);
	int err = job_start(f, c, stop, &s);
	pthread_mutex_lock(&dc->lock);
	if (err)
		dc->nstreams--;
	else
		dc->stats.streams++;
	pthread_mutex_unlock(&dc->lock);
	if (err)
		return err;
	s->stream = true;
	s->owner = owner;
	s->reader = end;
	s->ahead = ahead;
	return 0;
}

/*
 * A stream's flow control, before it takes more bytes: wait while it is
 * @ahead bytes past its reader. 0, or -ECANCELED when it was cancelled,
 * superseded, the cache stops, or its reader stayed away too long (then
 * it is cancelled). f->lock held (waited on).
 */
static int stream_wait(struct fjob *j)
{
	struct dfile *f = j->f;
	int64_t reader = j->reader, since = clock_mono_ms();
	int64_t idle = f->dc->cfg.stream_idle_ms ? f->dc->cfg.stream_idle_ms : DC_STREAM_IDLE_MS;
	int err = 0;

	if (j->cur < j->reader + j->ahead)
		return j->cancel || j->epoch != f->epoch ? -ECANCELED : 0;
	/* Full: wait until the reader has taken half of it (not a wakeup per
	 * read). */
	while (!j->cancel && j->epoch == f->epoch && j->cur >= j->reader + j->ahead / 2) {
		pthread_mutex_lock(&f->dc->lock);
		bool stop = f->dc->stop;
		pthread_mutex_unlock(&f->dc->lock);
		if (stop)
			break;
		if (j->reader != reader) {
			reader = j->reader;
			since = clock_mono_ms();
		} else if (clock_mono_ms() - since >= idle) {
			log_debug("cache: stream of node %" PRIu64 " idle at %" PRId64 ": ended",
				  f->id, j->cur);
			j->cancel = true;
			break;
		}
		struct timespec dl = clock_deadline_ms(DC_STREAM_POLL_MS);
		j->paused = true;
		pthread_cond_timedwait(&f->cond, &f->lock, &dl);
		j->paused = false;
	}
	if (j->cancel || j->epoch != f->epoch || j->cur >= j->reader + j->ahead / 2)
		err = -ECANCELED;
	return err;
}

/*
 * Receives a job's body and writes it into the cache file. The bytes
 * gather in @buf (DC_SINK_BATCH) and enter the file together: one pwrite,
 * one f->lock and one wake-up per batch instead of per TLS record (16 KiB).
 * A batch goes out early when a reader waits for a byte it holds
 * (j->wait_pos), and at the end of each attempt (sink_flush).
 */
struct job_sink {
	struct fjob *j;
	int64_t pos;                    /* where the next byte received goes */
	char *buf;                      /* NULL: each write goes out as it comes */
	size_t len;                     /* [pos - len, pos) waits in buf */
	bool cancelled;                 /* the job was cancelled: take no more */
	EVP_MD_CTX *md;                 /* the MD5, extended outside f->lock */
};

/* pwrite all of [@p, @p + @len) at @off; 0 or -errno. */
static int pwrite_all(int fd, const char *p, size_t len, int64_t off)
{
	while (len) {
		ssize_t w = pwrite(fd, p, len, off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
		off += w;
	}
	return 0;
}

/*
 * Bytes [@off, @end) of clean content, from @p, were just published: when
 * they continue the hashed prefix and no one else is hashing, take the turn
 * (f->hashing) and extend a copy of the MD5 without the lock, so readers and
 * the other jobs of the file do not wait for it (MD5 is most of a stream's
 * CPU); the copy is kept unless something reset the MD5 meanwhile. True when
 * the MD5 lags the present prefix by a chunk or more (the caller runs
 * dc_hash_advance). f->lock held (dropped and taken again).
 */
/* Does the MD5 of clean content lag its present prefix by a chunk, with
 * no one hashing? f->lock held. */
static bool hash_lags(struct dfile *f)
{
	return !f->local && !f->verified && !f->broken && !f->hashing &&
	       ranges_prefix(&f->present) - f->md5_pos >= DC_HASH_CHUNK;
}

static bool sink_hash(struct job_sink *s, const char *p, int64_t off, int64_t end)
{
	struct dfile *f = s->j->f;
	int64_t from = f->md5_pos;
	uint64_t gen = f->md5_gen;

	if (!s->md || f->local || f->verified || f->broken || f->hashing || from < off ||
	    from >= end || !EVP_MD_CTX_copy_ex(s->md, f->md5ctx))
		return hash_lags(f);
	f->hashing = true;
	pthread_mutex_unlock(&f->lock);
	EVP_DigestUpdate(s->md, p + (from - off), (size_t)(end - from));
	pthread_mutex_lock(&f->lock);
	if (gen == f->md5_gen && f->md5_pos == from && !f->local &&
	    EVP_MD_CTX_copy_ex(f->md5ctx, s->md))
		f->md5_pos = end;
	f->hashing = false;
	pthread_cond_broadcast(&f->cond);       /* verification waits for the turn */
	return hash_lags(f);
}

/*
 * Put @len bytes of the download, received at @off, into the cache file.
 * Under f->lock: only bytes still missing are written (a local write may
 * have filled some since the request went out), nothing beyond the current
 * size (a truncate), then the job's progress is published and readers are
 * woken; the MD5 takes them after (sink_hash).
 */
static int sink_put(struct job_sink *s, const char *p, int64_t off, size_t len)
{
	struct fjob *j = s->j;
	struct dfile *f = j->f;
	int64_t end = off + (int64_t)len, pos, added = 0;
	bool lag = false;
	int err = 0, cancel = 0;

	pthread_mutex_lock(&f->lock);
	/* Cancelled (or superseded by a new revision): the bytes at hand are
	 * still taken when they are of the current content — they were paid
	 * for — and the job ends after them. */
	if (j->epoch == f->epoch && (j->cancel || (j->stream && stream_wait(j) < 0)))
		cancel = -ECANCELED;
	if (j->epoch != f->epoch) {
		pthread_mutex_unlock(&f->lock);
		return -ECANCELED;
	}
	for (pos = off; !err && pos < end && pos < f->size;) {
		int64_t m = ranges_next_missing(&f->present, pos, end < f->size ? end : f->size);
		int64_t stop = ranges_next_present(&f->present, m, end < f->size ? end : f->size);
		if (m >= stop)
			break;
		err = pwrite_all(j->body->fd, p + (m - off), (size_t)(stop - m), m);
		if (!err)
			err = ranges_add(&f->present, m, stop);
		if (!err)
			added += stop - m;
		pos = stop;
	}
	if (!err) {
		j->cur = end;
		f->dirty_state = true;
		if (j->cur > j->wait_pos) {
			j->wait_pos = INT64_MAX;        /* those still short wait again */
			pthread_cond_broadcast(&f->cond);
		}
	}
	if (end >= f->size && f->size < j->end)
		j->end = end > f->size ? end : f->size;     /* truncated meanwhile */
	if (!err && added)
		lag = sink_hash(s, p, off, end < f->size ? end : f->size);
	pthread_mutex_unlock(&f->lock);
	if (lag)
		dc_hash_advance(f);     /* catch up; then the MD5 takes bytes as they come */
	if (added)
		dc_account(f->dc, added);
	if (err && err != -ENOMEM)
		log_err("cache: cannot write the cache file of node %" PRIu64 ": %s", f->id,
			strerror(-err));
	return err ? err : cancel;
}

/* Write what waits in the batch. 0 or -errno. */
static int sink_flush(struct job_sink *s)
{
	size_t n = s->len;
	int err;

	if (!n)
		return 0;
	s->len = 0;
	err = sink_put(s, s->buf, s->pos - (int64_t)n, n);
	if (err && err != -ECANCELED)
		s->pos -= (int64_t)n;   /* not taken: a resume fetches them again */
	return err;
}

/*
 * The download's write callback: take @len bytes at s->pos. An error means
 * nothing of this call was taken (a cancel seen while writing earlier bytes
 * ends the transfer at the next call instead).
 */
static int job_sink_write(void *ctx, const void *data, size_t len)
{
	struct job_sink *s = ctx;
	struct fjob *j = s->j;
	int64_t left;
	int err;

	/* Never take more than was asked for (a server ignoring Range). */
	if (__builtin_sub_overflow(j->end, s->pos, &left) || (int64_t)len > left)
		return -EIO;
	if (s->cancelled || atomic_load_explicit(&j->cancel, memory_order_relaxed)) {
		(void)sink_flush(s);    /* what earlier calls handed over */
		s->cancelled = true;
		return -ECANCELED;
	}
	if (s->buf && s->len + len > DC_SINK_BATCH && (err = sink_flush(s)))
		return err;
	if (!s->buf || len >= DC_SINK_BATCH) {
		err = sink_put(s, data, s->pos, len);
		if (!err || err == -ECANCELED)
			s->pos += (int64_t)len;
	} else {
		memcpy(s->buf + s->len, data, len);
		s->len += len;
		s->pos += (int64_t)len;
		/* Out when full, when a reader waits for a byte of it, when a
		 * stream reached the end of its window (the flush pauses it
		 * there, as far ahead as without a batch), or when the job was
		 * cancelled (its bytes are kept, the transfer ends). */
		err = 0;
		if (s->len == DC_SINK_BATCH ||
		    atomic_load_explicit(&j->wait_pos, memory_order_relaxed) < s->pos ||
		    (j->stream && s->pos >= atomic_load_explicit(&j->reader, memory_order_relaxed) +
					    atomic_load_explicit(&j->ahead, memory_order_relaxed)) ||
		    atomic_load_explicit(&j->cancel, memory_order_relaxed))
			err = sink_flush(s);
	}
	if (err == -ECANCELED) {
		s->cancelled = true;    /* taken; the next call ends the transfer */
		return 0;
	}
	return err;
}

/* Is @err worth trying again (the service or the network may recover)? */
static bool retryable(int err)
{
	switch (err) {
	case -ENOENT:
	case -EACCES:
	case -EKEYREJECTED:
	case -ENOSPC:
	case -ENOMEM:
	case -ECANCELED:
	case -EISDIR:
	case -ENOTDIR:
	case -EINVAL:
	case -EHOSTDOWN:        /* offline (net/conn.h): it says when to try again */
		return false;
	default:
		return true;
	}
}


/* Run one job to the end: download, resume after cuts, publish, finish. */
static void job_run(struct dcache *dc, struct fjob *j)
{
	struct dfile *f = j->f;
	struct job_sink s = { .j = j, .buf = malloc(DC_SINK_BATCH), .md = EVP_MD_CTX_new() };
	struct http_sink sink = { .write = job_sink_write, .ctx = &s };
	unsigned failures = 0;
	char *path = NULL;
	int err;

	pthread_mutex_lock(&f->lock);
	s.pos = j->cur;
	int64_t end = j->end;
	bool live = j->epoch == f->epoch;
	int64_t rev = f->src_rev;
	if (live && f->src_path && !(path = strdup(f->src_path)))
		live = false;
	pthread_mutex_unlock(&f->lock);
	if (!path)
		err = live ? meta_path(dc->cfg.meta, f->id, &path) : -ECANCELED;
	else
		err = 0;
	while (!err && s.pos < end) {
		int64_t got = 0;
		int64_t from = s.pos;

		pthread_mutex_lock(&dc->lock);
		dc->stats.fetches++;
		bool stop = dc->stop;
		pthread_mutex_unlock(&dc->lock);
		if (stop) {
			err = -ECANCELED;
			break;
		}
		if (rev > 0)
			err = jfs_download_revision(dc->cfg.jfs, path, rev, from, end - 1, &sink,
						    &got);
		else
			err = jfs_download(dc->cfg.jfs, path, from, end - 1, &sink, &got);
		/* What the attempt brought, to its last byte, goes in before
		 * anything else is decided. */
		int ferr = sink_flush(&s);
		if (ferr)
			err = ferr;
		if (s.cancelled && (err || s.pos < end))
			err = -ECANCELED;
		pthread_mutex_lock(&dc->lock);
		dc->stats.fetched_bytes += (uint64_t)(s.pos - from);
		pthread_mutex_unlock(&dc->lock);
		/* A truncate may have cut the job short. */
		pthread_mutex_lock(&f->lock);
		if (j->end < end)
			end = j->end;
		pthread_mutex_unlock(&f->lock);
		if (!err && s.pos < end) {
			/* The service ended the body early without an error: resume. */
			err = -EIO;
		}
		if (!err)
			break;
		if (err == -ECANCELED || !retryable(err))
			break;
		if (s.pos > from)
			failures = 0;
		else if (++failures > DC_RETRIES)
			break;
		log_debug("cache: download of node %" PRIu64 " cut at %" PRId64 " (%s), resuming",
			  f->id, s.pos, strerror(-err));
		/* Short pause before resuming: 100 ms, 200 ms, ... 3.2 s. */
		struct timespec ts = { 0, 100000000L };
		for (unsigned i = 0; i < failures && i < 5; i++) {
			ts.tv_nsec *= 2;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec += ts.tv_nsec / 1000000000L;
				ts.tv_nsec %= 1000000000L;
			}
		}
		nanosleep(&ts, NULL);
		err = 0;
		if (s.pos >= end)
			break;
	}
	free(path);
	free(s.buf);
	EVP_MD_CTX_free(s.md);
	/* offline: said once per outage by net/conn */
	if (err && err != -ECANCELED && err != -EHOSTDOWN)
		log_warn("cache: cannot download node %" PRIu64 " bytes %" PRId64 "-%" PRId64 ": %s",
			 f->id, s.pos, end - 1, strerror(-err));

	pthread_mutex_lock(&f->lock);
	j->done = true;
	j->err = err ? (err == -ENOSPC || err == -EHOSTDOWN ? err : -EIO) : 0;
	if (err == -ECANCELED && (j->epoch != f->epoch || j->cancel))
		j->err = -EAGAIN;       /* superseded or cancelled: readers retry */
	if (f->dirty_state && (ranges_bytes(&f->present) - f->persisted_bytes >= DC_PERSIST_STEP ||
			       ranges_covers(&f->present, 0, f->size)))
		dc_persist(f);
	pthread_cond_broadcast(&f->cond);
	bool stream = j->stream;
	dc_job_unref(f, j);
	pthread_mutex_unlock(&f->lock);
	if (stream) {
		pthread_mutex_lock(&dc->lock);
		dc->nstreams--;
		pthread_mutex_unlock(&dc->lock);
	}

	dc_hash_advance(f);
	dc_maybe_evict(dc);
	dc_dfile_unref(f);
}

/* Drop a reference to @j; the last unlinks and frees it. f->lock held. */
void dc_job_unref(struct dfile *f, struct fjob *j)
{
	if (--j->refs)
		return;
	for (struct fjob **p = &f->jobs; *p; p = &(*p)->next) {
		if (*p == j) {
			*p = j->next;
			break;
		}
	}
	dc_body_unref(j->body);
	free(j);
}

void *dc_worker_main(void *arg)
{
	struct dcache *dc = arg;

	pthread_mutex_lock(&dc->lock);
	for (;;) {
		struct fjob *j;

		while (!dc->qhead && !dc->stop)
			pthread_cond_wait(&dc->qcond, &dc->lock);
		if (dc->stop && !dc->qhead)
			break;
		j = dc->qhead;
		dc->qhead = j->qnext;
		if (!dc->qhead)
			dc->qtail = NULL;
		pthread_mutex_unlock(&dc->lock);
		job_run(dc, j);
		pthread_mutex_lock(&dc->lock);
		dc->stats.jobs--;
	}
	pthread_mutex_unlock(&dc->lock);
	return NULL;
}

/* ---- reading ---------------------------------------------------------- */

/*
 * Wait until bytes [off, end) of @f are present, starting fetches for what
 * is missing: each fetch reaches up to @want (the read-ahead window). Two
 * callers missing the same bytes wait for one fetch. f->lock held (waited
 * on). 0 or -errno; a reset meanwhile (new revision) is followed: the
 * caller re-checks the size.
 */
int dc_ensure_present(struct dfile *f, int64_t off, int64_t end, int64_t want)
{
	for (;;) {
		uint64_t epoch = f->epoch;
		int64_t m;
		struct fjob *j;
		int err;

		if (f->broken)
			return f->broken;
		if (end > f->size)
			end = f->size;
		if (want > f->size)
			want = f->size;
		m = ranges_next_missing(&f->present, off, end);
		if (m >= end)
			return 0;
		j = job_covering(f, m);
		if (!j) {
			err = dc_fetch_missing(f, m, want > end ? want : end);
			if (err)
				return err;
			continue;
		}
		/* Woken once the job brought all it will of [m, end), not
		 * at every chunk. */
		int64_t need = job_reach(j);
		if (end < need)
			need = end;
		j->refs++;
		while (!j->done && j->cur < need && epoch == f->epoch) {
			if (need - 1 < j->wait_pos)
				j->wait_pos = need - 1;
			pthread_cond_wait(&f->cond, &f->lock);
		}
		err = j->done && j->cur <= m ? j->err : 0;
		dc_job_unref(f, j);
		if (err && err != -EAGAIN && epoch == f->epoch &&
		    !ranges_covers(&f->present, m, m + 1))
			return err;
	}
}

int dcache_read(struct dfile *f, struct dcache_seq *seq, int64_t off, size_t len,
		struct dcache_buf *buf)
{
	bool mismatch = false;
	int64_t end;
	int err = 0;

	memset(buf, 0, sizeof(*buf));
	buf->fd = -1;
	if (off < 0)
		return -EINVAL;
	if (__builtin_add_overflow(off, (int64_t)len, &end))
		end = INT64_MAX;
	pthread_mutex_lock(&f->lock);
	/* The run: reads near where the last one ended (FUSE threads may
	 * answer the kernel's read-ahead out of order) continue it; any other
	 * read starts a new one and cancels this reader's stream. Until the
	 * run is DC_STREAM_RUN long, a read that misses fetches what it asks
	 * for and DC_WINDOW_MIN more, in one request; the first read of a run
	 * DC_PROBE_MIN at least: a probe (a thumbnailer, `head -c 64K`) costs
	 * one request, what it reads and the kernel's read-ahead, which comes
	 * right after its first read (after a 16 KiB read: 32, 64, then 128
	 * KiB more). */
	if (seq->started && off >= seq->next - DC_SEQ_SLACK && off <= seq->next + DC_SEQ_SLACK) {
		if (__builtin_add_overflow(seq->run, (int64_t)len, &seq->run))
			seq->run = INT64_MAX / 4;
		if (end > seq->next)
			seq->next = end;
	} else {
		if (seq->started)
			dc_stream_cancel(f, seq);
		seq->run = (int64_t)len;
		seq->next = end;
	}
	seq->started = true;
	bool streaming = seq->run >= DC_STREAM_RUN;
	/* A handle counts as served from the content current at its first
	 * read (the kernel's page cache may have given it bytes before). Once
	 * that content failed verification its reader holds bad bytes: every
	 * later read of the handle fails, the first retry included. */
	if (!seq->epoch)
		seq->epoch = f->epoch;
	err = seq->epoch <= f->bad_epoch ? -EIO : 0;
	if (!err && streaming) {
		int64_t ahead = seq->run < DC_STREAM_AHEAD_MAX ? seq->run : DC_STREAM_AHEAD_MAX;
		/* On failure, the read below fetches what it needs itself. */
		(void)stream_feed(f, seq, off, end < f->size ? end : f->size, ahead);
	}
	int64_t want = end;
	if (!streaming && end <= INT64_MAX - DC_PROBE_MIN) {
		want = end + DC_WINDOW_MIN;
		if (seq->run == (int64_t)len && want < off + DC_PROBE_MIN)
			want = off + DC_PROBE_MIN;      /* a run's first read */
	}
	if (!err)
		err = dc_ensure_present(f, off, end, want);
	if (!err)
		err = dc_verify_locked(f, &mismatch);
	if (!err && seq->epoch <= f->bad_epoch)
		err = -EIO;             /* discarded while this read waited */
	if (end > f->size)
		end = f->size;
	if (!err && end > off) {
		buf->fd = f->body->fd;
		buf->off = off;
		buf->len = (size_t)(end - off);
		buf->body_ = f->body;
		dc_body_ref(f->body);
		seq->epoch = f->epoch;  /* a new revision since: served from it now */
	}
	pthread_mutex_unlock(&f->lock);
	/* The file may have changed on the service: let the caller refresh
	 * its metadata and drop the kernel's copy (@f stays open meanwhile). */
	if (mismatch && f->dc->cfg.mismatch)
		f->dc->cfg.mismatch(f->dc->cfg.mismatch_ctx, f->id);
	return err;
}

void dcache_buf_release(struct dcache_buf *buf)
{
	dc_body_unref(buf->body_);
	buf->body_ = NULL;
	buf->fd = -1;
}
