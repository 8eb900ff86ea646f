/*
 * tests/unit/watchdog.h — no unit test program may hang. A watchdog thread
 * ends the program (exit status 70, with a message on stderr) when the
 * running test overruns its deadline, and at once when a helper process the
 * tests depend on (the emulator) dies. It SIGKILLs the registered child
 * processes first, so nothing outlives the program holding its output open.
 * Header-only (static inline functions), for the test programs that need it.
 *
 *   watchdog_arm(s)           the running test must end within @s seconds
 *                             (0: no deadline); call from the setup fixture
 *   watchdog_watch(pid, what) fire as soon as child @pid exits (0: stop
 *                             watching; do that before reaping it yourself)
 *   watchdog_victim(i, pid)   SIGKILL @pid (slot @i < 4; 0: none) on firing
 *
 * Threads: one detached watchdog thread, started by the first call; its
 * state is under wd.m. The watched child is only peeked at (WNOWAIT), never
 * reaped, so the program's own waitpid() still works.
 */
#ifndef JOTTAFS_TESTS_WATCHDOG_H
#define JOTTAFS_TESTS_WATCHDOG_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WATCHDOG_VICTIMS 4

static struct {
	pthread_mutex_t m;
	bool started;
	long long deadline_ms;          /* CLOCK_MONOTONIC ms; 0: none */
	unsigned seconds;
	pid_t watched;
	char what[512];
	pid_t victims[WATCHDOG_VICTIMS];
} wd = { .m = PTHREAD_MUTEX_INITIALIZER };

static inline long long watchdog_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Called with wd.m held; never returns. */
static inline void watchdog_fire(const char *why)
{
	fprintf(stderr, "\nwatchdog: %s; ending the test program\n", why);
	fflush(stderr);
	for (int i = 0; i < WATCHDOG_VICTIMS; i++)
		if (wd.victims[i] > 0)
			kill(wd.victims[i], SIGKILL);
	if (wd.watched > 0)
		kill(wd.watched, SIGKILL);
	_exit(70);
}

static inline void *watchdog_main(void *arg __attribute__((unused)))
{
	char why[640];
	for (;;) {
		pthread_mutex_lock(&wd.m);
		if (wd.deadline_ms && watchdog_now_ms() > wd.deadline_ms) {
			snprintf(why, sizeof(why), "the running test is still going after %u s",
				 wd.seconds);
			watchdog_fire(why);
		}
		if (wd.watched > 0) {
			siginfo_t si;
			memset(&si, 0, sizeof(si));
			if (waitid(P_PID, (id_t)wd.watched, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
			    si.si_pid == wd.watched) {
				snprintf(why, sizeof(why), "%s (pid %d) died (%s %d)", wd.what,
					 (int)wd.watched,
					 si.si_code == CLD_EXITED ? "exit status" : "signal",
					 si.si_status);
				wd.watched = 0;
				watchdog_fire(why);
			}
		}
		pthread_mutex_unlock(&wd.m);
		usleep(100 * 1000);
	}
	return NULL;
}

/* Called with wd.m held. */
static inline void watchdog_start_locked(void)
{
	pthread_t t;
	if (wd.started)
		return;
	if (pthread_create(&t, NULL, watchdog_main, NULL) == 0) {
		pthread_detach(t);
		wd.started = true;
	} else {
		fprintf(stderr, "watchdog: cannot start its thread: tests run unguarded\n");
	}
}

static inline void watchdog_arm(unsigned seconds)
{
	pthread_mutex_lock(&wd.m);
	watchdog_start_locked();
	wd.seconds = seconds;
	wd.deadline_ms = seconds ? watchdog_now_ms() + (long long)seconds * 1000 : 0;
	pthread_mutex_unlock(&wd.m);
}

static inline void watchdog_watch(pid_t pid, const char *what)
{
	pthread_mutex_lock(&wd.m);
	watchdog_start_locked();
	wd.watched = pid;
	snprintf(wd.what, sizeof(wd.what), "%s", what ? what : "a child process");
	pthread_mutex_unlock(&wd.m);
}

static inline void watchdog_victim(int slot, pid_t pid)
{
	if (slot < 0 || slot >= WATCHDOG_VICTIMS)
		return;
	pthread_mutex_lock(&wd.m);
	wd.victims[slot] = pid;
	pthread_mutex_unlock(&wd.m);
}

#endif
