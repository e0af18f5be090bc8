/* cli.config: where settings come from. A flag beats SANDBAR_STATE_DIR, which beats the
 * config file named by SANDBAR_CONFIG; an unknown key or a malformed line in the file is an
 * error naming the file and line. */
#include <stdlib.h>
#include <string.h>

#include "clitest.h"

/* Acquires a lease with the given env and extra args; returns the state dir it landed in
 * (one of s-flag, s-env, s-file), malloc'd. */
static char *where_acquired(clit *t, const char *const *env, const char *flag, const char *value)
{
	clit_res r;
	const char *args[5] = {"lease", "acquire", flag, value, NULL};
	int code = clit_run(t, &r, env, args);
	if (code != 0) {
		print_error("lease acquire: exit %d\n%s\n", code, r.err);
		fail();
	}
	char *id = sb_xstrndup(r.out, strcspn(r.out, "\n"));
	clit_res_free(&r);
	char *found = NULL;
	for (const char *const *d = CLIT_V("s-flag", "s-env", "s-file"); *d; d++)
		if (sbt_sh("test -d '%s/%s/leases/%s'", t->root, *d, id) == 0)
			found = sb_xstrdup(*d);
	assert_non_null(found);
	free(id);
	return found;
}

static void flag_beats_env_beats_config_file(void **state)
{
	clit *t = *state;
	char *file = sb_strfmt("%s/s-file", t->root);
	char *text = sb_strfmt("# sandbar config\n\nstate_dir = %s\n", file);
	sbt_write_str(t->root, "config", text);
	char *cfg = sb_strfmt("SANDBAR_CONFIG=%s/config", t->root);
	char *env = sb_strfmt("SANDBAR_STATE_DIR=%s/s-env", t->root);
	char *flag = sb_strfmt("%s/s-flag", t->root);

	char *w = where_acquired(t, CLIT_V(cfg, "SANDBAR_STATE_DIR"), NULL, NULL);
	assert_string_equal(w, "s-file");
	free(w);
	w = where_acquired(t, CLIT_V(cfg, env), NULL, NULL);
	assert_string_equal(w, "s-env");
	free(w);
	w = where_acquired(t, CLIT_V(cfg, env), "--state-dir", flag);
	assert_string_equal(w, "s-flag");
	free(w);

	/* `sandbar run` takes the state dir from the config file too (its lease is kept). */
	clit_res r;
	assert_int_equal(
	    clit_run(t, &r, CLIT_V(cfg, "SANDBAR_STATE_DIR"),
	             CLIT_V("run", "-q", "--keep", "--json", "-w", t->ws, "--", "true")),
	    0);
	json_t *j = clit_json(r.out);
	assert_int_equal(sbt_sh("test -d '%s/leases/%s'", file,
	                        json_string_value(json_object_get(j, "lease_id"))),
	                 0);
	json_decref(j);
	clit_res_free(&r);
	free(flag);
	free(env);
	free(cfg);
	free(text);
	free(file);
}

static void unknown_key_is_an_error_naming_the_line(void **state)
{
	clit *t = *state;
	sbt_write_str(t->root, "config", "# comment\nstate_dir = /tmp/x\nstat_dir = /tmp/y\n");
	char *cfg = sb_strfmt("SANDBAR_CONFIG=%s/config", t->root);
	clit_res r;
	assert_int_equal(clit_run(t, &r, CLIT_V(cfg), CLIT_V("lease", "list")), 125);
	assert_non_null(strstr(r.err, "config:3"));
	assert_non_null(strstr(r.err, "stat_dir"));
	clit_res_free(&r);
	assert_int_equal(clit_run(t, &r, CLIT_V(cfg), CLIT_V("run", "-w", t->ws, "--", "true")),
	                 125);
	assert_non_null(strstr(r.err, "config:3"));
	clit_res_free(&r);
	/* A line without `=`. */
	sbt_write_str(t->root, "config", "state_dir /tmp/x\n");
	assert_int_equal(clit_run(t, &r, CLIT_V(cfg), CLIT_V("lease", "list")), 125);
	assert_non_null(strstr(r.err, "config:1"));
	clit_res_free(&r);
	free(cfg);
}

static void bridge_url_from_the_config_file(void **state)
{
	clit *t = *state;
	/* Nothing listens on port 1: the run fails reaching it, which proves it was used. */
	sbt_write_str(t->root, "config",
	              "bridge_url = http://127.0.0.1:1\ntoken_file = /dev/null\n");
	sbt_write_str(t->root, "tok", "some-token\n");
	char *cfg = sb_strfmt("SANDBAR_CONFIG=%s/config", t->root);
	char *tok = sb_strfmt("SANDBAR_TOKEN_FILE=%s/tok", t->root);
	clit_res r;
	assert_int_equal(
	    clit_run(t, &r, CLIT_V(cfg, tok), CLIT_V("run", "-q", "-w", t->ws, "--", "true")), 125);
	assert_non_null(strstr(r.err, "127.0.0.1:1"));
	clit_res_free(&r);
	free(tok);
	free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) CLIT_TEST(f)
	    T(flag_beats_env_beats_config_file),
	    T(unknown_key_is_an_error_naming_the_line),
	    T(bridge_url_from_the_config_file),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
