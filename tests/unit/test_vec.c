/*
 * tests/unit/test_vec.c — lib/vec: growing arrays.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "lib/vec.h"

struct item {
	int a;
	double b;
};

static void test_reserve(void **state)
{
	struct item *v = NULL;
	size_t n = 0, cap = 0;

	(void)state;
	for (int i = 0; i < 100; i++) {
		assert_int_equal(vec_reserve(&v, &cap, n, sizeof(*v), 4), 0);
		assert_true(cap > n);
		v[n++].a = i;
	}
	assert_int_equal(cap, 128);     /* 4 doubled */
	for (int i = 0; i < 100; i++)
		assert_int_equal(v[i].a, i);
	/* room left: nothing changes */
	assert_int_equal(vec_reserve(&v, &cap, 100, sizeof(*v), 4), 0);
	assert_int_equal(cap, 128);
	/* a size that overflows: refused, array kept */
	assert_int_equal(vec_reserve(&v, &cap, 128, SIZE_MAX / 64, 4), -ENOMEM);
	assert_int_equal(cap, 128);
	assert_int_equal(v[99].a, 99);
	free(v);
	/* first 0: one element */
	v = NULL;
	cap = 0;
	assert_int_equal(vec_reserve(&v, &cap, 0, sizeof(*v), 0), 0);
	assert_int_equal(cap, 1);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reserve),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
