/*
 * fs/mountinfo.c — see fs/mountinfo.h.
 */
#include "fs/mountinfo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Undo mountinfo's octal escapes (\040 for a space, ...) in place. */
static void unescape(char *s)
{
	char *d = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	}
	*d = '\0';
}

/* The user_id= of a super-options field ("rw,user_id=0,group_id=0"); -1 if absent. */
static uid_t user_id_of(char *super)
{
	char *save = NULL;

	for (char *o = strtok_r(super, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		if (!strncmp(o, "user_id=", 8)) {
			char *end;
			unsigned long v = strtoul(o + 8, &end, 10);
			if (end != o + 8 && !*end)
				return (uid_t)v;
		}
	}
	return (uid_t)-1;
}

int mountinfo_each_jottafs(mountinfo_cb cb, void *ctx)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	bool stop = false;

	if (!f)
		return -errno;
	while (!stop && getline(&line, &cap, f) > 0) {
		char *sep = strstr(line, " - "), *save = NULL, *mnt = NULL, *type, *source, *super;

		if (!sep)
			continue;
		*sep = '\0';
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT */
		char *tok = strtok_r(line, " ", &save);
		for (int i = 0; tok && i < 4; i++)
			tok = strtok_r(NULL, " ", &save);
		mnt = tok;
		save = NULL;
		type = strtok_r(sep + 3, " \n", &save);
		source = type ? strtok_r(NULL, " \n", &save) : NULL;
		super = source ? strtok_r(NULL, " \n", &save) : NULL;
		if (!mnt || !type || strcmp(type, "fuse.jottafs"))
			continue;
		unescape(mnt);
		if (source)
			unescape(source);
		struct mountinfo_entry e = {
			.mountpoint = mnt,
			.source = source ? source : "",
			.user_id = super ? user_id_of(super) : (uid_t)-1,
		};
		stop = cb(&e, ctx);
	}
	free(line);
	fclose(f);
	return 0;
}
