/*
 * tests/unit/testsrv.h — a tiny HTTP/1.1 server for unit tests, on a thread
 * of the test program. One request per connection (Connection: close), served
 * one at a time; a handler callback builds each answer from the request.
 * Header-only (static functions) so every test program can include it.
 *
 * Not a general server: request bodies need Content-Length, header blocks
 * are at most 8 KiB. Good enough for curl talking to it.
 */
#ifndef JOTTAFS_TESTS_TESTSRV_H
#define JOTTAFS_TESTS_TESTSRV_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct testsrv_req {
	char method[16];
	char path[2048];          /* request target, as sent */
	char head[8192];          /* request line and headers, NUL-terminated */
	char *body;               /* NUL-terminated copy (malloc'd by the server) */
	size_t body_len;
};

struct testsrv_resp {
	int status;
	char headers[1024];       /* extra header lines, each ending in \r\n */
	const char *body;         /* NULL: empty */
	size_t body_len;          /* 0: strlen(body) */
	size_t send_only;         /* > 0: declare body_len, send only this many, close */
	char buf[4096];           /* storage the handler may point body at */
};

typedef void (*testsrv_handler)(void *ctx, const struct testsrv_req *rq,
				struct testsrv_resp *rs);

struct testsrv {
	int lfd;
	int port;
	pthread_t thr;
	testsrv_handler handler;
	void *ctx;
	int served;               /* requests answered (read after stop, or racy) */
	char url[64];             /* "http://127.0.0.1:PORT" */
};

static ssize_t testsrv_read(int fd, void *buf, size_t n)
{
	ssize_t r;
	do
		r = read(fd, buf, n);
	while (r < 0 && errno == EINTR);
	return r;
}

/* send(MSG_NOSIGNAL): a client that hangs up early must not kill the test with SIGPIPE. */
static void testsrv_write(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* Read one request from @fd, answer it through the handler. */
static void testsrv_serve_one(struct testsrv *s, int fd)
{
	struct testsrv_req *rq = calloc(1, sizeof(*rq));
	struct testsrv_resp *rs = calloc(1, sizeof(*rs));
	size_t len = 0;
	char *end = NULL;
	if (!rq || !rs)
		goto out;
	while (!end && len < sizeof(rq->head) - 1) {
		ssize_t n = testsrv_read(fd, rq->head + len, sizeof(rq->head) - 1 - len);
		if (n <= 0)
			goto out;
		len += (size_t)n;
		end = strstr(rq->head, "\r\n\r\n");
	}
	if (!end)
		goto out;
	size_t hlen = (size_t)(end - rq->head) + 4;
	size_t clen = 0;
	const char *cl = strcasestr(rq->head, "\r\nContent-Length:");
	if (cl && cl < end)
		clen = strtoul(cl + 17, NULL, 10);
	rq->body = calloc(1, clen + 1);
	size_t have = len - hlen;
	if (have > clen)
		have = clen;
	memcpy(rq->body, rq->head + hlen, have);
	while (have < clen) {
		ssize_t n = testsrv_read(fd, rq->body + have, clen - have);
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	rq->body_len = have;
	rq->head[hlen] = '\0';
	sscanf(rq->head, "%15s %2047s", rq->method, rq->path);

	rs->status = 500;
	s->handler(s->ctx, rq, rs);
	s->served++;
	size_t blen = rs->body_len ? rs->body_len : (rs->body ? strlen(rs->body) : 0);
	char head[2048];
	int hn = snprintf(head, sizeof(head),
			  "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
			  rs->status, blen, rs->headers);
	testsrv_write(fd, head, (size_t)hn);
	if (blen && strcmp(rq->method, "HEAD"))
		testsrv_write(fd, rs->body, rs->send_only ? rs->send_only : blen);
out:
	if (rq)
		free(rq->body);
	free(rq);
	free(rs);
}

static void *testsrv_main(void *arg)
{
	struct testsrv *s = arg;
	for (;;) {
		int fd = accept(s->lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL;
		}
		testsrv_serve_one(s, fd);
		shutdown(fd, SHUT_RDWR);
		close(fd);
	}
}

/* Start a server on 127.0.0.1 (ephemeral port). NULL on failure. */
static struct testsrv *testsrv_start(testsrv_handler h, void *ctx)
{
	struct testsrv *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->handler = h;
	s->ctx = ctx;
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(s->lfd, 64) < 0 || getsockname(s->lfd, (struct sockaddr *)&a, &al) < 0) {
		if (s->lfd >= 0)
			close(s->lfd);
		free(s);
		return NULL;
	}
	s->port = ntohs(a.sin_port);
	snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", s->port);
	if (pthread_create(&s->thr, NULL, testsrv_main, s) != 0) {
		close(s->lfd);
		free(s);
		return NULL;
	}
	return s;
}

/* Stop accepting and join the thread. */
static void testsrv_stop(struct testsrv *s)
{
	if (!s)
		return;
	shutdown(s->lfd, SHUT_RDWR);
	close(s->lfd);
	pthread_join(s->thr, NULL);
	free(s);
}

/* A port on 127.0.0.1 where nothing listens (it was free a moment ago). */
static int testsrv_dead_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	if (fd < 0)
		return 1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
		close(fd);
		return 1;
	}
	close(fd);
	return ntohs(a.sin_port);
}

#endif
