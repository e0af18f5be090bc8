/* The callback bridge on Paperclip-compat leases: their clients cannot ask for one, so the
 * operator's `compat_callback` (here the NAME form: that [callback NAME] with the paperclip
 * preset) gives every compat lease the bridge, in the compat leases' network mode (full). A
 * compat exec reaches the upstream through $PAPERCLIP_API_URL with $PAPERCLIP_BRIDGE_TOKEN, the
 * upstream sees the operator's credential and never the token; a compat_callback naming no
 * section stops the daemon at start. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbtest.h"

#define V2 "/api/paperclip-sandbox/v2"

static void compat_lease_gets_the_operator_callback(void **state)
{
	(void)state;
	clit t;
	clit_init(&t);
	cbt_upstream up;
	cbt_upstream_start(&up);
	char *cfg = cbt_write_config(&t, &up);
	char *text = sbt_read(t.root, "config", NULL);
	char *with = sb_strfmt("%s[serve]\ncompat_callback = up\n", text);
	sbt_write_str(t.root, "config", with);
	cbt_daemon d;
	cbt_daemon_start(&d, &t, cfg);
	sb_buf out = SB_BUF_INIT;
	long st = cbt_api(&d, "POST", V2 "/leases/acquire",
	                  "{\"acquisitionId\":\"cb-compat-1\",\"environmentId\":\"e\","
	                  "\"runId\":\"r\"}",
	                  &out);
	if (st != 200)
		print_error("acquire: %ld %s\n", st, sb_buf_cstr(&out));
	assert_int_equal(st, 200);
	json_t *a = json_loads(sb_buf_cstr(&out), 0, NULL);
	const char *id = json_string_value(json_object_get(a, "providerLeaseId"));
	assert_non_null(id);
	json_t *ex = json_pack("{s:s, s:s, s:s, s:[ss]}", "providerLeaseId", id, "acquisitionId",
	                       "cb-compat-1", "command", "sh", "args", "-c",
	                       "curl -sS -H \"Authorization: Bearer $PAPERCLIP_BRIDGE_TOKEN\" "
	                       "\"$PAPERCLIP_API_URL/api/agents/me\"; echo; "
	                       "env | grep -c upstream-secret-Zq8 || true");
	char *exs = json_dumps(ex, JSON_COMPACT);
	sb_buf_clear(&out);
	st = cbt_api(&d, "POST", V2 "/exec", exs, &out);
	print_message("exec: %ld %s\n", st, sb_buf_cstr(&out));
	assert_int_equal(st, 200);
	json_t *res = json_loads(sb_buf_cstr(&out), 0, NULL);
	assert_int_equal(json_integer_value(json_object_get(res, "exitCode")), 0);
	const char *so = json_string_value(json_object_get(res, "stdout"));
	assert_non_null(so);
	assert_non_null(strstr(so, "{\"ok\":true,\"path\":\"/api/agents/me\"}"));
	assert_non_null(strstr(so, "\n0\n")); /* the credential is nowhere in the environment */
	/* upstream: one request, with the operator's credential, without the bridge token */
	assert_int_equal(cbt_upstream_count(&up, "/api/agents/me"), 1);
	cbt_seen *s = cbt_upstream_last(&up, "/api/agents/me");
	assert_non_null(strstr(s->headers, "Authorization: Bearer " CBT_SECRET));
	cbt_seen_free(s);
	json_decref(res);
	free(exs);
	json_decref(ex);
	json_decref(a);
	cbt_daemon_stop(&d);

	/* a compat_callback naming no [callback NAME] section: the daemon refuses to start */
	char *bad = sb_strfmt("%s[serve]\ncompat_callback = nope\n", text);
	sbt_write_str(t.root, "config", bad);
	char *cfg_env = sb_strfmt("SANDBAR_CONFIG=%s", cfg);
	char *state_arg = sbt_path(t.root, "bad-state");
	const char *const env[] = {cfg_env, NULL};
	clit_res r;
	int code = clit_run(&t, &r, env,
	                    CLIT_V("serve", "--listen", "127.0.0.1:0", "--state-dir", state_arg));
	assert_int_not_equal(code, 0);
	print_message("refused: %s\n", r.err);
	assert_non_null(strstr(r.err, "compat_callback = nope"));
	clit_res_free(&r);
	free(state_arg);
	free(cfg_env);
	free(bad);
	sb_buf_deinit(&out);
	free(with);
	free(text);
	free(cfg);
	cbt_upstream_stop(&up);
	clit_fini(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(compat_lease_gets_the_operator_callback),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
