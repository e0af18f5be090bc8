/* The exec service (execs.h) over the sandbox layer: starts commands under a lease fence, pumps
 * spooled output from byte offsets (the spool is sandbar-init's, so offsets survive a daemon
 * restart), collects complete results and keeps the running/total exec metrics honest by
 * polling the execs it started from the reaper thread. */
#include "execs.h"
#include "exec_input.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sb_json.h"

#define STDIN_INLINE_MAX (60u * 1024u) /* fits a pipe buffer: written before returning */

typedef struct running {
	char *lease_id;
	char *exec_id;
} running;

typedef struct dead_exec {
	struct dead_exec *next;
	sbs_exec *x;
} dead_exec;

struct sbs_execs {
	sbs_metrics *m;
	sbs_exec_inputs *inputs;
	pthread_mutex_t mu;
	running *v;
	size_t n;
	/* Handles closed by the janitor thread: closing one closes its inotify fd, which can take
	 * milliseconds in the kernel, and a connection thread must not wait for that before
	 * reading its next keep-alive request. */
	pthread_mutex_t jmu;
	pthread_cond_t jcv;
	dead_exec *dead;
	bool jstop;
	bool jrunning;
	pthread_t janitor;
};

struct sbs_exec {
	sbs_execs *xs;
	sbs_lease *l;
	sb_sandbox_exec *x;
	/* Held from the start until the handle is released: a destroy (deferred or not) waits
	 * for the reply to have read the output from the spool, not only for the command. */
	char *fence;
};

static void end_fence(sbs_exec *x);

void sbs_exec_spool_read(sbs_exec *x)
{
	end_fence(x);
}

static void end_fence(sbs_exec *x)
{
	if (!x->fence)
		return;
	sbs_lease_fence_end(x->l, x->fence);
	free(x->fence);
	x->fence = NULL;
}

void sbs_exec_spec_init(sbs_exec_spec *s)
{
	memset(s, 0, sizeof *s);
}

void sbs_exec_spec_deinit(sbs_exec_spec *s)
{
	sb_strv_free(s->argv);
	sb_strv_free(s->env);
	free(s->cwd);
	free(s->exec_id);
	sb_buf_deinit(&s->stdin_data);
	free(s->tty_term);
	memset(s, 0, sizeof *s);
}

static bool env_key_ok(const char *k)
{
	if (!(isalpha((unsigned char)k[0]) || k[0] == '_'))
		return false;
	for (const char *p = k; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return false;
	return true;
}

sb_err *sbs_exec_spec_from_json(const json_t *body, sbs_exec_spec *out)
{
	sbs_exec_spec_init(out);
	sb_err *err = NULL;
	const json_t *argv = json_object_get(body, "argv");
	const char *script = NULL;
	if ((err = sb_json_get_str(body, "script", false, &script)))
		goto fail;
	if (argv && !json_is_null(argv)) {
		if (script) {
			err =
			    sb_err_new(SB_E_INVAL, "give either \"argv\" or \"script\", not both");
			goto fail;
		}
		if ((err = sb_json_get_strv(body, "argv", true, SBS_EXEC_MAX_ARGS, &out->argv)))
			goto fail;
		if (!out->argv || !out->argv[0] || !out->argv[0][0]) {
			err =
			    sb_err_new(SB_E_INVAL, "\"argv\" must be a non-empty array whose first "
			                           "element is a program name");
			goto fail;
		}
	} else if (script) {
		sb_strv_push(&out->argv, "sh");
		sb_strv_push(&out->argv, "-c");
		sb_strv_push(&out->argv, script);
	} else {
		err = sb_err_new(SB_E_INVAL, "\"argv\" (array of strings) or \"script\" (string) "
		                             "is required");
		goto fail;
	}
	const char *cwd = NULL;
	if ((err = sb_json_get_str(body, "cwd", false, &cwd)))
		goto fail;
	if (cwd) {
		if (cwd[0] != '/') {
			err = sb_err_new(SB_E_INVAL, "\"cwd\" must be an absolute in-sandbox path");
			goto fail;
		}
		out->cwd = sb_xstrdup(cwd);
	}
	const json_t *env = json_object_get(body, "env");
	if (env && !json_is_null(env)) {
		if (!json_is_object(env) || json_object_size(env) > SBS_EXEC_MAX_ENV) {
			err = sb_err_new(SB_E_INVAL,
			                 "\"env\" must be an object of at most %d "
			                 "string values",
			                 SBS_EXEC_MAX_ENV);
			goto fail;
		}
		const char *k;
		const json_t *v;
		json_object_foreach((json_t *)env, k, v)
		{
			if (!env_key_ok(k) || !json_is_string(v)) {
				err = sb_err_new(SB_E_INVAL,
				                 "\"env\": key \"%s\" must match "
				                 "[A-Za-z_][A-Za-z0-9_]* with a string value",
				                 k);
				goto fail;
			}
			char *kv = sb_strfmt("%s=%s", k, json_string_value(v));
			sb_strv_push(&out->env, kv);
			free(kv);
		}
	}
	if ((err = sb_json_get_bool(body, "clear_env", false, &out->clear_env)))
		goto fail;
	const char *in = NULL;
	if ((err = sb_json_get_str(body, "stdin", false, &in)))
		goto fail;
	if (in) {
		out->has_stdin = true;
		if ((err = sb_b64_decode(in, strlen(in), &out->stdin_data))) {
			err = sb_err_prefix(err, "\"stdin\" (base64)");
			goto fail;
		}
	}
	if ((err = sbs_exec_spec_input_from_json(body, out)))
		goto fail;
	if ((err = sb_json_get_int(body, "timeout_ms", false, 0, INT64_MAX / 2, &out->timeout_ms)))
		goto fail;
	const char *xid = NULL;
	if ((err = sb_json_get_str(body, "exec_id", false, &xid)))
		goto fail;
	if (xid) {
		if (!sbs_id_ok(xid)) {
			err = sb_err_new(SB_E_INVAL, "\"exec_id\" must match [A-Za-z0-9_-]{1,%d}",
			                 SB_SANDBOX_ID_MAX);
			goto fail;
		}
		out->exec_id = sb_xstrdup(xid);
	}
	return NULL;
fail:
	sbs_exec_spec_deinit(out);
	return err;
}

static void *janitor_main(void *arg)
{
	sbs_execs *xs = arg;
	pthread_mutex_lock(&xs->jmu);
	for (;;) {
		while (!xs->dead && !xs->jstop)
			pthread_cond_wait(&xs->jcv, &xs->jmu);
		dead_exec *list = xs->dead;
		xs->dead = NULL;
		if (!list && xs->jstop)
			break;
		pthread_mutex_unlock(&xs->jmu);
		while (list) {
			dead_exec *next = list->next;
			sbs_exec_free(list->x);
			free(list);
			list = next;
		}
		pthread_mutex_lock(&xs->jmu);
	}
	pthread_mutex_unlock(&xs->jmu);
	return NULL;
}

sbs_execs *sbs_execs_new(sbs_metrics *m)
{
	sbs_execs *xs = sb_xcalloc(1, sizeof *xs);
	xs->m = m;
	xs->inputs = sbs_exec_inputs_new();
	pthread_mutex_init(&xs->mu, NULL);
	pthread_mutex_init(&xs->jmu, NULL);
	pthread_cond_init(&xs->jcv, NULL);
	/* The janitor takes no signals (SIGTERM must reach the daemon's signalfd, not kill the
	 * process through a thread that left it unblocked). Without the thread, handles are simply
	 * closed inline (sbs_exec_release). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	xs->jrunning = pthread_create(&xs->janitor, NULL, janitor_main, xs) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return xs;
}

void sbs_exec_release(sbs_exec *x)
{
	if (!x)
		return;
	sbs_execs *xs = x->xs;
	end_fence(x);
	if (!xs->jrunning) {
		sbs_exec_free(x);
		return;
	}
	dead_exec *d = sb_xmalloc(sizeof *d);
	d->x = x;
	pthread_mutex_lock(&xs->jmu);
	d->next = xs->dead;
	xs->dead = d;
	pthread_cond_signal(&xs->jcv);
	pthread_mutex_unlock(&xs->jmu);
}

void sbs_execs_free(sbs_execs *xs)
{
	if (!xs)
		return;
	if (xs->jrunning) {
		pthread_mutex_lock(&xs->jmu);
		xs->jstop = true;
		pthread_cond_signal(&xs->jcv);
		pthread_mutex_unlock(&xs->jmu);
		pthread_join(xs->janitor, NULL);
	}
	pthread_mutex_destroy(&xs->jmu);
	pthread_cond_destroy(&xs->jcv);
	for (size_t i = 0; i < xs->n; i++) {
		free(xs->v[i].lease_id);
		free(xs->v[i].exec_id);
	}
	free(xs->v);
	pthread_mutex_destroy(&xs->mu);
	sbs_exec_inputs_free(xs->inputs);
	free(xs);
}

static void track(sbs_execs *xs, const char *lease_id, const char *exec_id)
{
	pthread_mutex_lock(&xs->mu);
	xs->v = sb_xrealloc(xs->v, (xs->n + 1) * sizeof *xs->v);
	xs->v[xs->n].lease_id = sb_xstrdup(lease_id);
	xs->v[xs->n].exec_id = sb_xstrdup(exec_id);
	xs->n++;
	pthread_mutex_unlock(&xs->mu);
	sbs_metrics_exec_started(xs->m);
}

/* The exec was seen to end (or its lease is gone): it no longer counts as running. Called
 * where an end is observed, so the gauge is exact at once; the reaper's tick covers execs
 * nobody follows. */
static void untrack(sbs_execs *xs, const char *lease_id, const char *exec_id)
{
	pthread_mutex_lock(&xs->mu);
	for (size_t j = 0; j < xs->n; j++) {
		if (strcmp(xs->v[j].exec_id, exec_id) == 0 &&
		    strcmp(xs->v[j].lease_id, lease_id) == 0) {
			free(xs->v[j].lease_id);
			free(xs->v[j].exec_id);
			xs->v[j] = xs->v[--xs->n];
			sbs_metrics_exec_finished(xs->m);
			break;
		}
	}
	pthread_mutex_unlock(&xs->mu);
	sbs_exec_inputs_drop(xs->inputs, lease_id, exec_id); /* its stdin, if still open */
}

void sbs_execs_tick(sbs_execs *xs, sbs_leases *ls)
{
	pthread_mutex_lock(&xs->mu);
	size_t n = xs->n;
	running *v = sb_xcalloc(n ? n : 1, sizeof *v);
	for (size_t i = 0; i < n; i++) {
		v[i].lease_id = sb_xstrdup(xs->v[i].lease_id);
		v[i].exec_id = sb_xstrdup(xs->v[i].exec_id);
	}
	pthread_mutex_unlock(&xs->mu);
	for (size_t i = 0; i < n; i++) {
		bool done = true;
		sbs_lease *l = NULL;
		sb_err *err = sbs_leases_get(ls, v[i].lease_id, 0, &l);
		if (!err) {
			sb_sandbox_exec_status st;
			err = sb_sandbox_exec_status_by_id(sbs_lease_sandbox(l), v[i].exec_id, &st);
			if (!err && st.running)
				done = false;
			sbs_lease_unref(l);
		}
		sb_err_free(err);
		if (done)
			untrack(xs, v[i].lease_id, v[i].exec_id);
	}
	for (size_t i = 0; i < n; i++) {
		free(v[i].lease_id);
		free(v[i].exec_id);
	}
	free(v);
}

typedef struct stdin_job {
	int fd;
	sb_buf data;
} stdin_job;

static void *stdin_writer(void *arg)
{
	stdin_job *j = arg;
	sb_err *err = sb_write_all(j->fd, j->data.data, j->data.len);
	if (err && err->sys_errno != EPIPE)
		sb_warn("writing exec stdin: %s", err->msg);
	sb_err_free(err);
	close(j->fd);
	sb_buf_deinit(&j->data);
	free(j);
	return NULL;
}

static sb_err *feed_stdin(sb_sandbox_exec *x, const sbs_exec_spec *spec)
{
	int fd = sb_sandbox_exec_stdin_fd(x);
	if (fd < 0)
		return NULL;
	sb_err *err = NULL;
	if (spec->stdin_data.len <= STDIN_INLINE_MAX) {
		err = sb_write_all(fd, spec->stdin_data.data, spec->stdin_data.len);
		if (err && err->sys_errno == EPIPE) {
			sb_err_free(err); /* the command does not read stdin: fine */
			err = NULL;
		}
		sb_sandbox_exec_close_stdin(x);
		return err;
	}
	/* Larger input is written by a thread of its own, so a command that reads slowly (or not
	 * at all) cannot hold the request hostage. */
	stdin_job *j = sb_xcalloc(1, sizeof *j);
	j->fd = dup(fd);
	sb_sandbox_exec_close_stdin(x);
	if (j->fd < 0) {
		free(j);
		return sb_err_sys(errno, "duplicating the stdin pipe");
	}
	sb_fd_set_cloexec(j->fd, true);
	sb_buf_append(&j->data, spec->stdin_data.data, spec->stdin_data.len);
	pthread_t t;
	int rc = pthread_create(&t, NULL, stdin_writer, j);
	if (rc) {
		close(j->fd);
		sb_buf_deinit(&j->data);
		free(j);
		return sb_err_sys(rc, "starting the stdin writer");
	}
	pthread_detach(t);
	return NULL;
}

sb_err *sbs_execs_start(sbs_execs *xs, sbs_lease *l, const sbs_exec_spec *spec, sbs_exec **out)
{
	char *fence = sb_random_id("exec-reply-");
	sb_err *err = sbs_lease_fence_begin(l, fence, 0, NULL);
	if (err) {
		free(fence);
		return err;
	}
	sb_sandbox_exec_req req = {
	    .argv = spec->argv,
	    .cwd = spec->cwd,
	    .env = spec->env,
	    .clear_env = spec->clear_env,
	    .stdin_mode = spec->has_stdin || spec->stdin_stream ? SB_SANDBOX_STDIN_PIPE
	                                                        : SB_SANDBOX_STDIN_NULL,
	    .timeout_ms = spec->timeout_ms,
	    .exec_id = spec->exec_id,
	    .tty = spec->tty,
	    .tty_rows = (unsigned short)spec->tty_rows,
	    .tty_cols = (unsigned short)spec->tty_cols,
	    .tty_term = spec->tty_term,
	    /* a restarted daemon takes a streamed input again (routes_exec_input.c) */
	    .input_reattach = spec->stdin_stream,
	};
	sb_sandbox_exec *x = NULL;
	err = sb_sandbox_exec_start(sbs_lease_sandbox(l), &req, &x);
	if (!err) {
		track(xs, sbs_lease_id(l), sb_sandbox_exec_id(x));
		if (spec->stdin_stream) /* kept for POST .../stdin and .../resize */
			sbs_exec_inputs_add(xs->inputs, sbs_lease_id(l), sb_sandbox_exec_id(x),
			                    sb_sandbox_exec_take_stdin(x), spec->tty);
		else
			err = feed_stdin(x, spec);
	}
	if (err) {
		sbs_lease_fence_end(l, fence);
		free(fence);
		if (x)
			sb_sandbox_exec_free(x);
		if (err->code == SB_E_STATE_LOST)
			sbs_lease_mark_lost(l, "an exec found the sandbox gone");
		return err;
	}
	sbs_exec *e = sb_xcalloc(1, sizeof *e);
	e->xs = xs;
	e->l = l;
	e->x = x;
	e->fence = fence;
	/* The handle keeps the lease (and so its sandbox handle) alive. */
	sbs_lease_ref(l);
	*out = e;
	return NULL;
}

sb_err *sbs_execs_attach(sbs_execs *xs, sbs_lease *l, const char *exec_id, sbs_exec **out)
{
	if (!sbs_id_ok(exec_id))
		return sb_err_new(SB_E_NOTFOUND, "no exec \"%s\"", exec_id);
	sb_sandbox_exec *x = NULL;
	sb_err *err = sb_sandbox_exec_attach(sbs_lease_sandbox(l), exec_id, &x);
	if (err)
		return err;
	sbs_lease_ref(l);
	sbs_exec *e = sb_xcalloc(1, sizeof *e);
	e->xs = xs;
	e->l = l;
	e->x = x;
	*out = e;
	return NULL;
}

const char *sbs_exec_id(const sbs_exec *x)
{
	return sb_sandbox_exec_id(x->x);
}

sb_err *sbs_exec_status(sbs_exec *x, sb_sandbox_exec_status *st)
{
	return sb_sandbox_exec_status_of(x->x, st);
}

void sbs_exec_free(sbs_exec *x)
{
	if (!x)
		return;
	end_fence(x);
	sb_sandbox_exec_free(x->x);
	sbs_lease_unref(x->l);
	free(x);
}

sb_err *sbs_exec_pump(sbs_exec *x, sbs_exec_cursor *c, size_t max_bytes, int64_t max_wait_ms,
                      sbs_output_fn fn, void *ud, bool *finished, sb_sandbox_exec_status *st_out)
{
	sb_err *err =
	    sb_sandbox_exec_follow(x->x, c, max_bytes, max_wait_ms, fn, ud, finished, st_out);
	if (!err && *finished) {
		untrack(x->xs, sbs_lease_id(x->l), sbs_exec_id(x));
		end_fence(x); /* all delivered: the spool is no longer needed by this reader */
	}
	return err;
}

sb_err *sbs_exec_read(sbs_exec *x, sb_stream s, uint64_t offset, void *buf, size_t max, size_t *got)
{
	return sb_sandbox_exec_read(x->x, s, offset, buf, max, got);
}

static sb_err *ignore_out(void *ud, sb_stream s, uint64_t off, const char *d, size_t n)
{
	(void)ud, (void)s, (void)off, (void)d, (void)n;
	return NULL;
}

/* How long one wait for an exec's end lasts before its status is read again: a sandbox that
 * dies sends nothing into the spool, so this bounds how late its loss is seen (with
 * ALIVE_CHECK_MS in sandbox/exec.c; #18 wants it within a second). */
#define END_POLL_MS 250

sb_err *sbs_exec_wait_end(sbs_exec *x, sb_cancel *cancel, sb_sandbox_exec_status *st)
{
	sbs_exec_cursor none = {.streams = 0}; /* no stream: only the end is awaited */
	for (bool finished = false; !finished;) {
		if (cancel && sb_cancel_is_set(cancel))
			return sb_err_new(SB_E_CANCELED, "canceled while waiting for exec %s",
			                  sbs_exec_id(x));
		sb_err *err =
		    sbs_exec_pump(x, &none, 0, END_POLL_MS, ignore_out, NULL, &finished, st);
		if (err)
			return err;
	}
	return NULL;
}

typedef struct collect_ctx {
	sb_tail tails[3];
} collect_ctx;

static sb_err *collect_out(void *ud, sb_stream s, uint64_t off, const char *d, size_t n)
{
	(void)off;
	collect_ctx *c = ud;
	sb_tail_append(&c->tails[s], d, n);
	return NULL;
}

sb_err *sbs_exec_collect(sbs_exec *x, size_t cap, sb_cancel *cancel, sb_exec_result *res,
                         sb_sandbox_exec_status *st_out)
{
	collect_ctx c;
	sb_tail_init(&c.tails[SB_STREAM_STDOUT], cap ? cap : SB_OUTPUT_CAP_DEFAULT);
	sb_tail_init(&c.tails[SB_STREAM_STDERR], cap ? cap : SB_OUTPUT_CAP_DEFAULT);
	sbs_exec_cursor cur = {.streams = (1u << SB_STREAM_STDOUT) | (1u << SB_STREAM_STDERR)};
	sb_sandbox_exec_status st;
	memset(&st, 0, sizeof st);
	bool finished = false;
	sb_err *err = NULL;
	while (!finished) {
		if (cancel && sb_cancel_is_set(cancel)) {
			err = sb_err_new(SB_E_CANCELED, "canceled while waiting for exec %s",
			                 sbs_exec_id(x));
			break;
		}
		if ((err = sbs_exec_pump(x, &cur, 0, END_POLL_MS, collect_out, &c, &finished, &st)))
			break;
	}
	if (!err) {
		sb_tail_finish(&c.tails[SB_STREAM_STDOUT], &res->out, &res->out_truncated);
		sb_tail_finish(&c.tails[SB_STREAM_STDERR], &res->err, &res->err_truncated);
		res->has_exit_code = st.has_exit_code;
		res->exit_code = st.exit_code;
		snprintf(res->signal, sizeof res->signal, "%s",
		         st.signal ? sb_signal_name(st.signal) : "");
		res->timed_out = st.timed_out;
		res->pid = st.pid;
		sb_iso8601(st.started_at_ms, res->started_at);
		sb_iso8601(st.finished_at_ms, res->finished_at);
		res->duration_ms = st.finished_at_ms - st.started_at_ms;
		if (st_out)
			*st_out = st;
	}
	sb_tail_deinit(&c.tails[SB_STREAM_STDOUT]);
	sb_tail_deinit(&c.tails[SB_STREAM_STDERR]);
	return err;
}

json_t *sbs_exec_status_json(const sb_sandbox_exec_status *st)
{
	json_t *j = json_object();
	json_object_set_new(j, "exec_id", json_string(st->exec_id));
	json_object_set_new(j, "running", json_boolean(st->running));
	json_object_set_new(j, "exit_code",
	                    st->has_exit_code ? json_integer(st->exit_code) : json_null());
	json_object_set_new(j, "signal",
	                    st->signal ? json_string(sb_signal_name(st->signal)) : json_null());
	json_object_set_new(j, "timed_out", json_boolean(st->timed_out));
	json_object_set_new(j, "oom_killed", json_boolean(st->oom_killed));
	json_object_set_new(j, "pid", json_integer(st->pid));
	char t[SB_ISO8601_LEN];
	sb_iso8601(st->started_at_ms, t);
	json_object_set_new(j, "started_at", json_string(t));
	if (st->finished_at_ms) {
		sb_iso8601(st->finished_at_ms, t);
		json_object_set_new(j, "finished_at", json_string(t));
	} else {
		json_object_set_new(j, "finished_at", json_null());
	}
	json_object_set_new(j, "stdout_bytes", json_integer((json_int_t)st->stdout_size));
	json_object_set_new(j, "stderr_bytes", json_integer((json_int_t)st->stderr_size));
	return j;
}

sbs_exec_inputs *sbs_execs_inputs(sbs_execs *xs)
{
	return xs->inputs;
}

sb_err *sbs_execs_signal(sbs_execs *xs, sbs_lease *l, const char *exec_id, int signo)
{
	(void)xs;
	if (!sbs_id_ok(exec_id))
		return sb_err_new(SB_E_NOTFOUND, "no exec \"%s\"", exec_id);
	return sb_sandbox_exec_signal(sbs_lease_sandbox(l), exec_id, signo);
}

sb_err *sbs_execs_list_json(sbs_lease *l, json_t **out)
{
	*out = NULL;
	char **ids = NULL;
	sb_err *err = sb_sandbox_exec_list(sbs_lease_sandbox(l), &ids);
	if (err)
		return err;
	json_t *arr = json_array();
	for (size_t i = 0; ids && ids[i]; i++) {
		sb_sandbox_exec_status st;
		sb_err *e = sb_sandbox_exec_status_by_id(sbs_lease_sandbox(l), ids[i], &st);
		if (e) {
			sb_err_free(e);
			continue;
		}
		json_array_append_new(arr, sbs_exec_status_json(&st));
	}
	sb_strv_free(ids);
	*out = arr;
	return NULL;
}
