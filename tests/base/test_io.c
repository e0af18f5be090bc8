/* base.io: whole reads and writes, bounded file reads, cancellation tokens and logging. */
#include "testutil.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void write_all_and_read_full_through_a_pipe(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	SB_ASSERT_OK(sb_write_all(p[1], "hello", 5));
	close(p[1]);
	char buf[16];
	size_t got = 0;
	SB_ASSERT_OK(sb_read_full(p[0], buf, sizeof buf, &got));
	assert_int_equal(got, 5);
	assert_memory_equal(buf, "hello", 5);
	close(p[0]);
	sb_err *err = sb_write_all(-1, "x", 1);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_IO);
	sb_err_free(err);
}

static void read_file_enforces_limit(void **state)
{
	(void)state;
	char *dir = sbt_mkdtemp("sb-io");
	sbt_write_str(dir, "f", "0123456789");
	char *path = sbt_path(dir, "f");
	sb_buf b = SB_BUF_INIT;
	SB_ASSERT_OK(sb_read_file(path, 10, &b));
	assert_string_equal(b.data, "0123456789");
	sb_buf_clear(&b);
	sb_err *err = sb_read_file(path, 9, &b);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_TOO_LARGE);
	assert_non_null(strstr(err->msg, path));
	sb_err_free(err);
	sb_buf_deinit(&b);
	free(path);
	sbt_rmtree(dir);
}

static void *trigger_later(void *arg)
{
	/* no event says the other thread is blocked in poll yet; the test passes either way, the
	 * pause only makes the interesting order (poll first, then trigger) the likely one */
	sb_sleep_ms(20);
	sb_cancel_trigger(arg);
	return NULL;
}

static void cancel_wakes_a_poller_in_another_thread(void **state)
{
	(void)state;
	sb_cancel *c = sb_cancel_new();
	assert_false(sb_cancel_is_set(c));
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, trigger_later, c), 0);
	struct pollfd pfd = {.fd = sb_cancel_fd(c), .events = POLLIN};
	int n = poll(&pfd, 1, 10000);
	assert_int_equal(n, 1);
	assert_true(sb_cancel_is_set(c));
	pthread_join(t, NULL);
	sb_cancel_trigger(c); /* idempotent */
	sb_cancel_free(c);
	assert_false(sb_cancel_is_set(NULL));
	assert_int_equal(sb_cancel_fd(NULL), -1);
}

static void log_writes_text_and_json_lines(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	sb_log_set_fd(p[1]);
	sb_log_set_level(SB_LOG_INFO);
	sb_debug("hidden");
	sb_info("hello %d", 1);
	sb_log_set_json(true);
	sb_warn("quote \" here");
	sb_log_set_json(false);
	sb_log_set_fd(2);
	close(p[1]);
	sb_buf b = SB_BUF_INIT;
	SB_ASSERT_OK(sb_read_fd_all(p[0], 1 << 16, &b));
	close(p[0]);
	assert_null(strstr(b.data, "hidden"));
	assert_non_null(strstr(b.data, "sandbar info: hello 1\n"));
	char *json_line = strchr(b.data, '\n') + 1;
	json_t *j = NULL;
	SB_ASSERT_OK(sb_json_parse_object(json_line, strlen(json_line), 4096, 4, &j));
	const char *msg = NULL, *level = NULL;
	SB_ASSERT_OK(sb_json_get_str(j, "msg", true, &msg));
	SB_ASSERT_OK(sb_json_get_str(j, "level", true, &level));
	assert_string_equal(msg, "quote \" here");
	assert_string_equal(level, "warn");
	json_decref(j);
	sb_buf_deinit(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(write_all_and_read_full_through_a_pipe),
	    cmocka_unit_test(read_file_enforces_limit),
	    cmocka_unit_test(cancel_wakes_a_poller_in_another_thread),
	    cmocka_unit_test(log_writes_text_and_json_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
