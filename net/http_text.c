/*
 * net/http_text.c — the text helpers of net/http.h: percent-escaping for
 * URLs, form-value decoding, and the value of one response header line.
 * Pure (libcurl's escape functions need no handle).
 */
#include "net/http.h"

#include <curl/curl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *http_header_value(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);
	if (len <= n || line[n] != ':' || strncasecmp(line, name, n))
		return NULL;
	const char *v = line + n + 1;
	const char *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
		end--;
	return strndup(v, (size_t)(end - v));
}

char *http_escape(const char *s, size_t len)
{
	/* curl_easy_escape keeps exactly A-Za-z0-9-._~ and needs no handle. */
	if (len > INT_MAX)
		return NULL;
	char *e = curl_easy_escape(NULL, s, (int)len);
	if (!e)
		return NULL;
	char *out = strdup(e);
	curl_free(e);
	return out;
}

char *http_form_unescape(const char *s, size_t len, size_t *outlen)
{
	if (len > INT_MAX)
		return NULL;
	char *plus = malloc(len + 1);
	if (!plus)
		return NULL;
	for (size_t i = 0; i < len; i++)
		plus[i] = s[i] == '+' ? ' ' : s[i];
	plus[len] = '\0';
	int n = 0;
	/* curl_easy_unescape decodes %XX (and needs no handle) */
	char *d = curl_easy_unescape(NULL, plus, (int)len, &n);
	explicit_bzero(plus, len);
	free(plus);
	if (!d)
		return NULL;
	char *out = malloc((size_t)n + 1);
	if (out) {
		memcpy(out, d, (size_t)n);
		out[n] = '\0';
		if (outlen)
			*outlen = (size_t)n;
	}
	explicit_bzero(d, (size_t)n);
	curl_free(d);
	return out;
}
