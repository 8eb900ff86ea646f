/*
 * fs/cli.c — login, logout, about, devices (see cli.h).
 *
 * Arguments are parsed with a fuse_opt table like the mount's, so "-o a=b,c=d"
 * lists and "--account NAME" / "--account=NAME" behave the same everywhere.
 * The commands themselves are thin: auth/ does login and the token store,
 * net/jfs answers quota and devices; this file turns their results into
 * text or JSON and their failures into one-line messages.
 *
 * Single-threaded. The only global is the saved terminal state, which the
 * signal handler needs to restore echo if the user interrupts the prompt.
 */
#include "fs/cli.h"

#include "auth/auth.h"
#include "auth/codeflow.h"
#include "auth/services.h"
#include "lib/log.h"
#include "net/http.h"
#include "net/jfs.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fuse_opt.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define LOGIN_TOKEN_MAX 16384  /* bytes read from the terminal or stdin */

enum cli_cmd { CMD_LOGIN, CMD_LOGOUT, CMD_ABOUT, CMD_DEVICES };

static const char *const cmd_names[] = { "login", "logout", "about", "devices" };

/* Parsed arguments. Flags are ints: fuse_opt stores ints. */
struct cli_opts {
	char *account;
	char *api_url;
	char *jfs_url;
	char *token_url;
	char *cafile;
	char *service;           /* login --service: the authorization-code flow */
	char *services;          /* -o services=FILE: the service table */
	unsigned login_timeout;  /* -o login_timeout=SECONDS */
	unsigned login_port;     /* -o login_port=PORT */
	int insecure_http;
	int json;
	int debug;
	int help;
	/* parse state */
	enum cli_cmd cmd;
	bool failed;
};

#define COPT(t, field, v) { t, offsetof(struct cli_opts, field), v }

static const struct fuse_opt cli_opt_table[] = {
	COPT("--account=%s", account, 0),
	COPT("--account %s", account, 0),
	COPT("account=%s", account, 0),
	COPT("api_url=%s", api_url, 0),
	COPT("jfs_url=%s", jfs_url, 0),
	COPT("token_url=%s", token_url, 0),
	COPT("cafile=%s", cafile, 0),
	COPT("--service=%s", service, 0),
	COPT("--service %s", service, 0),
	COPT("services=%s", services, 0),
	COPT("login_timeout=%u", login_timeout, 0),
	COPT("login_port=%u", login_port, 0),
	COPT("insecure_http", insecure_http, 1),
	COPT("--json", json, 1),
	COPT("-d", debug, 1),
	COPT("--debug", debug, 1),
	COPT("-h", help, 1),
	COPT("--help", help, 1),
	FUSE_OPT_END
};

bool cli_is_subcommand(const char *word)
{
	for (size_t i = 0; i < sizeof(cmd_names) / sizeof(cmd_names[0]); i++)
		if (word && !strcmp(word, cmd_names[i]))
			return true;
	return false;
}

/* fuse_opt callback for what the table does not know. */
static int cli_opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct cli_opts *c = data;
	if (key == FUSE_OPT_KEY_NONOPT) {
		if (c->cmd == CMD_LOGIN) {
			log_user("refusing to take the login token from the command line "
				"(other users can see it in the process list, and it stays in the "
				"shell history): run 'jottafs login' and paste it when asked, or pass "
				"it on standard input");
		} else {
			log_user("unexpected argument '%s' (see 'jottafs %s -h')", arg,
				cmd_names[c->cmd]);
		}
		c->failed = true;
		return -1;
	}
	log_user("unknown option '%s' for '%s' (see 'jottafs %s -h')", arg,
		cmd_names[c->cmd], cmd_names[c->cmd]);
	c->failed = true;
	return -1;
}

static void cli_usage(enum cli_cmd cmd)
{
	switch (cmd) {
	case CMD_LOGIN:
		printf("usage: jottafs login [--account NAME] [-o api_url=URL,jfs_url=URL,"
		       "token_url=URL,cafile=FILE,insecure_http] [-d]\n"
		       "       jottafs login --service NAME|list [--account NAME] [-o services=FILE,"
		       "login_port=PORT,login_timeout=SECONDS,...]\n\n"
		       "Reads a personal login token (web interface: Settings > Security) from\n"
		       "the terminal without echo, or from standard input, and stores the\n"
		       "account in $XDG_CONFIG_HOME/jottafs/NAME.json (default NAME: default).\n"
		       "With --service, logs in through the service's web page instead (the\n"
		       "authorization-code flow of Telia, Tele2, Elkjop, ... customers): open\n"
		       "the printed address, log in; the browser comes back to a listener on\n"
		       "127.0.0.1:%d, or paste the address it was sent to. '--service list'\n"
		       "shows the services.\n"
		       "Endpoint options are stored with the account. Plain http:// endpoints\n"
		       "are refused unless on a loopback host, or with -o insecure_http (which\n"
		       "never applies to the login token's own discovery link).\n", CODEFLOW_PORT);
		break;
	case CMD_LOGOUT:
		printf("usage: jottafs logout [--account NAME]\n\n"
		       "Forgets the stored tokens of the account.\n");
		break;
	case CMD_ABOUT:
		printf("usage: jottafs about [--account NAME] [--json] [-o ENDPOINT=URL] [-d]\n\n"
		       "Prints the account's usage and quota.\n");
		break;
	case CMD_DEVICES:
		printf("usage: jottafs devices [--account NAME] [--json] [-o ENDPOINT=URL] [-d]\n\n"
		       "Lists the devices of the account with their mountpoints.\n");
		break;
	}
}

static void cli_opts_release(struct cli_opts *c)
{
	free(c->account);
	free(c->api_url);
	free(c->jfs_url);
	free(c->token_url);
	free(c->cafile);
	free(c->service);
	free(c->services);
}

/* ---------------------------------------------------------------------- */
/* Reading the login token                                                */

/* The terminal state to restore; set while echo is off. */
static struct termios saved_tty;
static volatile sig_atomic_t tty_saved;

static void restore_tty_and_die(int sig)
{
	if (tty_saved)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * Read the login token: from the terminal with echo off (prompt on stderr),
 * or all of standard input. *out is malloc'd (the caller wipes it). 0,
 * -EFBIG (too long), -ENODATA (nothing), -errno.
 */
static int read_login_token(char **out)
{
	bool tty = isatty(STDIN_FILENO);
	char *buf = calloc(1, LOGIN_TOKEN_MAX + 2);
	size_t len = 0;
	int err = 0;
	if (!buf)
		return -ENOMEM;
	struct sigaction sa = { .sa_handler = restore_tty_and_die }, old[4];
	static const int sigs[4] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	if (tty) {
		struct termios noecho;
		fprintf(stderr, "Personal login token (web interface: Settings > Security): ");
		fflush(stderr);
		if (tcgetattr(STDIN_FILENO, &saved_tty) == 0) {
			for (int i = 0; i < 4; i++)
				sigaction(sigs[i], &sa, &old[i]);
			tty_saved = 1;
			noecho = saved_tty;
			noecho.c_lflag &= ~(tcflag_t)ECHO;
			noecho.c_lflag |= ECHONL;
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho);
		}
	}
	while (len <= LOGIN_TOKEN_MAX) {
		ssize_t n = read(STDIN_FILENO, buf + len, LOGIN_TOKEN_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (tty && memchr(buf, '\n', len))
			break; /* one line from a terminal */
	}
	if (tty && tty_saved) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
		tty_saved = 0;
		for (int i = 0; i < 4; i++)
			sigaction(sigs[i], &old[i], NULL);
	}
	if (!err && len > LOGIN_TOKEN_MAX)
		err = -EFBIG;
	if (!err && strspn(buf, " \t\r\n") == len)
		err = -ENODATA;
	if (err) {
		explicit_bzero(buf, LOGIN_TOKEN_MAX + 2);
		free(buf);
		return err;
	}
	*out = buf;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Output helpers                                                         */

/* Bytes in binary units: "512 bytes", "1.5 KiB", "20.0 GiB". */
static void human_size(int64_t n, char *buf, size_t sz)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	if (n < 1024) {
		snprintf(buf, sz, "%lld bytes", (long long)n);
		return;
	}
	double v = (double)n;
	int u = -1;
	while (v >= 1024.0 && u < 5) {
		v /= 1024.0;
		u++;
	}
	snprintf(buf, sz, "%.1f %s", v, units[u]);
}

/* "3.0 MiB (3145728 bytes)", or just "512 bytes" below 1 KiB. */
static void size_line(const char *label, int64_t n)
{
	char h[32];
	human_size(n, h, sizeof(h));
	if (n < 1024)
		printf("%-9s %s\n", label, h);
	else
		printf("%-9s %s (%lld bytes)\n", label, h, (long long)n);
}

/* Print a cJSON tree on stdout; 0 or 1 (exit status). */
static int print_json(cJSON *j)
{
	char *s = j ? cJSON_Print(j) : NULL;
	cJSON_Delete(j);
	if (!s) {
		log_user("out of memory");
		return 1;
	}
	printf("%s\n", s);
	free(s);
	return 0;
}

bool cli_connection_advice(int err, char *buf, size_t len)
{
	switch (err) {
	case -ECONNREFUSED:
	case -EHOSTUNREACH:
	case -ETIMEDOUT:
	case -ENETUNREACH:
		snprintf(buf, len, "cannot reach the service (%s): check the network connection, "
			 "the endpoint options and HTTPS_PROXY", strerror(-err));
		return true;
	case -EPROTO:
		snprintf(buf, len, "the TLS connection failed (certificate not trusted or "
			 "handshake error): to trust a private CA, pass -o cafile=FILE");
		return true;
	default:
		return false;
	}
}

/* One line for a failed service call (@what failed). */
static void report_failure(struct auth *a, const char *what, int err)
{
	char advice[256];

	if (err == -EKEYREJECTED && a && auth_is_dead(a))
		return; /* auth/ already said "the login was revoked ... log in again" */
	if (cli_connection_advice(err, advice, sizeof(advice))) {
		log_user("%s: %s", what, advice);
		return;
	}
	switch (err) {
	case -EKEYREJECTED:
	case -EACCES:
		log_user("%s: the service refused the credentials (%s): run "
			"'jottafs login' again", what, strerror(-err));
		break;
	case -ENOENT:
		log_user("%s: the service has no such user or device (%s): check "
			"the api_url/jfs_url options or run 'jottafs login' again", what,
			strerror(-err));
		break;
	default:
		log_user("%s: %s (run with -d for details)", what, strerror(-err));
	}
}

/* ---------------------------------------------------------------------- */
/* Commands                                                               */

/* Shared set-up of about/devices: http client, account, jfs. */
struct session {
	struct http_client *http;
	struct auth *auth;
	struct jfs *jfs;
};

static void session_close(struct session *s)
{
	jfs_free(s->jfs);
	if (s->http)
		http_client_set_token_provider(s->http, NULL);
	auth_free(s->auth);
	http_client_free(s->http);
	memset(s, 0, sizeof(*s));
}

/* Make the HTTP client of a command: few retries (a person is waiting). */
static int make_http(const struct cli_opts *c, struct http_client **out)
{
	struct http_config cfg = {
		.cafile = c->cafile, .max_retries = 2, .connect_timeout_s = 15,
		.backoff_max_ms = 2000, .insecure_http = c->insecure_http,
	};
	int err = http_client_new(&cfg, out);
	if (err < 0) {
		if (c->cafile && (err == -EINVAL || err == -ENOENT || err == -EACCES ||
				  err == -EFBIG))
			log_user("cannot use cafile '%s': %s", c->cafile,
				err == -EINVAL ? "it holds no PEM certificate" : strerror(-err));
		else
			log_user("cannot set up HTTP: %s", strerror(-err));
	}
	return err;
}

static int session_open(const struct cli_opts *c, const char *config_dir, struct session *s)
{
	char *msg = NULL;
	memset(s, 0, sizeof(*s));
	if (make_http(c, &s->http) < 0)
		return -1;
	struct auth_endpoints ep = { .api_url = c->api_url, .jfs_url = c->jfs_url,
				     .token_url = c->token_url, .cafile = c->cafile };
	if (auth_open(s->http, config_dir, c->account, &ep, &s->auth, &msg) < 0) {
		log_user("%s", msg ? msg : "cannot open the account");
		free(msg);
		session_close(s);
		return -1;
	}
	struct http_token_provider tp;
	auth_token_provider(s->auth, &tp);
	http_client_set_token_provider(s->http, &tp);
	struct jfs_config jc = {
		.jfs_url = auth_jfs_url(s->auth), .api_url = auth_api_url(s->auth),
		.username = auth_username(s->auth), .device = "Jotta", .mountpoint = "Archive",
	};
	int err = jfs_new(s->http, &jc, &s->jfs);
	if (err < 0) {
		log_user("cannot set up the service client: %s", strerror(-err));
		session_close(s);
		return -1;
	}
	return 0;
}

#ifndef JOTTAFS_DATADIR
#define JOTTAFS_DATADIR "/usr/local/share/jottafs"
#endif

/* The service table: the installed file (or -o services=FILE), amended by
 * the user's CONFIG_DIR/services.json. NULL after a message on stderr. */
static struct services *load_services(const struct cli_opts *c, const char *config_dir)
{
	struct services *s = NULL;
	char *msg = NULL, *user = NULL;
	const char *sys = c->services ? c->services : JOTTAFS_DATADIR "/services.json";
	if (services_new(&s) < 0 || asprintf(&user, "%s/services.json", config_dir) < 0) {
		log_user("out of memory");
		services_free(s);
		return NULL;
	}
	int err = services_load_file(s, sys, 0, 0, &msg);
	if (err == 0)
		err = services_load_file(s, user, 1, 1, &msg);
	free(user);
	if (err < 0) {
		log_user("%s%s", msg ? msg : strerror(-err),
			err == -ENOENT && !c->services ? ": reinstall jottafs or pass -o services=FILE"
						       : "");
		free(msg);
		services_free(s);
		return NULL;
	}
	return s;
}

static void list_services(const struct services *s, FILE *f)
{
	for (size_t i = 0; i < services_count(s); i++) {
		const struct service *v = services_at(s, i);
		fprintf(f, "  %-16s %s (%s)\n", v->key, v->name, v->domain);
	}
}

static int cmd_login_service(const struct cli_opts *c, const char *config_dir)
{
	struct services *s = load_services(c, config_dir);
	if (!s)
		return 1;
	if (!strcmp(c->service, "list")) {
		printf("Services for 'jottafs login --service NAME':\n");
		list_services(s, stdout);
		services_free(s);
		return 0;
	}
	const struct service *svc = services_find(s, c->service);
	if (!svc) {
		log_user("unknown service '%s'; the services are:", c->service);
		list_services(s, stderr);
		services_free(s);
		return 1;
	}
	struct http_client *http = NULL;
	if (make_http(c, &http) < 0) {
		services_free(s);
		return 1;
	}
	struct auth_endpoints ep = { .api_url = c->api_url, .jfs_url = c->jfs_url,
				     .token_url = c->token_url, .cafile = c->cafile };
	struct codeflow_options o = {
		.port = (uint16_t)c->login_port, .timeout_s = (int)c->login_timeout,
		.paste_fd = STDIN_FILENO, .out = stdout, .open_browser = true,
	};
	char *msg = NULL;
	int err = codeflow_login(http, config_dir, c->account, svc, &o, &ep, &msg);
	http_client_free(http);
	if (err < 0) {
		log_user("%s", msg ? msg : strerror(-err));
		free(msg);
		services_free(s);
		return 1;
	}
	printf("Logged in to %s (account '%s'). Mount with: jottafs%s%s MOUNTPOINT\n", svc->name,
	       c->account, strcmp(c->account, "default") ? " -o account=" : "",
	       strcmp(c->account, "default") ? c->account : "");
	services_free(s);
	return 0;
}

static int cmd_login(const struct cli_opts *c, const char *config_dir)
{
	if (c->service)
		return cmd_login_service(c, config_dir);

	char *token = NULL, *msg = NULL;
	struct http_client *http = NULL;
	int err = read_login_token(&token);
	if (err < 0) {
		if (err == -ENODATA)
			log_user("no login token given: paste the personal login token "
				"from Settings > Security in the web interface (or pipe it on standard "
				"input)");
		else if (err == -EFBIG)
			log_user("the login token is malformed: it is longer than %d "
				"bytes: copy the personal login token again", LOGIN_TOKEN_MAX);
		else
			log_user("cannot read the login token: %s", strerror(-err));
		return 1;
	}
	if (make_http(c, &http) < 0) {
		explicit_bzero(token, strlen(token));
		free(token);
		return 1;
	}
	struct auth_endpoints ep = { .api_url = c->api_url, .jfs_url = c->jfs_url,
				     .token_url = c->token_url, .cafile = c->cafile };
	err = auth_login(http, config_dir, c->account, token, &ep, &msg);
	explicit_bzero(token, strlen(token));
	free(token);
	http_client_free(http);
	if (err < 0) {
		log_user("%s", msg ? msg : strerror(-err));
		free(msg);
		return 1;
	}
	printf("Logged in (account '%s'). Mount with: jottafs%s%s MOUNTPOINT\n", c->account,
	       strcmp(c->account, "default") ? " -o account=" : "",
	       strcmp(c->account, "default") ? c->account : "");
	return 0;
}

static int cmd_logout(const struct cli_opts *c, const char *config_dir)
{
	int err = auth_logout(config_dir, c->account);
	if (err == -ENOENT) {
		log_user("not logged in (no account '%s')", c->account);
		return 1;
	}
	if (err < 0) {
		log_user("cannot remove the account '%s': %s", c->account,
			strerror(-err));
		return 1;
	}
	printf("Logged out (account '%s').\n", c->account);
	return 0;
}

static int cmd_about(const struct cli_opts *c, const char *config_dir)
{
	struct session s;
	struct jfs_quota q;
	if (session_open(c, config_dir, &s) < 0)
		return 1;
	int err = jfs_quota(s.jfs, &q);
	if (err < 0) {
		report_failure(s.auth, "cannot read the quota", err);
		session_close(&s);
		return 1;
	}
	int rc = 0;
	bool unlimited = q.capacity < 0;
	int64_t free_bytes = unlimited ? -1 : q.capacity > q.usage ? q.capacity - q.usage : 0;
	if (c->json) {
		cJSON *j = cJSON_CreateObject();
		if (j) {
			cJSON_AddStringToObject(j, "account", c->account);
			cJSON_AddStringToObject(j, "login", auth_login_user(s.auth));
			cJSON_AddStringToObject(j, "username", auth_username(s.auth));
			cJSON_AddStringToObject(j, "account_type", q.account_type);
			cJSON_AddNumberToObject(j, "usage", (double)q.usage);
			cJSON_AddNumberToObject(j, "capacity", (double)q.capacity);
			cJSON_AddBoolToObject(j, "unlimited", unlimited);
			if (unlimited)
				cJSON_AddNullToObject(j, "free");
			else
				cJSON_AddNumberToObject(j, "free", (double)free_bytes);
		}
		rc = print_json(j);
	} else {
		printf("Account:  %s%s%s (account '%s')\n", auth_login_user(s.auth),
		       *auth_login_user(s.auth) ? ", user " : "user ", auth_username(s.auth),
		       c->account);
		if (q.account_type[0])
			printf("Type:     %s\n", q.account_type);
		size_line("Used:", q.usage);
		if (unlimited) {
			printf("Total:    unlimited\n");
		} else {
			size_line("Total:", q.capacity);
			size_line("Free:", free_bytes);
		}
	}
	session_close(&s);
	return rc;
}

struct devices_ctx {
	bool json;
	cJSON *list;
};

/* jfs_devices callback: print (or collect) one device. */
static int device_cb(void *ctx, const struct jfs_device_info *d)
{
	struct devices_ctx *dc = ctx;
	if (dc->json) {
		cJSON *o = cJSON_CreateObject();
		cJSON *mps = cJSON_CreateArray();
		if (!o || !mps) {
			cJSON_Delete(o);
			cJSON_Delete(mps);
			return -ENOMEM;
		}
		cJSON_AddStringToObject(o, "name", d->name);
		cJSON_AddStringToObject(o, "type", d->type ? d->type : "");
		cJSON_AddNumberToObject(o, "size", (double)d->size);
		for (const char *const *m = d->mountpoints; m && *m; m++)
			cJSON_AddItemToArray(mps, cJSON_CreateString(*m));
		cJSON_AddItemToObject(o, "mountpoints", mps);
		cJSON_AddItemToArray(dc->list, o);
		return 0;
	}
	char size[32];
	human_size(d->size, size, sizeof(size));
	printf("%s (%s, %s)\n", d->name, d->type && *d->type ? d->type : "?", size);
	for (const char *const *m = d->mountpoints; m && *m; m++)
		printf("    %s/%s\n", d->name, *m);
	return 0;
}

static int cmd_devices(const struct cli_opts *c, const char *config_dir)
{
	struct session s;
	if (session_open(c, config_dir, &s) < 0)
		return 1;
	struct devices_ctx dc = { .json = c->json, .list = c->json ? cJSON_CreateArray() : NULL };
	if (c->json && !dc.list) {
		session_close(&s);
		return 1;
	}
	int err = jfs_devices(s.jfs, device_cb, &dc);
	int rc = 0;
	if (err < 0) {
		report_failure(s.auth, "cannot list the devices", err);
		cJSON_Delete(dc.list);
		rc = 1;
	} else if (c->json) {
		rc = print_json(dc.list);
	}
	session_close(&s);
	return rc;
}

int cli_main(int argc, char **argv)
{
	struct cli_opts c = { 0 };
	struct fuse_args args = FUSE_ARGS_INIT(argc - 1, argv + 1);
	for (size_t i = 0; i < sizeof(cmd_names) / sizeof(cmd_names[0]); i++)
		if (!strcmp(argv[1], cmd_names[i]))
			c.cmd = (enum cli_cmd)i;
	/* argv[1], the command, is args' argv[0]: fuse_opt never hands it to
	 * cli_opt_proc, so every NONOPT there is an extra argument. */
	int rc = 2;
	char *config_dir = NULL;

	if (fuse_opt_parse(&args, &c, cli_opt_table, cli_opt_proc) < 0 || c.failed) {
		if (!c.failed)
			log_user("invalid arguments (see 'jottafs %s -h')",
				cmd_names[c.cmd]);
		goto out;
	}
	if (c.help) {
		cli_usage(c.cmd);
		rc = 0;
		goto out;
	}
	bool endpoints = c.api_url || c.jfs_url || c.token_url || c.cafile || c.insecure_http;
	bool flow_opts = c.services || c.login_timeout || c.login_port;
	if ((flow_opts || c.service) && c.cmd != CMD_LOGIN) {
		log_user("option '%s' is only for 'login'",
			c.service ? "--service" : "services/login_timeout/login_port");
		goto out;
	}
	if (flow_opts && !c.service) {
		log_user("options services, login_timeout and login_port go with "
			"--service NAME (see 'jottafs login -h')");
		goto out;
	}
	if (c.login_port > 65535 || c.login_timeout > 86400) {
		log_user("%s is out of range (%s)",
			c.login_port > 65535 ? "login_port" : "login_timeout",
			c.login_port > 65535 ? "1 to 65535" : "1 to 86400 seconds");
		goto out;
	}
	if ((c.json && (c.cmd == CMD_LOGIN || c.cmd == CMD_LOGOUT)) ||
	    (endpoints && c.cmd == CMD_LOGOUT)) {
		log_user("option '%s' is not used by '%s'",
			c.json ? "--json" : "-o ...url/cafile/insecure_http", cmd_names[c.cmd]);
		goto out;
	}
	if (!c.account && !(c.account = strdup("default"))) {
		rc = 1;
		goto out;
	}
	if (auth_account_name_valid(c.account) < 0) {
		log_user("invalid account name '%s': use letters, digits, '-', '_' "
			"and '.' (not first), at most 64", c.account);
		goto out;
	}
	log_setup(c.debug ? LOG_LVL_DEBUG : LOG_LVL_WARN, false);
	if (auth_config_dir(&config_dir) < 0) {
		log_user("cannot find the configuration directory: set HOME or "
			"XDG_CONFIG_HOME");
		rc = 1;
		goto out;
	}
	static int (*const run[])(const struct cli_opts *, const char *) = {
		[CMD_LOGIN] = cmd_login,
		[CMD_LOGOUT] = cmd_logout,
		[CMD_ABOUT] = cmd_about,
		[CMD_DEVICES] = cmd_devices,
	};
	rc = run[c.cmd](&c, config_dir);
out:
	free(config_dir);
	cli_opts_release(&c);
	fuse_opt_free_args(&args);
	return rc;
}
