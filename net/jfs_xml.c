/*
 * net/jfs_xml.c — see jfs_xml.h.
 *
 * This file: element names, memory accounting, failing, the expat handlers
 * that dispatch to the per-kind functions, and the decoder's life cycle.
 * jfs_xml_value.c holds the text and value rules, jfs_xml_obj.c the list
 * and stat documents, jfs_xml_stream.c liststream, jfs_xml_doc.c the user,
 * device and error documents; they share net/jfs_xml_int.h.
 *
 * Structure: one expat parser per decoder with three handlers (start, end,
 * character data) shared by every document kind. They keep the element
 * stack (ids of known local names, bounded by JFS_XML_MAX_DEPTH), enforce
 * the limits, and collect the text of the leaf element being read into one
 * bounded buffer; the per-kind functions (jx_obj_*, jx_ls_*, jx_ud_*, jx_err_*)
 * decide what an element means from its id and depth and fill a small set
 * of accumulators that are reused from one entry to the next.
 *
 * Errors stop the parser (XML_StopParser) and are sticky. Expat may still
 * call a handler after a stop, so every handler returns at once when the
 * decoder has failed or is done.
 *
 * Threads: none here; a decoder belongs to its caller's thread.
 */
#include "net/jfs_xml_int.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------- */
/* Element names                                                          */

/* Sorted by name (strcmp order) for bsearch. */
static const struct el_name {
	const char *name;
	enum el id;
} el_names[] = {
	{ "abspath", EL_ABSPATH }, { "account-type", EL_ACCOUNT_TYPE }, { "capacity", EL_CAPACITY },
	{ "code", EL_CODE }, { "created", EL_CREATED },
	{ "currentRevision", EL_CUR_REV }, { "device", EL_DEVICE },
	{ "devices", EL_DEVICES }, { "error", EL_ERROR }, { "file", EL_FILE },
	{ "filename", EL_FILENAME }, { "files", EL_FILES }, { "folder", EL_FOLDER },
	{ "folders", EL_FOLDERS }, { "latestRevision", EL_LATEST_REV },
	{ "md5", EL_MD5 }, { "message", EL_MESSAGE }, { "mime", EL_MIME },
	{ "modified", EL_MODIFIED }, { "mountPoint", EL_MOUNTPOINT },
	{ "mountPoints", EL_MOUNTPOINTS }, { "name", EL_NAME }, { "number", EL_NUMBER },
	{ "path", EL_PATH }, { "reason", EL_REASON }, { "revision", EL_REVISION },
	{ "revisions", EL_REVISIONS }, { "size", EL_SIZE }, { "state", EL_STATE },
	{ "stats", EL_STATS }, { "type", EL_TYPE }, { "updated", EL_UPDATED },
	{ "usage", EL_USAGE }, { "user", EL_USER },
};

/* The local part of a (possibly prefixed) XML name, as Go matches it. */
const char *jx_local_name(const char *name)
{
	const char *colon = strrchr(name, ':');
	return colon ? colon + 1 : name;
}

static int el_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct el_name *)elem)->name);
}

static enum el el_lookup(const char *name)
{
	const struct el_name *e = bsearch(jx_local_name(name), el_names,
					  sizeof(el_names) / sizeof(el_names[0]),
					  sizeof(el_names[0]), el_cmp);
	return e ? e->id : EL_OTHER;
}

/* ---------------------------------------------------------------------- */
/* Memory (accounted, so tests can prove the decoder stays bounded)        */

void jx_account(struct jfs_xml *x, size_t old_size, size_t new_size)
{
	x->mem = x->mem - old_size + new_size;
	if (x->mem > x->mem_peak)
		x->mem_peak = x->mem;
}

void *jx_realloc(struct jfs_xml *x, void *p, size_t old_size, size_t new_size)
{
	void *q = realloc(p, new_size);
	if (!q)
		return NULL;
	jx_account(x, old_size, new_size);
	return q;
}

void jx_free(struct jfs_xml *x, void *p, size_t size)
{
	if (!p)
		return;
	free(p);
	x->mem -= size;
}

/* ---------------------------------------------------------------------- */
/* Failing                                                                */

void jx_fail(struct jfs_xml *x, int err, const char *fmt, ...)
{
	if (x->err || x->done)
		return;
	x->err = err;
	char what[120];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(x->errmsg, sizeof(x->errmsg), "line %lu column %lu: %s",
		 (unsigned long)XML_GetCurrentLineNumber(x->parser),
		 (unsigned long)XML_GetCurrentColumnNumber(x->parser), what);
	XML_StopParser(x->parser, XML_FALSE);
}

/* Over a jfs_xml_set_limits() limit: -EFBIG, errmsg "more than N <what>"
 * (no position: the caller names the limit). */
int jx_over_limit(struct jfs_xml *x, uint64_t limit, const char *what)
{
	if (x->err || x->done)
		return x->err;
	x->err = -EFBIG;
	snprintf(x->errmsg, sizeof(x->errmsg), "more than %llu %s", (unsigned long long)limit,
		 what);
	XML_StopParser(x->parser, XML_FALSE);
	return x->err;
}

/* The document is complete for our purpose: stop without an error. */
void jx_finish_early(struct jfs_xml *x)
{
	x->done = true;
	XML_StopParser(x->parser, XML_FALSE);
}

/* Is the element being read part of one listed file (list: a child file;
 * liststream: a <file> item) rather than of the document itself? */
static bool in_listed_file(const struct jfs_xml *x)
{
	if (x->kind == K_LIST)
		return x->entry_depth && !x->entry_is_dir;
	if (x->kind == K_LISTSTREAM)
		return x->item_depth && x->item == EL_FILE;
	return false;
}

int jx_refuse(struct jfs_xml *x, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (in_listed_file(x)) {
		if (!x->bad[0])
			vsnprintf(x->bad, sizeof(x->bad), fmt, ap);
	} else {
		char what[120];
		vsnprintf(what, sizeof(what), fmt, ap);
		jx_fail(x, -EIO, "%s", what);
	}
	va_end(ap);
	return -EIO;
}

/* ---------------------------------------------------------------------- */
/* Expat handlers                                                         */

/* What each kind of document does when an element starts and ends. */
static const struct kind_ops {
	void (*start)(struct jfs_xml *x, enum el id, const XML_Char *name, const XML_Char **atts);
	void (*end)(struct jfs_xml *x, enum el id, bool text);
} kind_ops[] = {
	[K_LIST] = { jx_obj_start, jx_obj_end },
	[K_STAT] = { jx_obj_start, jx_obj_end },
	[K_LISTSTREAM] = { jx_ls_start, jx_ls_end },
	[K_USER] = { jx_ud_start, jx_ud_end },
	[K_DEVICE] = { jx_ud_start, jx_ud_end },
	[K_ERROR] = { jx_err_start, jx_err_end },
};

/* Every handler call marks progress: what expat buffers beyond the last
 * event is an unfinished token, capped by JFS_XML_MAX_PENDING. */
static void mark(struct jfs_xml *x)
{
	XML_Index i = XML_GetCurrentByteIndex(x->parser);
	if (i >= 0)
		x->last_event = (uint64_t)i;
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
	struct jfs_xml *x = ud;
	if (x->err || x->done)
		return;
	mark(x);
	if (x->depth >= JFS_XML_MAX_DEPTH) {
		jx_fail(x, -EIO, "elements nested deeper than %d", JFS_XML_MAX_DEPTH);
		return;
	}
	size_t n = 0;
	for (; atts[n]; n += 2) {
		if (n / 2 >= JFS_XML_MAX_ATTRS) {
			jx_fail(x, -EIO, "more than %d attributes", JFS_XML_MAX_ATTRS);
			return;
		}
		if (strlen(atts[n + 1]) > JFS_XML_MAX_TEXT) {
			jx_fail(x, -EIO, "attribute longer than %u bytes", JFS_XML_MAX_TEXT);
			return;
		}
	}
	enum el id = el_lookup(name);
	x->stack[x->depth++] = id;
	x->text_run = 0;
	unsigned before = x->collect_depth;
	kind_ops[x->kind].start(x, id, name, atts);
	if (x->collect_depth != before)
		jx_text_clear(&x->text);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	struct jfs_xml *x = ud;
	(void)name;
	if (x->err || x->done || !x->depth)
		return;
	mark(x);
	enum el id = x->stack[x->depth - 1];
	bool text = x->collect_depth == x->depth;
	if (text)
		x->collect_depth = 0;
	kind_ops[x->kind].end(x, id, text);
	x->depth--;
	x->text_run = 0;
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
	struct jfs_xml *x = ud;
	if (x->err || x->done || len <= 0)
		return;
	mark(x);
	x->text_run += (size_t)len;
	if (x->text_run > JFS_XML_MAX_TEXT) {
		jx_fail(x, -EIO, "text node longer than %u bytes", JFS_XML_MAX_TEXT);
		return;
	}
	if (x->collect_depth && x->collect_depth == x->depth)
		jx_text_add(x, &x->text, s, (size_t)len);
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
			       const XML_Char *pubid, int has_internal_subset)
{
	struct jfs_xml *x = ud;
	(void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
	jx_fail(x, -EIO, "DOCTYPE not allowed");
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int is_param,
				   const XML_Char *value, int value_len, const XML_Char *base,
				   const XML_Char *sysid, const XML_Char *pubid,
				   const XML_Char *notation)
{
	struct jfs_xml *x = ud;
	(void)name, (void)is_param, (void)value, (void)value_len, (void)base;
	(void)sysid, (void)pubid, (void)notation;
	jx_fail(x, -EIO, "entity declarations not allowed");
}

/* Comments and processing instructions are ignored, but bounded like text
 * (whether expat buffered them or saw them whole in one chunk). */
static void XMLCALL on_comment(void *ud, const XML_Char *data)
{
	struct jfs_xml *x = ud;
	if (x->err || x->done)
		return;
	mark(x);
	if (strlen(data) > JFS_XML_MAX_TEXT)
		jx_fail(x, -EIO, "comment longer than %u bytes", JFS_XML_MAX_TEXT);
}

static void XMLCALL on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
	struct jfs_xml *x = ud;
	(void)target;
	if (x->err || x->done)
		return;
	mark(x);
	if (strlen(data) > JFS_XML_MAX_TEXT)
		jx_fail(x, -EIO, "processing instruction longer than %u bytes", JFS_XML_MAX_TEXT);
}

static void setup_parser(struct jfs_xml *x)
{
	XML_SetUserData(x->parser, x);
	XML_SetElementHandler(x->parser, on_start, on_end);
	XML_SetCharacterDataHandler(x->parser, on_text);
	XML_SetStartDoctypeDeclHandler(x->parser, on_doctype);
	XML_SetEntityDeclHandler(x->parser, on_entity_decl);
	XML_SetCommentHandler(x->parser, on_comment);
	XML_SetProcessingInstructionHandler(x->parser, on_pi);
}

/* ---------------------------------------------------------------------- */
/* Life cycle                                                             */

/* Forget the document (not the buffers). */
static void clear_state(struct jfs_xml *x)
{
	x->err = 0;
	x->done = false;
	x->finished = false;
	x->errmsg[0] = '\0';
	x->count = 0;
	x->fed = 0;
	x->bad[0] = '\0';
	x->last_event = 0;
	x->depth = 0;
	x->text_run = 0;
	x->collect_depth = 0;
	jx_text_clear(&x->text);
	x->root = JFS_XML_ROOT_NONE;
	x->entry_depth = 0;
	x->entry_is_dir = false;
	x->entry_deleted = false;
	jx_text_clear(&x->name);
	jx_text_clear(&x->origin);
	x->root_modified = 0;
	jx_rev_clear(&x->cur);
	jx_rev_clear(&x->latest);
	jx_rev_clear(&x->hist);
	x->rev = NULL;
	x->in_revisions = false;
	x->have_entry = false;
	jx_entry_init(&x->result);
	x->item_depth = 0;
	x->item = EL_OTHER;
	jx_text_clear(&x->path);
	jx_text_clear(&x->fname);
	x->stat_folders = x->stat_files = 0;
	x->have_stats = false;
	x->seen_folders = x->seen_files = 0;
	if (x->folders.slot)
		memset(x->folders.slot, 0, x->folders.cap * sizeof(*x->folders.slot));
	x->folders.n = 0;
	memset(&x->user, 0, sizeof(x->user));
	memset(&x->dev, 0, sizeof(x->dev));
	x->dev_have_info = false;
	jx_text_clear(&x->rname);
	jx_text_clear(&x->rtype);
	x->sub_size = 0;
	if (x->error)
		memset(x->error, 0, sizeof(*x->error));
}

int jx_create(enum kind kind, const struct jx_callbacks *cb, void *ctx, struct jfs_xml **out)
{
	*out = NULL;
	struct jfs_xml *x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->kind = kind;
	x->entry_cb = cb->entry;
	x->rev_cb = cb->rev;
	x->dev_cb = cb->dev;
	x->mp_cb = cb->mp;
	x->ctx = ctx;
	x->mem = x->mem_peak = sizeof(*x);
	/* UTF-8 in, UTF-8 out; the document's own declaration is honoured
	 * (expat only knows UTF-8/16, ISO-8859-1 and US-ASCII). */
	x->parser = XML_ParserCreate(NULL);
	if (!x->parser) {
		free(x);
		return -ENOMEM;
	}
	setup_parser(x);
	clear_state(x);
	*out = x;
	return 0;
}

int jfs_xml_new_list(jfs_entry_cb cb, void *ctx, struct jfs_xml **out)
{
	return jx_create(K_LIST, &(struct jx_callbacks){ .entry = cb }, ctx, out);
}

int jfs_xml_new_stat(jfs_xml_revision_cb cb, void *ctx, struct jfs_xml **out)
{
	return jx_create(K_STAT, &(struct jx_callbacks){ .rev = cb }, ctx, out);
}

int jfs_xml_new_user(jfs_xml_device_cb cb, void *ctx, struct jfs_xml **out)
{
	return jx_create(K_USER, &(struct jx_callbacks){ .dev = cb }, ctx, out);
}

int jfs_xml_new_device(jfs_xml_mountpoint_cb cb, void *ctx, struct jfs_xml **out)
{
	return jx_create(K_DEVICE, &(struct jx_callbacks){ .mp = cb }, ctx, out);
}

int jfs_xml_new_liststream(const char *prefix, jfs_entry_cb cb, void *ctx,
			   struct jfs_xml **out)
{
	int err = jx_create(K_LISTSTREAM, &(struct jx_callbacks){ .entry = cb }, ctx, out);
	if (err)
		return err;
	struct jfs_xml *x = *out;
	x->prefix_len = strlen(prefix);
	x->prefix = jx_realloc(x, NULL, 0, x->prefix_len + 1);
	if (!x->prefix) {
		jfs_xml_free(x);
		*out = NULL;
		return -ENOMEM;
	}
	memcpy(x->prefix, prefix, x->prefix_len + 1);
	return 0;
}

void jfs_xml_list_trashed(struct jfs_xml *x)
{
	x->list_trashed = true;
}

void jfs_xml_set_limits(struct jfs_xml *x, uint64_t max_entries, uint64_t max_bytes)
{
	x->max_entries = max_entries;
	x->max_bytes = max_bytes;
}

void jfs_xml_free(struct jfs_xml *x)
{
	if (!x)
		return;
	XML_ParserFree(x->parser);
	jx_text_release(x, &x->text);
	jx_text_release(x, &x->name);
	jx_text_release(x, &x->origin);
	jx_text_release(x, &x->cur.mime);
	jx_text_release(x, &x->latest.mime);
	jx_text_release(x, &x->hist.mime);
	jx_text_release(x, &x->path);
	jx_text_release(x, &x->fname);
	jx_text_release(x, &x->rname);
	jx_text_release(x, &x->rtype);
	jx_free(x, x->folders.slot, x->folders.cap * sizeof(*x->folders.slot));
	if (x->prefix)
		jx_free(x, x->prefix, x->prefix_len + 1);
	free(x);
}

int jfs_xml_reset(struct jfs_xml *x)
{
	if (!XML_ParserReset(x->parser, NULL))
		return -ENOMEM;
	setup_parser(x);
	clear_state(x);
	return 0;
}

/* Turn expat's own error into ours (-EIO), with its position and reason. */
static void fail_expat(struct jfs_xml *x)
{
	enum XML_Error code = XML_GetErrorCode(x->parser);
	x->err = -EIO;
	snprintf(x->errmsg, sizeof(x->errmsg), "line %lu column %lu: %s",
		 (unsigned long)XML_GetCurrentLineNumber(x->parser),
		 (unsigned long)XML_GetCurrentColumnNumber(x->parser),
		 XML_ErrorString(code) ? XML_ErrorString(code) : "malformed XML");
}

/* One XML_Parse call, with the result turned into 0 / DONE / -errno. */
static int parse_chunk(struct jfs_xml *x, const char *data, int len, bool final)
{
	x->fed += (uint64_t)len;
	if (XML_Parse(x->parser, data, len, final) == XML_STATUS_ERROR) {
		if (x->done)
			return JFS_XML_DONE;
		if (!x->err)
			fail_expat(x);
		return x->err;
	}
	if (x->done)
		return JFS_XML_DONE;
	if (x->err)
		return x->err;
	if (x->fed - x->last_event > JFS_XML_MAX_PENDING) {
		snprintf(x->errmsg, sizeof(x->errmsg),
			 "an unfinished token holds more than %u bytes", JFS_XML_MAX_PENDING);
		x->err = -EIO;
		XML_StopParser(x->parser, XML_FALSE);
		return x->err;
	}
	return 0;
}

int jfs_xml_feed(struct jfs_xml *x, const void *data, size_t len)
{
	if (x->err)
		return x->err;
	if (x->done)
		return JFS_XML_DONE;
	if (x->finished)
		return -EINVAL;
	if (x->max_bytes && (x->fed > x->max_bytes || len > x->max_bytes - x->fed))
		return jx_over_limit(x, x->max_bytes, "bytes");
	const char *p = data;
	while (len > 0) {
		int n = len > (size_t)INT_MAX / 2 ? INT_MAX / 2 : (int)len;
		int rc = parse_chunk(x, p, n, false);
		if (rc != 0)
			return rc;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* stat: copy the root entry out once the document is complete. */
static int stat_result(struct jfs_xml *x)
{
	if (x->root == JFS_XML_ROOT_NONE) {
		snprintf(x->errmsg, sizeof(x->errmsg), "empty document");
		return x->err = -EIO;
	}
	jx_obj_build(x, &x->result);
	x->have_entry = true;
	return 0;
}

int jfs_xml_finish(struct jfs_xml *x)
{
	if (x->err)
		return x->err;
	if (x->finished)
		return 0;
	if (!x->done) {
		int rc = parse_chunk(x, NULL, 0, true);
		if (rc < 0)
			return rc;
	}
	x->finished = true;
	switch (x->kind) {
	case K_STAT:
		return stat_result(x);
	case K_LISTSTREAM:
		if (!x->have_stats) {
			snprintf(x->errmsg, sizeof(x->errmsg), "liststream without <stats> (truncated)");
			return x->err = -EIO;
		}
		if (x->stat_folders != x->seen_folders || x->stat_files != x->seen_files) {
			snprintf(x->errmsg, sizeof(x->errmsg),
				 "liststream <stats> say %lld folders %lld files, stream had %lld/%lld",
				 (long long)x->stat_folders, (long long)x->stat_files,
				 (long long)x->seen_folders, (long long)x->seen_files);
			return x->err = -EIO;
		}
		return 0;
	case K_DEVICE:
		x->dev.name = jx_text_str(&x->rname);
		x->dev.type = jx_text_str(&x->rtype);
		x->dev_have_info = true;
		return 0;
	default:
		return 0;
	}
}

const char *jfs_xml_errmsg(const struct jfs_xml *x)
{
	return x->errmsg;
}

uint64_t jfs_xml_count(const struct jfs_xml *x)
{
	return x->count;
}

size_t jfs_xml_mem(const struct jfs_xml *x)
{
	return x->mem;
}

size_t jfs_xml_mem_peak(const struct jfs_xml *x)
{
	return x->mem_peak;
}

enum jfs_xml_root jfs_xml_root(const struct jfs_xml *x)
{
	return x->root;
}

const struct jfs_entry *jfs_xml_stat_entry(const struct jfs_xml *x)
{
	return x->have_entry ? &x->result : NULL;
}

const struct jfs_xml_user *jfs_xml_user_info(const struct jfs_xml *x)
{
	return x->kind == K_USER && x->finished && !x->err ? &x->user : NULL;
}

const struct jfs_xml_device *jfs_xml_device_info(const struct jfs_xml *x)
{
	return x->kind == K_DEVICE && x->dev_have_info && !x->err ? &x->dev : NULL;
}

/* ---------------------------------------------------------------------- */
/* Errors                                                                 */
