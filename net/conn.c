/*
 * net/conn.c — see conn.h.
 *
 * The state machine (c->lock):
 *   success                      -> online (listeners run if it was offline)
 *   failure, online              -> degraded, a run starts (run_n 1, run_t0 now)
 *   failure, degraded            -> run_n++; run_n >= CONN_FAIL_RUN and
 *                                   now - run_t0 >= CONN_FAIL_SPAN_MS: one probe
 *                                   (single-flight) confirms -> offline; if the
 *                                   probe gets an answer, only some requests
 *                                   fail (a partial fault): online again
 *   failure, offline             -> stays offline (cause recorded)
 * The probe thread sleeps while not offline; offline, it waits
 * conn_probe_delay_ms(probes) and sends one probe, then doubles the wait.
 */
#include "net/conn.h"

#include "lib/clock.h"
#include "lib/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct listener {
	void (*cb)(void *ctx);
	void *ctx;
};

struct conn {
	pthread_mutex_t lock;
	pthread_cond_t cond;           /* state changed, or stopping */
	conn_clock_fn clock;           /* immutable */

	/* protected by lock */
	enum conn_state state;
	time_t since;
	int64_t since_ms;              /* clock() of the last state change */
	char last_error[128];
	uint64_t outages;
	unsigned run_n;                /* failures in the current run */
	int64_t run_t0;                /* clock() of its first failure */
	unsigned probes;               /* failed probes in this outage */
	bool confirming;               /* a probe checks a run of failures */
	bool verbose;                  /* log transitions (from conn_start on: before,
					  the mount says what happened) */
	struct listener listeners[CONN_MAX_LISTENERS];
	unsigned n_listeners;
	bool stopping;
	bool started;

	/* the probe thread */
	pthread_t thread;
	conn_probe_fn probe;
	void *probe_ctx;
};

int64_t conn_probe_delay_ms(unsigned probes)
{
	int64_t d = CONN_PROBE_MIN_MS;

	for (unsigned i = 0; i < probes && d < CONN_PROBE_MAX_MS; i++)
		d *= 2;
	return d < CONN_PROBE_MAX_MS ? d : CONN_PROBE_MAX_MS;
}

const char *conn_state_name(enum conn_state s)
{
	switch (s) {
	case CONN_ONLINE:   return "online";
	case CONN_DEGRADED: return "degraded";
	case CONN_OFFLINE:  return "offline";
	}
	return "?";
}

int conn_new(conn_clock_fn clock, struct conn **out)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	int err = clock_cond_init(&c->cond);
	if (err) {
		free(c);
		return err;
	}
	pthread_mutex_init(&c->lock, NULL);
	c->clock = clock ? clock : clock_mono_ms;
	c->state = CONN_ONLINE;
	c->since_ms = c->clock();
	*out = c;
	return 0;
}

void conn_free(struct conn *c)
{
	if (!c)
		return;
	conn_stop(c);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

int conn_on_online(struct conn *c, void (*cb)(void *ctx), void *ctx)
{
	int err = 0;

	pthread_mutex_lock(&c->lock);
	if (c->n_listeners < CONN_MAX_LISTENERS)
		c->listeners[c->n_listeners++] = (struct listener){ cb, ctx };
	else
		err = -ENOSPC;
	pthread_mutex_unlock(&c->lock);
	return err;
}

/* Change state (c->lock held). */
static void set_state(struct conn *c, enum conn_state s)
{
	c->state = s;
	c->since = time(NULL);
	c->since_ms = c->clock();
	pthread_cond_broadcast(&c->cond);
}

bool conn_admit(struct conn *c)
{
	pthread_mutex_lock(&c->lock);
	bool ok = c->state != CONN_OFFLINE;
	pthread_mutex_unlock(&c->lock);
	return ok;
}

enum conn_state conn_state(struct conn *c)
{
	pthread_mutex_lock(&c->lock);
	enum conn_state s = c->state;
	pthread_mutex_unlock(&c->lock);
	return s;
}

void conn_success(struct conn *c)
{
	struct listener ls[CONN_MAX_LISTENERS];
	unsigned n = 0;

	pthread_mutex_lock(&c->lock);
	c->run_n = 0;
	if (c->state == CONN_OFFLINE) {
		double away = (double)(c->clock() - c->since_ms) / 1000.0;
		if (c->verbose)
			log_info("service reachable again after %.1f s offline (%u probe%s); "
			 "resuming queued work", away, c->probes + 1, c->probes ? "s" : "");
		c->probes = 0;
		n = c->n_listeners;
		memcpy(ls, c->listeners, n * sizeof(ls[0]));
	} else if (c->state == CONN_DEGRADED) {
		log_debug("conn: the service answers again");
	}
	if (c->state != CONN_ONLINE)
		set_state(c, CONN_ONLINE);
	pthread_mutex_unlock(&c->lock);
	for (unsigned i = 0; i < n; i++)
		ls[i].cb(ls[i].ctx);
}

/* Go offline (c->lock held, not offline yet). */
static void go_offline(struct conn *c)
{
	c->outages++;
	c->probes = 0;
	set_state(c, CONN_OFFLINE);
	if (c->verbose)
		log_info("service unreachable (%s): offline; cached files and listings are served "
		 "locally, writes are queued, anything else fails with EHOSTDOWN until it is back",
		 c->last_error);
}

/*
 * A long run of failures (c->lock held, degraded): is the service gone, or
 * do only some requests fail? One probe decides (its own outcome is
 * reported by net/http: an answer makes it online); without a probe, or
 * when it fails, offline. Other threads meanwhile go on as degraded.
 */
static void confirm_offline(struct conn *c)
{
	if (!c->probe) {
		go_offline(c);
		return;
	}
	if (c->confirming)
		return;
	c->confirming = true;
	pthread_mutex_unlock(&c->lock);
	int err = c->probe(c->probe_ctx);
	pthread_mutex_lock(&c->lock);
	c->confirming = false;
	if (err && c->state == CONN_DEGRADED)
		go_offline(c);
	else if (!err)
		log_debug("conn: a run of failures, but the service answers: not offline");
}

void conn_failure(struct conn *c, const char *cause)
{
	pthread_mutex_lock(&c->lock);
	int64_t now = c->clock();
	snprintf(c->last_error, sizeof(c->last_error), "%s", cause ? cause : "unknown error");
	if (c->state == CONN_ONLINE) {
		log_debug("conn: degraded (%s)", c->last_error);
		set_state(c, CONN_DEGRADED);
	}
	if (c->state == CONN_DEGRADED) {
		if (c->run_n++ == 0)
			c->run_t0 = now;
		if (c->run_n >= CONN_FAIL_RUN && now - c->run_t0 >= CONN_FAIL_SPAN_MS)
			confirm_offline(c);
	}
	pthread_mutex_unlock(&c->lock);
}

void conn_set_offline(struct conn *c, const char *cause)
{
	pthread_mutex_lock(&c->lock);
	if (c->state != CONN_OFFLINE) {
		snprintf(c->last_error, sizeof(c->last_error), "%s",
			 cause ? cause : "unknown error");
		go_offline(c);
	}
	pthread_mutex_unlock(&c->lock);
}

void conn_get_info(struct conn *c, struct conn_info *out)
{
	pthread_mutex_lock(&c->lock);
	out->state = c->state;
	out->since = c->since;
	memcpy(out->last_error, c->last_error, sizeof(out->last_error));
	out->outages = c->outages;
	out->probes = c->probes;
	pthread_mutex_unlock(&c->lock);
}

/* ---- the probe thread ---- */

static void *probe_main(void *arg)
{
	struct conn *c = arg;

	pthread_mutex_lock(&c->lock);
	while (!c->stopping) {
		if (c->state != CONN_OFFLINE) {
			pthread_cond_wait(&c->cond, &c->lock);
			continue;
		}
		/* Wait out the delay; the real clock, whatever c->clock is. */
		uint64_t outage = c->outages;
		struct timespec dl = clock_deadline_ms(conn_probe_delay_ms(c->probes));
		int rc = 0;
		while (!c->stopping && c->state == CONN_OFFLINE && c->outages == outage && rc == 0)
			rc = pthread_cond_timedwait(&c->cond, &c->lock, &dl);
		if (c->stopping || c->state != CONN_OFFLINE || c->outages != outage)
			continue;
		pthread_mutex_unlock(&c->lock);
		int err = c->probe(c->probe_ctx);
		pthread_mutex_lock(&c->lock);
		if (err && c->state == CONN_OFFLINE && c->outages == outage) {
			c->probes++;
			log_debug("conn: probe %u failed (%s); next in %.0f s", c->probes,
				  strerror(-err), (double)conn_probe_delay_ms(c->probes) / 1000.0);
		}
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

enum conn_state conn_recheck(struct conn *c)
{
	pthread_mutex_lock(&c->lock);
	bool ask = c->state == CONN_OFFLINE && c->probe;
	pthread_mutex_unlock(&c->lock);
	if (ask)
		c->probe(c->probe_ctx);     /* an answer makes it online (net/http) */
	return conn_state(c);
}

void conn_set_probe(struct conn *c, conn_probe_fn probe, void *ctx)
{
	pthread_mutex_lock(&c->lock);
	c->probe = probe;
	c->probe_ctx = ctx;
	pthread_mutex_unlock(&c->lock);
}

int conn_start(struct conn *c, conn_probe_fn probe, void *ctx)
{
	int rc;

	conn_set_probe(c, probe, ctx);
	rc = pthread_create(&c->thread, NULL, probe_main, c);
	if (rc)
		return -rc;
	pthread_mutex_lock(&c->lock);
	c->started = true;
	c->verbose = true;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

void conn_stop(struct conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	bool started = c->started;
	c->started = false;
	c->stopping = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (started)
		pthread_join(c->thread, NULL);
}
