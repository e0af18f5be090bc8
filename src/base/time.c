/* Clocks and timestamps: monotonic time for deadlines and durations, wall time for records,
 * formatted as ISO-8601 UTC with milliseconds ("2026-11-26T13:07:25.123Z") everywhere. */
#include <sandbar/base.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t sb_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t sb_mono_ms(void)
{
	return sb_mono_ns() / 1000000;
}

int64_t sb_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sb_iso8601(int64_t wall_ms, char out[SB_ISO8601_LEN])
{
	time_t secs = (time_t)(wall_ms / 1000);
	int ms = (int)(wall_ms % 1000);
	if (ms < 0) {
		ms += 1000;
		secs -= 1;
	}
	struct tm tm;
	gmtime_r(&secs, &tm);
	/* Format into a roomy buffer first: the compiler cannot prove the fields' ranges. */
	char tmp[96];
	snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
	size_t n = strnlen(tmp, SB_ISO8601_LEN - 1);
	memcpy(out, tmp, n);
	out[n] = '\0';
}

sb_err *sb_iso8601_parse(const char *s, int64_t *wall_ms_out)
{
	int y, mo, d, h, mi, sec, ms = 0, n = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
		return sb_err_new(SB_E_INVAL, "invalid timestamp \"%s\"", s);
	const char *p = s + n;
	if (*p == '.') {
		p++;
		int digits = 0;
		while (*p >= '0' && *p <= '9') {
			if (digits < 3)
				ms = ms * 10 + (*p - '0');
			digits++;
			p++;
		}
		if (digits == 0)
			return sb_err_new(SB_E_INVAL, "invalid timestamp \"%s\"", s);
		for (; digits < 3; digits++)
			ms *= 10;
	}
	if (strcmp(p, "Z") != 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    sec > 60)
		return sb_err_new(SB_E_INVAL, "invalid timestamp \"%s\" (want UTC ISO-8601)", s);
	struct tm tm = {0};
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	*wall_ms_out = (int64_t)t * 1000 + ms;
	return NULL;
}

void sb_sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}
