/*
 * net/http_ca.c — the CA bundle of an HTTP client: the system bundle plus
 * the PEM certificates of -o cafile, built once in memory and handed to
 * curl (CURLOPT_CAINFO_BLOB) by each attempt. Certificates are always
 * verified; this only adds trust anchors.
 */
#include "net/http_int.h"

#include "lib/fsutil.h"
#include "lib/log.h"

#include <errno.h>
#include <limits.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

/* Read the CA file @path whole (at most @max bytes). Symlinks are
 * followed (system bundles and user CA files often are links), so the
 * path is resolved before lib/fsutil's reader, which does not follow a
 * last-component link. 0 or -errno. */
static int read_ca_file(const char *path, size_t max, char **out, size_t *out_len)
{
	char *real = realpath(path, NULL);
	if (!real)
		return -errno;
	int err = file_read_max(real, max, out, out_len);
	free(real);
	return err;
}

/* Number of PEM certificates in @pem (0 when none parse). */
static int pem_cert_count(const char *pem, size_t len)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return 0;
	int n = 0;
	X509 *x;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		X509_free(x);
		n++;
	}
	BIO_free(bio);
	return n;
}

/* The path of curl's built-in CA bundle (CURLINFO_CAINFO, curl >= 7.84). */
static const char *system_ca_bundle(void)
{
	const char *path = NULL;
#if LIBCURL_VERSION_NUM >= 0x075400
	CURL *h = curl_easy_init();
	if (h) {
		char *p = NULL;
		static __thread char buf[512];
		if (curl_easy_getinfo(h, CURLINFO_CAINFO, &p) == CURLE_OK && p &&
		    strlen(p) < sizeof(buf)) {
			strcpy(buf, p);
			path = buf;
		}
		curl_easy_cleanup(h);
	}
#endif
	return path ? path : HTTP_SYSTEM_CA_BUNDLE;
}

int http_client_set_cafile(struct http_client *c, const char *cafile)
{
	struct ca_blob *blob;
	if (!cafile) {
		blob = calloc(1, sizeof(*blob) + 1);
		if (!blob)
			return -ENOMEM;
	} else {
		char *extra = NULL, *sys = NULL;
		size_t extra_len = 0, sys_len = 0;
		/* Failures are reported by the caller (a one-line message). */
		int err = read_ca_file(cafile, HTTP_CA_BUNDLE_MAX, &extra, &extra_len);
		if (err < 0)
			return err;
		if (pem_cert_count(extra, extra_len) == 0) {
			free(extra);
			return -EINVAL;
		}
		/* The system bundle may be missing (minimal containers): then the
		 * extra CA alone is trusted, which is what the user asked for. */
		const char *sys_path = system_ca_bundle();
		if (read_ca_file(sys_path, HTTP_CA_BUNDLE_MAX, &sys, &sys_len) < 0) {
			log_debug("http: no system CA bundle at %s", sys_path);
			sys = NULL;
			sys_len = 0;
		}
		size_t total = sys_len + 1 + extra_len + 1;
		blob = calloc(1, sizeof(*blob) + total);
		if (blob)
			blob->cafile = strdup(cafile);
		if (!blob || !blob->cafile) {
			free(blob);
			free(extra);
			free(sys);
			return -ENOMEM;
		}
		if (sys_len)
			memcpy(blob->data, sys, sys_len);
		blob->data[sys_len] = '\n';
		memcpy(blob->data + sys_len + 1, extra, extra_len);
		blob->len = sys_len + 1 + extra_len;
		free(extra);
		free(sys);
	}
	pthread_mutex_lock(&c->pool_lock);
	blob->next = c->ca;
	c->ca = blob;
	pthread_mutex_unlock(&c->pool_lock);
	return 0;
}

const char *http_client_cafile(const struct http_client *c)
{
	return c->ca ? c->ca->cafile : NULL;
}
