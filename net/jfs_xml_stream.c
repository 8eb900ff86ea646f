/*
 * net/jfs_xml_stream.c — the liststream decoder (mode=liststream, a whole
 * subtree as <folder> and <file> items with paths): paths made relative to
 * the listed folder, implied folders delivered before their files, and the
 * set of folder hashes that <stats> is checked against.
 */
#include "net/jfs_xml_int.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

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
		jx_fail(x, -EIO, "liststream has more than %u folders", JFS_XML_MAX_FOLDERS);
		return -EIO;
	}
	if ((ps->n + 1) * 2 > ps->cap) {
		size_t cap = ps->cap ? ps->cap * 2 : 256;
		uint64_t *slot = jx_realloc(x, NULL, 0, cap * sizeof(*slot));
		if (!slot) {
			jx_fail(x, -ENOMEM, "out of memory");
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
		jx_free(x, ps->slot, ps->cap * sizeof(*ps->slot));
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

void jx_ls_start(struct jfs_xml *x, enum el id, const XML_Char *name, const XML_Char **atts)
{
	unsigned d = x->depth;
	if (!x->item_depth) {
		if (id != EL_FOLDER && id != EL_FILE && id != EL_STATS)
			return;
		x->item_depth = d;
		x->item = id;
		jx_text_clear(&x->path);
		jx_text_clear(&x->fname);
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
		jx_fail(x, -EIO, "liststream path outside the listed folder");
		return NULL;
	}
	size_t n = strlen(rel);
	if (n != (size_t)(p + len - rel) || (n && (rel[0] == '/' || rel[n - 1] == '/')) ||
	    strstr(rel, "//")) {
		jx_fail(x, -EIO, "liststream path is not clean");
		return NULL;
	}
	return rel;
}

/* Deliver folder @rel ("a/b/c": parent "a/b", name "c"; "" is the listed
 * folder itself) and count it. @rel is writable (split in place, restored). */
static int ls_folder(struct jfs_xml *x, char *rel)
{
	struct jfs_entry e;
	jx_entry_init(&e);
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
	int err = jx_deliver(x, &e);
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
	char *rel = (char *)ls_relative(x, jx_text_str(&x->path), x->path.len);
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
		jx_fail(x, -EIO, "liststream <file> without a <filename>");
		return;
	}
	struct jfs_entry e;
	jx_entry_init(&e);
	e.name = jx_text_str(&x->fname);
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
	jx_deliver(x, &e);
}

void jx_ls_end(struct jfs_xml *x, enum el id, bool text)
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
		jx_text_set(x, &x->path, jx_text_str(&x->text), x->text.len);
		break;
	case EL_FILENAME:
		jx_text_set(x, &x->fname, jx_text_str(&x->text), x->text.len);
		break;
	case EL_MD5:
		jx_parse_md5(x, x->ls_md5);
		break;
	case EL_SIZE:
		jx_parse_size(x, "size", &x->ls_size);
		break;
	case EL_MODIFIED:
		jx_parse_time(x, true, "modified", &x->ls_modified);
		break;
	case EL_CREATED:
		jx_parse_time(x, true, "created", &x->ls_created);
		break;
	case EL_FOLDERS:
		jx_parse_u63(x, "folders", &x->stat_folders);
		break;
	case EL_FILES:
		jx_parse_u63(x, "files", &x->stat_files);
		break;
	default:
		break;
	}
}
