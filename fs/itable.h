/*
 * fs/itable.h — the kernel's references to our inodes.
 *
 * Inode numbers are node ids from the index (cache/meta.h): stable, never
 * reused, so the table only counts how many lookups the kernel holds on
 * each (its nlookup) — names, parents and attributes live in the index,
 * the single source of truth, which keeps this table at 16 bytes per inode
 * the kernel knows. An entry exists while its count is above zero.
 *
 * forget() of more than the kernel was given is an internal invariant
 * violation (a bug in fs/, never remote input): it aborts, as libfuse's
 * passthrough_hp does.
 *
 * Thread-safe (one mutex, a leaf lock).
 */
#ifndef JOTTAFS_FS_ITABLE_H
#define JOTTAFS_FS_ITABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct itable;

int itable_new(struct itable **out);
void itable_free(struct itable *t);
/* The kernel got one more reference to @ino (an entry reply it accepted). 0 or -ENOMEM. */
int itable_ref(struct itable *t, uint64_t ino);
/* The kernel dropped @n references to @ino. */
void itable_forget(struct itable *t, uint64_t ino, uint64_t n);
/* Does the kernel hold a reference to @ino? */
bool itable_known(struct itable *t, uint64_t ino);

#endif
