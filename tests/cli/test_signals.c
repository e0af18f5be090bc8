/* cli.signals: Ctrl-C as a real SIGINT sent to the sandbar process. The first stops the
 * command (TERM, then KILL), still brings back what it made, releases the lease and exits 130;
 * a second one aborts at once, restores nothing and names the lease it leaves behind. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "clitest.h"

/* Leases in the state dir; hidden entries (.spare-* skeletons kept for fast creation) are
 * not leases. */
static int count_leases(clit *t)
{
	char *n = sbt_sh_out("ls '%s/leases' 2>/dev/null | wc -l", t->state);
	int c = atoi(n);
	free(n);
	return c;
}

static void first_sigint_stops_restores_and_releases(void **state)
{
	clit *t = *state;
	clit_proc p;
	clit_start(t, &p, NULL,
	           CLIT_V("run", "-w", t->ws, "--", "sh", "-c",
	                  "echo partial > made.txt; trap 'echo term > term.txt; exit 0' TERM; "
	                  "echo ready; sleep 60 & wait $!"));
	clit_wait_for(p.out_path, "ready");
	assert_int_equal(count_leases(t), 1);
	assert_int_equal(kill(p.pid, SIGINT), 0);
	clit_res r;
	assert_int_equal(clit_finish(t, &p, &r), 130);
	assert_non_null(strstr(r.err, "stopping the command"));
	clit_res_free(&r);
	char *made = sbt_read(t->ws, "made.txt", NULL);
	char *term = sbt_read(t->ws, "term.txt", NULL);
	assert_string_equal(made, "partial\n");
	assert_string_equal(term, "term\n"); /* it got TERM, and what it did then came back */
	free(made);
	free(term);
	assert_int_equal(count_leases(t), 0);
}

static void first_sigint_kills_a_command_ignoring_term(void **state)
{
	clit *t = *state;
	clit_proc p;
	clit_start(t, &p, NULL,
	           CLIT_V("run", "-q", "-w", t->ws, "--", "sh", "-c",
	                  "trap '' TERM; echo partial > made.txt; echo ready; "
	                  "while :; do sleep 0.05; done"));
	clit_wait_for(p.out_path, "ready");
	assert_int_equal(kill(p.pid, SIGINT), 0);
	clit_res r;
	assert_int_equal(clit_finish(t, &p, &r), 130);
	clit_res_free(&r);
	char *made = sbt_read(t->ws, "made.txt", NULL);
	assert_string_equal(made, "partial\n");
	free(made);
	assert_int_equal(count_leases(t), 0);
}

static void second_sigint_aborts_and_names_the_lease(void **state)
{
	clit *t = *state;
	clit_proc p;
	/* The command ignores TERM, so after the first Ctrl-C sandbar waits out the grace period:
	 * the second one lands in it. */
	clit_start(t, &p, NULL,
	           CLIT_V("run", "-w", t->ws, "--", "sh", "-c",
	                  "trap '' TERM; echo partial > made.txt; echo ready; "
	                  "while :; do sleep 0.05; done"));
	clit_wait_for(p.out_path, "ready");
	assert_int_equal(kill(p.pid, SIGINT), 0);
	clit_wait_for(p.err_path, "Ctrl-C again");
	assert_int_equal(kill(p.pid, SIGINT), 0);
	clit_res r;
	assert_int_equal(clit_finish(t, &p, &r), 130);
	assert_non_null(strstr(r.err, "left behind"));
	char *lease = clit_word_after(r.err, "sandbar lease destroy ");
	clit_res_free(&r);
	/* Nothing was restored, and the named lease is really there. */
	assert_null(sbt_read(t->ws, "made.txt", NULL));
	char *dir = sb_strfmt("%s/leases/%s", t->state, lease);
	assert_int_equal(sbt_sh("test -d '%s'", dir), 0);
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("lease", "list")), 0);
	assert_non_null(strstr(r.out, lease));
	clit_res_free(&r);
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("lease", "destroy", lease)), 0);
	clit_res_free(&r);
	assert_int_not_equal(sbt_sh("test -e '%s'", dir), 0);
	assert_int_equal(count_leases(t), 0);
	free(dir);
	free(lease);
}

static void sigint_during_staging_is_130_and_cleans_up(void **state)
{
	clit *t = *state;
	/* A command prefix that holds the first transfer (the staging tar) until killed. */
	char *script = sb_strfmt("#!/bin/sh\n"
	                         "case \"$*\" in *tar*)\n"
	                         "  if [ ! -e '%s/held' ]; then : > '%s/held';\n"
	                         "    while :; do sleep 0.01; done; fi;;\n"
	                         "esac\n"
	                         "exec \"$@\"\n",
	                         t->root, t->root);
	sbt_write(t->root, "holdsh", script, strlen(script), 0755);
	free(script);
	char *tmp = sbt_path(t->root, "tmp");
	SB_ASSERT_OK(sb_fs_mkdir_p(tmp, 0755));
	char *env_tmp = sb_strfmt("TMPDIR=%s", tmp);
	char *via = sb_strfmt("cmd:%s/holdsh", t->root);
	char *ran = sbt_path(t->root, "ran");
	clit_proc p;
	clit_start(t, &p, CLIT_V(env_tmp),
	           CLIT_V("run", "-w", t->ws, "--via", via, "--", "touch", ran));
	char *held = sbt_path(t->root, "held");
	clit_wait_for(held, "");
	assert_int_equal(kill(p.pid, SIGINT), 0);
	clit_res r;
	assert_int_equal(clit_finish(t, &p, &r), 130);
	assert_non_null(strstr(r.err, "interrupted while staging"));
	clit_res_free(&r);
	assert_int_not_equal(sbt_sh("test -e '%s'", ran), 0);
	char *left = sbt_sh_out("ls -A '%s' | grep -c '^sandbar-run'", tmp);
	assert_int_equal(atoi(left), 0);
	free(left);
	free(held);
	free(ran);
	free(via);
	free(env_tmp);
	free(tmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) CLIT_TEST(f)
	    T(first_sigint_stops_restores_and_releases),
	    T(first_sigint_kills_a_command_ignoring_term),
	    T(second_sigint_aborts_and_names_the_lease),
	    T(sigint_during_staging_is_130_and_cleans_up),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
