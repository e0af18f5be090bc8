/* The callback bridge through `sandbar run --callback FILE` without a daemon: the relay runs in
 * the sandbar process for the length of the run, with the same JSON as the API field and the
 * same [callback NAME] section of the config file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbtest.h"

static void run_callback_round_trip_without_daemon(void **state)
{
	(void)state;
	clit t;
	clit_init(&t);
	cbt_upstream up;
	cbt_upstream_start(&up);
	char *cfg = cbt_write_config(&t, &up);
	sbt_write_str(
	    t.root, "cb.json",
	    "{\"name\":\"up\",\"routes\":[{\"method\":\"GET\",\"path\":\"^/api/items/[^/]+$\"},"
	    "{\"method\":\"POST\",\"path\":\"^/api/echo$\"}]}");
	char *cbfile = sbt_path(t.root, "cb.json");
	/* one script: a GET, a POST with UTF-8 bytes, a denied route, a wrong token, and what
	 * the sandbox can see of the credential */
	/* the client script has single quotes: pass it through a file in the workspace */
	sbt_write_str(t.ws, "client.sh", cbt_client_script);
	char *script =
	    sb_strfmt("set -e; c() { sh /workspace/client.sh \"$@\"; echo; }; "
	              "c GET /api/items/5; "
	              "printf '{\"t\":\"\\303\\251\\342\\234\\223\"}' | HAS_BODY=1 c POST "
	              "/api/echo -H 'Content-Type: application/json'; "
	              "c GET /api/admin; "
	              "TOK=wrong c GET /api/items/5; "
	              "set +e; s1=upstream-secret-; s2=Zq8Wv4Kt1Lp0; n=0; "
	              "for f in /proc/[0-9]*/environ; do e=$(tr '\\0' '\\n' 2>/dev/null < $f "
	              "); case \"$e\" in *\"$s1$s2\"*) n=$((n+1));; esac; done; "
	              "echo \"leaks=$n\"");
	char *cfg_env = sb_strfmt("SANDBAR_CONFIG=%s", cfg);
	const char *const env[] = {cfg_env, CBT_SECRET_ENV "=" CBT_SECRET, NULL};
	clit_res r;
	int code = clit_run(
	    &t, &r, env,
	    CLIT_V("run", "-q", "--callback", cbfile, "-w", t.ws, "--", "sh", "-c", script));
	print_message("stdout:\n%s\nstderr:\n%s\n", r.out, r.err);
	assert_int_equal(code, 0);
	const char *o = r.out;
	assert_non_null(strstr(o, "{\"ok\":true,\"path\":\"/api/items/5\"}"));
	assert_non_null(strstr(o, "{\"t\":\"\xc3\xa9\xe2\x9c\x93\"}"));
	assert_non_null(strstr(o, "Route not allowed: GET /api/admin"));
	assert_non_null(strstr(o, "Invalid bridge token."));
	assert_non_null(strstr(o, "leaks=0"));
	assert_non_null(strstr(r.err, "HTTP=200"));
	assert_non_null(strstr(r.err, "HTTP=403"));
	assert_non_null(strstr(r.err, "HTTP=401"));
	/* upstream: the GET and the POST only, with the credential and the exact bytes */
	assert_int_equal(cbt_upstream_count(&up, NULL), 2);
	cbt_seen *s = cbt_upstream_last(&up, "/api/echo");
	assert_non_null(s);
	assert_string_equal(sb_buf_cstr(&s->body), "{\"t\":\"\xc3\xa9\xe2\x9c\x93\"}");
	assert_non_null(strstr(s->headers, "Authorization: Bearer " CBT_SECRET));
	cbt_seen_free(s);
	assert_false(cbt_upstream_saw(&up, "wrong"));
	clit_res_free(&r);

	/* a callback naming no configured section is refused before anything runs */
	sbt_write_str(t.root, "bad.json", "{\"name\":\"missing\",\"preset\":\"paperclip\"}");
	char *bad = sbt_path(t.root, "bad.json");
	code =
	    clit_run(&t, &r, env, CLIT_V("run", "-q", "--callback", bad, "-w", t.ws, "--", "true"));
	assert_int_equal(code, 125);
	assert_non_null(strstr(r.err, "[callback missing]"));
	clit_res_free(&r);
	free(bad);
	free(cfg_env);
	free(script);
	free(cbfile);
	free(cfg);
	cbt_upstream_stop(&up);
	clit_fini(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(run_callback_round_trip_without_daemon),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
