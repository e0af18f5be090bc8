/* The bridge client and runner (include/sandbar/runner.h) against a real daemon: acquisition
 * with replay and conflict, exec in JSON and streamed form (argv, env, cwd, stdin, exit codes,
 * timeouts, output order), resume (also after the sandbox died), release and destroy, and the
 * errors a caller acts on. */
#include "testutil.h"

#include "compat_daemon.h"

#include <sandbar/runner.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sb_bridge_opts opts(void)
{
	sb_bridge_opts o = {
	    .base_url = ct_shared.base_url, .token = CT_TOKEN, .request_timeout_ms = 60000};
	return o;
}

static sb_bridge_lease_params params(const char *acq)
{
	sb_bridge_lease_params p = {.acquisition_id = acq,
	                            .environment_id = "env-1",
	                            .run_id = "run-1",
	                            .issue_id = "issue-9"};
	return p;
}

static sb_runner *runner_for(const sb_bridge_lease *l)
{
	sb_bridge_runner_opts ro = {.bridge = opts(),
	                            .provider_lease_id = l->provider_lease_id,
	                            .acquisition_id = l->acquisition_id,
	                            .remote_cwd = l->remote_cwd};
	sb_runner *r = NULL;
	SB_ASSERT_OK(sb_bridge_runner_new(&ro, &r));
	assert_string_equal(sb_runner_name(r), "bridge");
	assert_true(sb_runner_caps(r) & SB_RUNNER_CAP_STDIN);
	return r;
}

static void bridge_client_acquires_replays_and_refuses_conflicts(void **state)
{
	(void)state;
	sb_bridge *b = NULL;
	sb_bridge_opts o = opts();
	SB_ASSERT_OK(sb_bridge_new(&o, &b));
	sb_bridge_health h;
	SB_ASSERT_OK(sb_bridge_health_get(b, &h));
	assert_true(h.acquisition_replay && h.scoped_reuse && h.named_sessions && h.sandbar);
	sb_bridge_health_deinit(&h);

	char *summary = NULL;
	SB_ASSERT_OK(sb_bridge_probe(b, NULL, &summary));
	assert_string_equal(summary, "Connected to sandbar sandbox bridge.");
	free(summary);

	sb_bridge_lease_params p = params("client-acq");
	sb_bridge_lease l1 = {0}, l2 = {0}, l3 = {0};
	SB_ASSERT_OK(sb_bridge_acquire(b, &p, &l1));
	assert_string_equal(l1.provider_lease_id, "pc-acq-client-acq");
	assert_string_equal(l1.acquisition_id, "client-acq");
	assert_string_equal(l1.remote_cwd, "/workspace/paperclip");
	SB_ASSERT_OK(sb_bridge_acquire(b, &p, &l2)); /* replay */
	assert_string_equal(l2.provider_lease_id, l1.provider_lease_id);
	p.requested_cwd = "/workspace/elsewhere";
	sb_err *err = sb_bridge_acquire(b, &p, &l3);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_CONFLICT);
	assert_non_null(strstr(err->msg, "acquisition_conflict"));
	sb_err_free(err);
	sb_bridge_lease_deinit(&l3);

	/* Resume keeps the identity; destroy; a resume after that is state lost. */
	p = params("client-acq");
	sb_bridge_lease r1 = {0};
	SB_ASSERT_OK(sb_bridge_resume(b, l1.provider_lease_id, &p, &r1));
	assert_true(r1.resumed);
	assert_string_equal(r1.acquisition_id, "client-acq");
	sb_bridge_lease_deinit(&r1);
	SB_ASSERT_OK(sb_bridge_destroy(b, l1.provider_lease_id, &p));
	SB_ASSERT_OK(sb_bridge_destroy(b, l1.provider_lease_id, &p)); /* idempotent */
	err = sb_bridge_resume(b, l1.provider_lease_id, &p, &r1);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_STATE_LOST);
	sb_err_free(err);
	err = sb_bridge_acquire(b, &p, &l3); /* tombstoned */
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_CONFLICT);
	sb_err_free(err);
	sb_bridge_lease_deinit(&l3);

	/* Reusable: kept on release, state lost after its sandbox was killed. */
	sb_bridge_lease_params rp = params("client-reuse");
	rp.reuse_lease = true;
	rp.keep_alive = true;
	rp.reuse_scope_id = "00112233445566778899aabbccddeeff";
	sb_bridge_lease lr = {0};
	SB_ASSERT_OK(sb_bridge_acquire(b, &rp, &lr));
	assert_string_equal(lr.provider_lease_id, "pc-scope-00112233445566778899aabbccddeeff");
	SB_ASSERT_OK(sb_bridge_release(b, lr.provider_lease_id, &rp));
	SB_ASSERT_OK(sb_bridge_resume(b, lr.provider_lease_id, &rp, &r1));
	sb_bridge_lease_deinit(&r1);
	ct_kill_sandbox(&ct_shared, lr.provider_lease_id);
	err = sb_bridge_resume(b, lr.provider_lease_id, &rp, &r1);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_STATE_LOST);
	sb_err_free(err);

	sb_bridge_lease_deinit(&lr);
	sb_bridge_lease_deinit(&l1);
	sb_bridge_lease_deinit(&l2);
	sb_bridge_free(b);
}

static void bridge_client_reports_bad_credentials_and_requests(void **state)
{
	(void)state;
	sb_bridge *b = NULL;
	sb_bridge_opts o = opts();
	o.token = "not-the-token";
	SB_ASSERT_OK(sb_bridge_new(&o, &b));
	sb_bridge_lease_params p = params("bad-token");
	sb_bridge_lease l = {0};
	sb_err *err = sb_bridge_acquire(b, &p, &l);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_AUTH);
	sb_err_free(err);
	sb_bridge_free(b);

	o = opts();
	o.base_url = "http://example.com:7469"; /* clear text to a non-loopback host */
	err = sb_bridge_new(&o, &b);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_INVAL);
	sb_err_free(err);

	o = opts();
	SB_ASSERT_OK(sb_bridge_new(&o, &b));
	p.reuse_lease = true;
	p.reuse_scope_id = "short";
	err = sb_bridge_acquire(b, &p, &l);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_INVAL);
	sb_err_free(err);
	sb_bridge_free(b);
}

typedef struct chunks {
	sb_buf out, err;
	sb_buf order; /* "o" / "e" per call */
} chunks;

static sb_err *on_output(void *ud, sb_stream s, const char *p, size_t n)
{
	chunks *c = ud;
	sb_buf_append(s == SB_STREAM_STDOUT ? &c->out : &c->err, p, n);
	sb_buf_appendc(&c->order, s == SB_STREAM_STDOUT ? 'o' : 'e');
	return NULL;
}

static void bridge_runner_executes_json_and_streamed(void **state)
{
	(void)state;
	sb_bridge *b = NULL;
	sb_bridge_opts o = opts();
	SB_ASSERT_OK(sb_bridge_new(&o, &b));
	sb_bridge_lease_params p = params("runner-exec");
	sb_bridge_lease l = {0};
	SB_ASSERT_OK(sb_bridge_acquire(b, &p, &l));
	sb_runner *r = runner_for(&l);

	char *argv[] = {"sh",
	                "-c",
	                "printf '%s|%s|%s|' \"$1\" \"$(pwd)\" \"$V\"; cat; echo e >&2; exit 4",
	                "x",
	                "it's $HOME \"q\" ünï",
	                NULL};
	char *env[] = {"V=some value", NULL};
	const char in[] = "stdin line\n";
	sb_exec_request rq = {.argv = argv,
	                      .env = env,
	                      .has_stdin = true,
	                      .stdin_data = in,
	                      .stdin_len = sizeof(in) - 1,
	                      .timeout_ms = 30000};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(r, &rq, NULL, NULL, &res));
	assert_true(res.has_exit_code);
	assert_int_equal(res.exit_code, 4);
	assert_false(res.timed_out);
	assert_string_equal(sb_buf_cstr(&res.out),
	                    "it's $HOME \"q\" ünï|/workspace/paperclip|some value|stdin line\n");
	assert_string_equal(sb_buf_cstr(&res.err), "e\n");
	assert_true(res.started_at[0] && res.finished_at[0]);
	sb_exec_result_deinit(&res);

	/* Streamed: every byte reaches on_output, and the result repeats it. */
	char *argv2[] = {"sh", "-c",
	                 "for i in 1 2 3; do echo out$i; echo err$i >&2; done; printf '\\303\\251'",
	                 NULL};
	sb_exec_request rq2 = {.argv = argv2, .cwd = "/tmp", .timeout_ms = 30000};
	chunks c;
	sb_buf_init(&c.out);
	sb_buf_init(&c.err);
	sb_buf_init(&c.order);
	sb_exec_callbacks cb = {.on_output = on_output, .ud = &c};
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(r, &rq2, &cb, NULL, &res));
	assert_int_equal(res.exit_code, 0);
	assert_string_equal(sb_buf_cstr(&c.out), "out1\nout2\nout3\n\xc3\xa9");
	assert_string_equal(sb_buf_cstr(&c.err), "err1\nerr2\nerr3\n");
	assert_string_equal(sb_buf_cstr(&res.out), "out1\nout2\nout3\n\xc3\xa9");
	sb_exec_result_deinit(&res);
	sb_buf_deinit(&c.out);
	sb_buf_deinit(&c.err);
	sb_buf_deinit(&c.order);

	/* Callback-bridge control execs: the marker variable is dropped and the command runs in the
	 * "paperclip-bridge" session, whose environment is its own. */
	{
		char *show[] = {
		    "sh", "-c",
		    "printf '[%s]%s' \"${PAPERCLIP_SANDBOX_EXEC_CHANNEL-}\" \"${X-unset}\"", NULL};
		char *env_set[] = {"PAPERCLIP_SANDBOX_EXEC_CHANNEL=bridge", "X=payload", NULL};
		char *env_bridge[] = {"PAPERCLIP_SANDBOX_EXEC_CHANNEL=bridge", NULL};
		char *const *envs[] = {env_set, NULL, env_bridge};
		const char *want[] = {"[]payload", "[]unset", "[]payload"};
		for (int k = 0; k < 3; k++) {
			sb_exec_request rq_b = {.argv = show, .env = envs[k]};
			sb_exec_result_init(&res);
			SB_ASSERT_OK(sb_runner_execute(r, &rq_b, NULL, NULL, &res));
			assert_string_equal(sb_buf_cstr(&res.out), want[k]);
			sb_exec_result_deinit(&res);
		}
	}

	/* A timeout is a result, not an error. Named session: the lease survives it. */
	char *argv3[] = {"sh", "-c", "echo before; sleep 30", NULL};
	sb_exec_request rq3 = {.argv = argv3, .timeout_ms = 300};
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(r, &rq3, NULL, NULL, &res));
	assert_true(res.timed_out);
	assert_false(res.has_exit_code);
	assert_false(sb_exec_result_ok(&res));
	assert_string_equal(sb_buf_cstr(&res.out), "before\n");
	sb_exec_result_deinit(&res);

	/* The output cap keeps the last bytes. */
	char *argv4[] = {"sh", "-c", "printf 0123456789", NULL};
	sb_exec_request rq4 = {.argv = argv4, .output_cap = 4};
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(r, &rq4, NULL, NULL, &res));
	assert_string_equal(sb_buf_cstr(&res.out), "6789");
	assert_true(res.out_truncated);
	sb_exec_result_deinit(&res);

	/* Binary stdin cannot travel as a JSON string: a clear error, nothing run. */
	const char bin[] = {'a', (char)0xff, 'b'};
	sb_exec_request rq5 = {
	    .argv = argv4, .has_stdin = true, .stdin_data = bin, .stdin_len = sizeof(bin)};
	sb_exec_result_init(&res);
	sb_err *err = sb_runner_execute(r, &rq5, NULL, NULL, &res);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_INVAL);
	assert_non_null(strstr(err->msg, "UTF-8"));
	sb_err_free(err);
	sb_exec_result_deinit(&res);

	/* A foreign acquisition cannot run anything on the lease. */
	sb_bridge_runner_opts ro = {.bridge = opts(),
	                            .provider_lease_id = l.provider_lease_id,
	                            .acquisition_id = "intruder"};
	sb_runner *bad = NULL;
	SB_ASSERT_OK(sb_bridge_runner_new(&ro, &bad));
	sb_exec_result_init(&res);
	err = sb_runner_execute(bad, &rq4, NULL, NULL, &res);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_CONFLICT);
	sb_err_free(err);
	sb_exec_result_deinit(&res);
	sb_runner_free(bad);

	sb_runner_free(r);
	SB_ASSERT_OK(sb_bridge_release(b, l.provider_lease_id, &p));
	sb_bridge_lease_deinit(&l);
	sb_bridge_free(b);
}

/* Concurrent replays of one acquisition: whoever arrives while setup runs gets 503
 * acquisition_in_progress and retries with backoff; all end up with the one lease. */
typedef struct racer {
	pthread_t t;
	sb_bridge_lease lease;
	sb_err *err;
} racer;

static void *race(void *ud)
{
	racer *r = ud;
	sb_bridge_opts o = opts();
	sb_bridge *b = NULL;
	r->err = sb_bridge_new(&o, &b);
	sb_bridge_lease_params p = params("raced");
	if (!r->err)
		r->err = sb_bridge_acquire(b, &p, &r->lease);
	sb_bridge_free(b);
	return NULL;
}

static void bridge_client_concurrent_replays_share_one_lease(void **state)
{
	(void)state;
	racer rs[4];
	memset(rs, 0, sizeof(rs));
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&rs[i].t, NULL, race, &rs[i]), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(rs[i].t, NULL);
	for (int i = 0; i < 4; i++) {
		SB_ASSERT_OK(rs[i].err);
		assert_string_equal(rs[i].lease.provider_lease_id, "pc-acq-raced");
		sb_bridge_lease_deinit(&rs[i].lease);
	}
}

static sb_err *cancel_on_output(void *ud, sb_stream s, const char *p, size_t n)
{
	(void)s, (void)p, (void)n;
	sb_cancel_trigger(ud);
	return NULL;
}

/* Host pid of the process whose command line is exactly "sleep <arg>", or 0. */
static int find_sleeper(const char *arg)
{
	DIR *dir = opendir("/proc");
	assert_non_null(dir);
	struct dirent *de;
	int found = 0;
	char want[64];
	int wl = snprintf(want, sizeof want, "sleep%c%s", 0, arg);
	while (!found && (de = readdir(dir))) {
		int pid = atoi(de->d_name);
		if (pid <= 0)
			continue;
		char p[64];
		snprintf(p, sizeof p, "/proc/%d/cmdline", pid);
		FILE *f = fopen(p, "r");
		if (!f)
			continue;
		char buf[128] = {0};
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		if (n == (size_t)wl + 1 && memcmp(buf, want, (size_t)wl + 1) == 0)
			found = pid;
	}
	closedir(dir);
	return found;
}

/* A process that is gone, or a zombie not yet reaped. */
static bool process_gone(int pid)
{
	char *p = sb_strfmt("/proc/%d/stat", pid);
	FILE *f = fopen(p, "r");
	free(p);
	if (!f)
		return true;
	char buf[512] = {0};
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	const char *rp = n ? strrchr(buf, ')') : NULL;
	return !rp || rp[1] != ' ' || rp[2] == 'Z' || rp[2] == 'X';
}

typedef struct canceller {
	sb_cancel *c;
	const char *arg;
	int pid; /* the remote command, once seen */
} canceller;

/* Cancel once the remote command runs (a JSON exec sends nothing before its end). */
static void *cancel_when_running(void *ud)
{
	canceller *k = ud;
	for (int i = 0; i < 3000 && !(k->pid = find_sleeper(k->arg)); i++)
		usleep(10000);
	sb_cancel_trigger(k->c);
	return NULL;
}

/* Cancelling stops waiting for the command, and (the server being sandbar, which says so in
 * its /health) ends the command in the sandbox too: streamed and JSON execs alike. */
static void bridge_runner_cancel_ends_the_remote_command(void **state)
{
	(void)state;
	sb_bridge *b = NULL;
	sb_bridge_opts o = opts();
	SB_ASSERT_OK(sb_bridge_new(&o, &b));
	sb_bridge_health h;
	SB_ASSERT_OK(sb_bridge_health_get(b, &h));
	assert_true(h.sandbar && h.cancel);
	sb_bridge_health_deinit(&h);
	sb_bridge_lease_params p = params("runner-cancel");
	sb_bridge_lease l = {0};
	SB_ASSERT_OK(sb_bridge_acquire(b, &p, &l));
	sb_runner *r = runner_for(&l);
	for (int streamed = 1; streamed >= 0; streamed--) {
		const char *arg = streamed ? "300.0625" : "300.125";
		sb_cancel *c = sb_cancel_new();
		char *script = sb_strfmt("echo first; sleep %s; echo never", arg);
		char *argv[] = {"sh", "-c", script, NULL};
		sb_exec_request rq = {.argv = argv, .timeout_ms = 600000};
		sb_exec_callbacks cb = {.on_output = streamed ? cancel_on_output : NULL, .ud = c};
		canceller k = {.c = c, .arg = arg};
		pthread_t th;
		if (!streamed)
			assert_int_equal(pthread_create(&th, NULL, cancel_when_running, &k), 0);
		sb_exec_result res;
		sb_exec_result_init(&res);
		int64_t t0 = sb_mono_ms();
		sb_err *err = sb_runner_execute(r, &rq, &cb, c, &res);
		if (!streamed)
			pthread_join(th, NULL);
		assert_non_null(err);
		assert_int_equal(err->code, SB_E_CANCELED);
		sb_err_free(err);
		/* Returned at the cancel (plus the TERM's effect), long before the command's end.
		 */
		assert_true(sb_mono_ms() - t0 < 60000);
		int pid = streamed ? find_sleeper(arg) : k.pid;
		if (streamed) /* cancelled at the first output: the sleep may not have begun */
			assert_true(pid == 0 || process_gone(pid));
		else
			assert_true(pid > 0 && process_gone(pid));
		/* Nothing of that command is left in the sandbox. */
		for (int i = 0; i < 500 && find_sleeper(arg); i++)
			usleep(10000);
		assert_int_equal(find_sleeper(arg), 0);
		sb_exec_result_deinit(&res);
		sb_cancel_free(c);
		free(script);
	}
	sb_runner_free(r);
	sb_bridge_lease_deinit(&l);
	sb_bridge_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(bridge_client_acquires_replays_and_refuses_conflicts),
	    cmocka_unit_test(bridge_client_reports_bad_credentials_and_requests),
	    cmocka_unit_test(bridge_runner_executes_json_and_streamed),
	    cmocka_unit_test(bridge_client_concurrent_replays_share_one_lease),
	    cmocka_unit_test(bridge_runner_cancel_ends_the_remote_command),
	};
	return cmocka_run_group_tests(tests, ct_group_setup, ct_group_teardown);
}
