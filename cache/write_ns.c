/*
 * cache/write_ns.c — the write path's namespace half: create, mkdir,
 * unlink, rmdir and rename: in the index, with the service following
 * through the namespace queue (mkdir, unlink, rmdir) or first (rename),
 * pending uploads cancelled or moved along, and the startup pass over
 * folders whose creation is pending. Contract and lock order: write.h.
 */
#include "cache/write.h"
#include "cache/write_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/data.h"
#include "cache/deletes.h"
#include "cache/lister.h"
#include "cache/meta.h"
#include "cache/upload.h"
#include "lib/log.h"
#include "net/jfs.h"
#include "net/names.h"

/*
 * The server name for a new entry @name in @pid: encoded (-ENAMETOOLONG
 * over 255 units), and refused with -EEXIST when the directory shows an
 * entry of that name (another spelling of it on the server, or a twin's
 * suffixed name) or holds one the case-insensitive service sees as the
 * same name (other than @self).
 */
static int new_name(struct writer *w, uint64_t pid, const char *name, uint64_t self,
		    char **sname)
{
	struct meta_attr a;
	uint64_t other = 0;
	int err;

	*sname = NULL;
	err = names_encode(name, strlen(name), sname);
	if (!err)
		err = lister_fresh(w->cfg.ls, pid, 0, NULL);
	if (!err) {
		err = meta_lookup(w->cfg.meta, pid, name, &a);
		if (!err)
			other = a.id;
		else if (err == -ENOENT)
			err = 0;
	}
	if (!err && (!other || other == self))
		err = meta_lookup_fold(w->cfg.meta, pid, *sname, &other, NULL);
	if (!err && other && other != self)
		err = -EEXIST;
	if (err) {
		free(*sname);
		*sname = NULL;
	}
	return err;
}

/* The server path of a new child @sname of @pid. */
static int child_path(struct writer *w, uint64_t pid, const char *sname, char **out)
{
	char *dir = NULL;
	int err = meta_path(w->cfg.meta, pid, &dir);

	*out = NULL;
	if (err)
		return err;
	if (asprintf(out, "%s%s%s", dir, *dir ? "/" : "", sname) < 0)
		err = -ENOMEM;
	free(dir);
	return err;
}

/* An entry of folder @id was added, removed or renamed: its mtime and
 * ctime move, as on any disk. */
static void dir_changed(struct writer *w, uint64_t id)
{
	time_t now = time(NULL);
	int err = meta_set_dir_times(w->cfg.meta, id, now, now);

	if (err)
		log_warn("cannot set the times of folder node %" PRIu64 ": %s", id,
			 strerror(-err));
}

static void trashed(struct writer *w)
{
	if (w->cfg.trashed)
		w->cfg.trashed(w->cfg.ctx);
}

/* Something is about to be made or moved at server path @path: the deletes
 * pending there (and below it when @subtree) are applied first, so that a
 * late delete never removes what comes after it. */
static int deletes_first(struct writer *w, const char *path, bool subtree)
{
	return w->cfg.deletes ? delq_flush(w->cfg.deletes, path, subtree) : 0;
}

/* The same for a new child @sname of folder @pid. */
static int deletes_first_child(struct writer *w, uint64_t pid, const char *sname)
{
	char *path = NULL;
	int err;

	/* (a folder creation is never pending where a new name goes) */
	if (!w->cfg.deletes || delq_deletes_idle(w->cfg.deletes))
		return 0;
	err = child_path(w, pid, sname, &path);
	if (!err)
		err = deletes_first(w, path, true);
	free(path);
	return err;
}

/* Something on the service is about to be moved to @path: the folders
 * above it whose creation is pending are made first (a move does not make
 * missing parents as an upload does). */
static int parents_first(struct writer *w, const char *path)
{
	return w->cfg.deletes ? delq_flush_parents(w->cfg.deletes, path) : 0;
}

/* Startup: a folder marked pending whose creation is not journalled (a
 * crash between the two, before mkdir returned) follows the service again. */
static int settle_dir(void *ctx, uint64_t id)
{
	struct writer *w = ctx;

	if (!w->cfg.deletes || !delq_mkdir_pending(w->cfg.deletes, id))
		meta_set_dir_made(w->cfg.meta, id);
	return 0;
}

void writer_recover_dirs(struct writer *w)
{
	meta_new_dirs(w->cfg.meta, settle_dir, w);
}

/* Delete @path on the service: journalled in the delete queue (applied in
 * the background), or at once without one, or when the queue's journal
 * cannot be written (a full disk) (404: gone already). */
static int server_delete(struct writer *w, const char *path, bool is_dir)
{
	int err;

	if (w->cfg.deletes) {
		err = delq_add(w->cfg.deletes, path, is_dir);
		if (!err)
			return 0;
		log_debug("delete of '%s' not journalled (%s): deleting it now", path,
			  strerror(-err));
	}
	err = jfs_delete(w->cfg.jfs, path, is_dir, w->cfg.hard_delete);
	if (err == -ENOENT)
		err = 0;        /* never arrived, or gone already */
	if (!err)
		trashed(w);
	return err;
}

int writer_create(struct writer *w, uint64_t pid, const char *name, struct meta_attr *a,
		  struct dfile **df)
{
	uint64_t id = 0;
	char *sname = NULL;
	int err;

	*df = NULL;
	err = new_name(w, pid, name, 0, &sname);
	/* Offline, the create goes ahead of a delete queued at its name (rm f;
	 * echo x > f): its upload waits for that delete instead
	 * (delq_flush_above, as every upload does). */
	if (!err && (err = deletes_first_child(w, pid, sname)) == -EHOSTDOWN)
		err = 0;
	if (!err)
		err = meta_create(w->cfg.meta, pid, name, sname, false, time(NULL), &id);
	free(sname);
	if (!err)
		err = dcache_create(w->cfg.dc, id, df);
	if (!err)
		err = meta_get(w->cfg.meta, id, a);
	if (err) {
		if (*df)
			dcache_close(*df);
		*df = NULL;
		if (id)
			meta_unlink(w->cfg.meta, id);
		return err;
	}
	dir_changed(w, pid);
	return 0;
}

int writer_mkdir(struct writer *w, uint64_t pid, const char *name, struct meta_attr *a)
{
	char *sname = NULL, *path = NULL;
	uint64_t id = 0;
	int err;

	err = new_name(w, pid, name, 0, &sname);
	if (!err)
		err = child_path(w, pid, sname, &path);
	if (!err)
		err = deletes_first(w, path, true);
	/* Offline (rm -rf d; mkdir d): the queue applies the creation after the
	 * deletes it holds at the path (operations whose paths meet go in
	 * order), and uploads below it wait for those deletes. */
	if (err == -EHOSTDOWN && w->cfg.deletes)
		err = 0;
	if (!err && w->cfg.deletes) {
		/* journalled: the queue makes it on the service (or an upload
		 * into it does), the index has it now */
		err = meta_mkdir(w->cfg.meta, pid, name, sname, time(NULL), true, &id);
		if (!err) {
			err = delq_mkdir(w->cfg.deletes, path, id);
			if (err)
				meta_unlink(w->cfg.meta, id);
		}
	} else if (!err && !(err = jfs_mkdir(w->cfg.jfs, path))) {
		err = meta_create(w->cfg.meta, pid, name, sname, true, time(NULL), &id);
		/* A listing of the parent that ran meanwhile (e.g. the background
		 * revalidation after a remount) may already have inserted the
		 * folder this mkdir just made: that is success, not EEXIST. */
		if (err == -EEXIST && meta_lookup_fold(w->cfg.meta, pid, sname, &id, NULL) == 0 &&
		    id && meta_get(w->cfg.meta, id, a) == 0 && a->is_dir)
			err = 0;
	}
	if (!err)
		err = meta_get(w->cfg.meta, id, a);
	free(sname);
	free(path);
	if (!err)
		dir_changed(w, pid);
	return err;
}

/* Remove file @a: cancel its upload, delete it on the service (unless it
 * never got there; journalled, see server_delete), drop its content and
 * its node. */
static int remove_file(struct writer *w, const struct meta_attr *a)
{
	struct meta_attr now;
	bool pending;
	char *path = NULL;
	int err;

	if (w->up && a->local) {
		/* As for rename: an upload that landed (an fsync just before)
		 * but whose done callback has not run yet is on the service
		 * although the index still says "new, local": let the callback
		 * record it, so that it is deleted rather than left behind. */
		writer_wait_settled(w, a->id);
		err = meta_get(w->cfg.meta, a->id, &now);
		if (err)
			return err == -ENOENT ? 0 : err;
		a = &now;
	}
	pending = w->up && upload_pending(w->up, a->id);

	if (pending)
		upload_cancel(w->up, a->id);
	err = meta_path(w->cfg.meta, a->id, &path);
	if (!err && (!a->local || a->base_size >= 0 || pending))
		err = server_delete(w, path, false);
	free(path);
	if (err)
		return err;
	writer_drop(w, a->id);
	dcache_discard(w->cfg.dc, a->id);
	return meta_unlink(w->cfg.meta, a->id);
}


/* Is directory @id empty (listing it if needed)? 0, -ENOTEMPTY or -errno. */
static int dir_empty(struct writer *w, uint64_t id)
{
	uint64_t all = 0, dirs = 0;
	int err = lister_fresh(w->cfg.ls, id, 0, NULL);

	if (!err)
		err = meta_count_children(w->cfg.meta, id, &all, &dirs);
	return err ? err : all ? -ENOTEMPTY : 0;
}

static int remove_dir(struct writer *w, const struct meta_attr *a)
{
	char *path = NULL;
	int err, unmade = 0;

	if (a->id == w->cfg.root_id)
		return -EBUSY;
	err = dir_empty(w, a->id);
	if (!err)
		err = meta_path(w->cfg.meta, a->id, &path);
	/* a folder whose creation was never sent: no request at all */
	if (!err && w->cfg.deletes && a->local == META_LOCAL_NEWDIR)
		unmade = delq_unmake(w->cfg.deletes, path);
	if (unmade < 0)
		err = unmade;
	if (!err && unmade == 0)
		err = server_delete(w, path, true);
	free(path);
	return err ? err : meta_unlink(w->cfg.meta, a->id);
}

/* unlink (@dir false) or rmdir of @name in folder @pid. */
static int remove_entry(struct writer *w, uint64_t pid, const char *name, bool dir)
{
	struct meta_attr a;
	int err = lister_fresh(w->cfg.ls, pid, 0, NULL);

	if (!err)
		err = meta_lookup(w->cfg.meta, pid, name, &a);
	if (!err && a.is_dir != dir)
		err = dir ? -ENOTDIR : -EISDIR;
	if (!err)
		err = dir ? remove_dir(w, &a) : remove_file(w, &a);
	if (!err)
		dir_changed(w, pid);
	return err;
}

int writer_unlink(struct writer *w, uint64_t pid, const char *name)
{
	return remove_entry(w, pid, name, false);
}

int writer_rmdir(struct writer *w, uint64_t pid, const char *name)
{
	return remove_entry(w, pid, name, true);
}

/*
 * A local file moved away from @path, where the service holds none of it
 * (mv said -ENOENT): an upload of it cut there (by the rename, or given up)
 * may have left a partial revision, a file with no completed revision that
 * no listing shows. Remove that, and only that: a tombstone in the trash
 * (jfs_stat: -ENOENT) may be another client's deletion, still restorable.
 * Best effort: a partial left behind stays invisible.
 */
static void remove_partial(struct writer *w, const char *path)
{
	struct jfs_entry e;
	int err = jfs_stat(w->cfg.jfs, path, &e);

	if (err)
		return;
	if (!e.is_dir && !e.completed) {
		err = jfs_delete(w->cfg.jfs, path, false, true);
		if (err && err != -ENOENT)
			log_warn("cannot remove the partial upload left at '%s': %s", path,
				 strerror(-err));
		else
			log_debug("rename: removed the partial upload at '%s'", path);
	}
	jfs_entry_release(&e);
}

/*
 * Move file @src from @from to @to on the service, its pending upload along.
 * A new file whose upload never ran (rsync's temp file, git's index.lock,
 * an editor's save: renamed within the write-back delay of its close) has
 * nothing on the service: its journal record changes path, and that is all.
 */
static int move_file(struct writer *w, struct meta_attr *src, const char *from, const char *to)
{
	bool pending, touched = false;
	int err = 0;

	if (w->up && src->local) {
		/* An upload that landed at the old name but whose done
		 * callback has not run yet (an fsync just before, say) is
		 * on the service although the index still says "new,
		 * local": let the callback record it first, so that it is
		 * moved along instead of left behind under the old name
		 * and then taken for someone else's version. */
		writer_wait_settled(w, src->id);
		err = meta_get(w->cfg.meta, src->id, src);
	}
	pending = !err && w->up && upload_pending(w->up, src->id);
	if (pending)
		err = upload_rename(w->up, src->id, to, &touched);
	if (!err && (!src->local || src->base_size >= 0 || (pending && touched))) {
		err = parents_first(w, to);
		if (!err)
			err = jfs_move(w->cfg.jfs, from, to, false);
		if (err == -ENOENT && src->local) {
			/* Its upload never completed at the old path. */
			err = 0;
			remove_partial(w, from);
		}
	}
	if (err && pending)
		upload_rename(w->up, src->id, from, &touched);
	return err;
}

int writer_rename(struct writer *w, uint64_t pid, const char *name, uint64_t npid,
		  const char *newname, bool noreplace)
{
	struct meta_attr src = { 0 }, dst = { 0 };
	char *nsname = NULL, *from = NULL, *to = NULL;
	bool have_dst = false;
	int err;

	err = lister_fresh(w->cfg.ls, pid, 0, NULL);
	if (!err)
		err = meta_lookup(w->cfg.meta, pid, name, &src);
	if (!err) {
		err = meta_lookup(w->cfg.meta, npid, newname, &dst);
		have_dst = !err;
		err = err == -ENOENT ? 0 : err;
	}
	if (!err && have_dst && dst.id == src.id)
		return 0;               /* the same entry: nothing to do */
	/* A name the case-insensitive service sees as another entry: EEXIST,
	 * except the target itself or a case-only rename of the source. */
	if (!err)
		err = new_name(w, npid, newname, have_dst ? dst.id : src.id, &nsname);
	if (!err && have_dst) {
		if (noreplace)
			err = -EEXIST;
		else if (dst.is_dir && !src.is_dir)
			err = -EISDIR;
		else if (!dst.is_dir && src.is_dir)
			err = -ENOTDIR;
		else if (dst.is_dir)
			err = remove_dir(w, &dst);
		else
			err = remove_file(w, &dst);
	}
	if (!err)
		err = meta_path(w->cfg.meta, src.id, &from);
	if (!err)
		err = child_path(w, npid, nsname, &to);
	/* deletes pending at the target (the replaced entry's, an earlier
	 * unlink's) and below a folder moved away go to the service first */
	if (!err)
		err = deletes_first(w, to, true);
	if (!err && src.is_dir)
		err = deletes_first(w, from, true);
	if (!err && src.is_dir) {
		if (w->up)
			err = upload_rename_dir(w->up, from, to);
		if (!err)
			err = parents_first(w, to);
		if (!err)
			err = jfs_move(w->cfg.jfs, from, to, true);
		if (err && w->up)
			upload_rename_dir(w->up, to, from);
	} else if (!err) {
		err = move_file(w, &src, from, to);
	}
	if (!err)
		err = meta_rename(w->cfg.meta, src.id, npid, newname, nsname, NULL);
	if (!err) {
		dir_changed(w, pid);
		if (npid != pid)
			dir_changed(w, npid);
	}
	free(nsname);
	free(from);
	free(to);
	return err;
}
