/* An exec's streamed input, held for a host that comes back (DESIGN.md: sandboxes and their
 * execs outlive a daemon crash). The host keeps writing into a command's stdin pipe or
 * terminal; when it dies, its descriptor goes with it. init keeps its own copy of a pipe's
 * write end (sent with the exec request, hold=1) and a terminal's master (which it reads the
 * output from anyway), so a restarted host can ask for the input again: {op:input, id,
 * action:attach} answers a copy. {action:release} is the host's end of input: the pipe's copy
 * here is closed, so the command sees EOF once the host's is closed too; a terminal can no
 * longer be attached to. At the command's exit the copy is closed (exec.c). */
#include "init.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static void refuse(sbi_msg *reply, int e, const char *msg)
{
	sbi_msg_add(reply, "ok", "0");
	sbi_msg_addi(reply, "errno", e);
	sbi_msg_add(reply, "msg", msg);
}

void sbi_input_request(sbi_state *st, const sbi_msg *req, sbi_msg *reply, int *reply_fd)
{
	const char *id = sbi_msg_get(req, "id"), *action = sbi_msg_get(req, "action");
	sbi_exec *x = id ? sbi_exec_find(st, id) : NULL;
	if (!action || (strcmp(action, "attach") != 0 && strcmp(action, "release") != 0)) {
		refuse(reply, EINVAL, "input: action is attach or release");
		return;
	}
	if (!x || x->exited) {
		refuse(reply, ENOENT, "the exec is not running");
		return;
	}
	int held = x->tty ? (x->input_released ? -1 : x->pipe[0]) : x->input;
	if (strcmp(action, "release") == 0) {
		if (!x->tty && x->input >= 0) {
			close(x->input);
			x->input = -1;
		}
		x->input_released = true;
		sbi_msg_add(reply, "ok", "1");
		return;
	}
	if (held < 0) {
		refuse(reply, EPIPE, "the exec's input was closed, or it was started without one");
		return;
	}
	*reply_fd = fcntl(held, F_DUPFD_CLOEXEC, 3);
	if (*reply_fd < 0) {
		refuse(reply, errno, "duplicating the exec's input");
		return;
	}
	sbi_msg_add(reply, "ok", "1");
	sbi_msg_addi(reply, "tty", x->tty);
}
