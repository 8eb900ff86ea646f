/*
 * lib/secret.h — keeping secrets out of core dumps.
 *
 * The process holds OAuth tokens for as long as it runs. By default it is
 * made not dumpable at start (PR_SET_DUMPABLE 0): no core dump is written,
 * and other processes of the same user cannot ptrace it or read its memory
 * through /proc. Debugging (-d, -o coredump) makes it dumpable again; the
 * long-lived copies of the tokens then still stay out of the dump, because
 * they live in pages marked MADV_DONTDUMP (secret_strdup).
 *
 * No global state; thread-safe.
 */
#ifndef JOTTAFS_SECRET_H
#define JOTTAFS_SECRET_H

#include <stdbool.h>

/* Allow or forbid core dumps (and same-user ptrace) of this process. 0 or -errno. */
int secret_set_dumpable(bool dumpable);

/* Whether this process is dumpable (PR_GET_DUMPABLE). */
bool secret_dumpable(void);

/*
 * A copy of @s in memory of its own, excluded from core dumps; NULL when out
 * of memory. Free it with secret_free() only (never free()).
 */
char *secret_strdup(const char *s);

/* Wipe and release a secret_strdup() copy; NULL is fine. */
void secret_free(char *s);

#endif
