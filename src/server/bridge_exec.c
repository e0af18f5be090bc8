/* POST /exec of the bridge protocol (§2.3, §2.6) on the daemon's exec service: the request is
 * composed into one `sh -c` script (profile, cd, stdin staged through a private temp file,
 * exec of the quoted command) with env values passed in the exec's environment, never in argv.
 * The answer is one JSON result with both streams whole (streamed from the spool, up to the
 * operator's --max-output; 413 past it, never a cut result), or with streamOutput an SSE stream of
 * `stdout`/`stderr` chunks (UTF-8 sequences never split between events), `complete` with the full
 * result, or `error`, with the daemon's SSE writer adding `: keepalive` every 15 s.
 *
 * Named sessions keep a cwd and an environment per (lease, acquisition, sessionId) in the state
 * database (store_sessions.c), so they survive a restart; modes survive the runtime's `tar -x`
 * (TAR_OPTIONS=--preserve-permissions unless the client sets TAR_OPTIONS). A timeout in the default
 * session destroys the lease once no other exec runs (the bridge's destroy-after-execution);
 * in a named session it discards that session.
 */
#include "bridge_int.h"
#include "exec_result.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sb_json.h"

/* ---------------------------------------------------------------- the request */

typedef struct exec_call {
	sbs_server *srv;
	sbs_lease *lease;
	sbs_exec *x;
	/* sessions belong to one acquisition of a lease: a later owner of the same (reusable)
	 * lease id never inherits an earlier owner's cwd or env */
	char *lease_id, *acquisition_id, *session_id;
	bool named;
	int64_t timeout_ms;
	uint64_t max_output;     /* per stream; a longer output is an error, never a cut result */
	sbs_result_json *result; /* the finished exec's JSON result, being written */
	bool after_due;          /* after_exec runs once the result was written */
	bool timed_out;
	/* streaming */
	sbs_sse *sse;
	sbs_exec_cursor cur;
	uint64_t sent[3]; /* per stream: bytes delivered in events (what `id:` carries) */
	sb_buf carry[3];  /* per stream: an incomplete UTF-8 sequence held back */
	sb_buf chunk;
} exec_call;

static void after_exec(exec_call *c);

static void call_free(void *ud)
{
	exec_call *c = ud;
	if (!c)
		return;
	sbs_result_json_free(c->result);
	if (c->after_due)
		after_exec(c);
	if (c->x)
		sbs_exec_free(c->x);
	if (c->lease)
		sbs_lease_unref(c->lease);
	for (int i = 0; i < 3; i++)
		sb_buf_deinit(&c->carry[i]);
	sb_buf_deinit(&c->chunk);
	free(c->lease_id);
	free(c->acquisition_id);
	free(c->session_id);
	free(c);
}

/* The bridge's result, {exitCode, signal, timedOut, stdout, stderr, stdoutTruncated,
 * stderrTruncated}, with every byte of both streams (never a tail: a cut result would be
 * taken for the whole by clients that read files back through exec). */
static sb_err *start_result(exec_call *c, const sb_sandbox_exec_status *st)
{
	sb_err *err = sbs_result_check_size(st, c->max_output);
	if (err)
		return err;
	c->timed_out = st->timed_out;
	c->after_due = true;
	c->result = sbs_result_json_new(c->x);
	sb_buf h = SB_BUF_INIT;
	if (st->has_exit_code && !st->timed_out)
		sb_buf_appendf(&h, "{\"exitCode\":%d", st->exit_code);
	else
		sb_buf_appends(&h, "{\"exitCode\":null");
	if (st->signal)
		sb_buf_appendf(&h, ",\"signal\":\"%s\"", sb_signal_name(st->signal));
	else
		sb_buf_appends(&h, ",\"signal\":null");
	sb_buf_appendf(&h, ",\"timedOut\":%s,\"stdout\":", st->timed_out ? "true" : "false");
	sbs_result_json_text(c->result, sb_buf_cstr(&h));
	sb_buf_deinit(&h);
	char *note = st->timed_out
	                 ? sb_strfmt("Command timed out after %lldms\n", (long long)c->timeout_ms)
	                 : NULL;
	err = sbs_result_json_stream(c->result, SB_STREAM_STDOUT, st->stdout_size,
	                             SBS_TEXT_REPAIRED, NULL);
	if (!err) {
		sbs_result_json_text(c->result, ",\"stderr\":");
		err = sbs_result_json_stream(c->result, SB_STREAM_STDERR, st->stderr_size,
		                             SBS_TEXT_REPAIRED, note);
	}
	sbs_result_json_text(c->result, ",\"stdoutTruncated\":false,\"stderrTruncated\":false}");
	free(note);
	return err;
}

/* A default-session timeout destroys the lease, as the bridge's destroy-after-execution does.
 * The destroy is registered before the client can read the result's end: the exec's fence
 * defers it until the reply has read the spool, and meanwhile the lease already answers as
 * being destroyed, so a resume racing the reply's last bytes sees the state as lost. */
static void destroy_after_timeout(exec_call *c)
{
	sbs_destroy_opts o = {.acquisition_id = c->acquisition_id,
	                      .defer = true,
	                      .reason = "paperclip default-session timeout"};
	sbs_destroy_outcome out;
	sb_err *err = sbs_leases_destroy(c->srv->leases, c->lease_id, &o, &out, NULL);
	if (err) {
		sb_warn("bridge exec on lease %s timed out; destroying the lease failed: %s",
		        c->lease_id, err->msg);
		sb_err_free(err);
	}
}

/* After the result was written: a timeout discards a named session; a default session's
 * lease, whose destroy destroy_after_timeout registered, goes once the exec's fence ends. */
static void after_exec(exec_call *c)
{
	c->after_due = false;
	if (!c->timed_out)
		return;
	if (c->named) {
		bridge_session_drop(c->srv, c->lease_id, c->acquisition_id, c->session_id);
		return;
	}
	sbs_exec_free(c->x);
	c->x = NULL;
	sbs_lease_unref(c->lease);
	c->lease = NULL;
	bridge_session_drop(c->srv, c->lease_id, c->acquisition_id, NULL);
}

/* Wait for the end and prepare the result; after_exec runs once it is written. */
static sb_err *finish(exec_call *c)
{
	sb_sandbox_exec_status st;
	sb_err *err = sbs_exec_wait_end(c->x, NULL, &st);
	if (!err)
		err = start_result(c, &st);
	if (!err && c->timed_out && !c->named)
		destroy_after_timeout(c);
	return err;
}

static ssize_t result_fill(void *ud, char *buf, size_t max)
{
	exec_call *c = ud;
	size_t got = 0;
	sb_err *err = sbs_result_json_read(c->result, buf, max, &got);
	if (err) {
		/* Cut the response: a chunked body without its end tells the client. */
		sb_warn("bridge exec result on lease %s: %s", c->lease_id, err->msg);
		sb_err_free(err);
		return -2;
	}
	return got ? (ssize_t)got : -1;
}

/* ---------------------------------------------------------------- streaming */

/* An output event, `id: <exec id>:<stdout bytes>,<stderr bytes>` first: the byte counts
 * delivered up to and including this event, which a client hands back as Last-Event-ID
 * (re-posting the same /exec) to resume the stream right after it. */
static void emit_chunk(exec_call *c, sb_stream stream)
{
	if (c->chunk.len == 0)
		return;
	json_t *j = json_pack("{s:s%}", "data", c->chunk.data, c->chunk.len);
	char *d = sb_json_dumps(j);
	json_decref(j);
	sb_buf ev = SB_BUF_INIT;
	sb_buf_appendf(&ev, "id: %s:%llu,%llu\nevent: %s\ndata: %s\n\n", sbs_exec_id(c->x),
	               (unsigned long long)c->sent[SB_STREAM_STDOUT],
	               (unsigned long long)c->sent[SB_STREAM_STDERR],
	               stream == SB_STREAM_STDOUT ? "stdout" : "stderr", d);
	sbs_sse_raw(c->sse, ev.data, ev.len);
	sb_buf_deinit(&ev);
	free(d);
	sb_buf_clear(&c->chunk);
}

static sb_err *on_output(void *ud, sb_stream stream, uint64_t offset, const char *data, size_t len)
{
	exec_call *c = ud;
	sb_utf8_feed(&c->carry[stream], data, len, false, &c->chunk);
	/* Held-back bytes of an incomplete character are not delivered yet. */
	c->sent[stream] = offset + len - c->carry[stream].len;
	emit_chunk(c, stream);
	return NULL;
}

#define SSE_RESULT_PIECE (256u * 1024u)

/* The `complete` event carries the whole result, written a piece per step so that a large one
 * waits for the client instead of filling memory. False once the event is complete. */
static bool write_complete(exec_call *c, sbs_sse *s)
{
	char *piece = sb_xmalloc(SSE_RESULT_PIECE);
	size_t got = 0;
	sb_err *err = sbs_result_json_read(c->result, piece, SSE_RESULT_PIECE, &got);
	if (!err && got)
		sbs_sse_raw(s, piece, got);
	free(piece);
	if (err) {
		/* The event is half written: only cutting the stream can tell the client. */
		sb_warn("bridge exec result on lease %s: %s", c->lease_id, err->msg);
		sb_err_free(err);
		sbs_sse_abort(s);
		return false;
	}
	if (got)
		return true;
	sbs_sse_raw(s, "\n\n", 2);
	return false;
}

static bool sse_step(void *ud, sbs_sse *s, int64_t max_wait_ms)
{
	exec_call *c = ud;
	c->sse = s;
	if (c->result)
		return write_complete(c, s);
	if (sbs_sse_draining(s))
		return false;
	bool finished = false;
	sb_err *err =
	    sbs_exec_pump(c->x, &c->cur, 256 * 1024, max_wait_ms, on_output, c, &finished, NULL);
	if (!err && !finished)
		return true;
	if (!err) {
		/* Whatever is still held back can no longer complete. */
		for (int st = SB_STREAM_STDOUT; st <= SB_STREAM_STDERR; st++) {
			c->sent[st] += c->carry[st].len;
			sb_utf8_feed(&c->carry[st], "", 0, true, &c->chunk);
			emit_chunk(c, (sb_stream)st);
		}
		err = finish(c);
	}
	if (err) {
		sbs_sse_event(s, "error", NULL, json_pack("{s:s}", "error", err->msg));
		sb_err_free(err);
		return false;
	}
	sbs_sse_raw(s, "event: complete\ndata: ", 22);
	return true;
}

/* ---------------------------------------------------------------- parsing */

static sb_err *read_body(sbs_req *r, json_t **out)
{
	*out = NULL;
	uint64_t size = 0;
	int fd = sbs_req_body_fd(r, &size);
	if (size > BRIDGE_EXEC_BODY_MAX)
		return sb_err_new(SB_E_TOO_LARGE,
		                  "the exec body is %llu bytes, over the %u byte "
		                  "limit",
		                  (unsigned long long)size, BRIDGE_EXEC_BODY_MAX);
	sb_buf b = SB_BUF_INIT;
	sb_err *err = fd >= 0 ? sb_read_fd_all(fd, BRIDGE_EXEC_BODY_MAX, &b) : NULL;
	if (err) {
		sb_buf_deinit(&b);
		return sb_err_prefix(err, "reading the exec body");
	}
	json_error_t jerr;
	json_t *j = json_loadb(b.data ? b.data : "{}", b.len ? b.len : 2, JSON_ALLOW_NUL, &jerr);
	sb_buf_deinit(&b);
	if (!json_is_object(j)) {
		json_decref(j);
		return sb_err_new(SB_E_INVAL, "the exec body is not a JSON object%s%s",
		                  j ? "" : ": ", j ? "" : jerr.text);
	}
	*out = j;
	return NULL;
}

/* env: {K: "v"} into "K=V" entries, under the bridge's key rule. */
static sb_err *parse_env(const json_t *body, char ***env)
{
	json_t *o = json_object_get(body, "env");
	if (!o || json_is_null(o))
		return NULL;
	if (!json_is_object(o))
		return sb_err_new(SB_E_INVAL, "env must be an object of strings");
	if (json_object_size(o) > SBS_EXEC_MAX_ENV)
		return sb_err_new(SB_E_INVAL, "env has more than %d entries", SBS_EXEC_MAX_ENV);
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v)
	{
		if (!bridge_env_key_ok(k))
			return sb_err_new(SB_E_INVAL,
			                  "Invalid sandbox environment variable key: %s", k);
		if (!json_is_string(v) || memchr(json_string_value(v), 0, json_string_length(v)))
			return sb_err_new(SB_E_INVAL, "env.%s must be a string without NUL bytes",
			                  k);
		char *kv = sb_strfmt("%s=%s", k, json_string_value(v));
		sb_strv_push(env, kv);
		free(kv);
	}
	return NULL;
}

static void add_keys_of(char *const *env, char ***keys)
{
	for (char *const *e = env; e && *e; e++) {
		char *k = sb_xstrndup(*e, (size_t)(strchr(*e, '=') - *e));
		sb_strv_push(keys, k);
		free(k);
	}
}

/* Last-Event-ID of the bridge stream: "<exec id>:<stdout bytes>,<stderr bytes>". */
static bool parse_resume_id(const char *v, char **exec_id, uint64_t *o, uint64_t *e)
{
	const char *colon = strrchr(v, ':');
	if (!colon || colon == v || (size_t)(colon - v) > 128)
		return false;
	unsigned long long a = 0, b = 0;
	char tail = 0;
	if (sscanf(colon + 1, "%llu,%llu%c", &a, &b, &tail) != 2)
		return false;
	*exec_id = sb_xstrndup(v, (size_t)(colon - v));
	*o = a;
	*e = b;
	return true;
}

void bridge_route_exec(sbs_req *r, void *ud)
{
	sbs_server *srv = ud;
	json_t *body = NULL;
	bridge_opts o;
	memset(&o, 0, sizeof(o));
	char *id = NULL, *acq = NULL, *cmd = NULL, *cwd = NULL;
	char **args = NULL, **env = NULL, **keys = NULL;
	char *script = NULL, *tag = NULL, *resume_exec = NULL;
	uint64_t resume_off[3] = {0, 0, 0};
	exec_call *c = NULL;
	sbs_lease_info info;
	sbs_lease_info_init(&info);
	sbs_exec_spec spec = {0};
	sb_err *err = read_body(r, &body);
	if (err) {
		sbs_reply_err(r, err);
		return;
	}
	if ((err = bridge_opts_parse(body, &o))) {
		sbs_reply_error(r, 400, "invalid_request", "%s", err->msg);
		goto out;
	}
	id = bridge_str(body, "providerLeaseId", NULL);
	acq = bridge_str(body, "acquisitionId", NULL);
	json_t *jcmd = json_object_get(body, "command");
	if (json_is_string(jcmd) && json_string_length(jcmd) > 0 &&
	    !memchr(json_string_value(jcmd), 0, json_string_length(jcmd)))
		cmd = sb_xstrdup(json_string_value(jcmd));
	if (!id || !cmd) {
		sbs_reply_error(r, 400, "invalid_request",
		                "providerLeaseId and command are required");
		goto out;
	}
	/* Checked before the lease is even looked up: no unowned command ever runs. A G1 client
	 * (v1, no acquisitionId) may run commands only on a lease acquired through G1. */
	bool g1 = !acq && bridge_req_is_v1(r);
	if (!acq && !g1) {
		sbs_reply_error(r, 400, "invalid_request",
		                "acquisitionId is required (ownership API v2)");
		goto out;
	}
	sbs_req_set_lease(r, id);
	bool stream = bridge_bool(body, "streamOutput", false);
	const char *lei = sbs_req_header(r, "Last-Event-ID");
	if (lei && *lei && stream &&
	    !parse_resume_id(lei, &resume_exec, &resume_off[SB_STREAM_STDOUT],
	                     &resume_off[SB_STREAM_STDERR])) {
		sbs_reply_error(r, 400, "invalid_request",
		                "Last-Event-ID \"%.200s\" is not an id of this stream "
		                "(\"<exec id>:<stdout bytes>,<stderr bytes>\")",
		                lei);
		goto out;
	}
	json_t *ja = json_object_get(body, "args");
	size_t i;
	json_t *v;
	if (json_is_array(ja)) {
		if (json_array_size(ja) > SBS_EXEC_MAX_ARGS) {
			sbs_reply_error(r, 400, "invalid_request", "more than %d args",
			                SBS_EXEC_MAX_ARGS);
			goto out;
		}
		json_array_foreach(ja, i, v)
		{
			/* Non-string args are dropped, as the bridge drops them; NUL cannot
			 * travel in argv. */
			if (json_is_string(v) &&
			    !memchr(json_string_value(v), 0, json_string_length(v)))
				sb_strv_push(&args, json_string_value(v));
		}
	}
	if ((err = parse_env(body, &env))) {
		sbs_reply_error(r, 400, "invalid_request", "%s", err->msg);
		goto out;
	}
	cwd = bridge_str(body, "cwd", NULL);
	if (cwd && (strlen(cwd) > BRIDGE_STR_MAX || cwd[0] != '/')) {
		sbs_reply_error(r, 400, "invalid_request",
		                "cwd \"%.200s\" must be an absolute path", cwd);
		goto out;
	}
	json_t *jin = json_object_get(body, "stdin");
	if (jin && !json_is_null(jin) && !json_is_string(jin)) {
		sbs_reply_error(r, 400, "invalid_request", "stdin must be a string or null");
		goto out;
	}
	/* sandbar's extension (health: sandbar.cancel): the client names the exec, so that it can
	 * cancel the command through the native signal route while it waits. */
	json_t *jxid = json_object_get(body, "sandbarExecId");
	if (jxid && !(json_is_string(jxid) && sbs_id_ok(json_string_value(jxid)))) {
		sbs_reply_error(r, 400, "invalid_request",
		                "sandbarExecId must be a string of [A-Za-z0-9_-]{1,64}");
		goto out;
	}

	c = sb_xcalloc(1, sizeof(*c));
	c->srv = srv;
	c->lease_id = sb_xstrdup(id);
	c->session_id = sb_xstrdup(o.session_id);
	c->named = o.named;
	c->timeout_ms = o.timeout_ms;
	c->max_output = srv->limits.output_cap;
	c->cur.streams = (1u << SB_STREAM_STDOUT) | (1u << SB_STREAM_STDERR);
	if ((err = sbs_leases_get(srv->leases, id, SBS_GET_USE, &c->lease))) {
		if (err->code == SB_E_STATE_LOST)
			sbs_reply_error(r, 409, "sandbox_state_lost",
			                "the sandbox of lease %s is gone: %s", id, err->msg);
		else
			sbs_reply_error(r, 409, "acquisition_conflict",
			                "no usable lease %s for this acquisition: %s", id,
			                err->msg);
		goto out;
	}
	sbs_lease_get_info(c->lease, &info);
	if (g1 && bridge_lease_is_g1(&info))
		acq = sb_xstrdup(info.acquisition_id);
	if (!acq) {
		bridge_reply_owned_by_v2(r, id);
		goto out;
	}
	c->acquisition_id = sb_xstrdup(acq);
	if (!info.acquisition_id || strcmp(info.acquisition_id, acq) != 0 ||
	    !bridge_record_meta(&info)) {
		sbs_reply_error(r, 409, "acquisition_conflict",
		                "lease %s is not owned by acquisition %s", id, acq);
		goto out;
	}
	if (o.named) {
		if ((err = bridge_session_apply(srv, id, acq, o.session_id, &env, &cwd))) {
			sbs_reply_error(r, err->code == SB_E_INVAL ? 400 : 500,
			                err->code == SB_E_INVAL ? "invalid_request"
			                                        : "internal_error",
			                "%s", err->msg);
			goto out;
		}
		/* A session starts in the lease's workspace directory. */
		const char *home =
		    json_string_value(json_object_get(bridge_record_meta(&info), "requestedCwd"));
		if (!cwd && home)
			cwd = sb_xstrdup(home);
	}
	/* GNU tar run by a non-root user narrows extracted modes by the umask (a 664 file lands
	 * as 644); Cloudflare's containers run commands as root, where tar keeps them. */
	if (!sb_env_get(env, "TAR_OPTIONS", strlen("TAR_OPTIONS")))
		sb_strv_push(&env, "TAR_OPTIONS=--preserve-permissions");
	sb_strv_free(keys);
	keys = NULL;
	add_keys_of(env, &keys);

	bool has_stdin = json_is_string(jin) && json_string_length(jin) > 0;
	if (has_stdin)
		tag = sb_random_id("");
	bridge_cmd cc = {
	    .command = cmd, .args = args, .cwd = cwd, .env_keys = keys, .stdin_tag = tag};
	script = bridge_exec_script(&cc);
	sb_strv_push(&spec.argv, "sh");
	sb_strv_push(&spec.argv, "-c");
	sb_strv_push(&spec.argv, script);
	spec.cwd = sb_xstrdup("/");
	spec.env = sb_strv_dup(env);
	spec.has_stdin = has_stdin;
	if (has_stdin)
		sb_buf_append(&spec.stdin_data, json_string_value(jin), json_string_length(jin));
	spec.timeout_ms = o.timeout_ms;
	if (jxid)
		spec.exec_id = sb_xstrdup(json_string_value(jxid));
	if (resume_exec) {
		/* A resumed stream: the same command, from right after the last event seen. */
		if ((err = sbs_execs_attach(srv->execs, c->lease, resume_exec, &c->x))) {
			sbs_reply_error(r, 400, "invalid_request",
			                "Last-Event-ID names no exec of lease %s to resume: %s", id,
			                err->msg);
			goto out;
		}
		for (int st = SB_STREAM_STDOUT; st <= SB_STREAM_STDERR; st++)
			c->cur.off[st] = c->sent[st] = resume_off[st];
		sbs_reply_sse(r, sse_step, c, call_free);
		c = NULL;
		goto out;
	}
	if ((err = sbs_execs_start(srv->execs, c->lease, &spec, &c->x))) {
		sbs_reply_error(r, err->code == SB_E_CONFLICT ? 409 : 500,
		                err->code == SB_E_CONFLICT ? "acquisition_conflict"
		                                           : "internal_error",
		                "starting the command on lease %s failed: %s", id, err->msg);
		goto out;
	}
	if (stream) {
		sbs_reply_sse(r, sse_step, c, call_free);
		c = NULL;
		goto out;
	}
	if ((err = finish(c))) {
		if (err->code == SB_E_TOO_LARGE)
			sbs_reply_error(r, 413, "output_too_large", "exec on lease %s: %s", id,
			                err->msg);
		else
			sbs_reply_error(r, 500, "internal_error", "exec on lease %s: %s", id,
			                err->msg);
		goto out;
	}
	sbs_reply_stream(r, 200, "application/json", result_fill, c, call_free);
	c = NULL;
out:
	call_free(c);
	sb_err_free(err);
	sbs_exec_spec_deinit(&spec);
	sbs_lease_info_deinit(&info);
	free(script);
	free(tag);
	free(resume_exec);
	sb_strv_free(args);
	sb_strv_free(env);
	sb_strv_free(keys);
	free(cwd);
	free(cmd);
	free(id);
	free(acq);
	bridge_opts_deinit(&o);
	json_decref(body);
}
