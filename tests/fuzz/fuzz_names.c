/*
 * tests/fuzz/fuzz_names.c — libFuzzer target for net/names.
 *
 * The input is used twice:
 *  1. as a plain name (any bytes, NUL and '/' included): names_encode must
 *     succeed unless the name is empty or too long, its output must be valid
 *     UTF-8 of at most NAMES_MAX_UNITS units without NUL, and
 *     names_decode_raw must give the input back; names_decode must give it
 *     back with the POSIX substitutions ('/' -> ／, NUL -> ␀, "."/".." ->
 *     ．/．．). names_encode_legacy gets the same round trip when the input
 *     holds no ％ (which only the HEAD decoder turns into '%').
 *  2. as a server name (cut at the first NUL): names_decode must never give
 *     '/', NUL, "", "." or "..", and must equal the raw decode with the
 *     POSIX substitutions.
 *
 * Build: make fuzz
 * Run:   build-fuzz/fuzz/fuzz_names -dict=tests/fuzz/names.dict -max_total_time=60
 */
#include "fuzz.h"
#include "net/names.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The POSIX view of plain bytes @x: what names_decode must show. @out needs
 * 3 bytes per input byte. Returns the length. */
static size_t posix_view(const unsigned char *x, size_t n, unsigned char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (x[i] == '/') {
			memcpy(out + o, "／", 3);
			o += 3;
		} else if (x[i] == '\0') {
			memcpy(out + o, "␀", 3);
			o += 3;
		} else {
			out[o++] = x[i];
		}
	}
	if (o == 1 && out[0] == '.') {
		memcpy(out, "．", 3);
		o = 3;
	} else if (o == 2 && out[0] == '.' && out[1] == '.') {
		memcpy(out, "．．", 6);
		o = 6;
	}
	return o;
}

/* Strict UTF-8 check (shortest form, no surrogates, <= U+10FFFF). */
static int valid_utf8(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t need;
		uint32_t v, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xE0) == 0xC0) {
			need = 2; v = c & 0x1F; min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			need = 3; v = c & 0x0F; min = 0x800;
		} else if ((c & 0xF8) == 0xF0) {
			need = 4; v = c & 0x07; min = 0x10000;
		} else {
			return 0;
		}
		if (n - i < need)
			return 0;
		for (size_t k = 1; k < need; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			v = v << 6 | (s[i + k] & 0x3F);
		}
		if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
			return 0;
		i += need;
	}
	return 1;
}

/* Decode @server both ways and check the POSIX result. */
static void check_decode(const char *server, size_t len)
{
	char *raw = NULL, *dec = NULL, *enc = NULL, *raw2 = NULL;
	size_t rl = 0, rl2 = 0, vl;
	unsigned char *view;
	int rc = names_decode(server, &dec);

	if (len == 0) {
		CHECK(rc == -EINVAL && dec == NULL);
		return;
	}
	CHECK(rc == 0);
	CHECK(dec[0] != '\0' && strchr(dec, '/') == NULL);
	CHECK(strcmp(dec, ".") != 0 && strcmp(dec, "..") != 0);
	CHECK(names_decode_raw(server, &raw, &rl) == 0);
	CHECK(rl > 0 && rl <= len);
	view = malloc(rl * 3 + 1);
	CHECK(view != NULL);
	vl = posix_view((const unsigned char *)raw, rl, view);
	/* equal length also proves that dec holds no NUL */
	CHECK(strlen(dec) == vl && memcmp(dec, view, vl) == 0);
	/* re-encoding gives the canonical name, which decodes the same */
	if (names_encode(raw, rl, &enc) == 0) {
		CHECK(names_decode_raw(enc, &raw2, &rl2) == 0);
		CHECK(rl2 == rl && memcmp(raw2, raw, rl) == 0);
		free(raw2);
		free(enc);
	}
	free(view);
	free(raw);
	free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *x = (const char *)data;
	char *enc = NULL, *raw = NULL, *dec = NULL, *server;
	unsigned char *view;
	size_t rl = 0, vl, el;
	int rc;

	/* 1. plain name -> server name -> plain name */
	rc = names_encode(x, size, &enc);
	if (size == 0) {
		CHECK(rc == -EINVAL && enc == NULL);
	} else if (rc == -ENAMETOOLONG) {
		CHECK(enc == NULL && size > NAMES_MAX_UNITS / 3);
	} else {
		CHECK(rc == 0);
		el = strlen(enc);
		CHECK(el > 0 && valid_utf8((const unsigned char *)enc, el));
		CHECK(names_utf16_units(enc, el) <= NAMES_MAX_UNITS);
		CHECK(names_decode_raw(enc, &raw, &rl) == 0);
		CHECK(rl == size && memcmp(raw, data, size) == 0);
		CHECK(names_decode(enc, &dec) == 0);
		view = malloc(size * 3 + 1);
		CHECK(view != NULL);
		vl = posix_view(data, size, view);
		CHECK(strlen(dec) == vl && memcmp(dec, view, vl) == 0);
		free(view);
		free(raw);
		free(dec);
		free(enc);
	}

	rc = names_encode_legacy(x, size, &enc);
	if (rc == 0) {
		CHECK(names_utf16_units(enc, strlen(enc)) <= NAMES_MAX_UNITS);
		if (!memmem(data, size, "％", 3)) {
			CHECK(names_decode_raw(enc, &raw, &rl) == 0);
			CHECK(rl == size && memcmp(raw, data, size) == 0);
			free(raw);
		}
		free(enc);
	} else {
		CHECK(rc == (size == 0 ? -EINVAL : -ENAMETOOLONG));
	}

	/* 2. the same bytes as a (hostile) server name */
	server = strndup(x, size);
	CHECK(server != NULL);
	check_decode(server, strlen(server));
	free(server);
	return 0;
}
