/*
 * lib/privdir.h — directories and files that only the running user can change.
 *
 * Everything jottafs keeps on disk (the account files in the configuration
 * directory; the cache directory with its lock, index, upload journal,
 * content files and lost+found) lives in a directory that must be
 *   - owned by the running user and not writable by group or others, and
 *   - below ancestors that only that user or root can change: each one owned
 *     by the user or by root, and not writable by group or others unless it
 *     has the sticky bit (like /tmp).
 * Otherwise another local user could put a symlink where we write (a root
 * mount would overwrite the file it points to), a file of theirs where we
 * read, or read the index; so such a directory is refused, never repaired
 * behind the user's back. A directory of ours that group or others may only
 * read is tightened to 0700.
 *
 * Files in such a directory are opened with O_NOFOLLOW and must be regular
 * files owned by the running user; new ones are created 0600.
 *
 * Messages (the @msg buffers) are one line for the person at the terminal:
 * the path, what was found, what to do. No global state; thread-safe.
 */
#ifndef JOTTAFS_PRIVDIR_H
#define JOTTAFS_PRIVDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * Check the directory @path for the user @uid (see above), after resolving
 * it (realpath: a symlink in @path is followed once, here, and the resolved
 * path is what must be used from then on). Returns 0 and, if @resolved is
 * not NULL, stores the malloc'd resolved path there (caller frees); else
 * -ENOENT (no such directory), -ENOTDIR, -EPERM (owner or mode not safe) or
 * another -errno, with a message in @msg.
 */
int privdir_check(const char *path, uid_t uid, char **resolved, char *msg, size_t msgsz);

/*
 * Create @path and its missing parents (mode 0700), tighten the directory
 * itself to 0700 if it is @uid's and group or others may read it, then
 * privdir_check(). Same returns.
 */
int privdir_make(const char *path, uid_t uid, char **resolved, char *msg, size_t msgsz);

/*
 * Open (creating it 0700 if missing) the directory @name in @dirfd (or the
 * path @name with AT_FDCWD), which must lie inside a checked directory: not
 * a symlink, owned by geteuid(), not writable by group or others. Returns
 * an O_DIRECTORY fd or -ELOOP / -ENOTDIR / -EPERM / -errno.
 */
int privdir_open_dir(int dirfd, const char *name);

/*
 * Open the file @name in @dirfd (or the path @name with AT_FDCWD) with
 * @flags plus O_NOFOLLOW, O_CLOEXEC and O_NOCTTY; a file made by O_CREAT
 * gets mode 0600. The file must be a regular file owned by geteuid(), and
 * with @single_link, have no other hard link. Returns the fd or -errno:
 * -ELOOP (a symlink), -EINVAL (not a regular file), -EPERM (someone
 * else's, or linked elsewhere).
 */
int privdir_open_file(int dirfd, const char *name, int flags, bool single_link);

/*
 * Prepare the SQLite database @path before sqlite3_open: create it 0600 if
 * it is missing (SQLite gives its -wal, -shm and -journal files the mode of
 * the database file), and for it and for those of its siblings that exist:
 * refuse a symlink or a file not ours (privdir_open_file) and tighten the
 * mode to 0600. Returns 0 or -errno.
 */
int privdir_sqlite_files(const char *path);

/* A one-line explanation of a privdir_open_file() error for @path into @buf. */
const char *privdir_file_error(const char *path, int err, char *buf, size_t bufsz);

#endif
