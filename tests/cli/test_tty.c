/* cli.tty: the progress bar. With stderr on a pseudo-terminal it is drawn during staging and
 * restore ("\r<label> [###...] ...") and erased with "\r\033[K"; with --quiet, or when stderr
 * is not a terminal, it never appears. */
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clitest.h"

/* Big enough for the bar to be drawn: a few MiB in several files of the workspace. */
static void fill_workspace(clit *t)
{
	size_t n = 1 << 20;
	char *blob = sb_xmalloc(n);
	for (int i = 0; i < 4; i++) {
		sbt_fill_random(blob, n, (uint64_t)i + 1);
		char name[32];
		snprintf(name, sizeof name, "data/blob%d.bin", i);
		sbt_write(t->ws, name, blob, n, 0644);
	}
	free(blob);
}

/* Runs sandbar with stdout and stderr on a fresh pseudo-terminal; returns what the terminal
 * received and the exit code. */
static char *run_in_pty(clit *t, const char *const *args, int *code)
{
	size_t nargs = 0;
	while (args[nargs])
		nargs++;
	char **argv = sb_xcalloc(nargs + 2, sizeof *argv);
	argv[0] = t->bin;
	for (size_t i = 0; i < nargs; i++)
		argv[i + 1] = (char *)args[i];
	char *nocfg = sbt_path(t->root, "no-such-config");
	int master = -1;
	pid_t pid = forkpty(&master, NULL, NULL, NULL);
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("SANDBAR_STATE_DIR", t->state, 1);
		setenv("SANDBAR_CONFIG", nocfg, 1);
		unsetenv("SANDBAR_BRIDGE_URL");
		execv(argv[0], argv);
		_exit(98);
	}
	free(argv);
	free(nocfg);
	clit_track(t, pid);
	sb_buf b = SB_BUF_INIT;
	char chunk[4096];
	for (int idle = 0; idle < 6000;) {
		struct pollfd p = {.fd = master, .events = POLLIN};
		int rc = poll(&p, 1, 10);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc == 0) {
			idle++;
			continue;
		}
		ssize_t n = read(master, chunk, sizeof chunk);
		if (n <= 0)
			break; /* EIO once the child and its descendants closed the terminal */
		sb_buf_append(&b, chunk, (size_t)n);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	clit_untrack(t, pid);
	close(master);
	*code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return sb_buf_steal(&b, NULL);
}

static void bar_is_drawn_and_cleared_on_a_terminal(void **state)
{
	clit *t = *state;
	fill_workspace(t);
	int code = -1;
	char *tty = run_in_pty(t,
	                       CLIT_V("run", "-w", t->ws, "--", "sh", "-c",
	                              "cat data/*.bin > /dev/null; echo made > m.txt"),
	                       &code);
	assert_int_equal(code, 0);
	const char *bar = strstr(tty, "\rstaging");
	if (!bar || !strstr(tty, "MiB") || !strstr(tty, "[")) {
		print_error("no staging bar on the terminal:\n%s\n", tty);
		fail();
	}
	/* Erased after it was drawn, before the summary. */
	const char *erase = strstr(bar, "\r\033[K");
	assert_non_null(erase);
	/* The restore has its bar too, erased in turn. */
	const char *restoring = strstr(erase, "\rrestoring");
	assert_non_null(restoring);
	const char *restore_end = strstr(restoring, "\r\033[K");
	assert_non_null(restore_end);
	/* one unit, and the restore bar shows its total ("done/total MiB") */
	char *rline = strndup(restoring, (size_t)(restore_end - restoring));
	if (!strstr(rline, "/") || !strstr(rline, "MiB")) {
		print_error("the restore bar shows no total in MiB: %s\n", rline);
		fail();
	}
	free(rline);
	const char *summary = strstr(tty, "1 added");
	assert_non_null(summary);
	assert_true(erase < summary);
	free(tty);
}

static void no_bar_with_quiet(void **state)
{
	clit *t = *state;
	fill_workspace(t);
	int code = -1;
	char *tty = run_in_pty(
	    t,
	    CLIT_V("run", "-q", "-w", t->ws, "--", "sh", "-c", "echo made > m.txt; echo done-here"),
	    &code);
	assert_int_equal(code, 0);
	assert_non_null(strstr(tty, "done-here"));
	assert_null(strstr(tty, "staging"));
	assert_null(strstr(tty, "\033[K"));
	free(tty);
}

static void no_bar_when_stderr_is_not_a_terminal(void **state)
{
	clit *t = *state;
	fill_workspace(t);
	clit_res r;
	assert_int_equal(
	    clit_run(t, &r, NULL,
	             CLIT_V("run", "-w", t->ws, "--", "sh", "-c", "echo made > m.txt")),
	    0);
	assert_non_null(strstr(r.err, "1 added"));
	assert_null(strstr(r.err, "staging"));
	assert_null(strstr(r.err, "\033[K"));
	assert_null(strchr(r.err, '\r'));
	clit_res_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) CLIT_TEST(f)
	    T(bar_is_drawn_and_cleared_on_a_terminal),
	    T(no_bar_with_quiet),
	    T(no_bar_when_stderr_is_not_a_terminal),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
