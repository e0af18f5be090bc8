/* Errors: a code a program can branch on plus a message a person can act on.
 * Messages are built with printf formats and carried up the stack, gaining context with
 * sb_err_prefix() ("staging workspace: writing /x: No space left on device"). */
#include <sandbar/base.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sb_err *err_alloc(sb_errcode code, char *msg)
{
	sb_err *e = sb_xcalloc(1, sizeof *e);
	e->code = code;
	e->msg = msg;
	return e;
}

static char *vfmt(const char *fmt, va_list ap) SB_PRINTF(1, 0);
static char *vfmt(const char *fmt, va_list ap)
{
	sb_buf b = SB_BUF_INIT;
	sb_buf_vappendf(&b, fmt, ap);
	return sb_buf_steal(&b, NULL);
}

sb_err *sb_err_new(sb_errcode code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = vfmt(fmt, ap);
	va_end(ap);
	return err_alloc(code, msg);
}

sb_err *sb_err_sys(int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sb_buf b = SB_BUF_INIT;
	sb_buf_vappendf(&b, fmt, ap);
	va_end(ap);
	sb_buf_appendf(&b, ": %s", strerror(errnum));
	sb_errcode code = SB_E_IO;
	if (errnum == ENOENT)
		code = SB_E_NOTFOUND;
	else if (errnum == EEXIST)
		code = SB_E_EXISTS;
	sb_err *e = err_alloc(code, sb_buf_steal(&b, NULL));
	e->sys_errno = errnum;
	return e;
}

sb_err *sb_err_prefix(sb_err *err, const char *fmt, ...)
{
	if (!err)
		return NULL;
	va_list ap;
	va_start(ap, fmt);
	sb_buf b = SB_BUF_INIT;
	sb_buf_vappendf(&b, fmt, ap);
	va_end(ap);
	sb_buf_appendf(&b, ": %s", err->msg);
	free(err->msg);
	err->msg = sb_buf_steal(&b, NULL);
	return err;
}

void sb_err_free(sb_err *err)
{
	if (!err)
		return;
	free(err->msg);
	free(err);
}

const char *sb_errcode_name(sb_errcode code)
{
	switch (code) {
	case SB_E_OK:
		return "ok";
	case SB_E_INVAL:
		return "invalid_request";
	case SB_E_IO:
		return "io_error";
	case SB_E_NOTFOUND:
		return "not_found";
	case SB_E_EXISTS:
		return "already_exists";
	case SB_E_TOO_LARGE:
		return "too_large";
	case SB_E_FILE_TOO_LARGE:
		return "ERR_SANDBOX_FILE_TOO_LARGE";
	case SB_E_ESCAPE:
		return "path_escape";
	case SB_E_TIMEOUT:
		return "timeout";
	case SB_E_CANCELED:
		return "canceled";
	case SB_E_PROTOCOL:
		return "protocol_error";
	case SB_E_CONFLICT:
		return "conflict";
	case SB_E_AUTH:
		return "unauthorized";
	case SB_E_BUSY:
		return "busy";
	case SB_E_UNSUPPORTED:
		return "unsupported";
	case SB_E_STATE_LOST:
		return "sandbox_state_lost";
	case SB_E_SPAWN:
		return "spawn_failed";
	case SB_E_COMMAND:
		return "command_failed";
	case SB_E_INTERNAL:
		return "internal_error";
	}
	return "unknown_error";
}
