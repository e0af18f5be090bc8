/* agents.tty: `sandbar run -t` gives the command a terminal inside the sandbox. The test is the
 * user's terminal: sandbar runs on a pseudo-terminal the test made (openpty), and the test
 * types into its master and reads what appears there.
 *
 * Asserted: the command's stdin, stdout and stderr are a terminal that `tty` names, with the
 * user's window size and TERM; a program that reads one key in raw mode gets it; a resize of
 * the user's terminal (TIOCSWINSZ on the test's master, so the kernel sends sandbar SIGWINCH)
 * reaches the command as SIGWINCH with the new size; Ctrl-C (the byte 0x03) interrupts the
 * command through its own terminal (exit 130) without stopping sandbar; the user's terminal is
 * raw while the command runs and has its settings back afterwards, also after SIGTERM to
 * sandbar; `sandbar exec -t` does the same in a kept lease; -t without a terminal on stdin is
 * refused with a message. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <utmp.h>

#include <sandbar/runner.h>

#include "clitest.h"
#include "tty_drive.h"

static void tty_size_and_term(void **state)
{
	clit *t = *state;
	ttyrun r;
	tty_start(t, &r, 33, 111,
	          CLIT_V("run", "-q", "-t", "--", "sh", "-c",
	                 "tty; stty size; echo \"term=$TERM\"; [ -t 0 ] && [ -t 1 ] && "
	                 "[ -t 2 ] && echo all-three-ttys; echo on-stderr >&2; echo done > "
	                 "made.txt"));
	int code = tty_finish(t, &r);
	const char *out = tty_text(&r);
	if (code != 0 || !strstr(out, "/dev/pts/") || !strstr(out, "33 111") ||
	    !strstr(out, "term=xterm-256color") || !strstr(out, "all-three-ttys") ||
	    !strstr(out, "on-stderr")) {
		print_error("exit %d; the terminal shows:\n%s\n", code, out);
		fail();
	}
	assert_null(strstr(out, "not a tty"));
	assert_settings_back(&r);
	/* the workspace came back as with any run */
	size_t len;
	char *made = sbt_read(t->ws, "made.txt", &len);
	assert_non_null(made);
	assert_string_equal(made, "done\n");
	free(made);
	tty_fini(&r);
}

static void raw_key_is_read(void **state)
{
	clit *t = *state;
	ttyrun r;
	tty_start(t, &r, 24, 80,
	          CLIT_V("run", "-q", "-t", "--", "sh", "-c",
	                 "stty raw -echo; echo ready; k=$(dd bs=1 count=1 2>/dev/null); "
	                 "stty sane; echo \"key=[$k]\""));
	tty_wait_for(&r, "ready");
	assert_raw(&r);
	tty_type(&r, "x", 1); /* one key, no Enter: only a raw reader gets it */
	tty_wait_for(&r, "key=[x]");
	assert_int_equal(tty_finish(t, &r), 0);
	assert_settings_back(&r);
	tty_fini(&r);
}

static void resize_reaches_the_command(void **state)
{
	clit *t = *state;
	ttyrun r;
	tty_start(t, &r, 24, 80,
	          CLIT_V("run", "-q", "-t", "--", "sh", "-c",
	                 "trap 'echo \"winch $(stty size)\"; exit 0' WINCH; stty size; echo ready; "
	                 "i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; exit 3"));
	tty_wait_for(&r, "ready");
	assert_non_null(strstr(tty_text(&r), "24 80"));
	struct winsize ws = {.ws_row = 50, .ws_col = 140};
	assert_int_equal(ioctl(r.master, TIOCSWINSZ, &ws), 0); /* the kernel: SIGWINCH to sandbar */
	tty_wait_for(&r, "winch 50 140");
	assert_int_equal(tty_finish(t, &r), 0);
	assert_settings_back(&r);
	tty_fini(&r);
}

static void ctrl_c_interrupts_the_command(void **state)
{
	clit *t = *state;
	ttyrun r;
	tty_start(t, &r, 24, 80,
	          CLIT_V("run", "-t", "--", "sh", "-c",
	                 "echo kept > kept.txt; echo ready; exec sleep 60"));
	tty_wait_for(&r, "ready");
	tty_type(&r, "\003", 1);
	int code = tty_finish(t, &r);
	const char *out = tty_text(&r);
	if (code != 130) {
		print_error("exit %d, want 130 (the command's SIGINT); terminal:\n%s\n", code, out);
		fail();
	}
	/* sandbar itself was not interrupted: it brought the work back as after any run */
	assert_null(strstr(out, "sandbar: SIGINT"));
	size_t len;
	char *kept = sbt_read(t->ws, "kept.txt", &len);
	assert_non_null(kept);
	free(kept);
	assert_settings_back(&r);
	tty_fini(&r);
}

static void settings_back_after_sigterm(void **state)
{
	clit *t = *state;
	ttyrun r;
	tty_start(t, &r, 24, 80,
	          CLIT_V("run", "-q", "-t", "--", "sh", "-c", "echo ready; exec sleep 60"));
	tty_wait_for(&r, "ready");
	assert_raw(&r);
	assert_int_equal(kill(r.pid, SIGTERM), 0);
	int code = tty_finish(t, &r);
	assert_int_equal(code, 128 + SIGTERM);
	assert_settings_back(&r);
	tty_fini(&r);
}

static void settings_back_after_a_failing_command(void **state)
{
	clit *t = *state;
	ttyrun r;
	tty_start(t, &r, 24, 80, CLIT_V("run", "-q", "-t", "--", "sh", "-c", "exit 7"));
	assert_int_equal(tty_finish(t, &r), 7);
	assert_settings_back(&r);
	tty_fini(&r);
	/* and when the command cannot even start */
	tty_start(t, &r, 24, 80, CLIT_V("run", "-q", "-t", "--", "no-such-program-here"));
	assert_int_equal(tty_finish(t, &r), 127);
	assert_settings_back(&r);
	tty_fini(&r);
}

/* sandbar exec -t: the same terminal in a kept lease, resize and Ctrl-C included. */
static void exec_t_in_a_kept_lease(void **state)
{
	clit *t = *state;
	clit_res res;
	assert_int_equal(
	    clit_run(t, &res, NULL, CLIT_V("run", "--keep", "-w", t->ws, "--", "true")), 0);
	char *lease = clit_word_after(res.err, "lease ");
	assert_non_null(lease);
	clit_res_free(&res);
	ttyrun r;
	tty_start(t, &r, 27, 99,
	          CLIT_V("exec", "-t", "--lease", lease, "--", "sh", "-c",
	                 "tty; stty size; trap 'echo \"winch $(stty size)\"' WINCH; echo ready; "
	                 "until read line; do :; done; echo \"got=$line\"; exec sleep 60"));
	tty_wait_for(&r, "ready");
	assert_raw(&r);
	assert_non_null(strstr(tty_text(&r), "/dev/pts/"));
	assert_non_null(strstr(tty_text(&r), "27 99"));
	struct winsize ws = {.ws_row = 45, .ws_col = 150};
	assert_int_equal(ioctl(r.master, TIOCSWINSZ, &ws), 0);
	tty_wait_for(&r, "winch 45 150");
	tty_type(&r, "typed\r", 6);
	tty_wait_for(&r, "got=typed");
	tty_type(&r, "\003", 1);
	assert_int_equal(tty_finish(t, &r), 130);
	assert_settings_back(&r);
	tty_fini(&r);
	/* and SIGTERM to sandbar exec gives the terminal back too */
	tty_start(t, &r, 24, 80,
	          CLIT_V("exec", "-t", "--lease", lease, "--", "sh", "-c", "echo ready; sleep 60"));
	tty_wait_for(&r, "ready");
	assert_raw(&r);
	assert_int_equal(kill(r.pid, SIGTERM), 0);
	assert_int_equal(tty_finish(t, &r), -SIGTERM);
	assert_settings_back(&r);
	tty_fini(&r);
	free(lease);
}

static void refused_without_a_terminal(void **state)
{
	clit *t = *state;
	clit_res res;
	int code = clit_run(t, &res, NULL, CLIT_V("run", "-t", "-w", t->ws, "--", "true"));
	assert_int_equal(code, SB_EXIT_FAILURE);
	assert_non_null(strstr(res.err, "-t needs a terminal on stdin"));
	clit_res_free(&res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    CLIT_TEST(tty_size_and_term),
	    CLIT_TEST(raw_key_is_read),
	    CLIT_TEST(resize_reaches_the_command),
	    CLIT_TEST(ctrl_c_interrupts_the_command),
	    CLIT_TEST(settings_back_after_sigterm),
	    CLIT_TEST(settings_back_after_a_failing_command),
	    CLIT_TEST(exec_t_in_a_kept_lease),
	    CLIT_TEST(refused_without_a_terminal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
