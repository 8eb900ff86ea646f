/*
 * net/jfs_xml_doc.c — the small JFS XML documents: the user document
 * (quota, devices), a device document (its mountpoints), and the error
 * document with its errno (through the one status table, net/http.h).
 */
#include "net/jfs_xml_int.h"

#include "net/http.h"

#include <errno.h>
#include <string.h>

void jx_ud_start(struct jfs_xml *x, enum el id, const XML_Char *name, const XML_Char **atts)
{
	unsigned d = x->depth;
	enum el want_root = x->kind == K_USER ? EL_USER : EL_DEVICE;
	enum el list = x->kind == K_USER ? EL_DEVICES : EL_MOUNTPOINTS;
	enum el item = x->kind == K_USER ? EL_DEVICE : EL_MOUNTPOINT;
	if (d == 1) {
		if (id != want_root)
			jx_fail(x, -EIO, "unexpected document (want <%s>)",
			     x->kind == K_USER ? "user" : "device");
		return;
	}
	if (d == 2) {
		if (x->kind == K_USER && (id == EL_ACCOUNT_TYPE || id == EL_CAPACITY ||
					  id == EL_USAGE))
			x->collect_depth = d;
		if (x->kind == K_DEVICE && (id == EL_NAME || id == EL_TYPE || id == EL_SIZE))
			x->collect_depth = d;
		return;
	}
	if (d == 3 && x->stack[1] == list && id == item) {
		x->entry_depth = d;
		jx_text_clear(&x->name);
		jx_text_clear(&x->path);
		x->sub_size = 0;
		return;
	}
	if (d == 4 && x->entry_depth == 3 &&
	    (id == EL_NAME || id == EL_SIZE || (x->kind == K_USER && id == EL_TYPE)))
		x->collect_depth = d;
}

void jx_ud_end(struct jfs_xml *x, enum el id, bool text)
{
	unsigned d = x->depth;
	if (text && d == 2) {
		switch (id) {
		case EL_ACCOUNT_TYPE:
			jx_copy_trunc(x->user.account_type, sizeof(x->user.account_type),
				   jx_text_str(&x->text), x->text.len);
			break;
		case EL_CAPACITY:
			jx_parse_i64(x, "capacity", &x->user.capacity);
			break;
		case EL_USAGE:
			jx_parse_u63(x, "usage", &x->user.usage);
			break;
		case EL_NAME:
			jx_text_set(x, &x->rname, jx_text_str(&x->text), x->text.len);
			break;
		case EL_TYPE:
			jx_text_set(x, &x->rtype, jx_text_str(&x->text), x->text.len);
			break;
		case EL_SIZE:
			jx_parse_u63(x, "size", &x->dev.size);
			break;
		default:
			break;
		}
		return;
	}
	if (text && d == 4 && x->entry_depth == 3) {
		if (id == EL_NAME)
			jx_text_set(x, &x->name, jx_text_str(&x->text), x->text.len);
		else if (id == EL_TYPE)
			jx_text_set(x, &x->path, jx_text_str(&x->text), x->text.len);
		else if (id == EL_SIZE)
			jx_parse_u63(x, "size", &x->sub_size);
		return;
	}
	if (d == 3 && x->entry_depth == 3) {
		x->entry_depth = 0;
		if (!x->name.len) {
			jx_fail(x, -EIO, "<%s> without a name",
			     x->kind == K_USER ? "device" : "mountPoint");
			return;
		}
		x->count++;
		int err = 0;
		if (x->kind == K_USER && x->dev_cb) {
			struct jfs_xml_device dev = {
				.name = jx_text_str(&x->name), .type = jx_text_str(&x->path),
				.size = x->sub_size,
			};
			err = x->dev_cb(x->ctx, &dev);
		} else if (x->kind == K_DEVICE && x->mp_cb) {
			err = x->mp_cb(x->ctx, jx_text_str(&x->name), x->sub_size);
		}
		if (err < 0)
			jx_fail(x, err, "stopped by the callback");
	}
}

/* ---------------------------------------------------------------------- */
/* error document                                                         */

void jx_err_start(struct jfs_xml *x, enum el id, const XML_Char *name, const XML_Char **atts)
{
	if (x->depth == 1 && id != EL_ERROR)
		jx_fail(x, -EIO, "not an <error> document");
	else if (x->depth == 2 && (id == EL_CODE || id == EL_MESSAGE || id == EL_REASON))
		x->collect_depth = 2;
}

void jx_err_end(struct jfs_xml *x, enum el id, bool text)
{
	if (!text || x->depth != 2)
		return;
	int64_t code;
	switch (id) {
	case EL_CODE:
		if (jx_parse_i64(x, "code", &code) == 0) {
			if (code < 0 || code > 999)
				jx_fail(x, -EIO, "bad <code>");
			else
				x->error->code = (long)code;
		}
		break;
	case EL_MESSAGE:
		jx_copy_trunc(x->error->message, sizeof(x->error->message), jx_text_str(&x->text),
			   x->text.len);
		break;
	case EL_REASON:
		jx_copy_trunc(x->error->reason, sizeof(x->error->reason), jx_text_str(&x->text),
			   x->text.len);
		break;
	default:
		break;
	}
}

/* ---------------------------------------------------------------------- */
/* Errors                                                                 */

int jfs_xml_parse_error(const void *body, size_t len, struct jfs_xml_error *out)
{
	memset(out, 0, sizeof(*out));
	if (!body || !len)
		return -EIO;
	struct jfs_xml *x;
	int err = jx_create(K_ERROR, &(struct jx_callbacks){ 0 }, NULL, &x);
	if (err)
		return err;
	x->error = out;
	err = jfs_xml_feed(x, body, len);
	if (!err)
		err = jfs_xml_finish(x);
	jfs_xml_free(x);
	if (err) {
		memset(out, 0, sizeof(*out));
		return -EIO;
	}
	return 0;
}

int jfs_xml_error_errno(long http_status, const struct jfs_xml_error *e, int fallback)
{
	long code = e && e->code ? e->code : http_status;
	const char *msg = e ? e->message : "";
	if (strstr(msg, "longer than 255"))
		return -ENAMETOOLONG;
	if (code == 404 || strstr(msg, "NoSuchFileException") ||
	    strstr(msg, "NoSuchPathException") || strstr(msg, "NoSuchMountPointException") ||
	    strstr(msg, "NoSuchDeviceException"))
		return -ENOENT;
	return http_status_errno_or(code, fallback);
}

