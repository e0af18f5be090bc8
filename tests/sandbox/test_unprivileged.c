/* Without root: the whole backend as an ordinary user (here the sandbar user, in a child
 * process that dropped to it), including a workspace that sandboxed code made unreadable. */
#include "sbx.h"

#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A copy of sandbar-init the unprivileged user can reach: the build tree may lie below a
 * directory only root can enter (a clone in /root), as an installed sandbar never does. */
static char *init_copy;

static int as_user(const char *state)
{
	sb_sandbox_config cfg;
	sbx_config(&cfg, state);
	cfg.init_path = init_copy;
	sb_sandbox *sb = NULL;
	sb_err *err = sb_sandbox_create(&cfg, "user", NULL, &sb);
	if (err) {
		fprintf(stderr, "create: %s\n", err->msg);
		return 1;
	}
	sb_sandbox_info info;
	sb_sandbox_get_info(sb, &info);
	if (info.host_uid != (int64_t)getuid()) {
		fprintf(stderr, "sandbox runs as %lld, not as the caller\n",
		        (long long)info.host_uid);
		return 2;
	}
	char *argv[] = {"sh", "-c",
	                "id -u && mkdir -p /workspace/a/b && echo x > /workspace/a/b/f && "
	                "chmod 000 /workspace/a/b /workspace/a",
	                NULL};
	sb_sandbox_exec_req req = {.argv = argv};
	sb_sandbox_exec *x = NULL;
	if ((err = sb_sandbox_exec_start(sb, &req, &x))) {
		fprintf(stderr, "exec: %s\n", err->msg);
		return 3;
	}
	sb_sandbox_exec_status st;
	for (;;) {
		if ((err = sb_sandbox_exec_status_of(x, &st)))
			return 4;
		if (!st.running)
			break;
		sb_err_free(sb_sandbox_exec_wait(x, 1000, NULL));
	}
	sb_sandbox_exec_free(x);
	if (!st.has_exit_code || st.exit_code != 0)
		return 5;
	char *lease = sb_strfmt("%s/leases/user", state);
	if ((err = sb_sandbox_destroy(sb))) {
		fprintf(stderr, "destroy: %s\n", err->msg);
		return 6;
	}
	int gone = access(lease, F_OK) != 0;
	free(lease);
	return gone ? 0 : 7;
}

static void works_for_an_unprivileged_caller(void **s)
{
	(void)s;
	struct passwd *pw = getpwnam(SB_SANDBOX_USER_DEFAULT);
	if (!pw || getuid() != 0)
		sbt_skip("not root: needs root to become the unprivileged user");
	char *state = sbx_state_dir();
	assert_int_equal(chown(state, pw->pw_uid, pw->pw_gid), 0);
	char *init_dir = sbt_mkdtemp("sb-unpriv-init");
	init_copy = sbt_path(init_dir, "sandbar-init");
	assert_int_equal(sbt_sh("chmod 0755 '%s' && cp '%s' '%s' && chmod 0755 '%s'", init_dir,
	                        SB_TEST_BUILD_DIR "/sandbar-init", init_copy, init_copy),
	                 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
		    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0)
			_exit(100);
		_exit(as_user(state));
	}
	int ws = 0;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	assert_true(WIFEXITED(ws));
	assert_int_equal(WEXITSTATUS(ws), 0);
	sbx_state_free(state);
	free(init_copy);
	sbt_rmtree(init_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(works_for_an_unprivileged_caller),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
