/*
 * net/names.c — rclone's jottacloud name encoder, byte for byte
 * (shared/docs/jottacloud-api.md §11; rclone lib/encoder, mask
 * Slash|LtGt|DoubleQuote|Colon|Question|Asterisk|Pipe[|Percent]|Del|Ctl|
 * InvalidUtf8|Dot, NUL always).
 *
 * Threading: pure functions over their arguments, no shared state.
 *
 * Both directions are one left-to-right pass over the input with one heap
 * allocation for the result:
 *  - encode writes into a stack buffer that is large enough for any name
 *    within the limit (NAMES_MAX_UNITS UTF-16 units are at most 3 UTF-8 bytes
 *    each, and the encoder emits only valid UTF-8), gives up with
 *    -ENAMETOOLONG as soon as the limit is passed, then copies out the exact
 *    length. Work is bounded whatever the input length.
 *  - decode never produces more than 3 bytes per input byte (a raw '/' from
 *    the server becomes U+FF0F), so it allocates 3 * len + 1 once and gives
 *    the slack back with realloc when it is large. Bytes that cannot start
 *    a special character are copied without decoding them.
 *
 * Cost (x86-64, -O2): about 40-100 ns to encode and 70-130 ns to decode a
 * typical 20-30 byte name, malloc/free included.
 *
 * UTF-8 is read exactly as Go's `for range` reads a string: a byte that does
 * not start a valid, shortest-form sequence of a Unicode scalar value is a
 * one-byte error, and the next byte is examined afresh.
 */
#include "net/names.h"

#include "lib/utf8.h"

#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CP_INVALID UINT32_MAX  /* utf8_next(): the byte is not valid UTF-8 */
#define CP_QUOTE   0x201Bu     /* ‛ SINGLE HIGH-REVERSED-9 QUOTATION MARK */
#define CP_SYMBOL  0x2400u     /* ␀ SYMBOL FOR NULL, base of control pictures */
#define CP_DEL_SYM 0x2421u     /* ␡ SYMBOL FOR DELETE */
#define CP_FWDOT   0xFF0Eu     /* ． FULLWIDTH FULL STOP */
#define CP_FWSLASH 0xFF0Fu     /* ／ FULLWIDTH SOLIDUS */
#define FULL_OFF   0xFEE0u     /* ASCII + FULL_OFF = its FULLWIDTH form */

/* UTF-8 spellings used for whole-name comparisons. */
#define U8_FWDOT "\xEF\xBC\x8E" /* U+FF0E */
#define U8_QUOTE "\xE2\x80\x9B" /* U+201B */

/* Big enough for any encoded name of at most NAMES_MAX_UNITS units plus the
 * longest single emission (6 bytes: quote + 3-byte character). */
#define ENC_BUF (NAMES_MAX_UNITS * 3 + 8)

/*
 * What the encoder does with each ASCII byte (0 = copy it). The entry for
 * '%' is used only when the Percent class is enabled.
 */
static const uint16_t ascii_repl[128] = {
	[0x00] = CP_SYMBOL,
	[0x01] = CP_SYMBOL + 0x01, [0x02] = CP_SYMBOL + 0x02,
	[0x03] = CP_SYMBOL + 0x03, [0x04] = CP_SYMBOL + 0x04,
	[0x05] = CP_SYMBOL + 0x05, [0x06] = CP_SYMBOL + 0x06,
	[0x07] = CP_SYMBOL + 0x07, [0x08] = CP_SYMBOL + 0x08,
	[0x09] = CP_SYMBOL + 0x09, [0x0A] = CP_SYMBOL + 0x0A,
	[0x0B] = CP_SYMBOL + 0x0B, [0x0C] = CP_SYMBOL + 0x0C,
	[0x0D] = CP_SYMBOL + 0x0D, [0x0E] = CP_SYMBOL + 0x0E,
	[0x0F] = CP_SYMBOL + 0x0F, [0x10] = CP_SYMBOL + 0x10,
	[0x11] = CP_SYMBOL + 0x11, [0x12] = CP_SYMBOL + 0x12,
	[0x13] = CP_SYMBOL + 0x13, [0x14] = CP_SYMBOL + 0x14,
	[0x15] = CP_SYMBOL + 0x15, [0x16] = CP_SYMBOL + 0x16,
	[0x17] = CP_SYMBOL + 0x17, [0x18] = CP_SYMBOL + 0x18,
	[0x19] = CP_SYMBOL + 0x19, [0x1A] = CP_SYMBOL + 0x1A,
	[0x1B] = CP_SYMBOL + 0x1B, [0x1C] = CP_SYMBOL + 0x1C,
	[0x1D] = CP_SYMBOL + 0x1D, [0x1E] = CP_SYMBOL + 0x1E,
	[0x1F] = CP_SYMBOL + 0x1F,
	['"'] = '"' + FULL_OFF,
	['%'] = '%' + FULL_OFF,
	['*'] = '*' + FULL_OFF,
	['/'] = '/' + FULL_OFF,
	[':'] = ':' + FULL_OFF,
	['<'] = '<' + FULL_OFF,
	['>'] = '>' + FULL_OFF,
	['?'] = '?' + FULL_OFF,
	['|'] = '|' + FULL_OFF,
	[0x7F] = CP_DEL_SYM,
};

/*
 * Read one character from @s (@n > 0 bytes available) the way Go's
 * utf8.DecodeRune does (lib/utf8.h): stores the code point in *cp
 * (CP_INVALID for a byte that does not start a valid sequence) and returns
 * the number of bytes used (1 for an invalid byte).
 */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t k = utf8_decode(s, n, cp);
	if (k)
		return k;
	*cp = CP_INVALID;
	return 1;
}

/*
 * True when @cp is a character the encoder itself produces for the enabled
 * classes, so a literal one in a plain name must be quoted (and a quoted one
 * in a server name stands for itself). ␀ and ‛ are handled by the callers.
 */
static bool is_replacement(uint32_t cp, bool percent)
{
	if (cp >= CP_SYMBOL + 0x01 && cp <= CP_SYMBOL + 0x1F)
		return true;                            /* Ctl */
	switch (cp) {
	case CP_DEL_SYM:                                /* Del */
	case '"' + FULL_OFF:                            /* DoubleQuote */
	case '*' + FULL_OFF:                            /* Asterisk */
	case '/' + FULL_OFF:                            /* Slash */
	case ':' + FULL_OFF:                            /* Colon */
	case '<' + FULL_OFF: case '>' + FULL_OFF:       /* LtGt */
	case '?' + FULL_OFF:                            /* Question */
	case '|' + FULL_OFF:                            /* Pipe */
		return true;
	case '%' + FULL_OFF:                            /* Percent */
		return percent;
	default:
		return false;
	}
}

/* The plain byte that replacement character @cp stands for. Only called when
 * is_replacement(cp) is true. */
static unsigned char replacement_origin(uint32_t cp)
{
	if (cp == CP_DEL_SYM)
		return 0x7F;
	if (cp < FULL_OFF)
		return (unsigned char)(cp - CP_SYMBOL);
	return (unsigned char)(cp - FULL_OFF);
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Copy @len bytes of @src into a fresh NUL-terminated heap string. */
static int dup_out(const void *src, size_t len, char **out)
{
	char *p = malloc(len + 1);

	if (!p)
		return -ENOMEM;
	memcpy(p, src, len);
	p[len] = '\0';
	*out = p;
	return 0;
}

/*
 * Encode one name segment (@len bytes at @posix, may hold any byte) with
 * the Percent class on or off. On success *out is a malloc'd string the
 * caller frees. Returns 0, -EINVAL (empty name), -ENOMEM or -ENAMETOOLONG.
 */
static int encode(const char *posix, size_t len, bool percent, char **out)
{
	const unsigned char *s = (const unsigned char *)posix;
	unsigned char buf[ENC_BUF];
	size_t o = 0, units = 0;
	static const char hex[] = "0123456789ABCDEF";

	*out = NULL;
	if (len == 0)
		return -EINVAL;

	/* Dot: only the exact whole names. */
	if (len == 1 && s[0] == '.')
		return dup_out(U8_FWDOT, 3, out);
	if (len == 2 && s[0] == '.' && s[1] == '.')
		return dup_out(U8_FWDOT U8_FWDOT, 6, out);
	if (len == 3 && memcmp(s, U8_FWDOT, 3) == 0)
		return dup_out(U8_QUOTE U8_FWDOT, 6, out);
	if (len == 6 && memcmp(s, U8_FWDOT U8_FWDOT, 6) == 0)
		return dup_out(U8_QUOTE U8_FWDOT U8_QUOTE U8_FWDOT, 12, out);

	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		uint32_t cp;
		size_t n;

		if (c < 0x80) {
			/* Fast path: ASCII maps to itself or one symbol. */
			uint32_t r = ascii_repl[c];

			if (r == 0 || (c == '%' && !percent))
				buf[o++] = c;
			else
				o += utf8_encode(r, (char *)(buf + o));
			units++;
			i++;
		} else if ((n = utf8_next(s + i, len - i, &cp)) == 1 &&
			   cp == CP_INVALID) {
			/* InvalidUtf8: ‛ and two upper-case hex digits. */
			o += utf8_encode(CP_QUOTE, (char *)(buf + o));
			buf[o++] = (unsigned char)hex[c >> 4];
			buf[o++] = (unsigned char)hex[c & 0x0F];
			units += 3;
			i++;
		} else {
			if (cp == CP_QUOTE || cp == CP_SYMBOL ||
			    is_replacement(cp, percent)) {
				o += utf8_encode(CP_QUOTE, (char *)(buf + o));
				units++;
			}
			memcpy(buf + o, s + i, n);
			o += n;
			units += n == 4 ? 2 : 1;  /* 4 bytes = surrogate pair */
			i += n;
		}
		if (units > NAMES_MAX_UNITS)
			return -ENAMETOOLONG;
	}
	return dup_out(buf, o, out);
}

int names_encode(const char *posix, size_t len, char **out)
{
	return encode(posix, len, true, out);
}

int names_encode_legacy(const char *posix, size_t len, char **out)
{
	return encode(posix, len, false, out);
}

/* Append plain byte @b to the decoder output at @p; in POSIX mode the two
 * bytes a name cannot hold are shown as rclone's local backend shows them. */
static size_t put_plain(unsigned char *p, unsigned char b, bool posix)
{
	if (posix && b == '/')
		return utf8_encode(CP_FWSLASH, (char *)p);
	if (posix && b == '\0')
		return utf8_encode(CP_SYMBOL, (char *)p);
	p[0] = b;
	return 1;
}

/*
 * Decode server name @server with the HEAD set, exactly as rclone's
 * MultiEncoder.Decode does. With @posix, '/' and NUL in the result are
 * replaced by U+FF0F and U+2400 and a result of "." or ".." by U+FF0E /
 * U+FF0E U+FF0E, so that it is a valid POSIX name. *out is malloc'd and
 * NUL-terminated; *out_len (if not NULL) gets its length, which in raw mode
 * may count NUL bytes. Returns 0, -EINVAL (empty name) or -ENOMEM.
 */
static int decode(const char *server, bool posix, char **out, size_t *out_len)
{
	const unsigned char *s = (const unsigned char *)server;
	size_t len = strlen(server), cap, o = 0;
	unsigned char *p;
	bool quote_next = false;

	*out = NULL;
	if (len == 0)
		return -EINVAL;
	/* Each input byte gives at most 3 output bytes: a raw '/' turns into
	 * U+FF0F, a whole "." into U+FF0E; everything else shrinks or stays. */
	if (__builtin_mul_overflow(len, 3, &cap) ||
	    __builtin_add_overflow(cap, 1, &cap))
		return -ENOMEM;
	p = malloc(cap);
	if (!p)
		return -ENOMEM;

	/* Dot: only the exact whole names. */
	if (len == 3 && memcmp(s, U8_FWDOT, 3) == 0) {
		o = put_plain(p, '.', false);
	} else if (len == 6 && memcmp(s, U8_FWDOT U8_FWDOT, 6) == 0) {
		o = put_plain(p, '.', false);
		o += put_plain(p + o, '.', false);
	} else if (len == 6 && memcmp(s, U8_QUOTE U8_FWDOT, 6) == 0) {
		o = utf8_encode(CP_FWDOT, (char *)p);
	} else if (len == 12 &&
		   memcmp(s, U8_QUOTE U8_FWDOT U8_QUOTE U8_FWDOT, 12) == 0) {
		o = utf8_encode(CP_FWDOT, (char *)p);
		o += utf8_encode(CP_FWDOT, (char *)(p + o));
	} else {
		for (size_t i = 0; i < len;) {
			bool quoted = quote_next;
			uint32_t cp;
			size_t n;
			int h1, h2;

			/*
			 * Fast path: every character the decoder acts on
			 * starts with 0xE2 (‛, ␀-␡) or 0xEF (the FULLWIDTH
			 * forms), and such a lead byte is never swallowed by
			 * the sequence before it, so any other byte that is
			 * not right after a quote is copied as is.
			 */
			if (!quoted && s[i] != 0xE2 && s[i] != 0xEF) {
				o += put_plain(p + o, s[i], posix);
				i++;
				continue;
			}
			n = utf8_next(s + i, len - i, &cp);
			quote_next = false;
			if (cp == CP_SYMBOL) {
				o += quoted ? utf8_encode(cp, (char *)(p + o))
					    : put_plain(p + o, 0, posix);
			} else if (cp == CP_QUOTE) {
				if (quoted)
					o += utf8_encode(cp, (char *)(p + o));
				else
					quote_next = true;
			} else if (is_replacement(cp, true)) {
				o += quoted ? utf8_encode(cp, (char *)(p + o))
					    : put_plain(p + o, replacement_origin(cp), posix);
			} else if (quoted && i + 1 < len &&
				   (h1 = hexval(s[i])) >= 0 &&
				   (h2 = hexval(s[i + 1])) >= 0) {
				/* ‛XX: one raw byte (InvalidUtf8). */
				o += put_plain(p + o, (unsigned char)(h1 << 4 | h2), posix);
				n = 2;
			} else {
				/* Anything else is copied; a quote before it
				 * was not a quote after all. */
				if (quoted)
					o += utf8_encode(CP_QUOTE, (char *)(p + o));
				if (n == 1)
					o += put_plain(p + o, s[i], posix);
				else {
					memcpy(p + o, s + i, n);
					o += n;
				}
			}
			i += n;
		}
		if (quote_next)
			o += utf8_encode(CP_QUOTE, (char *)(p + o));
	}

	if (posix && o == 1 && p[0] == '.') {
		o = utf8_encode(CP_FWDOT, (char *)p);
	} else if (posix && o == 2 && p[0] == '.' && p[1] == '.') {
		o = utf8_encode(CP_FWDOT, (char *)p);
		o += utf8_encode(CP_FWDOT, (char *)(p + o));
	}
	if (o == 0) {           /* cannot happen: every input byte emits */
		free(p);
		return -EINVAL;
	}
	p[o] = '\0';
	if (cap - o > 64) {     /* long-lived in the inode table: trim */
		unsigned char *q = realloc(p, o + 1);

		if (q)
			p = q;
	}
	*out = (char *)p;
	if (out_len)
		*out_len = o;
	return 0;
}

int names_decode(const char *server, char **out)
{
	return decode(server, true, out, NULL);
}

int names_decode_raw(const char *server, char **out, size_t *out_len)
{
	return decode(server, false, out, out_len);
}

size_t names_utf16_units(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t units = 0;

	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = u[i] < 0x80 ? 1 : utf8_next(u + i, len - i, &cp);

		units += n == 4 ? 2 : 1;
		i += n;
	}
	return units;
}

int names_insert_tag(const char *name, const char *tag, char **out)
{
	size_t nlen = strlen(name), tlen = strlen(tag), stem, extlen, keep, units, budget;
	size_t tag_units, ext_units;
	const char *dot = strrchr(name, '.');
	char *r;

	*out = NULL;
	if (nlen == 0)
		return -EINVAL;
	stem = (dot && dot != name && dot[1] != '\0') ? (size_t)(dot - name) : nlen;
	extlen = nlen - stem;
	tag_units = names_utf16_units(tag, tlen);
	ext_units = names_utf16_units(name + stem, extlen);
	if (tag_units + ext_units > NAMES_MAX_UNITS)
		return -ENAMETOOLONG;
	budget = NAMES_MAX_UNITS - tag_units - ext_units;
	/* Drop whole characters from the end of the stem until it fits. */
	keep = stem;
	units = names_utf16_units(name, stem);
	while (keep > 0 && units > budget) {
		size_t end = keep;

		keep--;
		while (keep > 0 && ((unsigned char)name[keep] & 0xC0) == 0x80)
			keep--;
		units -= names_utf16_units(name + keep, end - keep);
	}
	r = malloc(keep + tlen + extlen + 1);
	if (!r)
		return -ENOMEM;
	memcpy(r, name, keep);
	memcpy(r + keep, tag, tlen);
	memcpy(r + keep + tlen, name + stem, extlen);
	r[keep + tlen + extlen] = '\0';
	*out = r;
	return 0;
}

uint32_t names_dup_hash(const char *sname, unsigned round)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)sname; *p; p++)
		h = (h ^ *p) * 16777619u;
	if (round) {
		h = (h ^ 0u) * 16777619u;       /* a NUL cannot occur in @sname */
		for (unsigned i = 0; i < 4; i++)
			h = (h ^ ((round >> (8 * i)) & 0xFFu)) * 16777619u;
	}
	return h;
}

int names_dup_name(const char *name, uint32_t hash, char **out)
{
	char tag[32];

	snprintf(tag, sizeof(tag), NAMES_DUP_TAG "%08x)", (unsigned)hash);
	return names_insert_tag(name, tag, out);
}
