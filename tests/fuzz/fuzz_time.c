/*
 * tests/fuzz/fuzz_time.c — libFuzzer target for net/jtime (the JottaTime and
 * RFC 3339 parsers and formatters).
 *
 * The input is parsed as JottaTime and as RFC 3339 (both are handed the
 * exact length: no NUL is needed, none is read past). A time that parses
 * must format again (unless its year left 0000-9999 through the zone
 * offset), and the formatted text must parse back to the same second in
 * both formats; an input that is already canonical (UTC "Z", no fraction)
 * must format to itself. The first 8 bytes are also read as a time_t and
 * formatted: formatting fails exactly when gmtime's year is outside
 * 0000-9999, and what it writes parses back to that time_t.
 *
 * Build: make fuzz
 * Run:   build-fuzz/fuzz/fuzz_time -dict=tests/fuzz/time.dict -max_total_time=60 \
 *          /tmp/corpus-time tests/fuzz/time_seeds
 */
#include "fuzz.h"
#include "net/jtime.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Is gmtime's year of @t within 0000-9999 (what the formatters accept)? */
static int year_ok(time_t t)
{
	struct tm tm;
	if (!gmtime_r(&t, &tm))
		return 0;
	long year = (long)tm.tm_year + 1900;
	return year >= 0 && year <= 9999;
}

/* Format @t both ways; when allowed, both texts must parse back to @t. */
static void round_trip(time_t t)
{
	char a[JTIME_BUFSZ], b[JTIME_BUFSZ], tiny[8];
	int ok = year_ok(t);
	int ra = jtime_format_jotta(t, a, sizeof(a));
	int rb = jtime_format_rfc3339(t, b, sizeof(b));
	CHECK(ra == (ok ? 0 : -ERANGE) && rb == ra);
	CHECK(jtime_format_jotta(t, tiny, sizeof(tiny)) == -ERANGE);
	if (!ok)
		return;
	CHECK(strlen(a) == 21 && strlen(b) == 20);
	time_t back = 0;
	CHECK(jtime_parse_jotta(a, strlen(a), &back) == 0 && back == t);
	back = 0;
	CHECK(jtime_parse_rfc3339(b, strlen(b), &back) == 0 && back == t);
	/* each format is refused by the other parser */
	CHECK(jtime_parse_rfc3339(a, strlen(a), &back) == -EINVAL);
	CHECK(jtime_parse_jotta(b, strlen(b), &back) == -EINVAL);
}

/* Parse @data with @parse; on success check the result against the text. */
static void check_parse(int (*parse)(const char *, size_t, time_t *),
			int (*format)(time_t, char *, size_t), const uint8_t *data,
			size_t size)
{
	/* a private copy without a terminator: ASan sees any over-read */
	char *s = malloc(size ? size : 1);
	CHECK(s != NULL);
	if (size)
		memcpy(s, data, size);
	time_t t = (time_t)0x5a5a5a5a;
	int rc = parse(s, size, &t);
	CHECK(rc == 0 || rc == -EINVAL);
	if (rc < 0) {
		CHECK(t == (time_t)0x5a5a5a5a); /* untouched on failure */
		free(s);
		return;
	}
	round_trip(t);
	char out[JTIME_BUFSZ];
	if (format(t, out, sizeof(out)) == 0 && memchr(s, 'Z', size) &&
	    !memchr(s, 't', size) && !memchr(s, '.', size) && !memchr(s, ',', size)) {
		/* canonical input: formats to itself */
		CHECK(strlen(out) == size && memcmp(out, s, size) == 0);
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_parse(jtime_parse_jotta, jtime_format_jotta, data, size);
	check_parse(jtime_parse_rfc3339, jtime_format_rfc3339, data, size);
	CHECK(jtime_parse_jotta(NULL, 0, &(time_t){ 0 }) == -EINVAL);

	int64_t raw = 0;
	memcpy(&raw, data, size < sizeof(raw) ? size : sizeof(raw));
	round_trip((time_t)raw);
	/* the same bits scaled into the range real files have (years 0-9999) */
	round_trip((time_t)(raw % 315569520000LL) - 62167219200LL);
	return 0;
}
