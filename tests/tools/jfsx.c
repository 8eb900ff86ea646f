/*
 * tests/tools/jfsx.c — an fsx-style model checker for a mounted jottafs.
 *
 * Runs a seeded, reproducible sequence of random operations on FILES files in
 * DIR and checks every result against an in-memory model of their content:
 * writes at random offsets (holes included), reads, ftruncate grow/shrink,
 * O_APPEND writes, close/reopen (sometimes with O_TRUNC), fstat/stat sizes,
 * whole-file comparisons, fsync, and optionally mmap reads/writes (-M).
 *
 *   jfsx [-s SEED] [-N OPS] [-f FILES] [-m MAXLEN] [-w MAXIO] [-y PERMILLE]
 *        [-c N] [-P OP -p PAUSEFILE] [-o MODELDIR] [-l LOGFILE] [-M] DIR
 *
 * -c N: a file is closed after every N operations on it (the next operation
 * reopens it), so that each close starts an upload while earlier uploads of
 * the same file may still be in flight: the lone-writer pattern of issue 7.
 *
 * -P/-p: after op OP every file is closed, PAUSEFILE.ready is created and the
 * program waits (up to 15 minutes) until PAUSEFILE exists, e.g. while a test
 * unmounts and remounts DIR; then every file is compared with the model
 * before the run goes on.  -o: at the end the model of each file is written
 * to MODELDIR/<name>, so that a test can compare the server's content with it.
 *
 * The seed is always printed.  On the first mismatch or failed system call
 * the program prints what differed, the last operations (the full sequence is
 * in LOGFILE when given) and a command line that replays the run, and exits 1
 * (mismatch) or 2 (system call failed).  Exit 0: no mismatch.
 *
 * Build: cc -O2 -Wall -o jfsx tests/tools/jfsx.c   (no dependencies)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum op_kind {
	OP_WRITE, OP_READ, OP_TRUNCATE, OP_APPEND, OP_REOPEN, OP_CLOSE,
	OP_COMPARE, OP_STAT, OP_FSYNC, OP_MAPREAD, OP_MAPWRITE, OP_KINDS
};

static const char *const op_names[OP_KINDS] = {
	"write", "read", "truncate", "append", "reopen", "close",
	"compare", "stat", "fsync", "mapread", "mapwrite",
};

/* One file under test and its model. */
struct tfile {
	char path[4096];
	char name[64];
	unsigned char *model;   /* maxlen bytes; [0, size) is the content */
	size_t size;
	int fd;                 /* -1 when closed */
	long ops_open;          /* operations on it since it was last opened */
};

/* The run's parameters and state. */
struct run {
	uint64_t seed, rng;
	long ops, nfiles, pause_at;
	size_t maxlen, maxio;
	int fsync_permille;
	long close_every;       /* -c: close a file after this many ops on it; 0 never */
	bool mmap_ops;
	const char *dir, *pausefile, *modeldir, *logpath;
	FILE *log;
	struct tfile *f;
	unsigned char *buf, *buf2;
	long opno;
	long counts[OP_KINDS];
	char recent[64][240];   /* ring of the last operations, for failure reports */
	unsigned nrecent;
	char **argv;
	int argc;
};

/* xorshift64*: small, fast and the same everywhere. */
static uint64_t rnd(struct run *r)
{
	r->rng ^= r->rng >> 12;
	r->rng ^= r->rng << 25;
	r->rng ^= r->rng >> 27;
	return r->rng * 0x2545F4914F6CDD1DULL;
}

/* Uniform-ish in [0, n) (n > 0). */
static size_t below(struct run *r, size_t n)
{
	return (size_t)(rnd(r) % n);
}

/* Record an operation in the ring and in the log file. */
static void note(struct run *r, const char *fmt, ...)
{
	char line[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	snprintf(r->recent[r->nrecent % 64], sizeof(r->recent[0]), "%ld %s", r->opno, line);
	r->nrecent++;
	if (r->log) {
		/* wall-clock time (UTC), to line the log up with the daemon's */
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		fprintf(r->log, "%02d:%02d:%02d.%03ld %ld %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
			ts.tv_nsec / 1000000, r->opno, line);
		fflush(r->log);
	}
}

/* Print the last operations and how to replay, then exit with @code. */
static void fail(struct run *r, int code, const char *fmt, ...)
{
	va_list ap;
	unsigned i, first;
	int k;

	fprintf(stderr, "jfsx: seed %" PRIu64 ": op %ld: ", r->seed, r->opno);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\njfsx: the last operations (op number, kind, file, arguments):\n");
	first = r->nrecent > 64 ? r->nrecent - 64 : 0;
	for (i = first; i < r->nrecent; i++)
		fprintf(stderr, "  %s\n", r->recent[i % 64]);
	if (r->logpath)
		fprintf(stderr, "jfsx: the whole sequence is in %s\n", r->logpath);
	fprintf(stderr, "jfsx: replay with:");
	for (k = 0; k < r->argc; k++)
		fprintf(stderr, " %s", r->argv[k]);
	fprintf(stderr, "  (with -s %" PRIu64 ")\n", r->seed);
	exit(code);
}

static void sysfail(struct run *r, const char *what, struct tfile *t)
{
	int e = errno;

	fail(r, 2, "%s '%s' failed: %s (errno %d)", what, t ? t->path : "", strerror(e), e);
}

static void fill_random(struct run *r, unsigned char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint64_t v = rnd(r);
		for (int b = 0; b < 8 && i < n; b++, i++)
			p[i] = (unsigned char)(v >> (8 * b));
	}
}

/* Compare @got (n bytes read at @off) with the model; fail on the first difference. */
static void check_bytes(struct run *r, struct tfile *t, size_t off, const unsigned char *got,
			size_t n, const char *how)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char want = t->model[off + i];
		if (got[i] != want) {
			size_t j = i, bad = 0;
			while (j < n && bad < 1000000) {
				if (got[j] != t->model[off + j])
					bad++;
				j++;
			}
			fail(r, 1, "MISMATCH in %s of '%s': at offset %zu expected 0x%02x got 0x%02x "
			     "(%s of %zu bytes at %zu; model size %zu; %zu of the following bytes differ)",
			     how, t->name, off + i, want, got[i], how, n, off, t->size, bad);
		}
	}
}

static void do_open(struct run *r, struct tfile *t, int extra)
{
	t->fd = open(t->path, O_RDWR | extra);
	if (t->fd < 0)
		sysfail(r, "open", t);
	t->ops_open = 0;
	if (extra & O_TRUNC)
		t->size = 0;
}

static void ensure_open(struct run *r, struct tfile *t)
{
	if (t->fd < 0)
		do_open(r, t, 0);
}

static void do_close(struct run *r, struct tfile *t)
{
	if (t->fd >= 0 && close(t->fd) != 0)
		sysfail(r, "close", t);
	t->fd = -1;
}

/* Extend the model to @newsize with zeros (holes read as zeros). */
static void model_grow(struct tfile *t, size_t newsize)
{
	if (newsize > t->size)
		memset(t->model + t->size, 0, newsize - t->size);
	t->size = newsize;
}

static void check_size(struct run *r, struct tfile *t, const char *how)
{
	struct stat st;

	if (t->fd >= 0) {
		if (fstat(t->fd, &st) != 0)
			sysfail(r, "fstat", t);
		if ((uint64_t)st.st_size != t->size)
			fail(r, 1, "MISMATCH: fstat (%s) of '%s' gives size %lld, model %zu", how,
			     t->name, (long long)st.st_size, t->size);
	}
	if (stat(t->path, &st) != 0)
		sysfail(r, "stat", t);
	if ((uint64_t)st.st_size != t->size)
		fail(r, 1, "MISMATCH: stat (%s) of '%s' gives size %lld, model %zu", how, t->name,
		     (long long)st.st_size, t->size);
}

/* Read the whole file through a fresh descriptor and compare it with the model. */
static void compare_all(struct run *r, struct tfile *t, const char *how)
{
	int fd = open(t->path, O_RDONLY);
	size_t got = 0;

	if (fd < 0)
		sysfail(r, "open for compare", t);
	for (;;) {
		ssize_t n = read(fd, r->buf + got, r->maxlen + 1 - got);
		if (n < 0)
			sysfail(r, "read for compare", t);
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > r->maxlen)
			break;
	}
	close(fd);
	if (got != t->size)
		fail(r, 1, "MISMATCH in %s of '%s': read %zu bytes, model size %zu", how, t->name,
		     got, t->size);
	check_bytes(r, t, 0, r->buf, got, how);
	check_size(r, t, how);
}

/* Clamp a drawn write range to the files' maximum length and fill r->buf
 * with that many random bytes to write. */
static void new_bytes(struct run *r, size_t *off, size_t *len)
{
	if (*off + *len > r->maxlen)
		*len = r->maxlen - *off;
	if (*len == 0)
		*len = 1, *off = r->maxlen - 1;
	fill_random(r, r->buf, *len);
}

static void op_write(struct run *r, struct tfile *t)
{
	size_t len = 1 + below(r, r->maxio);
	size_t off = below(r, r->maxlen);
	ssize_t n;

	new_bytes(r, &off, &len);
	note(r, "write %s off %zu len %zu (size %zu)", t->name, off, len, t->size);
	ensure_open(r, t);
	n = pwrite(t->fd, r->buf, len, (off_t)off);
	if (n < 0)
		sysfail(r, "pwrite", t);
	if ((size_t)n != len)
		fail(r, 2, "short pwrite on '%s': %zd of %zu", t->name, n, len);
	if (off > t->size)
		model_grow(t, off);
	memcpy(t->model + off, r->buf, len);
	if (off + len > t->size)
		t->size = off + len;
}

static void op_read(struct run *r, struct tfile *t)
{
	size_t len = 1 + below(r, r->maxio);
	size_t off = below(r, t->size + 4096);
	size_t want = off >= t->size ? 0 : (off + len > t->size ? t->size - off : len);
	size_t got = 0;

	note(r, "read %s off %zu len %zu (size %zu)", t->name, off, len, t->size);
	ensure_open(r, t);
	while (got < len) {
		ssize_t n = pread(t->fd, r->buf + got, len - got, (off_t)(off + got));
		if (n < 0)
			sysfail(r, "pread", t);
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got != want)
		fail(r, 1, "MISMATCH: pread of '%s' at %zu len %zu returned %zu bytes, expected %zu "
		     "(model size %zu)", t->name, off, len, got, want, t->size);
	check_bytes(r, t, off, r->buf, got, "pread");
}

static void op_truncate(struct run *r, struct tfile *t)
{
	size_t ns = below(r, r->maxlen + 1);

	/* a third of the truncations are to small sizes, to exercise shrink-then-grow */
	if (below(r, 3) == 0)
		ns = below(r, 4096);
	note(r, "truncate %s from %zu to %zu", t->name, t->size, ns);
	ensure_open(r, t);
	if (ftruncate(t->fd, (off_t)ns) != 0)
		sysfail(r, "ftruncate", t);
	model_grow(t, ns);
}

static void op_append(struct run *r, struct tfile *t)
{
	size_t len = 1 + below(r, r->maxio);
	int fd;
	ssize_t n;

	if (t->size + len > r->maxlen) {
		len = r->maxlen - t->size;
		if (len == 0) {
			note(r, "append %s skipped (full)", t->name);
			return;
		}
	}
	fill_random(r, r->buf, len);
	note(r, "append %s len %zu (size %zu)", t->name, len, t->size);
	fd = open(t->path, O_WRONLY | O_APPEND);
	if (fd < 0)
		sysfail(r, "open O_APPEND", t);
	n = write(fd, r->buf, len);
	if (n < 0)
		sysfail(r, "write O_APPEND", t);
	if ((size_t)n != len)
		fail(r, 2, "short append to '%s': %zd of %zu", t->name, n, len);
	if (close(fd) != 0)
		sysfail(r, "close after append", t);
	memcpy(t->model + t->size, r->buf, len);
	t->size += len;
}

static void op_reopen(struct run *r, struct tfile *t)
{
	bool trunc = below(r, 4) == 0;

	note(r, "reopen %s%s (size %zu)", t->name, trunc ? " O_TRUNC" : "", t->size);
	do_close(r, t);
	do_open(r, t, trunc ? O_TRUNC : 0);
}

static void op_mapread(struct run *r, struct tfile *t)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t off, len, pgoff;
	unsigned char *p;

	if (t->size == 0) {
		note(r, "mapread %s skipped (empty)", t->name);
		return;
	}
	off = below(r, t->size);
	len = 1 + below(r, r->maxio);
	if (off + len > t->size)
		len = t->size - off;
	note(r, "mapread %s off %zu len %zu (size %zu)", t->name, off, len, t->size);
	ensure_open(r, t);
	pgoff = off % pg;
	p = mmap(NULL, len + pgoff, PROT_READ, MAP_SHARED, t->fd, (off_t)(off - pgoff));
	if (p == MAP_FAILED)
		sysfail(r, "mmap", t);
	check_bytes(r, t, off, p + pgoff, len, "mapread");
	munmap(p, len + pgoff);
}

static void op_mapwrite(struct run *r, struct tfile *t)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t off = below(r, r->maxlen), len = 1 + below(r, r->maxio), pgoff;
	unsigned char *p;

	new_bytes(r, &off, &len);
	note(r, "mapwrite %s off %zu len %zu (size %zu)", t->name, off, len, t->size);
	ensure_open(r, t);
	if (off + len > t->size) {
		if (ftruncate(t->fd, (off_t)(off + len)) != 0)
			sysfail(r, "ftruncate before mapwrite", t);
		model_grow(t, off + len);
	}
	pgoff = off % pg;
	p = mmap(NULL, len + pgoff, PROT_READ | PROT_WRITE, MAP_SHARED, t->fd, (off_t)(off - pgoff));
	if (p == MAP_FAILED)
		sysfail(r, "mmap for write", t);
	memcpy(p + pgoff, r->buf, len);
	if (msync(p, len + pgoff, MS_SYNC) != 0)
		sysfail(r, "msync", t);
	munmap(p, len + pgoff);
	memcpy(t->model + off, r->buf, len);
}

/* Pick an operation kind by weight. */
static enum op_kind pick(struct run *r)
{
	static const int w[OP_KINDS] = { 30, 20, 8, 8, 6, 3, 4, 5, 0, 0, 0 };
	int weights[OP_KINDS], total = 0, x, k;

	memcpy(weights, w, sizeof(w));
	if (r->mmap_ops) {
		weights[OP_MAPREAD] = 4;
		weights[OP_MAPWRITE] = 4;
	}
	for (k = 0; k < OP_KINDS; k++)
		total += weights[k];
	if ((int)below(r, 1000) < r->fsync_permille)
		return OP_FSYNC;
	x = (int)below(r, (size_t)total);
	for (k = 0; k < OP_KINDS; k++) {
		if (x < weights[k])
			return (enum op_kind)k;
		x -= weights[k];
	}
	return OP_READ;
}

static void close_all(struct run *r)
{
	for (long i = 0; i < r->nfiles; i++)
		do_close(r, &r->f[i]);
}

static void verify_all(struct run *r, const char *how)
{
	for (long i = 0; i < r->nfiles; i++) {
		note(r, "compare %s (%s)", r->f[i].name, how);
		compare_all(r, &r->f[i], how);
	}
}

/* Close everything, announce the pause and wait for the go-ahead file. */
static void pause_here(struct run *r)
{
	char ready[4200];
	struct stat st;
	int fd;

	close_all(r);
	snprintf(ready, sizeof(ready), "%s.ready", r->pausefile);
	fd = open(ready, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		sysfail(r, "create pause marker", NULL);
	close(fd);
	printf("jfsx: paused after op %ld; waiting for %s\n", r->opno, r->pausefile);
	fflush(stdout);
	for (int i = 0; i < 9000; i++) {
		if (stat(r->pausefile, &st) == 0) {
			note(r, "resume after pause");
			verify_all(r, "compare after pause");
			return;
		}
		usleep(100000);
	}
	fail(r, 2, "gave up waiting for %s", r->pausefile);
}

static void write_model(struct run *r)
{
	char p[8192];

	for (long i = 0; i < r->nfiles; i++) {
		struct tfile *t = &r->f[i];
		FILE *fp;

		snprintf(p, sizeof(p), "%s/%s", r->modeldir, t->name);
		fp = fopen(p, "wb");
		if (!fp || fwrite(t->model, 1, t->size, fp) != t->size || fclose(fp) != 0) {
			fprintf(stderr, "jfsx: cannot write the model to '%s': %s\n", p,
				strerror(errno));
			exit(2);
		}
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: jfsx [-s SEED] [-N OPS] [-f FILES] [-m MAXLEN] [-w MAXIO] "
		"[-y FSYNC_PERMILLE] [-c N] [-P OP -p PAUSEFILE] [-o MODELDIR] [-l LOGFILE] [-M] DIR\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct run r = { .ops = 10000, .nfiles = 20, .maxlen = 256 * 1024, .maxio = 64 * 1024,
			 .fsync_permille = 5, .pause_at = -1, .argv = argv, .argc = argc };
	struct timespec ts;
	bool seeded = false;
	int c;

	clock_gettime(CLOCK_REALTIME, &ts);
	while ((c = getopt(argc, argv, "s:N:f:m:w:y:c:P:p:o:l:M")) != -1) {
		switch (c) {
		case 's': r.seed = strtoull(optarg, NULL, 0); seeded = true; break;
		case 'N': r.ops = strtol(optarg, NULL, 0); break;
		case 'f': r.nfiles = strtol(optarg, NULL, 0); break;
		case 'm': r.maxlen = strtoull(optarg, NULL, 0); break;
		case 'w': r.maxio = strtoull(optarg, NULL, 0); break;
		case 'y': r.fsync_permille = atoi(optarg); break;
		case 'c': r.close_every = strtol(optarg, NULL, 0); break;
		case 'P': r.pause_at = strtol(optarg, NULL, 0); break;
		case 'p': r.pausefile = optarg; break;
		case 'o': r.modeldir = optarg; break;
		case 'l': r.logpath = optarg; break;
		case 'M': r.mmap_ops = true; break;
		default: usage();
		}
	}
	if (optind + 1 != argc || r.nfiles < 1 || r.nfiles > 1000 || r.maxlen < 2 ||
	    r.maxio < 1 || r.ops < 0 || r.close_every < 0 || (r.pause_at >= 0 && !r.pausefile))
		usage();
	r.dir = argv[optind];
	if (!seeded)
		r.seed = (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid();
	r.rng = r.seed * 0x9E3779B97F4A7C15ULL + 1;
	if (r.rng == 0)
		r.rng = 1;
	printf("jfsx: seed %" PRIu64 ", %ld ops on %ld files (max %zu bytes, io up to %zu%s) in %s\n",
	       r.seed, r.ops, r.nfiles, r.maxlen, r.maxio,
	       r.close_every ? ", closed every few ops" : "", r.dir);
	fflush(stdout);
	if (r.logpath) {
		r.log = fopen(r.logpath, "w");
		if (!r.log) {
			perror(r.logpath);
			return 2;
		}
	}
	r.buf = malloc(r.maxlen + r.maxio + 1);
	r.f = calloc((size_t)r.nfiles, sizeof(*r.f));
	if (!r.buf || !r.f)
		return 2;
	for (long i = 0; i < r.nfiles; i++) {
		struct tfile *t = &r.f[i];
		/* odd characters on purpose: the names are encoded for the server */
		snprintf(t->name, sizeof(t->name), "jfsx %02ld:%s.bin", i, i % 2 ? "odd?" : "even");
		snprintf(t->path, sizeof(t->path), "%s/%s", r.dir, t->name);
		t->model = calloc(1, r.maxlen);
		if (!t->model)
			return 2;
		t->fd = open(t->path, O_RDWR | O_CREAT | O_EXCL, 0644);
		if (t->fd < 0)
			sysfail(&r, "create", t);
		note(&r, "create %s", t->name);
	}
	for (r.opno = 1; r.opno <= r.ops; r.opno++) {
		struct tfile *t = &r.f[below(&r, (size_t)r.nfiles)];
		enum op_kind k = pick(&r);

		r.counts[k]++;
		switch (k) {
		case OP_WRITE: op_write(&r, t); break;
		case OP_READ: op_read(&r, t); break;
		case OP_TRUNCATE: op_truncate(&r, t); break;
		case OP_APPEND: op_append(&r, t); break;
		case OP_REOPEN: op_reopen(&r, t); break;
		case OP_CLOSE:
			note(&r, "close %s", t->name);
			do_close(&r, t);
			break;
		case OP_COMPARE:
			note(&r, "compare %s (size %zu)", t->name, t->size);
			compare_all(&r, t, "compare");
			break;
		case OP_STAT:
			note(&r, "stat %s (size %zu)", t->name, t->size);
			check_size(&r, t, "stat");
			break;
		case OP_FSYNC:
			note(&r, "fsync %s (size %zu)", t->name, t->size);
			ensure_open(&r, t);
			if (fsync(t->fd) != 0)
				sysfail(&r, "fsync", t);
			break;
		case OP_MAPREAD: op_mapread(&r, t); break;
		case OP_MAPWRITE: op_mapwrite(&r, t); break;
		case OP_KINDS: break;
		}
		if (r.close_every && t->fd >= 0 && ++t->ops_open >= r.close_every) {
			note(&r, "close %s (after %ld ops)", t->name, t->ops_open);
			do_close(&r, t);
		}
		if (r.opno == r.pause_at)
			pause_here(&r);
	}
	close_all(&r);
	verify_all(&r, "final compare");
	if (r.modeldir)
		write_model(&r);
	printf("jfsx: seed %" PRIu64 ": %ld ops, no mismatch (", r.seed, r.ops);
	for (int k = 0; k < OP_KINDS; k++)
		printf("%s%s %ld", k ? ", " : "", op_names[k], r.counts[k]);
	printf(")\n");
	if (r.log)
		fclose(r.log);
	return 0;
}
