/* Driving `sandbar` on a pseudo-terminal the test owns (the test is the user's terminal), for
 * the agents tests of `sandbar run -t`. */
#ifndef SB_AGENTS_TTY_DRIVE_H
#define SB_AGENTS_TTY_DRIVE_H

#include <stdbool.h>
#include <sys/types.h>
#include <termios.h>

#include "clitest.h"

typedef struct ttyrun {
	pid_t pid;
	int master;
	sb_buf out;
	struct termios before;
} ttyrun;

/* Start `sandbar ARGS` (env: extra "K=V" entries, may be NULL) with a new pseudo-terminal of
 * rows x cols as its controlling terminal and stdin, stdout and stderr, in the test's
 * workspace (or cwd when not NULL), TERM=xterm-256color. */
void tty_start_in(clit *t, ttyrun *r, const char *cwd, unsigned short rows, unsigned short cols,
                  const char *const *env, const char *const *args);
void tty_start(clit *t, ttyrun *r, unsigned short rows, unsigned short cols,
               const char *const *args);
/* What the terminal showed so far (NUL-terminated). */
const char *tty_text(ttyrun *r);
/* Until the terminal shows needle (fails the test after 60 s or at EOF without it). */
void tty_wait_for(ttyrun *r, const char *needle);
void tty_type(ttyrun *r, const char *bytes, size_t n);
/* Read until EOF, reap sandbar; its exit code (-N after signal N). */
int tty_finish(clit *t, ttyrun *r);
void tty_fini(ttyrun *r);
/* The terminal's settings now equal those before sandbar started. */
void assert_settings_back(ttyrun *r);
/* While the command runs the user's terminal is raw: no echo, no line editing, no signals. */
void assert_raw(ttyrun *r);

#endif
