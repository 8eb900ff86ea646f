/*
 * tests/unit/test_names.c — net/names against rclone's jottacloud encoder
 * (shared/docs/jottacloud-api.md §11).
 *
 * Vectors: every example of §11.4 (encode and decode, 1.60.1 and HEAD sets),
 * each row of the §11.2 table, quoting, Dot, invalid UTF-8 (overlong,
 * surrogates, > U+10FFFF, truncated), hostile server names, the 255-unit
 * limit at its boundary. Then seeded random tests: the encoder against an
 * independent slow reference model written from §11.2, the round trips
 * decode(encode(x)) == x, and the POSIX safety of decode on arbitrary server
 * names. The vectors were also confirmed with the rclone 1.60.1 binary
 * (tests/oracle/rclone_names.py).
 *
 * String literals hold UTF-8; a "\x.." escape is always closed with "" when
 * a hex digit follows, since C would otherwise swallow it.
 */
#include "net/names.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#define ROUNDTRIP_N   250000u   /* random byte strings for the round trip */
#define HOSTILE_N     200000u   /* random server names for the decoder */
#define DEFAULT_SEED  0x6a6f747461667355ull

/* ---------------------------------------------------------------------- */
/* Helpers                                                                */

/* Print @len bytes of @p as a C string literal (for failure messages). */
static void show(const char *label, const void *p, size_t len)
{
	const unsigned char *s = p;
	char buf[2048];
	size_t o = 0;

	for (size_t i = 0; i < len && o + 8 < sizeof(buf); i++) {
		if (s[i] >= 0x20 && s[i] < 0x7F && s[i] != '\\' && s[i] != '"')
			buf[o++] = (char)s[i];
		else
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\\x%02X", s[i]);
	}
	buf[o] = '\0';
	print_error("  %-8s \"%s\" (%zu bytes)\n", label, buf, len);
}

/* Fail with a readable report unless @got (@gl bytes) equals @want (@wl). */
static void expect_bytes(const char *what, const void *in, size_t il,
			 const void *got, size_t gl, const void *want, size_t wl)
{
	if (gl == wl && memcmp(got, want, wl) == 0)
		return;
	print_error("%s mismatch\n", what);
	show("input", in, il);
	show("got", got, gl);
	show("want", want, wl);
	fail();
}

typedef int (*enc_fn)(const char *, size_t, char **);

/* Encode @in with @fn and compare with @want (NUL-terminated). */
static void enc_is(enc_fn fn, const char *what, const char *in, size_t il,
		   const char *want)
{
	char *out = NULL;
	int rc = fn(in, il, &out);

	if (rc != 0) {
		print_error("%s failed: %d\n", what, rc);
		show("input", in, il);
		fail();
	}
	expect_bytes(what, in, il, out, strlen(out), want, strlen(want));
	free(out);
}

/* names_decode(@in) must give @want (@wl bytes). */
static void dec_is(const char *in, const char *want, size_t wl)
{
	char *out = NULL;
	int rc = names_decode(in, &out);

	if (rc != 0) {
		print_error("names_decode failed: %d\n", rc);
		show("input", in, strlen(in));
		fail();
	}
	expect_bytes("names_decode", in, strlen(in), out, strlen(out), want, wl);
	free(out);
}

/* names_decode_raw(@in) must give @want (@wl bytes, may hold NUL). */
static void raw_is(const char *in, const char *want, size_t wl)
{
	char *out = NULL;
	size_t ol = 0;
	int rc = names_decode_raw(in, &out, &ol);

	if (rc != 0) {
		print_error("names_decode_raw failed: %d\n", rc);
		show("input", in, strlen(in));
		fail();
	}
	expect_bytes("names_decode_raw", in, strlen(in), out, ol, want, wl);
	assert_int_equal(out[ol], '\0');
	free(out);
}

#define L(s) (s), (sizeof(s) - 1)   /* literal and its length, NULs included */

/* ---------------------------------------------------------------------- */
/* §11.4 worked examples                                                  */

struct vec {
	const char *plain;
	size_t plain_len;
	const char *legacy;     /* server name, 1.60.1 set */
	const char *head;       /* server name, HEAD set */
};
#define V(p, l, h) { (p), sizeof(p) - 1, (l), (h) }

static const struct vec doc_vectors[] = {
	V("a?b", "a？b", "a？b"),
	V("a？b", "a‛？b", "a‛？b"),
	V(".", "．", "．"),
	V("..", "．．", "．．"),
	V("．", "‛．", "‛．"),
	V("a\xFF" "b", "a‛FFb", "a‛FFb"),
	V("a\xC3" "b", "a‛C3b", "a‛C3b"),
	V("\xE2\x80", "‛E2‛80", "‛E2‛80"),
	V("a\x01" "b", "a␁b", "a␁b"),
	V("a␁b", "a‛␁b", "a‛␁b"),
	V("a\x7F" "b", "a␡b", "a␡b"),
	V("a\0b", "a␀b", "a␀b"),
	V("x‛y", "x‛‛y", "x‛‛y"),
	V("‛", "‛‛", "‛‛"),
	V("a*b<c>d|e\"f:g", "a＊b＜c＞d｜e＂f：g", "a＊b＜c＞d｜e＂f：g"),
	V("a%b", "a%b", "a％b"),
	V("a％b", "a％b", "a‛％b"),
	V("back\\slash", "back\\slash", "back\\slash"),
	V(" lead", " lead", " lead"),
	V("trail ", "trail ", "trail "),
	V("dot.", "dot.", "dot."),
	V("a\xEF\xBF\xBD" "b", "a\xEF\xBF\xBD" "b", "a\xEF\xBF\xBD" "b"),
};

static void test_doc_encode(void **state)
{
	for (size_t i = 0; i < sizeof(doc_vectors) / sizeof(doc_vectors[0]); i++) {
		const struct vec *v = &doc_vectors[i];

		enc_is(names_encode, "names_encode", v->plain, v->plain_len, v->head);
		enc_is(names_encode_legacy, "names_encode_legacy", v->plain,
		       v->plain_len, v->legacy);
	}
}

/* Every encode vector decodes back (HEAD decoder on HEAD names). */
static void test_doc_encode_roundtrip(void **state)
{
	for (size_t i = 0; i < sizeof(doc_vectors) / sizeof(doc_vectors[0]); i++)
		raw_is(doc_vectors[i].head, doc_vectors[i].plain,
		       doc_vectors[i].plain_len);
}

static void test_doc_decode(void **state)
{
	/* §11.4 decoding examples (they hold for both sets); the HEAD set
	 * decodes ％ (the 1.60.1 set would keep it), the last two */
	static const struct {
		const char *in, *want;
		size_t wl;
	} raw[] = {
		{ "x‛41y", L("xAy") }, { "a‛Zb", L("a‛Zb") },
		{ "a‛4", L("a‛4") }, { "tail‛", L("tail‛") },
		{ "a‛ffb", L("a\xFF" "b") }, { "a‛C3‛A6b", L("aæb") },
		{ "a‛‛b", L("a‛b") }, { "a␀b", L("a\0b") },
		{ "a％b", L("a%b") }, { "a‛％b", L("a％b") },
	};
	for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++)
		raw_is(raw[i].in, raw[i].want, raw[i].wl);
	/* and the POSIX view of the same */
	dec_is("x‛41y", L("xAy"));
	dec_is("a‛ffb", L("a\xFF" "b"));
	dec_is("a␀b", L("a␀b"));
	dec_is("a％b", L("a%b"));
}

/* ---------------------------------------------------------------------- */
/* §11.2 encoding table, row by row                                       */

static void test_table_rows(void **state)
{
	static const struct { char c; const char *enc; } fw[] = {
		{ '"', "＂" }, { '*', "＊" }, { '/', "／" }, { ':', "：" },
		{ '<', "＜" }, { '>', "＞" }, { '?', "？" }, { '|', "｜" },
	};
	char in[8], want[32];

	/* NUL, always */
	enc_is(names_encode, "NUL", L("\0"), "␀");
	enc_is(names_encode_legacy, "NUL", L("\0"), "␀");
	raw_is("␀", L("\0"));

	/* controls 0x01-0x1F -> U+2401-U+241F */
	for (unsigned c = 1; c <= 0x1F; c++) {
		unsigned cp = 0x2400 + c;

		in[0] = (char)c;
		snprintf(want, sizeof(want), "%c%c%c", 0xE0 | (cp >> 12),
			 0x80 | ((cp >> 6) & 0x3F), 0x80 | (cp & 0x3F));
		enc_is(names_encode, "Ctl", in, 1, want);
		enc_is(names_encode_legacy, "Ctl", in, 1, want);
		raw_is(want, in, 1);
	}

	/* the FULLWIDTH class characters */
	for (size_t i = 0; i < sizeof(fw) / sizeof(fw[0]); i++) {
		enc_is(names_encode, "fullwidth", &fw[i].c, 1, fw[i].enc);
		enc_is(names_encode_legacy, "fullwidth", &fw[i].c, 1, fw[i].enc);
		raw_is(fw[i].enc, &fw[i].c, 1);
	}

	/* Percent: HEAD only */
	enc_is(names_encode, "Percent", L("%"), "％");
	enc_is(names_encode_legacy, "Percent", L("%"), "%");
	raw_is("％", L("%"));
	raw_is("%", L("%"));

	/* DEL */
	enc_is(names_encode, "Del", L("\x7F"), "␡");
	enc_is(names_encode_legacy, "Del", L("\x7F"), "␡");
	raw_is("␡", L("\x7F"));

	/* each byte 0x80-0xFF alone is invalid: ‛ and upper-case hex */
	for (unsigned b = 0x80; b <= 0xFF; b++) {
		in[0] = (char)b;
		snprintf(want, sizeof(want), "‛%02X", b);
		enc_is(names_encode, "InvalidUtf8", in, 1, want);
		enc_is(names_encode_legacy, "InvalidUtf8", in, 1, want);
		raw_is(want, in, 1);
		snprintf(want, sizeof(want), "‛%02x", b);      /* either case */
		raw_is(want, in, 1);
	}

	/* whole-name Dot */
	enc_is(names_encode, "Dot", L("."), "．");
	enc_is(names_encode, "Dot", L(".."), "．．");
	raw_is("．", L("."));
	raw_is("．．", L(".."));

	/* every other printable ASCII byte is left alone, in both sets */
	for (unsigned c = 0x20; c < 0x7F; c++) {
		if (strchr("\"*/:<>?|%", (int)c))
			continue;
		in[0] = (char)c;
		in[1] = 'x';    /* not a whole "." name */
		in[2] = '\0';
		enc_is(names_encode, "plain ASCII", in, 2, in);
		enc_is(names_encode_legacy, "plain ASCII", in, 2, in);
		raw_is(in, in, 2);
	}
}

/* Characters that are not changed (§11.2, "Not changed"). */
static void test_unchanged(void **state)
{
	static const char *const same[] = {
		"back\\slash", "#hash", "a&b", "it's", "semi;colon", "bang!",
		"$dollar", "`tick`", "[x]", "~tilde", " ", "  both  ", "trail.",
		"~", ".hidden", "...", "a.b.c", "æøå", "漢字", "😀", "a\xEF\xBF\xBD",
		"＼", "＃", "␠", "．x", "x．", "．．．", "‚", "‘’“”", "\xEF\xBF\xBF",
		"\xF4\x8F\xBF\xBF", "\xC2\x80", "\xE0\xA0\x80", "\xED\x9F\xBF",
		"\xEE\x80\x80", "\xF0\x90\x80\x80", "ＡＢＣ", "\xEF\xBF\xBE",
	};

	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		enc_is(names_encode, "unchanged", same[i], strlen(same[i]), same[i]);
		enc_is(names_encode_legacy, "unchanged", same[i], strlen(same[i]),
		       same[i]);
		dec_is(same[i], same[i], strlen(same[i]));
	}
	/* ％ is an ordinary character for the 1.60.1 set only */
	enc_is(names_encode_legacy, "legacy ％", L("x％"), "x％");
}

/* ---------------------------------------------------------------------- */
/* Quoting                                                                */

static void test_quoting(void **state)
{
	static const char *const quoted_both[] = {
		"＂", "＊", "／", "：", "＜", "＞", "？", "｜", "␡", "␀", "‛",
	};
	char in[16], want[32];

	for (size_t i = 0; i < sizeof(quoted_both) / sizeof(quoted_both[0]); i++) {
		const char *c = quoted_both[i];

		snprintf(in, sizeof(in), "a%sb", c);
		snprintf(want, sizeof(want), "a‛%sb", c);
		enc_is(names_encode, "quote", in, strlen(in), want);
		enc_is(names_encode_legacy, "quote", in, strlen(in), want);
		raw_is(want, in, strlen(in));
		dec_is(want, in, strlen(in));
	}
	/* control pictures U+2401-U+241F are quoted; U+2420 ␠ is not */
	for (unsigned cp = 0x2401; cp <= 0x2420; cp++) {
		snprintf(in, sizeof(in), "%c%c%c", 0xE0 | (cp >> 12),
			 0x80 | ((cp >> 6) & 0x3F), 0x80 | (cp & 0x3F));
		if (cp == 0x2420)
			snprintf(want, sizeof(want), "%s", in);
		else
			snprintf(want, sizeof(want), "‛%s", in);
		enc_is(names_encode, "quote ctl picture", in, 3, want);
		enc_is(names_encode_legacy, "quote ctl picture", in, 3, want);
		raw_is(want, in, 3);
	}
	/* ％ is quoted with Percent only */
	enc_is(names_encode, "quote ％", L("％"), "‛％");
	enc_is(names_encode_legacy, "no quote ％", L("％"), "％");

	/* runs of quote runes and quoted/unquoted mixes */
	enc_is(names_encode, "quotes", L("‛‛"), "‛‛‛‛");
	raw_is("‛‛‛", L("‛‛"));                  /* ‛‛ -> ‛, trailing ‛ kept */
	raw_is("‛‛‛41", L("‛A"));
	raw_is("‛‛41", L("‛41"));
	raw_is("‛", L("‛"));
	raw_is("‛‛", L("‛"));
	raw_is("a‛‛‛", L("a‛‛"));
	raw_is("‛␀", L("␀"));
	raw_is("‛␀‛‛␀", L("␀‛\0"));
	/* a quote before an ordinary character is kept */
	raw_is("a‛é", L("a‛é"));
	raw_is("a‛ＡＢ", L("a‛ＡＢ"));
	raw_is("a‛␠", L("a‛␠"));
	raw_is("a‛＼", L("a‛＼"));
	raw_is("a‛．", L("a‛．"));              /* ‛． inside a name */
	raw_is("a‛\xFF", L("a‛\xFF"));         /* before an invalid byte */
	raw_is("a‛\xEF\xBF\xBD", L("a‛\xEF\xBF\xBD"));
}

/* ---------------------------------------------------------------------- */
/* Dot                                                                    */

static void test_dot(void **state)
{
	enc_is(names_encode, "dot", L("."), "．");
	enc_is(names_encode, "dot", L(".."), "．．");
	enc_is(names_encode, "dot", L("．"), "‛．");
	enc_is(names_encode, "dot", L("．．"), "‛．‛．");
	enc_is(names_encode_legacy, "dot", L("．．"), "‛．‛．");
	/* only those exact whole names */
	static const struct {
		const char *in;
		size_t il;
		const char *want;
	} kept[] = {
		{ L("..."), "..." }, { L(".a"), ".a" }, { L("a."), "a." }, { L("．．．"), "．．．" },
		{ L("．a"), "．a" }, { L(".．"), ".．" }, { L(". "), ". " },
	};
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		enc_is(names_encode, "dot", kept[i].in, kept[i].il, kept[i].want);

	raw_is("．", L("."));
	raw_is("．．", L(".."));
	raw_is("‛．", L("．"));
	raw_is("‛．‛．", L("．．"));
	raw_is(".", L("."));
	raw_is("..", L(".."));
	raw_is("‛．．", L("‛．．"));            /* not a whole-name form */
	raw_is("．‛．", L("．‛．"));
	raw_is("．．．", L("．．．"));
	/* POSIX view: "." and ".." cannot be names */
	dec_is("．", L("．"));
	dec_is("．．", L("．．"));
	dec_is("‛．", L("．"));
	dec_is("‛．‛．", L("．．"));
	dec_is("...", L("..."));
	dec_is(".x", L(".x"));
}

/* ---------------------------------------------------------------------- */
/* Invalid UTF-8                                                          */

static void test_invalid_utf8(void **state)
{
	static const struct { const char *in; size_t len; const char *enc; } c[] = {
		/* overlong forms */
		{ L("\xC0\xAF"), "‛C0‛AF" },
		{ L("\xC1\xBF"), "‛C1‛BF" },
		{ L("\xE0\x80\xAF"), "‛E0‛80‛AF" },
		{ L("\xE0\x9F\xBF"), "‛E0‛9F‛BF" },
		{ L("\xF0\x80\x80\xAF"), "‛F0‛80‛80‛AF" },
		{ L("\xF0\x8F\xBF\xBF"), "‛F0‛8F‛BF‛BF" },
		/* an overlong ‛ must not be taken for a quote */
		{ L("\xF0\x82\x80\x9B"), "‛F0‛82‛80‛9B" },
		/* surrogates */
		{ L("\xED\xA0\x80"), "‛ED‛A0‛80" },
		{ L("\xED\xBF\xBF"), "‛ED‛BF‛BF" },
		{ L("\xED\xA0\xBD\xED\xB8\x80"), "‛ED‛A0‛BD‛ED‛B8‛80" },
		/* above U+10FFFF */
		{ L("\xF4\x90\x80\x80"), "‛F4‛90‛80‛80" },
		{ L("\xF5\x80\x80\x80"), "‛F5‛80‛80‛80" },
		{ L("\xF7\xBF\xBF\xBF"), "‛F7‛BF‛BF‛BF" },
		{ L("\xF8\x88\x80\x80\x80"), "‛F8‛88‛80‛80‛80" },
		/* truncated sequences: one ‛XX per byte */
		{ L("\xE2\x80"), "‛E2‛80" },
		{ L("\xE2\x80" "A"), "‛E2‛80A" },
		{ L("x\xF0\x9F\x98"), "x‛F0‛9F‛98" },
		{ L("\xF0\x9F\x98" "!"), "‛F0‛9F‛98!" },
		{ L("\xC3"), "‛C3" },
		{ L("\xC3\xC3\xA6"), "‛C3æ" },
		{ L("\xE2\xE2\x80\x9B"), "‛E2‛‛" },
		/* lone continuation bytes */
		{ L("\x80"), "‛80" },
		{ L("\xBF\xBF"), "‛BF‛BF" },
		{ L("æ\xA6"), "æ‛A6" },
		/* valid boundaries stay as they are */
		{ L("\xC2\x80"), "\xC2\x80" },
		{ L("\xDF\xBF"), "\xDF\xBF" },
		{ L("\xE0\xA0\x80"), "\xE0\xA0\x80" },
		{ L("\xED\x9F\xBF"), "\xED\x9F\xBF" },
		{ L("\xEE\x80\x80"), "\xEE\x80\x80" },
		{ L("\xEF\xBF\xBF"), "\xEF\xBF\xBF" },
		{ L("\xF0\x90\x80\x80"), "\xF0\x90\x80\x80" },
		{ L("\xF4\x8F\xBF\xBF"), "\xF4\x8F\xBF\xBF" },
		{ L("\xEF\xBF\xBD"), "\xEF\xBF\xBD" },          /* real U+FFFD */
		/* hex digits after the byte are not confused with it */
		{ L("\xFF" "41"), "‛FF41" },
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		enc_is(names_encode, "invalid utf8", c[i].in, c[i].len, c[i].enc);
		enc_is(names_encode_legacy, "invalid utf8", c[i].in, c[i].len,
		       c[i].enc);
		raw_is(c[i].enc, c[i].in, c[i].len);
		dec_is(c[i].enc, c[i].in, c[i].len);
	}

	/* decoder: ‛ + exactly two hex digits of either case, nothing else */
	raw_is("‛aB", L("\xAB"));
	raw_is("‛Ab‛cD‛eF", L("\xAB\xCD\xEF"));
	raw_is("‛414", L("A4"));
	raw_is("‛G1", L("‛G1"));
	raw_is("‛1G", L("‛1G"));
	raw_is("‛0x1", L("‛0x1"));      /* no 0x prefix (Go ParseUint base 16) */
	raw_is("‛+1", L("‛+1"));
	raw_is("‛_1", L("‛_1"));
	raw_is("‛ 1", L("‛ 1"));
	raw_is("‛1", L("‛1"));
	raw_is("‛1é", L("‛1é"));
	raw_is("‛１２", L("‛１２"));    /* FULLWIDTH digits are not hex */
	/* invalid UTF-8 inside a server name is kept byte for byte */
	raw_is("raw\xFF" "byte", L("raw\xFF" "byte"));
	raw_is("\xE2\x80", L("\xE2\x80"));
	raw_is("\xF0\x82\x80\x9B" "41", L("\xF0\x82\x80\x9B" "41"));
}

/* ---------------------------------------------------------------------- */
/* Hostile server names: nothing may escape the directory                 */

static void test_hostile_decode(void **state)
{
	char *out = (char *)1;

	assert_int_equal(names_decode("", &out), -EINVAL);
	assert_null(out);
	out = (char *)1;
	assert_int_equal(names_decode_raw("", &out, NULL), -EINVAL);
	assert_null(out);

	static const struct {
		const char *in, *want;
		size_t wl;
	} dec[] = {
		{ "/", L("／") }, { "a/b", L("a／b") }, { "../x", L("..／x") },
		{ "/..", L("／..") }, { "//", L("／／") }, { "／", L("／") },
		{ "‛2F", L("／") }, { "‛2f", L("／") }, { "a‛2Fb", L("a／b") },
		{ "␀", L("␀") }, { "‛00", L("␀") }, { "a‛00b", L("a␀b") },
		{ "␀␀", L("␀␀") }, { ".", L("．") }, { "..", L("．．") },
		{ "‛2E", L("．") }, { "‛2E‛2E", L("．．") }, { "‛2E.", L("．．") },
		{ ".‛2e", L("．．") }, { "\xFF", L("\xFF") }, { "‛", L("‛") },
		{ "‛‛", L("‛") },
	};
	for (size_t i = 0; i < sizeof(dec) / sizeof(dec[0]); i++)
		dec_is(dec[i].in, dec[i].want, dec[i].wl);
	/* the raw decoder shows what the server name really means */
	raw_is("a‛2Fb", L("a/b"));
	raw_is("‛00", L("\0"));
	raw_is("‛2E‛2E", L(".."));
}

/* Decoding is not injective on names that rclone would not write. */
static void test_non_injective(void **state)
{
	char *canon = NULL;

	dec_is("a:b", L("a:b"));
	dec_is("a：b", L("a:b"));
	dec_is("xAy", L("xAy"));
	dec_is("x‛41y", L("xAy"));
	dec_is("a␀b", L("a␀b"));
	dec_is("a‛␀b", L("a␀b"));
	dec_is("．", L("．"));
	dec_is("‛．", L("．"));
	/* only the canonical spelling comes back from the encoder */
	assert_int_equal(names_encode("a:b", 3, &canon), 0);
	assert_string_equal(canon, "a：b");
	free(canon);
	assert_int_equal(names_encode("xAy", 3, &canon), 0);
	assert_string_equal(canon, "xAy");
	free(canon);
}

/* The raw encoder on buffers holding NUL and '/'. */
static void test_nul_buffers(void **state)
{
	enc_is(names_encode, "NUL", L("\0\0"), "␀␀");
	enc_is(names_encode, "NUL", L("a\0/\0b"), "a␀／␀b");
	enc_is(names_encode, "NUL", L("\0␀"), "␀‛␀");
	enc_is(names_encode, "NUL", L("\0."), "␀.");
	raw_is("a␀／␀b", L("a\0/\0b"));
	raw_is("␀‛␀", L("\0␀"));
	dec_is("a␀／␀b", L("a␀／␀b"));
}

/* ---------------------------------------------------------------------- */
/* Length: 255 UTF-16 units after encoding                                */

/* Encode @n copies of @unit (plus @tail) with @fn; returns the result code
 * and checks that a success has exactly @units units. */
static int enc_rep(enc_fn fn, const char *unit, size_t n, const char *tail)
{
	size_t ul = strlen(unit), tl = strlen(tail), len = ul * n + tl;
	char *in = malloc(len + 1), *out = NULL;
	int rc;

	assert_non_null(in);
	for (size_t i = 0; i < n; i++)
		memcpy(in + i * ul, unit, ul);
	memcpy(in + ul * n, tail, tl);
	rc = fn(in, len, &out);
	if (rc == 0) {
		size_t units = names_utf16_units(out, strlen(out));

		assert_true(units <= NAMES_MAX_UNITS);
		free(out);
	} else {
		assert_null(out);
	}
	free(in);
	return rc;
}

static void test_length_limit(void **state)
{
	const enc_fn fns[] = { names_encode, names_encode_legacy };

	for (size_t f = 0; f < 2; f++) {
		enc_fn fn = fns[f];

		/* ASCII: one unit each */
		assert_int_equal(enc_rep(fn, "a", 255, ""), 0);
		assert_int_equal(enc_rep(fn, "a", 256, ""), -ENAMETOOLONG);
		/* emoji: 4 bytes, 2 units (a surrogate pair) */
		assert_int_equal(enc_rep(fn, "😀", 127, ""), 0);
		assert_int_equal(enc_rep(fn, "😀", 127, "a"), 0);
		assert_int_equal(enc_rep(fn, "😀", 127, "ab"), -ENAMETOOLONG);
		assert_int_equal(enc_rep(fn, "😀", 128, ""), -ENAMETOOLONG);
		/* CJK: 3 bytes, 1 unit; 255 of them is 765 bytes, the most */
		assert_int_equal(enc_rep(fn, "漢", 255, ""), 0);
		assert_int_equal(enc_rep(fn, "漢", 256, ""), -ENAMETOOLONG);
		/* growth only after encoding: invalid bytes are 3 units each */
		assert_int_equal(enc_rep(fn, "\xFF", 85, ""), 0);
		assert_int_equal(enc_rep(fn, "\xFF", 86, ""), -ENAMETOOLONG);
		assert_int_equal(enc_rep(fn, "a", 252, "\xFF"), 0);
		assert_int_equal(enc_rep(fn, "a", 253, "\xFF"), -ENAMETOOLONG);
		/* quoted characters are 2 units each */
		assert_int_equal(enc_rep(fn, "‛", 127, "a"), 0);
		assert_int_equal(enc_rep(fn, "‛", 128, ""), -ENAMETOOLONG);
		assert_int_equal(enc_rep(fn, "＂", 127, "a"), 0);
		assert_int_equal(enc_rep(fn, "＂", 127, "ab"), -ENAMETOOLONG);
		assert_int_equal(enc_rep(fn, "a", 254, "␁"), -ENAMETOOLONG);
		assert_int_equal(enc_rep(fn, "a", 253, "␁"), 0);
		/* replacements are 1 unit, like the character they replace */
		assert_int_equal(enc_rep(fn, ":", 255, ""), 0);
		assert_int_equal(enc_rep(fn, ":", 256, ""), -ENAMETOOLONG);
		assert_int_equal(enc_rep(fn, "\x01", 255, ""), 0);
		/* a huge name fails fast, whatever its length */
		assert_int_equal(enc_rep(fn, "a", 1 << 20, ""), -ENAMETOOLONG);
	}
	/* ％ is 2 units for HEAD, 1 for 1.60.1 */
	assert_int_equal(enc_rep(names_encode, "％", 127, "a"), 0);
	assert_int_equal(enc_rep(names_encode, "％", 128, ""), -ENAMETOOLONG);
	assert_int_equal(enc_rep(names_encode_legacy, "％", 255, ""), 0);
	assert_int_equal(enc_rep(names_encode, "%", 255, ""), 0);
}

static void test_empty_encode(void **state)
{
	char *out = (char *)1;

	assert_int_equal(names_encode("", 0, &out), -EINVAL);
	assert_null(out);
	out = (char *)1;
	assert_int_equal(names_encode_legacy("x", 0, &out), -EINVAL);
	assert_null(out);
}

static void test_utf16_units(void **state)
{
	assert_int_equal(names_utf16_units("", 0), 0);
	assert_int_equal(names_utf16_units(L("abc")), 3);
	assert_int_equal(names_utf16_units(L("æ")), 1);
	assert_int_equal(names_utf16_units(L("漢字")), 2);
	assert_int_equal(names_utf16_units(L("😀")), 2);
	assert_int_equal(names_utf16_units(L("\xF4\x8F\xBF\xBF")), 2);
	assert_int_equal(names_utf16_units(L("\xFF\xFE")), 2);
	assert_int_equal(names_utf16_units(L("\xF0\x9F\x98")), 3);
	assert_int_equal(names_utf16_units(L("\xED\xA0\x80")), 3);
	assert_int_equal(names_utf16_units(L("a\0b")), 3);
}

/* ---------------------------------------------------------------------- */
/* Random tests                                                           */

static uint64_t rng_state;

/* splitmix64: small, seeded, the same sequence on every platform */
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void seed_rng(void)
{
	const char *env = getenv("NAMES_SEED");

	rng_state = env ? strtoull(env, NULL, 0) : DEFAULT_SEED;
	print_message("names: random seed 0x%llx (set NAMES_SEED to change)\n",
		      (unsigned long long)rng_state);
}

/*
 * A random byte string of 0..@max bytes, biased toward what the encoder
 * treats specially: the special ASCII, controls, 0x80-0xFF, hex digits, the
 * UTF-8 of the replacement characters and of U+201B, and fragments of them.
 */
static size_t random_name(unsigned char *buf, size_t max)
{
	static const char *const pieces[] = {
		"＂", "＊", "／", "：", "＜", "＞", "？", "｜", "％", "␀", "␁",
		"␟", "␡", "␠", "‛", "‛", "‛", "．", "．．", "\xEF\xBF\xBD", "æ",
		"😀", "＼", "\xE2\x80", "\xEF\xBC", "\xE2\x90", "..", "‛4",
	};
	static const char special[] = "\"*/:<>?|%.\\ #;~+\x7F";
	static const char hexd[] = "0123456789abcdefABCDEF";
	size_t len = (size_t)(rnd() % (max + 1)), o = 0;

	while (o < len) {
		uint64_t r = rnd();
		unsigned kind = (unsigned)(r % 100);

		r >>= 8;
		if (kind < 15) {
			buf[o++] = (unsigned char)special[r % (sizeof(special) - 1)];
		} else if (kind < 22) {
			buf[o++] = (unsigned char)(r % 0x20);   /* NUL, controls */
		} else if (kind < 37) {
			buf[o++] = (unsigned char)(0x80 + r % 0x80);
		} else if (kind < 47) {
			buf[o++] = (unsigned char)hexd[r % (sizeof(hexd) - 1)];
		} else if (kind < 57) {
			buf[o++] = (unsigned char)(r & 0xFF);
		} else if (kind < 80) {
			const char *p = pieces[r % (sizeof(pieces) / sizeof(pieces[0]))];
			size_t pl = strlen(p);

			if (pl > len - o)
				pl = len - o;
			memcpy(buf + o, p, pl);
			o += pl;
		} else {
			buf[o++] = (unsigned char)('a' + r % 26);
		}
	}
	return len;
}

/*
 * Independent reference: read one character the generic way (length from
 * the lead byte, then reject overlong, surrogate and > U+10FFFF results).
 * Returns the length, or 0 when the byte at @s is invalid on its own.
 */
static size_t ref_char(const unsigned char *s, size_t n, uint32_t *cp)
{
	static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t need;
	uint32_t v;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xE0) == 0xC0) {
		need = 2;
		v = s[0] & 0x1F;
	} else if ((s[0] & 0xF0) == 0xE0) {
		need = 3;
		v = s[0] & 0x0F;
	} else if ((s[0] & 0xF8) == 0xF0) {
		need = 4;
		v = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (size_t k = 1; k < need; k++) {
		if ((s[k] & 0xC0) != 0x80)
			return 0;
		v = v << 6 | (s[k] & 0x3F);
	}
	if (v < min[need] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return need;
}

static size_t ref_put(unsigned char *p, uint32_t cp)
{
	if (cp < 0x80) {
		p[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		p[0] = (unsigned char)(0xC0 | cp >> 6);
		p[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		p[0] = (unsigned char)(0xE0 | cp >> 12);
		p[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
		p[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	p[0] = (unsigned char)(0xF0 | cp >> 18);
	p[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
	p[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
	p[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

/* The §11.2 table written out literally: the encoder, slowly. @out needs
 * 6 bytes per input byte. Returns the length. */
static size_t ref_encode(const unsigned char *s, size_t n, bool percent,
			 unsigned char *out)
{
	size_t o = 0;

	if (n == 1 && s[0] == '.')
		return ref_put(out, 0xFF0E);
	if (n == 2 && memcmp(s, "..", 2) == 0)
		return ref_put(out, 0xFF0E) + ref_put(out + 3, 0xFF0E);
	if (n == 3 && memcmp(s, "．", 3) == 0)
		return ref_put(out, 0x201B) + ref_put(out + 3, 0xFF0E);
	if (n == 6 && memcmp(s, "．．", 6) == 0) {
		o += ref_put(out + o, 0x201B);
		o += ref_put(out + o, 0xFF0E);
		o += ref_put(out + o, 0x201B);
		return o + ref_put(out + o, 0xFF0E);
	}
	for (size_t i = 0; i < n;) {
		uint32_t cp = 0;
		size_t l = ref_char(s + i, n - i, &cp);

		if (l == 0) {
			o += (size_t)sprintf((char *)out + o, "‛%02X", s[i]);
			i++;
			continue;
		}
		i += l;
		switch (cp) {
		case 0x00:
			cp = 0x2400;
			break;
		case '"': case '*': case '/': case ':': case '<': case '>':
		case '?': case '|':
			cp += 0xFEE0;
			break;
		case '%':
			if (percent)
				cp += 0xFEE0;
			break;
		case 0x7F:
			cp = 0x2421;
			break;
		case 0xFF02: case 0xFF0A: case 0xFF0F: case 0xFF1A: case 0xFF1C:
		case 0xFF1E: case 0xFF1F: case 0xFF5C: case 0x2421: case 0x2400:
		case 0x201B:
			o += ref_put(out + o, 0x201B);
			break;
		case 0xFF05:
			if (percent)
				o += ref_put(out + o, 0x201B);
			break;
		default:
			if (cp >= 0x01 && cp <= 0x1F)
				cp += 0x2400;
			else if (cp >= 0x2401 && cp <= 0x241F)
				o += ref_put(out + o, 0x201B);
			break;
		}
		o += ref_put(out + o, cp);
	}
	return o;
}

/* What names_decode must show for plain name @x: '/' -> ／, NUL -> ␀,
 * whole "." / ".." -> ． / ．．. @out needs 3 bytes per input byte. */
static size_t posix_view(const unsigned char *x, size_t n, unsigned char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (x[i] == '/')
			o += ref_put(out + o, 0xFF0F);
		else if (x[i] == '\0')
			o += ref_put(out + o, 0x2400);
		else
			out[o++] = x[i];
	}
	if (o == 1 && out[0] == '.')
		o = ref_put(out, 0xFF0E);
	else if (o == 2 && out[0] == '.' && out[1] == '.')
		o = ref_put(out, 0xFF0E) + ref_put(out + 3, 0xFF0E);
	return o;
}

/* A decoded name must be something a directory can hold. */
static void assert_posix_safe(const char *name, const void *from, size_t fl)
{
	if (name[0] == '\0' || strchr(name, '/') || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0) {
		print_error("unsafe decoded name\n");
		show("server", from, fl);
		show("decoded", name, strlen(name));
		fail();
	}
}

/* Count UTF-16 units independently; -1 if @s is not valid UTF-8. */
static long ref_units(const unsigned char *s, size_t n)
{
	long units = 0;

	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t l = ref_char(s + i, n - i, &cp);

		if (l == 0)
			return -1;
		units += cp >= 0x10000 ? 2 : 1;
		i += l;
	}
	return units;
}

static void test_random_roundtrip(void **state)
{
	unsigned char x[64], ref[64 * 6 + 1], view[64 * 3];
	unsigned long posix_names = 0, with_nul_or_slash = 0;

	seed_rng();
	for (unsigned iter = 0; iter < ROUNDTRIP_N; iter++) {
		size_t n = random_name(x, sizeof(x)), rl, ol = 0, vl;
		char *enc = NULL, *leg = NULL, *raw = NULL, *dec = NULL;
		long units;

		if (n == 0) {
			assert_int_equal(names_encode((char *)x, 0, &enc), -EINVAL);
			continue;
		}
		/* the encoder equals the reference model, in both sets */
		assert_int_equal(names_encode((char *)x, n, &enc), 0);
		rl = ref_encode(x, n, true, ref);
		expect_bytes("names_encode vs reference", x, n, enc, strlen(enc), ref, rl);
		assert_int_equal(names_encode_legacy((char *)x, n, &leg), 0);
		rl = ref_encode(x, n, false, ref);
		expect_bytes("names_encode_legacy vs reference", x, n, leg,
			     strlen(leg), ref, rl);

		/* the server name is valid UTF-8 within the limit */
		units = ref_units((unsigned char *)enc, strlen(enc));
		assert_true(units > 0 && units <= NAMES_MAX_UNITS);
		assert_int_equal(names_utf16_units(enc, strlen(enc)), (size_t)units);

		/* rclone's round trip, for every byte string */
		assert_int_equal(names_decode_raw(enc, &raw, &ol), 0);
		expect_bytes("decode_raw(encode(x))", x, n, raw, ol, x, n);

		/* the POSIX view: x itself for a POSIX name */
		assert_int_equal(names_decode(enc, &dec), 0);
		vl = posix_view(x, n, view);
		expect_bytes("decode(encode(x))", x, n, dec, strlen(dec), view, vl);
		assert_posix_safe(dec, enc, strlen(enc));
		if (memchr(x, '/', n) || memchr(x, '\0', n))
			with_nul_or_slash++;
		else if (vl == n)
			posix_names++;

		free(enc);
		free(leg);
		free(raw);
		free(dec);
	}
	print_message("names: %u random strings, %lu POSIX names round-tripped "
		      "exactly, %lu with '/' or NUL\n", ROUNDTRIP_N, posix_names,
		      with_nul_or_slash);
	assert_true(posix_names > ROUNDTRIP_N / 2);
}

/* Arbitrary server names: decode is total, safe, and its POSIX view is the
 * raw decode with the local backend's substitutions. */
static void test_random_hostile(void **state)
{
	unsigned char x[65], view[64 * 3];

	seed_rng();
	for (unsigned iter = 0; iter < HOSTILE_N; iter++) {
		size_t n = random_name(x, 64), ol = 0, vl;
		char *raw = NULL, *dec = NULL;

		for (size_t i = 0; i < n; i++)  /* server names hold no NUL */
			if (x[i] == '\0')
				x[i] = '/';
		x[n] = '\0';
		if (n == 0) {
			assert_int_equal(names_decode((char *)x, &dec), -EINVAL);
			continue;
		}
		assert_int_equal(names_decode_raw((char *)x, &raw, &ol), 0);
		assert_true(ol > 0 && ol <= n);
		assert_int_equal(names_decode((char *)x, &dec), 0);
		assert_posix_safe(dec, x, n);
		vl = posix_view((unsigned char *)raw, ol, view);
		expect_bytes("decode == view(decode_raw)", x, n, dec, strlen(dec),
			     view, vl);
		free(raw);
		free(dec);
	}
}

/* The suffix for server names that decode like another entry's. */
static void test_dup_names(void **state)
{
	char *out = NULL, name[600];

	/* Stable values (the man page promises these names). */
	assert_int_equal(names_dup_hash("a:b", 0), 0x08bd8540u);
	assert_int_equal(names_dup_hash("．．", 0), 0x180eb51fu);
	assert_int_equal(names_dup_hash("‛．‛．", 0), 0x5bc7dc91u);
	assert_int_equal(names_dup_hash("a:b", 1), 0xf53d7ed1u);
	assert_int_not_equal(names_dup_hash("a:b", 1), names_dup_hash("a:b", 2));

	assert_int_equal(names_dup_name("a:b", 0x08bd8540u, &out), 0);
	assert_string_equal(out, "a:b (jottacloud 08bd8540)");
	free(out);
	assert_int_equal(names_dup_name("report.final.pdf", 0xabcdef01u, &out), 0);
	assert_string_equal(out, "report.final (jottacloud abcdef01).pdf");
	free(out);
	assert_int_equal(names_dup_name(".bashrc", 1, &out), 0);
	assert_string_equal(out, ".bashrc (jottacloud 00000001)");
	free(out);
	assert_int_equal(names_dup_name("．．", 0x180eb51fu, &out), 0);
	assert_string_equal(out, "．． (jottacloud 180eb51f)");
	free(out);
	assert_int_equal(names_dup_name("", 1, &out), -EINVAL);
	assert_null(out);

	/* Long names: within 255 UTF-16 units, cut at a character boundary,
	 * the extension kept. */
	name[0] = '\0';
	for (int i = 0; i < 240; i++)
		strcat(name, "\xc3\xa6");     /* æ: 2 bytes, 1 unit */
	strcat(name, ".txt");
	assert_int_equal(names_dup_name(name, 0x12345678u, &out), 0);
	assert_int_equal(names_utf16_units(out, strlen(out)), 255);
	assert_non_null(strstr(out, " (jottacloud 12345678).txt"));
	assert_int_equal(strstr(out, " (jottacloud") - out, 458);      /* 229 æ */
	free(out);
	assert_int_equal(names_insert_tag(name + 200, " (x)", &out), 0);
	assert_int_equal(strlen(out), strlen(name + 200) + 4);
	free(out);
	/* No room for the tag before a long extension. */
	memset(name, 'e', 300);
	name[0] = 'a';
	name[1] = '.';
	name[300] = '\0';
	assert_int_equal(names_insert_tag(name, " (x)", &out), -ENAMETOOLONG);
	assert_null(out);
}

UNIT_TEST_PROGRAM(NULL, NULL,
	cmocka_unit_test(test_doc_encode),
	cmocka_unit_test(test_doc_encode_roundtrip),
	cmocka_unit_test(test_doc_decode),
	cmocka_unit_test(test_table_rows),
	cmocka_unit_test(test_unchanged),
	cmocka_unit_test(test_quoting),
	cmocka_unit_test(test_dot),
	cmocka_unit_test(test_invalid_utf8),
	cmocka_unit_test(test_hostile_decode),
	cmocka_unit_test(test_non_injective),
	cmocka_unit_test(test_nul_buffers),
	cmocka_unit_test(test_length_limit),
	cmocka_unit_test(test_empty_encode),
	cmocka_unit_test(test_utf16_units),
	cmocka_unit_test(test_random_roundtrip),
	cmocka_unit_test(test_random_hostile),
	cmocka_unit_test(test_dup_names),
)
