/*
 * net/jfs_xml_value.c — the text and value rules of the JFS XML decoders
 * (net/jfs_xml.h): bounded text buffers (JFS_XML_MAX_TEXT, memory
 * accounted), numbers, sizes, times and MD5s read as Go's encoding/xml
 * reads them for rclone, short tokens, and attribute lookup.
 */
#include "net/jfs_xml_int.h"

#include "net/jtime.h"

#include <errno.h>
#include <string.h>

/* ---------------------------------------------------------------------- */
/* Bounded text (lib/buf.h, with the decoder's memory accounted)           */

int jx_text_add(struct jfs_xml *x, struct buf *b, const char *s, size_t n)
{
	if (n > JFS_XML_MAX_TEXT || b->len > JFS_XML_MAX_TEXT - n) {
		jx_fail(x, -EIO, "text longer than %u bytes", JFS_XML_MAX_TEXT);
		return -EIO;
	}
	size_t before = b->cap;
	int err = buf_add(b, s, n);
	jx_account(x, before, b->cap);
	if (err) {
		jx_fail(x, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

int jx_text_set(struct jfs_xml *x, struct buf *b, const char *s, size_t n)
{
	jx_text_clear(b);
	return jx_text_add(x, b, s, n);
}

/* Empty @b, keeping its memory (and forgetting an out-of-memory error,
 * which failed the decoder when it happened). */
void jx_text_clear(struct buf *b)
{
	b->len = 0;
	b->err = 0;
	if (b->p)
		b->p[0] = '\0';
}

const char *jx_text_str(const struct buf *b)
{
	return b->p ? b->p : "";
}

void jx_text_release(struct jfs_xml *x, struct buf *b)
{
	jx_account(x, b->cap, 0);
	buf_free(b);
}

/* ---------------------------------------------------------------------- */
/* Values                                                                 */

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* The collected text; [*a, *b) is its part without surrounding white space. */
static const char *trimmed(const struct jfs_xml *x, size_t *a, size_t *b)
{
	const char *s = jx_text_str(&x->text);
	*a = 0;
	*b = x->text.len;
	while (*a < *b && is_space(s[*a]))
		(*a)++;
	while (*b > *a && is_space(s[*b - 1]))
		(*b)--;
	return s;
}

/*
 * An integer element as Go decodes it: empty is 0; otherwise surrounding
 * white space is trimmed and the rest must be an optionally signed decimal
 * that fits int64. Fails the decoder with -EIO.
 */
int jx_parse_i64(struct jfs_xml *x, const char *what, int64_t *out)
{
	const char *s = jx_text_str(&x->text);
	size_t len = x->text.len;
	if (len == 0) {
		*out = 0;
		return 0;
	}
	size_t a, b;
	trimmed(x, &a, &b);
	bool neg = false;
	if (a < b && (s[a] == '+' || s[a] == '-'))
		neg = s[a++] == '-';
	if (a == b)
		goto bad;
	int64_t v = 0;
	for (; a < b; a++) {
		if (s[a] < '0' || s[a] > '9')
			goto bad;
		int d = s[a] - '0';
		if (__builtin_mul_overflow(v, 10, &v) ||
		    (neg ? __builtin_sub_overflow(v, d, &v) : __builtin_add_overflow(v, d, &v)))
			goto bad;
	}
	*out = v;
	return 0;
bad:
	return jx_refuse(x, "bad number in <%s>", what);
}

/* A count or size: like parse_i64, and negative values are refused. */
int jx_parse_u63(struct jfs_xml *x, const char *what, int64_t *out)
{
	int64_t v = 0;
	if (jx_parse_i64(x, what, &v) < 0)
		return -EIO;
	if (v < 0)
		return jx_refuse(x, "negative value in <%s>", what);
	*out = v;
	return 0;
}

/* A file size: like parse_u63, and above JFS_SIZE_MAX is refused too. */
int jx_parse_size(struct jfs_xml *x, const char *what, int64_t *out)
{
	int64_t v = 0;
	if (jx_parse_u63(x, what, &v) < 0)
		return -EIO;
	if (v > JFS_SIZE_MAX)
		return jx_refuse(x, "<%s> above %lld bytes", what, (long long)JFS_SIZE_MAX);
	*out = v;
	return 0;
}

/* Time element: empty is 0 ("no time"); surrounding white space tolerated. */
int jx_parse_time(struct jfs_xml *x, bool rfc3339, const char *what, time_t *out)
{
	size_t a, b;
	const char *s = trimmed(x, &a, &b);
	if (a == b && x->text.len == 0) {
		*out = 0;
		return 0;
	}
	int err = rfc3339 ? jtime_parse_rfc3339(s + a, b - a, out)
			  : jtime_parse_jotta(s + a, b - a, out);
	if (err < 0)
		return jx_refuse(x, "bad time in <%s>", what);
	return 0;
}

/* MD5 element: "" (unknown) or 32 hex digits, stored lower-case. */
int jx_parse_md5(struct jfs_xml *x, char out[33])
{
	size_t a, b;
	const char *s = trimmed(x, &a, &b);
	if (a == b) {
		out[0] = '\0';
		return 0;
	}
	if (b - a != 32)
		goto bad;
	for (size_t i = 0; i < 32; i++) {
		char c = s[a + i];
		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			goto bad;
		out[i] = c;
	}
	out[32] = '\0';
	return 0;
bad:
	return jx_refuse(x, "bad <md5>");
}

/* Short token (revision state) into a fixed buffer; longer is -EIO. */
int jx_copy_token(struct jfs_xml *x, char *out, size_t size, const char *what)
{
	if (x->text.len >= size)
		return jx_refuse(x, "<%s> too long", what);
	memcpy(out, jx_text_str(&x->text), x->text.len + 1);
	return 0;
}

/* Copy at most @size - 1 bytes, cutting at a UTF-8 character boundary. */
void jx_copy_trunc(char *out, size_t size, const char *s, size_t len)
{
	if (len >= size) {
		len = size - 1;
		while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
			len--;
	}
	memcpy(out, s, len);
	out[len] = '\0';
}

/* ---------------------------------------------------------------------- */
/* Attributes                                                             */

/* Find attribute @name (local name) in expat's NULL-terminated list. */
const char *jx_attr(const XML_Char **atts, const char *name)
{
	for (size_t i = 0; atts[i]; i += 2)
		if (!strcmp(jx_local_name(atts[i]), name))
			return atts[i + 1];
	return NULL;
}
