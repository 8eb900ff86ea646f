/*
 * net/http_errno.c — the one wire -> errno mapping: HTTP statuses (and the
 * JFS <code> of an error document, which repeats them) and curl transport
 * errors become negative errno here and nowhere else (net/http.h). The
 * JSON and XML error decoders (net/jfs_json.c, net/jfs_xml_doc.c) only add
 * what an error body names (an exception, a message) and fall back to
 * http_status_errno_or() for the status.
 */
#include "net/http.h"

#include <curl/curl.h>
#include <errno.h>

int http_status_errno_or(long status, int other)
{
	switch (status) {
	case 400: return -EINVAL;
	case 401:
	case 403: return -EACCES;
	case 404:
	case 410: return -ENOENT;
	case 408: return -ETIMEDOUT;
	case 409: return -EEXIST;
	case 412: return -EAGAIN;
	case 413:
	case 507: return -ENOSPC;
	case 414: return -ENAMETOOLONG;
	case 416: return -EINVAL;
	case 420: return -EAGAIN;  /* IncompleteUploadOpenApiException: re-allocate */
	case 429: return -EAGAIN;
	default:  return other;    /* 2xx, 5xx, unexpected 1xx/3xx/4xx, 0 (no response) */
	}
}

int http_status_errno(long status)
{
	if (status >= 200 && status < 300)
		return 0;
	return http_status_errno_or(status, -EIO);
}

int http_transport_errno(int curl_code)
{
	switch ((CURLcode)curl_code) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_USE_SSL_FAILED:
		return -EPROTO;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_BAD_FUNCTION_ARGUMENT:
		return -EINVAL;
	default:
		/* PARTIAL_FILE, RECV_ERROR, SEND_ERROR, GOT_NOTHING, HTTP2*,
		 * WEIRD_SERVER_REPLY, WRITE/READ_ERROR, ... */
		return -EIO;
	}
}
