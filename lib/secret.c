/*
 * lib/secret.c — see secret.h.
 *
 * A secret copy is an anonymous mapping of whole pages: the mapping length,
 * then the string. Its own pages, because MADV_DONTDUMP applies to pages
 * and a heap page would be shared with data that belongs in a dump.
 */
#include "lib/secret.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

int secret_set_dumpable(bool dumpable)
{
	return prctl(PR_SET_DUMPABLE, dumpable ? 1 : 0, 0, 0, 0) < 0 ? -errno : 0;
}

bool secret_dumpable(void)
{
	return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 1;
}

char *secret_strdup(const char *s)
{
	size_t len = strlen(s) + 1, page = (size_t)sysconf(_SC_PAGESIZE), size;
	void *p;

	if (__builtin_add_overflow(len, sizeof(size_t) + page - 1, &size))
		return NULL;
	size -= size % page;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* not fatal: the process is normally not dumpable at all */
	madvise(p, size, MADV_DONTDUMP);
	memcpy(p, &size, sizeof(size));
	memcpy((char *)p + sizeof(size_t), s, len);
	return (char *)p + sizeof(size_t);
}

void secret_free(char *s)
{
	size_t size;
	char *p;

	if (!s)
		return;
	p = s - sizeof(size_t);
	memcpy(&size, p, sizeof(size));
	explicit_bzero(p, size);
	munmap(p, size);
}
