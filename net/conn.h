/*
 * net/conn.h — the one notion of connectivity: is the service reachable?
 *
 * States:
 *   online    the last exchange with the service went well;
 *   degraded  the last exchanges failed at the connection level (refused,
 *             reset, timeout, DNS, TLS) or with 5xx, but not long enough
 *             to call the service gone: requests still go out (and are
 *             retried as usual);
 *   offline   a run of at least CONN_FAIL_RUN failures spanning at least
 *             CONN_FAIL_SPAN_MS with no success in between, confirmed by
 *             a probe that gets no answer either (when only some requests
 *             fail — one endpoint answering 503 — the service is there,
 *             and the state stays online/degraded). Requests are
 *             refused at once (net/http: -EHOSTDOWN) without touching the
 *             network; one probe at a time, with backoff (1 s doubling to
 *             4 s: cheap, and work resumes within seconds), decides when the service is back. Any success (a
 *             probe's, or a request's) makes it online again.
 * An occasional failure among successes never makes it offline: only a
 * run of them does, and a run that lasts.
 *
 * net/http reports every exchange (conn_success, conn_failure) and asks
 * conn_admit() before each; components above never discover an outage
 * with their own timeouts: they see -EHOSTDOWN and serve what is local.
 *
 * Transitions are logged at info level with their cause, from conn_start()
 * on (before it, at mount time, the caller says what happened). Listeners
 * registered with conn_on_online() run (on the thread that saw the
 * service come back, no lock held) when offline turns online, so that
 * queued work restarts at once.
 *
 * Threads: every function is thread-safe. c->lock is a leaf lock, never
 * held across a probe or a listener call.
 */
#ifndef JOTTAFS_NET_CONN_H
#define JOTTAFS_NET_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct conn;

enum conn_state { CONN_ONLINE, CONN_DEGRADED, CONN_OFFLINE };

/* A run of this many failures ... */
#define CONN_FAIL_RUN      4
/* ... spanning at least this long (first to last) means offline. */
#define CONN_FAIL_SPAN_MS  2000
/* Probe backoff while offline. */
#define CONN_PROBE_MIN_MS  1000
#define CONN_PROBE_MAX_MS  4000

/*
 * The probe: one cheap request to the service that bypasses the offline
 * check and is never retried (net/http: http_request.probe). Returns 0
 * when the service answered (any answer that is not a 5xx or outage
 * counts: the service is there), -errno otherwise. The probe's exchange
 * is reported by net/http like any other, so a success makes the state
 * online by itself.
 */
typedef int (*conn_probe_fn)(void *ctx);

/* Clock in ms (monotonic); NULL means CLOCK_MONOTONIC. For unit tests. */
typedef int64_t (*conn_clock_fn)(void);

int conn_new(conn_clock_fn clock, struct conn **out);
/* Stops the probe thread (conn_stop) and frees. */
void conn_free(struct conn *c);

/* The probe, also used (without the thread) to confirm a run of failures;
 * set it as soon as it can work. */
void conn_set_probe(struct conn *c, conn_probe_fn probe, void *ctx);
/* Set the probe and start the probe thread (after fork). 0 or -errno. */
int conn_start(struct conn *c, conn_probe_fn probe, void *ctx);
/* Stop the probe thread; waits for a probe in flight. NULL: nothing. */
void conn_stop(struct conn *c);

/* Called with no lock held when the state turns from offline to online.
 * At most CONN_MAX_LISTENERS; register before conn_start(). */
#define CONN_MAX_LISTENERS 4
int conn_on_online(struct conn *c, void (*cb)(void *ctx), void *ctx);

/* May a request go out now? false while offline. */
bool conn_admit(struct conn *c);
/* An exchange succeeded (the service answered, whatever the status,
 * except 5xx). */
void conn_success(struct conn *c);
/* An exchange failed at the connection level or with a 5xx; @cause is a
 * short text for the log and the status ("Connection refused", "HTTP 503"). */
void conn_failure(struct conn *c, const char *cause);
/* Go offline now (the mount found the service unreachable at start);
 * @cause is recorded unless it is offline already. */
void conn_set_offline(struct conn *c, const char *cause);

/*
 * Offline: send one probe now, from this thread, rather than wait for the
 * probe thread's next one (for an operation that would otherwise fail just
 * after the service came back, e.g. fsync). Returns the state after it.
 */
enum conn_state conn_recheck(struct conn *c);

/* For the status file and tests. */
struct conn_info {
	enum conn_state state;
	time_t since;              /* wall clock of the last state change (0: never changed) */
	char last_error[128];      /* cause of the last failure, "" when none */
	uint64_t outages;          /* times it went offline */
	unsigned probes;           /* probes sent in the current outage */
};
void conn_get_info(struct conn *c, struct conn_info *out);
enum conn_state conn_state(struct conn *c);
const char *conn_state_name(enum conn_state s);

/*
 * Pure parts, exposed for tests: the probe delay after @probes failed
 * probes (0 = the first probe of an outage): CONN_PROBE_MIN_MS doubling,
 * capped at CONN_PROBE_MAX_MS.
 */
int64_t conn_probe_delay_ms(unsigned probes);

#endif
