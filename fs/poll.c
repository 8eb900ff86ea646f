/*
 * fs/poll.c — background revalidation of the directories in use (see
 * fs/poll.h). One thread; p->lock protects the watch list and is never
 * held across a request.
 */
#include "fs/poll.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/lister.h"
#include "cache/meta.h"
#include "fs/fs.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "net/conn.h"

struct watched {
	uint64_t dir;
	double last_read;       /* monotonic */
};

struct poller {
	struct fs *fs;
	double interval;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;   /* protects everything below */
	pthread_cond_t cond;
	bool stop;
	struct watched w[POLL_MAX_WATCHED];
	unsigned n;
	unsigned next;          /* round robin */
};

int poller_new(struct fs *fs, double interval, struct poller **out)
{
	struct poller *p;

	*out = NULL;
	if (interval <= 0)
		return 0;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->fs = fs;
	p->interval = interval;
	pthread_mutex_init(&p->lock, NULL);
	int err = clock_cond_init(&p->cond);
	if (err < 0) {
		pthread_mutex_destroy(&p->lock);
		free(p);
		return err;
	}
	*out = p;
	return 0;
}

void poller_note(struct poller *p, uint64_t dir)
{
	unsigned i, oldest = 0;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	for (i = 0; i < p->n && p->w[i].dir != dir; i++)
		if (p->w[i].last_read < p->w[oldest].last_read)
			oldest = i;
	if (i == p->n) {
		if (p->n < POLL_MAX_WATCHED)
			p->n++;
		else
			i = oldest;     /* the least recently read makes room */
		p->w[i].dir = dir;
	}
	p->w[i].last_read = clock_mono();
	pthread_mutex_unlock(&p->lock);
}

/* The next directory to revalidate, 0 for none; drops the stale ones. */
static uint64_t next_dir(struct poller *p, double now)
{
	uint64_t dir = 0;

	for (unsigned i = 0; i < p->n;) {
		if (now - p->w[i].last_read > POLL_WATCH_S) {
			p->w[i] = p->w[--p->n];
			continue;
		}
		i++;
	}
	if (p->n) {
		p->next %= p->n;
		dir = p->w[p->next++].dir;
	}
	return dir;
}

static void forget_dir(struct poller *p, uint64_t dir)
{
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->n; i++)
		if (p->w[i].dir == dir) {
			p->w[i] = p->w[--p->n];
			break;
		}
	pthread_mutex_unlock(&p->lock);
}

static void *poll_main(void *arg)
{
	struct poller *p = arg;
	struct timespec ts;

	pthread_mutex_lock(&p->lock);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	while (!p->stop) {
		double t = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + p->interval;
		ts.tv_sec = (time_t)t;
		ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
		while (!p->stop && pthread_cond_timedwait(&p->cond, &p->lock, &ts) != ETIMEDOUT)
			;
		if (p->stop)
			break;
		uint64_t dir = next_dir(p, clock_mono());
		if (!dir || (p->fs->conn && conn_state(p->fs->conn) == CONN_OFFLINE))
			continue;
		pthread_mutex_unlock(&p->lock);
		struct meta_attr a;
		int err = meta_get(p->fs->meta, dir, &a);
		/* Listed within the interval anyway (by a user's access): no need. */
		if (!err && a.listed_at && (double)(time(NULL) - a.listed_at + 1) < p->interval)
			err = 1;
		else if (!err || err == -ENOENT)
			err = lister_fresh(p->fs->ls, dir, LISTER_SYNC | LISTER_FORCE, NULL);
		if (err == -ENOENT || err == -ENOTDIR)
			forget_dir(p, dir);
		else if (err < 0)
			log_debug("poll: revalidating node %llu: %s", (unsigned long long)dir,
				  strerror(-err));
		pthread_mutex_lock(&p->lock);
		clock_gettime(CLOCK_MONOTONIC, &ts);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int poller_start(struct poller *p)
{
	int err;

	if (!p)
		return 0;
	err = -pthread_create(&p->thread, NULL, poll_main, p);
	p->started = !err;
	return err;
}

void poller_free(struct poller *p)
{
	if (!p)
		return;
	if (p->started) {
		pthread_mutex_lock(&p->lock);
		p->stop = true;
		pthread_cond_signal(&p->cond);
		pthread_mutex_unlock(&p->lock);
		pthread_join(p->thread, NULL);
	}
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
