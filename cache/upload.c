/*
 * cache/upload.c — the upload queue's API (cache/upload.h): open, start and
 * close the queue and its workers; enqueue, wait, cancel, rename, state and
 * drain; the in-memory index that mirrors the journal (id -> generation,
 * size, given-up) and the threads waiting for outcomes. The journal's SQL
 * is in cache/journal.c, the workers in cache/upload_worker.c; threads,
 * locks and clocks are described in cache/upload_int.h.
 */
#include "cache/upload_int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/md5.h"
#include "net/jfs.h"

#define DEF_TRANSFERS      4u
#define DEF_SMALL          28u
#define DEF_SMALL_MAX      (4 << 20)
#define DEF_MAX_ATTEMPTS   10u
#define DEF_WRITE_BACK_MS  2000
#define DEF_BACKOFF_MIN_MS 1000u
#define DEF_BACKOFF_MAX_MS 300000u
#define DRAIN_LOG_MS       5000
/* A big file's upload starts sooner: the write-back delay saves a transfer
 * when a rename, unlink or rewrite follows close() (rsync's temp file, an
 * editor's save), which such tools do within milliseconds. For a file whose
 * transfer takes seconds the full delay only postpones it, and a rename a
 * little later costs what was sent by then (the transfer is aborted and
 * restarts at the new path). Measured on a 1 GiB cp: 2 s of the 7-8 s
 * until the service has it. */
#define BIG_WRITE_BACK_MIN (64LL << 20)
#define BIG_WRITE_BACK_MS  250

/* ---- the default network calls: net/jfs ---- */

static int op_stat(void *ctx, const char *path, struct jfs_entry *out)
{
	return jfs_stat(ctx, path, out);
}

static void op_entry_release(void *ctx, struct jfs_entry *e)
{
	jfs_entry_release(e);
}

static int op_allocate(void *ctx, const struct jfs_alloc_req *req, struct jfs_alloc *out)
{
	return jfs_allocate(ctx, req, out);
}

static void op_alloc_release(void *ctx, struct jfs_alloc *a)
{
	jfs_alloc_release(a);
}

static int op_upload(void *ctx, const char *url, int fd, int64_t resume_pos, int64_t size,
		     const char *md5, const atomic_bool *cancel)
{
	return jfs_upload_cancellable(ctx, url, fd, resume_pos, size, md5, cancel, NULL);
}

static int op_upload_progress(void *ctx, const char *url, int fd, int64_t resume_pos,
			      int64_t size, const char *md5, const atomic_bool *cancel,
			      _Atomic int64_t *sent)
{
	return jfs_upload_progress(ctx, url, fd, resume_pos, size, md5, cancel, sent, NULL);
}

/* ---- the in-memory index and waiters (callers hold q->lock) ---- */

static int ment_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct ment *)a)->id, y = ((const struct ment *)b)->id;
	return x < y ? -1 : x > y;
}

struct ment *upq_ment_get(struct upload_queue *q, uint64_t id)
{
	struct ment key = { .id = id };
	void *p = tfind(&key, &q->index, ment_cmp);
	return p ? *(struct ment **)p : NULL;
}

static void ment_count(struct upload_queue *q, const struct ment *e, int sign)
{
	if (e->given_up) {
		q->given_up += (unsigned)sign;
	} else {
		q->files += (unsigned)sign;
		q->bytes += sign * e->size;
	}
}

int upq_ment_set(struct upload_queue *q, uint64_t id, uint64_t gen, int64_t size, bool given_up)
{
	struct ment *e = upq_ment_get(q, id);

	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e)
			return -ENOMEM;
		e->id = id;
		if (!tsearch(e, &q->index, ment_cmp)) {
			free(e);
			return -ENOMEM;
		}
	} else {
		ment_count(q, e, -1);
	}
	e->gen = gen;
	e->size = size;
	e->given_up = given_up;
	ment_count(q, e, +1);
	return 0;
}

void upq_ment_del(struct upload_queue *q, uint64_t id)
{
	struct ment *e = upq_ment_get(q, id);
	if (!e)
		return;
	ment_count(q, e, -1);
	tdelete(e, &q->index, ment_cmp);
	free(e);
}

void upq_waiters_resolve(struct upload_queue *q, uint64_t id, uint64_t gen, bool any_gen,
			 int result)
{
	struct waiter *w;
	bool woke = false;

	for (w = q->waiters; w; w = w->next) {
		if (w->done || w->id != id || (!any_gen && w->gen > gen))
			continue;
		w->done = true;
		w->result = result;
		woke = true;
	}
	if (woke)
		pthread_cond_broadcast(&q->state_cv);
}

void upq_work_signal(struct upload_queue *q)
{
	q->epoch++;
	pthread_cond_broadcast(&q->work_cv);
}

struct upload_job *upq_job_of(struct upload_queue *q, uint64_t id)
{
	unsigned i;
	for (i = 0; i < q->njobs; i++)
		if (q->jobs[i].active && q->jobs[i].id == id)
			return &q->jobs[i];
	return NULL;
}

/* Wait (q->lock held) until the run @seq of @job has ended. */
static void job_wait_end(struct upload_queue *q, struct upload_job *job, uint64_t seq)
{
	while (job->active && job->seq == seq)
		pthread_cond_wait(&q->state_cv, &q->lock);
}

/* Journal record loaded at open (journal_load). */
static int index_add(void *ctx, uint64_t id, uint64_t gen, int64_t size, bool given_up)
{
	int err = upq_ment_set(ctx, id, gen, size, given_up);
	struct ment *e = err ? NULL : upq_ment_get(ctx, id);

	if (e)          /* an earlier process may have started it */
		e->touched = true;
	return err;
}

/* ---- open / close ---- */

int upload_open(const struct upload_config *cfg, struct upload_queue **out)
{
	static const struct upload_ops jfs_ops = {
		op_stat, op_entry_release, op_allocate, op_alloc_release, op_upload, NULL,
		op_upload_progress,
	};
	struct upload_queue *q;
	int err;

	*out = NULL;
	if (!cfg || !cfg->cache_dir || cfg->cache_dir[0] != '/' || (!cfg->jfs && !cfg->ops))
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->transfers = cfg->transfers ? cfg->transfers : DEF_TRANSFERS;
	if (q->transfers > 64)
		q->transfers = 64;
	q->small = cfg->small_transfers == 0 ? DEF_SMALL :
		   cfg->small_transfers < 0 ? 0 : (unsigned)cfg->small_transfers;
	if (q->small > UPQ_JOBS_MAX - q->transfers)
		q->small = UPQ_JOBS_MAX - q->transfers;
	q->njobs = q->transfers + q->small;
	q->small_max = cfg->small_max > 0 ? cfg->small_max : DEF_SMALL_MAX;
	q->max_attempts = cfg->max_attempts ? cfg->max_attempts : DEF_MAX_ATTEMPTS;
	q->write_back_ms = cfg->write_back_ms == 0 ? DEF_WRITE_BACK_MS :
			   cfg->write_back_ms < 0 ? 0 : cfg->write_back_ms;
	q->backoff_min_ms = cfg->backoff_min_ms ? cfg->backoff_min_ms : DEF_BACKOFF_MIN_MS;
	q->backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms : DEF_BACKOFF_MAX_MS;
	if (q->backoff_max_ms < q->backoff_min_ms)
		q->backoff_max_ms = q->backoff_min_ms;
	q->done = cfg->done;
	q->done_ctx = cfg->done_ctx;
	q->before = cfg->before;
	q->before_ctx = cfg->before_ctx;
	if (cfg->ops) {
		q->ops = *cfg->ops;
	} else {
		q->ops = jfs_ops;
		q->ops.ctx = cfg->jfs;
	}
	pthread_mutex_init(&q->db_lock, NULL);
	pthread_mutex_init(&q->lock, NULL);
	clock_cond_init(&q->work_cv);
	clock_cond_init(&q->idle_cv[0]);
	clock_cond_init(&q->idle_cv[1]);
	clock_cond_init(&q->state_cv);

	q->cache_dir = strdup(cfg->cache_dir);
	q->jobs = calloc(q->njobs, sizeof(*q->jobs));
	if (!q->cache_dir || !q->jobs || asprintf(&q->lost_dir, "%s/lost+found", cfg->cache_dir) < 0) {
		q->lost_dir = NULL;
		err = -ENOMEM;
		goto fail;
	}
	if (mkdir(q->cache_dir, 0700) < 0 && errno != EEXIST) {
		err = -errno;
		log_err("cannot create cache directory '%s': %s", q->cache_dir, strerror(-err));
		goto fail;
	}
	err = journal_open(q->cache_dir, &q->jn);
	if (!err)
		err = journal_load(q->jn, index_add, q);
	if (err)
		goto fail;
	if (q->files)
		log_info("upload journal: %u pending uploads (%" PRId64 " bytes) from an earlier run",
			 q->files, q->bytes);
	if (q->given_up)
		log_warn("upload journal: %u uploads were given up earlier; their content is in '%s'",
			 q->given_up, q->lost_dir);
	*out = q;
	return 0;
fail:
	upload_close(q);
	return err;
}

int upload_start(struct upload_queue *q)
{
	unsigned i;
	int err = 0;

	pthread_mutex_lock(&q->lock);
	if (q->started || q->stopping) {
		pthread_mutex_unlock(&q->lock);
		return -EALREADY;
	}
	q->started = true;
	pthread_mutex_unlock(&q->lock);
	for (i = 0; i < q->njobs; i++) {
		struct upload_job *job = &q->jobs[i];
		job->q = q;
		job->small_lane = i >= q->transfers;
		atomic_store(&job->resume, -1);
		err = -pthread_create(&job->thread, NULL, upload_worker_main, job);
		if (err) {
			log_err("cannot start upload worker: %s", strerror(-err));
			break;
		}
		pthread_mutex_lock(&q->lock);
		q->threads++;
		pthread_mutex_unlock(&q->lock);
	}
	/* some workers are better than none; fail only when none started */
	return q->threads ? 0 : err;
}

void upload_close(struct upload_queue *q)
{
	unsigned i, threads;
	struct waiter *w;

	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	for (i = 0; q->jobs && i < q->njobs; i++)
		if (q->jobs[i].active)
			atomic_store(&q->jobs[i].cancel, true);
	for (w = q->waiters; w; w = w->next)
		if (!w->done) {
			w->done = true;
			w->result = -EIO;
		}
	pthread_cond_broadcast(&q->work_cv);
	pthread_cond_broadcast(&q->idle_cv[0]);
	pthread_cond_broadcast(&q->idle_cv[1]);
	pthread_cond_broadcast(&q->state_cv);
	threads = q->threads;
	pthread_mutex_unlock(&q->lock);
	for (i = 0; i < threads; i++)
		pthread_join(q->jobs[i].thread, NULL);
	pthread_mutex_lock(&q->lock);
	while (q->callers)
		pthread_cond_wait(&q->state_cv, &q->lock);
	pthread_mutex_unlock(&q->lock);

	/* a last try for landed uploads whose records could not be cleared */
	pthread_mutex_lock(&q->db_lock);
	journal_close(q->jn);
	q->jn = NULL;
	pthread_mutex_unlock(&q->db_lock);
	tdestroy(q->index, free);
	pthread_cond_destroy(&q->work_cv);
	pthread_cond_destroy(&q->idle_cv[0]);
	pthread_cond_destroy(&q->idle_cv[1]);
	pthread_cond_destroy(&q->state_cv);
	pthread_mutex_destroy(&q->lock);
	pthread_mutex_destroy(&q->db_lock);
	free(q->jobs);
	free(q->lost_dir);
	free(q->cache_dir);
	free(q);
}

/* ---- the caller side ---- */

/*
 * The base to journal for @it (db_lock held). A generation confirmed at
 * its path rebases the newer ones already journalled (finish_done), and
 * its done callback tells the caller the new base; a generation enqueued
 * in between, with the base the confirmed one had, is rebased here. Else
 * a rewrite right after the end of an upload (after fsync, typically)
 * would find our own upload on the service and be taken for a conflict.
 */
static void landed_rebase(struct upload_queue *q, const struct upload_item *it,
			  const char **md5, int64_t *size)
{
	*md5 = it->base_md5;
	*size = it->base_size;
	for (unsigned i = 0; i < q->njobs; i++) {
		const struct upload_job *job = &q->jobs[i];

		if (!job->landed.set || job->landed.id != it->id || it->gen <= job->landed.gen ||
		    strcmp(job->landed.path, it->path) != 0 ||
		    job->landed.from_size != it->base_size ||
		    strcmp(job->landed.from_md5, it->base_md5) != 0)
			continue;
		*md5 = job->landed.to_md5;
		*size = job->landed.to_size;
		log_debug("upload of '%s': based on generation %" PRIu64 ", which just landed",
			  it->path, job->landed.gen);
		return;
	}
}

int upload_enqueue(struct upload_queue *q, const struct upload_item *it)
{
	const char *base_md5;
	int64_t base_size;
	struct upload_job *job;
	struct stat sb;
	int64_t mtime_ns, delay;
	uint64_t ticket;
	int n, err;

	if (!it || !upq_path_valid(it->path) || !it->content_file || it->content_file[0] != '/' ||
	    it->size < 0 || (it->md5[0] && !md5_hex_valid(it->md5)) || it->base_size < -1 ||
	    (it->base_size >= 0 ? !md5_hex_valid(it->base_md5) : it->base_md5[0] != '\0'))
		return -EINVAL;
	if (lstat(it->content_file, &sb) < 0) {
		err = -errno;
		log_err("cannot queue upload of '%s': content file '%s': %s", it->path,
			it->content_file, strerror(-err));
		return err;
	}
	if (!S_ISREG(sb.st_mode)) {
		log_err("cannot queue upload of '%s': content file '%s' is not a regular file",
			it->path, it->content_file);
		return -EINVAL;
	}
	if (sb.st_size != it->size) {
		/* written again since its commit (the caller knows whether a
		 * newer commit follows) */
		log_debug("upload of '%s': content file '%s' holds %" PRId64 " bytes, not %" PRId64,
			  it->path, it->content_file, (int64_t)sb.st_size, it->size);
		return -ESTALE;
	}
	mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;

	pthread_mutex_lock(&q->db_lock);
	landed_rebase(q, it, &base_md5, &base_size);
	delay = q->write_back_ms;
	if (it->size >= BIG_WRITE_BACK_MIN && delay > BIG_WRITE_BACK_MS)
		delay = BIG_WRITE_BACK_MS;
	n = journal_upsert(q->jn, it, base_md5, base_size, journal_now_ms() + delay,
			   (uint64_t)sb.st_ino, mtime_ns);
	if (n <= 0) {
		/* 0: the journal already holds a newer generation of this node */
		pthread_mutex_unlock(&q->db_lock);
		return n < 0 ? n : 0;
	}
	pthread_mutex_lock(&q->lock);
	err = upq_ment_set(q, it->id, it->gen, it->size, false);
	job = upq_job_of(q, it->id);
	if (job && job->gen != it->gen) {
		job->superseded = true;
		/* the running transfer reads a file that was rewritten in place: doomed */
		if (job->ino == (uint64_t)sb.st_ino &&
		    (job->size != it->size || job->mtime_ns != mtime_ns))
			atomic_store(&job->cancel, true);
	}
	upq_work_signal(q);
	pthread_mutex_unlock(&q->lock);
	ticket = journal_ticket(q->jn);
	pthread_mutex_unlock(&q->db_lock);
	/* durable before the caller's close() returns; the closes waiting
	 * meanwhile share one sync (group commit, journal.c). New times of
	 * content recorded already: with the next sync (journal_upsert). */
	if (!it->times_only && journal_sync(q->jn, ticket) < 0)
		err = -EIO;
	return err;
}

/* Start the uploads of @id (or of all un-attempted records when @all) now. */
static void bump(struct upload_queue *q, uint64_t id, bool all)
{
	int n;

	pthread_mutex_lock(&q->db_lock);
	n = journal_bump(q->jn, id, all);
	if (n > 0) {
		pthread_mutex_lock(&q->lock);
		upq_work_signal(q);
		pthread_mutex_unlock(&q->lock);
	}
	pthread_mutex_unlock(&q->db_lock);
}

int upload_wait(struct upload_queue *q, uint64_t id, uint64_t gen)
{
	struct waiter w = { .id = id, .gen = gen }, **pp;
	struct ment *e;
	int rc;

	if (upload_pending(q, id))
		bump(q, id, false);     /* fsync wants it now, not after the write-back delay */
	pthread_mutex_lock(&q->lock);
	e = upq_ment_get(q, id);
	if (q->stopping) {
		rc = -EIO;
	} else if (!e || e->gen < gen) {
		rc = 0;                 /* nothing pending at that generation */
	} else if (e->given_up) {
		rc = -EIO;
	} else {
		q->callers++;
		w.next = q->waiters;
		/* on this stack until unlinked below, before returning */
		/* cppcheck-suppress autoVariables */
		q->waiters = &w;
		while (!w.done)
			pthread_cond_wait(&q->state_cv, &q->lock);
		for (pp = &q->waiters; *pp != &w; pp = &(*pp)->next)
			;
		*pp = w.next;
		rc = w.result;
		if (--q->callers == 0)
			pthread_cond_broadcast(&q->state_cv);
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

int upload_cancel(struct upload_queue *q, uint64_t id)
{
	struct upload_job *job;
	uint64_t seq = 0;
	int n;

	pthread_mutex_lock(&q->db_lock);
	n = journal_cancel(q->jn, id);
	pthread_mutex_lock(&q->lock);
	if (n >= 0) {
		upq_ment_del(q, id);
		upq_waiters_resolve(q, id, 0, true, -ENOENT);
	}
	job = upq_job_of(q, id);
	if (job && n >= 0) {
		job->cancelled = true;
		seq = job->seq;
		atomic_store(&job->cancel, true);
	}
	pthread_mutex_unlock(&q->db_lock);
	if (job && n >= 0)
		job_wait_end(q, job, seq);
	pthread_mutex_unlock(&q->lock);
	return n < 0 ? n : 0;
}

int upload_rename(struct upload_queue *q, uint64_t id, const char *new_path, bool *touched)
{
	struct upload_job *job;
	uint64_t seq = 0;
	bool new_touched = !touched || *touched;
	int n;

	if (touched)
		*touched = true;
	if (!upq_path_valid(new_path))
		return -EINVAL;
	pthread_mutex_lock(&q->db_lock);
	n = journal_rename(q->jn, id, new_path);
	pthread_mutex_lock(&q->lock);
	if (n > 0) {
		struct ment *e = upq_ment_get(q, id);
		if (e && e->given_up)
			upq_ment_set(q, id, e->gen, e->size, false);
		if (e) {
			if (touched)
				*touched = e->touched;
			e->touched = new_touched;
		}
	}
	job = n > 0 ? upq_job_of(q, id) : NULL;
	if (job) {
		job->renamed = true;
		seq = job->seq;
		atomic_store(&job->cancel, true);
	}
	if (n > 0)
		upq_work_signal(q);
	pthread_mutex_unlock(&q->db_lock);
	if (job)
		job_wait_end(q, job, seq);
	pthread_mutex_unlock(&q->lock);
	return n < 0 ? n : 0;
}

int upload_rename_dir(struct upload_queue *q, const char *old_dir, const char *new_dir)
{
	uint64_t seqs[UPQ_JOBS_MAX];
	char *old_prefix = NULL, *new_prefix = NULL;
	uint64_t *ids = NULL;
	size_t olen, nids = 0;
	unsigned i;
	int n;

	if (!upq_path_valid(old_dir) || !upq_path_valid(new_dir))
		return -EINVAL;
	if (asprintf(&old_prefix, "%s/", old_dir) < 0)
		return -ENOMEM;
	if (asprintf(&new_prefix, "%s/", new_dir) < 0) {
		free(old_prefix);
		return -ENOMEM;
	}
	olen = strlen(old_prefix);
	pthread_mutex_lock(&q->db_lock);
	n = journal_rename_dir(q->jn, old_prefix, new_prefix);
	if (n > 0)      /* given-up records under it are pending again */
		journal_under(q->jn, new_prefix, &ids, &nids);
	pthread_mutex_lock(&q->lock);
	for (size_t k = 0; k < nids; k++) {
		struct ment *e = upq_ment_get(q, ids[k]);
		if (e && e->given_up)
			upq_ment_set(q, e->id, e->gen, e->size, false);
	}
	for (i = 0; i < q->njobs; i++) {
		struct upload_job *job = &q->jobs[i];
		seqs[i] = 0;
		if (n > 0 && job->active && job->path && strncmp(job->path, old_prefix, olen) == 0) {
			job->renamed = true;
			seqs[i] = job->seq;
			atomic_store(&job->cancel, true);
		}
	}
	if (n > 0)
		upq_work_signal(q);
	pthread_mutex_unlock(&q->db_lock);
	for (i = 0; i < q->njobs; i++)
		if (seqs[i])
			job_wait_end(q, &q->jobs[i], seqs[i]);
	pthread_mutex_unlock(&q->lock);
	free(ids);
	free(old_prefix);
	free(new_prefix);
	return n < 0 ? n : 0;
}

bool upload_pending(struct upload_queue *q, uint64_t id)
{
	struct ment *e;
	bool r;

	pthread_mutex_lock(&q->lock);
	e = upq_ment_get(q, id);
	r = e && !e->given_up;
	pthread_mutex_unlock(&q->lock);
	return r;
}

void upload_stats(struct upload_queue *q, unsigned *files, int64_t *bytes)
{
	pthread_mutex_lock(&q->lock);
	if (files)
		*files = q->files;
	if (bytes)
		*bytes = q->bytes;
	pthread_mutex_unlock(&q->lock);
}

/* Bytes the service holds of @job's content (q->lock held). */
static int64_t job_done(struct upload_job *job)
{
	int64_t resume = atomic_load(&job->resume);

	return resume < 0 ? 0 : resume + atomic_load(&job->sent);
}

int upload_state(struct upload_queue *q, uint64_t id, struct upload_state *out)
{
	struct ment *e;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&q->lock);
	e = upq_ment_get(q, id);
	if (e) {
		out->pending = !e->given_up;
		out->given_up = e->given_up;
		out->total = e->size;
		for (unsigned i = 0; i < q->njobs && out->pending; i++) {
			struct upload_job *job = &q->jobs[i];
			if (job->active && job->id == id) {
				out->running = true;
				out->done = job_done(job);
				out->total = job->size;
			}
		}
	}
	pthread_mutex_unlock(&q->lock);
	return e ? 0 : -ENOENT;
}

void upload_running(struct upload_queue *q, struct upload_xfer *v, size_t max, size_t *n)
{
	*n = 0;
	pthread_mutex_lock(&q->lock);
	for (unsigned i = 0; i < q->njobs && *n < max; i++) {
		struct upload_job *job = &q->jobs[i];
		if (!job->active || !job->path)
			continue;
		v[*n].path = strdup(job->path);
		if (!v[*n].path)
			break;
		v[*n].done = job_done(job);
		v[*n].total = job->size;
		(*n)++;
	}
	pthread_mutex_unlock(&q->lock);
}

unsigned upload_given_up(struct upload_queue *q)
{
	unsigned n;

	pthread_mutex_lock(&q->lock);
	n = q->given_up;
	pthread_mutex_unlock(&q->lock);
	return n;
}

void upload_resume(struct upload_queue *q)
{
	pthread_mutex_lock(&q->lock);
	if (q->paused_until) {
		q->paused_until = 0;
		q->pause_level = 0;
		log_info("uploads resumed");
		upq_work_signal(q);
	}
	pthread_mutex_unlock(&q->lock);
}

void upload_retry_now(struct upload_queue *q)
{
	int n;

	pthread_mutex_lock(&q->db_lock);
	n = journal_retry_now(q->jn);
	pthread_mutex_unlock(&q->db_lock);
	pthread_mutex_lock(&q->lock);
	if (n > 0)
		log_info("%d queued upload%s restarted now (retry delays reset)", n,
			 n == 1 ? "" : "s");
	upq_work_signal(q);
	pthread_mutex_unlock(&q->lock);
}

int upload_drain(struct upload_queue *q, unsigned timeout_s)
{
	int64_t start = clock_mono_ms(), end = start + (int64_t)timeout_s * 1000, next_log = start;
	int rc;

	bump(q, 0, true);
	pthread_mutex_lock(&q->lock);
	q->callers++;
	while (q->files && q->threads && !q->stopping) {
		int64_t now = clock_mono_ms(), until;
		struct timespec dl;

		if (now >= end)
			break;
		if (now >= next_log) {
			log_info("waiting for %u uploads (%" PRId64 " bytes) to finish", q->files,
				 q->bytes);
			next_log = now + DRAIN_LOG_MS;
		}
		until = next_log < end ? next_log : end;
		dl = clock_deadline_ms(until - now);
		pthread_cond_timedwait(&q->state_cv, &q->lock, &dl);
	}
	if (q->files) {
		log_warn("%u uploads (%" PRId64 " bytes) left in the journal; they resume at the "
			 "next mount", q->files, q->bytes);
		rc = -ETIMEDOUT;
	} else {
		rc = 0;
	}
	if (--q->callers == 0)
		pthread_cond_broadcast(&q->state_cv);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

