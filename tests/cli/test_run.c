/* cli.run: `sandbar run` in the default embedded sandbox, judged by what a caller sees: the
 * exit code for each way a command can end, usage errors naming the flag, --env, --exclude and
 * --timeout, and the help texts of every command. */
#include <stdlib.h>
#include <string.h>

#include "clitest.h"

/* Runs `sandbar run -q -w ws -- sh -c script` and returns the exit code. */
static int run_sh(clit *t, clit_res *r, const char *script)
{
	return clit_run(t, r, NULL, CLIT_V("run", "-q", "-w", t->ws, "--", "sh", "-c", script));
}

static void exit_code_is_the_commands_own(void **state)
{
	clit *t = *state;
	sbt_write_str(t->ws, "a.txt", "one\n");
	clit_res r;
	assert_int_equal(run_sh(t, &r, "echo ran; cat a.txt; echo two > b.txt"), 0);
	assert_non_null(strstr(r.out, "ran\none\n"));
	clit_res_free(&r);
	char *b = sbt_read(t->ws, "b.txt", NULL);
	assert_string_equal(b, "two\n");
	free(b);
	assert_int_equal(run_sh(t, &r, "echo failing > c.txt; exit 3"), 3);
	clit_res_free(&r);
	/* A failed command's work still comes back. */
	char *c = sbt_read(t->ws, "c.txt", NULL);
	assert_string_equal(c, "failing\n");
	free(c);
}

static void death_by_signal_is_128_plus_n(void **state)
{
	clit *t = *state;
	clit_res r;
	assert_int_equal(run_sh(t, &r, "kill -KILL $$"), 128 + 9);
	clit_res_free(&r);
	assert_int_equal(run_sh(t, &r, "kill -SEGV $$"), 128 + 11);
	clit_res_free(&r);
}

static void command_not_found_is_127(void **state)
{
	clit *t = *state;
	clit_res r;
	assert_int_equal(
	    clit_run(t, &r, NULL, CLIT_V("run", "-q", "-w", t->ws, "--", "no-such-command-x")),
	    127);
	assert_non_null(strstr(r.err, "no-such-command-x"));
	clit_res_free(&r);
	/* Found but not executable: 126. */
	sbt_write(t->ws, "noexec.sh", "echo hi\n", 8, 0644);
	assert_int_equal(
	    clit_run(t, &r, NULL, CLIT_V("run", "-q", "-w", t->ws, "--", "./noexec.sh")), 126);
	clit_res_free(&r);
	/* Through a shell too: the shell's own 127 passes through. */
	assert_int_equal(run_sh(t, &r, "no-such-command-y"), 127);
	clit_res_free(&r);
}

static void timeout_is_124_even_when_term_is_ignored(void **state)
{
	clit *t = *state;
	clit_res r;
	assert_int_equal(
	    clit_run(t, &r, NULL,
	             CLIT_V("run", "-q", "-w", t->ws, "--timeout", "200ms", "--", "sh", "-c",
	                    "trap '' TERM; echo started > s.txt; "
	                    "while :; do sleep 0.05; done")),
	    124);
	clit_res_free(&r);
	char *s = sbt_read(t->ws, "s.txt", NULL);
	assert_non_null(s); /* what it did before the timeout comes back */
	free(s);
}

static void missing_workspace_is_125_and_says_so(void **state)
{
	clit *t = *state;
	char *missing = sbt_path(t->root, "no-such-dir");
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("run", "-w", missing, "--", "true")), 125);
	assert_non_null(strstr(r.err, missing));
	assert_non_null(strstr(r.err, "--workspace"));
	clit_res_free(&r);
	/* Nothing was acquired. */
	char *leases = sbt_path(t->state, "leases");
	char *n = sbt_sh_out("ls '%s' 2>/dev/null | wc -l", leases);
	assert_int_equal(atoi(n), 0);
	free(n);
	free(leases);
	free(missing);
}

static void bad_flags_are_usage_errors_naming_the_flag(void **state)
{
	clit *t = *state;
	static const struct {
		const char *args[8];
		const char *named;
	} cases[] = {
	    {{"run", "--bogus", "--", "true"}, "--bogus"},
	    {{"run", "--memory", "lots", "--", "true"}, "--memory"},
	    {{"run", "--timeout", "soon", "--", "true"}, "--timeout"},
	    {{"run", "--conflict", "merge", "--", "true"}, "--conflict"},
	    {{"run", "--env", "NOEQUALS", "--", "true"}, "--env"},
	    {{"run", "--via", "teleport", "--", "true"}, "--via"},
	    {{"run", "--workspace"}, "--workspace"},
	    {{"run", "--exclude", "../outside", "--", "true"}, "--exclude"},
	    {{"run", "--remote-dir", "relative/dir", "--", "true"}, "--remote-dir"},
	    {{"run", "--timeout", "0", "--", "true"}, "--timeout"},
	    {{"exec", "--timeout", "soon", "--lease", "x", "--", "true"}, "--timeout"},
	    {{"pull", "--lease", "x", "--conflict", "merge"}, "--conflict"},
	    {{"exec", "--lease", "x", "--frob", "--", "true"}, "--frob"},
	    {{"lease", "--pids", "many", "list"}, "--pids"},
	    {{"logs", "--offset", "-3", "--lease", "a", "--exec", "b"}, "--offset"},
	    {{"push", "--nope", "--lease", "a"}, "--nope"},
	    {{"serve", "--port", "1"}, "--port"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		const char *args[9] = {0};
		memcpy(args, cases[i].args, sizeof cases[i].args);
		clit_res r;
		int code = clit_run(t, &r, CLIT_V("SANDBAR_UNUSED=1"), args);
		if (code != 125 || !strstr(r.err, cases[i].named) || !strstr(r.err, "--help")) {
			print_error("case %zu (%s): exit %d, stderr: %s\n", i, cases[i].named, code,
			            r.err);
			fail();
		}
		clit_res_free(&r);
	}
}

static void no_command_and_unknown_subcommand_are_125(void **state)
{
	clit *t = *state;
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("run", "-w", t->ws)), 125);
	assert_non_null(strstr(r.err, "no command"));
	clit_res_free(&r);
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("frobnicate")), 125);
	assert_non_null(strstr(r.err, "frobnicate"));
	clit_res_free(&r);
}

static void env_reaches_the_command(void **state)
{
	clit *t = *state;
	clit_res r;
	assert_int_equal(
	    clit_run(t, &r, NULL,
	             CLIT_V("run", "-q", "-w", t->ws, "--env", "SB_GREETING=hello there", "-e",
	                    "SB_OTHER=x=y", "--", "sh", "-c",
	                    "printf '%s|%s\\n' \"$SB_GREETING\" \"$SB_OTHER\"")),
	    0);
	assert_non_null(strstr(r.out, "hello there|x=y\n"));
	clit_res_free(&r);
}

static void exclude_keeps_a_path_out_both_ways(void **state)
{
	clit *t = *state;
	sbt_write_str(t->ws, "secret/key", "local secret\n");
	sbt_write_str(t->ws, "keep.txt", "k\n");
	clit_res r;
	assert_int_equal(
	    clit_run(t, &r, NULL,
	             CLIT_V("run", "-q", "-w", t->ws, "--exclude", "secret", "--", "sh", "-c",
	                    "if [ -e secret/key ]; then echo staged; else echo absent; fi; "
	                    "cat keep.txt; mkdir -p secret; echo remote > secret/key; "
	                    "echo remote > secret/new; echo changed > keep.txt")),
	    0);
	assert_non_null(strstr(r.out, "absent\nk\n"));
	clit_res_free(&r);
	char *key = sbt_read(t->ws, "secret/key", NULL);
	assert_string_equal(key, "local secret\n");
	free(key);
	char *fresh = sbt_read(t->ws, "secret/new", NULL);
	assert_null(fresh);
	char *keep = sbt_read(t->ws, "keep.txt", NULL);
	assert_string_equal(keep, "changed\n");
	free(keep);
}

static void stdout_and_stderr_stream_to_their_own_fds(void **state)
{
	clit *t = *state;
	clit_res r;
	assert_int_equal(run_sh(t, &r, "echo to-out; echo to-err >&2"), 0);
	assert_non_null(strstr(r.out, "to-out"));
	assert_null(strstr(r.out, "to-err"));
	assert_non_null(strstr(r.err, "to-err"));
	clit_res_free(&r);
}

static void a_closed_stdout_does_not_stop_the_run(void **state)
{
	clit *t = *state;
	/* `sandbar run ... | head -c 1`: our stdout closes early; the changes must still come
	 * back and the lease be released, with the command's own exit code. */
	assert_int_equal(sbt_sh("cd '%s' && { SANDBAR_STATE_DIR='%s' SANDBAR_CONFIG=/nonexistent "
	                        "'%s' run -q -w '%s' -- sh -c 'head -c 4000000 /dev/zero; "
	                        "echo done > piped.txt; exit 6'; echo $? > rc; } | head -c 1 "
	                        ">/dev/null",
	                        t->root, t->state, t->bin, t->ws),
	                 0);
	char *rc = sbt_read(t->root, "rc", NULL);
	assert_string_equal(rc, "6\n");
	free(rc);
	char *piped = sbt_read(t->ws, "piped.txt", NULL);
	assert_string_equal(piped, "done\n");
	free(piped);
	char *n = sbt_sh_out("ls '%s/leases' | wc -l", t->state);
	assert_int_equal(atoi(n), 0);
	free(n);
}

static void summary_names_changes_unless_quiet(void **state)
{
	clit *t = *state;
	sbt_write_str(t->ws, "old.txt", "old\n");
	sbt_write_str(t->ws, "edit.txt", "v1\n");
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL,
	                          CLIT_V("run", "-w", t->ws, "--", "sh", "-c",
	                                 "rm old.txt; echo v2 > edit.txt; echo n > new.txt")),
	                 0);
	assert_non_null(strstr(r.err, "1 added, 1 changed, 1 deleted, 0 in conflict"));
	assert_non_null(strstr(r.err, "+ new.txt"));
	assert_non_null(strstr(r.err, "~ edit.txt"));
	assert_non_null(strstr(r.err, "- old.txt"));
	assert_non_null(strstr(r.err, "acquire "));
	assert_non_null(strstr(r.err, "restore "));
	clit_res_free(&r);
	assert_int_equal(run_sh(t, &r, "echo n2 > new2.txt"), 0);
	assert_null(strstr(r.err, "added"));
	clit_res_free(&r);
}

static void help_and_version(void **state)
{
	clit *t = *state;
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("--help")), 0);
	for (const char *const *w = CLIT_V("run", "serve", "exec", "lease", "push", "pull", "logs");
	     *w; w++)
		assert_non_null(strstr(r.out, *w));
	clit_res_free(&r);
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("--version")), 0);
	assert_true(sb_str_has_prefix(r.out, "sandbar " SB_VERSION));
	clit_res_free(&r);

	static const struct {
		const char *cmd;
		const char *flags[8];
	} helps[] = {
	    {"run",
	     {"--workspace", "--via", "--bridge", "--exclude", "--timeout", "--conflict", "--json",
	      "--keep"}},
	    {"serve",
	     {"--listen", "--socket", "--state-dir", "--token-file", "--hmac-keys", "--tls-cert"}},
	    {"exec", {"--lease", "--cwd", "--env", "--timeout", "--state-dir"}},
	    {"lease", {"list", "acquire", "renew", "destroy", "--ttl", "--json"}},
	    {"push", {"--lease", "--workspace", "--exclude"}},
	    {"pull", {"--lease", "--conflict", "--json"}},
	    {"logs", {"--lease", "--exec", "--follow", "--offset"}},
	};
	for (size_t i = 0; i < sizeof helps / sizeof *helps; i++) {
		assert_int_equal(clit_run(t, &r, NULL, CLIT_V(helps[i].cmd, "--help")), 0);
		for (size_t k = 0; k < 8 && helps[i].flags[k]; k++) {
			if (!strstr(r.out, helps[i].flags[k])) {
				print_error("`sandbar %s --help` does not mention %s:\n%s\n",
				            helps[i].cmd, helps[i].flags[k], r.out);
				fail();
			}
		}
		clit_res_free(&r);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) CLIT_TEST(f)
	    T(exit_code_is_the_commands_own),
	    T(death_by_signal_is_128_plus_n),
	    T(command_not_found_is_127),
	    T(timeout_is_124_even_when_term_is_ignored),
	    T(missing_workspace_is_125_and_says_so),
	    T(bad_flags_are_usage_errors_naming_the_flag),
	    T(no_command_and_unknown_subcommand_are_125),
	    T(env_reaches_the_command),
	    T(exclude_keeps_a_path_out_both_ways),
	    T(stdout_and_stderr_stream_to_their_own_fds),
	    T(a_closed_stdout_does_not_stop_the_run),
	    T(summary_names_changes_unless_quiet),
	    T(help_and_version),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
