/*
 * net/jfs_account.c — the account side of the Jottacloud client: quota
 * (the user document), the connectivity probe, devices and their
 * mountpoints, and the customer API's internal user name.
 */
#include "net/jfs_int.h"

#include "lib/grow.h"
#include "lib/log.h"
#include "lib/xstr.h"
#include "net/jfs_json.h"
#include "net/jfs_xml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define JFS_CUSTOMER_MAX    (1u << 20)    /* customer document */
#define JFS_MAX_DEVICES     1024
#define JFS_MAX_MOUNTPOINTS 4096
#define JFS_NAMES_BYTES_MAX (1u << 20)    /* all device or mountpoint names together */

int jfs_quota(struct jfs *j, struct jfs_quota *out)
{
	memset(out, 0, sizeof(*out));
	struct xml_sink s = { 0 };
	int rc = jfs_xml_new_user(NULL, NULL, &s.x);
	if (rc)
		return rc;
	struct http_request req;
	jfs_get_init(&req, j->user_url);
	rc = jfs_request_xml(j, &req, &s, "quota", "");
	if (!rc) {
		const struct jfs_xml_user *u = jfs_xml_user_info(s.x);
		out->usage = u->usage;
		out->capacity = u->capacity;
		memcpy(out->account_type, u->account_type, sizeof(out->account_type));
	}
	jfs_xml_free(s.x);
	return rc;
}

int jfs_ping(struct jfs *j)
{
	struct http_request req;
	struct http_response resp = { 0 };

	jfs_get_init(&req, j->user_url);
	req.probe = true;
	req.sink = &jfs_discard;
	int rc = http_request_do(j->http, &req, &resp);
	if (rc && resp.status > 0 && resp.status < 500)
		rc = 0;                  /* an answer: the service is there */
	http_response_release(&resp);
	return rc;
}

/* A bounded list of names (devices, mountpoints), NULL-terminated. */
struct namelist {
	char **v;
	size_t n, cap, bytes, max;
	int err;
};

static void namelist_clear(void *ctx)
{
	struct namelist *l = ctx;
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	l->n = l->bytes = 0;
	if (l->v)
		l->v[0] = NULL;
	l->err = 0;
}

static int namelist_add(struct namelist *l, const char *name)
{
	size_t len = strlen(name);
	if (l->n >= l->max || len > JFS_NAMES_BYTES_MAX - l->bytes)
		return l->err = -EIO;
	/* room for the name and the terminating NULL */
	if (array_grow(&l->v, &l->cap, l->n + 1, sizeof(*l->v), 8) < 0)
		return l->err = -ENOMEM;
	if (!(l->v[l->n] = strdup(name)))
		return l->err = -ENOMEM;
	l->v[++l->n] = NULL;
	l->bytes += len;
	return 0;
}

static void namelist_free(struct namelist *l)
{
	namelist_clear(l);
	free(l->v);
	l->v = NULL;
	l->cap = 0;
}

static int on_device(void *ctx, const struct jfs_xml_device *d)
{
	return namelist_add(ctx, d->name);
}

static int on_mountpoint(void *ctx, const char *name, int64_t size)
{
	(void)size;
	return namelist_add(ctx, name);
}

/* GET the device document of @device: mountpoint names into @mps; the
 * document's own fields stay in @s->x (jfs_xml_device_info). */
static int device_request(struct jfs *j, const char *device, struct namelist *mps,
			  struct xml_sink *s)
{
	struct buf b;
	buf_init(&b, 0);
	buf_adds(&b, j->user_url);
	buf_adds(&b, "/");
	jfs_buf_add_escaped(&b, device, strlen(device));
	char *url = buf_take(&b);
	if (!url)
		return -ENOMEM;
	int rc = jfs_xml_new_device(on_mountpoint, mps, &s->x);
	if (!rc) {
		s->on_reset = namelist_clear;
		s->reset_ctx = mps;
		struct http_request req;
		jfs_get_init(&req, url);
		rc = jfs_request_xml(j, &req, s, "device", device);
	}
	free(url);
	return rc;
}

int jfs_devices(struct jfs *j, jfs_device_cb cb, void *ctx)
{
	struct namelist devs = { .max = JFS_MAX_DEVICES };
	struct xml_sink s = { .on_reset = namelist_clear, .reset_ctx = &devs };
	int rc = jfs_xml_new_user(on_device, &devs, &s.x);
	if (!rc) {
		struct http_request req;
		jfs_get_init(&req, j->user_url);
		rc = jfs_request_xml(j, &req, &s, "devices", "");
	}
	jfs_xml_free(s.x);
	for (size_t i = 0; !rc && i < devs.n; i++) {
		struct namelist mps = { .max = JFS_MAX_MOUNTPOINTS };
		struct xml_sink ds = { 0 };
		rc = device_request(j, devs.v[i], &mps, &ds);
		if (!rc) {
			const struct jfs_xml_device *d = jfs_xml_device_info(ds.x);
			static const char *const none[] = { NULL };
			struct jfs_device_info info = {
				.name = d->name[0] ? d->name : devs.v[i],
				.type = d->type,
				.size = d->size,
				.mountpoints = mps.n ? (const char *const *)mps.v : none,
			};
			rc = cb(ctx, &info);
		}
		jfs_xml_free(ds.x);
		namelist_free(&mps);
	}
	namelist_free(&devs);
	return rc;
}

/* The caller tells the user (one line, with what to do): only a debug trace here. */
int jfs_check_mountpoint(struct jfs *j)
{
	struct namelist mps = { .max = JFS_MAX_MOUNTPOINTS };
	struct xml_sink s = { 0 };
	int rc = device_request(j, j->device, &mps, &s);
	if (!rc) {
		rc = -ENOENT;
		for (size_t i = 0; i < mps.n; i++)
			if (!strcasecmp(mps.v[i], j->mountpoint))
				rc = 0;
		if (rc)
			log_debug("jfs: no mountpoint '%s' on device '%s'", j->mountpoint, j->device);
	} else if (rc == -ENOENT) {
		log_debug("jfs: no device '%s'", j->device);
	}
	jfs_xml_free(s.x);
	namelist_free(&mps);
	return rc;
}

int jfs_customer_username(struct http_client *http, const char *api_url, char **username)
{
	*username = NULL;
	if (!http || !jfs_url_ok(api_url))
		return -EINVAL;
	char *base = jfs_dup_trimmed(api_url);
	char *url = base ? xasprintf("%s/account/v1/customer", base) : NULL;
	free(base);
	if (!url)
		return -ENOMEM;
	struct http_request req;
	jfs_get_init(&req, url);
	req.max_body = JFS_CUSTOMER_MAX;
	struct http_response resp;
	int rc = jfs_request_json(http, &req, &resp, "customer");
	if (!rc) {
		rc = jfs_json_customer_username(resp.body, resp.body_len, username);
		if (rc == -EIO)
			log_err("jfs: customer: no valid username in the answer");
	}
	http_response_release(&resp);
	free(url);
	return rc;
}
