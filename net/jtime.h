/*
 * net/jtime.h — the two time formats of the Jottacloud wire protocol
 * (shared/docs/jottacloud-api.md §5.3).
 *
 *   JottaTime  "2018-07-05-T15:08:02Z" (Go layout 2006-01-02-T15:04:05Z0700):
 *              the XML documents and the JCreated/JModified headers. The zone
 *              is "Z" or "+hhmm"/"-hhmm"; fractional seconds after the seconds
 *              field (".123" or ",123") are accepted and dropped, as Go does.
 *   RFC 3339   "2026-11-23T14:16:44Z", "2021-11-30T10:21:05.123Z",
 *              "2024-03-04T09:09:10+01:00": the allocate request and the
 *              liststream response.
 *
 * Times are whole seconds (time_t, UTC epoch): the service keeps 1 s
 * precision. Formatting is always in UTC with "Z" and without a fraction.
 * Parsing validates every field (month 1-12, day within the month, leap
 * years, hour 0-23, minute and second 0-59, zone within +-23:59) and needs
 * exactly four year digits; no locale, no time zone database, no global
 * state. Thread-safe pure functions.
 */
#ifndef JOTTAFS_NET_JTIME_H
#define JOTTAFS_NET_JTIME_H

#include <stddef.h>
#include <time.h>

/* Room for any formatted time of years 0000-9999 with its NUL. */
#define JTIME_BUFSZ 32

/* Parse @len bytes of JottaTime @s. 0, or -EINVAL when malformed or out of range. */
int jtime_parse_jotta(const char *s, size_t len, time_t *out);

/* Parse @len bytes of RFC 3339 @s ('T'/'t', 'Z'/'z' or +-hh:mm). 0 or -EINVAL. */
int jtime_parse_rfc3339(const char *s, size_t len, time_t *out);

/* Format @t as "YYYY-MM-DD-Thh:mm:ssZ" into @buf (@size >= JTIME_BUFSZ is
 * always enough). 0, or -ERANGE when the year is outside 0000-9999 or @buf
 * is too small. */
int jtime_format_jotta(time_t t, char *buf, size_t size);

/* Format @t as "YYYY-MM-DDThh:mm:ssZ". Same contract as jtime_format_jotta. */
int jtime_format_rfc3339(time_t t, char *buf, size_t size);

#endif
