/*
 * fs/itable.c — see itable.h. An open-addressing hash (linear probing,
 * backward-shift deletion, so no tombstones) of {ino, nlookup}, grown at
 * half load and never shrunk below its initial size.
 */
#include "fs/itable.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>

#include "lib/log.h"

struct islot {
	uint64_t ino;                   /* 0: free */
	uint64_t nlookup;
};

struct itable {
	pthread_mutex_t lock;           /* protects everything below */
	struct islot *v;
	size_t cap;                     /* power of two */
	size_t n;
};

static size_t slot_of(uint64_t ino, size_t cap)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ULL) >> 20) & (cap - 1);
}

int itable_new(struct itable **out)
{
	struct itable *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (!t)
		return -ENOMEM;
	t->cap = 1024;
	t->v = calloc(t->cap, sizeof(*t->v));
	if (!t->v) {
		free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	*out = t;
	return 0;
}

void itable_free(struct itable *t)
{
	if (!t)
		return;
	pthread_mutex_destroy(&t->lock);
	free(t->v);
	free(t);
}

/* Index of @ino's slot, or of the free slot where it would go. Lock held. */
static size_t find(const struct itable *t, uint64_t ino)
{
	size_t i = slot_of(ino, t->cap);

	while (t->v[i].ino && t->v[i].ino != ino)
		i = (i + 1) & (t->cap - 1);
	return i;
}

static int grow(struct itable *t)
{
	size_t cap = t->cap * 2;
	struct islot *v = calloc(cap, sizeof(*v)), *old = t->v;
	size_t oldcap = t->cap;

	if (!v)
		return -ENOMEM;
	t->v = v;
	t->cap = cap;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].ino)
			t->v[find(t, old[i].ino)] = old[i];
	free(old);
	return 0;
}

int itable_ref(struct itable *t, uint64_t ino)
{
	size_t i;
	int err = 0;

	pthread_mutex_lock(&t->lock);
	if ((t->n + 1) * 2 > t->cap)
		err = grow(t);
	if (!err) {
		i = find(t, ino);
		if (!t->v[i].ino) {
			t->v[i].ino = ino;
			t->n++;
		}
		t->v[i].nlookup++;
	}
	pthread_mutex_unlock(&t->lock);
	return err;
}

void itable_forget(struct itable *t, uint64_t ino, uint64_t n)
{
	size_t i, j, mask;

	pthread_mutex_lock(&t->lock);
	i = find(t, ino);
	if (!t->v[i].ino || t->v[i].nlookup < n) {
		log_err("internal error: forget of %" PRIu64 " references to inode %" PRIu64
			" which has %" PRIu64, n, ino, t->v[i].nlookup);
		abort();
	}
	t->v[i].nlookup -= n;
	if (t->v[i].nlookup) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	/* Backward-shift deletion keeps every probe chain unbroken. */
	mask = t->cap - 1;
	t->v[i].ino = 0;
	t->n--;
	for (j = (i + 1) & mask; t->v[j].ino; j = (j + 1) & mask) {
		size_t home = slot_of(t->v[j].ino, t->cap);
		/* Move v[j] into the hole at i when its home is not in (i, j]. */
		if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
			t->v[i] = t->v[j];
			t->v[j].ino = 0;
			t->v[j].nlookup = 0;
			i = j;
		}
	}
	pthread_mutex_unlock(&t->lock);
}

bool itable_known(struct itable *t, uint64_t ino)
{
	bool k;

	pthread_mutex_lock(&t->lock);
	k = t->v[find(t, ino)].ino == ino;
	pthread_mutex_unlock(&t->lock);
	return k;
}
