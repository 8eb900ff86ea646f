/*
 * Unit tests of net/jtime: JottaTime and RFC 3339 parsing and formatting
 * (jottacloud-api.md §5.3), vectors from the real samples.
 */
#include <stddef.h>
#include <stdint.h>
#include "unit.h"

#include <errno.h>
#include <string.h>

#include "net/jtime.h"

static time_t pj(const char *s)
{
	time_t t = -12345;
	assert_int_equal(jtime_parse_jotta(s, strlen(s), &t), 0);
	return t;
}

static time_t pr(const char *s)
{
	time_t t = -12345;
	assert_int_equal(jtime_parse_rfc3339(s, strlen(s), &t), 0);
	return t;
}

static void bad_j(const char *s)
{
	time_t t = 77;
	assert_int_equal(jtime_parse_jotta(s, strlen(s), &t), -EINVAL);
	assert_int_equal(t, 77);
}

static void bad_r(const char *s)
{
	time_t t = 77;
	assert_int_equal(jtime_parse_rfc3339(s, strlen(s), &t), -EINVAL);
	assert_int_equal(t, 77);
}

struct vec {
	const char *s;
	time_t t;
};

static void test_jotta_parse(void **state)
{
	(void)state;
	static const struct vec v[] = {
		/* 2018-07-05T15:08:02Z = 1530803282 (A.4 sample) */
		{ "2018-07-05-T15:08:02Z", 1530803282 },
		{ "1970-01-01-T00:00:00Z", 0 },
		{ "2024-03-04-T08:09:10Z", 1709539750 },
		/* zones: +hhmm (Go's Z0700) and the tolerated +hh:mm */
		{ "2018-07-05-T17:08:02+0200", 1530803282 },
		{ "2018-07-05-T17:08:02+02:00", 1530803282 },
		{ "2018-07-05-T10:38:02-0430", 1530803282 },
		/* fractional seconds are accepted and dropped */
		{ "2018-07-05-T15:08:02.999Z", 1530803282 },
		{ "2018-07-05-T15:08:02,5Z", 1530803282 },
		/* leap day, end of year, before the epoch */
		{ "2024-02-29-T00:00:00Z", 1709164800 },
		{ "1999-12-31-T23:59:59Z", 946684799 },
		{ "1969-12-31-T23:59:59Z", -1 },
		{ "0000-01-01-T00:00:00Z", -62167219200LL },
		{ "9999-12-31-T23:59:59Z", 253402300799LL },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		assert_int_equal(pj(v[i].s), v[i].t);
}

static void test_jotta_bad(void **state)
{
	(void)state;
	bad_j("");
	bad_j("2018-07-05T15:08:02Z");           /* RFC 3339, not JottaTime */
	bad_j("2018-07-05-T15:08:02");           /* no zone */
	bad_j("2018-07-05-T15:08:02z");          /* Go's Z0700 wants 'Z' */
	bad_j("2018-07-05-T15:08:02Z ");         /* trailing junk */
	bad_j(" 2018-07-05-T15:08:02Z");
	bad_j("18-07-05-T15:08:02Z");
	bad_j("2018-7-05-T15:08:02Z");
	bad_j("2018-13-05-T15:08:02Z");
	bad_j("2018-00-05-T15:08:02Z");
	bad_j("2018-02-29-T15:08:02Z");          /* not a leap year */
	bad_j("1900-02-29-T00:00:00Z");          /* not a leap year either */
	bad_j("2018-04-31-T15:08:02Z");
	bad_j("2018-07-00-T15:08:02Z");
	bad_j("2018-07-05-T24:00:00Z");
	bad_j("2018-07-05-T23:60:00Z");
	bad_j("2018-07-05-T23:59:60Z");          /* Go refuses leap seconds */
	bad_j("2018-07-05-T15:08:02+2400");
	bad_j("2018-07-05-T15:08:02+0060");
	bad_j("2018-07-05-T15:08:02+02");
	bad_j("2018-07-05-T15:08:02.Z");         /* a fraction needs a digit */
	bad_j("2018-07-05-T15:08:0xZ");
	bad_j("2018-07-05-T-5:08:02Z");
	bad_j("+018-07-05-T15:08:02Z");
	/* embedded NUL: the length is what counts */
	time_t t;
	assert_int_equal(jtime_parse_jotta("2018-07-05-T15:08:02Z\0", 22, &t), -EINVAL);
	assert_int_equal(jtime_parse_jotta(NULL, 0, &t), -EINVAL);
}

static void test_rfc3339_parse(void **state)
{
	(void)state;
	static const struct vec v[] = {
		{ "2026-11-23T14:16:44Z", 1795443404 }, { "2026-11-23T14:16:44.000Z", 1795443404 },
		{ "2021-11-30T10:21:05.123Z", 1638267665 }, { "2024-03-04T09:09:10+01:00", 1709539750 },
		{ "2024-03-04T03:39:10-04:30", 1709539750 }, { "2024-03-04t08:09:10z", 1709539750 },
		{ "2024-03-04T08:09:10.123456789Z", 1709539750 },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		assert_int_equal(pr(v[i].s), v[i].t);
	bad_r("2024-03-04-T08:09:10Z");          /* JottaTime */
	bad_r("2024-03-04T08:09:10");
	bad_r("2024-03-04T08:09:10+0100");       /* RFC 3339 wants hh:mm */
	bad_r("2024-03-04 08:09:10Z");
	bad_r("2024-03-04T08:09:10Zjunk");
	bad_r("2024-02-30T08:09:10Z");
	bad_r("2024-03-04T08:09");
}

static void test_format(void **state)
{
	(void)state;
	char buf[JTIME_BUFSZ];
	assert_int_equal(jtime_format_jotta(1530803282, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2018-07-05-T15:08:02Z");
	assert_int_equal(jtime_format_rfc3339(1795443404, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2026-11-23T14:16:44Z");
	assert_int_equal(jtime_format_rfc3339(0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
	assert_int_equal(jtime_format_jotta(-1, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1969-12-31-T23:59:59Z");
	/* out of range years and short buffers */
	assert_int_equal(jtime_format_rfc3339(253402300800LL, buf, sizeof(buf)), -ERANGE);
	assert_int_equal(jtime_format_rfc3339(-62167219201LL, buf, sizeof(buf)), -ERANGE);
	assert_int_equal(jtime_format_rfc3339(INT64_MAX, buf, sizeof(buf)), -ERANGE);
	assert_int_equal(jtime_format_rfc3339(0, buf, 20), -ERANGE);
	assert_int_equal(jtime_format_rfc3339(0, buf, 21), 0);
	/* round trips over a wide range */
	for (time_t t = -62167219200LL; t < 253402300799LL; t += 86400 * 397 + 3607) {
		time_t back;
		assert_int_equal(jtime_format_jotta(t, buf, sizeof(buf)), 0);
		assert_int_equal(jtime_parse_jotta(buf, strlen(buf), &back), 0);
		assert_int_equal(back, t);
		assert_int_equal(jtime_format_rfc3339(t, buf, sizeof(buf)), 0);
		assert_int_equal(jtime_parse_rfc3339(buf, strlen(buf), &back), 0);
		assert_int_equal(back, t);
	}
}

UNIT_TEST_PROGRAM(NULL, NULL,
	cmocka_unit_test(test_jotta_parse),
	cmocka_unit_test(test_jotta_bad),
	cmocka_unit_test(test_rfc3339_parse),
	cmocka_unit_test(test_format),
)
