/* Taking an exec's input again (sandbox.h, input_reattach): sandbar-init holds a copy of it
 * (init/input.c) for a host that restarted while the command was reading its stdin or
 * terminal. */
#include "sandbox_int.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static sb_err *input_call(sb_sandbox *sb, const char *exec_id, const char *action, int *fd,
                          bool *tty)
{
	sb_err *err = sb_lease_check_id("exec", exec_id);
	if (err)
		return err;
	sbi_msg m, reply;
	sbi_msg_init(&m);
	sbi_msg_init(&reply);
	sbi_msg_add(&m, "op", "input");
	sbi_msg_add(&m, "id", exec_id);
	sbi_msg_add(&m, "action", action);
	int got = -1;
	err = sb_ctl_call_fd(sb, &m, NULL, 0, &reply, NULL, NULL, fd ? &got : NULL);
	if (!err && strcmp(sbi_msg_get(&reply, "ok") ? sbi_msg_get(&reply, "ok") : "0", "1")) {
		long long e = 0;
		sbi_msg_geti(&reply, "errno", 1, 4095, &e);
		const char *msg = sbi_msg_get(&reply, "msg");
		err = sb_err_new(e == ENOENT ? SB_E_NOTFOUND : SB_E_STATE_LOST,
		                 "exec %s of lease %s: %s", exec_id, sb->id,
		                 msg ? msg : "its input cannot be taken");
	}
	if (!err && fd && got < 0)
		err = sb_err_new(SB_E_PROTOCOL, "exec %s of lease %s: sandbar-init sent no input",
		                 exec_id, sb->id);
	if (!err && fd) {
		long long t = 0;
		sbi_msg_geti(&reply, "tty", 0, 1, &t);
		*fd = got;
		*tty = t == 1;
		got = -1;
	}
	if (got >= 0)
		close(got);
	sbi_msg_deinit(&m);
	sbi_msg_deinit(&reply);
	return err;
}

sb_err *sb_sandbox_exec_input_attach(sb_sandbox *sb, const char *exec_id, int *fd, bool *tty)
{
	*fd = -1;
	*tty = false;
	return input_call(sb, exec_id, "attach", fd, tty);
}

sb_err *sb_sandbox_exec_input_release(sb_sandbox *sb, const char *exec_id)
{
	return input_call(sb, exec_id, "release", NULL, NULL);
}
