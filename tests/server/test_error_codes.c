/* Every error code docs/api.md documents for the native API, reached at least once against a
 * real daemon and real sandboxes: each row of the table provokes one condition and checks the
 * HTTP status, the `error` code, the message's shape (a non-empty single line that names the id
 * or field at fault), the `details` members the doc lists and, for every 503, Retry-After.
 * 501 `unsupported` (sleep without a cgroup v1 freezer) cannot be provoked on a host that has
 * the freezer and is covered by the sleep tests' own skip rules, not here. */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "srvtest.h"

static sbt_daemon D;
static bool OK;
static char *L; /* a plain active lease the rows share */

static int setup(void **state)
{
	(void)state;
	sbt_daemon_opts o = {.max_json_bytes = 4096, .max_upload_bytes = 4096, .max_output = 1000};
	sbt_group_start(&D, &o);
	OK = sbt_sandbox_ok(&D);
	if (OK)
		L = sbt_acquire(&D, "errc-shared");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(L);
	sbt_group_stop(&D);
	return 0;
}

/* The checked shape of an error reply. */
static void check_error(const char *row, const sbt_resp *r, long status, const char *code,
                        const char *msg_names, const char *details_key)
{
	if (r->status != status || !r->json || !sbt_jstr(r->json, "error") ||
	    strcmp(sbt_jstr(r->json, "error"), code) != 0)
		print_error("%s: expected %ld %s, got %ld %s\n", row, status, code, r->status,
		            sb_buf_cstr((sb_buf *)&r->body));
	assert_int_equal(r->status, status);
	assert_non_null(r->json);
	assert_string_equal(sbt_jstr(r->json, "error"), code);
	const char *msg = sbt_jstr(r->json, "message");
	assert_non_null(msg);
	assert_true(strlen(msg) > 10 && strlen(msg) < 4096);
	assert_null(strchr(msg, '\n'));
	if (msg_names && !strstr(msg, msg_names)) {
		print_error("%s: the message \"%s\" does not name \"%s\"\n", row, msg, msg_names);
		fail();
	}
	json_t *details = json_object_get(r->json, "details");
	if (details_key) {
		assert_true(json_is_object(details));
		assert_non_null(json_object_get(details, details_key));
	}
	char *ra = sbt_resp_header(r, "Retry-After");
	if (status == 503) {
		assert_non_null(ra);
		assert_true(atoi(ra) >= 1);
	}
	free(ra);
	char *ct = sbt_resp_header(r, "Content-Type");
	assert_non_null(ct);
	assert_true(strstr(ct, "application/json") != NULL);
	free(ct);
}

static void req(sbt_resp *r, const char *method, const char *target, const char *body)
{
	sbt_req rq = {.method = method, .target = target, .body = body};
	sbt_http(&D, &rq, r);
}

static char *lease_path(const char *lease, const char *rest)
{
	return sb_strfmt("/v1/leases/%s%s", lease, rest);
}

/* ------------------------------------------------------------------ the rows */

static void invalid_request(void **state)
{
	(void)state;
	sbt_resp r;
	req(&r, "POST", "/v1/leases", "{\"acquisition_id\":\"errc-bad\",\"ttl_s\":\"soon\"}");
	check_error("bad field", &r, 400, "invalid_request", "ttl_s", NULL);
	sbt_resp_deinit(&r);
	req(&r, "POST", "/v1/leases", "{\"acquisition_id\":");
	check_error("malformed JSON", &r, 400, "invalid_request", NULL, NULL);
	sbt_resp_deinit(&r);
	req(&r, "GET", "/v1/leases/a/../b", NULL);
	check_error("dot segment", &r, 400, "invalid_request", NULL, NULL);
	sbt_resp_deinit(&r);
}

static void spawn_failed(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	sbt_resp r;
	char *t = lease_path(L, "/exec");
	req(&r, "POST", t, "{\"argv\":[\"/no/such/program-errc\"]}");
	check_error("spawn", &r, 400, "spawn_failed", "/no/such/program-errc", NULL);
	sbt_resp_deinit(&r);
	free(t);
}

static void unauthorized(void **state)
{
	(void)state;
	sbt_req rq = {.method = "GET", .target = "/v1/leases", .auth = SBT_AUTH_NONE};
	sbt_resp r;
	sbt_http(&D, &rq, &r);
	check_error("no credentials", &r, 401, "unauthorized", NULL, NULL);
	sbt_resp_deinit(&r);
	rq.auth = SBT_AUTH_BEARER;
	rq.token = "wrong-token-0123456789";
	sbt_http(&D, &rq, &r);
	check_error("wrong token", &r, 401, "unauthorized", NULL, NULL);
	sbt_resp_deinit(&r);
}

static void not_found(void **state)
{
	(void)state;
	sbt_resp r;
	req(&r, "GET", "/v1/leases/errc-never-seen", NULL);
	check_error("unknown lease", &r, 404, "not_found", "errc-never-seen", NULL);
	sbt_resp_deinit(&r);
	req(&r, "GET", "/v1/no-such-route", NULL);
	check_error("unknown route", &r, 404, "not_found", NULL, NULL);
	sbt_resp_deinit(&r);
	if (!OK)
		return;
	char *t = lease_path(L, "/execs/ex_errc_none");
	req(&r, "GET", t, NULL);
	check_error("unknown exec", &r, 404, "not_found", "ex_errc_none", NULL);
	sbt_resp_deinit(&r);
	free(t);
	t = lease_path(L, "/files/errc-missing.txt");
	req(&r, "GET", t, NULL);
	check_error("missing file", &r, 404, "not_found", "errc-missing.txt", NULL);
	sbt_resp_deinit(&r);
	free(t);
	/* a tombstone: "was destroyed" */
	char *gone = sbt_acquire(&D, "errc-tomb");
	long st;
	t = lease_path(gone, "");
	json_decref(sbt_call(&D, "DELETE", t, NULL, &st));
	assert_int_equal(st, 200);
	free(t);
	t = lease_path(gone, "/exec");
	req(&r, "POST", t, "{\"argv\":[\"true\"]}");
	check_error("destroyed lease", &r, 404, "not_found", "was destroyed", NULL);
	sbt_resp_deinit(&r);
	free(t);
	free(gone);
}

static void method_not_allowed(void **state)
{
	(void)state;
	sbt_resp r;
	req(&r, "PATCH", "/v1/leases", "{}");
	check_error("PATCH", &r, 405, "method_not_allowed", "PATCH", NULL);
	sbt_resp_deinit(&r);
}

static void acquisition_conflict(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	sbt_resp r;
	req(&r, "POST", "/v1/leases", "{\"acquisition_id\":\"errc-shared\",\"ttl_s\":5}");
	check_error("other parameters", &r, 409, "acquisition_conflict", "errc-shared", "lease_id");
	sbt_resp_deinit(&r);
}

typedef struct bg_exec {
	char *target, *body;
	sbt_resp r;
} bg_exec;

static void *bg_exec_run(void *ud)
{
	bg_exec *b = ud;
	req(&b->r, "POST", b->target, b->body);
	return NULL;
}

/* Wait (bounded) until exec xid of lease is reported running. */
static void wait_running(sbt_daemon *d, const char *lease, const char *xid)
{
	char *t = sb_strfmt("/v1/leases/%s/execs/%s", lease, xid);
	bool running = false;
	for (int i = 0; i < 1000 && !running; i++) {
		long st;
		json_t *j = sbt_call(d, "GET", t, NULL, &st);
		running = st == 200 && json_is_true(json_object_get(j, "running"));
		json_decref(j);
		if (!running)
			usleep(10000); /* polling: the status route is the only view of it */
	}
	free(t);
	assert_true(running);
}

static void lease_busy(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	char *lease = sbt_acquire(&D, "errc-busy");
	/* on the heap: a failed assertion leaves this frame while the thread still runs */
	bg_exec *bp = sb_xcalloc(1, sizeof *bp),
	        b0 = {.target = lease_path(lease, "/exec"),
	              .body =
	                  sb_xstrdup("{\"exec_id\":\"errc-sleeper\",\"argv\":[\"sleep\",\"60\"]}")};
	*bp = b0;
#define b (*bp)
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, bg_exec_run, bp), 0);
	wait_running(&D, lease, "errc-sleeper");

	sbt_resp r;
	char *t = lease_path(lease, "");
	req(&r, "DELETE", t, NULL);
	check_error("destroy while an exec runs", &r, 409, "lease_busy", lease, "busy");
	/* the running exec is named (besides the fence its own reply holds) */
	json_t *busy = json_object_get(json_object_get(r.json, "details"), "busy");
	bool named = false;
	for (size_t i = 0; i < json_array_size(busy); i++)
		named |= strcmp(json_string_value(json_array_get(busy, i)), "errc-sleeper") == 0;
	assert_true(named);
	sbt_resp_deinit(&r);
	/* defer: the lease waits to be destroyed, and a new exec is refused */
	char *td = lease_path(lease, "?defer=1");
	req(&r, "DELETE", td, NULL);
	assert_int_equal(r.status, 202);
	sbt_resp_deinit(&r);
	req(&r, "POST", b.target, "{\"argv\":[\"true\"]}");
	check_error("exec while waiting to be destroyed", &r, 409, "lease_busy", lease, NULL);
	sbt_resp_deinit(&r);
	/* force ends it; the waiting JSON exec then answers (killed, or the sandbox gone) */
	char *ts = lease_path(lease, "?force=1");
	req(&r, "DELETE", ts, NULL);
	assert_int_equal(r.status, 200);
	sbt_resp_deinit(&r);
	pthread_join(th, NULL);
	assert_true(b.r.status == 200 || b.r.status == 409);
	sbt_resp_deinit(&b.r);
	free(b.target);
	free(b.body);
	free(t);
	free(td);
	free(ts);
	free(lease);
	free(bp);
#undef b
}

static void conflict(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	sbt_resp r;
	char *t = lease_path(L, "/files/errc-dir/inner.txt");
	req(&r, "PUT", t, "x");
	assert_int_equal(r.status, 200);
	sbt_resp_deinit(&r);
	free(t);
	t = lease_path(L, "/files/errc-dir");
	req(&r, "PUT", t, "x");
	check_error("upload onto a directory", &r, 409, "conflict", "errc-dir", NULL);
	sbt_resp_deinit(&r);
	req(&r, "DELETE", t, NULL);
	check_error("non-empty directory", &r, 409, "conflict", "errc-dir", NULL);
	sbt_resp_deinit(&r);
	free(t);
}

static void sandbox_state_lost(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	char *lease = sbt_acquire(&D, "errc-lost");
	char *rel = sb_strfmt("leases/%s/lease.json", lease);
	char *lj = sbt_read(D.state_dir, rel, NULL);
	assert_non_null(lj);
	json_t *info = json_loads(lj, 0, NULL);
	int pid = (int)json_integer_value(json_object_get(info, "init_pid"));
	json_decref(info);
	assert_true(pid > 1);
	assert_int_equal(kill(pid, SIGKILL), 0);
	char *t = lease_path(lease, "/exec");
	sbt_resp r = {0};
	/* the daemon learns of the death on its next contact or from its reaper */
	for (int i = 0; i < 300; i++) {
		req(&r, "POST", t, "{\"argv\":[\"true\"]}");
		if (r.status == 409)
			break;
		sbt_resp_deinit(&r);
		usleep(10000); /* polling: nothing tells a client when the daemon noticed */
	}
	check_error("exec in a dead sandbox", &r, 409, "sandbox_state_lost", lease, NULL);
	sbt_resp_deinit(&r);
	free(t);
	free(rel);
	free(lj);
	free(lease);
}

static void payload_too_large(void **state)
{
	(void)state;
	sbt_resp r;
	sb_buf b = SB_BUF_INIT;
	sb_buf_appends(&b, "{\"acquisition_id\":\"errc-big\",\"metadata\":{\"pad\":\"");
	for (int i = 0; i < 5000; i++)
		sb_buf_appends(&b, "x");
	sb_buf_appends(&b, "\"}}");
	req(&r, "POST", "/v1/leases", sb_buf_cstr(&b));
	check_error("JSON body over the limit", &r, 413, "payload_too_large", "4096", NULL);
	sbt_resp_deinit(&r);
	if (OK) {
		char *t = lease_path(L, "/files/errc-big.bin");
		req(&r, "PUT", t, sb_buf_cstr(&b));
		check_error("upload over the limit", &r, 413, "payload_too_large", "4096", NULL);
		sbt_resp_deinit(&r);
		free(t);
	}
	sb_buf_deinit(&b);
}

static void output_too_large(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	sbt_resp r;
	char *t = lease_path(L, "/exec");
	req(&r, "POST", t, "{\"argv\":[\"seq\",\"1\",\"1000\"]}");
	check_error("JSON exec over --max-output", &r, 413, "output_too_large", "1000", "exec_id");
	sbt_resp_deinit(&r);
	free(t);
}

/* A daemon-side failure to create the sandbox: a pids limit of 1 leaves bubblewrap no room to
 * fork the sandbox's init. */
static void acquisition_failed(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	sbt_resp r;
	req(&r, "POST", "/v1/leases",
	    "{\"acquisition_id\":\"errc-fail\",\"lease_id\":\"errc-fail-lease\","
	    "\"limits\":{\"pids\":1}}");
	check_error("sandbox cannot start", &r, 500, "acquisition_failed", "errc-fail-lease", NULL);
	sbt_resp_deinit(&r);
	/* nothing is left behind */
	char *dir = sb_strfmt("%s/leases/errc-fail-lease", D.state_dir);
	struct stat st;
	assert_int_equal(lstat(dir, &st), -1);
	free(dir);
	long s;
	json_t *m = sbt_call(&D, "GET", "/v1/leases/errc-fail-lease", NULL, &s);
	assert_int_equal(s, 404);
	json_decref(m);
}

/* A record of the sandbox spool the daemon cannot read: the exec's status file replaced by a
 * directory (root can do what sandboxed code cannot: the spool is the daemon's). */
static void internal_error(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	char *lease = sbt_acquire(&D, "errc-internal");
	char *t = lease_path(lease, "/exec");
	long st;
	json_t *j = sbt_call(&D, "POST", t, "{\"exec_id\":\"errc-rec\",\"argv\":[\"true\"]}", &st);
	assert_int_equal(st, 200);
	json_decref(j);
	char *status = sb_strfmt("%s/leases/%s/spool/errc-rec/status.json", D.state_dir, lease);
	/* sandbar-init writes the final record just after the reply (a "running" one may come
	 * first): wait for the final one, bounded. Polling: nothing outside the sandbox is told. */
	for (int i = 0; i < 500; i++) {
		sb_buf rec = SB_BUF_INIT;
		sb_err *rerr = sb_read_file(status, 1u << 16, &rec);
		bool final = !rerr && strstr(sb_buf_cstr(&rec), "\"running\":false");
		sb_err_free(rerr);
		sb_buf_deinit(&rec);
		if (final)
			break;
		usleep(10000);
	}
	assert_int_equal(unlink(status), 0);
	assert_int_equal(mkdir(status, 0700), 0);
	char *g = lease_path(lease, "/execs/errc-rec");
	/* Until init has dropped the exec (its next loop turn after the record is written), a
	 * watch is answered from init's memory with the real status: the record is read only
	 * once init no longer knows the exec. Retried while the answer is that status, bounded. */
	sbt_resp r;
	for (int i = 0;; i++) {
		req(&r, "GET", g, NULL);
		if (r.status != 200 || i == 500)
			break;
		assert_non_null(r.json);
		assert_false(json_is_true(json_object_get(r.json, "running")));
		sbt_resp_deinit(&r);
		usleep(10000);
	}
	check_error("unreadable exec record", &r, 500, "internal_error", "errc-rec", NULL);
	sbt_resp_deinit(&r);
	assert_int_equal(rmdir(status), 0);
	free(status);
	free(g);
	free(t);
	free(lease);
}

typedef struct racer {
	const char *body;
	sbt_resp r;
} racer;

static void *race_acquire(void *ud)
{
	racer *a = ud;
	req(&a->r, "POST", "/v1/leases", a->body);
	return NULL;
}

/* While the first request for an acquisition still sets the sandbox up, the same acquisition
 * is 503 acquisition_in_progress and an exec on its lease 503 busy. Both need the requests to
 * overlap a few milliseconds of setup: tried until seen, bounded. */
static void in_progress_and_busy(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	sbt_resp seen_acq = {0}, seen_busy = {0};
	for (int round = 0; round < 40 && (!seen_acq.status || !seen_busy.status); round++) {
		char *body = sb_strfmt("{\"acquisition_id\":\"errc-race-%d\","
		                       "\"lease_id\":\"errc-race-%d\"}",
		                       round, round);
		char *x = sb_strfmt("/v1/leases/errc-race-%d/exec", round);
		racer a = {.body = body};
		pthread_t th;
		assert_int_equal(pthread_create(&th, NULL, race_acquire, &a), 0);
		for (int k = 0; k < 200; k++) {
			sbt_resp r;
			if (!seen_acq.status || k % 2) {
				req(&r, "POST", "/v1/leases", body);
				if (r.status == 503 && !seen_acq.status) {
					seen_acq = r;
					continue;
				}
			} else {
				req(&r, "POST", x, "{\"argv\":[\"true\"]}");
				if (r.status == 503 && !seen_busy.status) {
					seen_busy = r;
					continue;
				}
			}
			long st = r.status;
			sbt_resp_deinit(&r);
			if (st == 200)
				break; /* set up: no overlap left in this round */
		}
		pthread_join(th, NULL);
		/* either request may have been first: the lease is set up once one says 200 */
		assert_true(a.r.status == 200 || a.r.status == 503);
		long ast = a.r.status;
		sbt_resp_deinit(&a.r);
		for (int k = 0; k < 500 && ast != 200; k++) {
			sbt_resp r;
			req(&r, "POST", "/v1/leases", body);
			ast = r.status;
			sbt_resp_deinit(&r);
			if (ast != 200)
				usleep(10000); /* polling: what a client told to retry does */
		}
		assert_int_equal(ast, 200);
		char *del = sb_strfmt("/v1/leases/errc-race-%d", round);
		long st;
		json_decref(sbt_call(&D, "DELETE", del, NULL, &st));
		assert_int_equal(st, 200);
		free(del);
		free(x);
		free(body);
	}
	assert_true(seen_acq.status != 0);
	check_error("the same acquisition again", &seen_acq, 503, "acquisition_in_progress",
	            "errc-race-", "lease_id");
	assert_string_equal(sbt_jstr(json_object_get(seen_acq.json, "details"), "state"),
	                    "pending");
	assert_true(seen_busy.status != 0);
	check_error("exec on a lease being set up", &seen_busy, 503, "busy", "errc-race-", NULL);
	sbt_resp_deinit(&seen_acq);
	sbt_resp_deinit(&seen_busy);
}

static void header_fields_too_large(void **state)
{
	(void)state;
	char *big = sb_xmalloc(40000);
	memcpy(big, "X-Errc-Pad: ", 12);
	memset(big + 12, 'a', 40000 - 13);
	big[40000 - 1] = '\0';
	const char *hdrs[] = {big, NULL};
	sbt_req rq = {.method = "GET", .target = "/v1/leases", .headers = hdrs};
	sbt_resp r;
	sbt_http(&D, &rq, &r);
	check_error("head over 32 KiB", &r, 431, "request_header_fields_too_large", "32768", NULL);
	sbt_resp_deinit(&r);
	free(big);
}

/* Last: its daemon is drained. A JSON exec still waiting when SIGTERM arrives. */
static void shutting_down(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	char *lease = sbt_acquire(&D, "errc-drain");
	bg_exec *bp = sb_xcalloc(1, sizeof *bp),
	        b0 = {.target = lease_path(lease, "/exec"),
	              .body =
	                  sb_xstrdup("{\"exec_id\":\"errc-drained\",\"argv\":[\"sleep\",\"2\"]}")};
	*bp = b0;
#define b (*bp)
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, bg_exec_run, bp), 0);
	wait_running(&D, lease, "errc-drained");
	int ws = sbt_daemon_signal(&D, SIGTERM);
	assert_true(WIFEXITED(ws));
	pthread_join(th, NULL);
	check_error("drain", &b.r, 503, "shutting_down", "errc-drained", "exec_id");
	sbt_resp_deinit(&b.r);
	sbt_daemon_restart(&D); /* for the group teardown */
	free(b.target);
	free(b.body);
	free(lease);
	free(bp);
#undef b
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(invalid_request),
	    cmocka_unit_test(spawn_failed),
	    cmocka_unit_test(unauthorized),
	    cmocka_unit_test(not_found),
	    cmocka_unit_test(method_not_allowed),
	    cmocka_unit_test(acquisition_conflict),
	    cmocka_unit_test(lease_busy),
	    cmocka_unit_test(conflict),
	    cmocka_unit_test(sandbox_state_lost),
	    cmocka_unit_test(payload_too_large),
	    cmocka_unit_test(output_too_large),
	    cmocka_unit_test(acquisition_failed),
	    cmocka_unit_test(internal_error),
	    cmocka_unit_test(in_progress_and_busy),
	    cmocka_unit_test(header_fields_too_large),
	    cmocka_unit_test(shutting_down),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
