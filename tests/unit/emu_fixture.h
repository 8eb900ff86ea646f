/*
 * tests/unit/emu_fixture.h — the emulator fixture of the unit tests that
 * talk to tests/emulator/jottaemu (test_upload_emu.c, test_write.c): it is
 * started on a free port with a temporary data directory, an account
 * EMU_USER logged in, and E holds the clients. Header-only; the program
 * defines EMU_USER and EMU_TMP (its scratch directory's name) first and
 * passes group_setup/group_teardown to UNIT_MAIN.
 *
 *   E                     the emulator's url, pid, scratch and config dirs,
 *                         the control client and the account's http/auth/jfs
 *   emu(method, path, fmt, ...)
 *                         a control call (/_emu/PATH, JSON body from fmt);
 *                         the parsed answer (caller frees)
 *   knobs(json), stat_num(key, sub), tree_entry(path), server_md5(...)
 *                         knobs, stats and the account's tree
 *   client()              an http client that gives up quickly
 *   account_open(...)     the stored account and its jfs client again
 *
 * Needs python3 (the emulator); JOTTAEMU overrides its path. If it cannot
 * start, the tests fail: they never skip. The watchdog (watchdog.h) ends
 * the program at once if the emulator dies.
 */
#ifndef JOTTAFS_TESTS_EMU_FIXTURE_H
#define JOTTAFS_TESTS_EMU_FIXTURE_H

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "auth/auth.h"
#include "lib/clock.h"
#include "net/http.h"
#include "net/jfs.h"
#include "unit.h"
#include "watchdog.h"

static struct {
	pid_t pid;
	char url[128];
	char jfs_url[160];
	char root[256];           /* temp: emulator data, config, caches */
	char cfgdir[300];
	struct http_client *ctl;  /* control endpoint: no auth */
	struct http_client *http; /* the account */
	struct auth *auth;
	struct jfs *jfs;
} E;

/* A control call; returns the parsed JSON answer (caller frees). */
static inline cJSON *emu(const char *method, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static inline cJSON *emu(const char *method, const char *path, const char *fmt, ...)
{
	struct http_request req;
	struct http_response resp;
	char url[512], body[4096];
	cJSON *j;
	va_list ap;
	int err;

	snprintf(url, sizeof(url), "%s/_emu/%s", E.url, path);
	http_request_init(&req, method, url);
	req.no_auth = true;
	req.max_body = 64 << 20;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(body, sizeof(body), fmt, ap);
		va_end(ap);
		req.body = body;
		req.body_len = strlen(body);
		req.content_type = "application/json";
	}
	memset(&resp, 0, sizeof(resp));
	err = http_request_do(E.ctl, &req, &resp);
	if (err)
		fail_msg("control %s %s: %s (status %ld)", method, path, strerror(-err), resp.status);
	j = cJSON_Parse(resp.body ? resp.body : "null");
	http_response_release(&resp);
	assert_non_null(j);
	return j;
}

static inline void knobs(const char *json)
{
	cJSON_Delete(emu("POST", "knobs", "%s", json));
}

static inline int64_t stat_num(const char *key, const char *sub)
{
	cJSON *s = emu("GET", "stats", NULL), *v = cJSON_GetObjectItem(s, key);
	int64_t r;
	if (sub)
		v = cJSON_GetObjectItem(v, sub);
	r = cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
	cJSON_Delete(s);
	return r;
}

/* The emulator's record of @path (a copy), or NULL. */
static inline cJSON *tree_entry(const char *path)
{
	char q[128];
	cJSON *t, *e, *r = NULL;
	snprintf(q, sizeof(q), "tree?user=%s", EMU_USER);
	t = emu("GET", q, NULL);
	cJSON_ArrayForEach(e, t) {
		cJSON *p = cJSON_GetObjectItem(e, "path");
		if (cJSON_IsString(p) && strcmp(p->valuestring, path) == 0) {
			r = cJSON_Duplicate(e, 1);
			break;
		}
	}
	cJSON_Delete(t);
	return r;
}

/* md5 of the current revision of @path on the emulator, "" when none. */
static inline void server_md5(const char *path, char out[33], int *revisions)
{
	cJSON *e = tree_entry(path);
	const char *m = e ? cJSON_GetStringValue(cJSON_GetObjectItem(e, "md5")) : NULL;
	snprintf(out, 33, "%s", m ? m : "");
	if (revisions) {
		cJSON *r = e ? cJSON_GetObjectItem(e, "revisions") : NULL;
		*revisions = r && cJSON_IsNumber(r) ? r->valueint : 0;
	}
	cJSON_Delete(e);
}

static inline void emu_start(void)
{
	const char *exe = getenv("JOTTAEMU") ? getenv("JOTTAEMU") : "tests/emulator/jottaemu";
	char data[320], logf[320], line[256];
	int p[2], n = 0;
	struct pollfd pfd;
	int64_t end = clock_mono_ms() + 30000;

	if (access(exe, X_OK) != 0)
		fail_msg("emulator '%s' not found: run from the source tree or set JOTTAEMU", exe);
	snprintf(data, sizeof(data), "%s/emu", E.root);
	snprintf(logf, sizeof(logf), "%s/emu.log", E.root);
	assert_int_equal(pipe(p), 0);
	E.pid = fork();
	assert_true(E.pid >= 0);
	if (E.pid == 0) {
		int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		prctl(PR_SET_PDEATHSIG, SIGKILL);    /* never outlive the tests */
		dup2(p[1], 1);
		if (fd >= 0)
			dup2(fd, 2);
		close(p[0]);
		execl(exe, exe, "serve", "--data", data, "--port", "0", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	pfd.fd = p[0];
	pfd.events = POLLIN;
	while (n < (int)sizeof(line) - 1 && (n == 0 || line[n - 1] != '\n')) {
		ssize_t k;
		if (poll(&pfd, 1, 1000) <= 0) {
			if (clock_mono_ms() > end)
				fail_msg("emulator did not start within 30 s (see %s)", logf);
			continue;
		}
		k = read(p[0], line + n, 1);
		if (k <= 0)
			fail_msg("emulator exited before its ready line (see %s)", logf);
		n += (int)k;
	}
	line[n] = '\0';
	close(p[0]);
	if (sscanf(line, "ready %127s", E.url) != 1)
		fail_msg("unexpected emulator output: %s", line);
	snprintf(E.jfs_url, sizeof(E.jfs_url), "%s/jfs", E.url);
	static char what[400];
	snprintf(what, sizeof(what), "the emulator (log: %s)", logf);
	watchdog_watch(E.pid, what);
}

/* An http client that gives up quickly: the upload queue does the retrying. */
static inline struct http_client *client(void)
{
	struct http_config hc = { .max_retries = 2, .backoff_min_ms = 20, .backoff_max_ms = 100,
				  .connect_timeout_s = 5, .low_speed_time_s = 10 };
	struct http_client *c;
	assert_int_equal(http_client_new(&hc, &c), 0);
	return c;
}

/* Open the stored account (logged in by group_setup) and its jfs client. */
static inline void account_open(struct http_client **http, struct auth **a, struct jfs **j)
{
	struct auth_endpoints ep = { .api_url = E.url, .jfs_url = E.jfs_url };
	struct http_token_provider tp;
	char *msg = NULL;
	*http = client();
	if (auth_open(*http, E.cfgdir, "default", &ep, a, &msg) != 0)
		fail_msg("auth_open: %s", msg ? msg : "?");
	auth_token_provider(*a, &tp);
	http_client_set_token_provider(*http, &tp);
	struct jfs_config jc = {
		.jfs_url = E.jfs_url, .api_url = E.url, .username = auth_username(*a),
		.device = "Jotta", .mountpoint = "Archive",
	};
	assert_int_equal(jfs_new(*http, &jc, j), 0);
}

static inline int group_setup(void **state)
{
	struct auth_endpoints ep;
	char *msg = NULL;
	cJSON *t;

	(void)state;
	unit_tmpdir(E.root, sizeof(E.root), EMU_TMP);
	snprintf(E.cfgdir, sizeof(E.cfgdir), "%s/config", E.root);
	assert_int_equal(mkdir(E.cfgdir, 0700), 0);
	emu_start();
	E.ctl = client();
	t = emu("POST", "login-token", "{\"user\": \"%s\"}", EMU_USER);
	cJSON *tok = cJSON_GetObjectItem(t, "token");
	assert_true(cJSON_IsString(tok));
	struct http_client *h = client();
	ep = (struct auth_endpoints){ .api_url = E.url, .jfs_url = E.jfs_url };
	if (auth_login(h, E.cfgdir, "default", tok->valuestring, &ep, &msg) != 0)
		fail_msg("auth_login: %s", msg ? msg : "?");
	http_client_free(h);
	cJSON_Delete(t);
	account_open(&E.http, &E.auth, &E.jfs);
	return 0;
}

static inline int group_teardown(void **state)
{
	int st;

	(void)state;
	jfs_free(E.jfs);
	http_client_free(E.http);
	auth_free(E.auth);
	http_client_free(E.ctl);
	if (E.pid > 0) {
		int64_t end = clock_mono_ms() + 5000;
		watchdog_watch(0, NULL);        /* its exit is expected now */
		kill(E.pid, SIGTERM);
		while (waitpid(E.pid, &st, WNOHANG) == 0) {
			if (clock_mono_ms() > end) {
				kill(E.pid, SIGKILL);
				waitpid(E.pid, &st, 0);
				break;
			}
			unit_sleep_ms(10);
		}
	}
	unit_rm_rf(E.root);
	return 0;
}

#endif
