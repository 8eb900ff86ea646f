/*
 * lib/log.h — levelled logging to stderr (foreground) or syslog (daemon).
 *
 * The level is tested before the arguments are formatted, so a debug line on
 * a hot path costs one branch when debugging is off. Never pass a token, an
 * Authorization header or any other secret to these functions, and pass
 * text a server sent (error messages, bodies) through redact_text()
 * (lib/redact.h) first: a server may echo what we sent it.
 *
 * Thread-safe: one line is written with one write(2)/syslog(3) call.
 */
#ifndef JOTTAFS_LOG_H
#define JOTTAFS_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level {
	LOG_LVL_ERR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

/* Set the threshold and the sink; call once, before threads start. */
void log_setup(enum log_level level, bool use_syslog);
/* True when messages at @level are written. */
bool log_enabled(enum log_level level);
/* Write one line (no trailing newline needed). Use the macros below. */
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* One line for the person at the terminal on stderr, "jottafs: " first, at
 * any log level: command-line and mount-time errors before daemonizing. */
void log_user(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same with a va_list. */
void log_vuser(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

#define log_at(lvl, ...)                                   \
	do {                                               \
		if (log_enabled(lvl))                      \
			log_msg((lvl), __VA_ARGS__);       \
	} while (0)
#define log_err(...)   log_at(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...)  log_at(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_at(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
