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
 * sandbar; -t without a terminal on stdin is refused with a message. */
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

#define WAIT_MS 60000

typedef struct ttyrun {
	pid_t pid;
	int master;
	sb_buf out;
	struct termios before;
} ttyrun;

/* Start `sandbar ARGS` with a new pseudo-terminal of rows x cols as its controlling terminal
 * and stdin, stdout and stderr, in the test's workspace. */
static void tty_start(clit *t, ttyrun *r, unsigned short rows, unsigned short cols,
                      const char *const *args)
{
	size_t nargs = 0;
	while (args[nargs])
		nargs++;
	char **argv = sb_xcalloc(nargs + 2, sizeof *argv);
	argv[0] = t->bin;
	for (size_t i = 0; i < nargs; i++)
		argv[i + 1] = (char *)args[i];
	char *nocfg = sbt_path(t->root, "no-such-config");
	struct winsize ws = {.ws_row = rows, .ws_col = cols};
	int slave = -1;
	assert_int_equal(openpty(&r->master, &slave, NULL, NULL, &ws), 0);
	assert_int_equal(tcgetattr(r->master, &r->before), 0);
	sb_buf_init(&r->out);
	r->pid = fork();
	assert_true(r->pid >= 0);
	if (r->pid == 0) {
		close(r->master);
		if (login_tty(slave) < 0 || chdir(t->ws) < 0)
			_exit(97);
		setenv("SANDBAR_STATE_DIR", t->state, 1);
		setenv("SANDBAR_CONFIG", nocfg, 1);
		setenv("TERM", "xterm-256color", 1);
		unsetenv("SANDBAR_BRIDGE_URL");
		execv(argv[0], argv);
		_exit(98);
	}
	close(slave);
	free(argv);
	free(nocfg);
	clit_track(t, r->pid);
}

/* Read what the terminal shows for up to ms; false at EOF (sandbar and the command closed it). */
static bool tty_read(ttyrun *r, int ms)
{
	struct pollfd p = {.fd = r->master, .events = POLLIN};
	int rc = poll(&p, 1, ms);
	if (rc < 0 && errno == EINTR)
		return true;
	if (rc == 0)
		return true;
	char chunk[4096];
	ssize_t n = read(r->master, chunk, sizeof chunk);
	if (n < 0 && errno == EINTR)
		return true;
	if (n <= 0)
		return false; /* EIO: every holder of the terminal's slave side is gone */
	sb_buf_append(&r->out, chunk, (size_t)n);
	return true;
}

static const char *tty_text(ttyrun *r)
{
	sb_buf_append(&r->out, "", 1);
	r->out.len--;
	return r->out.data;
}

/* Until the terminal shows needle (fails the test after WAIT_MS or at EOF without it). */
static void tty_wait_for(ttyrun *r, const char *needle)
{
	int64_t end = sb_mono_ms() + WAIT_MS;
	while (!strstr(tty_text(r), needle)) {
		if (sb_mono_ms() > end || !tty_read(r, 50)) {
			if (strstr(tty_text(r), needle))
				return;
			print_error("the terminal never showed \"%s\"; it shows:\n%s\n", needle,
			            tty_text(r));
			fail();
		}
	}
}

static void tty_type(ttyrun *r, const char *bytes, size_t n)
{
	assert_int_equal(write(r->master, bytes, n), (ssize_t)n);
}

/* Read until EOF, reap sandbar; its exit code (-N after signal N). */
static int tty_finish(clit *t, ttyrun *r)
{
	int64_t end = sb_mono_ms() + WAIT_MS;
	while (sb_mono_ms() < end && tty_read(r, 50)) {
		int st;
		if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
			/* drain what it wrote last, then done */
			while (tty_read(r, 50) && r->out.len < (16u << 20)) {
				struct pollfd p = {.fd = r->master, .events = POLLIN};
				if (poll(&p, 1, 0) <= 0)
					break;
			}
			clit_untrack(t, r->pid);
			return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
		}
	}
	int st = 0;
	for (int i = 0; i < 600; i++) {
		if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
			clit_untrack(t, r->pid);
			return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
		}
		usleep(100 * 1000);
	}
	print_error("sandbar did not end; the terminal shows:\n%s\n", tty_text(r));
	fail();
	return -1;
}

static void tty_fini(ttyrun *r)
{
	close(r->master);
	sb_buf_deinit(&r->out);
}

/* The terminal's settings now equal those before sandbar started. */
static void assert_settings_back(ttyrun *r)
{
	struct termios now;
	assert_int_equal(tcgetattr(r->master, &now), 0);
	assert_int_equal(now.c_iflag, r->before.c_iflag);
	assert_int_equal(now.c_oflag, r->before.c_oflag);
	assert_int_equal(now.c_lflag, r->before.c_lflag);
	assert_int_equal(now.c_cflag, r->before.c_cflag);
	assert_memory_equal(now.c_cc, r->before.c_cc, sizeof now.c_cc);
}

/* While the command runs the user's terminal is raw: no echo, no line editing, no signals. */
static void assert_raw(ttyrun *r)
{
	struct termios now;
	assert_int_equal(tcgetattr(r->master, &now), 0);
	assert_int_equal(now.c_lflag & (ICANON | ECHO | ISIG), 0);
	assert_int_equal(now.c_oflag & OPOST, 0);
}

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
	                 "echo ready; echo kept > kept.txt; exec sleep 60"));
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
	    CLIT_TEST(refused_without_a_terminal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
