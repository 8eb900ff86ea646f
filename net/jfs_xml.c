/*
 * net/jfs_xml.c — see jfs_xml.h.
 *
 * Structure: one expat parser per decoder with three handlers (start, end,
 * character data) shared by every document kind. They keep the element
 * stack (ids of known local names, bounded by JFS_XML_MAX_DEPTH), enforce
 * the limits, and collect the text of the leaf element being read into one
 * bounded buffer; the per-kind functions (obj_*, ls_*, user_*, dev_*, err_*)
 * decide what an element means from its id and depth and fill a small set
 * of accumulators that are reused from one entry to the next.
 *
 * Errors stop the parser (XML_StopParser) and are sticky. Expat may still
 * call a handler after a stop, so every handler returns at once when the
 * decoder has failed or is done.
 *
 * Threads: none here; a decoder belongs to its caller's thread.
 */
#include "net/jfs_xml.h"

#include "net/http.h"
#include "net/jtime.h"

#include <errno.h>
#include <expat.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------------- */
/* Element names                                                          */

enum el {
	EL_OTHER = 0,
	EL_ABSPATH, EL_ACCOUNT_TYPE, EL_CAPACITY, EL_CODE, EL_CREATED, EL_CUR_REV, EL_DEVICE,
	EL_DEVICES, EL_ERROR, EL_FILE, EL_FILENAME, EL_FILES, EL_FOLDER, EL_FOLDERS,
	EL_LATEST_REV, EL_MD5, EL_MESSAGE, EL_MIME, EL_MODIFIED, EL_MOUNTPOINT,
	EL_MOUNTPOINTS, EL_NAME, EL_NUMBER, EL_PATH, EL_REASON, EL_REVISION,
	EL_REVISIONS, EL_SIZE, EL_STATE, EL_STATS, EL_TYPE, EL_UPDATED, EL_USAGE,
	EL_USER,
};

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
static const char *local_name(const char *name)
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
	const struct el_name *e = bsearch(local_name(name), el_names,
					  sizeof(el_names) / sizeof(el_names[0]),
					  sizeof(el_names[0]), el_cmp);
	return e ? e->id : EL_OTHER;
}

/* ---------------------------------------------------------------------- */
/* State                                                                  */

enum kind { K_LIST, K_STAT, K_LISTSTREAM, K_USER, K_DEVICE, K_ERROR };

/* A NUL-terminated byte string with a hard cap; reused, never shrunk. */
struct sbuf {
	char *p;
	size_t len;
	size_t cap;                     /* allocated bytes (len + 1 <= cap) */
};

/* A revision being read (currentRevision, latestRevision or one of revisions). */
struct rev {
	bool seen;
	int64_t number;
	int64_t size;                   /* -1: absent */
	char state[32];
	char md5[33];
	time_t created, modified, updated;
	struct sbuf mime;
};

/* Set of 64-bit path hashes (open addressing, 0 = empty slot). */
struct pathset {
	uint64_t *slot;
	size_t cap;                     /* power of two, or 0 */
	size_t n;
};

struct jfs_xml {
	enum kind kind;
	XML_Parser parser;
	int err;                        /* sticky -errno, 0 while fine */
	bool done;                      /* stopped early, document complete enough */
	bool finished;
	char errmsg[160];

	/* Callbacks (one of them, by kind). */
	jfs_entry_cb entry_cb;
	jfs_xml_revision_cb rev_cb;
	jfs_xml_device_cb dev_cb;
	jfs_xml_mountpoint_cb mp_cb;
	void *ctx;
	uint64_t count;

	/* Limits and accounting. */
	uint64_t max_entries;           /* jfs_xml_set_limits(); 0: none */
	uint64_t max_bytes;
	size_t mem, mem_peak;
	uint64_t fed;                   /* bytes given to expat */
	uint64_t last_event;            /* stream offset of the last handler call */

	/* Element stack: stack[i] is the id of the element at depth i + 1. */
	enum el stack[JFS_XML_MAX_DEPTH];
	unsigned depth;
	size_t text_run;                /* character data since the last tag */
	unsigned collect_depth;         /* depth whose text goes into text, 0: none */
	struct sbuf text;

	/* A value of the listed file being read was refused (list,
	 * liststream): why, "" while it is fine (see refuse_value). */
	char bad[64];

	/* list, stat */
	enum jfs_xml_root root;
	unsigned entry_depth;           /* depth of the folder/file being read, 0: none */
	bool entry_is_dir;
	bool entry_deleted;
	struct sbuf name;
	struct sbuf origin;             /* list: <abspath> of the entry being read */
	bool list_trashed;              /* list: a trashed folder may be listed */
	time_t root_modified;           /* <modified> of the folder entry being read */
	struct rev cur, latest, hist;
	struct rev *rev;                /* revision being read, or NULL */
	unsigned rev_depth;
	bool in_revisions;
	bool have_entry;                /* stat: result ready */
	struct jfs_entry result;

	/* liststream */
	char *prefix;
	size_t prefix_len;
	unsigned item_depth;            /* depth of the folder/file/stats item, 0: none */
	enum el item;
	struct sbuf path;               /* reused: liststream path / user+device type */
	struct sbuf fname;
	int64_t ls_size;
	char ls_md5[33];
	time_t ls_modified, ls_created;
	int64_t stat_folders, stat_files;
	bool have_stats;
	int64_t seen_folders, seen_files;
	struct pathset folders;

	/* user, device (sub-items use name and path for their name and type) */
	struct jfs_xml_user user;
	struct jfs_xml_device dev;      /* strings point into rname/rtype */
	struct sbuf rname, rtype;       /* device document root */
	bool dev_have_info;
	int64_t sub_size;               /* device summary / mountpoint size */

	/* error */
	struct jfs_xml_error *error;
};

/* ---------------------------------------------------------------------- */
/* Memory (accounted, so tests can prove the decoder stays bounded)        */

static void *xrealloc(struct jfs_xml *x, void *p, size_t old_size, size_t new_size)
{
	void *q = realloc(p, new_size);
	if (!q)
		return NULL;
	x->mem = x->mem - old_size + new_size;
	if (x->mem > x->mem_peak)
		x->mem_peak = x->mem;
	return q;
}

static void xfree(struct jfs_xml *x, void *p, size_t size)
{
	if (!p)
		return;
	free(p);
	x->mem -= size;
}

/* ---------------------------------------------------------------------- */
/* Failing                                                                */

static void fail(struct jfs_xml *x, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Record the first error, with the position, and stop the parser. */
static void fail(struct jfs_xml *x, int err, const char *fmt, ...)
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
static int over_limit(struct jfs_xml *x, uint64_t limit, const char *what)
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
static void finish_early(struct jfs_xml *x)
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

static int refuse_value(struct jfs_xml *x, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * A value the decoder refuses (@fmt says why, without the value: it is
 * server text). Inside a listed file only that entry is the casualty: it is
 * delivered with .bad set (the first reason) and the listing goes on.
 * Anywhere else (a stat's root, <stats>, the user document...) the
 * document fails. Returns -EIO either way: the value is not stored.
 */
static int refuse_value(struct jfs_xml *x, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (in_listed_file(x)) {
		if (!x->bad[0])
			vsnprintf(x->bad, sizeof(x->bad), fmt, ap);
	} else {
		char what[120];
		vsnprintf(what, sizeof(what), fmt, ap);
		fail(x, -EIO, "%s", what);
	}
	va_end(ap);
	return -EIO;
}

/* ---------------------------------------------------------------------- */
/* Bounded strings                                                        */

/* Append @n bytes to @b, failing the decoder (-EIO) beyond JFS_XML_MAX_TEXT. */
static int sbuf_add(struct jfs_xml *x, struct sbuf *b, const char *s, size_t n)
{
	if (n > JFS_XML_MAX_TEXT || b->len > JFS_XML_MAX_TEXT - n) {
		fail(x, -EIO, "text longer than %u bytes", JFS_XML_MAX_TEXT);
		return -EIO;
	}
	size_t need = b->len + n + 1;
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < need)
			cap *= 2;               /* need <= MAX_TEXT + 1: no overflow */
		char *p = xrealloc(x, b->p, b->cap, cap);
		if (!p) {
			fail(x, -ENOMEM, "out of memory");
			return -ENOMEM;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int sbuf_set(struct jfs_xml *x, struct sbuf *b, const char *s, size_t n)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
	return sbuf_add(x, b, s, n);
}

static void sbuf_clear(struct sbuf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

/* The string, "" when nothing was ever stored. */
static const char *sbuf_str(const struct sbuf *b)
{
	return b->p ? b->p : "";
}

static void sbuf_release(struct jfs_xml *x, struct sbuf *b)
{
	xfree(x, b->p, b->cap);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* ---------------------------------------------------------------------- */
/* Values                                                                 */

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * An integer element as Go decodes it: empty is 0; otherwise surrounding
 * white space is trimmed and the rest must be an optionally signed decimal
 * that fits int64. Fails the decoder with -EIO.
 */
static int parse_i64(struct jfs_xml *x, const char *what, int64_t *out)
{
	const char *s = sbuf_str(&x->text);
	size_t len = x->text.len;
	if (len == 0) {
		*out = 0;
		return 0;
	}
	size_t a = 0, b = len;
	while (a < b && is_space(s[a]))
		a++;
	while (b > a && is_space(s[b - 1]))
		b--;
	bool neg = false;
	if (a < b && (s[a] == '+' || s[a] == '-'))
		neg = s[a++] == '-';
	if (a == b)
		goto bad;
	int64_t v = 0;
	for (; a < b; a++) {
		if (s[a] < '0' || s[a] > '9')
			goto bad;
		int d = s[a] - '0';
		if (__builtin_mul_overflow(v, 10, &v) ||
		    (neg ? __builtin_sub_overflow(v, d, &v) : __builtin_add_overflow(v, d, &v)))
			goto bad;
	}
	*out = v;
	return 0;
bad:
	return refuse_value(x, "bad number in <%s>", what);
}

/* A count or size: like parse_i64, and negative values are refused. */
static int parse_u63(struct jfs_xml *x, const char *what, int64_t *out)
{
	int64_t v = 0;
	if (parse_i64(x, what, &v) < 0)
		return -EIO;
	if (v < 0)
		return refuse_value(x, "negative value in <%s>", what);
	*out = v;
	return 0;
}

/* A file size: like parse_u63, and above JFS_SIZE_MAX is refused too. */
static int parse_size(struct jfs_xml *x, const char *what, int64_t *out)
{
	int64_t v = 0;
	if (parse_u63(x, what, &v) < 0)
		return -EIO;
	if (v > JFS_SIZE_MAX)
		return refuse_value(x, "<%s> above %lld bytes", what, (long long)JFS_SIZE_MAX);
	*out = v;
	return 0;
}

/* Time element: empty is 0 ("no time"); surrounding white space tolerated. */
static int parse_time(struct jfs_xml *x, bool rfc3339, const char *what, time_t *out)
{
	const char *s = sbuf_str(&x->text);
	size_t a = 0, b = x->text.len;
	while (a < b && is_space(s[a]))
		a++;
	while (b > a && is_space(s[b - 1]))
		b--;
	if (a == b && x->text.len == 0) {
		*out = 0;
		return 0;
	}
	int err = rfc3339 ? jtime_parse_rfc3339(s + a, b - a, out)
			  : jtime_parse_jotta(s + a, b - a, out);
	if (err < 0)
		return refuse_value(x, "bad time in <%s>", what);
	return 0;
}

/* MD5 element: "" (unknown) or 32 hex digits, stored lower-case. */
static int parse_md5(struct jfs_xml *x, char out[33])
{
	const char *s = sbuf_str(&x->text);
	size_t a = 0, b = x->text.len;
	while (a < b && is_space(s[a]))
		a++;
	while (b > a && is_space(s[b - 1]))
		b--;
	if (a == b) {
		out[0] = '\0';
		return 0;
	}
	if (b - a != 32)
		goto bad;
	for (size_t i = 0; i < 32; i++) {
		char c = s[a + i];
		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			goto bad;
		out[i] = c;
	}
	out[32] = '\0';
	return 0;
bad:
	return refuse_value(x, "bad <md5>");
}

/* Short token (revision state) into a fixed buffer; longer is -EIO. */
static int copy_token(struct jfs_xml *x, char *out, size_t size, const char *what)
{
	if (x->text.len >= size)
		return refuse_value(x, "<%s> too long", what);
	memcpy(out, sbuf_str(&x->text), x->text.len + 1);
	return 0;
}

/* Copy at most @size - 1 bytes, cutting at a UTF-8 character boundary. */
static void copy_trunc(char *out, size_t size, const char *s, size_t len)
{
	if (len >= size) {
		len = size - 1;
		while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
			len--;
	}
	memcpy(out, s, len);
	out[len] = '\0';
}

/* ---------------------------------------------------------------------- */
/* Attributes                                                             */

/* Find attribute @name (local name) in expat's NULL-terminated list. */
static const char *attr(const XML_Char **atts, const char *name)
{
	for (size_t i = 0; atts[i]; i += 2)
		if (!strcmp(local_name(atts[i]), name))
			return atts[i + 1];
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* Liststream folder set                                                  */

/* FNV-1a with a final avalanche (splitmix64); never 0 (the empty slot). */
static uint64_t path_hash(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h ? h : 1;
}

/* Insert @h; *added tells whether it was new. Grows at half load. */
static int pathset_add(struct jfs_xml *x, struct pathset *ps, uint64_t h, bool *added)
{
	if (ps->cap) {
		for (size_t i = h & (ps->cap - 1);; i = (i + 1) & (ps->cap - 1)) {
			if (ps->slot[i] == h) {
				*added = false;
				return 0;
			}
			if (!ps->slot[i])
				break;
		}
	}
	if (ps->n >= JFS_XML_MAX_FOLDERS) {
		fail(x, -EIO, "liststream has more than %u folders", JFS_XML_MAX_FOLDERS);
		return -EIO;
	}
	if ((ps->n + 1) * 2 > ps->cap) {
		size_t cap = ps->cap ? ps->cap * 2 : 256;
		uint64_t *slot = xrealloc(x, NULL, 0, cap * sizeof(*slot));
		if (!slot) {
			fail(x, -ENOMEM, "out of memory");
			return -ENOMEM;
		}
		memset(slot, 0, cap * sizeof(*slot));
		for (size_t j = 0; j < ps->cap; j++) {
			if (!ps->slot[j])
				continue;
			size_t i = ps->slot[j] & (cap - 1);
			while (slot[i])
				i = (i + 1) & (cap - 1);
			slot[i] = ps->slot[j];
		}
		xfree(x, ps->slot, ps->cap * sizeof(*ps->slot));
		ps->slot = slot;
		ps->cap = cap;
	}
	size_t i = h & (ps->cap - 1);
	while (ps->slot[i])
		i = (i + 1) & (ps->cap - 1);
	ps->slot[i] = h;
	ps->n++;
	*added = true;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Entries                                                                */

static void entry_init(struct jfs_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->name = "";
	e->latest_size = -1;
}

static void rev_clear(struct rev *r)
{
	r->seen = false;
	r->number = 0;
	r->size = -1;
	r->state[0] = '\0';
	r->md5[0] = '\0';
	r->created = r->modified = r->updated = 0;
	sbuf_clear(&r->mime);
}

/* Hand an entry to the callback; its error stops the decoder. */
static int deliver(struct jfs_xml *x, const struct jfs_entry *e)
{
	if (x->max_entries && x->count >= x->max_entries)
		return over_limit(x, x->max_entries, "entries");
	x->count++;
	if (!x->entry_cb)
		return 0;
	int err = x->entry_cb(x->ctx, e);
	if (err < 0) {
		fail(x, err, "stopped by the callback");
		return err;
	}
	return 0;
}

/* Build the entry of the folder/file just read (object documents). */
static void obj_build(struct jfs_xml *x, struct jfs_entry *e)
{
	entry_init(e);
	e->name = sbuf_str(&x->name);
	e->is_dir = x->entry_is_dir;
	e->deleted = x->entry_deleted;
	e->origin = x->origin.len ? sbuf_str(&x->origin) : NULL;
	if (x->bad[0]) {
		e->bad = x->bad;        /* numbers stay 0, not completed */
		return;
	}
	if (e->is_dir) {
		e->modified = x->root_modified;
		return;
	}
	const struct rev *c = &x->cur;
	if (c->seen) {
		e->completed = !strcmp(c->state, "COMPLETED");
		e->size = c->size >= 0 ? c->size : 0;
		memcpy(e->md5, c->md5, sizeof(e->md5));
		e->revision = c->number;
		e->created = c->created;
		e->modified = c->modified;
		e->updated = c->updated;
		e->mime = c->mime.len ? c->mime.p : NULL;
	}
	const struct rev *l = &x->latest;
	if (l->seen) {
		e->has_latest = true;
		memcpy(e->latest_md5, l->md5, sizeof(e->latest_md5));
		e->latest_size = l->size;
		e->latest_state = l->state[0] ? l->state : NULL;
	}
}

/* ---------------------------------------------------------------------- */
/* Object documents: list and stat                                        */

/* A folder or file element starts an entry: its attributes. */
static void obj_entry_start(struct jfs_xml *x, const XML_Char **atts, bool is_dir,
			    bool need_name)
{
	x->entry_depth = x->depth;
	x->entry_is_dir = is_dir;
	x->entry_deleted = attr(atts, "deleted") != NULL;
	rev_clear(&x->cur);
	rev_clear(&x->latest);
	x->rev = NULL;
	x->in_revisions = false;
	x->root_modified = 0;
	x->bad[0] = '\0';
	sbuf_clear(&x->origin);
	const char *name = attr(atts, "name");
	if (need_name && (!name || !*name)) {
		fail(x, -EIO, "<%s> without a name", is_dir ? "folder" : "file");
		return;
	}
	sbuf_set(x, &x->name, name ? name : "", name ? strlen(name) : 0);
}

static void obj_root(struct jfs_xml *x, enum el id, const XML_Char *name,
		     const XML_Char **atts)
{
	switch (id) {
	case EL_FOLDER:
		x->root = JFS_XML_ROOT_FOLDER;
		break;
	case EL_MOUNTPOINT:
		x->root = JFS_XML_ROOT_MOUNTPOINT;
		break;
	case EL_FILE:
		x->root = JFS_XML_ROOT_FILE;
		break;
	default:
		x->root = JFS_XML_ROOT_OTHER;
		fail(x, -EIO, "unexpected document <%.40s>", name);
		return;
	}
	bool deleted = attr(atts, "deleted") != NULL;
	if (x->kind == K_LIST) {
		if (x->root == JFS_XML_ROOT_FILE) {
			fail(x, -ENOTDIR, "listed path is a file");
			return;
		}
		if (deleted && !x->list_trashed) {
			fail(x, -ENOENT, "listed folder is in the trash");
			return;
		}
		return;
	}
	/* stat: the root itself is the entry (mountPoint: name from <name>). */
	obj_entry_start(x, atts, x->root != JFS_XML_ROOT_FILE, false);
}

static void obj_start(struct jfs_xml *x, enum el id, const XML_Char *name,
		      const XML_Char **atts)
{
	unsigned d = x->depth;
	if (d == 1) {
		obj_root(x, id, name, atts);
		return;
	}
	enum el parent = x->stack[d - 2];
	bool dir_root = x->root == JFS_XML_ROOT_FOLDER || x->root == JFS_XML_ROOT_MOUNTPOINT;

	/* Children of the listed folder. */
	if (dir_root && d == 2 && (id == EL_FOLDERS || id == EL_FILES)) {
		if (x->kind == K_STAT)
			finish_early(x);
		return;
	}
	if (dir_root && d == 2 && (id == EL_NAME || id == EL_MODIFIED)) {
		x->collect_depth = d;
		return;
	}
	if (x->kind == K_LIST && d == 3 && !x->entry_depth) {
		if (parent == EL_FOLDERS && id == EL_FOLDER)
			obj_entry_start(x, atts, true, true);
		else if (parent == EL_FILES && id == EL_FILE)
			obj_entry_start(x, atts, false, true);
		return;
	}

	/* The original parent of a trash view entry. */
	if (x->kind == K_LIST && x->entry_depth && d == x->entry_depth + 1 && !x->rev &&
	    !x->in_revisions && id == EL_ABSPATH) {
		x->collect_depth = d;
		return;
	}
	/* Inside a file (a listed one, or the root of a file document). */
	if (!x->entry_depth || x->entry_is_dir)
		return;
	unsigned f = x->entry_depth;
	if (d == f + 1 && !x->rev && !x->in_revisions) {
		if (id == EL_CUR_REV || id == EL_LATEST_REV) {
			x->rev = id == EL_CUR_REV ? &x->cur : &x->latest;
			rev_clear(x->rev);  /* a repeated element replaces the first */
			x->rev->seen = true;
			x->rev_depth = d;
		} else if (id == EL_REVISIONS) {
			x->in_revisions = true;
		}
		return;
	}
	if (d == f + 2 && x->in_revisions && !x->rev && id == EL_REVISION) {
		x->rev = &x->hist;
		rev_clear(x->rev);
		x->rev->seen = true;
		x->rev_depth = d;
		return;
	}
	if (x->rev && d == x->rev_depth + 1) {
		switch (id) {
		case EL_NUMBER: case EL_STATE: case EL_CREATED: case EL_MODIFIED:
		case EL_MIME: case EL_SIZE: case EL_MD5: case EL_UPDATED:
			x->collect_depth = d;
			break;
		default:
			break;
		}
	}
}

/* A revision field ended: store its text. */
static void rev_field(struct jfs_xml *x, struct rev *r, enum el id)
{
	switch (id) {
	case EL_NUMBER:
		parse_u63(x, "number", &r->number);
		break;
	case EL_STATE:
		copy_token(x, r->state, sizeof(r->state), "state");
		break;
	case EL_CREATED:
		parse_time(x, false, "created", &r->created);
		break;
	case EL_MODIFIED:
		parse_time(x, false, "modified", &r->modified);
		break;
	case EL_UPDATED:
		parse_time(x, false, "updated", &r->updated);
		break;
	case EL_MIME:
		sbuf_set(x, &r->mime, sbuf_str(&x->text), x->text.len);
		break;
	case EL_SIZE:
		parse_size(x, "size", &r->size);
		break;
	case EL_MD5:
		parse_md5(x, r->md5);
		break;
	default:
		break;
	}
}

static void obj_end(struct jfs_xml *x, enum el id, bool text)
{
	unsigned d = x->depth;
	if (text && x->rev && d == x->rev_depth + 1) {
		rev_field(x, x->rev, id);
		return;
	}
	if (text && d == 2) {
		if (id == EL_NAME && x->root == JFS_XML_ROOT_MOUNTPOINT && x->kind == K_STAT)
			sbuf_set(x, &x->name, sbuf_str(&x->text), x->text.len);
		else if (id == EL_MODIFIED)
			parse_time(x, false, "modified", &x->root_modified);
		return;
	}
	if (text && id == EL_ABSPATH && x->kind == K_LIST && x->entry_depth &&
	    d == x->entry_depth + 1) {
		sbuf_set(x, &x->origin, sbuf_str(&x->text), x->text.len);
		return;
	}
	if (x->rev && d == x->rev_depth) {
		if (x->rev == &x->hist && x->kind == K_STAT && x->rev_cb) {
			const struct rev *r = &x->hist;
			struct jfs_xml_revision out = {
				.number = r->number, .state = r->state, .size = r->size,
				.created = r->created, .modified = r->modified,
				.updated = r->updated, .mime = sbuf_str(&r->mime),
			};
			memcpy(out.md5, r->md5, sizeof(out.md5));
			int err = x->rev_cb(x->ctx, &out);
			if (err < 0)
				fail(x, err, "stopped by the callback");
		}
		x->rev = NULL;
		return;
	}
	if (x->in_revisions && x->entry_depth && d == x->entry_depth + 1) {
		x->in_revisions = false;
		return;
	}
	if (x->entry_depth && d == x->entry_depth) {
		x->entry_depth = 0;
		if (x->kind == K_LIST) {
			struct jfs_entry e;
			obj_build(x, &e);
			deliver(x, &e);
		}
		/* stat: the root entry is built at the end of the document. */
		return;
	}
}

/* ---------------------------------------------------------------------- */
/* liststream                                                             */

static void ls_start(struct jfs_xml *x, enum el id)
{
	unsigned d = x->depth;
	if (!x->item_depth) {
		if (id != EL_FOLDER && id != EL_FILE && id != EL_STATS)
			return;
		x->item_depth = d;
		x->item = id;
		sbuf_clear(&x->path);
		sbuf_clear(&x->fname);
		x->ls_size = 0;
		x->ls_md5[0] = '\0';
		x->ls_modified = x->ls_created = 0;
		x->bad[0] = '\0';
		if (id == EL_STATS)
			x->stat_folders = x->stat_files = 0;
		return;
	}
	if (d != x->item_depth + 1)
		return;
	switch (x->item) {
	case EL_FOLDER:
		if (id == EL_PATH)
			x->collect_depth = d;
		break;
	case EL_FILE:
		if (id == EL_PATH || id == EL_FILENAME || id == EL_MD5 || id == EL_SIZE ||
		    id == EL_MODIFIED || id == EL_CREATED)
			x->collect_depth = d;
		break;
	default:
		if (id == EL_FOLDERS || id == EL_FILES)
			x->collect_depth = d;
		break;
	}
}

/* The path relative to the listed folder, or NULL (-EIO) when outside it
 * or not clean (empty segment, leading or trailing '/'). */
static const char *ls_relative(struct jfs_xml *x, const char *p, size_t len)
{
	const char *rel = NULL;
	if (len >= x->prefix_len && !strncasecmp(p, x->prefix, x->prefix_len)) {
		if (len == x->prefix_len)
			rel = p + len;
		else if (p[x->prefix_len] == '/')
			rel = p + x->prefix_len + 1;
	}
	if (!rel) {
		fail(x, -EIO, "liststream path outside the listed folder");
		return NULL;
	}
	size_t n = strlen(rel);
	if (n != (size_t)(p + len - rel) || (n && (rel[0] == '/' || rel[n - 1] == '/')) ||
	    strstr(rel, "//")) {
		fail(x, -EIO, "liststream path is not clean");
		return NULL;
	}
	return rel;
}

/* Deliver folder @rel ("a/b/c": parent "a/b", name "c"; "" is the listed
 * folder itself) and count it. @rel is writable (split in place, restored). */
static int ls_folder(struct jfs_xml *x, char *rel)
{
	struct jfs_entry e;
	entry_init(&e);
	e.is_dir = true;
	char *slash = strrchr(rel, '/');
	if (slash) {
		*slash = '\0';
		e.parent = rel;
		e.name = slash + 1;
	} else {
		e.parent = "";
		e.name = rel;
	}
	x->seen_folders++;
	int err = deliver(x, &e);
	if (slash)
		*slash = '/';
	return err;
}

static void ls_item_end(struct jfs_xml *x)
{
	x->item_depth = 0;
	if (x->item == EL_STATS) {
		x->have_stats = true;
		return;
	}
	char *rel = (char *)ls_relative(x, sbuf_str(&x->path), x->path.len);
	if (!rel)
		return;
	bool added;
	if (pathset_add(x, &x->folders, path_hash(rel, strlen(rel)), &added) < 0)
		return;
	if (x->item == EL_FOLDER) {
		ls_folder(x, rel);
		return;
	}
	/* A file: its parent counts as a folder the first time it is seen. */
	if (added && ls_folder(x, rel) < 0)
		return;
	if (!x->fname.len) {
		fail(x, -EIO, "liststream <file> without a <filename>");
		return;
	}
	struct jfs_entry e;
	entry_init(&e);
	e.name = sbuf_str(&x->fname);
	e.parent = rel;
	if (x->bad[0]) {
		e.bad = x->bad;         /* numbers stay 0, not completed */
	} else {
		e.completed = true;
		e.size = x->ls_size;
		memcpy(e.md5, x->ls_md5, sizeof(e.md5));
		e.created = x->ls_created;
		e.modified = x->ls_modified;
	}
	x->seen_files++;
	deliver(x, &e);
}

static void ls_end(struct jfs_xml *x, enum el id, bool text)
{
	unsigned d = x->depth;
	if (!x->item_depth)
		return;
	if (d == x->item_depth) {
		ls_item_end(x);
		return;
	}
	if (!text || d != x->item_depth + 1)
		return;
	switch (id) {
	case EL_PATH:
		sbuf_set(x, &x->path, sbuf_str(&x->text), x->text.len);
		break;
	case EL_FILENAME:
		sbuf_set(x, &x->fname, sbuf_str(&x->text), x->text.len);
		break;
	case EL_MD5:
		parse_md5(x, x->ls_md5);
		break;
	case EL_SIZE:
		parse_size(x, "size", &x->ls_size);
		break;
	case EL_MODIFIED:
		parse_time(x, true, "modified", &x->ls_modified);
		break;
	case EL_CREATED:
		parse_time(x, true, "created", &x->ls_created);
		break;
	case EL_FOLDERS:
		parse_u63(x, "folders", &x->stat_folders);
		break;
	case EL_FILES:
		parse_u63(x, "files", &x->stat_files);
		break;
	default:
		break;
	}
}

/* ---------------------------------------------------------------------- */
/* user and device documents                                              */

static void ud_start(struct jfs_xml *x, enum el id)
{
	unsigned d = x->depth;
	enum el want_root = x->kind == K_USER ? EL_USER : EL_DEVICE;
	enum el list = x->kind == K_USER ? EL_DEVICES : EL_MOUNTPOINTS;
	enum el item = x->kind == K_USER ? EL_DEVICE : EL_MOUNTPOINT;
	if (d == 1) {
		if (id != want_root)
			fail(x, -EIO, "unexpected document (want <%s>)",
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
		sbuf_clear(&x->name);
		sbuf_clear(&x->path);
		x->sub_size = 0;
		return;
	}
	if (d == 4 && x->entry_depth == 3 &&
	    (id == EL_NAME || id == EL_SIZE || (x->kind == K_USER && id == EL_TYPE)))
		x->collect_depth = d;
}

static void ud_end(struct jfs_xml *x, enum el id, bool text)
{
	unsigned d = x->depth;
	if (text && d == 2) {
		switch (id) {
		case EL_ACCOUNT_TYPE:
			copy_trunc(x->user.account_type, sizeof(x->user.account_type),
				   sbuf_str(&x->text), x->text.len);
			break;
		case EL_CAPACITY:
			parse_i64(x, "capacity", &x->user.capacity);
			break;
		case EL_USAGE:
			parse_u63(x, "usage", &x->user.usage);
			break;
		case EL_NAME:
			sbuf_set(x, &x->rname, sbuf_str(&x->text), x->text.len);
			break;
		case EL_TYPE:
			sbuf_set(x, &x->rtype, sbuf_str(&x->text), x->text.len);
			break;
		case EL_SIZE:
			parse_u63(x, "size", &x->dev.size);
			break;
		default:
			break;
		}
		return;
	}
	if (text && d == 4 && x->entry_depth == 3) {
		if (id == EL_NAME)
			sbuf_set(x, &x->name, sbuf_str(&x->text), x->text.len);
		else if (id == EL_TYPE)
			sbuf_set(x, &x->path, sbuf_str(&x->text), x->text.len);
		else if (id == EL_SIZE)
			parse_u63(x, "size", &x->sub_size);
		return;
	}
	if (d == 3 && x->entry_depth == 3) {
		x->entry_depth = 0;
		if (!x->name.len) {
			fail(x, -EIO, "<%s> without a name",
			     x->kind == K_USER ? "device" : "mountPoint");
			return;
		}
		x->count++;
		int err = 0;
		if (x->kind == K_USER && x->dev_cb) {
			struct jfs_xml_device dev = {
				.name = sbuf_str(&x->name), .type = sbuf_str(&x->path),
				.size = x->sub_size,
			};
			err = x->dev_cb(x->ctx, &dev);
		} else if (x->kind == K_DEVICE && x->mp_cb) {
			err = x->mp_cb(x->ctx, sbuf_str(&x->name), x->sub_size);
		}
		if (err < 0)
			fail(x, err, "stopped by the callback");
	}
}

/* ---------------------------------------------------------------------- */
/* error document                                                         */

static void err_start(struct jfs_xml *x, enum el id)
{
	if (x->depth == 1 && id != EL_ERROR)
		fail(x, -EIO, "not an <error> document");
	else if (x->depth == 2 && (id == EL_CODE || id == EL_MESSAGE || id == EL_REASON))
		x->collect_depth = 2;
}

static void err_end(struct jfs_xml *x, enum el id, bool text)
{
	if (!text || x->depth != 2)
		return;
	int64_t code;
	switch (id) {
	case EL_CODE:
		if (parse_i64(x, "code", &code) == 0) {
			if (code < 0 || code > 999)
				fail(x, -EIO, "bad <code>");
			else
				x->error->code = (long)code;
		}
		break;
	case EL_MESSAGE:
		copy_trunc(x->error->message, sizeof(x->error->message), sbuf_str(&x->text),
			   x->text.len);
		break;
	case EL_REASON:
		copy_trunc(x->error->reason, sizeof(x->error->reason), sbuf_str(&x->text),
			   x->text.len);
		break;
	default:
		break;
	}
}

/* ---------------------------------------------------------------------- */
/* Expat handlers                                                         */

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
		fail(x, -EIO, "elements nested deeper than %d", JFS_XML_MAX_DEPTH);
		return;
	}
	size_t n = 0;
	for (; atts[n]; n += 2) {
		if (n / 2 >= JFS_XML_MAX_ATTRS) {
			fail(x, -EIO, "more than %d attributes", JFS_XML_MAX_ATTRS);
			return;
		}
		if (strlen(atts[n + 1]) > JFS_XML_MAX_TEXT) {
			fail(x, -EIO, "attribute longer than %u bytes", JFS_XML_MAX_TEXT);
			return;
		}
	}
	enum el id = el_lookup(name);
	x->stack[x->depth++] = id;
	x->text_run = 0;
	unsigned before = x->collect_depth;
	switch (x->kind) {
	case K_LIST:
	case K_STAT:
		obj_start(x, id, name, atts);
		break;
	case K_LISTSTREAM:
		ls_start(x, id);
		break;
	case K_USER:
	case K_DEVICE:
		ud_start(x, id);
		break;
	case K_ERROR:
		err_start(x, id);
		break;
	}
	if (x->collect_depth != before)
		sbuf_clear(&x->text);
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
	switch (x->kind) {
	case K_LIST:
	case K_STAT:
		obj_end(x, id, text);
		break;
	case K_LISTSTREAM:
		ls_end(x, id, text);
		break;
	case K_USER:
	case K_DEVICE:
		ud_end(x, id, text);
		break;
	case K_ERROR:
		err_end(x, id, text);
		break;
	}
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
		fail(x, -EIO, "text node longer than %u bytes", JFS_XML_MAX_TEXT);
		return;
	}
	if (x->collect_depth && x->collect_depth == x->depth)
		sbuf_add(x, &x->text, s, (size_t)len);
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
			       const XML_Char *pubid, int has_internal_subset)
{
	struct jfs_xml *x = ud;
	(void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
	fail(x, -EIO, "DOCTYPE not allowed");
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int is_param,
				   const XML_Char *value, int value_len, const XML_Char *base,
				   const XML_Char *sysid, const XML_Char *pubid,
				   const XML_Char *notation)
{
	struct jfs_xml *x = ud;
	(void)name, (void)is_param, (void)value, (void)value_len, (void)base;
	(void)sysid, (void)pubid, (void)notation;
	fail(x, -EIO, "entity declarations not allowed");
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
		fail(x, -EIO, "comment longer than %u bytes", JFS_XML_MAX_TEXT);
}

static void XMLCALL on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
	struct jfs_xml *x = ud;
	(void)target;
	if (x->err || x->done)
		return;
	mark(x);
	if (strlen(data) > JFS_XML_MAX_TEXT)
		fail(x, -EIO, "processing instruction longer than %u bytes", JFS_XML_MAX_TEXT);
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
	sbuf_clear(&x->text);
	x->root = JFS_XML_ROOT_NONE;
	x->entry_depth = 0;
	x->entry_is_dir = false;
	x->entry_deleted = false;
	sbuf_clear(&x->name);
	sbuf_clear(&x->origin);
	x->root_modified = 0;
	rev_clear(&x->cur);
	rev_clear(&x->latest);
	rev_clear(&x->hist);
	x->rev = NULL;
	x->in_revisions = false;
	x->have_entry = false;
	entry_init(&x->result);
	x->item_depth = 0;
	x->item = EL_OTHER;
	sbuf_clear(&x->path);
	sbuf_clear(&x->fname);
	x->stat_folders = x->stat_files = 0;
	x->have_stats = false;
	x->seen_folders = x->seen_files = 0;
	if (x->folders.slot)
		memset(x->folders.slot, 0, x->folders.cap * sizeof(*x->folders.slot));
	x->folders.n = 0;
	memset(&x->user, 0, sizeof(x->user));
	memset(&x->dev, 0, sizeof(x->dev));
	x->dev_have_info = false;
	sbuf_clear(&x->rname);
	sbuf_clear(&x->rtype);
	x->sub_size = 0;
	if (x->error)
		memset(x->error, 0, sizeof(*x->error));
}

static int create(enum kind kind, void *ctx, struct jfs_xml **out)
{
	*out = NULL;
	struct jfs_xml *x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->kind = kind;
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
	int err = create(K_LIST, ctx, out);
	if (!err)
		(*out)->entry_cb = cb;
	return err;
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

int jfs_xml_new_stat(jfs_xml_revision_cb cb, void *ctx, struct jfs_xml **out)
{
	int err = create(K_STAT, ctx, out);
	if (!err)
		(*out)->rev_cb = cb;
	return err;
}

int jfs_xml_new_liststream(const char *prefix, jfs_entry_cb cb, void *ctx,
			   struct jfs_xml **out)
{
	int err = create(K_LISTSTREAM, ctx, out);
	if (err)
		return err;
	struct jfs_xml *x = *out;
	x->entry_cb = cb;
	x->prefix_len = strlen(prefix);
	x->prefix = xrealloc(x, NULL, 0, x->prefix_len + 1);
	if (!x->prefix) {
		jfs_xml_free(x);
		*out = NULL;
		return -ENOMEM;
	}
	memcpy(x->prefix, prefix, x->prefix_len + 1);
	return 0;
}

int jfs_xml_new_user(jfs_xml_device_cb cb, void *ctx, struct jfs_xml **out)
{
	int err = create(K_USER, ctx, out);
	if (!err)
		(*out)->dev_cb = cb;
	return err;
}

int jfs_xml_new_device(jfs_xml_mountpoint_cb cb, void *ctx, struct jfs_xml **out)
{
	int err = create(K_DEVICE, ctx, out);
	if (!err)
		(*out)->mp_cb = cb;
	return err;
}

void jfs_xml_free(struct jfs_xml *x)
{
	if (!x)
		return;
	XML_ParserFree(x->parser);
	sbuf_release(x, &x->text);
	sbuf_release(x, &x->name);
	sbuf_release(x, &x->origin);
	sbuf_release(x, &x->cur.mime);
	sbuf_release(x, &x->latest.mime);
	sbuf_release(x, &x->hist.mime);
	sbuf_release(x, &x->path);
	sbuf_release(x, &x->fname);
	sbuf_release(x, &x->rname);
	sbuf_release(x, &x->rtype);
	xfree(x, x->folders.slot, x->folders.cap * sizeof(*x->folders.slot));
	if (x->prefix)
		xfree(x, x->prefix, x->prefix_len + 1);
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
		return over_limit(x, x->max_bytes, "bytes");
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
	obj_build(x, &x->result);
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
		x->dev.name = sbuf_str(&x->rname);
		x->dev.type = sbuf_str(&x->rtype);
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

int jfs_xml_parse_error(const void *body, size_t len, struct jfs_xml_error *out)
{
	memset(out, 0, sizeof(*out));
	if (!body || !len)
		return -EIO;
	struct jfs_xml *x;
	int err = create(K_ERROR, NULL, &x);
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
