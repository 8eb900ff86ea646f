/*
 * cache/upload_worker.c — the upload workers: each picks a due record from
 * the journal, checks that its content file still holds what was enqueued,
 * chooses the target (its path, or a conflict name), allocates and sends
 * the data, and records the outcome: done, retried with backoff, deferred,
 * paused (dead login) or given up to lost+found. Threads and locks: see
 * cache/upload_int.h.
 *
 * Choices
 * -------
 * - Before each attempt the content file is opened and its identity (inode,
 *   size, mtime) compared with the one recorded at enqueue: a cheap check.
 *   When it differs: written to in the last SETTLE_MS -> try again later
 *   (no hash); quiet -> re-hashed (disk speed, rare): same MD5 -> go on;
 *   different -> the current content is adopted and uploaded (after a crash
 *   nobody re-enqueues it), with a warning.
 * - Errors: transport trouble (timeouts, refused connections, 429, -EACCES
 *   while auth recovers) is retried for ever with capped, jittered backoff.
 *   -EIO is ambiguous (net/http maps 5xx and connection resets to it, as
 *   well as an MD5 mismatch): it counts toward max_attempts only when the
 *   service answered the allocate of that attempt and the data POST then
 *   failed without progress (resume_pos not beyond the previous attempt's).
 *   So CORRUPT (the service drops the bytes: resume 0 again) is given up,
 *   while an outage, a 5xx storm or a link that keeps cutting a big upload
 *   (each cut resumes further) never sends data to lost+found. Refusals
 *   that cannot change (-EINVAL, -ENAMETOOLONG, -ENOSPC, ...) are given up
 *   after PERMANENT_ATTEMPTS. A dead login (-EKEYREJECTED) pauses every
 *   upload instead.
 * - A data POST whose answer was lost (-EIO or -ETIMEDOUT: the link was cut
 *   after the service stored it all) is not re-sent blindly: the path is
 *   stat'ed first, and a COMPLETED current revision with our size and MD5
 *   counts as done. Re-allocating would store the bytes again as a new
 *   revision (the service hands out a fresh upload for it).
 * - rename/unlink of a file being uploaded aborts the transfer and waits
 *   for it to stop, so that the caller's server move/delete that follows
 *   cannot be overtaken by an upload landing at the old path. An upload
 *   restarted at the new path begins at 0 (resume state is per path).
 */
#include "cache/upload_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/backoff.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/md5.h"
#include "lib/privdir.h"
#include "net/jfs.h"

#define PERMANENT_ATTEMPTS 3u      /* refusals that cannot change are given up sooner */
#define PAUSE_FIRST_MS     30000   /* first probe after a dead login */
#define SETTLE_MS          5000    /* content changed underneath: quiet this long before adopted */
#define OFFLINE_RETRY_MAX_MS 30000 /* retry cap of an upload refused as offline */
#define WAKE_MAX_MS        86400000 /* an idle worker looks at the journal at least daily */

/* Internal results of the steps of a job, besides 0 and -errno. */
#define JOB_SKIP  1   /* superseded by a newer generation: nothing to do */
#define JOB_DEFER 2   /* content being changed: try again later, not a failure */
#define JOB_NOCONTENT 3 /* the content file is missing */

/* "Invalid argument (EINVAL)" for -EINVAL; thread-safe. */
static void err_text(int err, char *buf, size_t len)
{
	const char *desc = strerrordesc_np(-err);
	const char *name = strerrorname_np(-err);
	if (desc && name)
		snprintf(buf, len, "%s (%s)", desc, name);
	else
		snprintf(buf, len, "error %d", -err);
}


int64_t upload_backoff_ms(unsigned attempt, unsigned min_ms, unsigned max_ms, uint32_t rnd)
{
	int64_t d = backoff_ceiling_ms(attempt > 1 ? attempt - 1 : 0, min_ms, max_ms);

	/* equal jitter: half fixed, half random */
	return d - d / 2 + (int64_t)(rnd % (uint64_t)(d / 2 + 1));
}

/* Records a small-lane job looks past (big ones due first) before it waits. */
#define SMALL_LANE_SCAN 256u

/* May @job take record @id (journal_pick)? Not when another job runs it,
 * nor (small lane) when it is too big for @job, nor while the queue stops
 * or is paused. */
static enum pick_verdict pick_ok(void *ctx, uint64_t id, int64_t *wake_in)
{
	struct upload_job *job = ctx;
	struct upload_queue *q = job->q;
	enum pick_verdict v = PICK_TAKE;
	int64_t now = clock_mono_ms();
	const struct ment *e;

	pthread_mutex_lock(&q->lock);
	if (upq_job_of(q, id)) {
		v = PICK_SKIP;
	} else if (job->small_lane && (e = upq_ment_get(q, id)) && e->size > q->small_max) {
		v = PICK_SKIP;          /* a big one: for the transfers lane */
		job->skipped_big = true;
	} else if (q->stopping || q->paused_until > now) {
		*wake_in = q->stopping ? -1 : q->paused_until - now;
		v = PICK_STOP;
	}
	pthread_mutex_unlock(&q->lock);
	return v;
}

/*
 * Claim the first due record that no other job runs. Returns 1 with @r
 * filled and @job active, 0 when nothing is due (*wake_in: ms until
 * something will be, -1: not known), or -errno.
 */
static int pick(struct upload_queue *q, struct upload_job *job, struct urec *r, int64_t *wake_in)
{
	int rc;

	pthread_mutex_lock(&q->db_lock);
	rc = journal_pick(q->jn, q->njobs + 1 + (job->small_lane ? SMALL_LANE_SCAN : 0),
			  pick_ok, job, r, wake_in);
	if (rc == 1) {
		pthread_mutex_lock(&q->lock);
		job->active = true;
		job->seq++;
		job->id = r->id;
		job->gen = r->gen;
		job->path = strdup(r->path);
		job->ino = r->ino;
		job->size = r->size;
		job->mtime_ns = r->mtime_ns;
		job->cancelled = job->renamed = false;
		/* a newer generation may have been journalled between the select and now */
		struct ment *e = upq_ment_get(q, r->id);
		job->superseded = !e || e->gen != r->gen;
		if (e)
			e->touched = true;
		atomic_store(&job->cancel, false);
		pthread_mutex_unlock(&q->lock);
	} else if (rc == JOURNAL_BAD) {
		/* a row this version cannot use: set it aside, visibly, instead of looping */
		log_err("upload journal: malformed record of node %" PRIu64 " set aside", r->id);
		if (journal_set_aside(q->jn, r->id) > 0) {
			pthread_mutex_lock(&q->lock);
			struct ment *e = upq_ment_get(q, r->id);
			if (e)
				upq_ment_set(q, r->id, e->gen, e->size, true);
			pthread_mutex_unlock(&q->lock);
		} else {
			*wake_in = 1000;
		}
		rc = 0;
	}
	pthread_mutex_unlock(&q->db_lock);
	return rc;
}

/* Interruption reasons of @job (under q->lock). */
struct job_flags {
	bool cancelled, renamed, superseded, stopping;
};

static struct job_flags job_flags(struct upload_queue *q, struct upload_job *job)
{
	struct job_flags f;

	pthread_mutex_lock(&q->lock);
	f.cancelled = job->cancelled;
	f.renamed = job->renamed;
	f.superseded = job->superseded;
	f.stopping = q->stopping;
	pthread_mutex_unlock(&q->lock);
	return f;
}

static bool job_stop_now(struct upload_queue *q, struct upload_job *job)
{
	struct job_flags f = job_flags(q, job);
	return f.cancelled || f.renamed || f.superseded || f.stopping;
}

/* End the run (q->lock held): free the slot and wake whoever waits for it. */
static void job_release(struct upload_queue *q, struct upload_job *job)
{
	job->active = false;
	free(job->path);
	job->path = NULL;
	pthread_cond_broadcast(&q->state_cv);
}


/* Record new content facts of (id, gen) in the journal and the index. */
static void record_content(struct upload_queue *q, const struct urec *r)
{
	pthread_mutex_lock(&q->db_lock);
	if (journal_content(q->jn, r) > 0) {
		pthread_mutex_lock(&q->lock);
		struct ment *e = upq_ment_get(q, r->id);
		if (e && e->gen == r->gen && !e->given_up)
			upq_ment_set(q, r->id, r->gen, r->size, false);
		pthread_mutex_unlock(&q->lock);
	}
	pthread_mutex_unlock(&q->db_lock);
}

/*
 * MD5 of content file @fd (whose fstat was @sb) into @md5: 0, JOB_SKIP
 * (the job was cancelled, or superseded while the file changed), JOB_DEFER
 * (written to while it was hashed) or -errno.
 */
static int hash_unchanged(struct upload_queue *q, struct upload_job *job, int fd,
			  const struct stat *sb, char md5[33])
{
	struct stat sb2;
	int err = md5_fd(fd, md5, &job->cancel);

	if (err == -ECANCELED)
		return JOB_SKIP;
	if (err)
		return err;
	if (fstat(fd, &sb2) < 0)
		return -EIO;
	if (sb2.st_size != sb->st_size || sb2.st_mtim.tv_sec != sb->st_mtim.tv_sec ||
	    sb2.st_mtim.tv_nsec != sb->st_mtim.tv_nsec)
		return job_flags(q, job).superseded ? JOB_SKIP : JOB_DEFER;
	return 0;
}

/*
 * Open the content file of @r and check that it still holds the content
 * recorded at enqueue (see "Choices" above). Returns 0 with *fd open,
 * JOB_SKIP, JOB_DEFER or -errno.
 */
static int content_open(struct upload_queue *q, struct upload_job *job, struct urec *r, int *fd)
{
	struct stat sb;
	char md5[33];
	int64_t mtime_ns;
	int err;

	/* a regular file of ours, not through a symlink (lib/privdir.h) */
	err = privdir_open_file(AT_FDCWD, r->content_file, O_RDONLY, false);
	*fd = err < 0 ? -1 : err;
	if (err < 0) {
		char why[PATH_MAX + 200];
		if (job_flags(q, job).superseded)
			return JOB_SKIP;
		log_warn("upload of '%s': content file: %s", r->path,
			 privdir_file_error(r->content_file, err, why, sizeof(why)));
		/* a lost (or replaced) cache file is not the service's fault:
		 * retrying cannot help for long */
		return err == -ENOENT || err == -ELOOP || err == -EINVAL || err == -EPERM ?
		       JOB_NOCONTENT : err;
	}
	if (fstat(*fd, &sb) < 0)
		return -EIO;
	mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
	if ((uint64_t)sb.st_ino == r->ino && sb.st_size == r->size && mtime_ns == r->mtime_ns) {
		if (r->md5[0])
			return 0;
		/* committed without its MD5 (a huge sparse file): hash it now */
		if (job_flags(q, job).superseded)
			return JOB_SKIP;
		err = hash_unchanged(q, job, *fd, &sb, md5);
		if (err)
			return err;
		memcpy(r->md5, md5, sizeof(md5));
		record_content(q, r);
		return 0;
	}
	/* changed underneath: a newer generation will upload it */
	if (job_flags(q, job).superseded)
		return JOB_SKIP;
	/* still being written (its close() re-enqueues): wait, without hashing */
	if (journal_now_ms() - mtime_ns / 1000000 < SETTLE_MS)
		return JOB_DEFER;
	err = hash_unchanged(q, job, *fd, &sb, md5);
	if (err)
		return err;
	if (sb.st_size == r->size && r->md5[0] && strcmp(md5, r->md5) == 0) {
		r->ino = (uint64_t)sb.st_ino;   /* touched or copied, same bytes */
		r->mtime_ns = mtime_ns;
		record_content(q, r);
		return 0;
	}
	log_warn("upload of '%s': content file '%s' changed without a new upload request "
		 "(%" PRId64 " -> %" PRId64 " bytes); uploading its current content",
		 r->path, r->content_file, r->size, (int64_t)sb.st_size);
	r->size = sb.st_size;
	memcpy(r->md5, md5, sizeof(md5));
	r->ino = (uint64_t)sb.st_ino;
	r->mtime_ns = mtime_ns;
	record_content(q, r);
	pthread_mutex_lock(&q->lock);
	job->ino = r->ino;
	job->size = r->size;
	job->mtime_ns = r->mtime_ns;
	pthread_mutex_unlock(&q->lock);
	return 0;
}

/* Note that content (@md5, @size) of node @id may land at its path (once). */
static void own_add(struct upload_queue *q, uint64_t id, const char *md5, int64_t size)
{
	pthread_mutex_lock(&q->lock);
	for (unsigned i = 0; i < OWN_RING; i++) {
		if (q->own[i].id == id && q->own[i].size == size && !strcmp(q->own[i].md5, md5)) {
			pthread_mutex_unlock(&q->lock);
			return;
		}
	}
	unsigned k = q->own_next++ % OWN_RING;
	q->own[k].id = id;
	q->own[k].size = size;
	memcpy(q->own[k].md5, md5, sizeof(q->own[k].md5));
	pthread_mutex_unlock(&q->lock);
}

/* Did this mount itself send content (@md5, @size) to node @id's path lately? */
static bool own_content(struct upload_queue *q, uint64_t id, const char *md5, int64_t size)
{
	bool r = false;

	pthread_mutex_lock(&q->lock);
	for (unsigned i = 0; i < OWN_RING && !r; i++)
		r = q->own[i].id == id && q->own[i].size == size && !strcmp(q->own[i].md5, md5);
	pthread_mutex_unlock(&q->lock);
	return r;
}

/*
 * Decide where @r goes: its path, or a conflict name when the server copy
 * changed since the local copy was opened. *target is malloc'd.
 *
 * A file new here (no base) needs no look first: the allocate carries
 * REJECT_CONFLICTS (*reject set), so the service itself refuses when someone
 * else put a different file at the path meanwhile. That saves a round trip
 * per new file. Only when it refused (@refused, its error) is the path looked
 * at; if nothing is there, the refusal was about something else and is
 * returned as it is.
 */
static int choose_target(struct upload_queue *q, struct upload_job *job, struct urec *r,
			 int refused, char **target, bool *reject)
{
	struct jfs_entry e;
	bool conflict, live;
	char name[4096];
	int err;

	*target = NULL;
	*reject = false;
	if (r->target) {
		*target = strdup(r->target);
		return *target ? 0 : -ENOMEM;
	}
	if (!r->overwrite && r->base_size < 0 && !refused) {
		*reject = true;
	} else if (!r->overwrite) {
		memset(&e, 0, sizeof(e));
		err = q->ops.stat(q->ops.ctx, r->path, &e);
		if (err && err != -ENOENT)
			return err;
		live = !err && !e.deleted && (e.is_dir || e.completed);
		if (!live)
			conflict = false;       /* nothing live there */
		else if (e.is_dir)
			conflict = true;
		else if (e.md5[0] == '\0')
			conflict = false;       /* nothing to compare with */
		else if (e.size == r->size && strcmp(e.md5, r->md5) == 0)
			conflict = false;       /* already ours */
		else if (r->base_size >= 0 && e.size == r->base_size &&
			 strcmp(e.md5, r->base_md5) == 0)
			conflict = false;       /* what the local copy started from */
		else
			conflict = !own_content(q, r->id, e.md5, e.size);
		if (!err)
			q->ops.entry_release(q->ops.ctx, &e);
		if (!live && refused)
			return refused;         /* the refusal was not about what is there */
		if (conflict) {
			err = upload_conflict_name(r->path, time(NULL), name, sizeof(name));
			if (err)
				return err;
			log_warn("'%s' was changed on the server since it was opened here; "
				 "the local version is uploaded as '%s'", r->path, name);
			*target = strdup(name);
			if (!*target)
				return -ENOMEM;
			/* retries must go to the same name */
			pthread_mutex_lock(&q->db_lock);
			journal_target(q->jn, r, name);
			pthread_mutex_unlock(&q->db_lock);
			return 0;
		}
	}
	*target = strdup(r->path);
	return *target ? 0 : -ENOMEM;
}

/*
 * Can the data POST that failed with @err have completed all the same? A
 * transport failure or a 5xx (-EIO: net/http cannot tell a cut answer from
 * a cut request) or a timeout may hide an answer that was lost after the
 * service stored everything. Refusals (-EINVAL, -ENOSPC, ...) and our own
 * cancel (-ECANCELED: the caller moves or deletes what landed) cannot.
 */
static bool post_ambiguous(int err)
{
	return err == -EIO || err == -ETIMEDOUT;
}

/*
 * After an ambiguous failure of the data POST, does @target hold the upload
 * all the same? True when its current revision is COMPLETED with our size
 * and MD5: the goal of the upload is met, and allocating again would store
 * the same bytes once more as a new revision (the POST is not idempotent,
 * its lost answer cannot be asked for again). A failing stat says no (the
 * attempt is retried as before).
 */
static bool landed_anyway(struct upload_queue *q, const struct urec *r, const char *target)
{
	struct jfs_entry e;
	bool ours;

	memset(&e, 0, sizeof(e));
	if (q->ops.stat(q->ops.ctx, target, &e) != 0)
		return false;
	ours = !e.deleted && !e.is_dir && e.completed && e.size == r->size &&
	       strcmp(e.md5, r->md5) == 0;
	q->ops.entry_release(q->ops.ctx, &e);
	return ours;
}

/* Did the service refuse an allocate outright (nothing can have landed)? */
static bool allocate_refused(int err)
{
	switch (err) {
	case -EEXIST: case -EINVAL: case -EISDIR: case -ENOTDIR: case -ENAMETOOLONG:
	case -ENOSPC: case -EDQUOT: case -EFBIG: case -EPERM: case -ENOENT:
		return true;
	default:
		return false;
	}
}

/*
 * Allocate and, unless the service already has the content, send it.
 * *resumed is the resume_pos of the data POST, -1 when none was sent.
 */
static int transfer(struct upload_queue *q, struct upload_job *job, const struct urec *r,
		    const char *target, bool reject, int fd, bool *instant, int64_t *resumed)
{
	struct jfs_alloc_req req = {
		.path = target, .size = r->size, .md5 = r->md5,
		.created = (time_t)r->created, .modified = (time_t)r->modified,
		.reject_conflicts = reject,
	};
	struct jfs_alloc a;
	int err;

	*resumed = -1;
	if (job_stop_now(q, job))
		return -ECANCELED;
	memset(&a, 0, sizeof(a));
	err = q->ops.allocate(q->ops.ctx, &req, &a);
	/* Unless the service refused it outright, this content may land at
	 * the path (an allocate answered or lost may complete it; a POST cut
	 * as the file is superseded may still finish). Refusals are not
	 * remembered: a writer rewriting a file in a loop would otherwise
	 * push what did land out of the ring. */
	if (strcmp(target, r->path) == 0 && !allocate_refused(err))
		own_add(q, r->id, r->md5, r->size);
	if (err)
		return err;
	if (a.completed) {
		*instant = true;
	} else if (!a.upload_url || a.resume_pos < 0 || a.resume_pos > r->size) {
		log_warn("upload of '%s': allocate answered a resume position of %" PRId64
			 " for %" PRId64 " bytes", target, a.resume_pos, r->size);
		err = -EIO;
	} else if (job_stop_now(q, job)) {
		err = -ECANCELED;
	} else {
		*resumed = a.resume_pos;
		atomic_store(&job->sent, 0);
		atomic_store(&job->resume, a.resume_pos);
		if (q->ops.upload_progress)
			err = q->ops.upload_progress(q->ops.ctx, a.upload_url, fd, a.resume_pos,
						     r->size, r->md5, &job->cancel, &job->sent);
		else
			err = q->ops.upload(q->ops.ctx, a.upload_url, fd, a.resume_pos, r->size,
					    r->md5, &job->cancel);
		atomic_store(&job->resume, -1);
		if (post_ambiguous(err) && !job_stop_now(q, job) && landed_anyway(q, r, target)) {
			log_debug("upload of '%s': the data POST failed (%s) but the service has "
				  "all %" PRId64 " bytes with our MD5: done", target, strerror(-err),
				  r->size);
			err = 0;
		}
	}
	q->ops.alloc_release(q->ops.ctx, &a);
	return err;
}

enum fail_kind { FAIL_TRANSIENT, FAIL_HARD, FAIL_PERMANENT, FAIL_PAUSE };

/* How an error from an attempt is treated (see "Choices"). */
static enum fail_kind classify(int err)
{
	switch (err) {
	case -EKEYREJECTED:
		return FAIL_PAUSE;
	case -EINVAL: case -ENAMETOOLONG: case -ENOSPC: case -EDQUOT: case -EFBIG:
	case -ENOTDIR: case -EISDIR: case -EPERM: case -EROFS:
		return FAIL_PERMANENT;
	case -ETIMEDOUT: case -EAGAIN: case -EHOSTUNREACH: case -ENETUNREACH:
	case -ENETDOWN: case -ECONNREFUSED: case -ECONNRESET: case -ECONNABORTED:
	case -EPIPE: case -ENOTCONN: case -EACCES: case -EBUSY: case -ENOMEM:
	case -ESHUTDOWN: case -EHOSTDOWN: case -EINTR: case -ECANCELED:
	case -EEXIST:   /* 409: the service still holds a dead connection's upload */
		return FAIL_TRANSIENT;
	default:
		return FAIL_HARD;         /* -EIO and anything unexpected */
	}
}


/* The upload of @r is confirmed at @target: clear it (if still that generation). */
static void finish_done(struct upload_queue *q, struct upload_job *job, const struct urec *r,
			const char *target, bool instant, int64_t resumed)
{
	bool at_path = strcmp(target, r->path) == 0;
	int n;

	pthread_mutex_lock(&q->db_lock);
	n = journal_landed(q->jn, r, at_path);
	if (at_path) {
		/* and those enqueued before the done callback returned */
		job->landed.path = strdup(r->path);
		if (job->landed.path) {
			job->landed.set = true;
			job->landed.id = r->id;
			job->landed.gen = r->gen;
			memcpy(job->landed.from_md5, r->base_md5, sizeof(job->landed.from_md5));
			job->landed.from_size = r->base_size;
			memcpy(job->landed.to_md5, r->md5, sizeof(job->landed.to_md5));
			job->landed.to_size = r->size;
		}
	}
	pthread_mutex_lock(&q->lock);
	if (n > 0) {
		struct ment *e = upq_ment_get(q, r->id);
		if (e && e->gen == r->gen)
			upq_ment_del(q, r->id);
	}
	upq_waiters_resolve(q, r->id, r->gen, false, 0);
	if (q->pause_level) {
		q->pause_level = 0;
		q->paused_until = 0;
		log_info("uploads resumed");
	}
	job_release(q, job);
	pthread_mutex_unlock(&q->lock);
	pthread_mutex_unlock(&q->db_lock);
	if (instant)
		log_debug("uploaded '%s' (%" PRId64 " bytes, instant)", target, r->size);
	else
		log_debug("uploaded '%s' (%" PRId64 " bytes, from %" PRId64 ")", target, r->size,
			  resumed);
	if (q->done)
		q->done(q->done_ctx, r->id, r->gen, 0, target, r->md5);
	if (at_path) {
		pthread_mutex_lock(&q->db_lock);
		job->landed.set = false;
		free(job->landed.path);
		job->landed.path = NULL;
		pthread_mutex_unlock(&q->db_lock);
	}
}

/* Give the upload of @r up: content to lost+found, record marked, callers told. */
static void finish_give_up(struct upload_queue *q, struct upload_job *job, const struct urec *r,
			   int fd, int err, const char *why)
{
	char *lost = NULL;
	int kerr = fd >= 0 ? lostfound_keep(q->lost_dir, r->path, fd, &lost) : -ENOENT;
	int n;

	pthread_mutex_lock(&q->db_lock);
	n = journal_give_up(q->jn, r, why, lost);
	pthread_mutex_lock(&q->lock);
	if (n > 0) {
		struct ment *e = upq_ment_get(q, r->id);
		if (e && e->gen == r->gen)
			upq_ment_set(q, r->id, r->gen, e->size, true);
		upq_waiters_resolve(q, r->id, r->gen, false, -EIO);
	}
	job_release(q, job);
	pthread_mutex_unlock(&q->lock);
	pthread_mutex_unlock(&q->db_lock);
	if (n <= 0) {
		/* cancelled or superseded meanwhile: nothing was given up */
		if (lost)
			unlink(lost);
		free(lost);
		return;
	}
	if (lost)
		log_err("upload of '%s' given up after %u attempts: %s; its content is kept in '%s'",
			r->path, r->attempts + 1, why, lost);
	else if (fd >= 0)
		log_err("upload of '%s' given up after %u attempts: %s; its content could not be "
			"kept in '%s' (%s), it is still in '%s'", r->path, r->attempts + 1, why,
			q->lost_dir, strerror(-kerr), r->content_file);
	else
		log_err("upload of '%s' given up after %u attempts: %s", r->path,
			r->attempts + 1, why);
	free(lost);
	if (q->done)
		q->done(q->done_ctx, r->id, r->gen, err, r->path, r->md5);
}

/* Schedule the next attempt of @r in @delay ms after a failure. */
static void finish_retry(struct upload_queue *q, struct upload_job *job, const struct urec *r,
			 unsigned hard, int64_t delay, const char *why, int64_t resumed)
{
	pthread_mutex_lock(&q->db_lock);
	journal_fail(q->jn, r, hard, delay, why, resumed >= 0 ? resumed : r->last_resume);
	pthread_mutex_lock(&q->lock);
	job_release(q, job);
	upq_work_signal(q);
	pthread_mutex_unlock(&q->lock);
	pthread_mutex_unlock(&q->db_lock);
}

/* Nothing to record: free the slot (the record, if any, is picked again). */
static void finish_quiet(struct upload_queue *q, struct upload_job *job)
{
	pthread_mutex_lock(&q->lock);
	job_release(q, job);
	upq_work_signal(q);
	pthread_mutex_unlock(&q->lock);
}

static void finish_defer(struct upload_queue *q, struct upload_job *job, const struct urec *r)
{
	pthread_mutex_lock(&q->db_lock);
	journal_defer(q->jn, r, SETTLE_MS);
	pthread_mutex_unlock(&q->db_lock);
	finish_quiet(q, job);
}

/*
 * An attempt failed with @err: retry later, pause, or give up. @resumed is
 * the resume_pos of this attempt's data POST, -1 when it sent none.
 */
static void finish_failed(struct upload_queue *q, struct upload_job *job, const struct urec *r,
			  const char *target, int fd, int err, int64_t resumed)
{
	enum fail_kind kind = err == JOB_NOCONTENT ? FAIL_PERMANENT : classify(err);
	bool counts = kind == FAIL_PERMANENT ||
		      (kind == FAIL_HARD && resumed >= 0 && resumed <= r->last_resume);
	unsigned hard = r->hard_failures + counts;
	unsigned limit = kind == FAIL_PERMANENT && PERMANENT_ATTEMPTS < q->max_attempts ?
			 PERMANENT_ATTEMPTS : q->max_attempts;
	char why[160], etext[96];
	int64_t delay;

	if (err == JOB_NOCONTENT) {
		err = -ENOENT;
		snprintf(etext, sizeof(etext), "its content file '%s' is missing", r->content_file);
	} else {
		err_text(err, etext, sizeof(etext));
	}
	snprintf(why, sizeof(why), "%s", etext);
	if (kind == FAIL_PAUSE) {
		pthread_mutex_lock(&q->lock);
		int64_t now = clock_mono_ms();
		if (q->paused_until <= now) {
			int64_t pause = (int64_t)PAUSE_FIRST_MS << (q->pause_level < 4 ? q->pause_level : 4);
			if (pause > q->backoff_max_ms)
				pause = q->backoff_max_ms;
			if (q->pause_level == 0)
				log_err("the server rejected the login: %u uploads are paused (kept in "
					"the journal); run 'jottafs login' again, they resume by "
					"themselves", q->files);
			q->pause_level++;
			q->paused_until = now + pause;
		}
		pthread_mutex_unlock(&q->lock);
		finish_quiet(q, job);
		return;
	}
	if (counts && hard >= limit) {
		finish_give_up(q, job, r, fd, err, why);
		return;
	}
	if (err == -EHOSTDOWN) {
		/* offline (net/conn.h): an fsync waiting for it learns so now
		 * rather than after the outage; the upload stays queued */
		pthread_mutex_lock(&q->lock);
		upq_waiters_resolve(q, r->id, r->gen, false, -EHOSTDOWN);
		pthread_mutex_unlock(&q->lock);
	}
	delay = upload_backoff_ms(r->attempts + 1, q->backoff_min_ms, q->backoff_max_ms,
				  (uint32_t)rng_u64());
	/* Offline: upload_retry_now() restarts it when the service is back;
	 * the cap only covers a return that happened while this attempt ended. */
	if (err == -EHOSTDOWN && delay > OFFLINE_RETRY_MAX_MS)
		delay = OFFLINE_RETRY_MAX_MS;
	if ((r->attempts == 0 || counts) && err != -EHOSTDOWN)
		log_warn("upload of '%s' failed (attempt %u): %s; retrying in %.2f s",
			 target ? target : r->path, r->attempts + 1, etext, (double)delay / 1000.0);
	else
		log_debug("upload of '%s' failed (attempt %u): %s; retrying in %.2f s",
			  target ? target : r->path, r->attempts + 1, etext, (double)delay / 1000.0);
	finish_retry(q, job, r, hard, delay, why, resumed);
}

/*
 * Did an allocate with REJECT_CONFLICTS fail because of what is at the path?
 * The reference names the refusal (UniqueFileException) but not its status,
 * so any refusal of the request itself counts; transient failures do not.
 */
static bool refused_as_conflict(int err)
{
	return err == -EEXIST || err == -EINVAL || err == -EISDIR || err == -ENOTDIR;
}

/* Run one claimed record to an outcome. */
static void job_run(struct upload_queue *q, struct upload_job *job, struct urec *r)
{
	char *target = NULL;
	bool instant = false, reject = false;
	int64_t resumed = -1;
	struct job_flags f;
	int fd = -1, err;

	err = content_open(q, job, r, &fd);
	if (err == 0 && q->before)
		err = q->before(q->before_ctx, r->target ? r->target : r->path);
	if (err == 0)
		err = choose_target(q, job, r, 0, &target, &reject);
	if (err == 0)
		err = transfer(q, job, r, target, reject, fd, &instant, &resumed);
	if (reject && refused_as_conflict(err)) {
		/* refused: look at the path, as for a file that has a base */
		log_debug("upload of '%s': the service refused a new file there (%s); "
			  "looking at what is there", target, strerror(-err));
		free(target);
		target = NULL;
		err = choose_target(q, job, r, err, &target, &reject);
		if (err == 0)
			err = transfer(q, job, r, target, false, fd, &instant, &resumed);
	}
	f = job_flags(q, job);
	if (err == 0 && f.cancelled) {
		/* landed although unlinked meanwhile: the caller's delete removes it */
		log_debug("upload of '%s' finished as it was cancelled", target);
		finish_quiet(q, job);
	} else if (err == 0 && f.renamed) {
		/* landed at the old path: the caller moves it; the record goes on at its new path */
		log_debug("upload of '%s' finished as it was renamed", target);
		finish_quiet(q, job);
	} else if (err == 0) {
		finish_done(q, job, r, target, instant, resumed);
	} else if (err == JOB_SKIP || f.cancelled || f.renamed || f.superseded || f.stopping) {
		finish_quiet(q, job);
	} else if (err == JOB_DEFER) {
		finish_defer(q, job, r);
	} else if (err == JOB_NOCONTENT) {
		finish_failed(q, job, r, target, -1, err, -1);
	} else {
		finish_failed(q, job, r, target, fd, err, resumed);
	}
	if (fd >= 0)
		close(fd);
	free(target);
}

/* Hand a wake token to an idle follower of @lane (q->lock held); false
 * when none sleeps there without one. */
static bool wake_follower(struct upload_queue *q, int lane)
{
	if (q->followers[lane] <= q->tokens[lane])
		return false;
	q->tokens[lane]++;
	pthread_cond_signal(&q->idle_cv[lane]);
	return true;
}

/*
 * After a pick by @job (@took: it claimed a record): more may be due, so
 * wake the next idle worker (small lane first: it has the most); and a
 * big record a small-lane job had to pass goes to the transfers lane.
 */
static void worker_handoff(struct upload_queue *q, struct upload_job *job, bool took)
{
	pthread_mutex_lock(&q->lock);
	if (job->skipped_big)
		wake_follower(q, 0);
	else if (took && !wake_follower(q, 1))
		wake_follower(q, 0);
	job->skipped_big = false;
	pthread_mutex_unlock(&q->lock);
}

/* Nothing to pick now: wait as the watcher (for work_cv or @wake ms, -1:
 * none) or, when another idle worker watches, as a follower (for a token). */
static void worker_idle(struct upload_queue *q, struct upload_job *job, uint64_t epoch,
			int64_t wake)
{
	struct timespec dl = clock_deadline_ms(wake < WAKE_MAX_MS ? wake : WAKE_MAX_MS);
	int lane = job->small_lane;

	pthread_mutex_lock(&q->lock);
	if (q->stopping || q->epoch != epoch) {
		/* work appeared while this one picked: look again */
	} else if (!q->watching) {
		q->watching = true;
		while (!q->stopping && q->epoch == epoch) {
			if (wake < 0) {
				pthread_cond_wait(&q->work_cv, &q->lock);
				continue;
			}
			if (pthread_cond_timedwait(&q->work_cv, &q->lock, &dl) == ETIMEDOUT)
				break;
		}
		q->watching = false;
	} else {
		/* A transfers-lane follower that knows when a record falls due
		 * wakes then by itself: a small-lane watcher passes over a big
		 * record (not due yet: it sleeps until a small one is, or for
		 * ever), and its hand-off to this lane came before the record was
		 * due, when the follower found nothing to take. (Only this lane:
		 * a transfers-lane watcher takes any record; at most @transfers
		 * followers wake at a due time.) */
		q->followers[lane]++;
		while (!q->stopping && !q->tokens[lane]) {
			if (wake < 0 || lane) {
				pthread_cond_wait(&q->idle_cv[lane], &q->lock);
				continue;
			}
			if (pthread_cond_timedwait(&q->idle_cv[lane], &q->lock, &dl) == ETIMEDOUT)
				break;
		}
		if (q->tokens[lane])
			q->tokens[lane]--;
		q->followers[lane]--;
	}
	pthread_mutex_unlock(&q->lock);
}

void *upload_worker_main(void *arg)
{
	struct upload_job *job = arg;
	struct upload_queue *q = job->q;

	for (;;) {
		struct urec r;
		int64_t wake = -1;      /* ms from now, -1: until signalled */
		uint64_t epoch;
		int rc;

		pthread_mutex_lock(&q->lock);
		if (q->stopping) {
			pthread_mutex_unlock(&q->lock);
			break;
		}
		epoch = q->epoch;
		pthread_mutex_unlock(&q->lock);

		rc = pick(q, job, &r, &wake);
		worker_handoff(q, job, rc > 0);
		if (rc > 0) {
			job_run(q, job, &r);
			urec_release(&r);
			continue;
		}
		if (rc < 0)
			wake = 1000;            /* journal trouble (logged): do not spin */
		worker_idle(q, job, epoch, wake);
	}
	return NULL;
}
