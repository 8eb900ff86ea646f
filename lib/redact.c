/*
 * lib/redact.c — see redact.h.
 *
 * One left-to-right pass over the input. At each word start the two
 * keyword rules (Bearer, credential keys) are tried; at each start of a run
 * of base64(url) characters and dots, the whole run is judged (long segment,
 * JWT shape) before any of it is written. What is written goes through
 * put(), which masks and stops at the cap.
 */
#include "lib/redact.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* The output being built. */
struct out {
	char *buf;
	size_t cap;      /* bytes usable for text: outsz - 1 */
	size_t len;
	bool cut;        /* something did not fit */
};

static void put(struct out *o, char ch)
{
	unsigned char c = (unsigned char)ch;
	if (o->len >= o->cap) {
		o->cut = true;
		return;
	}
	o->buf[o->len++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
}

static void puts_n(struct out *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		put(o, s[i]);
}

static bool is_word(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/* base64url characters, with '+' and the '=' padding of base64 ('/'
 * separates runs: it is what paths are made of) */
static bool is_b64(unsigned char c)
{
	return is_word(c) || c == '-' || c == '+' || c == '=';
}

static bool is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Where a credential value ends. */
static bool ends_value(unsigned char c)
{
	return c < 0x21 || c >= 0x7f || strchr("\"'&,;<>}])", c);
}

/* Does @t (with @n bytes left) start with @word, any case? */
static bool starts_with(const char *t, size_t n, const char *word)
{
	size_t w = strlen(word);
	return n >= w && !strncasecmp(t, word, w);
}

/*
 * At @t (a word start): a credential value introduced by a keyword. On a
 * match, *@keep is how many bytes to copy as they are (the keyword, the
 * separator, a scheme word) and *@secret how many after them to replace.
 */
static bool keyword_rule(const char *t, size_t n, size_t *keep, size_t *secret)
{
	static const char *const keys[] = {
		"access_token", "refresh_token", "id_token", "auth_token", "login_token",
		"accesstoken", "refreshtoken", "authorization", "client_secret", "password",
		"token", NULL,
	};
	size_t i = 0;
	bool bearer = false;
	if (starts_with(t, n, "bearer") && n > 6 && is_space((unsigned char)t[6])) {
		i = 6;
		bearer = true;
	} else {
		for (unsigned k = 0; keys[k] && !i; k++) {
			size_t w = strlen(keys[k]);
			if (starts_with(t, n, keys[k]) && (n == w || !is_word((unsigned char)t[w])))
				i = w;
		}
		if (!i)
			return false;
		/* "key": / key= / key: / <key> */
		if (i < n && (t[i] == '"' || t[i] == '\''))
			i++;
		while (i < n && (t[i] == ' ' || t[i] == '\t'))
			i++;
		if (i >= n || (t[i] != ':' && t[i] != '=' && t[i] != '>'))
			return false;
		i++;
	}
	while (i < n && (t[i] == ' ' || t[i] == '\t'))
		i++;
	if (!bearer && i < n && (t[i] == '"' || t[i] == '\''))
		i++;
	/* "Authorization: Bearer xyz": keep the scheme word, hide what follows */
	if (!bearer) {
		static const char *const schemes[] = { "bearer", "basic", "token", NULL };
		for (unsigned k = 0; schemes[k]; k++) {
			size_t w = strlen(schemes[k]);
			if (starts_with(t + i, n - i, schemes[k]) && n - i > w &&
			    (t[i + w] == ' ' || t[i + w] == '\t')) {
				i += w;
				while (i < n && (t[i] == ' ' || t[i] == '\t'))
					i++;
				break;
			}
		}
	}
	size_t v = i;
	while (v < n && !ends_value((unsigned char)t[v]))
		v++;
	if (v == i)
		return false;
	*keep = i;
	*secret = v - i;
	return true;
}

/*
 * At @t (the start of a run of base64 characters and dots): the run's
 * length in *@runlen, and whether it looks like a token: a dot-separated
 * segment of REDACT_MIN_RUN or more characters, or a JWT (three or more
 * non-empty segments, the first a base64url JSON header "eyJ...").
 */
static bool run_rule(const char *t, size_t n, size_t *runlen)
{
	size_t i = 0, seg = 0, segs = 0, longest = 0;
	bool empty_seg = false;
	while (i < n && (is_b64((unsigned char)t[i]) || t[i] == '.')) {
		if (t[i] == '.') {
			empty_seg |= seg == 0;
			segs++;
			seg = 0;
		} else if (++seg > longest) {
			longest = seg;
		}
		i++;
	}
	empty_seg |= seg == 0;
	segs++;
	*runlen = i;
	if (longest >= REDACT_MIN_RUN)
		return true;
	return segs >= 3 && !empty_seg && starts_with(t, n, "eyJ");
}

char *redact_text(const char *text, size_t len, char *out, size_t outsz)
{
	struct out o = { .buf = out, .cap = outsz ? outsz - 1 : 0 };
	if (!outsz)
		return out;
	if (!text)
		len = 0;
	size_t i = 0;
	while (i < len && !o.cut) {
		const char *t = text + i;
		size_t n = len - i;
		unsigned char prev = i ? (unsigned char)text[i - 1] : ' ';
		size_t keep, secret;
		if (!is_word(prev) && keyword_rule(t, n, &keep, &secret)) {
			puts_n(&o, t, keep);
			puts_n(&o, REDACT_MARK, strlen(REDACT_MARK));
			i += keep + secret;
			continue;
		}
		bool in_run = is_b64((unsigned char)*t) || *t == '.';
		bool run_start = !is_b64(prev) && prev != '.';
		size_t runlen;
		if (in_run && run_start && run_rule(t, n, &runlen)) {
			puts_n(&o, REDACT_MARK, strlen(REDACT_MARK));
			i += runlen;
			continue;
		}
		put(&o, *t);
		i++;
	}
	if (i < len)
		o.cut = true;
	if (o.cut && o.cap >= 3) {
		size_t at = o.len + 3 <= o.cap ? o.len : o.cap - 3;
		memcpy(out + at, "...", 3);
		o.len = at + 3;
	}
	out[o.len] = '\0';
	return out;
}

char *redact_str(const char *text, char *out, size_t outsz)
{
	return redact_text(text, text ? strlen(text) : 0, out, outsz);
}

bool redact_is_token(const char *s, size_t len)
{
	size_t runlen;
	if (!s || !len || !(is_b64((unsigned char)s[0]) || s[0] == '.'))
		return false;
	return run_rule(s, len, &runlen) && runlen == len;
}
