/*
 * tests/fuzz/fuzz_http_headers.c — libFuzzer target for the response
 * header decoding of net/http and net/jfs: the header line split
 * (http_header_value), the Content-Range check of a download
 * (jfs_content_range_check) and the Retry-After delay (http_retry_delay_ms;
 * libcurl itself turns the Retry-After header into seconds).
 *
 * The input is one header line as libcurl hands it over (not
 * NUL-terminated). Its Content-Range value (or, when it is another header,
 * the whole line) is checked against a strict reference reading written
 * here: "bytes " (any case), digits '-' digits '/' (digits or '*'), every
 * number within int64, a <= b < total. jfs_content_range_check must accept
 * exactly what the reference accepts for the ranges the value names
 * ([a, b], [a, to the end]) and give the body's length b - a + 1, and must
 * refuse a range that starts elsewhere. The first 16 bytes also give a
 * Retry-After and a backoff: the delay is the backoff without a
 * Retry-After, else the capped Retry-After plus at most a quarter.
 *
 * Build: make fuzz
 * Run:   build-fuzz/fuzz/fuzz_http_headers -dict=tests/fuzz/http_headers.dict \
 *          -max_total_time=60 /tmp/corpus-http tests/fuzz/http_headers_seeds
 */
#include "fuzz.h"
#include "net/http.h"
#include "net/jfs.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Decimal digits at *s into *out (int64, at least one digit). */
static int ref_num(const char **s, int64_t *out)
{
	const char *p = *s;
	int64_t v = 0;
	if (*p < '0' || *p > '9')
		return 0;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (INT64_MAX - (*p - '0')) / 10)
			return 0;
		v = v * 10 + (*p - '0');
	}
	*s = p;
	*out = v;
	return 1;
}

/* The reference reading of a Content-Range value. */
static int ref_content_range(const char *s, int64_t *a, int64_t *b, int64_t *total)
{
	if (strncasecmp(s, "bytes ", 6))
		return 0;
	s += 6;
	if (!ref_num(&s, a) || *s++ != '-' || !ref_num(&s, b) || *s++ != '/' || *b < *a)
		return 0;
	if (!strcmp(s, "*")) {
		*total = -1;
		return 1;
	}
	return ref_num(&s, total) && *s == '\0' && *total > *b;
}

static int is_blank_end(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void check_value(const char *line, size_t len, const char *name, char *v)
{
	size_t n = strlen(name);
	if (!v) {
		CHECK(len <= n || line[n] != ':' || strncasecmp(line, name, n));
		return;
	}
	CHECK(len > n && line[n] == ':' && !strncasecmp(line, name, n));
	size_t vl = strlen(v);
	CHECK(vl <= len - n - 1);
	/* (a NUL inside the line cuts the copy short: then it may end in a blank) */
	if (vl && !memchr(line + n + 1, '\0', len - n - 1)) {
		CHECK(v[0] != ' ' && v[0] != '\t');
		CHECK(!is_blank_end(v[vl - 1]));
		CHECK(memmem(line + n + 1, len - n - 1, v, vl) != NULL);
	}
}

static void check_range(const char *value)
{
	int64_t a = 0, b = 0, total = 0, expect = -7;
	int ok = ref_content_range(value, &a, &b, &total);
	if (!ok) {
		CHECK(jfs_content_range_check(value, 0, -1, &expect) == -EIO);
		CHECK(jfs_content_range_check(value, 0, 0, &expect) == -EIO);
		CHECK(jfs_content_range_check(value, 5, 99, &expect) == -EIO);
		CHECK(expect == -7);
		return;
	}
	/* exactly the range asked for */
	int rc = jfs_content_range_check(value, a, b, &expect);
	int64_t len;
	int fits = !__builtin_sub_overflow(b, a, &len) && !__builtin_add_overflow(len, 1, &len);
	if (fits) {
		CHECK(rc == 0 && expect == len);
	} else {
		CHECK(rc == -EIO); /* a body longer than any file */
	}
	/* to the end: accepted when it ends there */
	rc = jfs_content_range_check(value, a, -1, &expect);
	CHECK(rc == ((fits && (total < 0 || b == total - 1)) ? 0 : -EIO));
	/* asked for more than the file has: accepted only at the end of the file */
	if (b < INT64_MAX) {
		rc = jfs_content_range_check(value, a, b + 1, &expect);
		CHECK(rc == ((fits && total >= 0 && b == total - 1) ? 0 : -EIO));
	}
	/* another start: never */
	if (a > 0)
		CHECK(jfs_content_range_check(value, a - 1, b, &expect) == -EIO);
	if (a < INT64_MAX)
		CHECK(jfs_content_range_check(value, a + 1, b, &expect) == -EIO);
}

static void check_retry(const uint8_t *data, size_t size)
{
	int64_t ra = 0, backoff = 0;
	uint64_t rnd = 0;
	if (size >= 8)
		memcpy(&ra, data, 8);
	if (size >= 16)
		memcpy(&backoff, data + 8, 8);
	for (size_t i = 0; i < size && i < 24; i++)
		rnd = rnd * 131 + data[i];
	/* backoffs as http_backoff_ms gives them (0 .. a configured cap) */
	long b = http_backoff_ms(100, 16000, (unsigned)(backoff & 0xffff), (uint64_t)backoff);
	CHECK(b >= 0 && b <= 16000);
	long d = http_retry_delay_ms((long)ra, b, rnd);
	if (ra <= 0) {
		CHECK(d == b);
	} else {
		long want = ra > 60 ? 60000 : (long)ra * 1000;
		CHECK(d >= want && d <= want + want / 4);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the line, without a terminator: ASan sees any over-read */
	char *line = malloc(size ? size : 1);
	CHECK(line != NULL);
	if (size)
		memcpy(line, data, size);

	char *cr = http_header_value(line, size, "Content-Range");
	check_value(line, size, "Content-Range", cr);
	char *ra = http_header_value(line, size, "Retry-After");
	check_value(line, size, "Retry-After", ra);
	if (cr) {
		check_range(cr);
	} else {
		char *whole = strndup(line, size);
		CHECK(whole != NULL);
		check_range(whole);
		free(whole);
	}
	free(cr);
	free(ra);
	check_retry(data, size);
	free(line);
	return 0;
}
