/*
 * net/jfs_upload.c — uploads through the JSON API: allocate (what the
 * service already has, where to send the rest), the data POST from a file
 * descriptor (cancellable, with progress), and emptying the trash.
 */
#include "net/jfs_int.h"

#include "lib/log.h"
#include "lib/md5.h"
#include "lib/xstr.h"
#include "net/jfs_json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int jfs_allocate(struct jfs *j, const struct jfs_alloc_req *req, struct jfs_alloc *out)
{
	memset(out, 0, sizeof(*out));
	if (jfs_path_check(req->path))
		return -EINVAL;
	char *body;
	int rc = jfs_json_alloc_request(j->device, j->mountpoint, req, &body);
	if (rc)
		return rc;
	char *url = xasprintf("%s/files/v1/allocate", j->api_url);
	if (!url) {
		free(body);
		return -ENOMEM;
	}
	struct http_request hr;
	http_request_init(&hr, "POST", url);
	hr.content_type = "application/json";
	hr.body = body;
	hr.body_len = strlen(body);
	hr.max_body = JFS_JSON_BODY_MAX;
	hr.secret_body = true;           /* the answer's upload_url is a capability */
	struct http_response resp;
	rc = jfs_request_json(j->http, &hr, &resp, "allocate");
	if (!rc) {
		rc = jfs_json_alloc_response(resp.body, resp.body_len, req->size, out);
		if (rc == -EIO)
			log_err("jfs: allocate '%s': bad answer", req->path);
	}
	http_response_release(&resp);
	free(url);
	free(body);
	return rc;
}

void jfs_alloc_release(struct jfs_alloc *a)
{
	if (!a)
		return;
	free(a->upload_url);
	memset(a, 0, sizeof(*a));
}

int jfs_upload_cancellable(struct jfs *j, const char *upload_url, int fd,
			   int64_t resume_pos, int64_t size, const char *md5,
			   const atomic_bool *cancel, time_t *out_modified)
{
	return jfs_upload_progress(j, upload_url, fd, resume_pos, size, md5, cancel, NULL,
				   out_modified);
}

int jfs_upload_progress(struct jfs *j, const char *upload_url, int fd, int64_t resume_pos,
			int64_t size, const char *md5, const atomic_bool *cancel,
			_Atomic int64_t *sent, time_t *out_modified)
{
	if (out_modified)
		*out_modified = 0;
	if (!jfs_url_ok(upload_url) || fd < 0 || size < 0 || resume_pos < 0 ||
	    resume_pos > size || !md5_hex_valid(md5))
		return -EINVAL;
	if (cancel && atomic_load(cancel))
		return -ECANCELED;
	struct http_request req;
	http_request_init(&req, "POST", upload_url);
	req.content_type = "application/octet-stream";
	req.body_fd = fd;
	req.body_fd_off = (off_t)resume_pos;
	req.body_fd_len = (off_t)(size - resume_pos);
	if (resume_pos > 0) {
		/* as rclone: Range (not Content-Range) names the bytes sent */
		req.range_first = resume_pos;
		req.range_last = size - 1;
	}
	req.max_body = JFS_JSON_BODY_MAX;
	req.cancel = cancel;             /* net/http cuts the transfer: -ECANCELED */
	req.sent = sent;
	struct http_response resp;
	int rc = jfs_request_json(j->http, &req, &resp, "upload");
	if (!rc) {
		rc = jfs_json_upload_response(resp.body, resp.body_len, size, md5, out_modified);
		if (rc == -EIO)
			log_err("jfs: upload: the service did not confirm %" PRId64 " bytes with MD5 %s",
				size, md5);
	}
	http_response_release(&resp);
	return rc;
}

int jfs_upload(struct jfs *j, const char *upload_url, int fd, int64_t resume_pos,
	       int64_t size, const char *md5, time_t *out_modified)
{
	return jfs_upload_cancellable(j, upload_url, fd, resume_pos, size, md5, NULL,
				      out_modified);
}

int jfs_purge_trash(struct jfs *j)
{
	char *url = xasprintf("%s/files/v1/purge_trash", j->api_url);
	if (!url)
		return -ENOMEM;
	struct http_request req;
	http_request_init(&req, "POST", url);
	req.max_body = JFS_JSON_BODY_MAX;
	struct http_response resp;
	int rc = jfs_request_json(j->http, &req, &resp, "purge trash");
	if (!rc) {
		int64_t folders, files;
		if (jfs_json_purge_response(resp.body, resp.body_len, &folders, &files) == 0)
			log_info("jfs: trash emptied (%" PRId64 " folders, %" PRId64 " files)",
				 folders, files);
	}
	http_response_release(&resp);
	free(url);
	return rc;
}
