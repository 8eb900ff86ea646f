/*
 * net/jfs_xml_int.h — what the files of the JFS XML decoders share
 * (net/jfs_xml.c, jfs_xml_value.c, jfs_xml_obj.c, jfs_xml_stream.c,
 * jfs_xml_doc.c): the decoder's state, and the helpers one file offers the
 * others (prefix jx_). Private to net/jfs_xml*.c; everyone else uses
 * net/jfs_xml.h.
 */
#ifndef JOTTAFS_NET_JFS_XML_INT_H
#define JOTTAFS_NET_JFS_XML_INT_H

#include "lib/buf.h"
#include "net/jfs_xml.h"

#include <expat.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum el {
	EL_OTHER = 0,
	EL_ABSPATH, EL_ACCOUNT_TYPE, EL_CAPACITY, EL_CODE, EL_CREATED, EL_CUR_REV, EL_DEVICE,
	EL_DEVICES, EL_ERROR, EL_FILE, EL_FILENAME, EL_FILES, EL_FOLDER, EL_FOLDERS,
	EL_LATEST_REV, EL_MD5, EL_MESSAGE, EL_MIME, EL_MODIFIED, EL_MOUNTPOINT,
	EL_MOUNTPOINTS, EL_NAME, EL_NUMBER, EL_PATH, EL_REASON, EL_REVISION,
	EL_REVISIONS, EL_SIZE, EL_STATE, EL_STATS, EL_TYPE, EL_UPDATED, EL_USAGE,
	EL_USER,
};

enum kind { K_LIST, K_STAT, K_LISTSTREAM, K_USER, K_DEVICE, K_ERROR };

/* A revision being read (currentRevision, latestRevision or one of revisions). */
struct rev {
	bool seen;
	int64_t number;
	int64_t size;                   /* -1: absent */
	char state[32];
	char md5[33];
	time_t created, modified, updated;
	struct buf mime;
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
	struct buf text;

	/* A value of the listed file being read was refused (list,
	 * liststream): why, "" while it is fine (see refuse_value). */
	char bad[64];

	/* list, stat */
	enum jfs_xml_root root;
	unsigned entry_depth;           /* depth of the folder/file being read, 0: none */
	bool entry_is_dir;
	bool entry_deleted;
	struct buf name;
	struct buf origin;             /* list: <abspath> of the entry being read */
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
	struct buf path;               /* reused: liststream path / user+device type */
	struct buf fname;
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
	struct buf rname, rtype;       /* device document root */
	bool dev_have_info;
	int64_t sub_size;               /* device summary / mountpoint size */

	/* error */
	struct jfs_xml_error *error;
};

/* ---- jfs_xml.c: the decoder ---- */

/* The local part of a (possibly prefixed) XML name, as Go matches it. */
const char *jx_local_name(const char *name);
/* realloc()/free() with the decoder's memory accounted (jfs_xml_mem). */
void *jx_realloc(struct jfs_xml *x, void *p, size_t old_size, size_t new_size);
void jx_free(struct jfs_xml *x, void *p, size_t size);
/* A buffer of the decoder went from @old_size to @new_size bytes. */
void jx_account(struct jfs_xml *x, size_t old_size, size_t new_size);
/* Record the first error, with the position, and stop the parser. */
void jx_fail(struct jfs_xml *x, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Over a jfs_xml_set_limits() limit: -EFBIG, errmsg "more than N <what>". */
int jx_over_limit(struct jfs_xml *x, uint64_t limit, const char *what);
/* The document is complete for our purpose: stop without an error. */
void jx_finish_early(struct jfs_xml *x);
/*
 * A value the decoder refuses (@fmt says why, without the value: it is
 * server text). Inside a listed file only that entry is the casualty: it is
 * delivered with .bad set (the first reason) and the listing goes on.
 * Anywhere else (a stat's root, <stats>, the user document...) the
 * document fails. Returns -EIO either way: the value is not stored.
 */
int jx_refuse(struct jfs_xml *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A decoder of @kind; @cb holds the callback of that kind (others NULL). */
struct jx_callbacks {
	jfs_entry_cb entry;
	jfs_xml_revision_cb rev;
	jfs_xml_device_cb dev;
	jfs_xml_mountpoint_cb mp;
};
int jx_create(enum kind kind, const struct jx_callbacks *cb, void *ctx, struct jfs_xml **out);

/* ---- jfs_xml_value.c: bounded text and value rules (jfs_xml.h) ---- */

/* Append @n bytes to @b, failing the decoder (-EIO) beyond JFS_XML_MAX_TEXT. */
int jx_text_add(struct jfs_xml *x, struct buf *b, const char *s, size_t n);
int jx_text_set(struct jfs_xml *x, struct buf *b, const char *s, size_t n);
void jx_text_clear(struct buf *b);
/* The string, "" when nothing was ever stored. */
const char *jx_text_str(const struct buf *b);
void jx_text_release(struct jfs_xml *x, struct buf *b);
/* The collected text (x->text) as a value; -EIO (jx_refuse) when refused. */
int jx_parse_i64(struct jfs_xml *x, const char *what, int64_t *out);
int jx_parse_u63(struct jfs_xml *x, const char *what, int64_t *out);
int jx_parse_size(struct jfs_xml *x, const char *what, int64_t *out);
int jx_parse_time(struct jfs_xml *x, bool rfc3339, const char *what, time_t *out);
int jx_parse_md5(struct jfs_xml *x, char out[33]);
int jx_copy_token(struct jfs_xml *x, char *out, size_t size, const char *what);
/* Copy at most @size - 1 bytes, cutting at a UTF-8 character boundary. */
void jx_copy_trunc(char *out, size_t size, const char *s, size_t len);
/* Attribute @name (local name) in expat's NULL-terminated list, or NULL. */
const char *jx_attr(const XML_Char **atts, const char *name);

/* ---- the per-kind handlers: an element of the document starts (@name as
 * expat gave it, @atts its attributes) or ends (@text: its collected text
 * is in x->text) ---- */

/* ---- jfs_xml_obj.c: entries; list and stat documents ---- */

void jx_entry_init(struct jfs_entry *e);
void jx_rev_clear(struct rev *r);
/* Hand an entry to the callback; its error stops the decoder. */
int jx_deliver(struct jfs_xml *x, const struct jfs_entry *e);
/* Build the entry of the folder/file just read (object documents). */
void jx_obj_build(struct jfs_xml *x, struct jfs_entry *e);
void jx_obj_start(struct jfs_xml *x, enum el id, const XML_Char *name, const XML_Char **atts);
void jx_obj_end(struct jfs_xml *x, enum el id, bool text);

/* ---- jfs_xml_stream.c: liststream ---- */

void jx_ls_start(struct jfs_xml *x, enum el id, const XML_Char *name, const XML_Char **atts);
void jx_ls_end(struct jfs_xml *x, enum el id, bool text);

/* ---- jfs_xml_doc.c: user, device and error documents ---- */

void jx_ud_start(struct jfs_xml *x, enum el id, const XML_Char *name, const XML_Char **atts);
void jx_ud_end(struct jfs_xml *x, enum el id, bool text);
void jx_err_start(struct jfs_xml *x, enum el id, const XML_Char *name, const XML_Char **atts);
void jx_err_end(struct jfs_xml *x, enum el id, bool text);

#endif
