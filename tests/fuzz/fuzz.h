/*
 * tests/fuzz/fuzz.h — what every libFuzzer target in tests/fuzz shares: the
 * entry points libFuzzer calls and CHECK, which reports a broken contract
 * (file, line, condition) and aborts so that libFuzzer keeps the input.
 * refused(rc, out): a decoder's answer @rc is a refusal (true), which must
 * be -EIO or -ENOMEM with nothing handed out in @out.
 */
#ifndef JOTTAFS_FUZZ_H
#define JOTTAFS_FUZZ_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                    \
	do {                                                           \
		if (!(cond)) {                                         \
			fprintf(stderr, "%s:%d: check failed: %s\n",   \
				__FILE__, __LINE__, #cond);            \
			abort();                                       \
		}                                                      \
	} while (0)

static inline bool refused(int rc, const void *out)
{
	if (rc >= 0)
		return false;
	CHECK((rc == -EIO || rc == -ENOMEM) && out == NULL);
	return true;
}

#endif
