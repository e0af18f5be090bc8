/* Running remote scripts: every operation of the command path is `<shell> -c <script>` executed
 * through the runner from cwd "/" (the workspace may be deleted and recreated under it), and a
 * failure becomes an error carrying the script and the tails of stderr and stdout (spec §5.3),
 * because some tools (tar) report only on stdout.
 */
#include "rt.h"

#include <string.h>

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* Start of the last `keep` bytes, moved forward to a UTF-8 code point boundary. */
static size_t tail_start(const char *s, size_t len, size_t keep)
{
	if (len <= keep)
		return 0;
	size_t i = len - keep;
	while (i < len && ((unsigned char)s[i] & 0xC0u) == 0x80u)
		i++;
	return i;
}

void sb_rt_append_tail(sb_buf *out, const char *label, const char *data, size_t len)
{
	size_t b = 0, e = len;
	while (b < e && is_space(data[b]))
		b++;
	while (e > b && is_space(data[e - 1]))
		e--;
	sb_buf_appendf(out, "%s: ", label);
	if (e - b > SB_RT_TAIL_CHARS) {
		size_t s = b + tail_start(data + b, e - b, SB_RT_TAIL_CHARS);
		sb_buf_appends(out, "...[truncated]\n");
		sb_buf_append(out, data + s, e - s);
	} else {
		sb_buf_append(out, data + b, e - b);
	}
}

static bool has_text(const sb_buf *b)
{
	for (size_t i = 0; i < b->len; i++)
		if (!is_space(b->data[i]))
			return true;
	return false;
}

sb_err *sb_rt_command_error(const char *action, const sb_exec_result *res)
{
	sb_buf m = SB_BUF_INIT;
	size_t alen = strlen(action);
	/* A printf upload script carries 32 KiB of payload: keep the message readable. */
	if (alen > SB_RT_TAIL_CHARS) {
		sb_buf_append(&m, action, SB_RT_TAIL_CHARS);
		sb_buf_appends(&m, "...[truncated]");
	} else {
		sb_buf_appends(&m, action);
	}
	if (res->has_exit_code)
		sb_buf_appendf(&m, " failed with exit code %d", res->exit_code);
	else
		sb_buf_appends(&m, " failed with exit code null");
	if (res->signal[0])
		sb_buf_appendf(&m, " (signal %s)", res->signal);
	if (res->timed_out)
		sb_buf_appends(&m, " (timed out)");
	if (res->transport_error_code)
		sb_buf_appendf(&m, " (transport error %s: %s)", res->transport_error_code,
		               res->transport_error_msg ? res->transport_error_msg : "");
	bool e = has_text(&res->err), o = has_text(&res->out);
	if (e || o) {
		sb_buf_appends(&m, ":");
		if (e) {
			sb_buf_appends(&m, "\n");
			sb_rt_append_tail(&m, "stderr", res->err.data, res->err.len);
		}
		if (o) {
			sb_buf_appends(&m, "\n");
			sb_rt_append_tail(&m, "stdout", res->out.data, res->out.len);
		}
	}
	sb_err *err =
	    sb_err_new(res->timed_out ? SB_E_TIMEOUT : SB_E_COMMAND, "%s", sb_buf_cstr(&m));
	sb_buf_deinit(&m);
	return err;
}

sb_err *sb_rt_check_cancel(const sb_rt_ctx *c)
{
	if (c->cancel && sb_cancel_is_set(c->cancel))
		return sb_err_new(SB_E_CANCELED, "managed runtime operation cancelled");
	return NULL;
}

sb_err *sb_rt_run(const sb_rt_ctx *c, const char *script, const sb_rt_stdin *in,
                  const sb_exec_callbacks *cb, size_t output_cap, sb_exec_result *res)
{
	sb_err *cerr = sb_rt_check_cancel(c);
	if (cerr)
		return cerr;
	char *argv[] = {(char *)c->shell, (char *)"-c", (char *)script, NULL};
	sb_exec_request req = {
	    .argv = argv,
	    .cwd = "/",
	    .has_stdin = in && in->has,
	    .stdin_data = in && !in->stream ? in->data : NULL,
	    .stdin_len = in && !in->stream ? in->len : 0,
	    .stdin_stream = in && in->has && in->stream,
	    .stdin_fd = in && in->stream ? in->fd : -1,
	    .timeout_ms = c->timeout_ms,
	    .output_cap = output_cap,
	};
	sb_exec_result local;
	sb_exec_result *r = res ? res : &local;
	if (!res)
		sb_exec_result_init(&local);
	sb_err *err = sb_runner_execute(c->runner, &req, cb, c->cancel, r);
	if (err)
		err = sb_err_prefix(err, "running remote script %.200s", script);
	else if (!sb_exec_result_ok(r))
		err = sb_rt_command_error(script, r);
	if (!res)
		sb_exec_result_deinit(&local);
	return err;
}

void sb_rt_run_quiet(const sb_rt_ctx *c, const char *script)
{
	sb_rt_ctx quiet = *c;
	quiet.cancel = NULL; /* cleanup must run even after a cancel */
	sb_err *err = sb_rt_run(&quiet, script, NULL, NULL, 0, NULL);
	if (err) {
		sb_debug("managed runtime cleanup failed (ignored): %s", err->msg);
		sb_err_free(err);
	}
}

char *sb_rt_temp_name(const char *dest, const char *tag)
{
	unsigned char rnd[8];
	char hex[17];
	sb_err *err = sb_random_bytes(rnd, sizeof rnd);
	if (err) {
		/* The kernel CSPRNG failing is not recoverable in a meaningful way; a time-based
		 * name still keeps concurrent uploads apart. */
		sb_err_free(err);
		int64_t t = sb_mono_ns();
		memcpy(rnd, &t, sizeof rnd);
	}
	sb_hex_encode(rnd, sizeof rnd, hex);
	return sb_strfmt("%s%s%s", dest, tag, hex);
}

char *sb_rt_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return sb_xstrdup(".");
	if (slash == path)
		return sb_xstrdup("/");
	return sb_xstrndup(path, (size_t)(slash - path));
}
