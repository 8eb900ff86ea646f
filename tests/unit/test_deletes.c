/*
 * tests/unit/test_deletes.c — the background delete queue (cache/deletes.h)
 * against the emulator: a folder delete absorbs the queued deletes below
 * it, the journal outlives the queue (replayed by the next one), a flush
 * applies a pending delete at once and stops hiding the name, a delete of
 * something already gone counts as done.
 *
 * Needs python3 (the emulator); JOTTAEMU overrides its path. If it cannot
 * start, the tests fail: they never skip. Never hangs (watchdog.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include "unit.h"

#include "cache/deletes.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "net/jfs.h"
#include "watchdog.h"

#define EMU_USER "deltest"
#define EMU_TMP "test_deletes"
#include "emu_fixture.h"

#define TEST_DEADLINE_S 60

static char cache_dir[400];

static int setup(void **state)
{
	static int n;

	(void)state;
	watchdog_arm(TEST_DEADLINE_S);
	snprintf(cache_dir, sizeof(cache_dir), "%s/dcache%d", E.root, ++n);
	assert_int_equal(mkdir(cache_dir, 0700), 0);
	cJSON_Delete(emu("POST", "stats/reset", "{}"));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	watchdog_arm(0);
	return 0;
}

static struct delq *open_q(void)
{
	struct delq_config c = { .cache_dir = cache_dir, .jfs = E.jfs, .workers = 2 };
	struct delq *q = NULL;

	assert_int_equal(delq_open(&c, &q), 0);
	return q;
}

/* Is @path on the emulator and not deleted? */
static bool live(const char *path)
{
	cJSON *e = tree_entry(path), *d;
	bool r;

	if (!e)
		return false;
	d = cJSON_GetObjectItem(e, "deleted");
	r = !d || cJSON_IsNull(d) || cJSON_IsFalse(d);
	cJSON_Delete(e);
	return r;
}

static void seed(const char *paths_json)
{
	cJSON_Delete(emu("POST", "seed", "{\"user\": \"%s\", \"entries\": %s}", EMU_USER,
			 paths_json));
}

static void collapse_and_replay(void **state)
{
	struct delq *q;

	(void)state;
	seed("[{\"path\": \"d/a\", \"content\": \"a\"}, {\"path\": \"d/b\", \"content\": \"b\"},"
	     " {\"path\": \"d/sub/c\", \"content\": \"c\"}, {\"path\": \"e/f\", \"content\": \"f\"}]");
	q = open_q();           /* not started: nothing is applied */
	assert_int_equal(delq_add(q, "d/a", false), 0);
	assert_int_equal(delq_add(q, "d/sub/c", false), 0);
	assert_int_equal(delq_add(q, "d/b", false), 0);
	assert_int_equal(delq_pending(q), 3);
	assert_int_equal(delq_add(q, "d/sub", true), 0);       /* absorbs d/sub/c */
	assert_int_equal(delq_pending(q), 3);
	assert_int_equal(delq_add(q, "d", true), 0);           /* absorbs the rest */
	assert_int_equal(delq_pending(q), 1);
	/* listings hide the tree (case-insensitive, as the service), not its neighbours */
	assert_true(delq_hides(q, "d", "", "a", 0));
	assert_true(delq_hides(q, "", "", "D", 0));
	assert_true(delq_hides(q, "d", "sub", "c", 0));
	assert_false(delq_hides(q, "", "", "e", 0));
	assert_false(delq_hides(q, "", "", "dd", 0));
	delq_close(q, 0);
	assert_true(live("d/a"));

	q = open_q();           /* the journal is replayed */
	assert_int_equal(delq_pending(q), 1);
	assert_true(delq_hides(q, "d", "", "b", 0));
	assert_int_equal(delq_start(q), 0);
	int64_t until = clock_mono_ms() + 20000;
	while (delq_pending(q) && clock_mono_ms() < until)
		unit_sleep_ms(50);
	assert_int_equal(delq_pending(q), 0);
	assert_false(live("d"));
	assert_true(live("e/f"));
	assert_int_equal(stat_num("requests", "command"), 1);
	/* confirmed just now: a listing requested before it still hides it */
	assert_true(delq_hides(q, "d", "", "a", time(NULL) - 5));
	delq_close(q, 0);
}

static void flush_applies_and_forgets(void **state)
{
	struct delq *q;

	(void)state;
	seed("[{\"path\": \"x.txt\", \"content\": \"x\"}]");
	q = open_q();
	assert_int_equal(delq_start(q), 0);
	assert_int_equal(delq_add(q, "x.txt", false), 0);
	assert_true(delq_hides(q, "", "", "x.txt", time(NULL)));
	/* a name made again: the pending delete goes first, in the caller */
	assert_int_equal(delq_flush(q, "X.TXT", true), 0);
	assert_int_equal(delq_pending(q), 0);
	assert_false(live("x.txt"));
	assert_int_equal(stat_num("requests", "command"), 1);
	assert_false(delq_hides(q, "", "", "x.txt", 0));
	assert_true(delq_idle(q));      /* nothing pending, nothing to hide */
	/* already gone on the service: done, not retried */
	assert_int_equal(delq_add(q, "never/there.txt", false), 0);
	assert_int_equal(delq_flush(q, "never/there.txt", false), 0);
	assert_int_equal(delq_pending(q), 0);
	delq_close(q, 0);
	q = open_q();
	assert_int_equal(delq_pending(q), 0);
	delq_close(q, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(collapse_and_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(flush_applies_and_forgets, setup, teardown),
	};

	log_setup(getenv("DELETES_TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_ERR, false);
	return UNIT_MAIN(tests, group_setup, group_teardown);
}
