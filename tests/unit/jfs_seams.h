/*
 * tests/unit/jfs_seams.h — link seams for unit programs that drive the
 * upload workers through cfg->ops (a fake service): the default net/jfs
 * calls in cache/upload.o must never run. Defining them here keeps such a
 * program independent of net/jfs.o and all it pulls in (curl, the HTTP
 * pool); the archive member is then never linked. Include in exactly one
 * file of a program (it defines functions), after unit.h and net/jfs.h.
 */
#ifndef JOTTAFS_TESTS_JFS_SEAMS_H
#define JOTTAFS_TESTS_JFS_SEAMS_H

int jfs_stat(struct jfs *j, const char *path, struct jfs_entry *out)
{
	fail_msg("jfs_stat called in a unit test");
	return -ENOSYS;
}

void jfs_entry_release(struct jfs_entry *e)
{
	fail_msg("jfs_entry_release called in a unit test");
}

int jfs_allocate(struct jfs *j, const struct jfs_alloc_req *req, struct jfs_alloc *out)
{
	fail_msg("jfs_allocate called in a unit test");
	return -ENOSYS;
}

void jfs_alloc_release(struct jfs_alloc *a)
{
	fail_msg("jfs_alloc_release called in a unit test");
}

int jfs_upload_cancellable(struct jfs *j, const char *upload_url, int fd,
			   int64_t resume_pos, int64_t size, const char *md5,
			   const atomic_bool *cancel, time_t *out_modified)
{
	fail_msg("jfs_upload_cancellable called in a unit test");
	return -ENOSYS;
}

int jfs_upload_progress(struct jfs *j, const char *upload_url, int fd, int64_t resume_pos,
			int64_t size, const char *md5, const atomic_bool *cancel,
			_Atomic int64_t *sent, time_t *out_modified)
{
	fail_msg("jfs_upload_progress called in a unit test");
	return -ENOSYS;
}

#endif
