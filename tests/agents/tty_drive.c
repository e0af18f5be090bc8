/* Driving `sandbar` on a pseudo-terminal the test owns (tty_drive.h). */
#include "tty_drive.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utmp.h>

#define WAIT_MS 60000

/* Start `sandbar ARGS` with a new pseudo-terminal of rows x cols as its controlling terminal
 * and stdin, stdout and stderr, in the test's workspace. */
void tty_start_in(clit *t, ttyrun *r, const char *cwd, unsigned short rows, unsigned short cols,
                  const char *const *env, const char *const *args)
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
		if (login_tty(slave) < 0 || chdir(cwd ? cwd : t->ws) < 0)
			_exit(97);
		setenv("SANDBAR_STATE_DIR", t->state, 1);
		setenv("SANDBAR_CONFIG", nocfg, 1);
		setenv("TERM", "xterm-256color", 1);
		for (size_t i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		unsetenv("SANDBAR_BRIDGE_URL");
		execv(argv[0], argv);
		_exit(98);
	}
	close(slave);
	free(argv);
	free(nocfg);
	clit_track(t, r->pid);
}

void tty_start(clit *t, ttyrun *r, unsigned short rows, unsigned short cols,
               const char *const *args)
{
	tty_start_in(t, r, NULL, rows, cols, NULL, args);
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

const char *tty_text(ttyrun *r)
{
	sb_buf_append(&r->out, "", 1);
	r->out.len--;
	return r->out.data;
}

/* Until the terminal shows needle (fails the test after WAIT_MS or at EOF without it). */
void tty_wait_for(ttyrun *r, const char *needle)
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

void tty_type(ttyrun *r, const char *bytes, size_t n)
{
	assert_int_equal(write(r->master, bytes, n), (ssize_t)n);
}

/* Read until EOF, reap sandbar; its exit code (-N after signal N). */
int tty_finish(clit *t, ttyrun *r)
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

void tty_fini(ttyrun *r)
{
	close(r->master);
	sb_buf_deinit(&r->out);
}

/* The terminal's settings now equal those before sandbar started. */
void assert_settings_back(ttyrun *r)
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
void assert_raw(ttyrun *r)
{
	struct termios now;
	assert_int_equal(tcgetattr(r->master, &now), 0);
	assert_int_equal(now.c_lflag & (ICANON | ECHO | ISIG), 0);
	assert_int_equal(now.c_oflag & OPOST, 0);
}
