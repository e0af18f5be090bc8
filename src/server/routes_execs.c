/* The native API's exec routes (docs/api.md): start an exec (JSON result or SSE), its status,
 * the list, its output from any offset (raw, JSON or SSE, followed or not), signals, and the
 * sandbox's processes. Input to a running exec: routes_exec_input.c. */
#include "exec_result.h"
#include "server_int.h"

#include <assert.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "sb_json.h"

/* SSE output: "start", "stdout"/"stderr" with offsets, "end"; ids are "<out>,<err>" offsets
 * after the event, which is what Last-Event-ID hands back. */
typedef struct sse_exec {
	sbs_server *srv;
	sbs_exec *x;
	sbs_exec_cursor cur;
	uint64_t seq;
	bool started;
	bool no_follow; /* stop once caught up with the spool */
	int pid;
	sbs_sse *s; /* during a step */
} sse_exec;

static sb_err *sse_out(void *ud, sb_stream stream, uint64_t off, const char *d, size_t n)
{
	sse_exec *e = ud;
	sb_buf b64 = SB_BUF_INIT;
	sb_b64_encode(d, n, &b64);
	json_t *j = json_pack("{s:I, s:I, s:s}", "seq", (json_int_t)e->seq++, "offset",
	                      (json_int_t)off, "data_b64", sb_buf_cstr(&b64));
	sb_buf_deinit(&b64);
	uint64_t o = e->cur.off[SB_STREAM_STDOUT], er = e->cur.off[SB_STREAM_STDERR];
	if (stream == SB_STREAM_STDOUT)
		o = off + n;
	else
		er = off + n;
	char id[64];
	snprintf(id, sizeof id, "%llu,%llu", (unsigned long long)o, (unsigned long long)er);
	sbs_sse_event(e->s, stream == SB_STREAM_STDOUT ? "stdout" : "stderr", id, j);
	return NULL;
}

static json_t *end_json(const sb_sandbox_exec_status *st)
{
	json_t *j = json_object();
	json_object_set_new(j, "exec_id", json_string(st->exec_id));
	json_object_set_new(j, "exit_code",
	                    st->has_exit_code ? json_integer(st->exit_code) : json_null());
	json_object_set_new(j, "signal",
	                    st->signal ? json_string(sb_signal_name(st->signal)) : json_null());
	json_object_set_new(j, "timed_out", json_boolean(st->timed_out));
	json_object_set_new(j, "truncated", json_false());
	json_object_set_new(j, "oom_killed", json_boolean(st->oom_killed));
	json_object_set_new(j, "stdout_bytes", json_integer((json_int_t)st->stdout_size));
	json_object_set_new(j, "stderr_bytes", json_integer((json_int_t)st->stderr_size));
	return j;
}

static bool sse_step(void *ud, sbs_sse *s, int64_t max_wait_ms)
{
	sse_exec *e = ud;
	e->s = s;
	if (!e->started) {
		e->started = true;
		sbs_sse_event(s, "start", NULL,
		              json_pack("{s:s, s:i}", "exec_id", sbs_exec_id(e->x), "pid", e->pid));
		return true;
	}
	bool finished = false;
	sb_sandbox_exec_status st;
	uint64_t seq0 = e->seq;
	sb_err *err = sbs_exec_pump(e->x, &e->cur, 256 * 1024, e->no_follow ? 0 : max_wait_ms,
	                            sse_out, e, &finished, &st);
	if (err) {
		sbs_sse_event(s, "error", NULL,
		              json_pack("{s:s, s:s}", "error", sb_errcode_name(err->code),
		                        "message", err->msg));
		sb_err_free(err);
		return false; /* no "end": the client knows it was interrupted */
	}
	if (finished) {
		sbs_sse_event(s, "end", NULL, end_json(&st));
		return false;
	}
	return !(e->no_follow && e->seq == seq0);
}

static void sse_exec_free(void *ud)
{
	sse_exec *e = ud;
	sbs_exec_release(e->x);
	free(e);
}

static void reply_exec_sse(sbs_req *r, sbs_exec *x, const sbs_exec_cursor *cur, int pid,
                           bool follow)
{
	sse_exec *e = sb_xcalloc(1, sizeof *e);
	e->no_follow = !follow;
	e->srv = sbs_req_server(r);
	e->x = x;
	e->cur = *cur;
	e->pid = pid;
	sbs_req_add_header(r, "X-Sandbar-Exec-Id", sbs_exec_id(x));
	sbs_reply_sse(r, sse_step, e, sse_exec_free);
}

static ssize_t result_fill(void *ud, char *buf, size_t max)
{
	size_t got = 0;
	sb_err *err = sbs_result_json_read(ud, buf, max, &got);
	if (err) {
		/* Cut the response: a chunked body without its end tells the client. */
		sb_warn("exec result: %s", err->msg);
		sb_err_free(err);
		return -2;
	}
	return got ? (ssize_t)got : -1;
}

static void result_free(void *ud)
{
	sbs_result_json_free(ud);
}

/* The end fields, pid, both streams whole as text (null when not UTF-8) and as base64, and the
 * times, streamed from the spool: never a tail, never the whole output in memory. */
static sb_err *result_writer(sbs_exec *x, const sb_sandbox_exec_status *st, sbs_result_json **out)
{
	sbs_result_json *w = sbs_result_json_new(x);
	json_t *j = end_json(st);
	json_object_set_new(j, "pid", json_integer(st->pid));
	json_object_set_new(j, "stdout_truncated", json_false());
	json_object_set_new(j, "stderr_truncated", json_false());
	char t[SB_ISO8601_LEN];
	sb_iso8601(st->started_at_ms, t);
	json_object_set_new(j, "started_at", json_string(t));
	sb_iso8601(st->finished_at_ms, t);
	json_object_set_new(j, "finished_at", json_string(t));
	json_object_set_new(j, "duration_ms", json_integer(st->finished_at_ms - st->started_at_ms));
	char *head = sb_json_dumps(j);
	json_decref(j);
	size_t n = strlen(head);
	assert(n >= 2 && head[n - 1] == '}');
	head[n - 1] = '\0'; /* the object goes on with the streams */
	sbs_result_json_text(w, head);
	free(head);
	static const struct {
		const char *key;
		sb_stream s;
		sbs_text_enc enc;
	} fields[] = {
	    /* base64 first: it checks the UTF-8 on its way, so the text needs no pass of its
	     * own to choose between a string and null (a field order means nothing in JSON) */
	    {",\"stdout_b64\":", SB_STREAM_STDOUT, SBS_TEXT_BASE64},
	    {",\"stderr_b64\":", SB_STREAM_STDERR, SBS_TEXT_BASE64},
	    {",\"stdout\":", SB_STREAM_STDOUT, SBS_TEXT_STRICT},
	    {",\"stderr\":", SB_STREAM_STDERR, SBS_TEXT_STRICT},
	};
	sb_err *err = NULL;
	for (size_t i = 0; i < sizeof fields / sizeof fields[0] && !err; i++) {
		sbs_result_json_text(w, fields[i].key);
		uint64_t len = fields[i].s == SB_STREAM_STDOUT ? st->stdout_size : st->stderr_size;
		err = sbs_result_json_stream(w, fields[i].s, len, fields[i].enc, NULL);
	}
	sbs_result_json_text(w, "}");
	if (err) {
		sbs_result_json_free(w);
		return err;
	}
	*out = w;
	return NULL;
}

static void reply_exec_json(sbs_req *r, sbs_exec *x)
{
	sbs_server *srv = sbs_req_server(r);
	sb_sandbox_exec_status st;
	sb_err *err = sbs_exec_wait_end(x, srv->drain_cancel, &st);
	if (err && err->code == SB_E_CANCELED) {
		/* The command keeps running; its result stays readable after a restart. */
		sbs_reply_error_details(
		    r, 503, "shutting_down", json_pack("{s:s}", "exec_id", sbs_exec_id(x)),
		    "the daemon is shutting down; the command keeps running: read its end "
		    "with GET .../execs/%s/output",
		    sbs_exec_id(x));
		sb_err_free(err);
		return;
	}
	if (!err && (err = sbs_result_check_size(&st, srv->limits.output_cap)) &&
	    err->code == SB_E_TOO_LARGE) {
		sbs_reply_error_details(r, 413, "output_too_large",
		                        json_pack("{s:s}", "exec_id", sbs_exec_id(x)), "%s",
		                        err->msg);
		sb_err_free(err);
		return;
	}
	sbs_result_json *w = NULL;
	if (!err)
		err = result_writer(x, &st, &w);
	if (err) {
		sbs_reply_err(r, err);
		return;
	}
	sbs_req_add_header(r, "X-Sandbar-Exec-Id", sbs_exec_id(x));
	sbs_reply_stream(r, 200, "application/json", result_fill, w, result_free);
}

static void exec_free_cb(void *ud)
{
	sbs_exec_release(ud);
}

static void h_exec(sbs_req *r, void *ud)
{
	(void)ud;
	sbs_server *srv = sbs_req_server(r);
	json_t *b = NULL;
	if (!sbs_req_json(r, &b))
		return;
	sbs_exec_spec spec;
	sb_err *err = sbs_exec_spec_from_json(b, &spec);
	json_decref(b);
	if (err) {
		sbs_reply_err(r, err);
		return;
	}
	/* A lease waiting to be destroyed refuses new execs: 409 lease_busy (docs/api.md). */
	const char *id = sbs_req_param(r, "id");
	sbs_req_set_lease(r, id);
	sbs_lease *l = NULL;
	err = sbs_leases_get(srv->leases, id, SBS_GET_USE, &l);
	if (err) {
		sbs_exec_spec_deinit(&spec);
		if (err->code == SB_E_CONFLICT) {
			sbs_reply_error(r, 409, "lease_busy", "%s; no new exec starts in it",
			                err->msg);
			sb_err_free(err);
		} else {
			sbs_reply_err(r, err);
		}
		return;
	}
	sbs_exec *x = NULL;
	err = sbs_execs_start(srv->execs, l, &spec, &x);
	sbs_exec_spec_deinit(&spec);
	sbs_lease_unref(l);
	if (err) {
		if (err->code == SB_E_CONFLICT) {
			sbs_reply_error(r, 409, "lease_busy", "%s", err->msg);
			sb_err_free(err);
		} else {
			sbs_reply_err(r, err);
		}
		return;
	}
	if (sbs_req_wants_sse(r)) {
		sb_sandbox_exec_status st = {0};
		sb_err *se = sbs_exec_status(x, &st);
		sb_err_free(se);
		sbs_exec_cursor cur = {.streams =
		                           (1u << SB_STREAM_STDOUT) | (1u << SB_STREAM_STDERR)};
		reply_exec_sse(r, x, &cur, st.pid, true);
		return;
	}
	reply_exec_json(r, x);
	sbs_req_on_done(r, exec_free_cb, x);
}

static sbs_exec *exec_or_reply(sbs_req *r)
{
	sbs_lease *l = sbs_route_lease(r, SBS_GET_ALLOW_LOST);
	if (!l)
		return NULL;
	sbs_exec *x = NULL;
	sb_err *err =
	    sbs_execs_attach(sbs_req_server(r)->execs, l, sbs_req_param(r, "exec_id"), &x);
	sbs_lease_unref(l);
	if (err) {
		sbs_reply_err(r, err);
		return NULL;
	}
	return x;
}

static void h_exec_status(sbs_req *r, void *ud)
{
	(void)ud;
	sbs_exec *x = exec_or_reply(r);
	if (!x)
		return;
	sb_sandbox_exec_status st;
	sb_err *err = sbs_exec_status(x, &st);
	sbs_exec_free(x);
	if (err) {
		sbs_reply_err(r, err);
		return;
	}
	sbs_reply_json(r, 200, sbs_exec_status_json(&st));
}

static void h_exec_list(sbs_req *r, void *ud)
{
	(void)ud;
	sbs_lease *l = sbs_route_lease(r, SBS_GET_ALLOW_LOST);
	if (!l)
		return;
	json_t *arr = NULL;
	sb_err *err = sbs_execs_list_json(l, &arr);
	sbs_lease_unref(l);
	if (err) {
		sbs_reply_err(r, err);
		return;
	}
	sbs_reply_json(r, 200, json_pack("{s:o}", "execs", arr));
}

/* Raw (non-SSE) output of one stream: chunked bytes from the offset, to the current end or,
 * with follow, to the end of the exec. */
typedef struct raw_out {
	sbs_exec *x;
	sbs_exec_cursor cur;
	bool follow;
	bool done;
	uint64_t stop_at; /* without follow: the size seen when the request came */
	sb_buf pending;
	size_t pos;
} raw_out;

static sb_err *raw_collect(void *ud, sb_stream s, uint64_t off, const char *d, size_t n)
{
	(void)s;
	(void)off;
	raw_out *ro = ud;
	sb_buf_append(&ro->pending, d, n);
	return NULL;
}

static ssize_t raw_fill(void *ud, char *buf, size_t max)
{
	raw_out *ro = ud;
	if (ro->pos >= ro->pending.len) {
		sb_buf_clear(&ro->pending);
		ro->pos = 0;
		if (ro->done)
			return -1;
		int s = (ro->cur.streams & (1u << SB_STREAM_STDOUT)) ? SB_STREAM_STDOUT
		                                                     : SB_STREAM_STDERR;
		size_t budget = 256 * 1024;
		if (!ro->follow) {
			if (ro->cur.off[s] >= ro->stop_at)
				return -1;
			uint64_t left = ro->stop_at - ro->cur.off[s];
			if (left < budget)
				budget = (size_t)left;
		}
		bool finished = false;
		sb_err *err =
		    sbs_exec_pump(ro->x, &ro->cur, budget, 500, raw_collect, ro, &finished, NULL);
		if (err) {
			sb_warn("streaming exec output: %s", err->msg);
			sb_err_free(err);
			return -2;
		}
		if (finished)
			ro->done = true;
		if (ro->pending.len == 0)
			return ro->done ? -1 : 0;
	}
	size_t n = ro->pending.len - ro->pos;
	if (n > max)
		n = max;
	memcpy(buf, ro->pending.data + ro->pos, n);
	ro->pos += n;
	return (ssize_t)n;
}

static void raw_free(void *ud)
{
	raw_out *ro = ud;
	sbs_exec_release(ro->x);
	sb_buf_deinit(&ro->pending);
	free(ro);
}

static bool parse_last_event_id(const char *v, uint64_t *o, uint64_t *e)
{
	unsigned long long a = 0, b = 0;
	char tail = 0;
	if (sscanf(v, "%llu,%llu%c", &a, &b, &tail) != 2)
		return false;
	*o = a;
	*e = b;
	return true;
}

static void h_exec_output(sbs_req *r, void *ud)
{
	(void)ud;
	const char *stream = sbs_req_query_get(r, "stream");
	const char *offs = sbs_req_query_get(r, "offset");
	const char *lei = sbs_req_header(r, "Last-Event-ID");
	bool sse = sbs_req_wants_sse(r);
	bool follow = sbs_req_query_bool(r, "follow", sse);
	unsigned streams;
	if (!stream || strcmp(stream, "both") == 0)
		streams = (1u << SB_STREAM_STDOUT) | (1u << SB_STREAM_STDERR);
	else if (strcmp(stream, "stdout") == 0)
		streams = 1u << SB_STREAM_STDOUT;
	else if (strcmp(stream, "stderr") == 0)
		streams = 1u << SB_STREAM_STDERR;
	else {
		sbs_reply_error(r, 400, "invalid_request",
		                "\"stream\" must be stdout, stderr or both");
		return;
	}
	if (!sse && streams == ((1u << SB_STREAM_STDOUT) | (1u << SB_STREAM_STDERR))) {
		if (stream) {
			sbs_reply_error(r, 400, "invalid_request",
			                "raw output takes one \"stream\" (stdout or stderr); use "
			                "Accept: text/event-stream for both");
			return;
		}
		streams = 1u << SB_STREAM_STDOUT;
	}
	sbs_exec_cursor cur = {.streams = streams};
	if (offs) {
		int64_t o = 0;
		sb_err *err = sb_parse_int64(offs, 0, INT64_MAX, &o);
		if (err) {
			sbs_reply_error(r, 400, "invalid_request", "\"offset\": %s", err->msg);
			sb_err_free(err);
			return;
		}
		/* One offset applies to the selected stream(s). */
		cur.off[SB_STREAM_STDOUT] = cur.off[SB_STREAM_STDERR] = (uint64_t)o;
	}
	if (lei && sse) {
		if (!parse_last_event_id(lei, &cur.off[SB_STREAM_STDOUT],
		                         &cur.off[SB_STREAM_STDERR])) {
			sbs_reply_error(
			    r, 400, "invalid_request",
			    "Last-Event-ID must be \"<stdout offset>,<stderr offset>\"");
			return;
		}
	}
	sbs_exec *x = exec_or_reply(r);
	if (!x)
		return;
	sb_sandbox_exec_status st;
	sb_err *err = sbs_exec_status(x, &st);
	if (err) {
		sbs_exec_free(x);
		sbs_reply_err(r, err);
		return;
	}
	if (sse) {
		/* Without follow the stream stops once caught up (an `end` only when the exec
		 * has finished). */
		reply_exec_sse(r, x, &cur, st.pid, follow);
		return;
	}
	raw_out *ro = sb_xcalloc(1, sizeof *ro);
	ro->x = x;
	ro->cur = cur;
	ro->follow = follow;
	int s = (streams & (1u << SB_STREAM_STDOUT)) ? SB_STREAM_STDOUT : SB_STREAM_STDERR;
	ro->stop_at = s == SB_STREAM_STDOUT ? st.stdout_size : st.stderr_size;
	sbs_req_add_header(r, "X-Sandbar-Exec-Running", st.running ? "true" : "false");
	sbs_reply_stream(r, 200, "application/octet-stream", raw_fill, ro, raw_free);
}

static void h_exec_signal(sbs_req *r, void *ud)
{
	(void)ud;
	json_t *b = NULL;
	if (!sbs_req_json(r, &b))
		return;
	int signo = SIGTERM;
	const json_t *sv = json_object_get(b, "signal");
	if (json_is_integer(sv)) {
		json_int_t v = json_integer_value(sv);
		signo = v > 0 && v < 65 ? (int)v : 0;
	} else if (json_is_string(sv)) {
		const char *name = json_string_value(sv);
		signo = sb_signal_number(name);
		if (!signo && !sb_str_has_prefix(name, "SIG")) {
			char *full = sb_strfmt("SIG%s", name);
			signo = sb_signal_number(full);
			free(full);
		}
	} else if (sv && !json_is_null(sv)) {
		signo = 0;
	}
	json_decref(b);
	if (!signo) {
		sbs_reply_error(r, 400, "invalid_request",
		                "\"signal\" must be a signal name (\"TERM\", \"SIGKILL\") or "
		                "number");
		return;
	}
	sbs_lease *l = sbs_route_lease(r, 0);
	if (!l)
		return;
	const char *xid = sbs_req_param(r, "exec_id");
	sb_err *err = sbs_execs_signal(sbs_req_server(r)->execs, l, xid, signo);
	sbs_lease_unref(l);
	if (err) {
		sbs_reply_err(r, err);
		return;
	}
	sbs_reply_json(r, 200,
	               json_pack("{s:s, s:s}", "exec_id", xid, "signal", sb_signal_name(signo)));
}

static void h_processes(sbs_req *r, void *ud)
{
	(void)ud;
	sbs_lease *l = sbs_route_lease(r, 0);
	if (!l)
		return;
	json_t *arr = NULL;
	sb_err *err = sbs_lease_processes_json(l, &arr);
	sbs_lease_unref(l);
	if (err) {
		sbs_reply_err(r, err);
		return;
	}
	sbs_reply_json(r, 200, json_pack("{s:o}", "processes", arr));
}

void sbs_exec_routes_register(sbs_server *srv)
{
	sbs_router *rt = srv->router;
	sbs_router_add(rt, "POST", "/v1/leases/{id}/exec", SBS_ROUTE_BODY_JSON, h_exec, NULL);
	sbs_router_add(rt, "GET", "/v1/leases/{id}/execs", 0, h_exec_list, NULL);
	sbs_router_add(rt, "GET", "/v1/leases/{id}/execs/{exec_id}", 0, h_exec_status, NULL);
	sbs_router_add(rt, "GET", "/v1/leases/{id}/execs/{exec_id}/output", 0, h_exec_output, NULL);
	sbs_router_add(rt, "POST", "/v1/leases/{id}/execs/{exec_id}/signal", SBS_ROUTE_BODY_JSON,
	               h_exec_signal, NULL);
	sbs_router_add(rt, "GET", "/v1/leases/{id}/processes", 0, h_processes, NULL);
	sbs_exec_input_routes_register(srv);
}
