/* The auth matrix on every route of a real daemon: no credentials, a wrong token, a bad
 * signature, a wrong Host, a stale timestamp, a replayed nonce and a tampered body are all
 * 401 before routing; valid bearer and HMAC requests pass (2xx on a real lease when this host
 * can run sandboxes). Also: unknown paths are 401 without credentials, health needs none, and
 * a daemon with no credentials configured refuses everything. */
#include <signal.h>
#include <string.h>

#include "srvtest.h"

typedef struct route {
	const char *method;
	const char *target; /* {L} = lease id, {X} = exec id */
	const char *body;
	size_t body_len;
} route;

static char empty_tar[1024];

/* In execution order: creations before reads, the lease's DELETE last. */
static const route routes[] = {
    {"GET", "/metrics", NULL, 0},
    {"GET", "/v1/leases", NULL, 0},
    {"GET", "/v1/leases/{L}", NULL, 0},
    {"POST", "/v1/leases/{L}/renew", "{\"ttl_s\":600}", 0},
    {"POST", "/v1/leases/{L}/exec", "{\"argv\":[\"true\"]}", 0},
    {"GET", "/v1/leases/{L}/execs", NULL, 0},
    {"GET", "/v1/leases/{L}/execs/{X}", NULL, 0},
    {"GET", "/v1/leases/{L}/execs/{X}/output?stream=stdout&offset=0", NULL, 0},
    {"POST", "/v1/leases/{L}/execs/{X}/signal", "{\"signal\":\"TERM\"}", 0},
    {"GET", "/v1/leases/{L}/processes", NULL, 0},
    {"PUT", "/v1/leases/{L}/files/dir/f.txt", "hello", 0},
    {"GET", "/v1/leases/{L}/files/dir/f.txt", NULL, 0},
    {"DELETE", "/v1/leases/{L}/files/dir/f.txt", NULL, 0},
    {"PUT", "/v1/leases/{L}/workspace", empty_tar, sizeof empty_tar},
    {"GET", "/v1/leases/{L}/workspace?exclude=node_modules", NULL, 0},
    {"POST", "/v1/leases", "{\"acquisition_id\":\"matrix-acq-2\"}", 0},
    {"DELETE", "/v1/leases/{L}", NULL, 0},
};

static sbt_daemon D;

static void subst(char *out, size_t cap, const char *tmpl, const char *lease, const char *xid)
{
	sb_buf b = SB_BUF_INIT;
	for (const char *p = tmpl; *p; p++) {
		if (!strncmp(p, "{L}", 3)) {
			sb_buf_appends(&b, lease);
			p += 2;
		} else if (!strncmp(p, "{X}", 3)) {
			sb_buf_appends(&b, xid);
			p += 2;
		} else {
			sb_buf_appendc(&b, *p);
		}
	}
	snprintf(out, cap, "%s", sb_buf_cstr(&b));
	sb_buf_deinit(&b);
}

static int setup(void **state)
{
	(void)state;
	sbt_group_start(&D, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sbt_group_stop(&D);
	return 0;
}

static long do_req(sbt_req *rq)
{
	sbt_resp r;
	long st = sbt_http(&D, rq, &r);
	if (st == 401) {
		/* Every 401 has the documented body. */
		assert_non_null(r.json);
		assert_string_equal(json_string_value(json_object_get(r.json, "error")),
		                    "unauthorized");
		assert_true(json_is_string(json_object_get(r.json, "message")));
	}
	sbt_resp_deinit(&r);
	return st;
}

static void expect_refused(const route *rt, const char *target)
{
	sbt_req base = {
	    .method = rt->method, .target = target, .body = rt->body, .body_len = rt->body_len};
	sbt_req rq;

	rq = base;
	rq.auth = SBT_AUTH_NONE;
	assert_int_equal(do_req(&rq), 401);

	rq = base;
	rq.token = "wrong-token";
	assert_int_equal(do_req(&rq), 401);

	rq = base;
	rq.auth = SBT_AUTH_HMAC;
	rq.secret = "not-the-secret-0123456789";
	assert_int_equal(do_req(&rq), 401);

	rq = base;
	rq.auth = SBT_AUTH_HMAC;
	rq.key_id = "nokey";
	assert_int_equal(do_req(&rq), 401);

	rq = base;
	rq.auth = SBT_AUTH_HMAC;
	rq.host = "evil.example";
	assert_int_equal(do_req(&rq), 401);

	rq = base;
	rq.auth = SBT_AUTH_HMAC;
	rq.ts_offset_s = -301;
	assert_int_equal(do_req(&rq), 401);

	rq = base;
	rq.auth = SBT_AUTH_HMAC;
	rq.ts_offset_s = 400;
	assert_int_equal(do_req(&rq), 401);

	/* Tampered body: the body sent differs from the one signed. */
	rq = base;
	rq.auth = SBT_AUTH_HMAC;
	if (rq.body) {
		rq.sign_body = "{\"tampered\":true}";
	} else {
		rq.body = "{}";
		rq.body_len = 2;
		rq.sign_body = "";
	}
	assert_int_equal(do_req(&rq), 401);
}

static void matrix_on_every_route(void **state)
{
	(void)state;
	bool real = sbt_sandbox_ok(&D);
	SBT_REQUIRE(real, SBT_NO_SANDBOX); /* the exec and file routes need a real lease */
	char *lease = real ? sbt_acquire(&D, "matrix-acq-1") : sb_xstrdup("no-such-lease");
	char *exec_id = sb_xstrdup("ex_none");
	if (real) {
		long st = 0;
		char *t = sb_strfmt("/v1/leases/%s/exec", lease);
		json_t *j = sbt_call(&D, "POST", t, "{\"argv\":[\"sleep\",\"0\"]}", &st);
		assert_int_equal(st, 200);
		free(exec_id);
		exec_id = sb_xstrdup(json_string_value(json_object_get(j, "exec_id")));
		json_decref(j);
		free(t);
	}
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		const route *rt = &routes[i];
		char target[512];
		subst(target, sizeof target, rt->target, lease, exec_id);
		expect_refused(rt, target);

		/* Valid HMAC, then the same nonce again: replay. */
		char nonce[40];
		snprintf(nonce, sizeof nonce, "matrix-nonce-%zu-0123456789", i);
		sbt_req rq = {.method = rt->method,
		              .target = target,
		              .body = rt->body,
		              .body_len = rt->body_len,
		              .auth = SBT_AUTH_HMAC,
		              .nonce = nonce,
		              .key_id = (i % 2) ? SBT_KEY2 : SBT_KEY1,
		              .secret = (i % 2) ? SBT_SECRET2 : SBT_SECRET1,
		              .tcp = (i % 3) == 0};
		long st = do_req(&rq);
		if (st == 0 || st == 401 || st >= 300)
			print_message("hmac %s %s -> %ld\n", rt->method, target, st);
		if (real && !(strcmp(rt->method, "POST") == 0 && strstr(rt->target, "signal")))
			assert_in_range(st, 200, 299);
		else
			assert_true(st != 401 && st != 0);
		assert_int_equal(do_req(&rq), 401);

		/* Valid bearer. A second DELETE is idempotent; a second acquire replays. */
		sbt_req rb = {.method = rt->method,
		              .target = target,
		              .body = rt->body,
		              .body_len = rt->body_len};
		st = do_req(&rb);
		if (st == 0 || st == 401 || st >= 300)
			print_message("bearer %s %s -> %ld\n", rt->method, target, st);
		if (real && !strstr(rt->target, "signal") &&
		    !(strcmp(rt->method, "DELETE") == 0 && strstr(rt->target, "files")))
			assert_in_range(st, 200, 299);
		else
			assert_true(st != 401 && st != 0);
	}
	free(lease);
	free(exec_id);
}

static void unknown_paths_are_401_before_404(void **state)
{
	(void)state;
	sbt_req rq = {.method = "GET", .target = "/no/such/route", .auth = SBT_AUTH_NONE};
	assert_int_equal(do_req(&rq), 401);
	rq.method = "BREW";
	assert_int_equal(do_req(&rq), 401);
	sbt_req ok = {.method = "GET", .target = "/no/such/route"};
	assert_int_equal(do_req(&ok), 404);
	sbt_req bad = {.method = "GET", .target = "/v1/leases/%zz"};
	assert_int_equal(do_req(&bad), 400);
	sbt_req badna = {.method = "GET", .target = "/v1/leases/%zz", .auth = SBT_AUTH_NONE};
	assert_int_equal(do_req(&badna), 401);
}

static void health_needs_no_credentials(void **state)
{
	(void)state;
	sbt_req rq = {.method = "GET", .target = "/v1/health", .auth = SBT_AUTH_NONE};
	sbt_resp r;
	assert_int_equal(sbt_http(&D, &rq, &r), 200);
	assert_true(json_is_true(json_object_get(r.json, "ok")));
	assert_string_equal(json_string_value(json_object_get(r.json, "version")), SB_VERSION);
	assert_non_null(json_object_get(json_object_get(r.json, "limits"), "max_json_bytes"));
	assert_true(json_is_true(
	    json_object_get(json_object_get(r.json, "capabilities"), "acquisition_replay")));
	sbt_resp_deinit(&r);
}

static void daemon_without_credentials_refuses_everything(void **state)
{
	(void)state;
	sbt_daemon d;
	sbt_daemon_opts o = {.no_token = true};
	sbt_daemon_start(&d, &o);
	sbt_req rq = {.method = "GET", .target = "/v1/leases"};
	sbt_resp r;
	assert_int_equal(sbt_http(&d, &rq, &r), 401);
	sbt_resp_deinit(&r);
	rq.auth = SBT_AUTH_HMAC;
	assert_int_equal(sbt_http(&d, &rq, &r), 401);
	sbt_resp_deinit(&r);
	sbt_req h = {.method = "GET", .target = "/v1/health", .auth = SBT_AUTH_NONE};
	assert_int_equal(sbt_http(&d, &h, &r), 200);
	sbt_resp_deinit(&r);
	char *log = sbt_read(d.dir, "daemon.log", NULL);
	assert_non_null(log);
	assert_non_null(strstr(log, "every request except GET /v1/health will be refused"));
	free(log);
	sbt_daemon_stop(&d);
}

static void access_log_names_key_but_never_secrets(void **state)
{
	(void)state;
	sbt_req rq = {.method = "GET",
	              .target = "/v1/leases",
	              .auth = SBT_AUTH_HMAC,
	              .key_id = SBT_KEY2,
	              .secret = SBT_SECRET2};
	sbt_resp r;
	assert_int_equal(sbt_http(&D, &rq, &r), 200);
	sbt_resp_deinit(&r);
	sbt_req rb = {.method = "GET", .target = "/v1/leases"};
	assert_int_equal(sbt_http(&D, &rb, &r), 200);
	sbt_resp_deinit(&r);
	char *log = sbt_read(D.dir, "daemon.log", NULL);
	assert_non_null(log);
	assert_non_null(strstr(log, "\"key_id\":\"k2\""));
	assert_non_null(strstr(log, "\"key_id\":\"bearer\""));
	assert_non_null(strstr(log, "\"method\":\"GET\""));
	assert_non_null(strstr(log, "\"status\":401"));
	assert_non_null(strstr(log, "\"duration_ms\""));
	if (sbt_sandbox_ok(&D))
		assert_non_null(strstr(log, "\"lease\":\"lease_")); /* from the matrix */
	assert_null(strstr(log, SBT_TOKEN));
	assert_null(strstr(log, SBT_SECRET1));
	assert_null(strstr(log, SBT_SECRET2));
	free(log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(health_needs_no_credentials),
	    cmocka_unit_test(unknown_paths_are_401_before_404),
	    cmocka_unit_test(matrix_on_every_route),
	    cmocka_unit_test(access_log_names_key_but_never_secrets),
	    cmocka_unit_test(daemon_without_credentials_refuses_everything),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
