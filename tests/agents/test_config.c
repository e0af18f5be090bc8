/* agents.config: every `sandbar run` option has a config key (issue 14). Settings from the
 * config file apply to a real run, the command line wins over them, repeatable ones add up,
 * `--print-config` names where each value came from (never printing a -e value), a bad setting
 * is refused naming its file and line, and the user's file wins over the system's. */
#include <stdlib.h>
#include <string.h>

#include "clitest.h"

static char *write_config(clit *t, const char *name, const char *text)
{
	sbt_write_str(t->root, name, text);
	return sbt_path(t->root, name);
}

static void settings_apply_and_flags_win(void **state)
{
	clit *t = *state;
	char *cfg = write_config(t, "config",
	                         "[run]\n"
	                         "timeout = 1s\n"
	                         "env = FROM_CONFIG=yes\n"
	                         "exclude = skipme.txt\n"
	                         "quiet = true\n");
	char *cfg_env = sb_strfmt("SANDBAR_CONFIG=%s", cfg);
	sbt_write_str(t->ws, "skipme.txt", "not staged\n");
	clit_res r;
	/* the config's timeout stops a long command; its env and exclude reach the sandbox */
	clit_run(t, &r, CLIT_V(cfg_env),
	         CLIT_V("run", "-w", t->ws, "--", "sh", "-c",
	                "echo env=$FROM_CONFIG; test -e skipme.txt || echo excluded; sleep 20"));
	if (r.code != 124)
		print_error("exit %d\nstdout: %s\nstderr: %s\n", r.code, r.out, r.err);
	assert_int_equal(r.code, 124);
	assert_non_null(strstr(r.out, "env=yes\n"));
	assert_non_null(strstr(r.out, "excluded\n"));
	/* quiet = true: no summary line */
	assert_null(strstr(r.err, "sandbar: 0 added"));
	clit_res_free(&r);
	/* the command line's --timeout wins; its -e adds to the config's */
	clit_run(t, &r, CLIT_V(cfg_env),
	         CLIT_V("run", "-w", t->ws, "--timeout", "60s", "-e", "FROM_FLAG=also", "--", "sh",
	                "-c", "sleep 2; echo env=$FROM_CONFIG,$FROM_FLAG"));
	if (r.code != 0)
		print_error("exit %d\nstderr: %s\n", r.code, r.err);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "env=yes,also\n"));
	clit_res_free(&r);
	free(cfg_env);
	free(cfg);
}

static void print_config_names_every_origin(void **state)
{
	clit *t = *state;
	char *cfg = write_config(t, "config",
	                         "memory = 256M\n"
	                         "[run]\n"
	                         "timeout = 10m\n"
	                         "allow_net = api.example.com\n"
	                         "env = API_KEY=s3cr3t-value\n"
	                         "conflict = fail\n");
	char *cfg_env = sb_strfmt("SANDBAR_CONFIG=%s", cfg);
	clit_res r;
	clit_run(t, &r, CLIT_V(cfg_env, "SANDBAR_MAX_RESTORE_SIZE=9G"),
	         CLIT_V("run", "--print-config", "--allow-net", "x.example.org", "--conflict",
	                "take-remote"));
	if (r.code != 0)
		print_error("exit %d\nstderr: %s\n", r.code, r.err);
	assert_int_equal(r.code, 0);
	print_message("%s", r.out);
	char *want = sb_strfmt("timeout           = 10m  # %s:3\n", cfg);
	assert_non_null(strstr(r.out, want));
	free(want);
	want = sb_strfmt(
	    "allow_net         = api.example.com, x.example.org  # %s:4 + command line\n", cfg);
	assert_non_null(strstr(r.out, want));
	free(want);
	assert_non_null(strstr(r.out, "conflict          = take-remote  # command line\n"));
	want = sb_strfmt("memory            = 256M  # %s:1\n", cfg);
	assert_non_null(strstr(r.out, want));
	free(want);
	assert_non_null(strstr(r.out, "max_restore_size  = 9G  # $SANDBAR_MAX_RESTORE_SIZE\n"));
	assert_non_null(strstr(r.out, "keep              = false  # default\n"));
	/* a -e value is shown by name only */
	assert_non_null(strstr(r.out, "env               = API_KEY  #"));
	assert_null(strstr(r.out, "s3cr3t"));
	assert_null(strstr(r.err, "s3cr3t"));
	clit_res_free(&r);
	/* -t implies -i, and says so */
	clit_run(t, &r, CLIT_V(cfg_env), CLIT_V("run", "--print-config", "-t"));
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "tty               = true  # command line\n"));
	assert_non_null(strstr(r.out, "interactive       = true  # command line\n"));
	clit_res_free(&r);
	free(cfg_env);
	free(cfg);
}

static void bad_settings_name_their_line(void **state)
{
	clit *t = *state;
	static const struct {
		const char *text, *before, *after; /* want: before, the file, after */
	} cases[] = {
	    {"[run]\ntimeout = never\n", "that setting comes from ", ":2"},
	    {"[run]\nkeep = maybe\n", "", ":2: keep = maybe: want true or false"},
	    {"[run]\ntimout = 1s\n", "", ":2: unknown key \"timout\""},
	    {"conflict = sometimes\n", "that setting comes from ", ":1"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char *cfg = write_config(t, "config", cases[i].text);
		char *cfg_env = sb_strfmt("SANDBAR_CONFIG=%s", cfg);
		char *want = sb_strfmt("%s%s%s", cases[i].before, cfg, cases[i].after);
		clit_res r;
		clit_run(t, &r, CLIT_V(cfg_env), CLIT_V("run", "-w", t->ws, "--", "true"));
		if (r.code == 0 || !strstr(r.err, want))
			print_error("case %zu: exit %d, stderr: %s (want \"%s\")\n", i, r.code,
			            r.err, want);
		assert_int_not_equal(r.code, 0);
		assert_non_null(strstr(r.err, want));
		clit_res_free(&r);
		free(want);
		free(cfg_env);
		free(cfg);
	}
}

static void user_file_wins_over_the_system_file(void **state)
{
	clit *t = *state;
	char *home = sbt_path(t->root, "home");
	sbt_write_str(home, ".config/sandbar/config", "[run]\ntimeout = 7s\n");
	char *sys = write_config(t, "system-config", "[run]\ntimeout = 9s\nconflict = fail\n");
	char *home_env = sb_strfmt("HOME=%s", home);
	char *sys_env = sb_strfmt("SANDBAR_SYSTEM_CONFIG=%s", sys);
	clit_res r;
	clit_run(t, &r, CLIT_V("SANDBAR_CONFIG", "XDG_CONFIG_HOME", home_env, sys_env),
	         CLIT_V("run", "--print-config"));
	assert_int_equal(r.code, 0);
	char *want = sb_strfmt("timeout           = 7s  # %s/.config/sandbar/config:2\n", home);
	assert_non_null(strstr(r.out, want));
	free(want);
	want = sb_strfmt("conflict          = fail  # %s:3\n", sys);
	assert_non_null(strstr(r.out, want));
	free(want);
	clit_res_free(&r);
	free(home_env);
	free(sys_env);
	free(sys);
	free(home);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    CLIT_TEST(settings_apply_and_flags_win),
	    CLIT_TEST(print_config_names_every_origin),
	    CLIT_TEST(bad_settings_name_their_line),
	    CLIT_TEST(user_file_wins_over_the_system_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
