/*
 * Unit tests of net/jfs against a scripted HTTP server (testsrv.h): the
 * exact requests (method, URL escaping, query, headers, body) and how every
 * kind of answer is taken (documents, error bodies with their <code>, ranged
 * downloads refused unless 206 with the right Content-Range, upload and
 * cphash answers checked). The emulator-backed behaviour is covered by the
 * integration tests.
 */
#include <stddef.h>
#include <stdint.h>
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "net/http.h"
#include "net/jfs.h"
#include "net/jtime.h"
#include "testsrv.h"

/* ---------------------------------------------------------------------- */
/* The scripted server                                                    */

struct route {
	const char *path;         /* exact request target; NULL: any */
	int status;
	const char *headers;      /* extra header lines ("X: y\r\n"), or NULL */
	const char *body;
	size_t send_only;
	int cut_first;            /* the first N answers are cut after cut_at bytes */
	size_t cut_at;
	const char *body_after;   /* body once the cut answers are spent (NULL: body) */
};

/* Every answer is held back this long (to test cancellation). */
static atomic_uint stall_ms;

/*
 * The script is shared with the server thread: the test holds sc_lock
 * except while a call to the module under test runs (CALL), and the
 * handler takes it, so every access is ordered (ThreadSanitizer-clean).
 */
static pthread_mutex_t sc_lock = PTHREAD_MUTEX_INITIALIZER;
#define CALL(e)                                          \
	({                                               \
		pthread_mutex_unlock(&sc_lock);          \
		__auto_type call_rc_ = (e);              \
		pthread_mutex_lock(&sc_lock);            \
		call_rc_;                                \
	})

#define MAX_ROUTES 8
#define MAX_SEEN 16

struct script {
	struct route routes[MAX_ROUTES];
	size_t nroutes;
	/* the requests seen, last one in full */
	size_t seen;
	char paths[MAX_SEEN][2048];
	char method[16];
	char head[8192];
	char body[8192];
	size_t body_len;
};

static void handle(struct script *sc, const struct testsrv_req *rq, struct testsrv_resp *rs);

static void handler(void *ctx, const struct testsrv_req *rq, struct testsrv_resp *rs)
{
	struct script *sc = ctx;
	if (atomic_load(&stall_ms)) /* a slow server (the scenario), not a wait */
		usleep(atomic_load(&stall_ms) * 1000);
	pthread_mutex_lock(&sc_lock);
	handle(sc, rq, rs);
	pthread_mutex_unlock(&sc_lock);
}

/* The handler's work, under sc_lock. */
static void handle(struct script *sc, const struct testsrv_req *rq, struct testsrv_resp *rs)
{
	if (sc->seen < MAX_SEEN)
		snprintf(sc->paths[sc->seen], sizeof(sc->paths[0]), "%s", rq->path);
	sc->seen++;
	snprintf(sc->method, sizeof(sc->method), "%s", rq->method);
	snprintf(sc->head, sizeof(sc->head), "%s", rq->head);
	sc->body_len = rq->body_len < sizeof(sc->body) ? rq->body_len : sizeof(sc->body) - 1;
	memcpy(sc->body, rq->body, sc->body_len);
	sc->body[sc->body_len] = '\0';
	for (size_t i = 0; i < sc->nroutes; i++) {
		const struct route *r = &sc->routes[i];
		if (r->path && strcmp(r->path, rq->path))
			continue;
		rs->status = r->status;
		if (r->headers)
			snprintf(rs->headers, sizeof(rs->headers), "%s", r->headers);
		rs->body = r->body;
		rs->send_only = r->send_only;
		if (sc->routes[i].cut_first > 0) {
			sc->routes[i].cut_first--;
			rs->send_only = r->cut_at;
		} else if (r->body_after) {
			rs->body = r->body_after;
		}
		return;
	}
	rs->status = 599;
	rs->body = "no route";
}

struct fixture {
	struct script sc;
	struct testsrv *srv;
	struct http_client *http;
	struct jfs *jfs;
	char jfs_url[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->srv = testsrv_start(handler, &f->sc);
	assert_non_null(f->srv);
	struct http_config hc = { .max_retries = -1, .connect_timeout_s = 5 };
	assert_int_equal(http_client_new(&hc, &f->http), 0);
	snprintf(f->jfs_url, sizeof(f->jfs_url), "%s/jfs", f->srv->url);
	struct jfs_config cfg = {
		.jfs_url = f->jfs_url, .api_url = f->srv->url, .username = "u+1",
		.device = "Jotta", .mountpoint = "Archive",
	};
	assert_int_equal(jfs_new(f->http, &cfg, &f->jfs), 0);
	*state = f;
	pthread_mutex_lock(&sc_lock);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	pthread_mutex_unlock(&sc_lock);
	jfs_free(f->jfs);
	http_client_free(f->http);
	testsrv_stop(f->srv);
	free(f);
	return 0;
}

/* Answer every request with route @r. */
static void answer_route(struct fixture *f, struct route r)
{
	memset(&f->sc, 0, sizeof(f->sc));
	f->sc.routes[0] = r;
	f->sc.nroutes = 1;
}

/* Answer every request with one plain route. */
static void answer(struct fixture *f, int status, const char *headers, const char *body)
{
	answer_route(f, (struct route){ .status = status, .headers = headers, .body = body });
}

static bool has_header(const struct fixture *f, const char *line)
{
	return strcasestr(f->sc.head, line) != NULL;
}

/* ---------------------------------------------------------------------- */
/* Bodies                                                                 */

static const char folder_doc[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<folder name=\"dir one\" time=\"2024-03-04-T08:09:10Z\" host=\"dn-123\">"
	"<path xml:space=\"preserve\">/u+1/Jotta/Archive</path>"
	"<folders><folder name=\"sub\"/><folder name=\"gone\" deleted=\"2024-03-01-T10:00:00Z\"/></folders>"
	"<files><file name=\"a+b;c%d.txt\" uuid=\"1\"><currentRevision><number>2</number>"
	"<state>COMPLETED</state><created>2024-03-04-T08:00:00Z</created>"
	"<modified>2024-03-04-T08:05:00Z</modified><mime>text/plain</mime><size>12</size>"
	"<md5>6f5902ac237024bdd0c176cb93063dc4</md5><updated>2024-03-04-T08:09:10Z</updated>"
	"</currentRevision></file></files></folder>";

static const char file_doc[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<file name=\"x.txt\" uuid=\"1\"><currentRevision><number>1</number><state>COMPLETED</state>"
	"<created>2020-01-02-T03:04:05Z</created><modified>2020-01-02-T03:04:05Z</modified>"
	"<mime>text/plain</mime><size>12</size><md5>6f5902ac237024bdd0c176cb93063dc4</md5>"
	"<updated>2024-03-04-T08:09:10Z</updated></currentRevision></file>";

static const char tombstone_doc[] =
	"<file name=\"x.txt\" deleted=\"2026-08-29-T13:45:33Z\"><currentRevision><state>COMPLETED"
	"</state><size>12</size><md5>6f5902ac237024bdd0c176cb93063dc4</md5></currentRevision></file>";

static const char err404[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error><code>404</code><message>"
	"no.jotta.backup.errors.NoSuchPathException: u/Jotta/Archive/x</message><reason>Not Found"
	"</reason><cause></cause><hostname>emu-01</hostname><x-id>1</x-id></error>";

static const char err255[] =
	"<error><code>400</code><message>no.jotta.backup.errors.InvalidArgumentException: JFS file "
	"names may not be longer than 255 characters</message><reason>Bad Request</reason></error>";

/* ---------------------------------------------------------------------- */
/* Listings and stat                                                      */

struct names {
	size_t n;
	char name[8][64];
	bool dir[8], deleted[8];
	int64_t size[8];
};

static int collect(void *ctx, const struct jfs_entry *e)
{
	struct names *nm = ctx;
	assert_true(nm->n < 8);
	snprintf(nm->name[nm->n], 64, "%s%s%s", e->parent ? e->parent : "", e->parent ? "|" : "",
		 e->name);
	nm->dir[nm->n] = e->is_dir;
	nm->deleted[nm->n] = e->deleted;
	nm->size[nm->n] = e->size;
	nm->n++;
	return 0;
}

static void test_list(void **state)
{
	struct fixture *f = *state;
	struct names nm = { 0 };
	answer(f, 200, NULL, folder_doc);
	assert_int_equal(CALL(jfs_list(f->jfs, "dir one/a+b;c%d", collect, &nm)), 0);
	assert_string_equal(f->sc.method, "GET");
	/* every byte outside A-Za-z0-9-._~ escaped, the user name too */
	assert_string_equal(f->sc.paths[0], "/jfs/u%2B1/Jotta/Archive/dir%20one/a%2Bb%3Bc%25d");
	assert_int_equal(nm.n, 3);
	assert_string_equal(nm.name[0], "sub");
	assert_true(nm.dir[0] && !nm.deleted[0]);
	assert_true(nm.dir[1] && nm.deleted[1]);       /* flagged, not hidden */
	assert_string_equal(nm.name[2], "a+b;c%d.txt");
	assert_int_equal(nm.size[2], 12);

	/* the root of the mountpoint */
	memset(&nm, 0, sizeof(nm));
	answer(f, 200, NULL, folder_doc);
	assert_int_equal(CALL(jfs_list(f->jfs, "", collect, &nm)), 0);
	assert_string_equal(f->sc.paths[0], "/jfs/u%2B1/Jotta/Archive");

	/* kinds and errors */
	answer(f, 200, NULL, file_doc);
	assert_int_equal(CALL(jfs_list(f->jfs, "x.txt", collect, &nm)), -ENOTDIR);
	answer(f, 404, NULL, err404);
	assert_int_equal(CALL(jfs_list(f->jfs, "x", collect, &nm)), -ENOENT);
	answer(f, 400, NULL, err255);
	assert_int_equal(CALL(jfs_list(f->jfs, "x", collect, &nm)), -ENAMETOOLONG);
	answer(f, 400, NULL, "400 Bad request");
	assert_int_equal(CALL(jfs_list(f->jfs, "x", collect, &nm)), -EINVAL);
	/* rclone trusts <code>: a 500 whose body says 404 is "not found" */
	answer(f, 500, NULL, err404);
	assert_int_equal(CALL(jfs_list(f->jfs, "x", collect, &nm)), -ENOENT);
	/* malformed and truncated answers */
	answer(f, 200, NULL, "<folder><folders><folder name=\"a\"/>");
	assert_int_equal(CALL(jfs_list(f->jfs, "x", collect, &nm)), -EIO);
	answer(f, 200, NULL, "<html>oops</html>");
	assert_int_equal(CALL(jfs_list(f->jfs, "x", collect, &nm)), -EIO);
	answer_route(f, (struct route){ .status = 200, .body = folder_doc, .send_only = 200 });
	assert_int_equal(CALL(jfs_list(f->jfs, "x", collect, &nm)), -EIO);

	/* paths that would name something else are refused before any request */
	answer(f, 200, NULL, folder_doc);
	static const char *const bad[] = { "/a", "a/", "a//b", ".", "a/..", "../x", "a/./b" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(CALL(jfs_list(f->jfs, bad[i], collect, &nm)), -EINVAL);
	assert_int_equal(f->sc.seen, 0);
}

/* A listing cut in mid-transfer is retried; entries come exactly once. */
static void test_list_retry(void **state)
{
	struct fixture *f = *state;
	struct http_client *http;
	struct http_config hc = { .max_retries = 3, .backoff_min_ms = 1, .backoff_max_ms = 2 };
	assert_int_equal(http_client_new(&hc, &http), 0);
	struct jfs_config cfg = {
		.jfs_url = f->jfs_url, .api_url = f->srv->url, .username = "u+1",
		.device = "Jotta", .mountpoint = "Archive",
	};
	struct jfs *j;
	assert_int_equal(jfs_new(http, &cfg, &j), 0);
	/* cut after the first two entries have been decoded */
	size_t cut = (size_t)(strstr(folder_doc, "<files>") - folder_doc) + 10;

	struct names nm = { 0 };
	answer_route(f, (struct route){ .status = 200, .body = folder_doc, .cut_first = 2,
					    .cut_at = cut });
	assert_int_equal(CALL(jfs_list(j, "d", collect, &nm)), 0);
	assert_int_equal(f->sc.seen, 3);
	assert_int_equal(nm.n, 3);
	assert_string_equal(nm.name[0], "sub");
	assert_string_equal(nm.name[1], "gone");
	assert_string_equal(nm.name[2], "a+b;c%d.txt");

	/* the listing changed between the attempts: -EIO, no mix of the two */
	static const char other[] =
		"<folder name=\"d\"><folders><folder name=\"other\"/><folder name=\"gone\" "
		"deleted=\"2024-03-01-T10:00:00Z\"/><folder name=\"x\"/></folders></folder>";
	memset(&nm, 0, sizeof(nm));
	answer_route(f, (struct route){ .status = 200, .body = folder_doc, .cut_first = 1,
					    .cut_at = cut, .body_after = other });
	assert_int_equal(CALL(jfs_list(j, "d", collect, &nm)), -EIO);
	assert_int_equal(nm.n, 2);
	/* ... or came back shorter than what was already delivered */
	static const char shorter[] = "<folder name=\"d\"><folders><folder name=\"sub\"/></folders></folder>";
	memset(&nm, 0, sizeof(nm));
	answer_route(f, (struct route){ .status = 200, .body = folder_doc, .cut_first = 1,
					    .cut_at = cut, .body_after = shorter });
	assert_int_equal(CALL(jfs_list(j, "d", collect, &nm)), -EIO);
	assert_int_equal(nm.n, 2);
	/* liststream too */
	static const char ls[] =
		"<filestream><folder><path>/Archive</path></folder>"
		"<file><path>/Archive/e</path><filename>f</filename><size>3</size></file>"
		"<file><path>/Archive/e</path><filename>g</filename><size>4</size></file>"
		"<stats><folders>2</folders><files>2</files></stats></filestream>";
	memset(&nm, 0, sizeof(nm));
	answer_route(f, (struct route){ .status = 200, .body = ls, .cut_first = 1,
					    .cut_at = (size_t)(strstr(ls, "<filename>g") - ls) });
	assert_int_equal(CALL(jfs_liststream(j, "", collect, &nm)), 0);
	assert_int_equal(nm.n, 4);
	assert_string_equal(nm.name[2], "e|f");
	assert_string_equal(nm.name[3], "e|g");
	jfs_free(j);
	http_client_free(http);
}

/* Issue 14: listing limits from jfs_config: a listing over one is -EIO. */
static void test_list_limits(void **state)
{
	struct fixture *f = *state;
	struct names nm = { 0 };
	struct jfs *j;
	struct jfs_config cfg = {
		.jfs_url = f->jfs_url, .api_url = f->srv->url, .username = "u+1",
		.device = "Jotta", .mountpoint = "Archive",
		.max_list_entries = 2, .max_stream_entries = 3,
	};
	assert_int_equal(jfs_new(f->http, &cfg, &j), 0);
	answer(f, 200, NULL, folder_doc);                /* 3 entries */
	assert_int_equal(CALL(jfs_list(j, "d", collect, &nm)), -EIO);
	assert_int_equal(nm.n, 2);
	static const char ls[] =
		"<filestream><folder><path>/Archive</path></folder>"
		"<file><path>/Archive/e</path><filename>f</filename><size>3</size></file>"
		"<stats><folders>2</folders><files>1</files></stats></filestream>";
	memset(&nm, 0, sizeof(nm));
	answer(f, 200, NULL, ls);                         /* 3 entries: at the limit */
	assert_int_equal(CALL(jfs_liststream(j, "", collect, &nm)), 0);
	assert_int_equal(nm.n, 3);
	jfs_free(j);

	/* bytes */
	cfg.max_list_entries = cfg.max_stream_entries = 0;
	cfg.max_list_bytes = strlen(folder_doc) - 1;
	cfg.max_stream_bytes = strlen(ls) - 1;
	assert_int_equal(jfs_new(f->http, &cfg, &j), 0);
	memset(&nm, 0, sizeof(nm));
	answer(f, 200, NULL, folder_doc);
	assert_int_equal(CALL(jfs_list(j, "d", collect, &nm)), -EIO);
	memset(&nm, 0, sizeof(nm));
	answer(f, 200, NULL, ls);
	assert_int_equal(CALL(jfs_liststream(j, "", collect, &nm)), -EIO);
	jfs_free(j);

	/* the defaults take a normal listing */
	memset(&nm, 0, sizeof(nm));
	answer(f, 200, NULL, folder_doc);
	assert_int_equal(CALL(jfs_list(f->jfs, "d", collect, &nm)), 0);
	assert_int_equal(nm.n, 3);
}

static void test_liststream(void **state)
{
	struct fixture *f = *state;
	struct names nm = { 0 };
	answer(f, 200, NULL,
	       "<?xml version=\"1.0\" encoding=\"UTF-8\"?><filestream>"
	       "<folder><path>/Archive/d</path></folder>"
	       "<file><path>/Archive/d/e</path><filename>f</filename><size>3</size></file>"
	       "<stats><folders>2</folders><files>1</files></stats></filestream>");
	assert_int_equal(CALL(jfs_liststream(f->jfs, "d", collect, &nm)), 0);
	assert_string_equal(f->sc.paths[0], "/jfs/u%2B1/Jotta/Archive/d?mode=liststream");
	assert_int_equal(nm.n, 3);
	assert_string_equal(nm.name[0], "|");           /* the listed folder */
	assert_string_equal(nm.name[1], "|e");          /* implied parent */
	assert_string_equal(nm.name[2], "e|f");
	answer(f, 200, NULL, "<filestream><folder><path>/Archive</path></folder>"
	       "<stats><folders>2</folders><files>0</files></stats></filestream>");
	assert_int_equal(CALL(jfs_liststream(f->jfs, "", collect, &nm)), -EIO);
	answer(f, 200, NULL, "<filestream><folder><path>/Archive</path></folder></filestream>");
	assert_int_equal(CALL(jfs_liststream(f->jfs, "", collect, &nm)), -EIO);
}

static void test_stat(void **state)
{
	struct fixture *f = *state;
	struct jfs_entry e;
	answer(f, 200, NULL, file_doc);
	assert_int_equal(CALL(jfs_stat(f->jfs, "a/x.txt", &e)), 0);
	assert_string_equal(f->sc.paths[0], "/jfs/u%2B1/Jotta/Archive/a/x.txt");
	assert_string_equal(e.name, "x.txt");
	assert_false(e.is_dir);
	assert_true(e.completed);
	assert_int_equal(e.size, 12);
	assert_string_equal(e.md5, "6f5902ac237024bdd0c176cb93063dc4");
	assert_string_equal(e.mime, "text/plain");
	jfs_entry_release(&e);

	answer(f, 200, NULL, folder_doc);
	assert_int_equal(CALL(jfs_stat(f->jfs, "dir one", &e)), 0);
	assert_true(e.is_dir);
	assert_string_equal(e.name, "dir one");
	jfs_entry_release(&e);

	answer(f, 200, NULL, tombstone_doc);
	assert_int_equal(CALL(jfs_stat(f->jfs, "a/x.txt", &e)), -ENOENT);
	answer(f, 404, NULL, err404);
	assert_int_equal(CALL(jfs_stat(f->jfs, "a/x.txt", &e)), -ENOENT);
	answer(f, 200, NULL, "<device><name>Jotta</name></device>");
	assert_int_equal(CALL(jfs_stat(f->jfs, "a", &e)), -EIO);
}

/* ---------------------------------------------------------------------- */
/* Downloads                                                              */

struct buf {
	char data[256];
	size_t len;
	bool resettable;
};

static int buf_write(void *ctx, const void *data, size_t len)
{
	struct buf *b = ctx;
	if (b->len + len > sizeof(b->data))
		return -ENOSPC;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

static int buf_reset(void *ctx)
{
	((struct buf *)ctx)->len = 0;
	return 0;
}

static void test_download(void **state)
{
	struct fixture *f = *state;
	struct buf b = { 0 };
	struct http_sink sink = { .write = buf_write, .reset = buf_reset, .ctx = &b };
	int64_t got = -1;

	answer(f, 206, "Content-Range: bytes 6-10/12\r\n", "world");
	assert_int_equal(CALL(jfs_download(f->jfs, "a b+c.txt", 6, 10, &sink, &got)), 0);
	assert_string_equal(f->sc.paths[0], "/jfs/u%2B1/Jotta/Archive/a%20b%2Bc.txt?mode=bin");
	assert_true(has_header(f, "\r\nRange: bytes=6-10\r\n"));
	assert_int_equal(got, 5);
	assert_memory_equal(b.data, "world", 5);

	/* whole file: no Range, 200 */
	b.len = 0;
	answer(f, 200, NULL, "hello world\n");
	assert_int_equal(CALL(jfs_download(f->jfs, "x", 0, -1, &sink, &got)), 0);
	assert_null(strcasestr(f->sc.head, "\r\nRange:"));
	assert_int_equal(got, 12);

	/* open-ended range */
	b.len = 0;
	answer(f, 206, "Content-Range: bytes 6-11/12\r\n", "world\n");
	assert_int_equal(CALL(jfs_download(f->jfs, "x", 6, -1, &sink, &got)), 0);
	assert_true(has_header(f, "\r\nRange: bytes=6-\r\n"));
	assert_int_equal(got, 6);

	/* a range past the end is clamped by the server: accepted, got tells */
	b.len = 0;
	answer(f, 206, "Content-Range: bytes 6-11/12\r\n", "world\n");
	assert_int_equal(CALL(jfs_download(f->jfs, "x", 6, 99, &sink, &got)), 0);
	assert_int_equal(got, 6);

	/* never silently wrong data: not one byte reaches the sink */
	static const struct {
		int status;
		const char *headers;
		const char *body;
	} bad[] = {
		{ 200, NULL, "hello world\n" },                               /* Range ignored */
		{ 206, NULL, "world" },                                       /* no Content-Range */
		{ 206, "Content-Range: bytes 0-4/12\r\n", "hello" },          /* wrong start */
		{ 206, "Content-Range: bytes 6-9/12\r\n", "worl" },           /* short, not at EOF */
		{ 206, "Content-Range: bytes 6-10/*\r\n", "worl" },           /* body shorter */
		{ 206, "Content-Range: items 6-10/12\r\n", "world" },
		{ 206, "Content-Range: bytes 6-10/10\r\n", "world" },         /* end beyond total */
		{ 206, "Content-Range: bytes 6-10/12\r\n", "world!!" },       /* longer than range */
		/* absurd numbers (issue 14): refused before a byte is passed on */
		{ 206, "Content-Range: bytes 6-9223372036854775807/*\r\n", "world" },
		{ 206, "Content-Range: bytes 6-9223372036854775808/*\r\n", "world" },
		{ 206, "Content-Range: bytes 6-10/99999999999999999999\r\n", "world" },
		{ 206, "Content-Range: bytes -6-10/12\r\n", "world" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		b.len = 0;
		answer(f, bad[i].status, bad[i].headers, bad[i].body);
		int rc = CALL(jfs_download(f->jfs, "x", 6, 10, &sink, &got));
		assert_int_equal(rc, -EIO);
		if (i < 3 || i == 5 || i == 6 || i >= 8)
			assert_int_equal(b.len, 0);
		assert_int_equal(got, (int64_t)b.len);
	}
	/* whole-file request answered 206: refused too */
	b.len = 0;
	answer(f, 206, "Content-Range: bytes 0-11/12\r\n", "hello world\n");
	assert_int_equal(CALL(jfs_download(f->jfs, "x", 0, -1, &sink, &got)), -EIO);
	assert_int_equal(b.len, 0);
	/* to the end, with an absurd end and no total: a short body is -EIO */
	b.len = 0;
	answer(f, 206, "Content-Range: bytes 6-9223372036854775807/*\r\n", "world\n");
	assert_int_equal(CALL(jfs_download(f->jfs, "x", 6, -1, &sink, &got)), -EIO);
	/* errors */
	answer(f, 404, NULL, err404);
	assert_int_equal(CALL(jfs_download(f->jfs, "x", 0, 10, &sink, &got)), -ENOENT);
	assert_int_equal(got, 0);
	/* a cut body: the bytes that arrived are counted */
	b.len = 0;
	answer_route(f, (struct route){ .status = 200, .body = "hello world\n", .send_only = 4 });
	assert_true(CALL(jfs_download(f->jfs, "x", 0, -1, &sink, &got)) < 0);
	assert_int_equal(got, 4);
	assert_int_equal(CALL(jfs_download(f->jfs, "x", 5, 4, &sink, &got)), -EINVAL);
	assert_int_equal(CALL(jfs_download(f->jfs, "x", -1, 4, &sink, &got)), -EINVAL);
}

/* ---------------------------------------------------------------------- */
/* Commands                                                               */

static void test_commands(void **state)
{
	struct fixture *f = *state;
	answer(f, 200, NULL, "<folder name=\"n\"/>");
	assert_int_equal(CALL(jfs_mkdir(f->jfs, "new dir/x")), 0);
	assert_string_equal(f->sc.method, "POST");
	assert_string_equal(f->sc.paths[0], "/jfs/u%2B1/Jotta/Archive/new%20dir/x?mkDir=true");
	assert_true(has_header(f, "\r\nContent-Length: 0\r\n"));
	assert_null(strcasestr(f->sc.head, "Content-Type"));
	assert_int_equal(f->sc.body_len, 0);
	f->sc.seen = 0;
	assert_int_equal(CALL(jfs_mkdir(f->jfs, "")), 0);     /* the root: nothing to do */
	assert_int_equal(f->sc.seen, 0);

	static const struct {
		bool dir, hard;
		const char *query;
	} del[] = {
		{ false, false, "?dl=true" }, { false, true, "?rm=true" },
		{ true, false, "?dlDir=true" }, { true, true, "?rmDir=true" },
	};
	for (size_t i = 0; i < 4; i++) {
		answer(f, 200, NULL, "");
		assert_int_equal(CALL(jfs_delete(f->jfs, "d/x", del[i].dir, del[i].hard)), 0);
		char want[256];
		snprintf(want, sizeof(want), "/jfs/u%%2B1/Jotta/Archive/d/x%s", del[i].query);
		assert_string_equal(f->sc.paths[0], want);
		assert_string_equal(f->sc.method, "POST");
		assert_null(strcasestr(f->sc.head, "Content-Type"));
	}
	answer(f, 404, NULL, err404);
	assert_int_equal(CALL(jfs_delete(f->jfs, "d/x", false, true)), -ENOENT);
	assert_int_equal(CALL(jfs_delete(f->jfs, "", true, false)), -EINVAL);

	/* file move: destination as a form-encoded absolute path; answer checked */
	answer(f, 200, NULL, file_doc);
	assert_int_equal(CALL(jfs_move(f->jfs, "a b+c.txt", "Docs/re named+;.txt", false)), 0);
	assert_string_equal(f->sc.paths[0], "/jfs/u%2B1/Jotta/Archive/a%20b%2Bc.txt?mv="
			    "%2Fu%2B1%2FJotta%2FArchive%2FDocs%2Fre%20named%2B%3B.txt");
	assert_null(strcasestr(f->sc.head, "Content-Type"));
	answer(f, 200, NULL, tombstone_doc);
	assert_int_equal(CALL(jfs_move(f->jfs, "a", "b", false)), -EIO);
	answer(f, 200, NULL, "<folder name=\"b\"/>");
	assert_int_equal(CALL(jfs_move(f->jfs, "a", "b", false)), -EIO);
	/* a file whose upload is still in progress moves too */
	answer(f, 200, NULL, "<file name=\"b\"><latestRevision><number>1</number><state>INCOMPLETE"
	       "</state><md5>6f5902ac237024bdd0c176cb93063dc4</md5></latestRevision></file>");
	assert_int_equal(CALL(jfs_move(f->jfs, "a", "b", false)), 0);
	answer(f, 404, NULL, "<error><code>404</code><message>no.jotta.backup.errors."
	       "NoSuchFileException: Source file /u/Jotta/Archive/a does not exist</message></error>");
	assert_int_equal(CALL(jfs_move(f->jfs, "a", "b", false)), -ENOENT);
	/* folder move: source with a trailing slash */
	answer(f, 200, NULL, "<folder name=\"Docs2\"/>");
	assert_int_equal(CALL(jfs_move(f->jfs, "Docs", "Docs2", true)), 0);
	assert_string_equal(f->sc.paths[0], "/jfs/u%2B1/Jotta/Archive/Docs/?mvDir="
			    "%2Fu%2B1%2FJotta%2FArchive%2FDocs2");
	assert_int_equal(CALL(jfs_move(f->jfs, "", "x", true)), -EINVAL);
	assert_int_equal(CALL(jfs_move(f->jfs, "x", "", false)), -EINVAL);
}

/*
 * mv, mvDir, rm, rmDir and dlDir are not idempotent: after an ambiguous
 * failure net/jfs reads the service's state before sending them again.
 */
static void test_commands_retried_safely(void **state)
{
	struct fixture *f = *state;
	struct script *sc = &f->sc;

	/* the move happened, its answer was cut: success, not sent again */
	memset(sc, 0, sizeof(*sc));
	sc->routes[0] = (struct route){
		.path = "/jfs/u%2B1/Jotta/Archive/x.txt?mv=%2Fu%2B1%2FJotta%2FArchive%2Fd%2Fx.txt",
		.status = 200, .body = file_doc, .cut_first = 1, .cut_at = 20 };
	sc->routes[1] = (struct route){ .path = "/jfs/u%2B1/Jotta/Archive/d/x.txt",
					.status = 200, .body = file_doc };
	sc->nroutes = 2;
	assert_int_equal(CALL(jfs_move(f->jfs, "x.txt", "d/x.txt", false)), 0);
	assert_int_equal(sc->seen, 2);
	assert_string_equal(sc->paths[1], "/jfs/u%2B1/Jotta/Archive/d/x.txt");

	/* a 503, and neither source nor target there: -ENOENT, as a 404 says */
	memset(sc, 0, sizeof(*sc));
	sc->routes[0] = (struct route){
		.path = "/jfs/u%2B1/Jotta/Archive/x.txt?mv=%2Fu%2B1%2FJotta%2FArchive%2Fd%2Fx.txt",
		.status = 503, .body = "<error><code>503</code></error>" };
	sc->routes[1] = (struct route){ .status = 404, .body = err404 };
	sc->nroutes = 2;
	assert_int_equal(CALL(jfs_move(f->jfs, "x.txt", "d/x.txt", false)), -ENOENT);
	assert_int_equal(sc->seen, 3);          /* mv, stat target, stat source */

	/* a folder removed although the answer was cut: success */
	memset(sc, 0, sizeof(*sc));
	sc->routes[0] = (struct route){ .path = "/jfs/u%2B1/Jotta/Archive/d?rmDir=true",
					.status = 200, .body = folder_doc, .cut_first = 1,
					.cut_at = 10 };
	sc->routes[1] = (struct route){ .status = 404, .body = err404 };
	sc->nroutes = 2;
	assert_int_equal(CALL(jfs_delete(f->jfs, "d", true, true)), 0);
	assert_int_equal(sc->seen, 2);
}

static void test_cphash(void **state)
{
	struct fixture *f = *state;
	time_t t;
	assert_int_equal(jtime_parse_jotta("2020-01-02-T03:04:05Z", 21, &t), 0);
	answer(f, 200, NULL, file_doc);
	assert_int_equal(CALL(jfs_cphash(f->jfs, "Docs/copy.txt", 12, "6f5902ac237024bdd0c176cb93063dc4",
				    t, t + 1)), 0);
	assert_string_equal(f->sc.paths[0], "/jfs/u%2B1/Jotta/Archive/Docs/copy.txt?cphash=true");
	assert_string_equal(f->sc.method, "POST");
	assert_true(has_header(f, "\r\nJSize: 12\r\n"));
	assert_true(has_header(f, "\r\nJMd5: 6f5902ac237024bdd0c176cb93063dc4\r\n"));
	assert_true(has_header(f, "\r\nJCreated: 2020-01-02-T03:04:05Z\r\n"));
	assert_true(has_header(f, "\r\nJModified: 2020-01-02-T03:04:06Z\r\n"));
	assert_null(strcasestr(f->sc.head, "Content-Type"));
	/* an answer that does not show the content asked for */
	assert_int_equal(CALL(jfs_cphash(f->jfs, "x", 13, "6f5902ac237024bdd0c176cb93063dc4", t, t)), -EIO);
	answer(f, 200, NULL, tombstone_doc);
	assert_int_equal(CALL(jfs_cphash(f->jfs, "x", 12, "6f5902ac237024bdd0c176cb93063dc4", t, t)), -EIO);
	/* the service would need an upload */
	answer(f, 404, NULL, err404);
	assert_int_equal(CALL(jfs_cphash(f->jfs, "x", 12, "6f5902ac237024bdd0c176cb93063dc4", t, t)), -ENOENT);
	assert_int_equal(CALL(jfs_cphash(f->jfs, "x", 12, "6F5902AC237024BDD0C176CB93063DC4", t, t)), -EINVAL);
	assert_int_equal(CALL(jfs_cphash(f->jfs, "x", -1, "6f5902ac237024bdd0c176cb93063dc4", t, t)), -EINVAL);
}

/* ---------------------------------------------------------------------- */
/* Upload                                                                 */

struct canceller {
	atomic_bool *flag;
	unsigned after_ms;
};

static void *cancel_later(void *arg)
{
	struct canceller *c = arg;
	usleep(c->after_ms * 1000); /* pacing: the cancel lands while the request runs */
	atomic_store(c->flag, true);
	return NULL;
}

static void test_allocate_upload(void **state)
{
	struct fixture *f = *state;
	char alloc_answer[512];
	snprintf(alloc_answer, sizeof(alloc_answer),
		 "{\"name\":\"big.bin\",\"path\":\"/jfs/Jotta/Archive/resume/big.bin\",\"state\":"
		 "\"INCOMPLETE\",\"upload_id\":\"e5\",\"upload_url\":\"%s/files/v1/upload/e5\","
		 "\"bytes\":11,\"resume_pos\":6}", f->srv->url);
	answer(f, 200, NULL, alloc_answer);
	struct jfs_alloc_req rq = {
		.path = "resume/big.bin", .size = 11, .md5 = "5eb63bbbe01eeed093cb22bb8f5acdc3",
		.created = 1709539750, .modified = 1709539750,
	};
	struct jfs_alloc a;
	assert_int_equal(CALL(jfs_allocate(f->jfs, &rq, &a)), 0);
	assert_string_equal(f->sc.paths[0], "/files/v1/allocate");
	assert_string_equal(f->sc.method, "POST");
	assert_true(has_header(f, "\r\nContent-Type: application/json\r\n"));
	assert_string_equal(f->sc.body, "{\"bytes\":11,\"created\":\"2024-03-04T08:09:10Z\",\"md5\":"
			    "\"5eb63bbbe01eeed093cb22bb8f5acdc3\",\"modified\":\"2024-03-04T08:09:10Z\","
			    "\"path\":\"/jfs/Jotta/Archive/resume/big.bin\"}");
	assert_false(a.completed);
	assert_int_equal(a.resume_pos, 6);
	assert_string_equal(a.state, "INCOMPLETE");

	/* the data POST: bytes [6, 11) of the file, with Range like rclone */
	char tmpl[] = "/tmp/test_jfs_XXXXXX";
	int fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	unlink(tmpl);
	assert_int_equal(write(fd, "hello world", 11), 11);
	answer(f, 201, NULL, "{\"path\":\"/jfs/Jotta/Archive/resume/big.bin\",\"content_id\":\"c\","
	       "\"bytes\":11,\"md5\":\"5eb63bbbe01eeed093cb22bb8f5acdc3\",\"modified\":1709539750000}");
	time_t mod = 0;
	assert_int_equal(CALL(jfs_upload(f->jfs, a.upload_url, fd, a.resume_pos, 11,
				    "5eb63bbbe01eeed093cb22bb8f5acdc3", &mod)), 0);
	assert_string_equal(f->sc.paths[0], "/files/v1/upload/e5");
	assert_true(has_header(f, "\r\nContent-Type: application/octet-stream\r\n"));
	assert_true(has_header(f, "\r\nRange: bytes=6-10\r\n"));
	assert_int_equal(f->sc.body_len, 5);
	assert_string_equal(f->sc.body, "world");
	assert_int_equal(mod, 1709539750);

	/* from the start: no Range; the whole file */
	assert_int_equal(CALL(jfs_upload(f->jfs, a.upload_url, fd, 0, 11,
				    "5eb63bbbe01eeed093cb22bb8f5acdc3", NULL)), 0);
	assert_null(strcasestr(f->sc.head, "\r\nRange:"));
	assert_string_equal(f->sc.body, "hello world");
	/* the service reports other bytes or another MD5: -EIO */
	answer(f, 201, NULL, "{\"bytes\":5,\"md5\":\"5eb63bbbe01eeed093cb22bb8f5acdc3\"}");
	assert_int_equal(CALL(jfs_upload(f->jfs, a.upload_url, fd, 6, 11,
				    "5eb63bbbe01eeed093cb22bb8f5acdc3", NULL)), -EIO);
	answer(f, 201, NULL, "{\"bytes\":11,\"md5\":\"00000000000000000000000000000000\"}");
	assert_int_equal(CALL(jfs_upload(f->jfs, a.upload_url, fd, 6, 11,
				    "5eb63bbbe01eeed093cb22bb8f5acdc3", NULL)), -EIO);
	answer(f, 420, NULL, "{\"code\":420,\"error_id\":\"IncompleteUploadOpenApiException\"}");
	assert_int_equal(CALL(jfs_upload(f->jfs, a.upload_url, fd, 6, 11,
				    "5eb63bbbe01eeed093cb22bb8f5acdc3", NULL)), -EIO);
	/* cancelled before it starts */
	atomic_bool cancel = true;
	f->sc.seen = 0;
	assert_int_equal(CALL(jfs_upload_cancellable(f->jfs, a.upload_url, fd, 6, 11,
						"5eb63bbbe01eeed093cb22bb8f5acdc3", &cancel, NULL)),
			 -ECANCELED);
	assert_int_equal(f->sc.seen, 0);
	/* cancelled while the service takes its time: cut at once */
	struct canceller cn = { .flag = &cancel, .after_ms = 100 };
	atomic_store(&cancel, false);
	atomic_store(&stall_ms, 3000);
	pthread_t thr;
	assert_int_equal(pthread_create(&thr, NULL, cancel_later, &cn), 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(CALL(jfs_upload_cancellable(f->jfs, a.upload_url, fd, 6, 11,
						"5eb63bbbe01eeed093cb22bb8f5acdc3", &cancel, NULL)),
			 -ECANCELED);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_join(thr, NULL);
	atomic_store(&stall_ms, 0);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 2000);
	assert_int_equal(CALL(jfs_upload(f->jfs, "file:///x", fd, 0, 11,
				    "5eb63bbbe01eeed093cb22bb8f5acdc3", NULL)), -EINVAL);
	assert_int_equal(CALL(jfs_upload(f->jfs, a.upload_url, fd, 12, 11,
				    "5eb63bbbe01eeed093cb22bb8f5acdc3", NULL)), -EINVAL);
	close(fd);
	jfs_alloc_release(&a);
	assert_null(a.upload_url);

	/* instant upload */
	answer(f, 200, NULL, "{\"state\":\"COMPLETED\",\"upload_url\":\"\",\"bytes\":11,\"resume_pos\":11}");
	assert_int_equal(CALL(jfs_allocate(f->jfs, &rq, &a)), 0);
	assert_true(a.completed);
	assert_null(a.upload_url);
	jfs_alloc_release(&a);
	/* quota, refused names, a bad answer */
	answer(f, 507, NULL, "{\"code\":507,\"message\":\"Insufficient Storage\"}");
	assert_int_equal(CALL(jfs_allocate(f->jfs, &rq, &a)), -ENOSPC);
	answer(f, 400, NULL, "{\"code\":400,\"message\":\"no.jotta.backup.errors.InvalidArgumentException: "
	       "JFS file names may not be longer than 255 characters\"}");
	assert_int_equal(CALL(jfs_allocate(f->jfs, &rq, &a)), -ENAMETOOLONG);
	answer(f, 400, NULL, "{\"code\":400,\"message\":\"bad\"}");
	assert_int_equal(CALL(jfs_allocate(f->jfs, &rq, &a)), -EINVAL);
	answer(f, 200, NULL, "{\"state\":\"INCOMPLETE\",\"upload_url\":\"gopher://x/\"}");
	assert_int_equal(CALL(jfs_allocate(f->jfs, &rq, &a)), -EIO);
	assert_null(a.upload_url);
}

/* ---------------------------------------------------------------------- */
/* Account                                                                */

static const char user_doc[] =
	"<user><username>u+1</username><account-type>unlimited</account-type><capacity>-1</capacity>"
	"<usage>12345</usage><devices><device><name>Jotta</name><type>JOTTA</type><size>0</size>"
	"</device><device><name>lap top</name><type>LAPTOP</type><size>5</size></device></devices>"
	"</user>";

static const char device_jotta[] =
	"<device><name>Jotta</name><type>JOTTA</type><size>0</size><mountPoints>"
	"<mountPoint><name>Archive</name><size>0</size></mountPoint>"
	"<mountPoint><name>Sync</name></mountPoint></mountPoints></device>";

static const char device_laptop[] =
	"<device><name>lap top</name><type>LAPTOP</type><size>5</size><mountPoints/></device>";

struct devlist {
	size_t n;
	char text[4][128];
};

static int on_dev(void *ctx, const struct jfs_device_info *d)
{
	struct devlist *l = ctx;
	assert_true(l->n < 4);
	int k = snprintf(l->text[l->n], 128, "%s/%s/%lld:", d->name, d->type, (long long)d->size);
	for (const char *const *m = d->mountpoints; *m; m++)
		k += snprintf(l->text[l->n] + k, (size_t)(128 - k), " %s", *m);
	l->n++;
	return 0;
}

static void test_account(void **state)
{
	struct fixture *f = *state;
	struct jfs_quota q;
	answer(f, 200, NULL, user_doc);
	assert_int_equal(CALL(jfs_quota(f->jfs, &q)), 0);
	assert_string_equal(f->sc.paths[0], "/jfs/u%2B1");
	assert_int_equal(q.usage, 12345);
	assert_int_equal(q.capacity, -1);
	assert_string_equal(q.account_type, "unlimited");

	memset(&f->sc, 0, sizeof(f->sc));
	f->sc.routes[0] = (struct route){ .path = "/jfs/u%2B1", .status = 200, .body = user_doc };
	f->sc.routes[1] = (struct route){ .path = "/jfs/u%2B1/Jotta", .status = 200, .body = device_jotta };
	f->sc.routes[2] = (struct route){ .path = "/jfs/u%2B1/lap%20top", .status = 200, .body = device_laptop };
	f->sc.nroutes = 3;
	struct devlist l = { 0 };
	assert_int_equal(CALL(jfs_devices(f->jfs, on_dev, &l)), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.text[0], "Jotta/JOTTA/0: Archive Sync");
	assert_string_equal(l.text[1], "lap top/LAPTOP/5:");

	assert_int_equal(CALL(jfs_check_mountpoint(f->jfs)), 0);
	assert_string_equal(f->sc.paths[f->sc.seen - 1], "/jfs/u%2B1/Jotta");
	answer(f, 200, NULL, "<device><name>Jotta</name><mountPoints><mountPoint><name>ARCHIVE</name>"
	       "</mountPoint></mountPoints></device>");
	assert_int_equal(CALL(jfs_check_mountpoint(f->jfs)), 0);     /* case-insensitive */
	answer(f, 200, NULL, "<device><name>Jotta</name><mountPoints><mountPoint><name>Sync</name>"
	       "</mountPoint></mountPoints></device>");
	assert_int_equal(CALL(jfs_check_mountpoint(f->jfs)), -ENOENT);
	answer(f, 404, NULL, "<error><code>404</code><message>no.jotta.backup.errors.NoSuchDeviceException"
	       "</message></error>");
	assert_int_equal(CALL(jfs_check_mountpoint(f->jfs)), -ENOENT);

	char *user;
	answer(f, 200, NULL, "{\"username\":\"2940e57271a93d987d6f8a21\",\"quota\":-1}");
	assert_int_equal(CALL(jfs_customer_username(f->http, f->srv->url, &user)), 0);
	assert_string_equal(f->sc.paths[0], "/account/v1/customer");
	assert_string_equal(user, "2940e57271a93d987d6f8a21");
	free(user);
	answer(f, 200, NULL, "{\"email\":\"x\"}");
	assert_int_equal(CALL(jfs_customer_username(f->http, f->srv->url, &user)), -EIO);
	answer(f, 401, NULL, "{\"error\":\"unauthorized\"}");
	assert_int_equal(CALL(jfs_customer_username(f->http, f->srv->url, &user)), -EACCES);

	answer(f, 200, NULL, "{\"folders\":1,\"files\":0}");
	assert_int_equal(CALL(jfs_purge_trash(f->jfs)), 0);
	assert_string_equal(f->sc.paths[0], "/files/v1/purge_trash");
	assert_string_equal(f->sc.method, "POST");
	assert_null(strcasestr(f->sc.head, "Content-Type"));
}

static void test_new(void **state)
{
	struct fixture *f = *state;
	struct jfs *j;
	struct jfs_config cfg = {
		.jfs_url = "http://h/jfs/", .api_url = "http://h", .username = "u",
		.device = "Jotta", .mountpoint = "Archive",
	};
	assert_int_equal(jfs_new(f->http, &cfg, &j), 0);
	jfs_free(j);
	struct jfs_config bad = cfg;
	bad.mountpoint = "..";
	assert_int_equal(jfs_new(f->http, &bad, &j), -EINVAL);
	bad = cfg;
	bad.device = "a/b";
	assert_int_equal(jfs_new(f->http, &bad, &j), -EINVAL);
	bad = cfg;
	bad.username = "";
	assert_int_equal(jfs_new(f->http, &bad, &j), -EINVAL);
	bad = cfg;
	bad.jfs_url = "ftp://h/jfs";
	assert_int_equal(jfs_new(f->http, &bad, &j), -EINVAL);
	assert_null(j);
	jfs_free(NULL);

	/* transport errors pass through unchanged (nothing listens there) */
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/jfs", testsrv_dead_port());
	cfg.jfs_url = url;
	assert_int_equal(jfs_new(f->http, &cfg, &j), 0);
	struct names nm = { 0 };
	assert_int_equal(CALL(jfs_list(j, "x", collect, &nm)), -ECONNREFUSED);
	jfs_free(j);
}

/* The Content-Range of a ranged download, without a server (issue 14,
 * tests/fuzz/fuzz_http_headers): only digits, within int64, and a length
 * that fits int64 (0 to INT64_MAX with an unknown total overflowed b - a + 1 before). */
static void test_content_range(void **state)
{
	static const struct {
		const char *cr;
		int64_t first, last;
		int64_t expect; /* -1: refused */
	} cases[] = {
		{ "bytes 0-11/12", 0, 11, 12 },
		{ "BYTES 0-11/12", 0, -1, 12 },
		{ "bytes 100-299999/300000", 100, -1, 299900 },
		{ "bytes 4096-8191/*", 4096, 8191, 4096 },
		{ "bytes 4096-8191/*", 4096, -1, 4096 },
		{ "bytes 5-9/10", 5, 99, 5 },            /* the file ends first */
		{ "bytes 5-8/10", 5, 99, -1 },           /* ... but not there */
		{ "bytes 5-9/*", 5, 99, -1 },            /* unknown end: not short */
		{ "bytes 5-9/10", 4, 9, -1 },            /* another start */
		{ "bytes 5-9/9", 5, 9, -1 },             /* beyond the total */
		{ "bytes 9-5/10", 9, 5, -1 },
		{ "bytes  5-9/10", 5, 9, -1 },           /* blanks, signs: not digits */
		{ "bytes 5- 9/10", 5, 9, -1 },
		{ "bytes 5-9/ 10", 5, 9, -1 },
		{ "bytes +5-9/10", 5, 9, -1 },
		{ "bytes 5-9/10 ", 5, 9, -1 },
		{ "bytes 5-9", 5, 9, -1 },
		{ "bytes */10", 0, 9, -1 },
		{ "bytes 0-9223372036854775807/*", 0, -1, -1 },
		{ "bytes 0-9223372036854775807/*", 0, INT64_MAX, -1 },
		{ "bytes 1-9223372036854775807/*", 1, -1, INT64_MAX },
		{ "bytes 0-9223372036854775806/9223372036854775807", 0, -1, INT64_MAX },
		{ "bytes 0-9223372036854775808/*", 0, -1, -1 },
		{ "", 0, -1, -1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t got = -7;
		int rc = jfs_content_range_check(cases[i].cr, cases[i].first, cases[i].last, &got);
		if (cases[i].expect < 0) {
			assert_int_equal(rc, -EIO);
		} else {
			assert_int_equal(rc, 0);
			assert_int_equal(got, cases[i].expect);
		}
	}
	int64_t got;
	assert_int_equal(jfs_content_range_check(NULL, 0, -1, &got), -EIO);
}

UNIT_TEST_PROGRAM(setup, teardown,
	unit_test_alone(test_content_range),
	cmocka_unit_test(test_list),
	cmocka_unit_test(test_list_retry),
	cmocka_unit_test(test_list_limits),
	cmocka_unit_test(test_liststream),
	cmocka_unit_test(test_stat),
	cmocka_unit_test(test_download),
	cmocka_unit_test(test_commands),
	cmocka_unit_test(test_commands_retried_safely),
	cmocka_unit_test(test_cphash),
	cmocka_unit_test(test_allocate_upload),
	cmocka_unit_test(test_account),
	cmocka_unit_test(test_new),
)
