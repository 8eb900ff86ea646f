/*
 * Unit tests of auth/codeflow (issue 12): the authorization URL, what a
 * user pastes and what the browser sends to the listener (path, state,
 * error answers), and the wait over a pipe and a loopback socket.
 */
#include <stddef.h>
#include <stdint.h>
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/codeflow.h"

#define ST "abcdefghijklmnopqrstuvwxyz0123456789_-ABCDE"

static int paste(const char *text, char **code, char **why)
{
	return codeflow_parse_paste(text, strlen(text), ST, code, why);
}

static void test_state_new(void **state)
{
	(void)state;
	char a[CODEFLOW_STATE_SIZE], b[CODEFLOW_STATE_SIZE];
	assert_int_equal(codeflow_state_new(a), 0);
	assert_int_equal(codeflow_state_new(b), 0);
	assert_int_equal(strlen(a), 43);
	assert_string_not_equal(a, b);
	assert_int_equal(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				   "0123456789-_"), 43);
}

static void test_auth_url(void **state)
{
	(void)state;
	char *u = NULL;
	assert_int_equal(codeflow_auth_url("https://cloud-auth.telia.se/auth/realms/telia_se/"
					   "protocol/openid-connect/auth", "desktop",
					   "http://localhost:53682/",
					   "openid jotta-default offline_access", "s t", &u), 0);
	/* docs 2.4, with url.Values.Encode's order and escaping */
	assert_string_equal(u, "https://cloud-auth.telia.se/auth/realms/telia_se/protocol/"
			       "openid-connect/auth?access_type=offline&client_id=desktop"
			       "&redirect_uri=http%3A%2F%2Flocalhost%3A53682%2F&response_type=code"
			       "&scope=openid+jotta-default+offline_access&state=s%20t");
	assert_null(strstr(u, "code_challenge"));
	free(u);
	assert_int_equal(codeflow_auth_url("https://h/auth?kc_idp_hint=x", "desktop-win",
					   "http://localhost:1/", "openid offline_access", "s", &u),
			 0);
	assert_non_null(strstr(u, "/auth?kc_idp_hint=x&access_type=offline&client_id=desktop-win"));
	free(u);
}

static void test_paste_forms(void **state)
{
	(void)state;
	char *code = NULL, *why = NULL;
	assert_int_equal(paste("http://localhost:53682/?state=" ST "&session_state=x&code=ab.c-d_e~f",
			       &code, &why), 0);
	assert_string_equal(code, "ab.c-d_e~f");
	free(code);
	assert_int_equal(paste("  ?code=Q1&state=" ST "#frag\r\n", &code, &why), 0);
	assert_string_equal(code, "Q1");
	free(code);
	assert_int_equal(paste("code=Q2&state=" ST, &code, &why), 0);
	assert_string_equal(code, "Q2");
	free(code);
	/* the bare code: nothing to check the state against */
	assert_int_equal(paste("6b1f3c2e-1d4a.77aa-12.x\n", &code, &why), 0);
	assert_string_equal(code, "6b1f3c2e-1d4a.77aa-12.x");
	free(code);
	/* form-decoded values */
	assert_int_equal(paste("/?code=a%2Eb&state=" ST, &code, &why), 0);
	assert_string_equal(code, "a.b");
	free(code);
	assert_int_equal(paste(" \n\t", &code, &why), -ENODATA);
	assert_null(code);
}

static void expect(const char *text, int err, const char *needle)
{
	char *code = NULL, *why = NULL;
	assert_int_equal(paste(text, &code, &why), err);
	assert_null(code);
	if (needle && (!why || !strstr(why, needle)))
		fail_msg("'%s': reason '%s' lacks '%s'", text, why ? why : "(null)", needle);
	free(why);
}

static void test_paste_refused(void **state)
{
	(void)state;
	/* state checked: missing, different, a prefix, longer */
	expect("http://localhost:53682/?code=abc", -EPERM, "no state");
	expect("http://localhost:53682/?code=abc&state=other", -EPERM, "not the one");
	expect("http://localhost:53682/?code=abc&state=abcdef", -EPERM, "not the one");
	expect("http://localhost:53682/?code=abc&state=" ST "x", -EPERM, "not the one");
	expect("http://localhost:53682/?code=abc&state=" ST "%00", -EPERM, NULL);
	/* denied consent, other errors (with the right state) */
	expect("http://localhost:53682/?error=access_denied&state=" ST, -EACCES, "access_denied");
	expect("/?error=invalid_scope&error_description=Invalid+scopes%3A+x&state=" ST,
	       -EKEYREJECTED, "invalid_scope: Invalid scopes: x");
	/* an error with another state is a state problem first */
	expect("/?error=access_denied&state=nope", -EPERM, NULL);
	/* no code, bad code, not a code */
	expect("/?state=" ST, -EINVAL, "no code");
	expect("/?code=a%20b&state=" ST, -EINVAL, "malformed");
	expect("/?code=&state=" ST, -EINVAL, NULL);
	expect("http://localhost:53682/", -EINVAL, "no ?code=");
	expect("hello world", -EINVAL, "not a web address or a code");
	expect("<script>", -EINVAL, NULL);
}

static int req(const char *head, char **code)
{
	char *why = NULL;
	int rc = codeflow_parse_request(head, strlen(head), ST, code, &why);
	free(why);
	return rc;
}

static void test_request(void **state)
{
	(void)state;
	char *code = NULL;
	assert_int_equal(req("GET /?code=C1&state=" ST " HTTP/1.1\r\nHost: localhost\r\n\r\n",
			     &code), 0);
	assert_string_equal(code, "C1");
	free(code);
	code = NULL;
	/* only GET of "/" */
	assert_int_equal(req("GET /x?code=C1&state=" ST " HTTP/1.1\r\n\r\n", &code), -ENOENT);
	assert_int_equal(req("GET //?code=C1&state=" ST " HTTP/1.1\r\n\r\n", &code), -ENOENT);
	assert_int_equal(req("POST /?code=C1&state=" ST " HTTP/1.1\r\n\r\n", &code), -ENOENT);
	assert_int_equal(req("GET / HTTP/1.1\r\n\r\n", &code), -ENOENT);
	assert_int_equal(req("GET /favicon.ico HTTP/1.1\r\n\r\n", &code), -ENOENT);
	assert_int_equal(req("GET /?code=C1&state=" ST "\r\n\r\n", &code), -ENOENT);
	assert_int_equal(req("", &code), -ENOENT);
	/* the state decides */
	assert_int_equal(req("GET /?code=C1&state=x HTTP/1.1\r\n\r\n", &code), -EPERM);
	assert_int_equal(req("GET /?code=C1 HTTP/1.1\r\n\r\n", &code), -EPERM);
	assert_int_equal(req("GET /?error=access_denied&state=" ST " HTTP/1.1\r\n\r\n", &code),
			 -EACCES);
	/* a bare code is no answer from a browser */
	assert_int_equal(req("GET /?C1 HTTP/1.1\r\n\r\n", &code), -EPERM);
	assert_null(code);
}

static void test_wait_paste_pipe(void **state)
{
	(void)state;
	struct codeflow_listener *l;
	assert_int_equal(codeflow_listen(0, &l), 0);
	int p[2];
	assert_int_equal(pipe(p), 0);
	const char *text = "\n\nhttp://localhost:1/?code=P1&state=" ST "\n";
	assert_int_equal(write(p[1], text, strlen(text)), (ssize_t)strlen(text));
	char *code = NULL, *msg = NULL;
	assert_int_equal(codeflow_wait(l, p[0], ST, 5, &code, &msg), 0);
	assert_string_equal(code, "P1");
	free(code);
	/* another state: refused, with a message */
	text = "http://localhost:1/?code=P1&state=zzz\n";
	assert_int_equal(write(p[1], text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(codeflow_wait(l, p[0], ST, 5, &code, &msg), -EPERM);
	assert_non_null(strstr(msg, "refusing the pasted answer"));
	free(msg);
	/* end of file: the listener still counts, then the timeout */
	close(p[1]);
	assert_int_equal(codeflow_wait(l, p[0], ST, 1, &code, &msg), -ETIMEDOUT);
	assert_non_null(strstr(msg, "no answer from the browser within 1 s"));
	free(msg);
	close(p[0]);
	codeflow_listener_free(l);
}

static int connect_and_send(uint16_t port, const char *text)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(send(fd, text, strlen(text), 0), (ssize_t)strlen(text));
	return fd;
}

static void test_wait_listener(void **state)
{
	(void)state;
	struct codeflow_listener *l;
	assert_int_equal(codeflow_listen(0, &l), 0);
	uint16_t port = codeflow_listener_port(l);
	assert_true(port > 0);
	/* a busy port: another one is taken */
	struct codeflow_listener *l2;
	assert_int_equal(codeflow_listen(port, &l2), 0);
	assert_int_not_equal(codeflow_listener_port(l2), port);
	codeflow_listener_free(l2);
	/* wrong path and another state are answered and ignored; then ours */
	int a = connect_and_send(port, "GET /x?code=W&state=" ST " HTTP/1.1\r\n\r\n");
	int b = connect_and_send(port, "GET /?code=W&state=other HTTP/1.1\r\n\r\n");
	int c = connect_and_send(port, "GET /?code=L1&state=" ST " HTTP/1.1\r\n\r\n");
	char *code = NULL, *msg = NULL;
	assert_int_equal(codeflow_wait(l, -1, ST, 10, &code, &msg), 0);
	assert_string_equal(code, "L1");
	free(code);
	char buf[2048];
	ssize_t n = recv(a, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "HTTP/1.1 404"));
	n = recv(b, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	assert_non_null(strstr(buf, "HTTP/1.1 400"));
	n = recv(c, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	assert_non_null(strstr(buf, "HTTP/1.1 200"));
	assert_non_null(strstr(buf, "close this tab"));
	close(a);
	close(b);
	close(c);
	/* denied consent ends the wait */
	a = connect_and_send(port, "GET /?error=access_denied&state=" ST " HTTP/1.1\r\n\r\n");
	assert_int_equal(codeflow_wait(l, -1, ST, 10, &code, &msg), -EACCES);
	assert_non_null(strstr(msg, "denied"));
	free(msg);
	close(a);
	codeflow_listener_free(l);
}

UNIT_TEST_PROGRAM(NULL, NULL,
	cmocka_unit_test(test_state_new),
	cmocka_unit_test(test_auth_url),
	cmocka_unit_test(test_paste_forms),
	cmocka_unit_test(test_paste_refused),
	cmocka_unit_test(test_request),
	cmocka_unit_test(test_wait_paste_pipe),
	cmocka_unit_test(test_wait_listener),
)
