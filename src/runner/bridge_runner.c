/* The bridge runner: one acquired lease on a sandbox bridge, driven through POST /exec. Output
 * streams as SSE when the caller takes it chunk by chunk (the `complete` event, which repeats
 * all output, is authoritative for the result); otherwise one JSON result. When the server is a
 * sandbar that serves its native workspace routes, sync_in/sync_out move tar streams through
 * PUT/GET /v1/leases/{id}/workspace instead of commands.
 *
 * Over 600 lines: the runner interface's every operation over the one bridge protocol (exec
 * in both result forms, cancel, sync both ways); the lease operations are in bridge.c, the HTTP
 * exchange in bridge_http.c, the SSE parser in sse.c and request signing in bridge_sign.c.
 */
#include "bridge_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sb_json.h"

#define BRIDGE_CHANNEL_VAR "PAPERCLIP_SANDBOX_EXEC_CHANNEL"

typedef struct bridge_runner {
	sb_bridge *client;
	char *lease_id, *acquisition_id, *remote_cwd, *strategy, *session;
	bool cancel; /* the server is sandbar and can cancel a command (health: sandbar.cancel) */
} bridge_runner;

/* ---------------------------------------------------------------- results */

static sb_err *get_text(const json_t *j, const char *key, size_t cap, sb_buf *out, bool *truncated)
{
	json_t *v = json_object_get(j, key);
	if (!json_is_string(v))
		return sb_err_new(SB_E_PROTOCOL, "malformed_execute_response: %s is not a string",
		                  key);
	sb_tail t;
	sb_tail_init(&t, cap);
	sb_tail_append(&t, json_string_value(v), json_string_length(v));
	bool cut = false;
	sb_tail_finish(&t, out, &cut);
	sb_tail_deinit(&t);
	/* sandbar servers say when they already cut the stream. */
	*truncated =
	    cut || json_is_true(json_object_get(j, strcmp(key, "stdout") == 0 ? "stdoutTruncated"
	                                                                      : "stderrTruncated"));
	return NULL;
}

sb_err *bridge_parse_result(const json_t *j, size_t cap, sb_exec_result *res)
{
	if (!json_is_object(j))
		return sb_err_new(SB_E_PROTOCOL, "malformed_execute_response: not an object");
	json_t *ec = json_object_get(j, "exitCode");
	json_t *to = json_object_get(j, "timedOut");
	if (!json_is_boolean(to))
		return sb_err_new(SB_E_PROTOCOL,
		                  "malformed_execute_response: timedOut is not a boolean");
	if (json_is_integer(ec)) {
		json_int_t v = json_integer_value(ec);
		if (v < -2147483647 || v > 2147483647)
			return sb_err_new(
			    SB_E_PROTOCOL,
			    "malformed_execute_response: exitCode %lld is out of range",
			    (long long)v);
		res->has_exit_code = true;
		res->exit_code = (int)v;
	} else if (json_is_real(ec)) {
		double v = json_real_value(ec);
		if (!(v >= -2147483647.0 && v <= 2147483647.0))
			return sb_err_new(SB_E_PROTOCOL,
			                  "malformed_execute_response: exitCode is out of range");
		res->has_exit_code = true;
		res->exit_code = (int)v;
	} else if (ec && !json_is_null(ec)) {
		return sb_err_new(
		    SB_E_PROTOCOL,
		    "malformed_execute_response: exitCode is neither a number nor null");
	} else if (!ec) {
		return sb_err_new(SB_E_PROTOCOL, "malformed_execute_response: exitCode is missing");
	}
	res->timed_out = json_is_true(to);
	sb_err *err = get_text(j, "stdout", cap, &res->out, &res->out_truncated);
	if (!err)
		err = get_text(j, "stderr", cap, &res->err, &res->err_truncated);
	if (err)
		return err;
	const char *sig = json_string_value(json_object_get(j, "signal"));
	if (sig)
		snprintf(res->signal, sizeof(res->signal), "%s", sig);
	return NULL;
}

/* ---------------------------------------------------------------- the exec body */

static bool valid_env_key(const char *k, size_t n)
{
	if (n == 0 ||
	    !((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z') || k[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!((k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= 'a' && k[i] <= 'z') ||
		      (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
			return false;
	return true;
}

static json_t *text_or_null(const char *p, size_t n)
{
	return json_stringn(p, n); /* NULL when not UTF-8 */
}

/* The /exec body for req; *bridge_channel says whether it is a callback-bridge control exec. */
static sb_err *exec_body(const bridge_runner *br, const sb_exec_request *req, bool want_stream,
                         json_t **out, bool *bridge_channel)
{
	*out = NULL;
	*bridge_channel = false;
	json_t *o = json_object();
	json_t *env = json_object();
	sb_err *err = NULL;
	if (req->env) {
		for (char *const *e = req->env; *e; e++) {
			const char *eq = strchr(*e, '=');
			size_t kn = (size_t)(eq - *e);
			if (kn == strlen(BRIDGE_CHANNEL_VAR) &&
			    memcmp(*e, BRIDGE_CHANNEL_VAR, kn) == 0 &&
			    strcmp(eq + 1, "bridge") == 0) {
				*bridge_channel = true;
				continue;
			}
			if (!valid_env_key(*e, kn)) {
				err = sb_err_new(SB_E_INVAL,
				                 "Invalid sandbox environment variable key: %.*s",
				                 (int)kn, *e);
				goto fail;
			}
			json_t *v = text_or_null(eq + 1, strlen(eq + 1));
			if (!v) {
				err =
				    sb_err_new(SB_E_INVAL,
				               "environment variable %.*s is not valid UTF-8; the "
				               "bridge protocol carries text only",
				               (int)kn, *e);
				goto fail;
			}
			char *key = sb_xstrndup(*e, kn);
			json_object_set_new(env, key, v);
			free(key);
		}
	}
	json_object_set_new(o, "providerLeaseId", json_string(br->lease_id));
	json_object_set_new(o, "acquisitionId", json_string(br->acquisition_id));
	json_t *cmd = json_string(req->argv[0]);
	if (!cmd) {
		err = sb_err_new(SB_E_INVAL, "the command name is not valid UTF-8");
		goto fail;
	}
	json_object_set_new(o, "command", cmd);
	json_t *args = json_array();
	for (char *const *a = req->argv + 1; *a; a++) {
		json_t *v = json_string(*a);
		if (!v) {
			json_decref(args);
			err = sb_err_new(SB_E_INVAL,
			                 "argument %zu is not valid UTF-8; the bridge "
			                 "protocol carries text only",
			                 (size_t)(a - req->argv));
			goto fail;
		}
		json_array_append_new(args, v);
	}
	json_object_set_new(o, "args", args);
	const char *cwd = req->cwd ? req->cwd : br->remote_cwd ? br->remote_cwd : "/";
	json_object_set_new(o, "cwd", json_string(cwd));
	json_object_set_new(o, "env", env);
	env = NULL;
	if (req->has_stdin && req->stdin_len > 0) {
		json_t *in = text_or_null(req->stdin_data, req->stdin_len);
		if (!in) {
			err =
			    sb_err_new(SB_E_INVAL,
			               "stdin (%zu bytes) is not valid UTF-8; the bridge protocol "
			               "carries stdin as text (encode it, e.g. base64)",
			               req->stdin_len);
			goto fail;
		}
		json_object_set_new(o, "stdin", in);
	} else {
		json_object_set_new(o, "stdin", json_null());
	}
	json_object_set_new(
	    o, "timeoutMs",
	    json_integer(req->timeout_ms > 0 ? req->timeout_ms : BRIDGE_COMMAND_TIMEOUT_MAX));
	json_object_set_new(o, "streamOutput", json_boolean(want_stream && !*bridge_channel));
	if (*bridge_channel) {
		char *sid = sb_strfmt("%s-bridge", br->session);
		json_object_set_new(o, "sessionStrategy", json_string("named"));
		json_object_set_new(o, "sessionId", json_string(sid));
		free(sid);
	} else {
		json_object_set_new(o, "sessionStrategy", json_string(br->strategy));
		json_object_set_new(o, "sessionId", json_string(br->session));
	}
	*out = o;
	return NULL;
fail:
	json_decref(env);
	json_decref(o);
	return err;
}

/* ---------------------------------------------------------------- streaming */

typedef struct stream_ctx {
	const sb_exec_callbacks *cb;
	size_t cap;
	sb_exec_result *res;
	bool complete;
	char *error; /* an `error` event's message */
	sb_err *result_err;
} stream_ctx;

static sb_err *on_event(void *ud, const char *event, const char *id, const char *data, size_t len)
{
	(void)id;
	stream_ctx *sc = ud;
	bool out = strcmp(event, "stdout") == 0, err = strcmp(event, "stderr") == 0;
	bool complete = strcmp(event, "complete") == 0, error = strcmp(event, "error") == 0;
	if (!out && !err && !complete && !error)
		return NULL; /* unknown events are ignored */
	if (sc->complete || sc->error)
		return NULL; /* nothing counts after the final event */
	json_error_t jerr;
	json_t *j = json_loadb(data, len, JSON_ALLOW_NUL, &jerr);
	sb_err *e = NULL;
	if (!j) {
		e = sb_err_new(SB_E_PROTOCOL,
		               "the bridge sent a `%s` event whose data is not JSON "
		               "(%s)",
		               event, jerr.text);
	} else if (out || err) {
		json_t *d = json_object_get(j, "data");
		if (!json_is_string(d))
			e = sb_err_new(SB_E_PROTOCOL,
			               "the bridge sent a `%s` event without a data string", event);
		else if (sc->cb->on_output && json_string_length(d) > 0)
			e = sc->cb->on_output(sc->cb->ud, out ? SB_STREAM_STDOUT : SB_STREAM_STDERR,
			                      json_string_value(d), json_string_length(d));
	} else if (complete) {
		sc->complete = true;
		sc->result_err = bridge_parse_result(j, sc->cap, sc->res);
	} else {
		const char *m = json_string_value(json_object_get(j, "error"));
		sc->error = sb_xstrdup(m ? m : "(no message)");
	}
	json_decref(j);
	return e;
}

/* ---------------------------------------------------------------- cancel */

#define CANCEL_BUDGET_MS 10000 /* to find the command and see it end */
#define CANCEL_GRACE_MS 2000   /* from TERM to KILL */

/* One native call about exec exec_id of the runner's lease, outside the caller's cancel token:
 * the HTTP status (0 on a transport error), the body's "running" in *running (optional). */
static long cancel_call(bridge_runner *br, const char *exec_id, const char *what, const char *body,
                        bool *running)
{
	bool sign = false;
	const bridge_conf *conf = bridge_client_conf(br->client, &sign);
	char *path = sb_strfmt("/v1/leases/%s/execs/%s%s", br->lease_id, exec_id, what);
	bridge_req rq = BRIDGE_REQ_INIT;
	rq.method = body ? "POST" : "GET";
	rq.path = path;
	rq.body = body;
	rq.body_len = body ? strlen(body) : 0;
	rq.timeout_ms = CANCEL_BUDGET_MS;
	rq.sign = sign;
	bridge_resp rs;
	long status = 0;
	sb_err *err = bridge_http_do(conf, &rq, &rs);
	if (!err) {
		status = rs.status;
		if (running) {
			json_t *j =
			    json_loadb(rs.body.data ? rs.body.data : "", rs.body.len, 0, NULL);
			*running = json_is_true(json_object_get(j, "running"));
			json_decref(j);
		}
	}
	bridge_resp_deinit(&rs);
	sb_err_free(err);
	free(path);
	return status;
}

/* The caller stopped waiting for exec exec_id: end the command too (TERM to its process
 * group, KILL after a grace period). The request may still be on its way, so an exec not
 * known yet is looked for again until the budget runs out. Best effort: a failure is logged,
 * the caller's outcome is the cancellation either way. */
static void cancel_remote(bridge_runner *br, const char *exec_id)
{
	int64_t t0 = sb_mono_ms();
	const char *sig = "{\"signal\":\"TERM\"}";
	int64_t term_at = 0;
	while (sb_mono_ms() - t0 < CANCEL_BUDGET_MS) {
		bool running = false;
		long st = cancel_call(br, exec_id, "", NULL, &running);
		if (st == 200 && !running)
			return; /* ended */
		if (st == 200 && (!term_at || sb_mono_ms() - term_at >= CANCEL_GRACE_MS)) {
			if (term_at)
				sig = "{\"signal\":\"KILL\"}";
			cancel_call(br, exec_id, "/signal", sig, NULL);
			if (!term_at)
				term_at = sb_mono_ms();
		} else if (st != 200 && st != 404) {
			break; /* 0: unreachable; other: refused */
		}
		sb_sleep_ms(50);
	}
	sb_warn("bridge lease %s: could not confirm that exec %s ended after the cancel; it "
	        "stops at its timeout",
	        br->lease_id, exec_id);
}

/* ---------------------------------------------------------------- execute */

static sb_err *bridge_execute(sb_runner *r, const sb_exec_request *req, const sb_exec_callbacks *cb,
                              sb_cancel *cancel, sb_exec_result *res)
{
	bridge_runner *br = r->impl;
	if (req->clear_env)
		return sb_err_new(SB_E_UNSUPPORTED, "the bridge runner cannot start a command "
		                                    "with an empty environment (clear_env)");
	bool bridge_channel = false;
	json_t *body = NULL;
	sb_err *err = exec_body(br, req, cb->on_output != NULL, &body, &bridge_channel);
	if (err)
		return sb_err_prefix(err, "exec of \"%s\" on bridge lease %s", req->argv[0],
		                     br->lease_id);
	bool stream = json_is_true(json_object_get(body, "streamOutput"));
	char *exec_id = br->cancel ? sb_random_id("bx_") : NULL;
	if (exec_id)
		json_object_set_new(body, "sandbarExecId", json_string(exec_id));
	char *text = sb_json_dumps(body);
	json_decref(body);

	bool sign = false;
	const bridge_conf *conf = bridge_client_conf(br->client, &sign);
	int64_t cmd = req->timeout_ms > 0 ? req->timeout_ms : BRIDGE_COMMAND_TIMEOUT_MAX;
	int64_t http_timeout = cmd + BRIDGE_EXEC_GRACE_MS;
	if (http_timeout < conf->request_timeout_ms)
		http_timeout = conf->request_timeout_ms;

	stream_ctx sc = {.cb = cb, .cap = req->output_cap, .res = res};
	sb_sse_parser sse;
	sb_sse_init(&sse, NULL, on_event, &sc);
	bridge_req rq = BRIDGE_REQ_INIT;
	rq.method = "POST";
	rq.path = BRIDGE_PREFIX_V2 "/exec";
	rq.body = text;
	rq.body_len = strlen(text);
	rq.timeout_ms = http_timeout;
	rq.sign = sign;
	rq.accept = stream ? "text/event-stream" : "application/json";
	rq.sse = stream ? &sse : NULL;
	rq.cancel = cancel;

	int64_t t0 = sb_wall_ms(), m0 = sb_mono_ms();
	sb_iso8601(t0, res->started_at);
	bridge_resp rs;
	char *what = sb_strfmt("exec of \"%s\" on bridge lease %s", req->argv[0], br->lease_id);
	err = bridge_http_do(conf, &rq, &rs);
	free(text);
	if (err && err->code == SB_E_CANCELED && exec_id)
		cancel_remote(br, exec_id);
	if (err) {
		err = sb_err_prefix(err, "%s", what);
		goto out;
	}
	if (rs.status < 200 || rs.status > 299) {
		err = bridge_error(&rs, what, NULL, NULL);
		goto out;
	}
	if (rs.is_sse) {
		if ((err = sb_sse_finish(&sse))) {
			err = sb_err_prefix(err, "%s", what);
			goto out;
		}
		if (sc.result_err) {
			err = sb_err_prefix(sc.result_err, "%s", what);
			sc.result_err = NULL;
		} else if (sc.error) {
			err = sb_err_new(SB_E_PROTOCOL, "%s: the bridge reported an error: %s",
			                 what, sc.error);
		} else if (!sc.complete) {
			err =
			    sb_err_new(SB_E_PROTOCOL,
			               "%s: sandbox bridge exec stream ended without a completion "
			               "event",
			               what);
		}
		goto out;
	}
	json_error_t jerr;
	json_t *j =
	    json_loadb(rs.body.data ? rs.body.data : "", rs.body.len, JSON_ALLOW_NUL, &jerr);
	if (!j)
		err = sb_err_new(SB_E_PROTOCOL,
		                 "%s: malformed_execute_response: the body is not JSON (%s)", what,
		                 jerr.text);
	else if ((err = bridge_parse_result(j, req->output_cap, res)))
		err = sb_err_prefix(err, "%s", what);
	json_decref(j);
	/* Not streamed: hand the whole output over once, stdout first (as provider runners do). */
	if (!err && cb->on_output && res->out.len)
		err = cb->on_output(cb->ud, SB_STREAM_STDOUT, res->out.data, res->out.len);
	if (!err && cb->on_output && res->err.len)
		err = cb->on_output(cb->ud, SB_STREAM_STDERR, res->err.data, res->err.len);
out:
	sb_iso8601(sb_wall_ms(), res->finished_at);
	res->duration_ms = sb_mono_ms() - m0;
	res->pid = 0;
	sb_err_free(sc.result_err);
	free(sc.error);
	sb_sse_deinit(&sse);
	bridge_resp_deinit(&rs);
	free(what);
	free(exec_id);
	return err;
}

/* ---------------------------------------------------------------- native file transfer */

static void add_query(sb_buf *q, const char *key, const char *val)
{
	sb_buf_appendc(q, q->len ? '&' : '?');
	sb_buf_appends(q, key);
	sb_buf_appendc(q, '=');
	for (const unsigned char *p = (const unsigned char *)val; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~' ||
		    *p == '/')
			sb_buf_appendc(q, (char)*p);
		else
			sb_buf_appendf(q, "%%%02X", *p);
	}
}

static char *workspace_path(const bridge_runner *br, const sb_buf *query)
{
	sb_buf p = SB_BUF_INIT;
	sb_buf_appends(&p, "/v1/leases/");
	for (const char *s = br->lease_id; *s; s++)
		sb_buf_appendc(&p, *s); /* lease ids are [a-z0-9-]: nothing to escape */
	sb_buf_appends(&p, "/workspace");
	sb_buf_appends(&p, query->data ? query->data : "");
	return sb_buf_steal(&p, NULL);
}

/* A seekable copy of the tar stream, so that its length (and, when signing, its digest) is
 * known before the first byte goes out. */
static sb_err *spool(int fd, int *out_fd, uint64_t *len)
{
	*out_fd = -1;
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && lseek(fd, 0, SEEK_CUR) == 0) {
		*out_fd = dup(fd);
		if (*out_fd < 0)
			return sb_err_sys(errno, "duplicating the tar stream");
		*len = (uint64_t)st.st_size;
		return NULL;
	}
	const char *env = getenv("TMPDIR");
	const char *dir = env && *env ? env : "/tmp";
	int t = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (t < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		/* No O_TMPFILE on this file system: a named file, unlinked at once. */
		char *tmpl = sb_strfmt("%s/sandbar-bridge-XXXXXX", dir);
		t = mkostemp(tmpl, O_CLOEXEC);
		if (t >= 0)
			unlink(tmpl);
		free(tmpl);
	}
	if (t < 0)
		return sb_err_sys(errno, "creating a spool file in %s", dir);
	char buf[65536];
	uint64_t total = 0;
	for (;;) {
		ssize_t got = read(fd, buf, sizeof(buf));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			sb_err *e = sb_err_sys(errno, "reading the tar stream");
			close(t);
			return e;
		}
		if (got == 0)
			break;
		sb_err *e = sb_write_all(t, buf, (size_t)got);
		if (e) {
			close(t);
			return sb_err_prefix(e, "spooling the tar stream");
		}
		total += (uint64_t)got;
	}
	if (lseek(t, 0, SEEK_SET) < 0) {
		sb_err *e = sb_err_sys(errno, "rewinding the spooled tar stream");
		close(t);
		return e;
	}
	*out_fd = t;
	*len = total;
	return NULL;
}

/* Send a workspace transfer request (signed when the client's configuration says so) and turn
 * a transport failure or a non-2xx answer into an error about what. */
static sb_err *workspace_transfer(bridge_runner *br, bridge_req *rq, const char *what)
{
	bool sign = false;
	const bridge_conf *conf = bridge_client_conf(br->client, &sign);
	rq->sign = sign;
	bridge_resp rs;
	sb_err *err = bridge_http_do(conf, rq, &rs);
	if (err)
		return sb_err_prefix(err, "%s", what);
	if (rs.status < 200 || rs.status > 299)
		err = bridge_error(&rs, what, NULL, NULL);
	bridge_resp_deinit(&rs);
	return err;
}

static sb_err *bridge_sync_in(sb_runner *r, const char *remote_dir, char *const *preserve,
                              int tar_fd, sb_progress_fn progress, void *progress_ud)
{
	bridge_runner *br = r->impl;
	int fd = -1;
	uint64_t len = 0;
	sb_err *err = spool(tar_fd, &fd, &len);
	if (err)
		return sb_err_prefix(err, "sync into %s on bridge lease %s", remote_dir,
		                     br->lease_id);
	sb_buf q = SB_BUF_INIT;
	add_query(&q, "path", remote_dir);
	for (char *const *p = preserve; p && *p; p++)
		add_query(&q, "preserve", *p);
	char *path = workspace_path(br, &q);
	bridge_req rq = BRIDGE_REQ_INIT;
	rq.method = "PUT";
	rq.path = path;
	rq.upload_fd = fd;
	rq.upload_len = len;
	rq.content_type = "application/x-tar";
	rq.progress = progress;
	rq.progress_ud = progress_ud;
	char *what = sb_strfmt("sync into %s on bridge lease %s", remote_dir, br->lease_id);
	err = workspace_transfer(br, &rq, what);
	close(fd);
	free(what);
	free(path);
	sb_buf_deinit(&q);
	return err;
}

static sb_err *bridge_sync_out(sb_runner *r, const char *remote_dir, const sb_excludes *ex,
                               int tar_fd, sb_progress_fn progress, void *progress_ud)
{
	bridge_runner *br = r->impl;
	sb_buf q = SB_BUF_INIT;
	add_query(&q, "path", remote_dir);
	for (char **p = ex && ex->patterns ? ex->patterns : NULL; p && *p; p++)
		add_query(&q, "exclude", *p);
	char *path = workspace_path(br, &q);
	bridge_req rq = BRIDGE_REQ_INIT;
	rq.method = "GET";
	rq.path = path;
	rq.accept = "application/x-tar";
	rq.download_fd = tar_fd;
	rq.progress = progress;
	rq.progress_ud = progress_ud;
	char *what = sb_strfmt("sync out of %s on bridge lease %s", remote_dir, br->lease_id);
	sb_err *err = workspace_transfer(br, &rq, what);
	free(what);
	free(path);
	sb_buf_deinit(&q);
	return err;
}

/* ---------------------------------------------------------------- construction */

static void bridge_destroy(sb_runner *r)
{
	bridge_runner *br = r->impl;
	sb_bridge_free(br->client);
	free(br->lease_id);
	free(br->acquisition_id);
	free(br->remote_cwd);
	free(br->strategy);
	free(br->session);
	free(br);
	free(r);
}

static const sb_runner_ops bridge_ops = {
    .name = "bridge",
    .execute = bridge_execute,
    .sync_in = bridge_sync_in,
    .sync_out = bridge_sync_out,
    .destroy = bridge_destroy,
};

sb_err *sb_bridge_runner_new(const sb_bridge_runner_opts *opts, sb_runner **out)
{
	*out = NULL;
	if (!opts || !opts->provider_lease_id || !*opts->provider_lease_id ||
	    !opts->acquisition_id || !*opts->acquisition_id)
		return sb_err_new(SB_E_INVAL, "bridge runner: provider_lease_id and acquisition_id "
		                              "are required (acquire a lease first)");
	sb_bridge *client = NULL;
	sb_err *err = sb_bridge_new(&opts->bridge, &client);
	if (err)
		return sb_err_prefix(err, "bridge runner");
	sb_bridge_health h;
	if ((err = sb_bridge_health_get(client, &h))) {
		sb_bridge_free(client);
		return sb_err_prefix(err, "bridge runner for lease %s", opts->provider_lease_id);
	}
	bridge_runner *br = sb_xcalloc(1, sizeof(*br));
	br->client = client;
	br->lease_id = sb_xstrdup(opts->provider_lease_id);
	br->acquisition_id = sb_xstrdup(opts->acquisition_id);
	br->remote_cwd =
	    opts->remote_cwd && *opts->remote_cwd ? sb_xstrdup(opts->remote_cwd) : NULL;
	br->strategy = sb_xstrdup(
	    opts->session_strategy && *opts->session_strategy ? opts->session_strategy : "named");
	br->session =
	    sb_xstrdup(opts->session_id && *opts->session_id ? opts->session_id : "paperclip");
	sb_runner *r = sb_xcalloc(1, sizeof(*r));
	r->ops = &bridge_ops;
	r->impl = br;
	r->caps = SB_RUNNER_CAP_STDIN;
	if (h.sandbar && h.workspace_tar && !opts->no_file_transfer)
		r->caps |= SB_RUNNER_CAP_FILE_TRANSFER;
	br->cancel = h.sandbar && h.cancel;
	sb_bridge_health_deinit(&h);
	*out = r;
	return NULL;
}
