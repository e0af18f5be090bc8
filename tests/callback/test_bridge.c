/* The callback bridge through the real daemon: a lease acquired with a `callback` field, a
 * sandboxed curl calling the in-sandbox endpoint, and a real upstream on loopback recording
 * what reached it. Every case of issue 16's Tests paragraph except `sandbar run` (test_run.c). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cbtest.h"

static clit t;
static cbt_upstream up;
static cbt_daemon d;
static bool ready;

#define ROUTES                                                                                     \
	"\"routes\":[{\"method\":\"GET\",\"path\":\"^/api/items/[^/]+$\"},"                        \
	"{\"method\":\"POST\",\"path\":\"^/api/echo$\"},"                                          \
	"{\"method\":\"POST\",\"path\":\"^/api/blobs$\",\"anyBody\":true},"                        \
	"{\"method\":\"POST\",\"path\":\"^/api/slow$\"},"                                          \
	"{\"method\":\"GET\",\"path\":\"^/api/slow$\"},"                                           \
	"{\"method\":\"POST\",\"path\":\"^/api/drop$\"},"                                          \
	"{\"method\":\"GET\",\"path\":\"^/api/closes$\"}]"

static const char *const json_ct[] = {"-H", "Content-Type: application/json", NULL};

static int group_setup(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_ALL);
	clit_init(&t);
	cbt_upstream_start(&up);
	char *cfg = cbt_write_config(&t, &up);
	cbt_daemon_start(&d, &t, cfg);
	free(cfg);
	ready = true;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	cbt_daemon_stop(&d);
	cbt_upstream_stop(&up);
	clit_fini(&t);
	curl_global_cleanup();
	return 0;
}

static char *lease_with(const char *extra)
{
	char *cb =
	    sb_strfmt("{\"name\":\"up\"," ROUTES "%s%s}", extra ? "," : "", extra ? extra : "");
	char *id = cbt_acquire(&d, cb, NULL);
	free(cb);
	return id;
}

static void destroy(char *lease)
{
	char *target = sb_strfmt("/v1/leases/%s", lease);
	cbt_api(&d, "DELETE", target, NULL, NULL);
	free(target);
	free(lease);
}

static void get_and_post_round_trip_exact_bytes(void **state)
{
	(void)state;
	char *lease = lease_with(NULL);
	cbt_result r;
	size_t before = cbt_upstream_count(&up, "/api/items/42");
	cbt_call(&d, lease, "GET", "/api/items/42?x=1&y=%C3%A9", NULL, 0, NULL, NULL, NULL, &r);
	assert_int_equal(r.http, 200);
	assert_string_equal(sb_buf_cstr(&r.body),
	                    "{\"ok\":true,\"path\":\"/api/items/42?x=1&y=%C3%A9\"}");
	assert_int_equal(cbt_upstream_count(&up, "/api/items/42"), before + 1);
	cbt_result_deinit(&r);

	/* UTF-8 JSON, exact bytes both ways */
	const char *utf8 = "{\"text\":\"h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x90\x8d\",\"n\":[1,2]}";
	cbt_call(&d, lease, "POST", "/api/echo", utf8, strlen(utf8), json_ct, NULL, NULL, &r);
	assert_int_equal(r.http, 200);
	assert_int_equal(r.body.len, strlen(utf8));
	assert_memory_equal(r.body.data, utf8, strlen(utf8));
	cbt_seen *s = cbt_upstream_last(&up, "/api/echo");
	assert_non_null(s);
	assert_string_equal(s->method, "POST");
	assert_int_equal(s->body.len, strlen(utf8));
	assert_memory_equal(s->body.data, utf8, strlen(utf8));
	cbt_seen_free(s);
	cbt_result_deinit(&r);

	/* binary (every byte value, NULs included) on a route that takes any body */
	size_t n = 70000;
	unsigned char *bin = sb_xmalloc(n);
	sbt_fill_random(bin, n, 16);
	for (size_t i = 0; i < 256; i++)
		bin[i] = (unsigned char)i;
	const char *const oct[] = {"-H", "Content-Type: application/octet-stream", NULL};
	cbt_call(&d, lease, "POST", "/api/blobs", bin, n, oct, NULL, NULL, &r);
	assert_int_equal(r.http, 200);
	assert_int_equal(r.body.len, n);
	assert_memory_equal(r.body.data, bin, n);
	s = cbt_upstream_last(&up, "/api/blobs");
	assert_non_null(s);
	assert_int_equal(s->body.len, n);
	assert_memory_equal(s->body.data, bin, n);
	cbt_seen_free(s);
	cbt_result_deinit(&r);
	free(bin);

	/* the same binary body on a JSON route: 415, upstream untouched */
	size_t echo_before = cbt_upstream_count(&up, "/api/echo");
	cbt_call(&d, lease, "POST", "/api/echo", "\x00\x01\x02", 3, oct, NULL, NULL, &r);
	assert_int_equal(r.http, 415);
	assert_int_equal(cbt_upstream_count(&up, "/api/echo"), echo_before);
	cbt_result_deinit(&r);
	destroy(lease);
}

static void denied_route_never_reaches_upstream(void **state)
{
	(void)state;
	char *lease = lease_with(NULL);
	size_t before = cbt_upstream_count(&up, NULL);
	cbt_result r;
	cbt_call(&d, lease, "GET", "/api/secrets", NULL, 0, NULL, NULL, NULL, &r);
	assert_int_equal(r.http, 403);
	assert_non_null(strstr(sb_buf_cstr(&r.body), "Route not allowed: GET /api/secrets"));
	cbt_result_deinit(&r);
	/* an allowed path with another method, and a path escaping an allowed prefix */
	cbt_call(&d, lease, "DELETE", "/api/items/1", NULL, 0, NULL, NULL, NULL, &r);
	assert_int_equal(r.http, 403);
	assert_non_null(strstr(sb_buf_cstr(&r.body), "Route not allowed: DELETE /api/items/1"));
	cbt_result_deinit(&r);
	const char *const raw[] = {"--path-as-is", NULL};
	cbt_call(&d, lease, "GET", "/api/items/../secrets", NULL, 0, raw, NULL, NULL, &r);
	assert_int_equal(r.http, 400);
	cbt_result_deinit(&r);
	assert_int_equal(cbt_upstream_count(&up, NULL), before);
	sb_buf m = SB_BUF_INIT;
	assert_int_equal(cbt_api(&d, "GET", "/metrics", NULL, &m), 200);
	const char *line =
	    strstr(sb_buf_cstr(&m), "sandbar_callback_requests_total{outcome=\"denied\"} ");
	assert_non_null(line);
	assert_true(atoi(line + strlen("sandbar_callback_requests_total{outcome=\"denied\"} ")) >=
	            3);
	sb_buf_deinit(&m);
	destroy(lease);
}

static void token_and_credentials_stay_on_their_side(void **state)
{
	(void)state;
	char *lease = lease_with(NULL);
	cbt_result r;
	cbt_call(&d, lease, "GET", "/api/items/7", NULL, 0, NULL, NULL, NULL, &r);
	assert_int_equal(r.http, 200);
	cbt_result_deinit(&r);
	cbt_seen *s = cbt_upstream_last(&up, "/api/items/7");
	assert_non_null(s);
	assert_non_null(strstr(s->headers, "Authorization: Bearer " CBT_SECRET));
	cbt_seen_free(s);
	char *tok = cbt_sh(&d, lease, "printf %s \"$SANDBAR_CALLBACK_TOKEN\"");
	assert_true(strlen(tok) >= 32); /* >= 24 random bytes, base64url */
	assert_false(cbt_upstream_saw(&up, tok));
	free(tok);
	/* the upstream credential: not in any environment, file or argument in the sandbox */
	/* (the secret is put together by the shell, so that no command line holds it) */
	char *found = cbt_sh(&d, lease,
	                     "s1=upstream-secret-; s2=Zq8Wv4Kt1Lp0; n=0; "
	                     "for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do "
	                     "c=$(tr '\\0' '\\n' 2>/dev/null < $f); "
	                     "case \"$c\" in *\"$s1$s2\"*) n=$((n+1));; esac; done; echo $n; "
	                     "grep -rsl Zq8Wv4Kt1Lp0 /workspace /home /tmp /etc /run 2>/dev/null "
	                     "| head -3; env | grep -c " CBT_SECRET_ENV);
	assert_string_equal(found, "0\n0\n");
	free(found);
	/* the lease's state on the host names the credential, never its value */
	char *hit = sbt_sh_out("grep -rl '%s' '%s' 2>/dev/null | head -3", CBT_SECRET, d.state);
	assert_string_equal(hit, "");
	free(hit);
	destroy(lease);
}

static void wrong_token_401_wrong_host_421(void **state)
{
	(void)state;
	char *lease = lease_with(NULL);
	size_t before = cbt_upstream_count(&up, NULL);
	cbt_result r;
	const char *const bad_tok[] = {"TOK=not-the-token", NULL};
	cbt_call(&d, lease, "GET", "/api/items/1", NULL, 0, NULL, bad_tok, NULL, &r);
	assert_int_equal(r.http, 401);
	assert_string_equal(sb_buf_cstr(&r.body), "{\"error\":\"Invalid bridge token.\"}");
	cbt_result_deinit(&r);
	const char *const empty_tok[] = {"TOK=", NULL};
	cbt_call(&d, lease, "GET", "/api/items/1", NULL, 0, NULL, empty_tok, NULL, &r);
	assert_int_equal(r.http, 401);
	cbt_result_deinit(&r);
	const char *const host[] = {"-H", "Host: attacker.example", NULL};
	cbt_call(&d, lease, "GET", "/api/items/1", NULL, 0, host, NULL, NULL, &r);
	assert_int_equal(r.http, 421);
	cbt_result_deinit(&r);
	const char *const host2[] = {"-H", "Host: localhost", NULL};
	cbt_call(&d, lease, "GET", "/api/items/1", NULL, 0, host2, NULL, NULL, &r);
	assert_int_equal(r.http, 421);
	cbt_result_deinit(&r);
	assert_int_equal(cbt_upstream_count(&up, NULL), before);
	destroy(lease);
}

static void oversized_body_413_upstream_untouched(void **state)
{
	(void)state;
	char *lease = lease_with("\"maxBodyBytes\":1024");
	size_t before = cbt_upstream_count(&up, NULL);
	char big[2048];
	memset(big, ' ', sizeof big);
	big[0] = '[';
	big[sizeof big - 1] = ']';
	cbt_result r;
	cbt_call(&d, lease, "POST", "/api/echo", big, sizeof big, json_ct, NULL, NULL, &r);
	assert_int_equal(r.http, 413);
	cbt_result_deinit(&r);
	assert_int_equal(cbt_upstream_count(&up, NULL), before);
	/* exactly at the limit passes */
	cbt_call(&d, lease, "POST", "/api/echo", big, 1024, json_ct, NULL, NULL, &r);
	assert_int_equal(r.http, 200);
	cbt_result_deinit(&r);
	destroy(lease);
	/* a client cannot raise the operator's ceiling */
	long st = 0;
	char *none = cbt_acquire(&d, "{\"name\":\"up\"," ROUTES ",\"timeoutMs\":99999999}", &st);
	assert_null(none);
	assert_int_equal(st, 400);
	none = cbt_acquire(&d, "{\"name\":\"up\",\"upstream\":\"http://127.0.0.2:1\"," ROUTES "}",
	                   &st);
	assert_null(none);
	assert_int_equal(st, 400);
	none = cbt_acquire(&d, "{\"name\":\"nope\"," ROUTES "}", &st);
	assert_null(none);
	assert_int_equal(st, 400);
}

/* An unsafe request whose outcome is unknown: 409, never to be retried. */
static void expect_indeterminate(cbt_result *r)
{
	json_t *j = clit_json(sb_buf_cstr(&r->body));
	assert_string_equal(json_string_value(json_object_get(j, "outcome")), "indeterminate");
	assert_true(json_is_false(json_object_get(j, "retryable")));
	json_decref(j);
}

static void slow_post_409_indeterminate_sent_once(void **state)
{
	(void)state;
	char *lease = lease_with("\"timeoutMs\":1000");
	int arrived = up.slow_arrived;
	size_t before = cbt_upstream_count(&up, "/api/slow?ms=2500");
	cbt_result r;
	cbt_call(&d, lease, "POST", "/api/slow?ms=2500", "{}", 2, json_ct, NULL, NULL, &r);
	assert_int_equal(r.http, 409);
	expect_indeterminate(&r);
	cbt_result_deinit(&r);
	cbt_upstream_wait_slow(&up, arrived + 1);
	assert_int_equal(cbt_upstream_count(&up, "/api/slow?ms=2500"), before + 1);
	/* a safe request timing out is retryable, not indeterminate */
	cbt_call(&d, lease, "GET", "/api/slow?ms=2500", NULL, 0, NULL, NULL, NULL, &r);
	assert_int_equal(r.http, 504);
	cbt_result_deinit(&r);
	destroy(lease);
}

/* The relay keeps upstream connections alive, and libcurl resends a request whose reused
 * connection dies before any answer: a POST must never travel on a reused connection. */
static void reused_connection_never_duplicates_a_post(void **state)
{
	(void)state;
	char *lease = lease_with(NULL);
	cbt_result r;
	int conns = cbt_upstream_accepted(&up);
	cbt_call(&d, lease, "GET", "/api/items/1", NULL, 0, NULL, NULL, NULL, &r);
	assert_int_equal(r.http, 200);
	cbt_result_deinit(&r);
	cbt_call(&d, lease, "GET", "/api/items/2", NULL, 0, NULL, NULL, NULL, &r);
	assert_int_equal(r.http, 200);
	cbt_result_deinit(&r);
	/* the second GET went on the first one's connection: there is one to reuse */
	assert_int_equal(cbt_upstream_accepted(&up), conns + 1);

	/* the upstream reads the POST and closes without answering: sent once, outcome unknown */
	size_t before = cbt_upstream_count(&up, "/api/drop");
	cbt_call(&d, lease, "POST", "/api/drop", "{\"n\":1}", 7, json_ct, NULL, NULL, &r);
	assert_int_equal(r.http, 409);
	expect_indeterminate(&r);
	cbt_result_deinit(&r);
	assert_int_equal(cbt_upstream_count(&up, "/api/drop"), before + 1);

	/* the upstream closes a kept-alive connection after answering: the next POST is sent
	 * exactly once and answered */
	cbt_call(&d, lease, "GET", "/api/closes", NULL, 0, NULL, NULL, NULL, &r);
	assert_int_equal(r.http, 200);
	cbt_result_deinit(&r);
	before = cbt_upstream_count(&up, "/api/echo");
	cbt_call(&d, lease, "POST", "/api/echo", "{\"n\":2}", 7, json_ct, NULL, NULL, &r);
	assert_int_equal(r.http, 200);
	assert_string_equal(sb_buf_cstr(&r.body), "{\"n\":2}");
	cbt_result_deinit(&r);
	assert_int_equal(cbt_upstream_count(&up, "/api/echo"), before + 1);
	destroy(lease);
}

static void host_name_in_hosts_url_and_no_proxy(void **state)
{
	(void)state;
	char *lease = lease_with("\"hostName\":\"orchestrator.internal\"");
	char *o = cbt_sh(&d, lease,
	                 "getent hosts orchestrator.internal | cut -d' ' -f1; "
	                 "echo \"$SANDBAR_CALLBACK_URL\" | cut -d: -f1,2; echo \"$NO_PROXY\"");
	assert_string_equal(o, "127.0.0.1\nhttp://orchestrator.internal\n"
	                       "localhost,127.0.0.1,::1,orchestrator.internal\n");
	free(o);
	cbt_result r;
	cbt_call(&d, lease, "GET", "/api/items/3", NULL, 0, NULL, NULL, NULL, &r);
	assert_int_equal(r.http, 200); /* Host: orchestrator.internal:<port> */
	cbt_result_deinit(&r);
	destroy(lease);
}

typedef struct bg_call {
	const char *lease, *method, *path, *exec_id;
	cbt_result r;
} bg_call;

static void *bg_main(void *arg)
{
	bg_call *b = arg;
	cbt_call(&d, b->lease, b->method, b->path, strcmp(b->method, "POST") == 0 ? "{}" : NULL, 2,
	         strcmp(b->method, "POST") == 0 ? json_ct : NULL, NULL, b->exec_id, &b->r);
	return NULL;
}

static void queue_full_503(void **state)
{
	(void)state;
	char *lease = lease_with("\"queueDepth\":1");
	int arrived = up.slow_arrived;
	bg_call b = {lease, "GET", "/api/slow?ms=3000", NULL, {0}};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, bg_main, &b), 0);
	cbt_upstream_wait_slow(&up, arrived + 1); /* the one slot is taken now */
	size_t before = cbt_upstream_count(&up, "/api/items/");
	cbt_result r;
	cbt_call(&d, lease, "GET", "/api/items/2", NULL, 0, NULL, NULL, NULL, &r);
	assert_int_equal(r.http, 503);
	json_t *j = clit_json(sb_buf_cstr(&r.body));
	assert_true(json_is_true(json_object_get(j, "retryable")));
	json_decref(j);
	cbt_result_deinit(&r);
	assert_int_equal(cbt_upstream_count(&up, "/api/items/"), before);
	pthread_join(th, NULL);
	assert_int_equal(b.r.http, 200);
	cbt_result_deinit(&b.r);
	/* the slot is free again */
	cbt_call(&d, lease, "GET", "/api/items/2", NULL, 0, NULL, NULL, NULL, &r);
	assert_int_equal(r.http, 200);
	cbt_result_deinit(&r);
	destroy(lease);
}

static void daemon_killed_mid_post_no_duplicate(void **state)
{
	(void)state;
	char *lease = lease_with(NULL);
	int arrived = up.slow_arrived;
	size_t before = cbt_upstream_count(&up, "/api/slow?ms=4000");
	bg_call b = {lease, "POST", "/api/slow?ms=4000", "ex_restart_post", {0}};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, bg_main, &b), 0);
	cbt_upstream_wait_slow(&up, arrived + 1); /* the POST is upstream, its answer pending */
	cbt_daemon_kill(&d);
	pthread_join(th, NULL);
	assert_true(b.r.daemon_failed); /* the exec request died with the daemon ... */
	cbt_result_deinit(&b.r);
	cbt_daemon_restart(&d); /* ... the command inside did not */
	char *target = sb_strfmt("/v1/leases/%s/execs/ex_restart_post", lease);
	json_t *j = NULL;
	for (int i = 0; i < 600; i++) {
		sb_buf out = SB_BUF_INIT;
		long st = cbt_api(&d, "GET", target, NULL, &out);
		assert_int_equal(st, 200);
		j = clit_json(sb_buf_cstr(&out));
		sb_buf_deinit(&out);
		if (json_is_false(json_object_get(j, "running")) ||
		    json_is_integer(json_object_get(j, "exit_code")))
			break;
		json_decref(j);
		j = NULL;
		usleep(100 * 1000); /* polling the exec's state, with a deadline */
	}
	if (!j) {
		char *log = sbt_sh_out(
		    "grep -v access '%s' | tail -20; tail -20 '%s'/leases/%s/run/init.log", d.log,
		    d.state, lease);
		print_message("the exec did not finish; daemon and init logs:\n%s\n", log);
		free(log);
	}
	assert_non_null(j);
	json_decref(j);
	free(target);
	target = sb_strfmt("/v1/leases/%s/execs/ex_restart_post/output?stream=stderr", lease);
	sb_buf err = SB_BUF_INIT;
	cbt_api(&d, "GET", target, NULL, &err);
	free(target);
	target = sb_strfmt("/v1/leases/%s/execs/ex_restart_post/output?stream=stdout", lease);
	sb_buf out = SB_BUF_INIT;
	cbt_api(&d, "GET", target, NULL, &out);
	free(target);
	print_message("stderr: %s\nstdout: %s\n", sb_buf_cstr(&err), sb_buf_cstr(&out));
	assert_non_null(strstr(sb_buf_cstr(&err), "HTTP=409"));
	assert_non_null(strstr(sb_buf_cstr(&out), "indeterminate"));
	sb_buf_deinit(&err);
	sb_buf_deinit(&out);
	/* the upstream's 4 s are over by now, and it saw the POST exactly once */
	assert_int_equal(cbt_upstream_count(&up, "/api/slow?ms=4000"), before + 1);
	/* and the bridge still works after the restart */
	cbt_result r;
	cbt_call(&d, lease, "GET", "/api/items/9", NULL, 0, NULL, NULL, NULL, &r);
	assert_int_equal(r.http, 200);
	cbt_result_deinit(&r);
	destroy(lease);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(get_and_post_round_trip_exact_bytes),
	    cmocka_unit_test(denied_route_never_reaches_upstream),
	    cmocka_unit_test(token_and_credentials_stay_on_their_side),
	    cmocka_unit_test(wrong_token_401_wrong_host_421),
	    cmocka_unit_test(oversized_body_413_upstream_untouched),
	    cmocka_unit_test(slow_post_409_indeterminate_sent_once),
	    cmocka_unit_test(reused_connection_never_duplicates_a_post),
	    cmocka_unit_test(queue_full_503),
	    cmocka_unit_test(host_name_in_hosts_url_and_no_proxy),
	    cmocka_unit_test(daemon_killed_mid_post_no_duplicate),
	};
	if (getenv("CBT_ONLY"))
		cmocka_set_test_filter(getenv("CBT_ONLY")); /* one case, when debugging */
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
