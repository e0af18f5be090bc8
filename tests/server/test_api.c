/* Error contracts of the native API that hold whatever the host can do: JSON errors with
 * precise codes (400 naming the field, 404, 405, 413 beyond the limits), bounded JSON depth,
 * Prometheus metrics, and HTTPS with a self-signed certificate. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "srvtest.h"

static sbt_daemon D;

static int setup(void **state)
{
	(void)state;
	sbt_daemon_opts o = {.max_json_bytes = 4096, .max_upload_bytes = 65536};
	sbt_group_start(&D, &o);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sbt_group_stop(&D);
	return 0;
}

static void expect_error(const char *method, const char *target, const char *body, long status,
                         const char *code, const char *in_message)
{
	sbt_req rq = {.method = method, .target = target, .body = body};
	sbt_resp r;
	assert_int_equal(sbt_http(&D, &rq, &r), status);
	assert_non_null(r.json);
	assert_string_equal(json_string_value(json_object_get(r.json, "error")), code);
	const char *msg = json_string_value(json_object_get(r.json, "message"));
	assert_non_null(msg);
	if (in_message && !strstr(msg, in_message)) {
		print_error("message \"%s\" lacks \"%s\"\n", msg, in_message);
		fail();
	}
	sbt_resp_deinit(&r);
}

static void acquire_validates_fields_by_name(void **state)
{
	(void)state;
	expect_error("POST", "/v1/leases", "{}", 400, "invalid_request", "acquisition_id");
	expect_error("POST", "/v1/leases", "{\"acquisition_id\":\"a\",\"ttl_s\":\"x\"}", 400,
	             "invalid_request", "ttl_s");
	expect_error("POST", "/v1/leases", "{\"acquisition_id\":\"a\",\"limits\":{\"pids\":-1}}",
	             400, "invalid_request", "pids");
	expect_error("POST", "/v1/leases", "{\"acquisition_id\":\"a\",\"lease_id\":\"../x\"}", 400,
	             "invalid_request", "lease id");
	expect_error("POST", "/v1/leases", "not json", 400, "invalid_request", NULL);
	expect_error("POST", "/v1/leases", "[1]", 400, "invalid_request", NULL);
}

static void json_depth_and_size_are_bounded(void **state)
{
	(void)state;
	sb_buf deep = SB_BUF_INIT;
	for (int i = 0; i < 100; i++)
		sb_buf_appends(&deep, "{\"a\":");
	sb_buf_appends(&deep, "1");
	for (int i = 0; i < 100; i++)
		sb_buf_appendc(&deep, '}');
	expect_error("POST", "/v1/leases", sb_buf_cstr(&deep), 400, "invalid_request", NULL);
	sb_buf_deinit(&deep);
	char *big = sb_xmalloc(8192);
	memset(big, ' ', 8191);
	big[0] = '{';
	big[8189] = '}';
	big[8190] = '\0';
	expect_error("POST", "/v1/leases", big, 413, "payload_too_large", "4096");
	free(big);
}

static void upload_beyond_limit_is_413(void **state)
{
	(void)state;
	char *dir = sbt_mkdtemp("up");
	char *blob = sb_xmalloc(100000);
	memset(blob, 'x', 100000);
	sbt_write(dir, "blob", blob, 100000, 0644);
	char *path = sbt_path(dir, "blob");
	sbt_req rq = {.method = "PUT", .target = "/v1/leases/nolease/files/a.txt", .in_file = path};
	sbt_resp r;
	assert_int_equal(sbt_http(&D, &rq, &r), 413);
	assert_string_equal(json_string_value(json_object_get(r.json, "error")),
	                    "payload_too_large");
	sbt_resp_deinit(&r);
	free(blob);
	free(path);
	sbt_rmtree(dir);
}

static void unknown_things_are_404_and_wrong_methods_405(void **state)
{
	(void)state;
	expect_error("GET", "/v1/leases/nosuch", NULL, 404, "not_found", "nosuch");
	expect_error("POST", "/v1/leases/nosuch/exec", "{\"argv\":[\"true\"]}", 404, "not_found",
	             NULL);
	expect_error("DELETE", "/v1/leases/nosuch", NULL, 404, "not_found", NULL);
	expect_error("GET", "/v2/whatever", NULL, 404, "not_found", NULL);
	expect_error("PATCH", "/v1/leases", NULL, 405, "method_not_allowed", NULL);
	expect_error("POST", "/v1/leases/x/exec", "{\"argv\":[]}", 400, "invalid_request", "argv");
	expect_error("POST", "/v1/leases/x/exec", "{\"argv\":[\"a\"],\"env\":{\"1x\":\"v\"}}", 400,
	             "invalid_request", "1x");
	expect_error("POST", "/v1/leases/x/exec", "{\"script\":\"true\",\"stdin\":\"!!\"}", 400,
	             "invalid_request", "stdin");
	expect_error("GET", "/v1/leases/x/files/a/../b", NULL, 400, "invalid_request", NULL);
}

static void oversized_headers_are_refused(void **state)
{
	(void)state;
	char *big = sb_xmalloc(80 * 1024);
	memset(big, 'a', 80 * 1024 - 1);
	big[80 * 1024 - 1] = '\0';
	char *h = sb_strfmt("X-Big: %s", big);
	const char *hdrs[] = {h, NULL};
	sbt_req rq = {.method = "GET", .target = "/v1/leases", .headers = hdrs};
	sbt_resp r;
	long st = sbt_http(&D, &rq, &r);
	assert_true(st == 431 || st == 413 || st == 400);
	sbt_resp_deinit(&r);
	/* The daemon is still fine. */
	sbt_req ok = {.method = "GET", .target = "/v1/leases"};
	assert_int_equal(sbt_http(&D, &ok, &r), 200);
	sbt_resp_deinit(&r);
	free(h);
	free(big);
}

/* Idle and trickling connections wait at the gate without a thread: even far more of them
 * than --max-connections never keep another request from being answered, the peer's oldest
 * waiting ones make room for its new ones, and the header deadline closes the rest. */
static void idle_connections_never_lock_a_client_out(void **state)
{
	(void)state;
	sbt_daemon d;
	sbt_daemon_opts o = {
	    .max_connections = 3, .max_waiting_per_peer = 40, .header_timeout_ms = 3000};
	sbt_daemon_start(&d, &o);
	enum { IDLE = 60, TRICKLE = 10 };
	int fds[IDLE + TRICKLE];
	for (int i = 0; i < IDLE + TRICKLE; i++) {
		fds[i] = sbt_tcp_connect(d.port);
		if (i >= IDLE) /* a request head that never completes */
			assert_int_equal(write(fds[i], "GET /v1/hea", 11), 11);
	}
	sbt_req rq = {.method = "GET", .target = "/v1/health", .auth = SBT_AUTH_NONE, .tcp = true};
	sbt_req leases = {.method = "GET", .target = "/v1/leases", .tcp = true};
	for (int i = 0; i < 5; i++) {
		sbt_resp r;
		assert_int_equal(sbt_http(&d, i % 2 ? &leases : &rq, &r), 200);
		sbt_resp_deinit(&r);
	}
	/* Answered while the newest trickler still waits: nothing waited for the header deadline
	 * to free a slot (a condition, not a stopwatch: the machine may be loaded). */
	struct pollfd waiting = {.fd = fds[IDLE + TRICKLE - 1], .events = POLLIN};
	assert_int_equal(poll(&waiting, 1, 0), 0);
	/* More than the per-peer cap waited: the oldest were closed to make room. */
	char buf[16];
	ssize_t got = read(fds[0], buf, sizeof buf);
	if (got != 0)
		print_error("read of the oldest idle connection: %zd (%s)\n", got, strerror(errno));
	assert_int_equal(got, 0);
	/* The newest ones are closed at the header deadline. */
	struct pollfd p = {.fd = fds[IDLE + TRICKLE - 1], .events = POLLIN};
	assert_int_equal(poll(&p, 1, 15000), 1);
	/* closed with its unread bytes: a reset rather than an end of file */
	got = read(fds[IDLE + TRICKLE - 1], buf, sizeof buf);
	assert_true(got == 0 || (got < 0 && errno == ECONNRESET));
	for (int i = 0; i < IDLE + TRICKLE; i++)
		close(fds[i]);
	sbt_resp r;
	sbt_req m = {.method = "GET", .target = "/metrics", .tcp = true};
	assert_int_equal(sbt_http(&d, &m, &r), 200);
	const char *text = sb_buf_cstr(&r.body);
	assert_null(strstr(text, "sandbar_connections_total{fate=\"evicted\"} 0\n"));
	assert_null(strstr(text, "sandbar_connections_total{fate=\"header_timeout\"} 0\n"));
	sbt_resp_deinit(&r);
	sbt_daemon_stop(&d);
}

/* The header limit /v1/health advertises is the one enforced, to the byte range. */
static void headers_over_the_advertised_limit_are_431(void **state)
{
	(void)state;
	long st = 0;
	json_t *h = sbt_call(&D, "GET", "/v1/health", NULL, &st);
	size_t limit = (size_t)json_integer_value(
	    json_object_get(json_object_get(h, "limits"), "max_header_bytes"));
	json_decref(h);
	assert_true(limit > 4096);
	for (int over = 0; over <= 1; over++) {
		size_t n = over ? limit + 64 : limit - 1024;
		char *v = sb_xmalloc(n + 1);
		memset(v, 'a', n);
		v[n] = '\0';
		char *hdr = sb_strfmt("X-Pad: %s", v);
		const char *hdrs[] = {hdr, NULL};
		sbt_req rq = {.method = "GET", .target = "/v1/leases", .headers = hdrs};
		sbt_resp r;
		assert_int_equal(sbt_http(&D, &rq, &r), over ? 431 : 200);
		sbt_resp_deinit(&r);
		free(hdr);
		free(v);
	}
}

static void a_second_daemon_never_takes_a_live_socket(void **state)
{
	(void)state;
	char *prog = sbt_build_path("sandbar-serve-test");
	char *other = sbt_mkdtemp("srv2");
	char *out = sbt_sh_out("SANDBAR_TOKEN=x '%s' --no-tcp --socket '%s' --state-dir '%s/st' "
	                       "2>&1; echo \"rc=$?\"",
	                       prog, D.sock, other);
	assert_non_null(strstr(out, "another daemon is listening"));
	assert_non_null(strstr(out, "rc=1"));
	free(out);
	sbt_req rq = {.method = "GET", .target = "/v1/leases"};
	sbt_resp r;
	assert_int_equal(sbt_http(&D, &rq, &r), 200);
	sbt_resp_deinit(&r);
	sbt_rmtree(other);
	free(prog);
}

static void metrics_are_prometheus_text(void **state)
{
	(void)state;
	sbt_req bad = {.method = "GET", .target = "/v1/leases", .auth = SBT_AUTH_NONE};
	sbt_resp r;
	assert_int_equal(sbt_http(&D, &bad, &r), 401);
	sbt_resp_deinit(&r);
	sbt_req rq = {.method = "GET", .target = "/metrics"};
	assert_int_equal(sbt_http(&D, &rq, &r), 200);
	const char *t = sb_buf_cstr(&r.body);
	assert_non_null(strstr(t, "sandbar_leases{state=\"active\"}"));
	assert_non_null(strstr(t, "sandbar_execs_running"));
	assert_non_null(strstr(t, "sandbar_execs_total"));
	assert_non_null(strstr(t, "sandbar_bytes_streamed_total"));
	assert_non_null(strstr(t, "# TYPE sandbar_http_request_duration_seconds histogram"));
	assert_non_null(strstr(t, "sandbar_http_request_duration_seconds_bucket{le=\"+Inf\"}"));
	const char *af = strstr(t, "\nsandbar_auth_failures_total ");
	assert_non_null(af);
	assert_true(atoi(af + strlen("\nsandbar_auth_failures_total ")) >= 1);
	sbt_resp_deinit(&r);
}

static void https_with_a_self_signed_certificate(void **state)
{
	(void)state;
	sbt_daemon d;
	sbt_daemon_opts o = {.tls = true};
	sbt_daemon_start(&d, &o);
	sbt_req h = {.method = "GET", .target = "/v1/health", .auth = SBT_AUTH_NONE};
	sbt_resp r;
	assert_int_equal(sbt_http(&d, &h, &r), 200);
	assert_true(json_is_true(json_object_get(r.json, "ok")));
	sbt_resp_deinit(&r);
	sbt_req s = {.method = "GET", .target = "/v1/leases", .auth = SBT_AUTH_HMAC};
	assert_int_equal(sbt_http(&d, &s, &r), 200);
	sbt_resp_deinit(&r);
	sbt_req n = {.method = "GET", .target = "/v1/leases", .auth = SBT_AUTH_NONE};
	assert_int_equal(sbt_http(&d, &n, &r), 401);
	sbt_resp_deinit(&r);
	/* Plain HTTP to the TLS port is no way in. */
	char *url = sb_strfmt("http://127.0.0.1:%d/v1/leases", d.port);
	char *out = sbt_sh_out("curl -s -o /dev/null -w '%%{http_code}' -m 5 "
	                       "-H 'Authorization: Bearer %s' %s",
	                       SBT_TOKEN, url);
	assert_true(strcmp(out, "200") != 0);
	free(out);
	free(url);
	sbt_daemon_stop(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(acquire_validates_fields_by_name),
	    cmocka_unit_test(json_depth_and_size_are_bounded),
	    cmocka_unit_test(upload_beyond_limit_is_413),
	    cmocka_unit_test(unknown_things_are_404_and_wrong_methods_405),
	    cmocka_unit_test(oversized_headers_are_refused),
	    cmocka_unit_test(idle_connections_never_lock_a_client_out),
	    cmocka_unit_test(headers_over_the_advertised_limit_are_431),
	    cmocka_unit_test(a_second_daemon_never_takes_a_live_socket),
	    cmocka_unit_test(metrics_are_prometheus_text),
	    cmocka_unit_test(https_with_a_self_signed_certificate),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
