/*
 * net/jtime.c — see jtime.h. Hand-written field parsing (a few fixed-width
 * digit groups) because strptime() depends on the locale and accepts
 * out-of-range values; timegm() then turns validated fields into epoch
 * seconds.
 */
#include "net/jtime.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

_Static_assert(sizeof(time_t) >= 8, "jtime needs a 64-bit time_t");

/* Cursor over the input: every reader checks the bounds. */
struct cur {
	const char *s;
	size_t len;
	size_t pos;
};

/* Read exactly @n decimal digits. */
static bool read_num(struct cur *c, unsigned n, int *out)
{
	if (c->len - c->pos < n)
		return false;
	int v = 0;
	for (unsigned i = 0; i < n; i++) {
		char ch = c->s[c->pos + i];
		if (ch < '0' || ch > '9')
			return false;
		v = v * 10 + (ch - '0');
	}
	c->pos += n;
	*out = v;
	return true;
}

static bool read_char(struct cur *c, char a, char b)
{
	if (c->pos >= c->len || (c->s[c->pos] != a && c->s[c->pos] != b))
		return false;
	c->pos++;
	return true;
}

/* Optional fractional seconds: '.' or ',' and at least one digit (dropped). */
static void skip_fraction(struct cur *c)
{
	if (c->len - c->pos < 2 || (c->s[c->pos] != '.' && c->s[c->pos] != ','))
		return;
	if (c->s[c->pos + 1] < '0' || c->s[c->pos + 1] > '9')
		return;
	c->pos++;
	while (c->pos < c->len && c->s[c->pos] >= '0' && c->s[c->pos] <= '9')
		c->pos++;
}

static bool is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* "YYYY-MM-DD" then @sep then "hh:mm:ss" (sep is "-T" for JottaTime, "T"
 * for RFC 3339) into a validated UTC epoch without the zone applied. */
static bool read_datetime(struct cur *c, bool jotta, time_t *out)
{
	int y, mo, d, h, mi, s;
	if (!read_num(c, 4, &y) || !read_char(c, '-', '-') || !read_num(c, 2, &mo) ||
	    !read_char(c, '-', '-') || !read_num(c, 2, &d))
		return false;
	if (jotta) {
		if (!read_char(c, '-', '-') || !read_char(c, 'T', 'T'))
			return false;
	} else if (!read_char(c, 'T', 't')) {
		return false;
	}
	if (!read_num(c, 2, &h) || !read_char(c, ':', ':') || !read_num(c, 2, &mi) ||
	    !read_char(c, ':', ':') || !read_num(c, 2, &s))
		return false;
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
	    s > 59)
		return false;
	struct tm tm = {
		.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
		.tm_hour = h, .tm_min = mi, .tm_sec = s,
	};
	*out = timegm(&tm);
	return true;
}

/* Zone offset in seconds east of UTC: 'Z' (and 'z' when !jotta), or a sign
 * followed by hh:mm (RFC 3339) or hhmm / hh:mm (JottaTime). */
static bool read_zone(struct cur *c, bool jotta, long *off)
{
	if (read_char(c, 'Z', jotta ? 'Z' : 'z')) {
		*off = 0;
		return true;
	}
	int sign;
	if (read_char(c, '+', '+'))
		sign = 1;
	else if (read_char(c, '-', '-'))
		sign = -1;
	else
		return false;
	int hh, mm;
	if (!read_num(c, 2, &hh))
		return false;
	bool colon = read_char(c, ':', ':');
	if (!colon && !jotta)
		return false;
	if (!read_num(c, 2, &mm) || hh > 23 || mm > 59)
		return false;
	*off = sign * (hh * 3600L + mm * 60L);
	return true;
}

static int parse(const char *s, size_t len, bool jotta, time_t *out)
{
	struct cur c = { .s = s, .len = len, .pos = 0 };
	time_t t;
	long off;
	if (!s || !read_datetime(&c, jotta, &t))
		return -EINVAL;
	skip_fraction(&c);
	if (!read_zone(&c, jotta, &off) || c.pos != c.len)
		return -EINVAL;
	*out = t - off;
	return 0;
}

int jtime_parse_jotta(const char *s, size_t len, time_t *out)
{
	return parse(s, len, true, out);
}

int jtime_parse_rfc3339(const char *s, size_t len, time_t *out)
{
	return parse(s, len, false, out);
}

static int format(time_t t, char *buf, size_t size, const char *sep)
{
	struct tm tm;
	if (!gmtime_r(&t, &tm))
		return -ERANGE;
	long year = (long)tm.tm_year + 1900;
	if (year < 0 || year > 9999)
		return -ERANGE;
	int n = snprintf(buf, size, "%04ld-%02d-%02d%s%02d:%02d:%02dZ", year, tm.tm_mon + 1,
			 tm.tm_mday, sep, tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (n < 0 || (size_t)n >= size)
		return -ERANGE;
	return 0;
}

int jtime_format_jotta(time_t t, char *buf, size_t size)
{
	return format(t, buf, size, "-T");
}

int jtime_format_rfc3339(time_t t, char *buf, size_t size)
{
	return format(t, buf, size, "T");
}
