/* Helpers for the runner tests (see rt.h). */
#include "rt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void rt_capture_init(rt_capture *c)
{
	memset(c, 0, sizeof(*c));
	sb_buf_init(&c->out);
	sb_buf_init(&c->err);
}

void rt_capture_deinit(rt_capture *c)
{
	sb_buf_deinit(&c->out);
	sb_buf_deinit(&c->err);
}

static sb_err *capture_spawn(void *ud, int pid, const char *started_at)
{
	rt_capture *c = ud;
	c->spawn_pid = pid;
	c->spawn_calls++;
	snprintf(c->started_at, sizeof(c->started_at), "%s", started_at);
	return NULL;
}

static sb_err *capture_output(void *ud, sb_stream stream, const char *data, size_t len)
{
	rt_capture *c = ud;
	sb_buf_append(stream == SB_STREAM_STDOUT ? &c->out : &c->err, data, len);
	c->chunks++;
	return NULL;
}

sb_exec_callbacks rt_capture_callbacks(rt_capture *c)
{
	return (sb_exec_callbacks){.on_spawn = capture_spawn, .on_output = capture_output, .ud = c};
}

sb_err *rt_run(sb_runner *r, char *const *argv, sb_exec_result *res)
{
	sb_exec_request req = {.argv = argv};
	return sb_runner_execute(r, &req, NULL, NULL, res);
}

void rt_sh(sb_runner *r, const char *script, sb_exec_result *res)
{
	sb_exec_result_init(res);
	SB_ASSERT_OK(rt_run(r, RT_ARGV("sh", "-c", (char *)script), res));
}

char *rt_tmpfile(const void *p, size_t n)
{
	char *path = sb_xstrdup("/tmp/sb-runner-test-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	SB_ASSERT_OK(sb_write_all(fd, p, n));
	close(fd);
	return path;
}

char *rt_tmpdir(void)
{
	char *path = sb_xstrdup("/tmp/sb-runner-test-XXXXXX");
	assert_non_null(mkdtemp(path));
	return path;
}

void rt_rmdir(char *dir)
{
	if (!dir)
		return;
	char *q = sb_shell_quoted(dir);
	char *cmd = sb_strfmt("rm -rf -- %s", q);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(q);
	free(dir);
}
