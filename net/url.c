/*
 * net/url.c — see url.h.
 */
#include "net/url.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

bool url_host_is_loopback(const char *host, size_t len)
{
	char buf[64];
	if (!host || len == 0 || len >= sizeof(buf))
		return false;
	if (len == 9 && !strncasecmp(host, "localhost", 9))
		return true;
	if (host[0] == '[') {
		if (len < 3 || host[len - 1] != ']')
			return false;
		memcpy(buf, host + 1, len - 2);
		buf[len - 2] = '\0';
		struct in6_addr a6;
		if (inet_pton(AF_INET6, buf, &a6) != 1)
			return false; /* zone ids ("%25lo") included: not a plain literal */
		if (IN6_IS_ADDR_LOOPBACK(&a6))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
	}
	memcpy(buf, host, len);
	buf[len] = '\0';
	struct in_addr a4;
	/* inet_pton takes only the four-part decimal form: no "127.1", no hex */
	if (inet_pton(AF_INET, buf, &a4) != 1)
		return false;
	return (ntohl(a4.s_addr) >> 24) == 127;
}

enum url_verdict url_check(const char *url)
{
	if (!url)
		return URL_REFUSED;
	size_t n = strnlen(url, URL_MAX + 1);
	if (n > URL_MAX)
		return URL_REFUSED;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)url[i];
		if (c <= 0x20 || c == 0x7f)
			return URL_REFUSED;
	}
	bool plain;
	size_t scheme;
	if (!strncasecmp(url, "https://", 8)) {
		plain = false;
		scheme = 8;
	} else if (!strncasecmp(url, "http://", 7)) {
		plain = true;
		scheme = 7;
	} else {
		return URL_REFUSED;
	}
	const char *auth = url + scheme;
	size_t alen = strcspn(auth, "/?#");
	const char *host = auth, *end = auth + alen;
	const char *at = memchr(auth, '@', alen);
	if (at) {
		if (memchr(at + 1, '@', (size_t)(end - at - 1)))
			return URL_REFUSED;
		host = at + 1;
	}
	/* host[:port] or [v6]:port */
	const char *hend;
	if (host < end && *host == '[') {
		const char *rb = memchr(host, ']', (size_t)(end - host));
		if (!rb)
			return URL_REFUSED;
		hend = rb + 1;
	} else {
		hend = memchr(host, ':', (size_t)(end - host));
		if (!hend)
			hend = end;
	}
	if (hend == host)
		return URL_REFUSED;
	if (hend < end) {
		if (*hend != ':')
			return URL_REFUSED;
		size_t plen = (size_t)(end - hend - 1);
		if (plen < 1 || plen > 5 || strspn(hend + 1, "0123456789") < plen)
			return URL_REFUSED;
	}
	if (!plain || url_host_is_loopback(host, (size_t)(hend - host)))
		return URL_OK;
	return URL_NEEDS_FLAG;
}

int url_allowed(const char *url, bool insecure_http)
{
	switch (url_check(url)) {
	case URL_OK:
		return 0;
	case URL_NEEDS_FLAG:
		return insecure_http ? 0 : -EPERM;
	default:
		return -EINVAL;
	}
}
