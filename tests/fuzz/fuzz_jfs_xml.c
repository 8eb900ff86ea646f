/*
 * tests/fuzz/fuzz_jfs_xml.c — libFuzzer target for net/jfs_xml.
 *
 * The first input byte picks a chunk size (1..16); the rest is a response
 * body. It goes through every decoder kind (list, stat, liststream, user,
 * device) twice, in one piece and in chunks, and the two runs must agree
 * exactly (result, entry count, a digest of every delivered field): what the
 * decoders decide may not depend on how curl happens to cut the body. Every
 * delivered entry is checked against the contract (non-NULL name, non-empty
 * names in listings, sizes >= 0, MD5 "" or 32 lower-case hex, ...), and the
 * error-body decoder must give NUL-terminated, bounded texts. Memory safety
 * is ASan's job.
 *
 * Build: make fuzz          (clang; library instrumented, ASan + UBSan;
 *                            FUZZBUILD=dir picks the object directory)
 * Run:   mkdir -p /tmp/corpus && build-fuzz/fuzz/fuzz_jfs_xml \
 *          -dict=tests/fuzz/jfs_xml.dict -max_total_time=60 \
 *          /tmp/corpus tests/fuzz/jfs_xml_seeds
 */
#include "fuzz.h"
#include "net/jfs_xml.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind { K_LIST, K_STAT, K_LISTSTREAM, K_USER, K_DEVICE, K_COUNT };

struct digest {
	uint64_t h;
	uint64_t n;
	enum kind kind;
};

static void mix(struct digest *d, const void *p, size_t len)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < len; i++) {
		d->h ^= s[i];
		d->h *= 0x100000001b3ULL;
	}
	d->h ^= 0xff;                    /* field separator */
	d->h *= 0x100000001b3ULL;
}

static void mix_str(struct digest *d, const char *s)
{
	if (s)
		mix(d, s, strlen(s));
	else
		mix(d, "\x01(null)", 7);
}

static void check_md5(const char *m)
{
	size_t n = strlen(m);
	CHECK(n == 0 || n == 32);
	for (size_t i = 0; i < n; i++)
		CHECK((m[i] >= '0' && m[i] <= '9') || (m[i] >= 'a' && m[i] <= 'f'));
}

static int on_entry(void *ctx, const struct jfs_entry *e)
{
	struct digest *d = ctx;
	CHECK(e->name != NULL);
	if (d->kind == K_LIST)
		CHECK(e->name[0] != '\0' && e->parent == NULL);
	if (d->kind == K_LISTSTREAM) {
		CHECK(e->parent != NULL);
		CHECK(e->is_dir || (e->name[0] != '\0' && (e->completed || e->bad)));
		CHECK(e->parent[0] != '/' && !strstr(e->parent, "//"));
		CHECK(e->name[0] != '\0' || e->parent[0] == '\0');
	}
	CHECK(e->size >= 0 && e->revision >= 0 && e->latest_size >= -1);
	CHECK(e->size <= JFS_SIZE_MAX && e->latest_size <= JFS_SIZE_MAX);
	/* a refused value spoils one file: nothing of its numbers is passed on */
	if (e->bad)
		CHECK(!e->is_dir && e->bad[0] && !e->completed && !e->has_latest &&
		      e->size == 0 && e->revision == 0 && !e->md5[0] && !e->modified);
	check_md5(e->md5);
	check_md5(e->latest_md5);
	if (e->is_dir)
		CHECK(e->size == 0 && !e->completed && !e->has_latest);
	d->n++;
	mix_str(d, e->name);
	mix_str(d, e->parent);
	mix_str(d, e->mime);
	mix_str(d, e->latest_state);
	mix_str(d, e->bad);
	unsigned char flags[4] = { e->is_dir, e->deleted, e->completed, e->has_latest };
	mix(d, flags, sizeof(flags));
	int64_t nums[7] = { e->size, e->revision, e->latest_size, (int64_t)e->created,
			    (int64_t)e->modified, (int64_t)e->updated, 0 };
	mix(d, nums, sizeof(nums));
	mix_str(d, e->md5);
	mix_str(d, e->latest_md5);
	return 0;
}

static int on_revision(void *ctx, const struct jfs_xml_revision *r)
{
	struct digest *d = ctx;
	CHECK(r->state && r->mime && r->number >= 0 && r->size >= -1);
	check_md5(r->md5);
	d->n++;
	mix_str(d, r->state);
	mix_str(d, r->mime);
	mix(d, &r->size, sizeof(r->size));
	return 0;
}

static int on_device(void *ctx, const struct jfs_xml_device *dv)
{
	struct digest *d = ctx;
	CHECK(dv->name && dv->name[0] && dv->type && dv->size >= 0);
	d->n++;
	mix_str(d, dv->name);
	mix_str(d, dv->type);
	return 0;
}

static int on_mountpoint(void *ctx, const char *name, int64_t size)
{
	struct digest *d = ctx;
	CHECK(name && name[0] && size >= 0);
	d->n++;
	mix_str(d, name);
	return 0;
}

/* Decode @data with a decoder of @kind, fed @chunk bytes at a time (0: whole).
 * Returns the result; *d gets the digest of everything delivered. */
static int decode(enum kind kind, const uint8_t *data, size_t size, size_t chunk,
		  struct digest *d)
{
	memset(d, 0, sizeof(*d));
	d->h = 0xcbf29ce484222325ULL;
	d->kind = kind;
	struct jfs_xml *x = NULL;
	int rc;
	switch (kind) {
	case K_LIST:
		rc = jfs_xml_new_list(on_entry, d, &x);
		break;
	case K_STAT:
		rc = jfs_xml_new_stat(on_revision, d, &x);
		break;
	case K_LISTSTREAM:
		rc = jfs_xml_new_liststream("/Archive", on_entry, d, &x);
		break;
	case K_USER:
		rc = jfs_xml_new_user(on_device, d, &x);
		break;
	default:
		rc = jfs_xml_new_device(on_mountpoint, d, &x);
		break;
	}
	CHECK(rc == 0);
	if (!chunk)
		chunk = size ? size : 1;
	rc = 0;
	for (size_t off = 0; off < size && rc == 0; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		rc = jfs_xml_feed(x, data + off, n);
		CHECK(rc <= JFS_XML_DONE);
	}
	CHECK(rc != JFS_XML_DONE || kind == K_STAT);
	if (rc == 0 || rc == JFS_XML_DONE)
		rc = jfs_xml_finish(x);
	if (rc < 0) {
		CHECK(jfs_xml_errmsg(x)[0] != '\0');
		CHECK(rc == -EIO || rc == -ENOENT || rc == -ENOTDIR || rc == -ENOMEM);
		if (rc != -EIO)
			CHECK(kind == K_LIST);
	}
	CHECK(jfs_xml_mem_peak(x) < (8u << 20));
	if (rc == 0 && kind == K_STAT) {
		const struct jfs_entry *e = jfs_xml_stat_entry(x);
		CHECK(e != NULL);
		struct digest saved = *d;
		d->kind = K_STAT;
		on_entry(d, e);
		d->n = saved.n;           /* count revisions only */
	} else if (kind == K_STAT) {
		CHECK(jfs_xml_stat_entry(x) == NULL);
	}
	if (rc == 0 && kind == K_USER) {
		const struct jfs_xml_user *u = jfs_xml_user_info(x);
		CHECK(u != NULL && u->usage >= 0);
		CHECK(strlen(u->account_type) < sizeof(u->account_type));
		mix(d, &u->capacity, sizeof(u->capacity));
	}
	if (rc == 0 && kind == K_DEVICE) {
		const struct jfs_xml_device *dv = jfs_xml_device_info(x);
		CHECK(dv != NULL && dv->name && dv->type && dv->size >= 0);
		mix_str(d, dv->name);
	}
	jfs_xml_free(x);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t chunk = (size_t)(data[0] % 16) + 1;
	data++;
	size--;
	for (enum kind k = 0; k < K_COUNT; k++) {
		struct digest whole, pieces;
		int a = decode(k, data, size, 0, &whole);
		int b = decode(k, data, size, chunk, &pieces);
		CHECK(a == b);
		CHECK(whole.n == pieces.n && whole.h == pieces.h);
	}
	struct jfs_xml_error e;
	int rc = jfs_xml_parse_error(data, size, &e);
	CHECK(rc == 0 || rc == -EIO);
	CHECK(memchr(e.message, '\0', sizeof(e.message)) != NULL);
	CHECK(memchr(e.reason, '\0', sizeof(e.reason)) != NULL);
	CHECK(e.code >= 0 && e.code <= 999);
	if (rc < 0)
		CHECK(e.code == 0 && e.message[0] == '\0');
	int err = jfs_xml_error_errno(400, rc == 0 ? &e : NULL, -EPROTO);
	CHECK(err < 0);
	return 0;
}
