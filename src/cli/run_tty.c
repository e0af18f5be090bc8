/* `sandbar run -t`: the user's terminal while the command runs on a pseudo-terminal in the
 * sandbox.
 *
 * The terminal goes to raw mode, like ssh -t: every key is a byte for the command's own
 * terminal, whose line discipline inside the sandbox echoes, edits lines and turns Ctrl-C into
 * SIGINT for the command, exactly as a local terminal would (sandbar never sees a SIGINT from
 * that key). A SIGWINCH handler writes the new size to a pipe the runner follows. The settings
 * saved before are put back on every way out: after the command (before the summary), from
 * the stopping-signal handlers, and at exit. */
#include "run_tty.h"

#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static struct termios g_saved;
static volatile sig_atomic_t g_raw; /* g_saved holds what to put back on g_fd */
static int g_fd = -1;
static int g_winch[2] = {-1, -1};
static struct sigaction g_old_winch;
static bool g_atexit;

sb_err *cli_tty_prepare(int fd, sb_exec_request *req)
{
	if (!isatty(fd))
		return sb_err_new(SB_E_INVAL,
		                  "-t needs a terminal on stdin, and stdin is not one (use -i to "
		                  "stream a pipe or a file to the command)");
	struct winsize ws;
	if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
		req->tty_rows = ws.ws_row;
		req->tty_cols = ws.ws_col;
	}
	const char *term = getenv("TERM");
	req->tty = true;
	req->tty_term = term && *term ? term : "xterm";
	req->tty_resize_fd = -1;
	g_fd = fd;
	return NULL;
}

static void on_winch(int signo)
{
	(void)signo;
	int e = errno;
	struct winsize ws;
	if (g_fd >= 0 && g_winch[1] >= 0 && ioctl(g_fd, TIOCGWINSZ, &ws) == 0) {
		uint16_t rec[2] = {ws.ws_row, ws.ws_col};
		(void)!write(g_winch[1], rec, sizeof rec); /* a full pipe: older sizes pending */
	}
	errno = e;
}

static void restore_at_exit(void)
{
	cli_tty_restore();
}

sb_err *cli_tty_begin(sb_exec_request *req)
{
	if (g_fd < 0)
		return sb_err_new(SB_E_INVAL, "no terminal prepared");
	if (pipe2(g_winch, O_CLOEXEC | O_NONBLOCK) < 0)
		return sb_err_sys(errno, "window-change pipe");
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_winch;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	req->tty_resize_fd = g_winch[0];
	if (tcgetattr(g_fd, &g_saved) < 0)
		return sb_err_sys(errno, "reading the terminal's settings");
	sigaction(SIGWINCH, &sa, &g_old_winch);
	struct termios raw = g_saved;
	/* as ssh does: no signals, no line editing, no echo, no CR/NL mapping, no flow control */
	raw.c_iflag |= IGNPAR;
	raw.c_iflag &= ~(tcflag_t)(ISTRIP | INLCR | IGNCR | ICRNL | IXON | IXANY | IXOFF);
	raw.c_lflag &= ~(tcflag_t)(ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHONL | IEXTEN);
	raw.c_oflag &= ~(tcflag_t)OPOST;
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	if (!g_atexit) {
		atexit(restore_at_exit);
		g_atexit = true;
	}
	g_raw = 1;
	if (tcsetattr(g_fd, TCSADRAIN, &raw) < 0) {
		g_raw = 0;
		sigaction(SIGWINCH, &g_old_winch, NULL);
		return sb_err_sys(errno, "putting the terminal in raw mode");
	}
	/* a resize between prepare and now */
	on_winch(SIGWINCH);
	return NULL;
}

void cli_tty_restore(void)
{
	if (g_raw) {
		g_raw = 0;
		(void)tcsetattr(g_fd, TCSADRAIN, &g_saved);
		sigaction(SIGWINCH, &g_old_winch, NULL);
	}
}

void cli_tty_end(void)
{
	cli_tty_restore();
	for (int i = 0; i < 2; i++)
		if (g_winch[i] >= 0) {
			close(g_winch[i]);
			g_winch[i] = -1;
		}
}

static void on_stop_signal(int signo)
{
	cli_tty_restore();
	signal(signo, SIG_DFL);
	raise(signo);
}

void cli_tty_restore_on_signals(void)
{
	cli_catch_stop_signals(on_stop_signal, true);
}

int cli_tty_resize_pending(unsigned short *rows, unsigned short *cols)
{
	uint16_t rec[2 * 32];
	int got = 0;
	ssize_t n;
	while (g_winch[0] >= 0 && (n = read(g_winch[0], rec, sizeof rec)) > 0) {
		size_t whole = (size_t)n / (2 * sizeof rec[0]) * 2;
		if (whole >= 2) {
			*rows = rec[whole - 2];
			*cols = rec[whole - 1];
			got = 1;
		}
		if ((size_t)n < sizeof rec)
			break;
	}
	return got;
}
