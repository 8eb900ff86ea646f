/*
 * fs/poll.h — faster change detection: the directories the user is looking
 * at are revalidated in the background, so that another client's change
 * shows up within -o poll_interval seconds (default 5) instead of
 * dir_cache_time (default 60).
 *
 * A directory is "looked at" when it was read (readdir) in the last
 * POLL_WATCH_S seconds; at most POLL_MAX_WATCHED are kept, the most
 * recently read. Every interval ONE folder GET goes out, for the next
 * watched directory in turn (a single watched directory is revalidated at
 * every tick; four share the ticks), unless that directory was listed
 * within the interval anyway. What the listing changed is applied
 * like any listing (fs_changes): the kernel's dentries and pages are
 * invalidated. Nothing goes out when no directory is watched or while the
 * service is offline. Cost: at most one request per interval while a
 * directory is in use, none when idle.
 *
 * Thread-safe: poller_note() may be called from any thread.
 */
#ifndef JOTTAFS_FS_POLL_H
#define JOTTAFS_FS_POLL_H

#include <stdint.h>

struct fs;
struct poller;

#define POLL_WATCH_S      300
#define POLL_MAX_WATCHED  4

/* @interval <= 0: no poller (*out NULL, every call a no-op). */
int poller_new(struct fs *fs, double interval, struct poller **out);
/* Start the thread (after fork). */
int poller_start(struct poller *p);
/* Directory @dir (node id) was read. */
void poller_note(struct poller *p, uint64_t dir);
/* Stop the thread and free. */
void poller_free(struct poller *p);

#endif
