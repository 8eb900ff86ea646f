/*
 * net/jfs_xml_obj.c — the object documents of the JFS XML decoders: a
 * folder listing (list) and one file's or folder's document (stat, with a
 * file's revisions), and the entries both build.
 */
#include "net/jfs_xml_int.h"

#include <errno.h>
#include <string.h>

void jx_entry_init(struct jfs_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->name = "";
	e->latest_size = -1;
}

void jx_rev_clear(struct rev *r)
{
	r->seen = false;
	r->number = 0;
	r->size = -1;
	r->state[0] = '\0';
	r->md5[0] = '\0';
	r->created = r->modified = r->updated = 0;
	jx_text_clear(&r->mime);
}

/* Hand an entry to the callback; its error stops the decoder. */
int jx_deliver(struct jfs_xml *x, const struct jfs_entry *e)
{
	if (x->max_entries && x->count >= x->max_entries)
		return jx_over_limit(x, x->max_entries, "entries");
	x->count++;
	if (!x->entry_cb)
		return 0;
	int err = x->entry_cb(x->ctx, e);
	if (err < 0) {
		jx_fail(x, err, "stopped by the callback");
		return err;
	}
	return 0;
}

/* Build the entry of the folder/file just read (object documents). */
void jx_obj_build(struct jfs_xml *x, struct jfs_entry *e)
{
	jx_entry_init(e);
	e->name = jx_text_str(&x->name);
	e->is_dir = x->entry_is_dir;
	e->deleted = x->entry_deleted;
	e->origin = x->origin.len ? jx_text_str(&x->origin) : NULL;
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
	x->entry_deleted = jx_attr(atts, "deleted") != NULL;
	jx_rev_clear(&x->cur);
	jx_rev_clear(&x->latest);
	x->rev = NULL;
	x->in_revisions = false;
	x->root_modified = 0;
	x->bad[0] = '\0';
	jx_text_clear(&x->origin);
	const char *name = jx_attr(atts, "name");
	if (need_name && (!name || !*name)) {
		jx_fail(x, -EIO, "<%s> without a name", is_dir ? "folder" : "file");
		return;
	}
	jx_text_set(x, &x->name, name ? name : "", name ? strlen(name) : 0);
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
		jx_fail(x, -EIO, "unexpected document <%.40s>", name);
		return;
	}
	bool deleted = jx_attr(atts, "deleted") != NULL;
	if (x->kind == K_LIST) {
		if (x->root == JFS_XML_ROOT_FILE) {
			jx_fail(x, -ENOTDIR, "listed path is a file");
			return;
		}
		if (deleted && !x->list_trashed) {
			jx_fail(x, -ENOENT, "listed folder is in the trash");
			return;
		}
		return;
	}
	/* stat: the root itself is the entry (mountPoint: name from <name>). */
	obj_entry_start(x, atts, x->root != JFS_XML_ROOT_FILE, false);
}

void jx_obj_start(struct jfs_xml *x, enum el id, const XML_Char *name,
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
			jx_finish_early(x);
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
			jx_rev_clear(x->rev);  /* a repeated element replaces the first */
			x->rev->seen = true;
			x->rev_depth = d;
		} else if (id == EL_REVISIONS) {
			x->in_revisions = true;
		}
		return;
	}
	if (d == f + 2 && x->in_revisions && !x->rev && id == EL_REVISION) {
		x->rev = &x->hist;
		jx_rev_clear(x->rev);
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
		jx_parse_u63(x, "number", &r->number);
		break;
	case EL_STATE:
		jx_copy_token(x, r->state, sizeof(r->state), "state");
		break;
	case EL_CREATED:
		jx_parse_time(x, false, "created", &r->created);
		break;
	case EL_MODIFIED:
		jx_parse_time(x, false, "modified", &r->modified);
		break;
	case EL_UPDATED:
		jx_parse_time(x, false, "updated", &r->updated);
		break;
	case EL_MIME:
		jx_text_set(x, &r->mime, jx_text_str(&x->text), x->text.len);
		break;
	case EL_SIZE:
		jx_parse_size(x, "size", &r->size);
		break;
	case EL_MD5:
		jx_parse_md5(x, r->md5);
		break;
	default:
		break;
	}
}

void jx_obj_end(struct jfs_xml *x, enum el id, bool text)
{
	unsigned d = x->depth;
	if (text && x->rev && d == x->rev_depth + 1) {
		rev_field(x, x->rev, id);
		return;
	}
	if (text && d == 2) {
		if (id == EL_NAME && x->root == JFS_XML_ROOT_MOUNTPOINT && x->kind == K_STAT)
			jx_text_set(x, &x->name, jx_text_str(&x->text), x->text.len);
		else if (id == EL_MODIFIED)
			jx_parse_time(x, false, "modified", &x->root_modified);
		return;
	}
	if (text && id == EL_ABSPATH && x->kind == K_LIST && x->entry_depth &&
	    d == x->entry_depth + 1) {
		jx_text_set(x, &x->origin, jx_text_str(&x->text), x->text.len);
		return;
	}
	if (x->rev && d == x->rev_depth) {
		if (x->rev == &x->hist && x->kind == K_STAT && x->rev_cb) {
			const struct rev *r = &x->hist;
			struct jfs_xml_revision out = {
				.number = r->number, .state = r->state, .size = r->size,
				.created = r->created, .modified = r->modified,
				.updated = r->updated, .mime = jx_text_str(&r->mime),
			};
			memcpy(out.md5, r->md5, sizeof(out.md5));
			int err = x->rev_cb(x->ctx, &out);
			if (err < 0)
				jx_fail(x, err, "stopped by the callback");
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
			jx_obj_build(x, &e);
			jx_deliver(x, &e);
		}
		/* stat: the root entry is built at the end of the document. */
		return;
	}
}
