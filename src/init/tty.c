/* sandbar-init: a command's pseudo-terminal (exec requests with "tty" = "1").
 *
 * The terminal comes from the sandbox's own devpts instance (bubblewrap's --dev mounts a new
 * one at /dev/pts, with /dev/ptmx pointing into it), so `tty` and ttyname() inside name a
 * /dev/pts entry that exists there. Init keeps the master: what the command writes is spooled
 * as its stdout; the host gets a duplicate of the master to write the user's keys to and to
 * set the window size on (the kernel then sends SIGWINCH to the terminal's foreground group).
 */
#include "init.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

int sbi_tty_open(const sbi_msg *req, int *master, int *slave, char *why, size_t why_len)
{
	long long rows = SBI_TTY_ROWS_DEFAULT, cols = SBI_TTY_COLS_DEFAULT;
	*master = *slave = -1;
	if (sbi_msg_get(req, "rows") && sbi_msg_geti(req, "rows", 1, SBI_TTY_DIM_MAX, &rows) < 0) {
		snprintf(why, why_len, "tty rows must be 1..%d", SBI_TTY_DIM_MAX);
		errno = EINVAL;
		return -1;
	}
	if (sbi_msg_get(req, "cols") && sbi_msg_geti(req, "cols", 1, SBI_TTY_DIM_MAX, &cols) < 0) {
		snprintf(why, why_len, "tty cols must be 1..%d", SBI_TTY_DIM_MAX);
		errno = EINVAL;
		return -1;
	}
	const char *what = "opening /dev/ptmx";
	int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC), s = -1;
	if (m < 0)
		goto fail;
	int unlock = 0;
	what = "unlocking the terminal";
	if (ioctl(m, TIOCSPTLCK, &unlock) < 0)
		goto fail;
	/* the peer by descriptor: no path lookup, and the right devpts instance for sure */
	what = "opening the terminal's slave side";
	if ((s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0)
		goto fail;
	struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
	what = "setting the window size";
	if (ioctl(m, TIOCSWINSZ, &ws) < 0)
		goto fail;
	what = "making the terminal non-blocking";
	if (fcntl(m, F_SETFL, O_NONBLOCK) < 0)
		goto fail;
	*master = m;
	*slave = s;
	return 0;
fail:;
	int e = errno;
	snprintf(why, why_len, "%s: %s", what, strerror(e));
	if (m >= 0)
		close(m);
	if (s >= 0)
		close(s);
	errno = e;
	return -1;
}
