/*
 * cache/lister.c — see lister.h.
 *
 * State (all protected by l->lock, signalled through l->cond):
 *   flights   listings in flight: a folder GET of one directory, or a
 *             liststream of a subtree (with its progress counter). Callers
 *             that need a directory join the flight that covers it.
 *   recent    a ring of the last directory reads (dir, parent, time), the
 *             input of walk detection.
 *   streamed  a ring of recently completed streams (root, time), so that a
 *             walk over a freshly streamed subtree does not stream it again.
 *   tasks     background work: revalidations and streams, run by workers.
 *
 * Lock order: l->lock is a leaf with respect to our other locks: it is
 * never held while calling meta, jfs or the changes callback.
 */
#include "cache/lister.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/meta.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/redact.h"
#include "net/jfs.h"
#include "net/names.h"

#define WALK_WINDOW_S   5.0     /* reads this close together form a walk */
#define RECENT_SLOTS    128
#define STREAMED_SLOTS  16
#define STALL_S         3       /* a stream without progress this long is given up on */
#define MAX_DEPTH       4096

struct flight {
	struct flight *next;
	uint64_t dir;               /* the folder, or the root of the stream */
	bool stream;
	bool done;
	int err;
	uint64_t progress;          /* stream: entries applied */
	unsigned refs;              /* owner + waiters */
};

struct recent {
	uint64_t dir, parent;
	double t;
};

struct task {
	struct task *next;
	uint64_t dir;
	struct flight *flight;      /* stream: the flight it runs (ref held) */
};

struct lister {
	struct lister_config cfg;

	pthread_mutex_t lock;       /* protects everything below */
	pthread_cond_t cond;        /* any flight progressed or ended */
	pthread_cond_t tcond;       /* task queued, or stop */
	struct flight *flights;
	unsigned nstreams;          /* stream flights in flight */
	struct recent recent[RECENT_SLOTS];
	unsigned recent_pos;
	struct { uint64_t dir; double t; } streamed[STREAMED_SLOTS];
	unsigned streamed_pos;
	struct task *thead, *ttail;
	bool stop;
	struct lister_stats stats;
	double last_stale_warning;

	pthread_t *workers;
	unsigned nworkers;
};

/* ---- converting service entries ----------------------------------------- */

/* A growable array of meta entries owning their strings. */
struct entries {
	struct meta_entry *v;
	size_t n, cap;
	int err;
	struct lister *l;
	uint64_t dir;               /* the listed folder */
	const char *path;           /* its server path, for messages */
	time_t t0;                  /* when the listing was requested */
};

static void entries_release(struct entries *es)
{
	for (size_t i = 0; i < es->n; i++) {
		free((char *)es->v[i].sname);
		free((char *)es->v[i].name);
	}
	free(es->v);
	memset(es, 0, sizeof(*es));
}

/*
 * Returns false for entries that are not shown: trash tombstones and files
 * without a completed revision (as rclone). A file with refused attributes
 * (e->bad) is shown: its name is listed, every access to it is EIO.
 */
static bool entry_visible(const struct jfs_entry *e)
{
	if (e->deleted)
		return false;
	if (e->bad)
		return true;
	if (!e->is_dir && !e->completed)
		return false;
	return true;
}

/* One line for a file whose attributes were refused: its server path is
 * @dir/@sub/@name (@dir, @sub may be ""), server text: capped and redacted. */
static void warn_bad(const char *dir, const char *sub, const char *name, const char *why)
{
	char path[1024], shown[320];

	snprintf(path, sizeof(path), "%s%s%s%s%s", dir, *dir ? "/" : "", sub, *sub ? "/" : "",
		 name);
	log_warn("listing: '%s': refused attributes from the service (%s): it answers EIO "
		 "until the service lists it correctly", redact_str(path, shown, sizeof(shown)),
		 why);
}

/* Decode @sname; *name malloc'd, *canonical set. 0 or -errno. */
static int decode_name(const char *sname, char **name, bool *canonical)
{
	char *enc = NULL;
	int err = names_decode(sname, name);

	if (err)
		return err;
	*canonical = names_encode(*name, strlen(*name), &enc) == 0 && !strcmp(enc, sname);
	free(enc);
	return 0;
}

/* Fill @me from service entry @e (copying nothing: names are set by the caller). */
static void fill_meta_entry(struct meta_entry *me, const struct jfs_entry *e)
{
	memset(me, 0, sizeof(*me));
	me->is_dir = e->is_dir;
	if (e->bad) {
		me->size = META_SIZE_BAD;       /* the decoder zeroed the rest */
		return;
	}
	me->size = e->size < 0 ? 0 : e->size;
	me->mtime = e->modified;
	me->created = e->created;
	me->updated = e->updated;
	me->has_updated = e->updated != 0;
	me->revision = e->revision;
	memcpy(me->md5, e->md5, sizeof(me->md5));
	me->md5[32] = '\0';
}

/* Is a delete of this entry pending (cfg.hide)? */
static bool hidden(struct lister *l, const char *dir, const char *sub, const char *sname,
		   time_t t0)
{
	return l->cfg.hide && l->cfg.hide(l->cfg.hide_ctx, dir, sub, sname, t0);
}

static int list_cb(void *ctx, const struct jfs_entry *e)
{
	struct entries *es = ctx;
	struct meta_entry *me;
	char *name, *sname;
	bool canonical;
	int err;

	if (!entry_visible(e) || hidden(es->l, es->path, "", e->name, es->t0))
		return 0;
	err = decode_name(e->name, &name, &canonical);
	if (err) {
		log_warn("listing: ignoring an entry with an unusable name: %s", strerror(-err));
		return err == -ENOMEM ? err : 0;
	}
	sname = strdup(e->name);
	if (!sname) {
		free(name);
		return -ENOMEM;
	}
	if (es->n == es->cap) {
		size_t cap = es->cap ? es->cap * 2 : 64;
		struct meta_entry *v = reallocarray(es->v, cap, sizeof(*v));
		if (!v) {
			free(name);
			free(sname);
			return -ENOMEM;
		}
		es->v = v;
		es->cap = cap;
	}
	me = &es->v[es->n++];
	fill_meta_entry(me, e);
	me->sname = sname;
	me->name = name;
	me->canonical = canonical;
	if (e->bad) {
		struct meta_attr a;

		/* Said once: not again at each revalidation while it stays bad. */
		if (meta_lookup(es->l->cfg.meta, es->dir, name, &a) || a.size != META_SIZE_BAD)
			warn_bad(es->path, "", e->name, e->bad);
		else
			log_debug("listing: a file in '%s' still has refused attributes (%s)",
				  es->path, e->bad);
	}
	return 0;
}

/* ---- flights ----------------------------------------------------------- */

static struct flight *flight_new(struct lister *l, uint64_t dir, bool stream)
{
	struct flight *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->dir = dir;
	f->stream = stream;
	f->refs = 1;
	f->next = l->flights;
	l->flights = f;
	if (stream)
		l->nstreams++;
	return f;
}

/* Drop a reference; the last one unlinks and frees. l->lock held. */
static void flight_unref(struct lister *l, struct flight *f)
{
	if (--f->refs)
		return;
	for (struct flight **p = &l->flights; *p; p = &(*p)->next) {
		if (*p == f) {
			*p = f->next;
			break;
		}
	}
	free(f);
}

/* Mark @f finished with @err and wake its waiters. l->lock held. */
static void flight_end(struct lister *l, struct flight *f, int err)
{
	f->done = true;
	f->err = err;
	if (f->stream) {
		l->nstreams--;
		if (!err) {
			l->streamed[l->streamed_pos % STREAMED_SLOTS].dir = f->dir;
			l->streamed[l->streamed_pos % STREAMED_SLOTS].t = clock_mono();
			l->streamed_pos++;
		}
	}
	pthread_cond_broadcast(&l->cond);
}

static struct flight *find_get(struct lister *l, uint64_t dir)
{
	for (struct flight *f = l->flights; f; f = f->next)
		if (!f->stream && !f->done && f->dir == dir)
			return f;
	return NULL;
}

/* The stream in flight whose root is one of @anc[0..n), or NULL. */
static struct flight *find_stream(struct lister *l, const uint64_t *anc, size_t n)
{
	for (struct flight *f = l->flights; f; f = f->next) {
		if (!f->stream || f->done)
			continue;
		for (size_t i = 0; i < n; i++)
			if (anc[i] == f->dir)
				return f;
	}
	return NULL;
}

/* ---- the requests ---------------------------------------------------------- */

static void deliver(struct lister *l, struct meta_changes *ch)
{
	if (ch->n && l->cfg.changes)
		l->cfg.changes(l->cfg.changes_ctx, ch);
	meta_changes_release(ch);
}

/* Log that a stale listing is served (at most every 30 s). */
static void warn_stale(struct lister *l, uint64_t dir, int err)
{
	double t = clock_mono();
	bool say;

	pthread_mutex_lock(&l->lock);
	/* offline: said once per outage by net/conn */
	say = err != -EHOSTDOWN && t - l->last_stale_warning > 30;
	if (say)
		l->last_stale_warning = t;
	pthread_mutex_unlock(&l->lock);
	if (say)
		log_warn("cannot refresh a listing (%s); serving what is cached", strerror(-err));
	(void)dir;
}

/*
 * One folder GET of @dir, applied to the index. The listing time recorded
 * is when the request was sent. 0 or -errno (-ENOENT: the folder is gone
 * and was removed from the index).
 */
static int do_list(struct lister *l, uint64_t dir)
{
	struct meta_changes ch = { 0 };
	struct entries es = { .l = l, .dir = dir };
	char *path = NULL;
	int err = 0;

	uint64_t gen = meta_gen_next(l->cfg.meta);
	time_t t0 = time(NULL);

	err = meta_path(l->cfg.meta, dir, &path);
	es.path = path;
	es.t0 = t0;
	if (!err) {
		pthread_mutex_lock(&l->lock);
		l->stats.lists++;
		pthread_mutex_unlock(&l->lock);
		err = jfs_list(l->cfg.jfs, path, list_cb, &es);
	}
	if (err == -ENOENT || err == -ENOTDIR) {
		log_debug("listing: '%s' is gone", path);
		if (dir != META_ROOT_ID && meta_remove(l->cfg.meta, dir, &ch) == 0)
			err = -ENOENT;
	} else if (!err) {
		err = meta_apply_listing(l->cfg.meta, dir, gen, es.v, es.n, t0, &ch);
	}
	entries_release(&es);
	free(path);
	deliver(l, &ch);
	return err;
}

/* Receives liststream entries for one stream flight. */
struct stream_ctx {
	struct lister *l;
	struct flight *f;
	struct meta_stream *st;
	uint64_t n;
	const char *root;           /* server path of the streamed folder */
	time_t t0;                  /* when the stream was requested */
};

static int stream_cb(void *ctx, const struct jfs_entry *e)
{
	struct stream_ctx *sc = ctx;
	struct meta_entry me;
	char *name = NULL;
	bool canonical = true;
	int err;

	if (!entry_visible(e))
		return 0;
	if (*e->name && hidden(sc->l, sc->root, e->parent ? e->parent : "", e->name, sc->t0))
		return 0;
	if (*e->name || (e->parent && *e->parent)) {
		err = decode_name(e->name, &name, &canonical);
		if (err) {
			log_warn("listing: ignoring an entry with an unusable name: %s",
				 strerror(-err));
			return err == -ENOMEM ? err : 0;
		}
	}
	fill_meta_entry(&me, e);
	me.sname = e->name;
	me.name = name ? name : "";
	me.canonical = canonical;
	if (e->bad)
		warn_bad(sc->root, e->parent ? e->parent : "", e->name, e->bad);
	err = meta_stream_add(sc->st, e->parent ? e->parent : "", &me);
	free(name);
	if (err)
		return err;
	if (++sc->n % 256 == 0) {
		pthread_mutex_lock(&sc->l->lock);
		sc->f->progress = sc->n;
		bool stop = sc->l->stop;
		pthread_cond_broadcast(&sc->l->cond);
		pthread_mutex_unlock(&sc->l->lock);
		if (stop)
			return -ECANCELED;
	}
	return 0;
}

/* Run the liststream of flight @f (a worker). */
static void do_stream(struct lister *l, struct flight *f)
{
	struct meta_changes ch = { 0 };
	struct stream_ctx sc = { .l = l, .f = f };
	uint64_t gen = meta_gen_next(l->cfg.meta);
	time_t t0 = time(NULL);
	double m0 = clock_mono();
	char *path = NULL;
	int err;

	err = meta_path(l->cfg.meta, f->dir, &path);
	sc.root = path;
	sc.t0 = t0;
	if (!err)
		err = meta_stream_begin(l->cfg.meta, f->dir, gen, &ch, &sc.st);
	if (!err) {
		pthread_mutex_lock(&l->lock);
		l->stats.streams++;
		pthread_mutex_unlock(&l->lock);
		err = jfs_liststream(l->cfg.jfs, path, stream_cb, &sc);
		int e2 = meta_stream_end(sc.st, err == 0, t0);
		if (!err)
			err = e2;
	}
	if (err == -ENOENT && f->dir != META_ROOT_ID)
		meta_remove(l->cfg.meta, f->dir, &ch);
	if (err && err != -EHOSTDOWN)   /* offline: said once by net/conn */
		log_warn("listing: recursive listing of '%s' failed: %s", path ? path : "?",
			 strerror(-err));
	else
		log_debug("listing: streamed '%s': %" PRIu64 " entries in %.2f s", path, sc.n,
			  clock_mono() - m0);
	free(path);
	deliver(l, &ch);
	pthread_mutex_lock(&l->lock);
	l->stats.stream_entries += sc.n;
	f->progress = sc.n;
	flight_end(l, f, err);
	flight_unref(l, f);
	pthread_mutex_unlock(&l->lock);
}

/* ---- background tasks ---------------------------------------------------- */

/* Queue a task; streams go first. l->lock held. */
static void task_push(struct lister *l, uint64_t dir, struct flight *f)
{
	struct task *t = calloc(1, sizeof(*t));

	if (!t) {
		if (f) {
			flight_end(l, f, -ENOMEM);
			flight_unref(l, f);
		}
		return;
	}
	t->dir = dir;
	t->flight = f;
	if (f) {
		t->next = l->thead;
		l->thead = t;
		if (!l->ttail)
			l->ttail = t;
	} else {
		if (l->ttail)
			l->ttail->next = t;
		else
			l->thead = t;
		l->ttail = t;
	}
	pthread_cond_signal(&l->tcond);
}

static bool task_queued(struct lister *l, uint64_t dir)
{
	for (struct task *t = l->thead; t; t = t->next)
		if (!t->flight && t->dir == dir)
			return true;
	return false;
}

/* Start a stream of @dir in the background; returns its flight (ref held
 * for the caller) or NULL. l->lock held. */
static struct flight *stream_start(struct lister *l, uint64_t dir)
{
	struct flight *f = flight_new(l, dir, true);

	if (!f)
		return NULL;
	f->refs++;              /* the task's */
	task_push(l, dir, f);
	return f;
}

static void *worker_main(void *arg)
{
	struct lister *l = arg;

	pthread_mutex_lock(&l->lock);
	for (;;) {
		struct task *t;

		while (!l->thead && !l->stop)
			pthread_cond_wait(&l->tcond, &l->lock);
		if (l->stop)
			break;
		t = l->thead;
		l->thead = t->next;
		if (!l->thead)
			l->ttail = NULL;
		pthread_mutex_unlock(&l->lock);
		if (t->flight)
			do_stream(l, t->flight);
		else
			lister_fresh(l, t->dir, LISTER_SYNC | LISTER_FORCE, NULL);
		free(t);
		pthread_mutex_lock(&l->lock);
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

/* ---- walk detection -------------------------------------------------------- */

static bool recent_dir(struct lister *l, uint64_t dir, double t)
{
	for (unsigned i = 0; i < RECENT_SLOTS; i++)
		if (l->recent[i].dir == dir && t - l->recent[i].t < WALK_WINDOW_S)
			return true;
	return false;
}

static bool recent_sibling(struct lister *l, uint64_t parent, uint64_t dir, double t)
{
	for (unsigned i = 0; i < RECENT_SLOTS; i++)
		if (l->recent[i].parent == parent && l->recent[i].dir != dir &&
		    t - l->recent[i].t < WALK_WINDOW_S)
			return true;
	return false;
}

static void recent_add(struct lister *l, uint64_t dir, uint64_t parent, double t)
{
	struct recent *r = &l->recent[l->recent_pos++ % RECENT_SLOTS];

	r->dir = dir;
	r->parent = parent;
	r->t = t;
}

/*
 * Is the cold read of @anc[0] part of a recursive walk? @anc holds the
 * directory and its ancestors up to the mount root. Returns the root of the
 * subtree to stream, or 0. l->lock held.
 */
static uint64_t walk_root(struct lister *l, const uint64_t *anc, size_t n)
{
	double t = clock_mono();
	size_t top;

	if (n < 2 || !recent_dir(l, anc[1], t))
		return 0;
	if (!(n >= 3 && recent_dir(l, anc[2], t)) && !recent_sibling(l, anc[1], anc[0], t))
		return 0;
	/* Climb while the walk came from above. */
	top = 1;
	while (top + 1 < n && recent_dir(l, anc[top + 1], t))
		top++;
	/* A subtree streamed moments ago is not streamed again. */
	for (unsigned i = 0; i < STREAMED_SLOTS; i++)
		for (size_t k = top; k < n; k++)
			if (l->streamed[i].dir == anc[k] && t - l->streamed[i].t < WALK_WINDOW_S * 4)
				return 0;
	return anc[top];
}

/* @dir and its ancestors up to the mount root (or the mountpoint root). */
static int ancestors(struct lister *l, uint64_t dir, uint64_t *anc, size_t max, size_t *n)
{
	*n = 0;
	while (*n < max) {
		struct meta_attr a;
		int err;

		anc[(*n)++] = dir;
		if (dir == l->cfg.root_id || dir == META_ROOT_ID)
			return 0;
		err = meta_get(l->cfg.meta, dir, &a);
		if (err)
			return err;
		dir = a.parent;
	}
	return 0;
}

/* With l->lock held: the 64 ancestors of @dir into @anc, unless *@have
 * says they were read already. The index is read with l->lock dropped, so
 * the caller looks again at what it saw under the lock. */
static int ancestors_once(struct lister *l, uint64_t dir, uint64_t *anc, size_t *nanc,
			  bool *have)
{
	if (*have)
		return 0;
	pthread_mutex_unlock(&l->lock);
	int err = ancestors(l, dir, anc, 64, nanc);
	pthread_mutex_lock(&l->lock);
	*have = !err;
	return err;
}

/* ---- the entry point ------------------------------------------------------- */

static bool is_fresh(const struct lister *l, const struct meta_attr *a, time_t now)
{
	return a->listed_at && (double)(now - a->listed_at) < l->cfg.dir_cache_time &&
	       now >= a->listed_at;
}

int lister_fresh(struct lister *l, uint64_t dir, int flags, bool *refreshed)
{
	uint64_t anc[64];
	size_t nanc = 0;
	bool have_anc = false;
	struct meta_attr a;
	int err;

	if (refreshed)
		*refreshed = false;
	err = meta_get(l->cfg.meta, dir, &a);
	if (err)
		return err;
	if (!a.is_dir)
		return -ENOTDIR;
	if (a.local == META_LOCAL_NEWDIR)
		return 0;       /* made here, not on the service yet: all it holds is here */
	if (flags & LISTER_READDIR) {
		pthread_mutex_lock(&l->lock);
		recent_add(l, dir, a.parent, clock_mono());
		pthread_mutex_unlock(&l->lock);
	}
	if (a.listed_at && a.listed_gen < l->cfg.session_gen && !(flags & LISTER_SYNC)) {
		/* Known from an earlier mount (however recent): serve it,
		 * revalidate it once in the background — a walk over such
		 * folders with one stream. */
		if (ancestors(l, dir, anc, 64, &nanc))
			nanc = 0;
		pthread_mutex_lock(&l->lock);
		if (!find_stream(l, anc, nanc)) {
			uint64_t root = (flags & LISTER_READDIR) ? walk_root(l, anc, nanc) : 0;
			struct flight *s = root ? stream_start(l, root) : NULL;
			if (s) {
				l->stats.walks++;
				flight_unref(l, s);
			} else if (!find_get(l, dir) && !task_queued(l, dir)) {
				task_push(l, dir, NULL);
			}
		}
		pthread_mutex_unlock(&l->lock);
		return 0;
	}

	if (!(flags & LISTER_FORCE) && is_fresh(l, &a, time(NULL)))
		return 0;
	pthread_mutex_lock(&l->lock);
	for (;;) {
		struct flight *f;

		if (l->nstreams && (err = ancestors_once(l, dir, anc, &nanc, &have_anc)))
			break;
		f = l->nstreams ? find_stream(l, anc, nanc) : NULL;
		if (f) {
			/* Wait for the stream while it makes progress. */
			uint64_t seen = f->progress;
			f->refs++;
			while (!f->done) {
				struct timespec ts = clock_deadline_ms(STALL_S * 1000);
				if (pthread_cond_timedwait(&l->cond, &l->lock, &ts) == ETIMEDOUT) {
					if (f->progress == seen)
						break;  /* stalled */
					seen = f->progress;
				}
			}
			bool ok = f->done && !f->err;
			flight_unref(l, f);
			if (ok) {
				pthread_mutex_unlock(&l->lock);
				err = meta_get(l->cfg.meta, dir, &a);
				if (err)
					return err;
				if (is_fresh(l, &a, time(NULL))) {
					if (refreshed)
						*refreshed = true;
					return 0;
				}
				pthread_mutex_lock(&l->lock);
			}
			/* Failed, stalled or did not cover it: list it ourselves. */
		}
		f = find_get(l, dir);
		if (f) {
			f->refs++;
			while (!f->done)
				pthread_cond_wait(&l->cond, &l->lock);
			err = f->err;
			flight_unref(l, f);
			if (!err && refreshed)
				*refreshed = true;
			break;
		}
		if ((flags & LISTER_READDIR) && !(flags & LISTER_SYNC)) {
			if (!have_anc) {
				if ((err = ancestors_once(l, dir, anc, &nanc, &have_anc)))
					break;
				continue;       /* a stream may have started meanwhile */
			}
			uint64_t root = walk_root(l, anc, nanc);
			if (root && !find_stream(l, anc, nanc)) {
				struct flight *s = stream_start(l, root);
				l->stats.walks++;
				log_debug("listing: recursive walk detected below node %" PRIu64, root);
				if (s) {
					flight_unref(l, s);
					continue;       /* wait for it above */
				}
			}
		}
		/* Our own folder GET. */
		f = flight_new(l, dir, false);
		if (!f) {
			err = -ENOMEM;
			break;
		}
		pthread_mutex_unlock(&l->lock);
		err = do_list(l, dir);
		pthread_mutex_lock(&l->lock);
		flight_end(l, f, err);
		flight_unref(l, f);
		if (!err && refreshed)
			*refreshed = true;
		break;
	}
	pthread_mutex_unlock(&l->lock);
	if (err && err != -ENOENT && err != -ENOTDIR && err != -ENOMEM && a.listed_at) {
		/* Unreachable, refused or broken: what we have beats an error. */
		warn_stale(l, dir, err);
		return 0;
	}
	if (err == -EKEYREJECTED)
		err = -EACCES;
	return err;
}

void lister_prefetch(struct lister *l, uint64_t dir)
{
	struct flight *f;

	pthread_mutex_lock(&l->lock);
	f = stream_start(l, dir);
	if (f)
		flight_unref(l, f);
	pthread_mutex_unlock(&l->lock);
}

int lister_resolve(struct lister *l, const char *subpath, uint64_t *id)
{
	uint64_t cur = META_ROOT_ID;
	const char *p = subpath;
	int err;

	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		struct meta_attr a;
		char *seg;

		if (len == 0) {
			p++;
			continue;
		}
		seg = strndup(p, len);
		if (!seg)
			return -ENOMEM;
		err = lister_fresh(l, cur, LISTER_SYNC, NULL);
		if (!err)
			err = meta_lookup(l->cfg.meta, cur, seg, &a);
		free(seg);
		if (err)
			return err;
		if (!a.is_dir)
			return -ENOTDIR;
		cur = a.id;
		p += len;
	}
	*id = cur;
	return 0;
}

void lister_stats(struct lister *l, struct lister_stats *out)
{
	pthread_mutex_lock(&l->lock);
	*out = l->stats;
	pthread_mutex_unlock(&l->lock);
}

int lister_new(const struct lister_config *cfg, struct lister **out)
{
	struct lister *l = calloc(1, sizeof(*l));

	*out = NULL;
	if (!l)
		return -ENOMEM;
	l->cfg = *cfg;
	if (!l->cfg.threads)
		l->cfg.threads = 3;
	pthread_mutex_init(&l->lock, NULL);
	clock_cond_init(&l->cond);          /* timed waits: CLOCK_MONOTONIC */
	pthread_cond_init(&l->tcond, NULL);
	l->last_stale_warning = -1e9;
	*out = l;
	return 0;
}

int lister_start(struct lister *l)
{
	l->workers = calloc(l->cfg.threads, sizeof(*l->workers));
	if (!l->workers)
		return -ENOMEM;
	for (unsigned i = 0; i < l->cfg.threads; i++) {
		int rc = pthread_create(&l->workers[i], NULL, worker_main, l);
		if (rc) {
			log_err("cannot start a listing worker: %s", strerror(rc));
			return -rc;
		}
		l->nworkers++;
	}
	return 0;
}

void lister_free(struct lister *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	l->stop = true;
	pthread_cond_broadcast(&l->tcond);
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	for (unsigned i = 0; i < l->nworkers; i++)
		pthread_join(l->workers[i], NULL);
	free(l->workers);
	while (l->thead) {
		struct task *t = l->thead;
		l->thead = t->next;
		if (t->flight) {
			flight_end(l, t->flight, -ECANCELED);
			flight_unref(l, t->flight);
		}
		free(t);
	}
	/* Flights left belong to callers that are gone (the session ended). */
	while (l->flights) {
		struct flight *f = l->flights;
		l->flights = f->next;
		free(f);
	}
	pthread_cond_destroy(&l->tcond);
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->lock);
	free(l);
}
