/* The pure pieces of the bridge routes: the bridge's input coercion and defaults, lease id
 * normalisation, and the shell scripts the routes run, executed here by a real /bin/sh so that
 * quoting, env restoration, stdin staging and the atomic mirror write are proven, not read. */
#include "testutil.h"

#include "../../src/server/bridge.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static json_t *J(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);
	assert_non_null(j);
	return j;
}

static void input_coercion_follows_the_bridge_rules(void **state)
{
	(void)state;
	json_t *b = J("{\"keepAlive\":\"true\",\"normalizeId\":false,\"sessionId\":\"  s1  \","
	              "\"sleepAfter\":\"\",\"timeoutMs\":\"450000.9\",\"sessionStrategy\":\"x\","
	              "\"requestedCwd\":\"/w/p///\"}");
	bridge_opts o;
	SB_ASSERT_OK(bridge_opts_parse(b, &o));
	assert_false(o.keep_alive); /* only JSON true is true */
	assert_false(o.normalize_id);
	assert_string_equal(o.session_id, "s1");
	assert_string_equal(o.sleep_after, "10m"); /* empty -> default */
	assert_int_equal(o.timeout_ms, 450000);    /* Number() then truncation */
	assert_true(o.named);                      /* anything but "default" */
	assert_string_equal(o.remote_cwd, "/w/p");
	bridge_opts_deinit(&o);
	json_decref(b);

	b = J("{\"sessionStrategy\":\"default\",\"timeoutMs\":\"abc\",\"keepAlive\":true}");
	SB_ASSERT_OK(bridge_opts_parse(b, &o));
	assert_false(o.named);
	assert_true(o.keep_alive);
	assert_int_equal(o.timeout_ms, 300000);
	assert_string_equal(o.remote_cwd, "/workspace/paperclip");
	assert_string_equal(o.session_id, "paperclip");
	bridge_opts_deinit(&o);
	json_decref(b);

	b = J("{\"requestedCwd\":\"relative/dir\"}");
	sb_err *err = bridge_opts_parse(b, &o);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_INVAL);
	sb_err_free(err);
	json_decref(b);
}

static void lease_ids_are_normalised_like_the_bridge(void **state)
{
	(void)state;
	char *s = bridge_normalize_id("--PC_acq::Run 42!!--");
	assert_string_equal(s, "pc-acq-run-42");
	free(s);
	char *id = NULL;
	SB_ASSERT_OK(bridge_lease_id("Acquisition_1", NULL, true, &id));
	assert_string_equal(id, "pc-acq-acquisition-1");
	free(id);
	SB_ASSERT_OK(bridge_lease_id("ignored", "0123456789ABCDEF0123456789abcdef", true, &id));
	assert_string_equal(id, "pc-scope-0123456789abcdef0123456789abcdef");
	free(id);
	/* Too long for a sandbox id. */
	char longacq[80];
	memset(longacq, 'a', sizeof(longacq) - 1);
	longacq[sizeof(longacq) - 1] = '\0';
	sb_err *err = bridge_lease_id(longacq, NULL, true, &id);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_INVAL);
	sb_err_free(err);
	assert_true(bridge_is_hex32("0123456789abcdef0123456789ABCDEF"));
	assert_false(bridge_is_hex32("0123456789abcdef0123456789abcde"));
	assert_false(bridge_is_hex32("0123456789abcdef0123456789abcdeg"));
	assert_true(bridge_env_key_ok("_A1"));
	assert_false(bridge_env_key_ok("bad-key"));
	assert_false(bridge_env_key_ok("1A"));
	assert_false(bridge_env_key_ok(""));
}

/* Run script with sh -c; env additions and stdin optional; returns stdout. */
static char *run_sh(const char *script, char *const *env, const char *in, int *status)
{
	char *dir = sbt_mkdtemp("compat-sh");
	sbt_write_str(dir, "script", script);
	sbt_write_str(dir, "stdin", in ? in : "");
	sb_buf cmd = SB_BUF_INIT;
	sb_buf_appends(&cmd, "env");
	for (char *const *e = env; e && *e; e++) {
		sb_buf_appendc(&cmd, ' ');
		sb_shell_quote(&cmd, *e);
	}
	char *in_path = in ? sbt_path(dir, "stdin") : sb_xstrdup("/dev/null");
	char *script_path = sbt_path(dir, "script");
	sb_buf_appends(&cmd, " sh -c \"$(cat ");
	sb_shell_quote(&cmd, script_path);
	sb_buf_appends(&cmd, ")\" < ");
	sb_shell_quote(&cmd, in_path);
	free(in_path);
	free(script_path);
	char *out = sbt_sh_out("cd / && %s; echo \"rc=$?\"", sb_buf_cstr(&cmd));
	sb_buf_deinit(&cmd);
	sbt_rmtree(dir);
	*status = 0;
	return out;
}

static void exec_script_runs_the_command_with_args_env_cwd_and_stdin(void **state)
{
	(void)state;
	char *dir = sbt_mkdtemp("compat-cwd");
	char *args[] = {"-c",
	                "printf '[%s|%s|%s]' \"$1\" \"$(pwd)\" \"$GREETING\"; cat; "
	                "ls /tmp/.paperclip-bridge-stdin-TAG1 2>/dev/null || echo ' gone'",
	                "x", "it's \"quoted\" $HOME * \\ ünï", NULL};
	char *keys[] = {"GREETING", NULL};
	bridge_cmd c = {
	    .command = "sh", .args = args, .cwd = dir, .env_keys = keys, .stdin_tag = "TAG1"};
	char *script = bridge_exec_script(&c);
	assert_null(strstr(script, "hello world")); /* values never in the script */
	char *env[] = {"GREETING=hello world", NULL};
	int st;
	char *out = run_sh(script, env, "line1\nline2", &st);
	char *want = sb_strfmt("[it's \"quoted\" $HOME * \\ ünï|%s|hello world]line1\nline2 "
	                       "gone\nrc=0\n",
	                       dir);
	assert_string_equal(out, want);
	free(want);
	free(out);
	free(script);

	/* No stdin: no staging and no redirect. */
	char *args2[] = {"-c", "exit 7", NULL};
	bridge_cmd c2 = {.command = "sh", .args = args2};
	script = bridge_exec_script(&c2);
	assert_null(strstr(script, "paperclip-bridge-stdin"));
	out = run_sh(script, NULL, NULL, &st);
	assert_string_equal(out, "rc=7\n");
	free(out);
	free(script);
	sbt_rmtree(dir);
}

static void mirror_script_writes_atomically_and_quotes_a_hostile_cwd(void **state)
{
	(void)state;
	char *base = sbt_mkdtemp("compat-mirror");
	char *cwd = sb_strfmt("%s/it's;touch %s/pwned", base, base);
	const char *json = "{\n  \"a\": \"it's\"\n}";
	char *script = bridge_sentinel_write_script(cwd, json, "p1");
	int st;
	char *out = run_sh(script, NULL, NULL, &st);
	assert_string_equal(out, "rc=0\n");
	char *mirror = sbt_read(cwd, ".paperclip-lease.json", NULL);
	assert_non_null(mirror);
	assert_string_equal(mirror, "{\n  \"a\": \"it's\"\n}\n");
	assert_null(sbt_read(base, "pwned", NULL));
	char *pending = sbt_read(cwd, ".paperclip-lease.json.pending.p1", NULL);
	assert_null(pending);
	free(mirror);
	free(out);
	free(script);
	free(cwd);
	sbt_rmtree(base);
	char *p = bridge_sentinel_path("/w/x//");
	assert_string_equal(p, "/w/x/.paperclip-lease.json");
	free(p);
}

static void utf8_repair_keeps_valid_text_and_replaces_the_rest(void **state)
{
	(void)state;
	sb_buf out = SB_BUF_INIT;
	sb_utf8_repair("a\xc3\xa9\xff"
	               "b\xed\xa0\x80"
	               "c\xf0\x9f\x98\x80",
	               14, &out);
	assert_string_equal(sb_buf_cstr(&out), "a\xc3\xa9\xef\xbf\xbd"
	                                       "b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
	                                       "c\xf0\x9f\x98\x80");
	sb_buf_deinit(&out);

	/* "€" split over three feeds: nothing is emitted until it is whole. */
	sb_buf carry = SB_BUF_INIT;
	sb_buf_init(&out);
	sb_utf8_feed(&carry, "x\xe2", 2, false, &out);
	assert_string_equal(sb_buf_cstr(&out), "x");
	sb_utf8_feed(&carry, "\x82", 1, false, &out);
	assert_string_equal(sb_buf_cstr(&out), "x");
	sb_utf8_feed(&carry, "\xac", 1, false, &out);
	assert_string_equal(sb_buf_cstr(&out), "x\xe2\x82\xac");
	/* An incomplete sequence at the very end becomes U+FFFD. */
	sb_utf8_feed(&carry, "\xf0\x9f", 2, false, &out);
	sb_utf8_feed(&carry, "", 0, true, &out);
	assert_string_equal(sb_buf_cstr(&out), "x\xe2\x82\xac\xef\xbf\xbd");
	assert_int_equal(carry.len, 0);
	sb_buf_deinit(&carry);
	sb_buf_deinit(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(input_coercion_follows_the_bridge_rules),
	    cmocka_unit_test(lease_ids_are_normalised_like_the_bridge),
	    cmocka_unit_test(exec_script_runs_the_command_with_args_env_cwd_and_stdin),
	    cmocka_unit_test(mirror_script_writes_atomically_and_quotes_a_hostile_cwd),
	    cmocka_unit_test(utf8_repair_keeps_valid_text_and_replaces_the_rest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
