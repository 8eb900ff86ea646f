/*
 * tests/unit/test_http_gate.c — the HTTP client's throttle gate
 * (net/http_retry.c, "Throttling"): a 429 closes it to every attempt for its
 * delay, then lets half of what was in flight through, and answered
 * attempts open it again one by one up to HTTP_GATE_CEIL. Drives
 * http_gate_enter/leave directly and reads the client's gate fields; the
 * only time asserted is a lower bound on the monotonic clock the gate
 * itself waits on.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "unit.h"

#include "lib/clock.h"
#include "net/http_int.h"

static struct http_client *new_client(void)
{
	struct http_client *c = NULL;
	assert_int_equal(http_client_new(NULL, &c), 0);
	return c;
}

static void open_gate_admits_everything(void **state)
{
	struct http_client *c = new_client();

	for (int i = 0; i < 200; i++)
		assert_int_equal(http_gate_enter(c, NULL), 0);
	assert_int_equal(c->gate_inflight, 200);
	for (int i = 0; i < 200; i++)
		http_gate_leave(c, false, true, 0);
	assert_int_equal(c->gate_inflight, 0);
	assert_int_equal(c->gate_limit, 0);
	http_client_free(c);
}

static void throttle_waits_halves_and_recovers(void **state)
{
	struct http_client *c = new_client();
	int64_t t0;

	for (int i = 0; i < 8; i++)
		assert_int_equal(http_gate_enter(c, NULL), 0);
	/* a 429 with 8 attempts in flight: 150 ms for everybody, then 4 */
	t0 = clock_mono_ms();
	http_gate_leave(c, true, false, 150);
	assert_int_equal(c->gate_limit, 4);
	for (int i = 0; i < 7; i++)
		http_gate_leave(c, false, false, 0);      /* transport errors: no change */
	assert_int_equal(c->gate_limit, 4);
	assert_int_equal(c->gate_inflight, 0);

	assert_int_equal(http_gate_enter(c, NULL), 0);
	assert_true(clock_mono_ms() - t0 >= 150);
	for (int i = 0; i < 3; i++)
		assert_int_equal(http_gate_enter(c, NULL), 0);
	assert_int_equal(c->gate_inflight, 4);

	/* a second 429 while 4 run: the limit halves again, never below 1.
	 * (It is 4 unless this thread was held up for a whole step, 1 s,
	 * after the delay: then it doubled meanwhile.) */
	unsigned was = c->gate_limit ? c->gate_limit : 4;
	http_gate_leave(c, true, false, 0);
	assert_int_equal(c->gate_limit, was / 2);
	while (c->gate_limit > 2)
		http_gate_leave(c, true, false, 0);
	assert_int_equal(c->gate_limit, 2);
	http_gate_leave(c, true, false, 0);
	assert_int_equal(c->gate_limit, 1);
	http_gate_leave(c, true, false, 0);
	assert_int_equal(c->gate_limit, 1);

	/* answered attempts raise it by one each, until it is open */
	http_gate_leave(c, false, true, 0);
	assert_int_equal(c->gate_limit, 2);
	for (unsigned n = 2; n < HTTP_GATE_CEIL - 1; n++)
		http_gate_leave(c, false, true, 0);
	assert_int_equal(c->gate_limit, HTTP_GATE_CEIL - 1);
	http_gate_leave(c, false, true, 0);
	assert_int_equal(c->gate_limit, 0);
	http_client_free(c);
}

struct waiter_arg {
	struct http_client *c;
	atomic_bool cancel;
	int rc;
};

static void *waiter(void *p)
{
	struct waiter_arg *a = p;
	a->rc = http_gate_enter(a->c, &a->cancel);
	return NULL;
}

/* An attempt waiting at a closed gate is cancellable. */
static void closed_gate_is_cancellable(void **state)
{
	struct waiter_arg a = { .c = new_client(), .rc = 1 };
	pthread_t t;

	assert_int_equal(http_gate_enter(a.c, NULL), 0);
	http_gate_leave(a.c, true, false, 60000);
	atomic_init(&a.cancel, false);
	assert_int_equal(pthread_create(&t, NULL, waiter, &a), 0);
	atomic_store(&a.cancel, true);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(a.rc, -ECANCELED);
	assert_int_equal(a.c->gate_inflight, 0);
	http_client_free(a.c);
}

int main(void)
{
	struct CMUnitTest tests[] = {
		cmocka_unit_test(open_gate_admits_everything),
		cmocka_unit_test(throttle_waits_halves_and_recovers),
		cmocka_unit_test(closed_gate_is_cancellable),
	};

	return UNIT_MAIN(tests, NULL, NULL);
}
