/* `sandbar run -t`: the user's terminal while the command runs on a pseudo-terminal in the
 * sandbox (run_tty.c). */
#ifndef SANDBAR_CLI_RUN_TTY_H
#define SANDBAR_CLI_RUN_TTY_H

#include <sandbar/runner.h>

/* Fill req's tty fields from the terminal on fd (its size and $TERM). SB_E_INVAL when fd is
 * not a terminal. */
sb_err *cli_tty_prepare(int fd, sb_exec_request *req);
/* Put the terminal in raw mode (keys, Ctrl-C included, go to the command as bytes) and start
 * passing window changes to req->tty_resize_fd. Undone by cli_tty_restore. */
sb_err *cli_tty_begin(sb_exec_request *req);
/* Give the terminal back its settings from before cli_tty_begin and stop following window
 * changes. Idempotent; async-signal-safe (signal handlers and exit paths call it too). */
void cli_tty_restore(void);
/* cli_tty_restore, then close the window-change pipe (not from a signal handler). */
void cli_tty_end(void);

/* For commands without their own stopping-signal handling (sandbar exec -t): on SIGTERM,
 * SIGHUP, SIGINT or SIGQUIT restore the terminal, then die of the signal as before. */
void cli_tty_restore_on_signals(void);
/* The last window size the SIGWINCH handler queued since the previous call: 1 and *rows,
 * *cols filled, or 0 when none (for callers that follow req->tty_resize_fd themselves). */
int cli_tty_resize_pending(unsigned short *rows, unsigned short *cols);

#endif
