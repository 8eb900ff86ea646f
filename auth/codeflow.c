/*
 * auth/codeflow.c — see codeflow.h.
 *
 * The wait is one poll() loop over the listening socket and the paste
 * descriptor. A browser connection is served to the end before the loop
 * goes on (bounded: CODEFLOW_CONN_S seconds and CODEFLOW_INPUT_MAX bytes),
 * so a silent or slow client cannot hold the listener for long. The code
 * is a secret while it lives: never logged, wiped when freed.
 */
#include "auth/codeflow.h"

#include "auth/auth.h"
#include "auth/auth_int.h"
#include "auth/services.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/xstr.h"
#include "net/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CODEFLOW_CONN_S   5       /* a browser connection gets this long */
#define CODEFLOW_CODE_MAX 4096    /* longest code we accept */

extern char **environ;

struct codeflow_listener {
	int fd;
	uint16_t port;
};

int codeflow_state_new(char out[CODEFLOW_STATE_SIZE])
{
	unsigned char raw[32], b64[48];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -EIO;
	EVP_EncodeBlock(b64, raw, sizeof(raw)); /* 44 characters, one '=' */
	size_t j = 0;
	for (size_t i = 0; i < 43; i++) {
		unsigned char c = b64[i];
		out[j++] = c == '+' ? '-' : c == '/' ? '_' : (char)c;
	}
	out[j] = '\0';
	explicit_bzero(raw, sizeof(raw));
	return 0;
}

int codeflow_auth_url(const char *authz_endpoint, const char *client_id,
		      const char *redirect_uri, const char *scopes, const char *state,
		      char **out)
{
	*out = NULL;
	char *c = http_escape(client_id, strlen(client_id));
	char *r = http_escape(redirect_uri, strlen(redirect_uri));
	char *st = http_escape(state, strlen(state));
	/* form encoding of the scope list: spaces as '+' (url.Values.Encode) */
	char *sc = http_escape(scopes, strlen(scopes));
	if (c && r && st && sc) {
		char *w = sc, *p = sc;
		while (*p) {
			if (!strncmp(p, "%20", 3)) {
				*w++ = '+';
				p += 3;
			} else {
				*w++ = *p++;
			}
		}
		*w = '\0';
		*out = xasprintf("%s%saccess_type=offline&client_id=%s&redirect_uri=%s"
				 "&response_type=code&scope=%s&state=%s", authz_endpoint,
				 strchr(authz_endpoint, '?') ? "&" : "?", c, r, sc, st);
	}
	free(c);
	free(r);
	free(st);
	free(sc);
	return *out ? 0 : -ENOMEM;
}

/* ---------------------------------------------------------------------- */
/* Parsing the answer                                                     */

/* The decoded value of @key in the query @q (@len bytes), or NULL (*nomem on ENOMEM). */
static char *query_get(const char *q, size_t len, const char *key, bool *nomem)
{
	size_t klen = strlen(key);
	const char *end = q + len;
	for (const char *p = q; p < end;) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *e = amp ? amp : end;
		if ((size_t)(e - p) > klen && !memcmp(p, key, klen) && p[klen] == '=') {
			size_t n = 0;
			char *v = http_form_unescape(p + klen + 1, (size_t)(e - p - klen - 1), &n);
			if (!v) {
				*nomem = true;
				return NULL;
			}
			if (strlen(v) != n) { /* a NUL inside: not a value we use */
				free_secret(v);
				return NULL;
			}
			return v;
		}
		p = e + 1;
	}
	return NULL;
}

static bool code_chars_ok(const char *c)
{
	size_t n = strlen(c);
	if (n == 0 || n > CODEFLOW_CODE_MAX)
		return false;
	for (const char *p = c; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("-._~", *p)))
			return false;
	return true;
}

/* Compare two strings in time independent of where they differ. */
static bool same_secret(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = la != lb;
	for (size_t i = 0; i < la && i < lb; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

/* Judge the query @q (@len bytes) of an answer. */
static int judge_query(const char *q, size_t len, const char *state, char **code, char **why)
{
	bool nomem = false;
	char *st = query_get(q, len, "state", &nomem);
	char *err = query_get(q, len, "error", &nomem);
	char *desc = query_get(q, len, "error_description", &nomem);
	char *c = query_get(q, len, "code", &nomem);
	int rc;
	if (nomem) {
		rc = -ENOMEM;
	} else if (!st || !same_secret(st, state)) {
		rc = -EPERM;
		*why = xasprintf(st ? "its state is not the one of this login"
				    : "it carries no state");
	} else if (err) {
		char e[64] = "", d[160] = "";
		snprintf(e, sizeof(e), "%s", err);
		if (desc)
			snprintf(d, sizeof(d), "%s", desc);
		for (char *p = e; *p; p++) /* printable only: this text is shown */
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		for (char *p = d; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		rc = !strcmp(err, "access_denied") ? -EACCES : -EKEYREJECTED;
		*why = xasprintf("%s%s%s", e, d[0] ? ": " : "", d);
	} else if (!c || !code_chars_ok(c)) {
		rc = -EINVAL;
		*why = xasprintf(c ? "its code is malformed" : "it carries no code");
	} else {
		*code = c;
		c = NULL;
		rc = 0;
	}
	free(st);
	free(err);
	free(desc);
	free_secret(c);
	return rc;
}

int codeflow_parse_paste(const char *text, size_t len, const char *state, char **code,
			 char **why)
{
	*code = NULL;
	*why = NULL;
	while (len && (*text == ' ' || *text == '\t' || *text == '\r' || *text == '\n')) {
		text++;
		len--;
	}
	while (len && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\r' ||
		       text[len - 1] == '\n'))
		len--;
	if (len == 0)
		return -ENODATA;
	if (len > CODEFLOW_INPUT_MAX || memchr(text, '\0', len)) {
		*why = xasprintf("it is not a web address or a code");
		return -EINVAL;
	}
	const char *q = memchr(text, '?', len);
	if (q || memchr(text, '=', len)) {
		const char *start = q ? q + 1 : text;
		const char *hash = memchr(start, '#', len - (size_t)(start - text));
		size_t qlen = (size_t)((hash ? hash : text + len) - start);
		return judge_query(start, qlen, state, code, why);
	}
	if (memmem(text, len, "://", 3)) {
		*why = xasprintf("the address has no ?code=... part: paste the whole address "
				 "the browser was sent to");
		return -EINVAL;
	}
	char *c = strndup(text, len);
	if (!c)
		return -ENOMEM;
	if (!code_chars_ok(c)) {
		free_secret(c);
		*why = xasprintf("it is not a web address or a code");
		return -EINVAL;
	}
	*code = c;
	return 0;
}

int codeflow_parse_request(const char *head, size_t len, const char *state, char **code,
			   char **why)
{
	*code = NULL;
	*why = NULL;
	const char *eol = memchr(head, '\r', len);
	if (!eol)
		eol = memchr(head, '\n', len);
	size_t n = eol ? (size_t)(eol - head) : len;
	if (n < 6 || memcmp(head, "GET /", 5))
		return -ENOENT;
	const char *target = head + 4;
	const char *sp = memchr(target, ' ', n - 4);
	if (!sp || (size_t)(head + n - sp) < 9 || memcmp(sp + 1, "HTTP/1.", 7))
		return -ENOENT;
	size_t tlen = (size_t)(sp - target);
	/* the path is exactly "/" (the redirect URI's), then the query */
	if (tlen < 2 || target[1] != '?')
		return -ENOENT;
	const char *hash = memchr(target, '#', tlen);
	size_t qlen = (size_t)((hash ? hash : sp) - (target + 2));
	return judge_query(target + 2, qlen, state, code, why);
}

/* ---------------------------------------------------------------------- */
/* The listener                                                           */

static int bind_loopback(uint16_t port, int *fd_out, uint16_t *bound)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	*fd_out = fd;
	*bound = ntohs(sa.sin_port);
	return 0;
}

int codeflow_listen(uint16_t port, struct codeflow_listener **out)
{
	struct codeflow_listener *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	int err = bind_loopback(port, &l->fd, &l->port);
	if (err == -EADDRINUSE || err == -EACCES) {
		log_debug("codeflow: port %u is taken (%s); using a free one", port,
			  strerror(-err));
		err = bind_loopback(0, &l->fd, &l->port);
	}
	if (err < 0) {
		free(l);
		return err;
	}
	*out = l;
	return 0;
}

uint16_t codeflow_listener_port(const struct codeflow_listener *l) { return l->port; }

void codeflow_listener_free(struct codeflow_listener *l)
{
	if (!l)
		return;
	if (l->fd >= 0)
		close(l->fd);
	free(l);
}

static void send_page(int fd, int status, const char *title, const char *text)
{
	char body[512], head[256];
	int bl = snprintf(body, sizeof(body),
			  "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>jottafs: %s"
			  "</title></head>\n<body><h1>%s</h1><p>%s</p></body></html>\n",
			  title, title, text);
	int hl = snprintf(head, sizeof(head),
			  "HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\n"
			  "Content-Length: %d\r\nCache-Control: no-store\r\n"
			  "Referrer-Policy: no-referrer\r\nConnection: close\r\n\r\n",
			  status, status == 200 ? "OK" : status == 404 ? "Not Found" : "Bad Request",
			  bl);
	if (send(fd, head, (size_t)hl, MSG_NOSIGNAL) == hl)
		(void)!send(fd, body, (size_t)bl, MSG_NOSIGNAL);
}

/* Milliseconds until @deadline (lib/clock.h milliseconds), 0 when past. */
static long ms_left(int64_t deadline)
{
	int64_t ms = deadline - clock_mono_ms();
	return ms > 0 ? (long)ms : 0;
}

/*
 * Serve one connection. Returns 1 when it carried no answer for us (keep
 * waiting), else codeflow_parse_request()'s result (0: *code set).
 */
static int serve_one(int lfd, const char *state, char **code, char **why)
{
	struct sockaddr_in peer;
	socklen_t pl = sizeof(peer);
	int fd = accept4(lfd, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
	if (fd < 0)
		return 1;
	if (peer.sin_family != AF_INET || (ntohl(peer.sin_addr.s_addr) >> 24) != 127) {
		close(fd); /* cannot happen on a loopback socket; refuse anyway */
		return 1;
	}
	char buf[CODEFLOW_INPUT_MAX + 1];
	size_t len = 0;
	int64_t deadline = clock_mono_ms() + CODEFLOW_CONN_S * 1000LL;
	while (len < CODEFLOW_INPUT_MAX) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long ms = ms_left(deadline);
		if (ms == 0 || poll(&p, 1, (int)ms) <= 0)
			break;
		ssize_t r = recv(fd, buf + len, CODEFLOW_INPUT_MAX - len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
		if (memmem(buf, len, "\r\n\r\n", 4) || memmem(buf, len, "\n\n", 2))
			break;
	}
	int rc = codeflow_parse_request(buf, len, state, code, why);
	switch (rc) {
	case 0:
		send_page(fd, 200, "Logged in",
			  "jottafs has what it needs to finish the login. You can close this tab.");
		break;
	case -EACCES:
	case -EKEYREJECTED:
		send_page(fd, 200, "Login not completed",
			  "The service did not grant access; see the terminal. You can close "
			  "this tab.");
		break;
	case -ENOENT:
		send_page(fd, 404, "Not found", "Nothing here.");
		rc = 1;
		break;
	default:
		send_page(fd, 400, "Not this login",
			  "This is not the answer jottafs is waiting for; it was ignored.");
		if (rc != -ENOMEM) {
			log_debug("codeflow: ignored a request on the listener (%s)",
				  *why ? *why : "malformed");
			rc = 1;
		}
		free(*why);
		*why = NULL;
	}
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return rc;
}

int codeflow_wait(struct codeflow_listener *l, int paste_fd, const char *state, int timeout_s,
		  char **code, char **errmsg)
{
	char *line = malloc(CODEFLOW_INPUT_MAX + 1);
	size_t len = 0;
	bool overflow = false;
	char *why = NULL;
	int rc = 1;
	*code = NULL;
	*errmsg = NULL;
	if (!line)
		return -ENOMEM;
	int64_t deadline = clock_mono_ms() + (int64_t)timeout_s * 1000;
	const char *from = "the browser";
	while (rc == 1) {
		struct pollfd p[2] = { { .fd = l->fd, .events = POLLIN },
				       { .fd = paste_fd, .events = POLLIN } };
		long ms = ms_left(deadline);
		if (ms == 0) {
			rc = -ETIMEDOUT;
			break;
		}
		int n = poll(p, paste_fd >= 0 ? 2 : 1, (int)(ms > 1000 ? 1000 : ms));
		if (n < 0 && errno != EINTR) {
			rc = -errno;
			break;
		}
		if (n <= 0)
			continue;
		if (p[0].revents & POLLIN) {
			from = "the browser";
			rc = serve_one(l->fd, state, code, &why);
			if (rc != 1)
				break;
		}
		if (paste_fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t r = read(paste_fd, line + len, CODEFLOW_INPUT_MAX - len);
			if (r < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			bool eof = r <= 0;
			if (!eof)
				len += (size_t)r;
			from = "the pasted answer";
			/* judge each complete line; at end of file, what is left */
			for (;;) {
				char *nl = memchr(line, '\n', len);
				if (!nl && !eof && len == CODEFLOW_INPUT_MAX) {
					overflow = true; /* a line this long is not ours */
					len = 0;
					break;
				}
				if (!nl && !eof)
					break;
				size_t ll = nl ? (size_t)(nl - line) : len;
				if (overflow) {
					overflow = false;
					rc = 1;
				} else {
					rc = codeflow_parse_paste(line, ll, state, code, &why);
				}
				size_t used = nl ? ll + 1 : len;
				memmove(line, line + used, len - used);
				len -= used;
				if (rc == -ENODATA)
					rc = 1;
				if (rc != 1 || !nl)
					break;
			}
			if (eof && rc == 1)
				paste_fd = -1; /* nothing (more) on stdin: the browser may still come */
		}
	}
	explicit_bzero(line, CODEFLOW_INPUT_MAX + 1);
	free(line);
	switch (rc) {
	case 0:
		break;
	case -ETIMEDOUT:
		*errmsg = xasprintf("no answer from the browser within %d s: run the login again "
				    "and finish it in time, or paste the address the browser was "
				    "sent to (http://localhost:%u/?code=...)", timeout_s, l->port);
		break;
	case -EACCES:
		*errmsg = xasprintf("the login was not allowed (%s): you (or the service) denied "
				    "access to jottafs; run the login again and accept", why ? why
				    : "access_denied");
		break;
	case -EKEYREJECTED:
		*errmsg = xasprintf("the service refused the login request (%s): check the "
				    "service's entry in the service table", why ? why : "error");
		break;
	case -EPERM:
		*errmsg = xasprintf("refusing %s: %s (it may come from another login attempt or "
				    "from someone else): run the login again and use the newest "
				    "address", from, why ? why : "state mismatch");
		break;
	case -EINVAL:
		*errmsg = xasprintf("%s is not usable: %s: paste the whole address the browser "
				    "was sent to (http://localhost:%u/?code=...), or the code",
				    from, why ? why : "malformed", l->port);
		break;
	default:
		*errmsg = xasprintf("waiting for the login failed: %s", strerror(-rc));
	}
	free(why);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* The whole flow                                                         */

static void open_browser(const char *url)
{
	const char *d = getenv("DISPLAY"), *w = getenv("WAYLAND_DISPLAY");
	if ((!d || !*d) && (!w || !*w))
		return;
	posix_spawn_file_actions_t fa;
	if (posix_spawn_file_actions_init(&fa) != 0)
		return;
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
	char *argv[] = { (char *)"xdg-open", (char *)url, NULL };
	pid_t pid;
	if (posix_spawnp(&pid, "xdg-open", &fa, NULL, argv, environ) != 0)
		log_debug("codeflow: cannot run xdg-open; open the address yourself");
	posix_spawn_file_actions_destroy(&fa);
}

int codeflow_login(struct http_client *http, const char *config_dir, const char *account,
		   const struct service *svc, const struct codeflow_options *o,
		   const struct auth_endpoints *ep, char **errmsg)
{
	char *link = NULL, *authz = NULL, *token_url = NULL, *url = NULL, *redirect = NULL;
	char *code = NULL;
	char state[CODEFLOW_STATE_SIZE];
	struct codeflow_listener *l = NULL;
	int timeout = o->timeout_s > 0 ? o->timeout_s : CODEFLOW_TIMEOUT_S;
	FILE *out = o->out ? o->out : stdout;
	int err;

	*errmsg = NULL;
	link = xasprintf("%s/auth/realms/%s/.well-known/openid-configuration", svc->url,
			 svc->realm);
	if (!link)
		return -ENOMEM;
	err = auth_discover(http, link, &authz, &token_url, errmsg);
	if (err < 0)
		goto out;
	if (ep && ep->token_url) {
		free(token_url);
		if (!(token_url = strdup(ep->token_url))) {
			err = -ENOMEM;
			goto out;
		}
	}
	err = codeflow_listen(o->port ? o->port : CODEFLOW_PORT, &l);
	if (err < 0) {
		*errmsg = xasprintf("cannot listen on 127.0.0.1 for the browser's answer: %s",
				    strerror(-err));
		goto out;
	}
	/* as rclone: the listener is on 127.0.0.1, the redirect names localhost */
	redirect = xasprintf("http://localhost:%u/", codeflow_listener_port(l));
	if (!redirect || (err = codeflow_state_new(state)) < 0 ||
	    (err = codeflow_auth_url(authz, svc->client_id, redirect, svc->scopes, state,
				     &url)) < 0) {
		err = err < 0 ? err : -ENOMEM;
		goto out;
	}
	fprintf(out, "To log in to %s, open this address in a web browser:\n\n%s\n\n"
		"Waiting up to %d s for the browser to come back to %s\n"
		"No browser on this machine? Open the address on another one, log in, then paste "
		"here the whole address that browser was sent to (%s?code=...; the page itself "
		"may fail to load), or just the code, and press Enter:\n",
		svc->name, url, timeout, redirect, redirect);
	fflush(out);
	if (o->open_browser)
		open_browser(url);
	err = codeflow_wait(l, o->paste_fd, state, timeout, &code, errmsg);
	codeflow_listener_free(l);
	l = NULL;
	if (err < 0) {
		/* say which command starts it again */
		char *m = xasprintf("%s (jottafs login --service %s)", *errmsg ? *errmsg : "",
				    svc->key);
		if (m) {
			free(*errmsg);
			*errmsg = m;
		}
		goto out;
	}
	struct auth_code_grant g = { .service = svc->key, .token_url = token_url,
				     .client_id = svc->client_id, .code = code,
				     .redirect_uri = redirect };
	err = auth_login_code(http, config_dir, account, &g, ep, errmsg);
out:
	codeflow_listener_free(l);
	explicit_bzero(state, sizeof(state));
	free_secret(code);
	free(link);
	free(authz);
	free(token_url);
	free(url);
	free(redirect);
	if (err < 0 && !*errmsg)
		*errmsg = xasprintf("login failed: %s", strerror(-err));
	return err;
}
