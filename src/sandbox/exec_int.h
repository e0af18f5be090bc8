/* Private to the host side of execs (exec.c, exec_wait.c, exec_admin.c): the handle, and what both
 * use. */
#ifndef SANDBAR_EXEC_INT_H
#define SANDBAR_EXEC_INT_H

#include "sandbox_int.h"

#define ALIVE_CHECK_MS 100 /* a dead supervisor is reported within a second (#18) */

struct sb_sandbox_exec {
	sb_sandbox *sb;
	char id[SB_SANDBOX_ID_MAX + 1];
	int dirfd;
	int out[2];
	int ino;
	int stdin_w;
	int64_t alive_checked_ms; /* last liveness check of init while the exec ran */
	int pid;                  /* from the start reply, until status.json has it */
	int64_t started_ms;
	int conn; /* start connection, on which init announces the exit */
	int wake; /* started execs: pipe init writes a byte to on output / exit */
	sbi_reader rd;
	bool final; /* final_st holds the outcome from init's exit message */
	sb_sandbox_exec_status final_st;
};

/* Is init still there to finish x? Checked at most every ALIVE_CHECK_MS while it runs; an
 * error (SB_E_STATE_LOST) once the sandbox is gone. */
sb_err *sb_exec_check_alive(sb_sandbox_exec *x);
/* Ask sandbar-init for an exec's state ({op:status}); *reply holds its answer. */
sb_err *sb_exec_ask_status(sb_sandbox *sb, const char *exec_id, sbi_msg *reply);

#endif
