/*
 * Unit tests of net/jfs_xml: the streaming decoders of the JFS XML
 * documents, fed with the real samples of shared/docs/jottacloud-api-samples.md
 * in 1-byte chunks, odd chunk sizes and one chunk (results must be
 * identical), plus malformed, truncated and hostile input (-EIO, never a
 * crash), the liststream <stats> rule, and bounded memory on 100k entries.
 */
#include <stddef.h>
#include <stdint.h>
#include "unit.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http.h"
#include "net/jfs_xml.h"
#include "net/jtime.h"

/* ---------------------------------------------------------------------- */
/* Samples (REAL unless marked)                                           */

/* A.4: folder listing (the stray 'c' is in the original). */
static const char folder_a4[] =
	"<folder name=\"test\" time=\"2018-07-24-T20:41:37Z\" host=\"dn-158\">\n"
	"\t<path xml:space=\"preserve\">/12qh1wsht8cssxdtwl15rqh9/Jotta/Sync</path>\n"
	"\t<abspath xml:space=\"preserve\">/12qh1wsht8cssxdtwl15rqh9/Jotta/Sync</abspath>\n"
	"\t<folders>\n"
	"\t\t<folder name=\"t2\"/>c\n"
	"\t</folders>\n"
	"\t<files>\n"
	"\t\t<file name=\"block.csv\" uuid=\"f6553cd4-1135-48fe-8e6a-bb9565c50ef2\">\n"
	"\t\t\t<currentRevision>\n"
	"\t\t\t\t<number>1</number>\n"
	"\t\t\t\t<state>COMPLETED</state>\n"
	"\t\t\t\t<created>2018-07-05-T15:08:02Z</created>\n"
	"\t\t\t\t<modified>2018-07-05-T15:08:02Z</modified>\n"
	"\t\t\t\t<mime>application/octet-stream</mime>\n"
	"\t\t\t\t<size>30827730</size>\n"
	"\t\t\t\t<md5>1e8a7b728ab678048df00075c9507158</md5>\n"
	"\t\t\t\t<updated>2018-07-24-T20:41:10Z</updated>\n"
	"\t\t\t</currentRevision>\n"
	"\t\t</file>\n"
	"\t</files>\n"
	"\t<metadata first=\"\" max=\"\" total=\"2\" num_folders=\"1\" num_files=\"1\"/>\n"
	"</folder>\n";

/* A.3: mountpoint documents. */
static const char mountpoint_a3[] =
	"<mountPoint time=\"2018-07-24-T20:35:02Z\" host=\"dn-157\">\n"
	"\t<name xml:space=\"preserve\">Sync</name>\n"
	"\t<path xml:space=\"preserve\">/12qh1wsht8cssxdtwl15rqh9/Jotta</path>\n"
	"\t<abspath xml:space=\"preserve\">/12qh1wsht8cssxdtwl15rqh9/Jotta</abspath>\n"
	"\t<size>0</size>\n"
	"\t<modified></modified>\n"
	"\t<device>Jotta</device>\n"
	"\t<user>12qh1wsht8cssxdtwl15rqh9</user>\n"
	"\t<folders>\n"
	"\t\t<folder name=\"test\"/>\n"
	"\t</folders>\n"
	"\t<metadata first=\"\" max=\"\" total=\"1\" num_folders=\"1\" num_files=\"0\"/>\n"
	"</mountPoint>\n";

static const char mountpoint_empty[] =
	"<mountPoint time=\"2018-08-12-T09:58:24Z\" host=\"dn-157\">\n"
	"  <name xml:space=\"preserve\">Sync</name>\n"
	"  <path xml:space=\"preserve\">/foo/Jotta</path>\n"
	"  <abspath xml:space=\"preserve\">/foo/Jotta</abspath>\n"
	"  <size>0</size>\n"
	"  <modified></modified>\n"
	"  <device>Jotta</device>\n"
	"  <user>foo</user>\n"
	"  <metadata first=\"\" max=\"\" total=\"0\" num_folders=\"0\" num_files=\"0\"/>\n"
	"</mountPoint>\n";

/* C.7 (RECONSTRUCTED): every case rclone distinguishes; the "…32 hex…"
 * placeholders replaced by real digests. */
static const char folder_c7[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<folder name=\"dir\" time=\"2024-03-04-T08:09:10Z\" host=\"dn-123\">\n"
	"  <path xml:space=\"preserve\">/2940e57271a93d987d6f8a21/Jotta/Archive</path>\n"
	"  <abspath xml:space=\"preserve\">/2940e57271a93d987d6f8a21/Jotta/Archive</abspath>\n"
	"  <folders>\n"
	"    <folder name=\"live\"/>\n"
	"    <folder name=\"trashed\" deleted=\"2024-03-01-T10:00:00Z\"/>\n"
	"    <folder name=\"a\xef\xbc\x9f" "b\"/>     <!-- shown by rclone as \"a?b\" -->\n"
	"  </folders>\n"
	"  <files>\n"
	"    <file name=\"ok.txt\" uuid=\"11111111-1111-1111-1111-111111111111\">\n"
	"      <currentRevision>\n"
	"        <number>2</number><state>COMPLETED</state>\n"
	"        <created>2024-03-04-T08:00:00Z</created><modified>2024-03-04-T08:05:00Z</modified>\n"
	"        <mime>text/plain</mime><size>12</size><md5>6f5902ac237024bdd0c176cb93063dc4</md5>\n"
	"        <updated>2024-03-04-T08:09:10Z</updated>\n"
	"      </currentRevision>\n"
	"    </file>\n"
	"    <file name=\"reupload-in-progress.bin\" uuid=\"22222222-2222-2222-2222-222222222222\">\n"
	"      <currentRevision>      <!-- rclone shows this (old) revision -->\n"
	"        <number>1</number><state>COMPLETED</state>\n"
	"        <created>2024-01-01-T00:00:00Z</created><modified>2024-01-01-T00:00:00Z</modified>\n"
	"        <mime>application/octet-stream</mime><size>100</size><md5>0123456789ABCDEF0123456789abcdef</md5>\n"
	"        <updated>2024-01-01-T00:00:05Z</updated>\n"
	"      </currentRevision>\n"
	"      <latestRevision>\n"
	"        <number>2</number><state>INCOMPLETE</state>\n"
	"        <created>2024-03-04-T08:00:00Z</created><modified>2024-03-04-T08:00:00Z</modified>\n"
	"        <mime>application/octet-stream</mime><md5>fedcba9876543210fedcba9876543210</md5>\n"
	"        <updated>2024-03-04-T08:09:00Z</updated>\n"
	"      </latestRevision>\n"
	"    </file>\n"
	"    <file name=\"never-finished.iso\" uuid=\"33333333-3333-3333-3333-333333333333\">   <!-- invisible to rclone -->\n"
	"      <latestRevision>\n"
	"        <number>1</number><state>INCOMPLETE</state>\n"
	"        <created>2024-03-04-T08:00:00Z</created><modified>2024-03-04-T08:00:00Z</modified>\n"
	"        <mime>application/octet-stream</mime><md5>aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa</md5>\n"
	"        <updated>2024-03-04-T08:09:00Z</updated>\n"
	"      </latestRevision>\n"
	"    </file>\n"
	"    <file name=\"in-trash.txt\" uuid=\"44444444-4444-4444-4444-444444444444\" deleted=\"2024-03-02-T12:00:00Z\">  <!-- invisible unless trashed_only -->\n"
	"      <currentRevision>\n"
	"        <number>1</number><state>COMPLETED</state>\n"
	"        <created>2024-02-01-T00:00:00Z</created><modified>2024-02-01-T00:00:00Z</modified>\n"
	"        <mime>text/plain</mime><size>5</size><md5>bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb</md5>\n"
	"        <updated>2024-02-01-T00:00:01Z</updated>\n"
	"      </currentRevision>\n"
	"    </file>\n"
	"  </files>\n"
	"  <metadata first=\"\" max=\"\" total=\"7\" num_folders=\"3\" num_files=\"4\"/>\n"
	"</folder>\n";

/* A.5: completed file document (jottalib 2013). */
static const char file_a5[] =
	"<file name=\"jottacloud.sync.pdfname\" uuid=\"37530f11-d55b-4f31-acf4-27854813cd34\" time=\"2013-12-15-T01:11:52Z\" host=\"dn-029.site-000.jotta.no\">\n"
	"  <path xml:space=\"preserve\">/havardgulldahl/Jotta/Sync</path>\n"
	"  <abspath xml:space=\"preserve\">/havardgulldahl/Jotta/Sync</abspath>\n"
	"  <currentRevision>\n"
	"    <number>1</number>\n"
	"    <state>COMPLETED</state>\n"
	"    <created>2013-07-19-T22:59:16Z</created>\n"
	"    <modified>2013-07-19-T22:59:17Z</modified>\n"
	"    <mime>application/octet-stream</mime>\n"
	"    <mstyle>APPLICATION_OCTET_STREAM</mstyle>\n"
	"    <size>218028</size>\n"
	"    <md5>e8f05ca4ebd70bc93ce2f18e26cee2a3</md5>\n"
	"    <updated>2013-07-19-T22:59:31Z</updated>\n"
	"  </currentRevision>\n"
	"</file>\n";

/* A.5: incomplete upload (with jottalib's XML comment). */
static const char file_incomplete[] =
	"<file name=\"iii.m4v\" uuid=\"e8f268ac-d081-4d4f-bfb1-77149b2bd51d\" time=\"2015-05-29-T18:11:56Z\" host=\"dn-091.site-000.jotta.no\">\n"
	"  <path xml:space=\"preserve\">/havardgulldahl/Jotta/Sync</path>\n"
	"  <abspath xml:space=\"preserve\">/havardgulldahl/Jotta/Sync</abspath>\n"
	"  <latestRevision>\n"
	"    <number>1</number>\n"
	"    <state>INCOMPLETE</state>\n"
	"    <created>2014-05-22-T22:13:52Z</created>\n"
	"    <modified>2014-05-19-T13:37:14Z</modified>\n"
	"    <mime>video/mp4</mime>\n"
	"    <mstyle>VIDEO_MP4</mstyle>\n"
	"    <size>100483008</size> <!-- THIS IS THE SIZE OF WHAT'S BEEN TRANSFERED THIS FAR. havardgulldahl -->\n"
	"    <md5>4d7cdab5256b72d17075ec388e467e99</md5>\n"
	"    <updated>2015-05-29-T18:07:56Z</updated>\n"
	"  </latestRevision>\n"
	"</file>\n";

/* A.5: a tombstone (aeroftp, live-derived). */
static const char file_tombstone[] =
	"<file name=\"ehud-397-0420.txt\" deleted=\"2026-08-29-T13:45:33Z\">\n"
	"    <currentRevision>\n"
	"        <size>28</size>\n"
	"        <md5>9a6924f78982f7e759f371f08fb5d57e</md5>\n"
	"        <created>2026-08-29-T13:44:54Z</created>\n"
	"        <modified>2026-08-29-T13:44:54Z</modified>\n"
	"    </currentRevision>\n"
	"</file>\n";

/* C.8 (RECONSTRUCTED) with the A.5 CORRUPT revision fragment added to <revisions>. */
static const char file_c8[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<file name=\"ok.txt\" uuid=\"11111111-1111-1111-1111-111111111111\" time=\"2024-03-04-T08:10:00Z\" host=\"dn-123\">\n"
	"  <path xml:space=\"preserve\">/2940e57271a93d987d6f8a21/Jotta/Archive/dir</path>\n"
	"  <abspath xml:space=\"preserve\">/2940e57271a93d987d6f8a21/Jotta/Archive/dir</abspath>\n"
	"  <publicURI>33cb006a8ec6493a9dabab48503d022b</publicURI>\n"
	"  <publicSharePath>/s/x</publicSharePath>\n"
	"  <currentRevision>\n"
	"    <number>2</number><state>COMPLETED</state>\n"
	"    <created>2024-03-04-T08:00:00Z</created><modified>2024-03-04-T08:05:00Z</modified>\n"
	"    <mime>text/plain</mime><size>12</size><md5>6f5902ac237024bdd0c176cb93063dc4</md5>\n"
	"    <updated>2024-03-04-T08:09:10Z</updated>\n"
	"  </currentRevision>\n"
	"  <revisions>\n"
	"    <revision>\n"
	"      <number>1</number><state>COMPLETED</state>\n"
	"      <created>2024-03-01-T08:00:00Z</created><modified>2024-03-01-T08:00:00Z</modified>\n"
	"      <mime>text/plain</mime><size>6</size><md5>b1946ac92492d2347c6235b4d2611184</md5>\n"
	"      <updated>2024-03-01-T08:00:02Z</updated>\n"
	"    </revision>\n"
	"    <revision>\n"
	"      <number>3</number>\n"
	"      <state>CORRUPT</state>\n"
	"      <created>2016-06-14-T19:09:47Z</created>\n"
	"      <modified>2016-06-14-T19:09:47Z</modified>\n"
	"      <mime>text/plain</mime>\n"
	"      <mstyle>text/plain</mstyle>\n"
	"      <md5>2ed82c2b9a78f3fce85b19592fc94581</md5>\n"
	"      <updated>2016-06-14-T19:09:48Z</updated>\n"
	"    </revision>\n"
	"  </revisions>\n"
	"</file>\n";

/* C.9 (RECONSTRUCTED): liststream of dir/ok.txt, empty dir/empty and top.txt. */
static const char liststream_c9[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?><filestream><folder><path>/Archive</path></folder>"
	"<file><path>/Archive</path><filename>top.txt</filename><md5>d41d8cd98f00b204e9800998ecf8427e</md5>"
	"<size>0</size><modified>2024-03-04T08:00:00.000Z</modified><created>2024-03-04T08:00:00.000Z</created></file>"
	"<folder><path>/Archive/dir</path></folder>"
	"<file><path>/Archive/dir</path><filename>ok.txt</filename><md5>6f5902ac237024bdd0c176cb93063dc4</md5>"
	"<size>12</size><modified>2024-03-04T08:05:00.000Z</modified><created>2024-03-04T08:00:00.000Z</created></file>"
	"<folder><path>/Archive/dir/empty</path></folder>"
	"<stats><folders>3</folders><files>2</files></stats></filestream>";

/* A.1: user document. */
static const char user_a1[] =
	"<user time=\"2018-07-18-T21:39:10Z\" host=\"dn-132\">\n"
	"\t<username>12qh1wsht8cssxdtwl15rqh9</username>\n"
	"\t<account-type>free</account-type>\n"
	"\t<locked>false</locked>\n"
	"\t<capacity>5368709120</capacity>\n"
	"\t<max-devices>-1</max-devices>\n"
	"\t<max-mobile-devices>-1</max-mobile-devices>\n"
	"\t<usage>0</usage>\n"
	"\t<read-locked>false</read-locked>\n"
	"\t<write-locked>false</write-locked>\n"
	"\t<quota-write-locked>false</quota-write-locked>\n"
	"\t<enable-sync>true</enable-sync>\n"
	"\t<enable-foldershare>true</enable-foldershare>\n"
	"\t<devices>\n"
	"\t\t<device>\n"
	"\t\t\t<name xml:space=\"preserve\">Jotta</name>\n"
	"\t\t\t<display_name xml:space=\"preserve\">Jotta</display_name>\n"
	"\t\t\t<type>JOTTA</type>\n"
	"\t\t\t<sid>5c458d01-9eaf-4f23-8d3c-2486fd9704d8</sid>\n"
	"\t\t\t<size>0</size>\n"
	"\t\t\t<modified>2018-07-15-T22:04:59Z</modified>\n"
	"\t\t</device>\n"
	"\t</devices>\n"
	"</user>\n";

/* A.2: device documents (rclone 2018, jottalib 2014, aeroftp live 2026). */
static const char device_a2[] =
	"<device time=\"2018-07-23-T20:21:50Z\" host=\"dn-158\">\n"
	"\t<name xml:space=\"preserve\">Jotta</name>\n"
	"\t<display_name xml:space=\"preserve\">Jotta</display_name>\n"
	"\t<type>JOTTA</type>\n"
	"\t<sid>5c458d01-9eaf-4f23-8d3c-2486fd9704d8</sid>\n"
	"\t<size>0</size>\n"
	"\t<modified>2018-07-15-T22:04:59Z</modified>\n"
	"\t<user>12qh1wsht8cssxdtwl15rqh9</user>\n"
	"\t<mountPoints>\n"
	"\t\t<mountPoint>\n"
	"\t\t\t<name xml:space=\"preserve\">Archive</name>\n"
	"\t\t\t<size>0</size>\n"
	"\t\t<modified>2018-07-15-T22:04:59Z</modified>\n"
	"\t\t</mountPoint>\n"
	"\t\t<mountPoint>\n"
	"\t\t\t<name xml:space=\"preserve\">Shared</name>\n"
	"\t\t\t<size>0</size>\n"
	"\t\t\t<modified></modified>\n"
	"\t\t</mountPoint>\n"
	"\t\t<mountPoint>\n"
	"\t\t\t<name xml:space=\"preserve\">Sync</name>\n"
	"\t\t\t<size>0</size>\n"
	"\t\t\t<modified></modified>\n"
	"\t\t</mountPoint>\n"
	"\t</mountPoints>\n"
	"\t<metadata first=\"\" max=\"\" total=\"3\" num_mountpoints=\"3\"/>\n"
	"</device>\n";

static const char device_laptop[] =
	"<device time=\"2014-02-20-T21:02:42Z\" host=\"dn-036.site-000.jotta.no\">\n"
	"  <name xml:space=\"preserve\">laptop</name>\n"
	"  <type>LAPTOP</type>\n"
	"  <sid>d831efc4-f885-4d97-bd8d-</sid>\n"
	"  <size>371951820971</size>\n"
	"  <modified>2014-02-20-T14:03:52Z</modified>\n"
	"  <user>hgl</user>\n"
	"  <mountPoints>\n"
	"    <mountPoint>\n"
	"      <name xml:space=\"preserve\">backup</name>\n"
	"      <size>372544055053</size>\n"
	"      <modified>2014-02-20-T14:03:52Z</modified>\n"
	"    </mountPoint>\n"
	"    <mountPoint>\n"
	"      <name xml:space=\"preserve\">Desktop</name>\n"
	"      <size>581758</size>\n"
	"      <modified>2010-11-12-T20:44:15Z</modified>\n"
	"    </mountPoint>\n"
	"  </mountPoints>\n"
	"  <metadata first=\"\" max=\"\" total=\"6\" num_mountpoints=\"6\"/>\n"
	"</device>\n";

static const char device_live[] =
	"<device time=\"2026-07-27-T07:19:53Z\">\n"
	"  <name xml:space=\"preserve\">Jotta</name>\n"
	"  <user>4smczzcts33jjedcplkqrorq</user>\n"
	"  <mountPoints>\n"
	"    <mountPoint>\n"
	"      <name xml:space=\"preserve\">Archive</name>\n"
	"      <size></size>\n"
	"    </mountPoint>\n"
	"    <mountPoint>\n"
	"      <name xml:space=\"preserve\">Sync</name>\n"
	"    </mountPoint>\n"
	"    <mountPoint>\n"
	"      <name xml:space=\"preserve\">Trash</name>\n"
	"    </mountPoint>\n"
	"  </mountPoints>\n"
	"</device>\n";

/* A.9: error bodies. */
static const char error_401[] =
	"<error>\n"
	"    <code>401</code>\n"
	"    <message>org.springframework.security.authentication.BadCredentialsException: Bad credentials</message>\n"
	"    <reason>Unauthorized</reason>\n"
	"    <cause></cause>\n"
	"    <hostname>dn-125</hostname>\n"
	"    <x-id>096492164813</x-id>\n"
	"</error>\n";

static const char error_404[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<error>\n"
	"    <code>404</code>\n"
	"    <message>no.jotta.backup.errors.NoSuchMountPointException</message>\n"
	"    <reason>Not Found</reason>\n"
	"    <cause></cause>\n"
	"    <hostname></hostname>\n"
	"    <x-id>156394042147</x-id>\n"
	"</error>\n";

static const char error_255[] =
	"<error><code>400</code><message>no.jotta.backup.errors.InvalidArgumentException: JFS file "
	"names may not be longer than 255 characters</message><reason>Bad Request</reason>"
	"<cause></cause><hostname>emu-01</hostname><x-id>000000000001</x-id></error>";

/* ---------------------------------------------------------------------- */
/* Collecting entries                                                     */

struct rec {
	char *name, *parent, *mime, *latest_state, *bad;
	bool is_dir, deleted, completed, has_latest;
	int64_t size, revision, latest_size;
	char md5[33], latest_md5[33];
	time_t created, modified, updated;
};

#define MAX_RECS 64

struct coll {
	struct rec r[MAX_RECS];
	size_t n;
	size_t fail_at;                 /* fail on this 1-based entry, 0: never */
	int fail_err;
};

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int collect(void *ctx, const struct jfs_entry *e)
{
	struct coll *c = ctx;
	assert_non_null(e->name);
	if (c->fail_at && c->n + 1 == c->fail_at)
		return c->fail_err;
	assert_true(c->n < MAX_RECS);
	struct rec *r = &c->r[c->n++];
	r->name = strdup(e->name);
	r->parent = dup_or_null(e->parent);
	r->mime = dup_or_null(e->mime);
	r->latest_state = dup_or_null(e->latest_state);
	r->bad = dup_or_null(e->bad);
	r->is_dir = e->is_dir;
	r->deleted = e->deleted;
	r->completed = e->completed;
	r->has_latest = e->has_latest;
	r->size = e->size;
	r->revision = e->revision;
	r->latest_size = e->latest_size;
	memcpy(r->md5, e->md5, sizeof(r->md5));
	memcpy(r->latest_md5, e->latest_md5, sizeof(r->latest_md5));
	r->created = e->created;
	r->modified = e->modified;
	r->updated = e->updated;
	return 0;
}

static void coll_free(struct coll *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->r[i].name);
		free(c->r[i].parent);
		free(c->r[i].mime);
		free(c->r[i].latest_state);
		free(c->r[i].bad);
	}
	memset(c, 0, sizeof(*c));
}

static void assert_str_or_null(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void coll_equal(const struct coll *a, const struct coll *b)
{
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		const struct rec *x = &a->r[i], *y = &b->r[i];
		assert_string_equal(x->name, y->name);
		assert_str_or_null(x->parent, y->parent);
		assert_str_or_null(x->mime, y->mime);
		assert_str_or_null(x->latest_state, y->latest_state);
		assert_str_or_null(x->bad, y->bad);
		assert_int_equal(x->is_dir, y->is_dir);
		assert_int_equal(x->deleted, y->deleted);
		assert_int_equal(x->completed, y->completed);
		assert_int_equal(x->has_latest, y->has_latest);
		assert_int_equal(x->size, y->size);
		assert_int_equal(x->revision, y->revision);
		assert_int_equal(x->latest_size, y->latest_size);
		assert_string_equal(x->md5, y->md5);
		assert_string_equal(x->latest_md5, y->latest_md5);
		assert_int_equal(x->created, y->created);
		assert_int_equal(x->modified, y->modified);
		assert_int_equal(x->updated, y->updated);
	}
}

static time_t jt(const char *s)
{
	time_t t;
	assert_int_equal(jtime_parse_jotta(s, strlen(s), &t), 0);
	return t;
}

static time_t rt(const char *s)
{
	time_t t;
	assert_int_equal(jtime_parse_rfc3339(s, strlen(s), &t), 0);
	return t;
}

/* Feed @len bytes in @chunk-sized pieces, then finish. Returns the first
 * non-zero feed result (JFS_XML_DONE or -errno) or finish's result. */
static int run(struct jfs_xml *x, const char *doc, size_t len, size_t chunk)
{
	for (size_t off = 0; off < len;) {
		size_t n = len - off < chunk ? len - off : chunk;
		int rc = jfs_xml_feed(x, doc + off, n);
		if (rc == JFS_XML_DONE)
			return jfs_xml_finish(x) == 0 ? JFS_XML_DONE : -1;
		if (rc)
			return rc;
		off += n;
	}
	return jfs_xml_finish(x);
}

enum mode { M_LIST, M_LISTSTREAM };

static int decode(enum mode m, const char *prefix, const char *doc, size_t len, size_t chunk,
		  struct coll *c)
{
	struct jfs_xml *x;
	int rc = m == M_LIST ? jfs_xml_new_list(collect, c, &x)
			     : jfs_xml_new_liststream(prefix, collect, c, &x);
	assert_int_equal(rc, 0);
	rc = run(x, doc, len, chunk);
	if (rc < 0 && rc != c->fail_err)
		assert_true(jfs_xml_errmsg(x)[0] != '\0');
	jfs_xml_free(x);
	return rc;
}

static const size_t chunks[] = { 1, 2, 3, 7, 64, 4096 };

/* Decode @doc whole; then in every chunk size, with identical results. */
static int decode_all(enum mode m, const char *prefix, const char *doc, size_t len,
		      struct coll *out)
{
	int rc = decode(m, prefix, doc, len, len ? len : 1, out);
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct coll c = { .fail_at = out->fail_at, .fail_err = out->fail_err };
		assert_int_equal(decode(m, prefix, doc, len, chunks[i], &c), rc);
		coll_equal(out, &c);
		coll_free(&c);
	}
	return rc;
}

static int list_str(const char *doc, struct coll *out)
{
	return decode_all(M_LIST, NULL, doc, strlen(doc), out);
}

/* @doc lists without error as @n entries into @out */
static void list_n(const char *doc, struct coll *out, size_t n)
{
	assert_int_equal(list_str(doc, out), 0);
	assert_int_equal(out->n, n);
}

static int ls_str(const char *prefix, const char *doc, struct coll *out)
{
	return decode_all(M_LISTSTREAM, prefix, doc, strlen(doc), out);
}

/* ---------------------------------------------------------------------- */
/* Listings                                                               */

static void test_folder_a4(void **state)
{
	(void)state;
	struct coll c = { 0 };
	list_n(folder_a4, &c, 2);
	assert_string_equal(c.r[0].name, "t2");
	assert_true(c.r[0].is_dir);
	assert_false(c.r[0].deleted);
	assert_null(c.r[0].parent);
	const struct rec *f = &c.r[1];
	assert_string_equal(f->name, "block.csv");
	assert_false(f->is_dir);
	assert_false(f->deleted);
	assert_true(f->completed);
	assert_int_equal(f->size, 30827730);
	assert_string_equal(f->md5, "1e8a7b728ab678048df00075c9507158");
	assert_int_equal(f->revision, 1);
	assert_int_equal(f->created, jt("2018-07-05-T15:08:02Z"));
	assert_int_equal(f->modified, jt("2018-07-05-T15:08:02Z"));
	assert_int_equal(f->updated, jt("2018-07-24-T20:41:10Z"));
	assert_string_equal(f->mime, "application/octet-stream");
	assert_false(f->has_latest);
	assert_int_equal(f->latest_size, -1);
	assert_null(f->latest_state);
	coll_free(&c);
}

static void test_folder_c7(void **state)
{
	(void)state;
	struct coll c = { 0 };
	list_n(folder_c7, &c, 7);
	assert_string_equal(c.r[0].name, "live");
	assert_true(c.r[0].is_dir && !c.r[0].deleted);
	assert_string_equal(c.r[1].name, "trashed");
	assert_true(c.r[1].is_dir && c.r[1].deleted);
	assert_string_equal(c.r[2].name, "a\xef\xbc\x9f" "b");
	assert_true(c.r[2].is_dir);

	assert_string_equal(c.r[3].name, "ok.txt");
	assert_true(c.r[3].completed);
	assert_int_equal(c.r[3].revision, 2);
	assert_int_equal(c.r[3].size, 12);
	assert_string_equal(c.r[3].mime, "text/plain");

	const struct rec *re = &c.r[4];
	assert_string_equal(re->name, "reupload-in-progress.bin");
	assert_true(re->completed);
	assert_int_equal(re->size, 100);
	assert_int_equal(re->revision, 1);
	assert_string_equal(re->md5, "0123456789abcdef0123456789abcdef");  /* lower-cased */
	assert_true(re->has_latest);
	assert_string_equal(re->latest_state, "INCOMPLETE");
	assert_string_equal(re->latest_md5, "fedcba9876543210fedcba9876543210");
	assert_int_equal(re->latest_size, -1);   /* no <size> in listings */

	const struct rec *nf = &c.r[5];
	assert_string_equal(nf->name, "never-finished.iso");
	assert_false(nf->completed);
	assert_int_equal(nf->size, 0);
	assert_string_equal(nf->md5, "");
	assert_true(nf->has_latest);
	assert_string_equal(nf->latest_md5, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");

	assert_string_equal(c.r[6].name, "in-trash.txt");
	assert_true(c.r[6].deleted);
	assert_true(c.r[6].completed);
	assert_int_equal(c.r[6].size, 5);
	coll_free(&c);
}

static void test_mountpoint(void **state)
{
	(void)state;
	struct coll c = { 0 };
	list_n(mountpoint_a3, &c, 1);
	assert_string_equal(c.r[0].name, "test");
	assert_true(c.r[0].is_dir);
	coll_free(&c);
	list_n(mountpoint_empty, &c, 0);
}

static void test_list_root_kinds(void **state)
{
	(void)state;
	struct coll c = { 0 };
	assert_int_equal(list_str(file_a5, &c), -ENOTDIR);
	assert_int_equal(c.n, 0);
	assert_int_equal(list_str("<folder name=\"x\" deleted=\"2024-03-01-T10:00:00Z\">"
				  "<folders><folder name=\"y\"/></folders></folder>", &c), -ENOENT);
	assert_int_equal(c.n, 0);
	/* deleted counts whatever its value (never written as "false" by the service) */
	assert_int_equal(list_str("<folder name=\"x\" deleted=\"\"/>", &c), -ENOENT);
	assert_int_equal(list_str(device_a2, &c), -EIO);
	assert_int_equal(list_str(user_a1, &c), -EIO);
	assert_int_equal(c.n, 0);
	/* B.3: mkDir answer with empty paths */
	list_n("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<folder name=\"Docs\" "
	       "time=\"2026-11-23-T14:20:44Z\" host=\"fake-01\"><path xml:space="
	       "\"preserve\"></path><abspath xml:space=\"preserve\"></abspath>"
	       "<metadata first=\"\" max=\"\" total=\"0\" num_folders=\"0\" "
	       "num_files=\"0\"/></folder>", &c, 0);
	/* children in the wrong container are ignored, as rclone's folders>folder does */
	list_n("<folder name=\"x\"><folders><file name=\"f\"/></folders>"
	       "<files><folder name=\"d\"/></files></folder>", &c, 0);
}

/* The trash view (docs 8.7): entries carry their original parent in
 * <abspath>; a trashed folder lists only when asked to. */
struct origins {
	char names[4][64], origins[4][128];
	bool deleted[4], is_dir[4];
	size_t n;
};

static int collect_origin(void *ctx, const struct jfs_entry *e)
{
	struct origins *o = ctx;
	assert_true(o->n < 4);
	snprintf(o->names[o->n], sizeof(o->names[0]), "%s", e->name);
	snprintf(o->origins[o->n], sizeof(o->origins[0]), "%s", e->origin ? e->origin : "(null)");
	o->deleted[o->n] = e->deleted;
	o->is_dir[o->n] = e->is_dir;
	o->n++;
	return 0;
}

static int feed_list(const char *doc, bool trashed, struct origins *o)
{
	struct jfs_xml *x;
	int rc = jfs_xml_new_list(collect_origin, o, &x);
	assert_int_equal(rc, 0);
	if (trashed)
		jfs_xml_list_trashed(x);
	rc = jfs_xml_feed(x, doc, strlen(doc));
	if (rc >= 0)
		rc = jfs_xml_finish(x);
	jfs_xml_free(x);
	return rc;
}

static void test_trash_view(void **state)
{
	(void)state;
	static const char trash[] =
		"<mountPoint time=\"2026-08-29-T13:45:33Z\" host=\"h\"><name xml:space=\"preserve\">"
		"Trash</name><path xml:space=\"preserve\">/u/Jotta</path><abspath xml:space="
		"\"preserve\">/u/Jotta</abspath><size>5</size><modified></modified>"
		"<device>Jotta</device><user>u</user>"
		"<folders><folder name=\"old\" deleted=\"2026-08-29-T13:45:33Z\" contextType=\"TRASH\">"
		"<abspath xml:space=\"preserve\">/u/Jotta/Archive/a b</abspath></folder></folders>"
		"<files><file name=\"gone.txt\" uuid=\"x\" deleted=\"2026-08-29-T13:45:33Z\" "
		"contextType=\"TRASH\"><abspath xml:space=\"preserve\">/u/Jotta/Archive</abspath>"
		"<currentRevision><number>1</number><state>COMPLETED</state><created>"
		"2026-08-29-T13:45:33Z</created><modified>2026-08-29-T13:45:33Z</modified><mime>"
		"text/plain</mime><size>5</size><md5>d41d8cd98f00b204e9800998ecf8427e</md5><updated>"
		"2026-08-29-T13:45:33Z</updated></currentRevision></file></files>"
		"<metadata first=\"\" max=\"\" total=\"2\" num_folders=\"1\" num_files=\"1\"/>"
		"</mountPoint>";
	struct origins o = { 0 };
	assert_int_equal(feed_list(trash, false, &o), 0);
	assert_int_equal(o.n, 2);
	assert_string_equal(o.names[0], "old");
	assert_true(o.is_dir[0] && o.deleted[0]);
	assert_string_equal(o.origins[0], "/u/Jotta/Archive/a b");
	assert_string_equal(o.names[1], "gone.txt");
	assert_string_equal(o.origins[1], "/u/Jotta/Archive");
	/* A plain listing has no origins. */
	memset(&o, 0, sizeof(o));
	assert_int_equal(feed_list(folder_a4, false, &o), 0);
	assert_string_equal(o.origins[0], "(null)");
	/* A trashed folder: -ENOENT, unless listing the trash. */
	static const char tomb[] =
		"<folder name=\"x\" deleted=\"2024-03-01-T10:00:00Z\"><folders>"
		"<folder name=\"y\" deleted=\"2024-03-01-T10:00:00Z\"/></folders></folder>";
	memset(&o, 0, sizeof(o));
	assert_int_equal(feed_list(tomb, false, &o), -ENOENT);
	assert_int_equal(feed_list(tomb, true, &o), 0);
	assert_int_equal(o.n, 1);
	assert_true(o.deleted[0]);
}

static void test_names_verbatim(void **state)
{
	(void)state;
	struct coll c = { 0 };
	assert_int_equal(list_str("<folder name=\"d\"><folders><folder name=\"  lead and trail  \"/>"
				  "<folder name=\"a&amp;b&lt;c&gt;&quot;d&apos;\"/>"
				  "<folder name=\"tab&#9;nl&#10;\"/>"
				  "<folder name=\"\xe2\x80\x9b" "FF\"/></folders></folder>", &c), 0);
	assert_int_equal(c.n, 4);
	assert_string_equal(c.r[0].name, "  lead and trail  ");
	assert_string_equal(c.r[1].name, "a&b<c>\"d'");
	assert_string_equal(c.r[2].name, "tab\tnl\n");
	assert_string_equal(c.r[3].name, "\xe2\x80\x9b" "FF");
	coll_free(&c);
	/* nameless and empty-named entries are malformed */
	assert_int_equal(list_str("<folder><folders><folder/></folders></folder>", &c), -EIO);
	assert_int_equal(list_str("<folder><files><file name=\"\"/></files></folder>", &c), -EIO);
	/* local-name matching of prefixed elements and attributes */
	list_n("<j:folder xmlns:j=\"urn:x\"><j:folders><j:folder j:name=\"n\"/>"
	       "</j:folders></j:folder>", &c, 1);
	assert_string_equal(c.r[0].name, "n");
	coll_free(&c);
}

static void test_numbers(void **state)
{
	(void)state;
	/* A refused size spoils its entry only (bad: why), never the listing. */
	static const struct {
		const char *text;
		const char *bad;        /* NULL: accepted */
		int64_t size;
	} v[] = {
		{ "", NULL, 0 },                /* empty element: 0, as Go */
		{ " 12 ", NULL, 12 },           /* trimmed */
		{ "\n\t7\r\n", NULL, 7 },
		{ "+5", NULL, 5 },
		{ "007", NULL, 7 },
		{ "1125899906842624", NULL, JFS_SIZE_MAX },     /* 2^50: the largest believed */
		{ "1125899906842625", "<size> above 1125899906842624 bytes", 0 },
		{ "9223372036854775807", "<size> above 1125899906842624 bytes", 0 },  /* INT64_MAX */
		{ "9223372036854775808", "bad number in <size>", 0 },   /* overflow */
		{ "99999999999999999999999999999", "bad number in <size>", 0 },
		{ "-1", "negative value in <size>", 0 },
		{ "-9223372036854775808", "negative value in <size>", 0 },
		{ " ", "bad number in <size>", 0 },     /* white space only: Go's parse error */
		{ "12a", "bad number in <size>", 0 },
		{ "0x10", "bad number in <size>", 0 },
		{ "1 2", "bad number in <size>", 0 },
		{ "1e3", "bad number in <size>", 0 },
		{ "+", "bad number in <size>", 0 },
		{ "-", "bad number in <size>", 0 },
		{ "1.5", "bad number in <size>", 0 },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char doc[512];
		snprintf(doc, sizeof(doc), "<folder name=\"d\"><files><file name=\"f\">"
			 "<currentRevision><state>COMPLETED</state><size>%s</size>"
			 "<md5>6f5902ac237024bdd0c176cb93063dc4</md5><number>4</number>"
			 "</currentRevision></file></files></folder>", v[i].text);
		struct coll c = { 0 };
		list_n(doc, &c, 1);
		assert_str_or_null(c.r[0].bad, v[i].bad);
		assert_int_equal(c.r[0].size, v[i].size);
		/* a bad entry carries no numbers and is not completed */
		assert_int_equal(c.r[0].completed, v[i].bad == NULL);
		assert_int_equal(c.r[0].revision, v[i].bad ? 0 : 4);
		assert_string_equal(c.r[0].md5, v[i].bad ? "" : "6f5902ac237024bdd0c176cb93063dc4");
		coll_free(&c);
	}
	/* revision numbers: overflow-checked too */
	struct coll c = { 0 };
	assert_int_equal(list_str("<folder><files><file name=\"f\"><currentRevision><number>"
				  "18446744073709551616</number></currentRevision></file></files>"
				  "</folder>", &c), 0);
	assert_string_equal(c.r[0].bad, "bad number in <number>");
	coll_free(&c);
	assert_int_equal(list_str("<folder><files><file name=\"f\"><currentRevision><number>"
				  "-3</number></currentRevision></file></files></folder>", &c), 0);
	assert_string_equal(c.r[0].bad, "negative value in <number>");
	coll_free(&c);
	/* a number split over several text pieces by an entity */
	assert_int_equal(list_str("<folder><files><file name=\"f\"><currentRevision><size>1&#50;3"
				  "</size></currentRevision></file></files></folder>", &c), 0);
	assert_int_equal(c.r[0].size, 123);
	coll_free(&c);
}

static void test_values_malformed(void **state)
{
	(void)state;
	/* in a listed file: that entry is bad, the listing is fine */
	static const char *const docs[] = {
		"<folder><files><file name=\"f\"><currentRevision><md5>xyz</md5></currentRevision></file></files></folder>",
		"<folder><files><file name=\"f\"><currentRevision><md5>6f5902ac237024bdd0c176cb93063dc</md5></currentRevision></file></files></folder>",
		"<folder><files><file name=\"f\"><currentRevision><md5>6f5902ac237024bdd0c176cb93063dc4a</md5></currentRevision></file></files></folder>",
		"<folder><files><file name=\"f\"><currentRevision><md5>6f5902ac237024bdd0c176cb93063dcg</md5></currentRevision></file></files></folder>",
		"<folder><files><file name=\"f\"><currentRevision><modified>2018-07-05T15:08:02Z</modified></currentRevision></file></files></folder>",
		"<folder><files><file name=\"f\"><currentRevision><modified>yesterday</modified></currentRevision></file></files></folder>",
		"<folder><files><file name=\"f\"><currentRevision><created>2018-02-30-T15:08:02Z</created></currentRevision></file></files></folder>",
		"<folder><files><file name=\"f\"><latestRevision><size>-5</size></latestRevision></file></files></folder>",
		"<folder><files><file name=\"f\"><currentRevision><state>COMPLETEDCOMPLETEDCOMPLETEDCOMPLETED</state></currentRevision></file></files></folder>",
		"<folder><files><file name=\"f\"><latestRevision><size>1125899906842625</size></latestRevision></file></files></folder>",
	};
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		struct coll c = { 0 };
		list_n(docs[i], &c, 1);
		assert_non_null(c.r[0].bad);
		assert_false(c.r[0].completed || c.r[0].has_latest);
		coll_free(&c);
	}
	/* in the document itself: the listing fails */
	struct coll d = { 0 };
	assert_int_equal(list_str("<mountPoint><name>x</name><modified>never</modified></mountPoint>",
				  &d), -EIO);
	assert_int_equal(d.n, 0);
	/* an empty md5 is "unknown"; an upper-case one is lower-cased */
	struct coll c = { 0 };
	assert_int_equal(list_str("<folder><files><file name=\"f\"><currentRevision><md5></md5>"
				  "<state>COMPLETED</state></currentRevision></file><file name=\"g\">"
				  "<currentRevision><md5> 6F5902AC237024BDD0C176CB93063DC4 </md5>"
				  "</currentRevision></file></files></folder>", &c), 0);
	assert_string_equal(c.r[0].md5, "");
	assert_true(c.r[0].completed);
	assert_string_equal(c.r[1].md5, "6f5902ac237024bdd0c176cb93063dc4");
	assert_false(c.r[1].completed);          /* no state: not COMPLETED */
	coll_free(&c);
}

static void test_callback_error(void **state)
{
	(void)state;
	struct coll c = { .fail_at = 2, .fail_err = -EINTR };
	assert_int_equal(list_str(folder_c7, &c), -EINTR);
	assert_int_equal(c.n, 1);
	coll_free(&c);
}

/* ---------------------------------------------------------------------- */
/* stat                                                                   */

struct revs {
	size_t n;
	int64_t number[4], size[4];
	char state[4][16], md5[4][33];
	time_t updated[4];
};

static int collect_rev(void *ctx, const struct jfs_xml_revision *r)
{
	struct revs *rv = ctx;
	assert_true(rv->n < 4);
	rv->number[rv->n] = r->number;
	rv->size[rv->n] = r->size;
	snprintf(rv->state[rv->n], sizeof(rv->state[0]), "%s", r->state);
	memcpy(rv->md5[rv->n], r->md5, 33);
	rv->updated[rv->n] = r->updated;
	rv->n++;
	return 0;
}

/* Stat @doc in @chunk pieces; on success *e is a copy (strings freed by caller). */
static int stat_doc(const char *doc, size_t chunk, struct rec *out, struct revs *rv,
		    bool *early)
{
	struct jfs_xml *x;
	assert_int_equal(jfs_xml_new_stat(rv ? collect_rev : NULL, rv, &x), 0);
	int rc = run(x, doc, strlen(doc), chunk);
	if (early)
		*early = rc == JFS_XML_DONE;
	if (rc == JFS_XML_DONE)
		rc = 0;
	if (rc == 0) {
		const struct jfs_entry *e = jfs_xml_stat_entry(x);
		assert_non_null(e);
		struct coll c = { 0 };
		collect(&c, e);
		*out = c.r[0];
	} else {
		assert_null(jfs_xml_stat_entry(x));
	}
	jfs_xml_free(x);
	return rc;
}

static void rec_free(struct rec *r)
{
	free(r->name);
	free(r->parent);
	free(r->mime);
	free(r->latest_state);
	free(r->bad);
}

static void test_stat(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		size_t ch = chunks[i];
		struct rec r;
		bool early;

		assert_int_equal(stat_doc(folder_a4, ch, &r, NULL, &early), 0);
		assert_true(early);              /* stopped at <folders>: no listing download */
		assert_true(r.is_dir);
		assert_string_equal(r.name, "test");
		rec_free(&r);

		assert_int_equal(stat_doc(mountpoint_a3, ch, &r, NULL, &early), 0);
		assert_true(early && r.is_dir);
		assert_string_equal(r.name, "Sync");
		assert_int_equal(r.modified, 0);
		rec_free(&r);

		assert_int_equal(stat_doc(mountpoint_empty, ch, &r, NULL, &early), 0);
		assert_false(early);
		assert_string_equal(r.name, "Sync");
		rec_free(&r);

		assert_int_equal(stat_doc(file_a5, ch, &r, NULL, &early), 0);
		assert_false(early || r.is_dir || r.deleted || r.has_latest);
		assert_string_equal(r.name, "jottacloud.sync.pdfname");
		assert_true(r.completed);
		assert_int_equal(r.size, 218028);
		assert_string_equal(r.md5, "e8f05ca4ebd70bc93ce2f18e26cee2a3");
		assert_int_equal(r.created, jt("2013-07-19-T22:59:16Z"));
		assert_int_equal(r.modified, jt("2013-07-19-T22:59:17Z"));
		assert_int_equal(r.updated, jt("2013-07-19-T22:59:31Z"));
		rec_free(&r);

		assert_int_equal(stat_doc(file_incomplete, ch, &r, NULL, NULL), 0);
		assert_false(r.completed);
		assert_true(r.has_latest);
		assert_int_equal(r.latest_size, 100483008);
		assert_string_equal(r.latest_state, "INCOMPLETE");
		assert_string_equal(r.latest_md5, "4d7cdab5256b72d17075ec388e467e99");
		assert_int_equal(r.size, 0);
		rec_free(&r);

		assert_int_equal(stat_doc(file_tombstone, ch, &r, NULL, NULL), 0);
		assert_true(r.deleted);
		assert_false(r.completed);       /* trimmed sample: no state */
		assert_int_equal(r.size, 28);
		rec_free(&r);

		struct revs rv = { 0 };
		assert_int_equal(stat_doc(file_c8, ch, &r, &rv, NULL), 0);
		assert_int_equal(r.revision, 2);
		assert_int_equal(r.size, 12);
		assert_true(r.completed);
		assert_int_equal(rv.n, 2);
		assert_int_equal(rv.number[0], 1);
		assert_int_equal(rv.size[0], 6);
		assert_string_equal(rv.state[0], "COMPLETED");
		assert_string_equal(rv.md5[0], "b1946ac92492d2347c6235b4d2611184");
		assert_int_equal(rv.updated[0], jt("2024-03-01-T08:00:02Z"));
		assert_int_equal(rv.number[1], 3);
		assert_int_equal(rv.size[1], -1);  /* CORRUPT: no size */
		assert_string_equal(rv.state[1], "CORRUPT");
		rec_free(&r);

		assert_int_equal(stat_doc(device_a2, ch, &r, NULL, NULL), -EIO);
		assert_int_equal(stat_doc("", ch, &r, NULL, NULL), -EIO);

		/* a stat is about one entry: a refused value fails it */
		assert_int_equal(stat_doc("<file name=\"f\"><currentRevision><size>9223372036854775807"
					  "</size></currentRevision></file>", ch, &r, NULL, NULL), -EIO);
		assert_int_equal(stat_doc("<file name=\"f\"><currentRevision><size>-1"
					  "</size></currentRevision></file>", ch, &r, NULL, NULL), -EIO);
		assert_int_equal(stat_doc("<file name=\"f\"><revisions><revision><size>"
					  "1125899906842625</size></revision></revisions></file>", ch,
					  &r, NULL, NULL), -EIO);
	}
}

/* Issue 14: absurd numbers spoil their entry, never their siblings. */
static void test_bad_entries(void **state)
{
	(void)state;
	static const char list[] =
		"<folder name=\"d\"><folders><folder name=\"sub\"/></folders><files>"
		"<file name=\"a\"><currentRevision><number>1</number><state>COMPLETED</state>"
		"<size>3</size><md5>6f5902ac237024bdd0c176cb93063dc4</md5></currentRevision></file>"
		"<file name=\"huge\"><currentRevision><number>1</number><state>COMPLETED</state>"
		"<size>9223372036854775807</size><size>-1</size>"  /* the first reason is kept */
		"<modified>2024-13-01-T00:00:00Z</modified></currentRevision></file>"
		"<file name=\"neg\" deleted=\"2024-03-01-T10:00:00Z\"><currentRevision>"
		"<state>COMPLETED</state><size>-7</size></currentRevision></file>"
		"<file name=\"z\"><currentRevision><number>2</number><state>COMPLETED</state>"
		"<size>5</size><modified>2024-03-04-T08:05:00Z</modified></currentRevision></file>"
		"</files></folder>";
	struct coll c = { 0 };
	list_n(list, &c, 5);
	assert_null(c.r[0].bad);                        /* sub */
	assert_string_equal(c.r[1].name, "a");
	assert_null(c.r[1].bad);
	assert_int_equal(c.r[1].size, 3);
	assert_true(c.r[1].completed);
	assert_string_equal(c.r[2].name, "huge");
	assert_string_equal(c.r[2].bad, "<size> above 1125899906842624 bytes");
	assert_false(c.r[2].completed);
	assert_int_equal(c.r[2].size, 0);
	assert_int_equal(c.r[2].modified, 0);
	assert_string_equal(c.r[3].name, "neg");        /* a tombstone keeps its flag */
	assert_true(c.r[3].deleted);
	assert_string_equal(c.r[3].bad, "negative value in <size>");
	assert_string_equal(c.r[4].name, "z");          /* the next entry starts clean */
	assert_null(c.r[4].bad);
	assert_int_equal(c.r[4].size, 5);
	assert_int_equal(c.r[4].revision, 2);
	assert_int_equal(c.r[4].modified, jt("2024-03-04-T08:05:00Z"));
	coll_free(&c);

	/* liststream: the bad file is delivered (and counted for <stats>) */
	static const char stream[] =
		"<filestream><folder><path>/Archive</path></folder>"
		"<file><path>/Archive</path><filename>a</filename><size>1</size></file>"
		"<file><path>/Archive</path><filename>b</filename><size>9223372036854775807</size></file>"
		"<file><path>/Archive</path><filename>c</filename><size>-1</size></file>"
		"<file><path>/Archive</path><filename>d</filename>"
		"<modified>2024-03-04-T08:00:00Z</modified></file>"   /* JottaTime: not RFC 3339 */
		"<file><path>/Archive</path><filename>e</filename><size>2</size></file>"
		"<stats><folders>1</folders><files>5</files></stats></filestream>";
	assert_int_equal(ls_str("/Archive", stream, &c), 0);
	assert_int_equal(c.n, 6);
	assert_null(c.r[1].bad);
	assert_int_equal(c.r[1].size, 1);
	assert_true(c.r[1].completed);
	assert_string_equal(c.r[2].bad, "<size> above 1125899906842624 bytes");
	assert_false(c.r[2].completed);
	assert_string_equal(c.r[3].bad, "negative value in <size>");
	assert_string_equal(c.r[4].bad, "bad time in <modified>");
	assert_null(c.r[5].bad);
	assert_int_equal(c.r[5].size, 2);
	coll_free(&c);

	/* <stats> counts are the document's: refused, the stream fails */
	assert_int_equal(ls_str("/Archive", "<s><stats><folders>-1</folders><files>0</files>"
				"</stats></s>", &c), -EIO);
	coll_free(&c);
}

static int count_entry(void *ctx, const struct jfs_entry *e)
{
	(void)e;
	(*(size_t *)ctx)++;
	return 0;
}

/* Issue 14: listing limits (entries, bytes) are -EFBIG, kept across reset. */
static void test_limits(void **state)
{
	(void)state;
	static const char doc[] =
		"<folder name=\"d\"><folders><folder name=\"1\"/><folder name=\"2\"/>"
		"<folder name=\"3\"/></folders></folder>";
	struct jfs_xml *x;
	size_t n = 0;

	assert_int_equal(jfs_xml_new_list(count_entry, &n, &x), 0);
	jfs_xml_set_limits(x, 3, 0);                    /* exactly at the limit: fine */
	assert_int_equal(run(x, doc, strlen(doc), 5), 0);
	assert_int_equal(n, 3);
	jfs_xml_set_limits(x, 2, 0);
	for (int round = 0; round < 2; round++) {       /* the limit survives a reset */
		n = 0;
		assert_int_equal(jfs_xml_reset(x), 0);
		assert_int_equal(run(x, doc, strlen(doc), 7), -EFBIG);
		assert_int_equal(n, 2);
		assert_non_null(strstr(jfs_xml_errmsg(x), "more than 2 entries"));
		assert_int_equal(jfs_xml_finish(x), -EFBIG);    /* sticky */
	}
	/* bytes: the whole body counts, in any chunking */
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		jfs_xml_set_limits(x, 0, strlen(doc));
		assert_int_equal(jfs_xml_reset(x), 0);
		assert_int_equal(run(x, doc, strlen(doc), chunks[i]), 0);
		jfs_xml_set_limits(x, 0, strlen(doc) - 1);
		assert_int_equal(jfs_xml_reset(x), 0);
		assert_int_equal(run(x, doc, strlen(doc), chunks[i]), -EFBIG);
		assert_non_null(strstr(jfs_xml_errmsg(x), "bytes"));
	}
	jfs_xml_free(x);

	/* liststream: every delivered entry counts, implied folders too */
	static const char stream[] =
		"<s><file><path>/A/x</path><filename>f</filename></file>"
		"<file><path>/A/x</path><filename>g</filename></file>"
		"<stats><folders>1</folders><files>2</files></stats></s>";
	n = 0;
	assert_int_equal(jfs_xml_new_liststream("/A", count_entry, &n, &x), 0);
	jfs_xml_set_limits(x, 3, 0);
	assert_int_equal(run(x, stream, strlen(stream), 11), 0);
	n = 0;
	jfs_xml_set_limits(x, 2, 0);
	assert_int_equal(jfs_xml_reset(x), 0);
	assert_int_equal(run(x, stream, strlen(stream), 11), -EFBIG);
	assert_int_equal(n, 2);
	jfs_xml_free(x);
}

/* ---------------------------------------------------------------------- */
/* liststream                                                             */

static void test_liststream_c9(void **state)
{
	(void)state;
	struct coll c = { 0 };
	assert_int_equal(ls_str("/Archive", liststream_c9, &c), 0);
	assert_int_equal(c.n, 5);
	assert_true(c.r[0].is_dir);
	assert_string_equal(c.r[0].parent, "");
	assert_string_equal(c.r[0].name, "");          /* the listed folder itself */
	assert_false(c.r[1].is_dir);
	assert_string_equal(c.r[1].parent, "");
	assert_string_equal(c.r[1].name, "top.txt");
	assert_int_equal(c.r[1].size, 0);
	assert_true(c.r[1].completed);
	assert_string_equal(c.r[1].md5, "d41d8cd98f00b204e9800998ecf8427e");
	assert_int_equal(c.r[1].modified, rt("2024-03-04T08:00:00Z"));
	assert_true(c.r[2].is_dir);
	assert_string_equal(c.r[2].parent, "");
	assert_string_equal(c.r[2].name, "dir");
	assert_string_equal(c.r[3].parent, "dir");
	assert_string_equal(c.r[3].name, "ok.txt");
	assert_int_equal(c.r[3].size, 12);
	assert_int_equal(c.r[3].modified, rt("2024-03-04T08:05:00Z"));
	assert_int_equal(c.r[3].created, rt("2024-03-04T08:00:00Z"));
	assert_true(c.r[4].is_dir);
	assert_string_equal(c.r[4].parent, "dir");
	assert_string_equal(c.r[4].name, "empty");
	coll_free(&c);

	/* the prefix is matched ASCII case-insensitively */
	assert_int_equal(ls_str("/archive", liststream_c9, &c), 0);
	assert_int_equal(c.n, 5);
	coll_free(&c);
	/* a stream of another folder is refused */
	assert_int_equal(ls_str("/Archive/dir", liststream_c9, &c), -EIO);
	coll_free(&c);
	assert_int_equal(ls_str("/Arch", liststream_c9, &c), -EIO);
	coll_free(&c);
}

static void test_liststream_stats(void **state)
{
	(void)state;
	struct coll c = { 0 };
	char doc[4096];
	const char *body =
		"<filestream><folder><path>/Archive</path></folder>"
		"<file><path>/Archive</path><filename>a</filename><size>1</size></file>";

	/* mismatched counts */
	snprintf(doc, sizeof(doc), "%s<stats><folders>1</folders><files>2</files></stats></filestream>", body);
	assert_int_equal(ls_str("/Archive", doc, &c), -EIO);
	coll_free(&c);
	snprintf(doc, sizeof(doc), "%s<stats><folders>2</folders><files>1</files></stats></filestream>", body);
	assert_int_equal(ls_str("/Archive", doc, &c), -EIO);
	coll_free(&c);
	snprintf(doc, sizeof(doc), "%s<stats><folders>1</folders><files>1</files></stats></filestream>", body);
	assert_int_equal(ls_str("/Archive", doc, &c), 0);
	coll_free(&c);
	/* missing stats: a stream cut between elements */
	snprintf(doc, sizeof(doc), "%s</filestream>", body);
	assert_int_equal(ls_str("/Archive", doc, &c), -EIO);
	coll_free(&c);
	/* truncated anywhere: every proper prefix of a valid stream is -EIO */
	snprintf(doc, sizeof(doc), "%s<stats><folders>1</folders><files>1</files></stats></filestream>", body);
	for (size_t cut = 0; cut < strlen(doc); cut++) {
		struct coll t = { 0 };
		assert_int_equal(decode(M_LISTSTREAM, "/Archive", doc, cut, 5, &t), -EIO);
		coll_free(&t);
	}

	/* folders after files: a <file> whose parent was not yet listed counts
	 * that parent once; a later <folder> with the same path counts again. */
#define LATE(folders)                                                       \
	"<filestream><folder><path>/Archive</path></folder>"                \
	"<file><path>/Archive/a</path><filename>x</filename></file>"        \
	"<file><path>/Archive/a</path><filename>y</filename></file>"        \
	"<folder><path>/Archive/a</path></folder>"                          \
	"<stats><folders>" folders "</folders><files>2</files></stats></filestream>"
	snprintf(doc, sizeof(doc), "%s", LATE("3"));
	assert_int_equal(ls_str("/Archive", doc, &c), 0);
	assert_int_equal(c.n, 5);
	assert_true(c.r[1].is_dir);              /* the implied parent comes first */
	assert_string_equal(c.r[1].name, "a");
	assert_string_equal(c.r[2].name, "x");
	assert_string_equal(c.r[2].parent, "a");
	assert_string_equal(c.r[3].name, "y");
	assert_true(c.r[4].is_dir);
	assert_string_equal(c.r[4].name, "a");
	coll_free(&c);
	snprintf(doc, sizeof(doc), "%s", LATE("2"));
	assert_int_equal(ls_str("/Archive", doc, &c), -EIO);
	coll_free(&c);

	/* a file whose parent was listed earlier adds nothing; deep parents split */
	const char *deep =
		"<x><filestream><folder><path>/Archive/s</path></folder>"
		"<folder><path>/Archive/s/p q/r</path></folder>"
		"<file><path>/Archive/s/p q/r</path><filename> f </filename></file>"
		"<stats><folders>2</folders><files>1</files></stats></filestream></x>";
	assert_int_equal(ls_str("/Archive/s", deep, &c), 0);
	assert_int_equal(c.n, 3);
	assert_string_equal(c.r[1].parent, "p q");
	assert_string_equal(c.r[1].name, "r");
	assert_string_equal(c.r[2].parent, "p q/r");
	assert_string_equal(c.r[2].name, " f ");
	coll_free(&c);

	/* unclean or foreign paths, nameless files */
	static const char *const bad[] = {
		"<s><folder><path>/Other</path></folder><stats/></s>",
		"<s><folder><path>/Archive/</path></folder><stats/></s>",
		"<s><folder><path>/Archive//a</path></folder><stats/></s>",
		"<s><folder><path>/Archivex</path></folder><stats/></s>",
		"<s><folder></folder><stats/></s>",
		"<s><file><path>/Archive</path></file><stats/></s>",
		"<s><stats><folders>x</folders></stats></s>",
		"<s><stats><files>-1</files></stats></s>",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ls_str("/Archive", bad[i], &c), -EIO);
		coll_free(&c);
	}
	/* an empty stream with consistent stats is fine */
	assert_int_equal(ls_str("/Archive", "<s><stats><folders>0</folders><files>0</files></stats></s>", &c), 0);
	assert_int_equal(c.n, 0);
}

/* ---------------------------------------------------------------------- */
/* user, device, error                                                    */

struct devs {
	size_t n;
	char name[8][32], type[8][16];
	int64_t size[8];
};

static int collect_dev(void *ctx, const struct jfs_xml_device *d)
{
	struct devs *v = ctx;
	assert_true(v->n < 8);
	snprintf(v->name[v->n], 32, "%s", d->name);
	snprintf(v->type[v->n], 16, "%s", d->type);
	v->size[v->n++] = d->size;
	return 0;
}

static int collect_mp(void *ctx, const char *name, int64_t size)
{
	struct devs *v = ctx;
	assert_true(v->n < 8);
	snprintf(v->name[v->n], 32, "%s", name);
	v->size[v->n++] = size;
	return 0;
}

static void test_user(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct devs v = { 0 };
		struct jfs_xml *x;
		assert_int_equal(jfs_xml_new_user(collect_dev, &v, &x), 0);
		assert_int_equal(run(x, user_a1, strlen(user_a1), chunks[i]), 0);
		const struct jfs_xml_user *u = jfs_xml_user_info(x);
		assert_non_null(u);
		assert_int_equal(u->usage, 0);
		assert_int_equal(u->capacity, 5368709120LL);
		assert_string_equal(u->account_type, "free");
		assert_int_equal(v.n, 1);
		assert_string_equal(v.name[0], "Jotta");
		assert_string_equal(v.type[0], "JOTTA");
		assert_int_equal(v.size[0], 0);
		jfs_xml_free(x);
	}
	/* unlimited, as the emulator and B.3 write it */
	struct jfs_xml *x;
	const char *doc = "<user><username>u</username><account-type>unlimited</account-type>"
			  "<capacity>-1</capacity><usage>12345</usage><devices/></user>";
	assert_int_equal(jfs_xml_new_user(NULL, NULL, &x), 0);
	assert_int_equal(run(x, doc, strlen(doc), 3), 0);
	assert_int_equal(jfs_xml_user_info(x)->capacity, -1);
	assert_int_equal(jfs_xml_user_info(x)->usage, 12345);
	jfs_xml_free(x);
	/* wrong root, negative usage */
	assert_int_equal(jfs_xml_new_user(NULL, NULL, &x), 0);
	assert_int_equal(run(x, device_a2, strlen(device_a2), 100), -EIO);
	assert_null(jfs_xml_user_info(x));
	jfs_xml_free(x);
	doc = "<user><usage>-2</usage></user>";
	assert_int_equal(jfs_xml_new_user(NULL, NULL, &x), 0);
	assert_int_equal(run(x, doc, strlen(doc), 100), -EIO);
	jfs_xml_free(x);
}

static void test_device(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct devs v = { 0 };
		struct jfs_xml *x;
		assert_int_equal(jfs_xml_new_device(collect_mp, &v, &x), 0);
		assert_int_equal(run(x, device_a2, strlen(device_a2), chunks[i]), 0);
		const struct jfs_xml_device *d = jfs_xml_device_info(x);
		assert_non_null(d);
		assert_string_equal(d->name, "Jotta");
		assert_string_equal(d->type, "JOTTA");
		assert_int_equal(v.n, 3);
		assert_string_equal(v.name[0], "Archive");
		assert_string_equal(v.name[1], "Shared");
		assert_string_equal(v.name[2], "Sync");
		jfs_xml_free(x);

		memset(&v, 0, sizeof(v));
		assert_int_equal(jfs_xml_new_device(collect_mp, &v, &x), 0);
		assert_int_equal(run(x, device_laptop, strlen(device_laptop), chunks[i]), 0);
		d = jfs_xml_device_info(x);
		assert_string_equal(d->name, "laptop");
		assert_string_equal(d->type, "LAPTOP");
		assert_int_equal(d->size, 371951820971LL);
		assert_int_equal(v.n, 2);
		assert_string_equal(v.name[1], "Desktop");
		assert_int_equal(v.size[0], 372544055053LL);
		assert_int_equal(v.size[1], 581758);
		jfs_xml_free(x);

		memset(&v, 0, sizeof(v));
		assert_int_equal(jfs_xml_new_device(collect_mp, &v, &x), 0);
		assert_int_equal(run(x, device_live, strlen(device_live), chunks[i]), 0);
		d = jfs_xml_device_info(x);
		assert_string_equal(d->name, "Jotta");
		assert_string_equal(d->type, "");
		assert_int_equal(v.n, 3);
		assert_string_equal(v.name[2], "Trash");
		assert_int_equal(v.size[0], 0);  /* <size></size> */
		jfs_xml_free(x);
	}
	struct jfs_xml *x;
	const char *doc = "<device><name>d</name><mountPoints><mountPoint><size>1</size>"
			  "</mountPoint></mountPoints></device>";
	assert_int_equal(jfs_xml_new_device(NULL, NULL, &x), 0);
	assert_int_equal(run(x, doc, strlen(doc), 1), -EIO);   /* nameless mountpoint */
	jfs_xml_free(x);
}

/* An error without a message that names something: the one table
 * (net/http.h) decides from <code>, or from the HTTP status without one. */
static void test_error_uses_the_table(void **state)
{
	(void)state;
	for (long s = 0; s < 600; s++) {
		struct jfs_xml_error e = { .code = s };
		int want = http_status_errno_or(s, -EPROTO);
		if (jfs_xml_error_errno(s, NULL, -EPROTO) != want ||
		    jfs_xml_error_errno(500, &e, -EPROTO) != (s ? want : -EPROTO))
			fail_msg("status %ld: %d, want %d", s, jfs_xml_error_errno(s, NULL, -EPROTO),
				 want);
	}
}

static void test_error(void **state)
{
	(void)state;
	struct jfs_xml_error e;
	assert_int_equal(jfs_xml_parse_error(error_401, strlen(error_401), &e), 0);
	assert_int_equal(e.code, 401);
	assert_string_equal(e.message, "org.springframework.security.authentication."
			    "BadCredentialsException: Bad credentials");
	assert_string_equal(e.reason, "Unauthorized");
	assert_int_equal(jfs_xml_error_errno(401, &e, -EPROTO), -EACCES);

	assert_int_equal(jfs_xml_parse_error(error_404, strlen(error_404), &e), 0);
	assert_int_equal(e.code, 404);
	assert_string_equal(e.reason, "Not Found");
	assert_int_equal(jfs_xml_error_errno(404, &e, -EPROTO), -ENOENT);
	/* rclone trusts <code>, not the HTTP status */
	assert_int_equal(jfs_xml_error_errno(500, &e, -EPROTO), -ENOENT);

	assert_int_equal(jfs_xml_parse_error(error_255, strlen(error_255), &e), 0);
	assert_int_equal(jfs_xml_error_errno(400, &e, -EPROTO), -ENAMETOOLONG);

	/* non-XML bodies: zeroed, fall back to the HTTP status */
	const char *plain = "400 Bad request";
	assert_int_equal(jfs_xml_parse_error(plain, strlen(plain), &e), -EIO);
	assert_int_equal(e.code, 0);
	assert_string_equal(e.message, "");
	assert_int_equal(jfs_xml_error_errno(400, &e, -EPROTO), -EINVAL);
	assert_int_equal(jfs_xml_error_errno(404, NULL, -EPROTO), -ENOENT);
	assert_int_equal(jfs_xml_error_errno(507, NULL, -EPROTO), -ENOSPC);
	assert_int_equal(jfs_xml_error_errno(403, NULL, -EPROTO), -EACCES);
	assert_int_equal(jfs_xml_error_errno(500, NULL, -EPROTO), -EPROTO);
	assert_int_equal(jfs_xml_parse_error("", 0, &e), -EIO);
	assert_int_equal(jfs_xml_parse_error("<html><body>502</body></html>", 29, &e), -EIO);
	assert_int_equal(jfs_xml_parse_error("<error><code>4o4</code></error>", 31, &e), -EIO);
	assert_int_equal(e.code, 0);
	/* a message mentioning a missing path maps to -ENOENT whatever the code */
	const char *mv = "<error><code>500</code><message>no.jotta.backup.errors.NoSuchFileException: "
			 "Source file /u/Jotta/Archive/x does not exist</message></error>";
	assert_int_equal(jfs_xml_parse_error(mv, strlen(mv), &e), 0);
	assert_int_equal(jfs_xml_error_errno(500, &e, -EPROTO), -ENOENT);
	/* a long message is cut at a character boundary */
	char big[3000];
	strcpy(big, "<error><code>400</code><message>");
	size_t n = strlen(big);
	for (int i = 0; i < 700; i++, n += 2)
		memcpy(big + n, "\xc3\xa6", 2);
	strcpy(big + n, "</message></error>");
	assert_int_equal(jfs_xml_parse_error(big, strlen(big), &e), 0);
	assert_true(strlen(e.message) < sizeof(e.message));
	assert_int_equal(strlen(e.message) % 2, 0);
}

/* ---------------------------------------------------------------------- */
/* Hostile input                                                          */

static int list_buf(const char *doc, size_t len)
{
	struct coll c = { 0 };
	int rc = decode(M_LIST, NULL, doc, len, len ? len : 1, &c);
	coll_free(&c);
	/* and again in pieces: same verdict */
	int rc2 = decode(M_LIST, NULL, doc, len, 4093, &c);
	coll_free(&c);
	assert_int_equal(rc, rc2);
	return rc;
}

static char *repeat(const char *head, const char *unit, size_t times, const char *tail,
		    size_t *len)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
	*len = hl + ul * times + tl;
	char *s = malloc(*len + 1);
	assert_non_null(s);
	memcpy(s, head, hl);
	for (size_t i = 0; i < times; i++)
		memcpy(s + hl + i * ul, unit, ul);
	memcpy(s + hl + ul * times, tail, tl + 1);
	return s;
}

static void test_hostile(void **state)
{
	(void)state;
	static const char billion_laughs[] =
		"<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n"
		" <!ENTITY lol \"lol\">\n"
		" <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
		" <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
		" <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
		" <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
		" <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
		" <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
		" <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
		" <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
		" <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
		"]>\n<folder name=\"&lol9;\"/>\n";
	assert_int_equal(list_buf(billion_laughs, strlen(billion_laughs)), -EIO);
	static const char xxe[] =
		"<?xml version=\"1.0\"?><!DOCTYPE f [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
		"<folder name=\"&x;\"/>";
	assert_int_equal(list_buf(xxe, strlen(xxe)), -EIO);
	static const char dtd_only[] = "<!DOCTYPE folder><folder/>";
	assert_int_equal(list_buf(dtd_only, strlen(dtd_only)), -EIO);

	size_t len;
	char *s;
	/* deep nesting */
	s = repeat("<folder>", "<a>", 100000, "", &len);
	assert_int_equal(list_buf(s, len), -EIO);
	free(s);
	s = repeat("<folder>", "<a>", JFS_XML_MAX_DEPTH - 1, "", &len);
	assert_int_equal(list_buf(s, len), -EIO);      /* within the limit, but truncated */
	free(s);
	/* 10 MB text node: in a name, in an ignored element, in an attribute */
	s = repeat("<folder><files><file name=\"f\"><currentRevision><mime>", "x", 10 << 20,
		   "</mime></currentRevision></file></files></folder>", &len);
	assert_int_equal(list_buf(s, len), -EIO);
	free(s);
	s = repeat("<folder><ignored>", "y", 10 << 20, "</ignored></folder>", &len);
	assert_int_equal(list_buf(s, len), -EIO);
	free(s);
	s = repeat("<folder><folders><folder name=\"", "z", 10 << 20, "\"/></folders></folder>", &len);
	assert_int_equal(list_buf(s, len), -EIO);
	free(s);
	/* just under the text limit is fine */
	s = repeat("<folder><folders><folder name=\"", "z", JFS_XML_MAX_TEXT, "\"/></folders></folder>", &len);
	assert_int_equal(list_buf(s, len), 0);
	free(s);
	/* a 10 MB comment or processing instruction (expat would buffer it whole) */
	s = repeat("<folder><!--", "c", 10 << 20, "--></folder>", &len);
	assert_int_equal(list_buf(s, len), -EIO);
	free(s);
	s = repeat("<folder><?pi ", "p", 10 << 20, "?></folder>", &len);
	assert_int_equal(list_buf(s, len), -EIO);
	free(s);
	/* too many attributes */
	s = repeat("<folder", " a=\"1\" b=\"2\"", 1, "/>", &len);
	assert_int_equal(list_buf(s, len), 0);
	free(s);
	char attrs[8192];
	size_t n = (size_t)snprintf(attrs, sizeof(attrs), "<folder");
	for (int i = 0; i < 100; i++)
		n += (size_t)snprintf(attrs + n, sizeof(attrs) - n, " a%d=\"%d\"", i, i);
	snprintf(attrs + n, sizeof(attrs) - n, "/>");
	assert_int_equal(list_buf(attrs, strlen(attrs)), -EIO);
	/* many entries with huge number fields */
	s = repeat("<folder><files><file name=\"f\"><currentRevision><size>", "9", 100000,
		   "</size></currentRevision></file></files></folder>", &len);
	assert_int_equal(list_buf(s, len), -EIO);
	free(s);

	/* bytes that XML forbids, and encoding errors */
	static const struct {
		const char *doc;
		size_t len;
	} bad[] = {
		{ "<folder><folders><folder name=\"a\xff" "b\"/></folders></folder>", 0 },
		{ "<folder><folders><folder name=\"a\xc3\"/></folders></folder>", 0 },
		{ "<folder><folders><folder name=\"\xed\xa0\x80\"/></folders></folder>", 0 }, /* surrogate */
		{ "<folder><folders><folder name=\"\xc0\xaf\"/></folders></folder>", 0 },     /* overlong */
		{ "<folder><folders><folder name=\"a\0b\"/></folders></folder>", 52 },
		{ "<folder><folders><folder name=\"a\x01" "b\"/></folders></folder>", 0 },
		{ "<folder><folders><folder name=\"a&#1;b\"/></folders></folder>", 0 },
		{ "<folder><folders><folder name=\"a&#0;b\"/></folders></folder>", 0 },
		{ "<folder><folders><folder name=\"a&nbsp;b\"/></folders></folder>", 0 },
		{ "<folder>\x1b</folder>", 0 },
		{ "<folder></folders>", 0 },
		{ "<folder><folders></folder></folders>", 0 },
		{ "<folder/><folder/>", 0 },
		{ "<folder/>junk", 0 },
		{ "junk", 0 },
		{ "<folder", 0 },
		{ "<folder><folders><folder name=\"x\"/></folders>", 0 },        /* truncated */
		{ "", 0 },
		{ "   ", 0 },
		{ "<folder name=\"a\" name=\"b\"/>", 0 },
		{ "<?xml version=\"1.0\" encoding=\"x-unknown\"?><folder/>", 0 },
		{ "<html><body>Bad Gateway</body></html>", 0 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t l = bad[i].len ? bad[i].len : strlen(bad[i].doc);
		assert_int_equal(list_buf(bad[i].doc, l), -EIO);
	}
	/* other encodings expat knows are converted to UTF-8 */
	static const char latin1[] = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>"
				     "<folder><folders><folder name=\"\xe6\"/></folders></folder>";
	struct coll c = { 0 };
	assert_int_equal(list_str(latin1, &c), 0);
	assert_string_equal(c.r[0].name, "\xc3\xa6");
	coll_free(&c);
}

/* Feeding after an error, finishing twice, reset. */
static void test_lifecycle(void **state)
{
	(void)state;
	struct coll c = { 0 };
	struct jfs_xml *x;
	assert_int_equal(jfs_xml_new_list(collect, &c, &x), 0);
	assert_int_equal(jfs_xml_feed(x, "<folder><a>\xff", 12), -EIO);
	assert_int_equal(jfs_xml_feed(x, "</a></folder>", 13), -EIO);   /* sticky */
	assert_int_equal(jfs_xml_finish(x), -EIO);
	assert_true(strstr(jfs_xml_errmsg(x), "line 1") != NULL);
	/* reset starts over */
	assert_int_equal(jfs_xml_reset(x), 0);
	assert_string_equal(jfs_xml_errmsg(x), "");
	assert_int_equal(jfs_xml_feed(x, folder_a4, 100), 0);
	assert_int_equal(jfs_xml_reset(x), 0);
	coll_free(&c);
	assert_int_equal(run(x, folder_a4, strlen(folder_a4), 9), 0);
	assert_int_equal(c.n, 2);
	assert_int_equal(jfs_xml_count(x), 2);
	assert_int_equal(jfs_xml_root(x), JFS_XML_ROOT_FOLDER);
	assert_int_equal(jfs_xml_finish(x), 0);                         /* idempotent */
	assert_int_equal(jfs_xml_feed(x, "x", 1), -EINVAL);             /* after finish */
	jfs_xml_free(x);
	coll_free(&c);
	jfs_xml_free(NULL);
}

/* ---------------------------------------------------------------------- */
/* Bounded memory on big documents                                        */

struct counter {
	uint64_t files, folders;
	uint64_t bytes;
};

static int count_cb(void *ctx, const struct jfs_entry *e)
{
	struct counter *k = ctx;
	if (e->is_dir)
		k->folders++;
	else
		k->files++;
	k->bytes += e->size;
	return 0;
}

/* Stream a synthetic liststream of @nfolders x @per files through a decoder in
 * ~4 KiB pieces, as curl would deliver it; returns the decoder's peak memory. */
static size_t big_liststream(unsigned nfolders, unsigned per, struct counter *k)
{
	struct jfs_xml *x;
	assert_int_equal(jfs_xml_new_liststream("/Archive/big", count_cb, k, &x), 0);
	char buf[8192];
	size_t len = (size_t)snprintf(buf, sizeof(buf),
				      "<?xml version=\"1.0\" encoding=\"UTF-8\"?><filestream>"
				      "<folder><path>/Archive/big</path></folder>");
	for (unsigned d = 0; d < nfolders; d++) {
		len += (size_t)snprintf(buf + len, sizeof(buf) - len,
					"<folder><path>/Archive/big/dir %u</path></folder>", d);
		for (unsigned f = 0; f < per; f++) {
			len += (size_t)snprintf(buf + len, sizeof(buf) - len,
				"<file><path>/Archive/big/dir %u</path><filename>file-%u.bin</filename>"
				"<md5>6f5902ac237024bdd0c176cb93063dc4</md5><size>%u</size>"
				"<modified>2024-03-04T08:00:00.000Z</modified>"
				"<created>2024-03-04T08:00:00.000Z</created></file>", d, f, f);
			if (len > 4096) {
				assert_int_equal(jfs_xml_feed(x, buf, len), 0);
				len = 0;
			}
		}
	}
	len += (size_t)snprintf(buf + len, sizeof(buf) - len,
				"<stats><folders>%u</folders><files>%llu</files></stats></filestream>",
				nfolders + 1, (unsigned long long)nfolders * per);
	assert_int_equal(jfs_xml_feed(x, buf, len), 0);
	assert_int_equal(jfs_xml_finish(x), 0);
	assert_int_equal(jfs_xml_count(x), (uint64_t)nfolders * per + nfolders + 1);
	size_t peak = jfs_xml_mem_peak(x);
	jfs_xml_free(x);
	return peak;
}

static void test_big_liststream(void **state)
{
	(void)state;
	struct counter small = { 0 }, big = { 0 }, wide = { 0 };
	size_t peak_small = big_liststream(10, 100, &small);
	size_t peak_big = big_liststream(100, 1000, &big);          /* 100k files */
	assert_int_equal(big.files, 100000);
	assert_int_equal(big.folders, 101);
	assert_int_equal(big.bytes, 100ULL * (999 * 1000 / 2));
	/* 100 times the entries, not one byte more of state */
	assert_int_equal(peak_big, peak_small);
	assert_true(peak_big < 16 * 1024);
	/* 100k folders: only the folder-hash set grows, 16 bytes a folder at most */
	size_t peak_wide = big_liststream(100000, 1, &wide);
	assert_int_equal(wide.folders, 100001);
	assert_true(peak_wide < peak_small + 100001 * 16 * 2);
	printf("liststream peak memory: 1k files %zu B, 100k files %zu B, 100k folders %zu B\n",
	       peak_small, peak_big, peak_wide);
}

static size_t big_listing(unsigned nfiles, struct counter *k)
{
	struct jfs_xml *x;
	assert_int_equal(jfs_xml_new_list(count_cb, k, &x), 0);
	char buf[8192];
	size_t len = (size_t)snprintf(buf, sizeof(buf), "<mountPoint><name>Archive</name><files>");
	for (unsigned f = 0; f < nfiles; f++) {
		len += (size_t)snprintf(buf + len, sizeof(buf) - len,
			"<file name=\"file number %u with a longish name.txt\" uuid=\"u\">"
			"<currentRevision><number>%u</number><state>COMPLETED</state>"
			"<created>2024-03-04-T08:00:00Z</created><modified>2024-03-04-T08:05:00Z</modified>"
			"<mime>text/plain</mime><size>%u</size><md5>6f5902ac237024bdd0c176cb93063dc4</md5>"
			"<updated>2024-03-04-T08:09:10Z</updated></currentRevision></file>", f, f + 1, f);
		if (len > 4096) {
			assert_int_equal(jfs_xml_feed(x, buf, len), 0);
			len = 0;
		}
	}
	len += (size_t)snprintf(buf + len, sizeof(buf) - len, "</files></mountPoint>");
	assert_int_equal(jfs_xml_feed(x, buf, len), 0);
	assert_int_equal(jfs_xml_finish(x), 0);
	size_t peak = jfs_xml_mem_peak(x);
	jfs_xml_free(x);
	return peak;
}

static void test_big_listing(void **state)
{
	(void)state;
	struct counter a = { 0 }, b = { 0 };
	size_t peak_a = big_listing(1000, &a);
	size_t peak_b = big_listing(100000, &b);
	assert_int_equal(b.files, 100000);
	assert_int_equal(peak_a, peak_b);
	assert_true(peak_b < 16 * 1024);
	printf("listing peak memory: 1k files %zu B, 100k files %zu B\n", peak_a, peak_b);
}

UNIT_TEST_PROGRAM(NULL, NULL,
	cmocka_unit_test(test_folder_a4),
	cmocka_unit_test(test_trash_view),
	cmocka_unit_test(test_folder_c7),
	cmocka_unit_test(test_mountpoint),
	cmocka_unit_test(test_list_root_kinds),
	cmocka_unit_test(test_names_verbatim),
	cmocka_unit_test(test_numbers),
	cmocka_unit_test(test_values_malformed),
	cmocka_unit_test(test_bad_entries),
	cmocka_unit_test(test_limits),
	cmocka_unit_test(test_callback_error),
	cmocka_unit_test(test_stat),
	cmocka_unit_test(test_liststream_c9),
	cmocka_unit_test(test_liststream_stats),
	cmocka_unit_test(test_user),
	cmocka_unit_test(test_device),
	cmocka_unit_test(test_error),
	cmocka_unit_test(test_error_uses_the_table),
	cmocka_unit_test(test_hostile),
	cmocka_unit_test(test_lifecycle),
	cmocka_unit_test(test_big_liststream),
	cmocka_unit_test(test_big_listing),
)
