/*
 * fs/notify.c — see notify.h. A FIFO of invalidations protected by n->lock
 * (a leaf lock, never held while talking to the kernel).
 */
#include "fs/notify.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

#define NOTIFY_MAX_QUEUED 100000

struct note {
	struct note *next;
	uint64_t ino;                   /* the inode, or the parent for an entry */
	bool entry;
	bool data;
	char name[];                    /* entry: the name */
};

struct notifier {
	pthread_mutex_t lock;           /* protects everything below */
	pthread_cond_t cond;            /* work queued, or stop */
	struct note *head, *tail;
	size_t queued;
	bool stop;
	bool overflow_logged;
	bool started;
	struct fuse_session *se;
	pthread_t thread;
};

int notifier_new(struct notifier **out)
{
	struct notifier *n = calloc(1, sizeof(*n));

	*out = NULL;
	if (!n)
		return -ENOMEM;
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->cond, NULL);
	*out = n;
	return 0;
}

static void *notifier_main(void *arg)
{
	struct notifier *n = arg;

	pthread_mutex_lock(&n->lock);
	for (;;) {
		struct note *x;
		int rc;

		while (!n->head && !n->stop)
			pthread_cond_wait(&n->cond, &n->lock);
		if (n->stop)
			break;
		x = n->head;
		n->head = x->next;
		if (!n->head)
			n->tail = NULL;
		n->queued--;
		pthread_mutex_unlock(&n->lock);
		if (x->entry)
			rc = fuse_lowlevel_notify_inval_entry(n->se, x->ino, x->name, strlen(x->name));
		else
			rc = fuse_lowlevel_notify_inval_inode(n->se, x->ino, x->data ? 0 : -1, 0);
		/* -ENOENT: the kernel does not know it (fine); -ENODEV: unmounting. */
		if (rc && rc != -ENOENT && rc != -ENODEV && rc != -ENOTCONN)
			log_debug("invalidation of inode %llu failed: %s",
				  (unsigned long long)x->ino, strerror(-rc));
		free(x);
		pthread_mutex_lock(&n->lock);
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

int notifier_start(struct notifier *n, struct fuse_session *se)
{
	int rc;

	n->se = se;
	rc = pthread_create(&n->thread, NULL, notifier_main, n);
	if (rc)
		return -rc;
	n->started = true;
	return 0;
}

void notifier_stop(struct notifier *n)
{
	pthread_mutex_lock(&n->lock);
	n->stop = true;
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->lock);
	if (n->started)
		pthread_join(n->thread, NULL);
	n->started = false;
}

void notifier_free(struct notifier *n)
{
	if (!n)
		return;
	notifier_stop(n);
	while (n->head) {
		struct note *x = n->head;
		n->head = x->next;
		free(x);
	}
	pthread_cond_destroy(&n->cond);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

static void enqueue(struct notifier *n, struct note *x)
{
	pthread_mutex_lock(&n->lock);
	if (n->stop || n->queued >= NOTIFY_MAX_QUEUED) {
		if (!n->stop && !n->overflow_logged) {
			log_warn("too many kernel cache invalidations queued; dropping some "
				 "(the kernel's caches expire by their timeouts)");
			n->overflow_logged = true;
		}
		pthread_mutex_unlock(&n->lock);
		free(x);
		return;
	}
	if (n->tail)
		n->tail->next = x;
	else
		n->head = x;
	n->tail = x;
	n->queued++;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
}

/* Queue one invalidation (dropped when memory runs out: the kernel's
 * timeouts still bound how long it keeps what it has). */
static void queue_note(struct notifier *n, uint64_t ino, const char *name, bool data)
{
	size_t len = name ? strlen(name) : 0;
	struct note *x = malloc(sizeof(*x) + len + 1);

	if (!x)
		return;
	x->next = NULL;
	x->ino = ino;
	x->entry = name != NULL;
	x->data = data;
	memcpy(x->name, name ? name : "", len + 1);
	enqueue(n, x);
}

void notifier_inval_entry(struct notifier *n, uint64_t parent, const char *name)
{
	queue_note(n, parent, name, false);
}

void notifier_inval_inode(struct notifier *n, uint64_t ino, bool data)
{
	queue_note(n, ino, NULL, data);
}
