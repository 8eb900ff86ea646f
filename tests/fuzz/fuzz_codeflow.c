/*
 * tests/fuzz/fuzz_codeflow.c — libFuzzer target for what the code-flow
 * login reads from outside (issue 12): a pasted answer, a request head on
 * the loopback listener, and a service table file.
 *
 *   paste, request  0 with a code of [A-Za-z0-9-._~] only; otherwise no
 *                   code, and a reason that is printable text;
 *   service table   0 with every service complete, or -EINVAL with a
 *                   message and the table unchanged.
 * Memory safety and leaks are ASan's job.
 *
 * Build: make fuzz
 * Run:   build-fuzz/fuzz/fuzz_codeflow -max_total_time=60 /tmp/corpus-codeflow \
 *          tests/fuzz/codeflow_seeds
 */
#include "fuzz.h"
#include "auth/codeflow.h"
#include "auth/services.h"
#include "lib/log.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define STATE "abcdefghijklmnopqrstuvwxyz0123456789_-ABCDE"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_setup(LOG_LVL_ERR, false);
	return 0;
}

static void check_code(int rc, char *code, char *why)
{
	if (rc == 0) {
		if (!code || !*code || strspn(code, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
						    "0123456789-._~") != strlen(code))
			abort();
	} else if (code) {
		abort();
	}
	for (const char *p = why; p && *p; p++)
		if ((unsigned char)*p < 0x20)
			abort();
	free(code);
	free(why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	char *code = NULL, *why = NULL;
	check_code(codeflow_parse_paste(text, size, STATE, &code, &why), code, why);
	code = why = NULL;
	check_code(codeflow_parse_request(text, size, STATE, &code, &why), code, why);

	struct services *s;
	char *msg = NULL;
	if (services_new(&s) < 0)
		return 0;
	int rc = services_add_json(s, text, size, "fuzz.json", 1, &msg);
	if (rc == -EINVAL && (!msg || services_count(s) != 0))
		abort();
	for (size_t i = 0; rc == 0 && i < services_count(s); i++) {
		const struct service *v = services_at(s, i);
		if (!v->key || !v->name || !v->domain || !v->realm || !v->client_id ||
		    !v->scopes || !v->url || services_find(s, v->key) != v)
			abort();
	}
	free(msg);
	services_free(s);
	return 0;
}
