/* sandbox.mount_swap: a mount's host path is opened once, when it is checked, and that is what
 * gets bound. A thread keeps swapping a directory under the allowed root for a link to a
 * directory outside it while sandboxes are created with the directory as a mount: every
 * create either fails with an error or binds the allowed directory; the outside one is never
 * seen inside (binding by path after the check could follow the link swapped in between). */
#include "sbx.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TRIES 80
#define SUCCESSES_WANTED 5

typedef struct swapper {
	char *link, *parked;
	atomic_bool stop;
	atomic_ulong flips;
} swapper;

static void *swap_main(void *arg)
{
	swapper *s = arg;
	/* the directory most of the time, a link for a moment: a create that resolved the
	 * directory and then binds by path finds the link now and then */
	while (!atomic_load(&s->stop)) {
		usleep(300);
		if (rename(s->link, s->parked) == 0) {
			if (symlink("../outside", s->link) == 0) {
				usleep(100);
				unlink(s->link);
			}
			rename(s->parked, s->link);
		}
		atomic_fetch_add(&s->flips, 1);
	}
	return NULL;
}

static void swapped_link_is_never_bound(void **state)
{
	(void)state;
	char *st = sbx_state_dir();
	char *base = NULL;
	SB_ASSERT_OK(sb_fs_mkdtemp("sandbar-mount-swap", &base));
	assert_int_equal(chmod(base, 0755), 0);
	assert_int_equal(sbt_sh("cd '%s' && mkdir -p allowed/a outside && chmod -R 0755 . && "
	                        "echo allowed > allowed/a/f && echo outside > outside/f && "
	                        "chmod 0644 allowed/a/f outside/f",
	                        base),
	                 0);
	char *root = sb_strfmt("%s/allowed", base);
	swapper s = {.link = sb_strfmt("%s/allowed/a", base),
	             .parked = sb_strfmt("%s/allowed/a.parked", base)};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, swap_main, &s), 0);
	const char *roots[] = {root, NULL};
	int ok = 0, refused = 0;
	for (int i = 0; i < TRIES && ok < SUCCESSES_WANTED; i++) {
		sb_sandbox_mount m = {.host = s.link, .target = "/mnt/a"};
		sb_sandbox_opts o = {.mounts = &m, .nmounts = 1, .mount_roots = roots};
		sb_sandbox_config cfg;
		sbx_config(&cfg, st);
		char id[32];
		snprintf(id, sizeof id, "swap-%d", i);
		sb_sandbox *sb = NULL;
		sb_err *err = sb_sandbox_create(&cfg, id, &o, &sb);
		if (err) {
			if (!refused)
				print_message("first refusal: %s\n", err->msg);
			refused++;
			sb_err_free(err);
			continue;
		}
		sbx_result r;
		sbx_sh(sb, "cat /mnt/a/f", &r);
		if (strcmp(sb_buf_cstr(&r.out), "allowed\n") != 0)
			fail_msg("try %d bound something else: \"%s\" (stderr %s)", i,
			         sb_buf_cstr(&r.out), sb_buf_cstr(&r.err));
		ok++;
		sbx_result_free(&r);
		SB_ASSERT_OK(sb_sandbox_destroy(sb));
	}
	atomic_store(&s.stop, true);
	pthread_join(th, NULL);
	print_message("%d bound the allowed directory, %d refused, %lu swaps\n", ok, refused,
	              atomic_load(&s.flips));
	/* the swapping really raced the creates, and some of them got through */
	assert_true(atomic_load(&s.flips) > 100);
	assert_true(ok > 0);
	assert_int_equal(sbt_sh("rm -rf '%s'", base), 0);
	free(base);
	free(root);
	free(s.link);
	free(s.parked);
	sbx_state_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(swapped_link_is_never_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
