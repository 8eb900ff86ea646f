/*
 * lib/log.c — see log.h.
 */
#include "lib/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* Set once by log_setup() before any thread starts; read-only afterwards. */
static struct {
	enum log_level level;
	bool syslog;
} log_cfg = { LOG_LVL_INFO, false };

void log_setup(enum log_level level, bool use_syslog)
{
	log_cfg.level = level;
	log_cfg.syslog = use_syslog;
	if (use_syslog)
		openlog("jottafs", LOG_PID, LOG_DAEMON);
}

bool log_enabled(enum log_level level)
{
	return level <= log_cfg.level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (log_cfg.syslog) {
		syslog(prio[level], "%s", line);
		return;
	}
	char out[2200];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(out, sizeof(out), "%02d:%02d:%02d.%03ld jottafs %s: %s\n",
		     tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
		     names[level], line);
	if (n > (int)sizeof(out))
		n = sizeof(out);
	ssize_t w = write(STDERR_FILENO, out, (size_t)n);
	(void)w;
}

void log_vuser(const char *fmt, va_list ap)
{
	flockfile(stderr);
	fputs("jottafs: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

void log_user(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vuser(fmt, ap);
	va_end(ap);
}
