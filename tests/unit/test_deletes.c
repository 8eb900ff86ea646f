/*
 * tests/unit/test_deletes.c — the background delete queue (cache/deletes.h)
 * against the emulator: a folder delete absorbs the queued deletes below
 * it, the journal outlives the queue (replayed by the next one), a flush
 * applies a pending delete at once and stops hiding the name, a delete of
 * something already gone counts as done; folder creations: one request for
 * a chain, none for one an upload made or one removed before it was sent,
 * the index hook told of each, a version 1 journal upgraded.
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

/* An upload's turn (delq_flush_above): the deletes at its path or at a
 * folder above it go first; a neighbour's delete and folder creations
 * (which uploads make anyway) stay queued. */
static void flush_above_for_uploads(void **state)
{
	struct delq *q;

	(void)state;
	seed("[{\"path\": \"up/old/f\", \"content\": \"f\"}, {\"path\": \"up/same\", \"content\": \"s\"},"
	     " {\"path\": \"up/oldx\", \"content\": \"x\"}]");
	q = open_q();           /* not started: only what the caller applies runs */
	assert_int_equal(delq_add(q, "up/old", true), 0);
	assert_int_equal(delq_add(q, "up/same", false), 0);
	assert_int_equal(delq_add(q, "up/oldx", false), 0);
	assert_int_equal(delq_mkdir(q, "up/made", 0), 0);
	assert_int_equal(delq_flush_above(q, "up/old/new/g.txt"), 0);
	assert_false(live("up/old"));
	assert_true(live("up/oldx"));
	assert_int_equal(delq_pending(q), 3);
	assert_int_equal(delq_flush_above(q, "UP/SAME"), 0);
	assert_false(live("up/same"));
	assert_int_equal(delq_pending(q), 2);
	assert_int_equal(delq_flush_above(q, "up/made/h.txt"), 0);
	assert_int_equal(delq_pending(q), 2);     /* up/oldx and the creation of up/made */
	assert_int_equal(stat_num("requests", "command"), 2);
	delq_close(q, 0);
}

/* Is @path a live folder on the emulator? */
static bool live_dir(const char *path)
{
	cJSON *e = tree_entry(path), *t;
	bool r = false;

	if (e) {
		t = cJSON_GetObjectItem(e, "type");
		r = live(path) && cJSON_IsString(t) && !strcmp(t->valuestring, "folder");
		cJSON_Delete(e);
	}
	return r;
}

static uint64_t made_nodes[16];
static unsigned nmade;

static void on_made(void *ctx, uint64_t node)
{
	(void)ctx;
	if (nmade < 16)
		made_nodes[nmade++] = node;
}

static struct delq *open_mq(void)
{
	struct delq_config c = { .cache_dir = cache_dir, .jfs = E.jfs, .workers = 2,
				 .made = on_made };
	struct delq *q = NULL;

	nmade = 0;
	assert_int_equal(delq_open(&c, &q), 0);
	return q;
}

static void wait_empty(struct delq *q)
{
	int64_t until = clock_mono_ms() + 20000;

	while (delq_pending(q) && clock_mono_ms() < until)
		unit_sleep_ms(50);
	assert_int_equal(delq_pending(q), 0);
}

static void mkdir_chain_one_request(void **state)
{
	struct delq *q;
	unsigned dels = 9, mks = 9;

	(void)state;
	q = open_mq();          /* not started: nothing is applied */
	assert_int_equal(delq_mkdir(q, "a", 11), 0);
	assert_int_equal(delq_mkdir(q, "a/b", 12), 0);
	assert_int_equal(delq_mkdir(q, "a/b/c", 13), 0);
	assert_int_equal(delq_mkdir(q, "gone", 14), 0);
	assert_int_equal(delq_mkdir(q, "up/loaded", 15), 0);
	assert_true(delq_mkdir_pending(q, 13));
	delq_counts(q, &dels, &mks);
	assert_int_equal(dels, 0);
	assert_int_equal(mks, 5);
	/* a pending folder is not hidden from listings */
	assert_false(delq_hides(q, "", "", "a", 0));
	delq_close(q, 0);

	q = open_mq();          /* replayed */
	assert_int_equal(delq_pending(q), 5);
	/* removed before it was sent: forgotten, no request */
	assert_int_equal(delq_unmake(q, "gone"), 1);
	/* an upload below it was confirmed: made already */
	delq_made(q, "up/loaded/file.txt");
	assert_int_equal(nmade, 1);
	assert_int_equal(made_nodes[0], 15);
	assert_int_equal(delq_pending(q), 3);
	assert_int_equal(delq_start(q), 0);
	wait_empty(q);
	assert_true(live_dir("a/b/c"));
	assert_false(live("gone"));
	assert_int_equal(stat_num("requests", "command"), 1);   /* a/b/c made them all */
	assert_int_equal(nmade, 4);
	delq_close(q, 0);
}

static void mkdir_flush_parents_and_unmake_below(void **state)
{
	struct delq *q;

	(void)state;
	seed("[{\"path\": \"s.txt\", \"content\": \"s\"}]");
	q = open_mq();
	assert_int_equal(delq_mkdir(q, "p", 1), 0);
	assert_int_equal(delq_mkdir(q, "p/q", 2), 0);
	/* something is moved into p/q: both made now, by one request */
	assert_int_equal(delq_flush_parents(q, "p/q/s.txt"), 0);
	assert_true(live_dir("p/q"));
	assert_int_equal(stat_num("requests", "command"), 1);
	assert_int_equal(delq_pending(q), 0);
	/* a delete queued below a folder never sent: the caller deletes it */
	assert_int_equal(delq_mkdir(q, "r", 3), 0);
	assert_int_equal(delq_add(q, "r/f.txt", false), 0);
	assert_int_equal(delq_unmake(q, "r"), 0);
	assert_int_equal(delq_add(q, "r", true), 0);            /* absorbs r/f.txt */
	assert_int_equal(delq_pending(q), 1);
	/* nothing queued for it: 0 as well */
	assert_int_equal(delq_unmake(q, "nothing"), 0);
	delq_close(q, 0);
}

static void journal_v1_upgraded(void **state)
{
	char path[512], cmd[1024];
	struct delq *q;

	(void)state;
	snprintf(path, sizeof(path), "%s/deletes.db", cache_dir);
	snprintf(cmd, sizeof(cmd), "sqlite3 '%s' \"CREATE TABLE del (seq INTEGER PRIMARY KEY "
		 "AUTOINCREMENT, path TEXT NOT NULL, is_dir INTEGER NOT NULL); INSERT INTO del "
		 "(path, is_dir) VALUES ('old.txt', 0); PRAGMA user_version = 1;\"", path);
	assert_int_equal(system(cmd), 0);
	q = open_mq();
	assert_int_equal(delq_pending(q), 1);
	assert_true(delq_hides(q, "", "", "old.txt", 0));
	assert_int_equal(delq_mkdir(q, "new", 7), 0);
	delq_close(q, 0);
	q = open_mq();
	assert_int_equal(delq_pending(q), 2);
	assert_true(delq_mkdir_pending(q, 7));
	delq_close(q, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(collapse_and_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(flush_applies_and_forgets, setup, teardown),
	cmocka_unit_test_setup_teardown(flush_above_for_uploads, setup, teardown),
		cmocka_unit_test_setup_teardown(mkdir_chain_one_request, setup, teardown),
		cmocka_unit_test_setup_teardown(mkdir_flush_parents_and_unmake_below, setup,
						teardown),
		cmocka_unit_test_setup_teardown(journal_v1_upgraded, setup, teardown),
	};

	log_setup(getenv("DELETES_TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_ERR, false);
	return UNIT_MAIN(tests, group_setup, group_teardown);
}
