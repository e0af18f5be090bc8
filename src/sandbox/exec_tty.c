/* Execs on a pseudo-terminal (sb_sandbox_exec_req.tty): the request's fields, and resizing.
 *
 * sandbar-init allocates the terminal inside the sandbox and hands us a duplicate of its
 * master with the start reply (exec.c keeps it as the handle's stdin descriptor): keys are
 * written there, and a resize is a TIOCSWINSZ on it, after which the kernel signals the
 * terminal's foreground process group (SIGWINCH) as it would for a local terminal. */
#include "sandbox_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#define TTY_DIM_MAX 10000 /* = SBI_TTY_DIM_MAX */
#define TERM_MAX 64

int sb_exec_tty_fields(const sb_sandbox_exec_req *req, sbi_msg *m)
{
	int bad = sbi_msg_add(m, "tty", "1");
	if (req->tty_rows)
		bad |= sbi_msg_addi(m, "rows", req->tty_rows);
	if (req->tty_cols)
		bad |= sbi_msg_addi(m, "cols", req->tty_cols);
	for (size_t i = 0; req->env && req->env[i]; i++)
		if (strncmp(req->env[i], "TERM=", 5) == 0)
			return bad;
	const char *term = req->tty_term && req->tty_term[0] ? req->tty_term : "xterm";
	char kv[5 + TERM_MAX + 1] = "TERM=";
	/* a terminal type is a short name; anything else is not passed on */
	size_t n = strlen(term);
	bool ok = n <= TERM_MAX;
	for (size_t i = 0; ok && i < n; i++)
		ok = (term[i] >= 'a' && term[i] <= 'z') || (term[i] >= 'A' && term[i] <= 'Z') ||
		     (term[i] >= '0' && term[i] <= '9') || strchr("-_.+", term[i]);
	memcpy(kv + 5, ok ? term : "xterm", ok ? n + 1 : sizeof "xterm");
	return bad | sbi_msg_add(m, "env", kv);
}

sb_err *sb_sandbox_tty_resize(int fd, const char *what, unsigned rows, unsigned cols)
{
	if (rows < 1 || rows > TTY_DIM_MAX || cols < 1 || cols > TTY_DIM_MAX)
		return sb_err_new(SB_E_INVAL, "%s: window size %ux%u is outside 1..%d", what, rows,
		                  cols, TTY_DIM_MAX);
	if (fd < 0 || !isatty(fd))
		return sb_err_new(SB_E_INVAL, "%s has no terminal to resize (start it with a tty)",
		                  what);
	struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
	if (ioctl(fd, TIOCSWINSZ, &ws) < 0)
		return sb_err_sys(errno, "resizing the terminal of %s", what);
	return NULL;
}

sb_err *sb_sandbox_exec_resize(sb_sandbox_exec *x, unsigned rows, unsigned cols)
{
	char what[SB_SANDBOX_ID_MAX + 8];
	snprintf(what, sizeof what, "exec %s", sb_sandbox_exec_id(x));
	return sb_sandbox_tty_resize(sb_sandbox_exec_stdin_fd(x), what, rows, cols);
}
