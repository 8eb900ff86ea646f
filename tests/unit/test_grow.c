/*
 * Unit tests of lib/grow: array_grow() doubles from the first capacity,
 * leaves a roomy array alone and keeps what the array held.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>

#include "lib/grow.h"

struct item {
	int a;
	double b;
};

static void test_grows_and_keeps(void **state)
{
	(void)state;
	struct item *v = NULL;
	size_t n = 0, cap = 0;

	for (int i = 0; i < 100; i++) {
		assert_int_equal(array_grow(&v, &cap, n, sizeof(*v), 4), 0);
		assert_true(n < cap);
		v[n].a = i;
		v[n].b = i / 2.0;
		n++;
	}
	assert_int_equal(cap, 128);     /* 4, 8, ..., 128 */
	for (int i = 0; i < 100; i++) {
		assert_int_equal(v[i].a, i);
		assert_true(v[i].b == i / 2.0);
	}
	free(v);
}

static void test_room_left_is_a_no_op(void **state)
{
	(void)state;
	int *v = malloc(8 * sizeof(*v));
	int *before = v;
	size_t cap = 8;

	assert_non_null(v);
	assert_int_equal(array_grow(&v, &cap, 7, sizeof(*v), 4), 0);
	assert_ptr_equal(v, before);
	assert_int_equal(cap, 8);
	free(v);
}

static void test_overflow_is_enomem(void **state)
{
	(void)state;
	char *v = NULL;
	size_t cap = SIZE_MAX / 2 + 1;

	assert_int_equal(array_grow(&v, &cap, cap, 1, 4), -ENOMEM);
	assert_null(v);
	assert_int_equal(cap, SIZE_MAX / 2 + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grows_and_keeps),
		cmocka_unit_test(test_room_left_is_a_no_op),
		cmocka_unit_test(test_overflow_is_enomem),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
