/* Concurrent host-side transfers into two leases from one process (as the daemon does): each
 * lease's workspace only ever receives its own archive. A transfer that moved the process's
 * working directory into its workspace would let the other lease's relative extraction land
 * there.
 */
#include "sbx.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sandbar/runner.h>

#define ROUNDS 40

typedef struct side {
	sb_sandbox *sb;
	sb_runner *run;
	char *tar; /* archive holding <name>-only.txt */
	const char *name;
	int failures;
} side;

static void *sync_loop(void *arg)
{
	side *s = arg;
	for (int i = 0; i < ROUNDS; i++) {
		FILE *f = fopen(s->tar, "rb");
		if (!f) {
			s->failures++;
			continue;
		}
		sb_err *err = sb_runner_sync_in(s->run, "/workspace", NULL, fileno(f), NULL, NULL);
		if (err) {
			s->failures++;
			sb_err_free(err);
		}
		fclose(f);
	}
	return NULL;
}

static void make_side(side *s, const char *state, const char *name, const char *dir)
{
	s->name = name;
	s->sb = sbx_create(state, name, NULL);
	SB_ASSERT_OK(sb_sandbox_runner_new(s->sb, NULL, &s->run));
	char *src = sbt_path(dir, name);
	char *file = sb_strfmt("%s-only.txt", name);
	sbt_write_str(src, file, name);
	/* a few dozen entries so extractions overlap */
	for (int i = 0; i < 40; i++) {
		char *rel = sb_strfmt("%s-dir/f%d", name, i);
		sbt_write_str(src, rel, name);
		free(rel);
	}
	s->tar = sb_strfmt("%s/%s.tar", dir, name);
	assert_int_equal(sbt_sh("tar -C '%s' -cf '%s' .", src, s->tar), 0);
	free(file);
	free(src);
}

static void concurrent_transfers_stay_in_their_own_lease(void **state)
{
	(void)state;
	char *st = sbx_state_dir();
	char *dir = sbt_mkdtemp("esc-cross");
	side a, b;
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	make_side(&a, st, "lease-a", dir);
	make_side(&b, st, "lease-b", dir);
	char before[4096], after[4096];
	assert_non_null(getcwd(before, sizeof before));
	pthread_t ta, tb;
	assert_int_equal(pthread_create(&ta, NULL, sync_loop, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, sync_loop, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(a.failures, 0);
	assert_int_equal(b.failures, 0);
	/* each workspace holds its own files and nothing of the other's */
	char *la = sbt_sh_out("ls -A '%s'", sb_sandbox_workspace_dir(a.sb));
	char *lb = sbt_sh_out("ls -A '%s'", sb_sandbox_workspace_dir(b.sb));
	assert_string_equal(la, "lease-a-dir\nlease-a-only.txt\n");
	assert_string_equal(lb, "lease-b-dir\nlease-b-only.txt\n");
	free(la);
	free(lb);
	/* and neither ended up where this process works */
	assert_non_null(getcwd(after, sizeof after));
	assert_string_equal(before, after);
	assert_int_not_equal(access("lease-a-only.txt", F_OK), 0);
	assert_int_not_equal(access("lease-b-only.txt", F_OK), 0);
	side *sides[] = {&a, &b};
	for (int i = 0; i < 2; i++) {
		sb_runner_free(sides[i]->run);
		SB_ASSERT_OK(sb_sandbox_destroy(sides[i]->sb));
		free(sides[i]->tar);
	}
	sbt_rmtree(dir);
	sbx_state_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(concurrent_transfers_stay_in_their_own_lease),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
