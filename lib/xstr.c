/* lib/xstr.c — see lib/xstr.h. */
#include "lib/xstr.h"

#include <stdarg.h>
#include <stdio.h>

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}
