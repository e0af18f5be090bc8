/* A creation killed before it recorded its sandbox: nothing is left running (bwrap never dies
 * of SIGPIPE on its info pipe, so init starts, finds its creator gone and ends the sandbox),
 * and the lease directory it left is removed by the next listing once nobody holds its
 * creation lock. */
#include "sbx.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Entries of leases/ that are leases or lease directories (not spares, not .gone-). */
static int lease_dirs(const char *state)
{
	char *p = sb_strfmt("%s/leases", state);
	DIR *d = opendir(p);
	free(p);
	int n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)))
		n += de->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static char *half_made(const char *state, const char *id)
{
	char *dir = sb_strfmt("%s/leases/%s", state, id);
	char *leases = sb_strfmt("%s/leases", state);
	mkdir(leases, 0700);
	free(leases);
	assert_int_equal(mkdir(dir, 0700), 0);
	char *ws = sb_strfmt("%s/workspace", dir), *run = sb_strfmt("%s/run", dir);
	assert_int_equal(mkdir(ws, 0755), 0);
	assert_int_equal(mkdir(run, 0700), 0);
	free(ws);
	free(run);
	return dir;
}

static void list_once(const sb_sandbox_config *cfg)
{
	char **ids = NULL;
	SB_ASSERT_OK(sb_sandbox_list(cfg, &ids));
	assert_null(ids[0]); /* never listed as a lease */
	sb_strv_free(ids);
}

static void a_locked_or_recent_half_creation_stays(void **state)
{
	(void)state;
	char *st = sbx_state_dir();
	sb_sandbox_config cfg;
	sbx_config(&cfg, st);
	char *dir = half_made(st, "half");
	list_once(&cfg); /* the default age: far too recent */
	assert_int_equal(lease_dirs(st), 1);
	cfg.abandoned_after_ms = 1;
	int lock = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_int_equal(flock(lock, LOCK_EX), 0);
	usleep(20000);
	list_once(&cfg); /* old enough, but its creator still holds the lock */
	assert_int_equal(lease_dirs(st), 1);
	close(lock);
	list_once(&cfg);
	assert_int_equal(lease_dirs(st), 0);
	free(dir);
	sbx_state_free(st);
}

/* Child: create sandboxes as `sandbar run` does (the creator watched) until killed. */
static void create_forever(const char *st)
{
	sb_sandbox_config cfg;
	sbx_config(&cfg, st);
	sb_sandbox_opts o = {.watch_owner = true};
	for (int i = 0;; i++) {
		char id[32];
		snprintf(id, sizeof id, "k%d-%d", (int)getpid(), i);
		sb_sandbox *sb = NULL;
		sb_err *err = sb_sandbox_create(&cfg, id, &o, &sb);
		if (err)
			_exit(3);
		sb_err_free(sb_sandbox_destroy(sb));
	}
}

/* Sandbox processes whose stdout is an init.log under st. */
static int sandboxes_left(const char *st)
{
	DIR *d = opendir("/proc");
	int n = 0;
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char link[300], target[4096];
		snprintf(link, sizeof link, "/proc/%s/fd/1", de->d_name);
		ssize_t k = readlink(link, target, sizeof target - 1);
		if (k <= 0)
			continue;
		target[k] = '\0';
		n += strncmp(target, st, strlen(st)) == 0 && strstr(target, "/init.log") != NULL;
	}
	if (d)
		closedir(d);
	return n;
}

static void creators_killed_at_random_leave_nothing(void **state)
{
	(void)state;
	char *st = sbx_state_dir();
	srand((unsigned)getpid());
	for (int trial = 0; trial < 12; trial++) {
		pid_t c = fork();
		assert_true(c >= 0);
		if (c == 0)
			create_forever(st);
		usleep(20000 + (useconds_t)(rand() % 120000)); /* somewhere in a creation */
		kill(c, SIGKILL);
		int ws;
		waitpid(c, &ws, 0);
		assert_true(WIFSIGNALED(ws)); /* it was still creating, not failing */
	}
	/* Every orphaned init stops within its grace (2 s); a sandbox whose bwrap waited forever
	 * for a go-ahead would stay. Polled: nothing tells us when they end. */
	int left = 0;
	for (int i = 0; i < 200 && (left = sandboxes_left(st)) > 0; i++)
		usleep(50000);
	assert_int_equal(left, 0);
	sb_sandbox_config cfg;
	sbx_config(&cfg, st);
	cfg.abandoned_after_ms = 1;
	char **ids = NULL;
	SB_ASSERT_OK(sb_sandbox_list(&cfg, &ids));
	/* recorded leases of killed creators stay (prune's to judge); the rest went */
	size_t recorded = 0;
	while (ids[recorded])
		recorded++;
	assert_int_equal(lease_dirs(st), (int)recorded);
	for (size_t i = 0; ids[i]; i++) {
		sb_sandbox *sb = NULL;
		SB_ASSERT_OK(sb_sandbox_open_dead(&cfg, ids[i], &sb));
		SB_ASSERT_OK(sb_sandbox_destroy(sb));
	}
	sb_strv_free(ids);
	assert_int_equal(lease_dirs(st), 0);
	sbx_state_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_locked_or_recent_half_creation_stays),
	    cmocka_unit_test(creators_killed_at_random_leave_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
