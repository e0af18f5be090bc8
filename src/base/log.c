/* Logging to stderr (or a chosen fd) as text or JSON lines. Each record is formatted in full
 * and written with one write(2), so lines from several threads never interleave. */
#include <sandbar/base.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include "sb_json.h"

static _Atomic int log_level = SB_LOG_INFO;
static _Atomic bool log_json = false;
static _Atomic int log_fd = 2;

void sb_log_set_level(sb_log_level level)
{
	atomic_store(&log_level, (int)level);
}

sb_log_level sb_log_get_level(void)
{
	return (sb_log_level)atomic_load(&log_level);
}

void sb_log_set_json(bool json)
{
	atomic_store(&log_json, json);
}

void sb_log_set_fd(int fd)
{
	atomic_store(&log_fd, fd);
}

static const char *level_name(sb_log_level level)
{
	switch (level) {
	case SB_LOG_ERROR:
		return "error";
	case SB_LOG_WARN:
		return "warn";
	case SB_LOG_INFO:
		return "info";
	case SB_LOG_DEBUG:
		return "debug";
	}
	return "info";
}

void sb_log(sb_log_level level, const char *fmt, ...)
{
	if ((int)level > atomic_load(&log_level))
		return;
	sb_buf msg = SB_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	sb_buf_vappendf(&msg, fmt, ap);
	va_end(ap);

	char ts[SB_ISO8601_LEN];
	sb_iso8601(sb_wall_ms(), ts);
	sb_buf line = SB_BUF_INIT;
	char *json_line = NULL;
	if (atomic_load(&log_json)) {
		/* A message that is not valid UTF-8 cannot be a JSON string: fall back to text. */
		json_t *j = json_pack("{s:s, s:s, s:s%}", "ts", ts, "level", level_name(level),
		                      "msg", msg.data ? msg.data : "", msg.len);
		json_line = j ? sb_json_dumps(j) : NULL;
		json_decref(j);
	}
	if (json_line) {
		sb_buf_appends(&line, json_line);
		free(json_line);
	} else {
		sb_buf_appendf(&line, "%s sandbar %s: %s", ts, level_name(level),
		               sb_buf_cstr(&msg));
	}
	sb_buf_appendc(&line, '\n');
	/* Best effort: a log line that cannot be written is dropped, never retried forever. */
	sb_err_free(sb_write_all(atomic_load(&log_fd), line.data, line.len));
	sb_buf_deinit(&line);
	sb_buf_deinit(&msg);
}
