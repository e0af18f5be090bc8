/* The restore lock (spec §3.4, §8.3): one holder per target, kept in a private lock root keyed
 * by the target's canonical path; a dead owner or an old ownerless lock is recovered, a live or
 * fresh one is waited for; a restore waits for a held lock and proceeds once it is released.
 */
#include "harness.h"
#include "runtime/rt.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct fx {
	char *root, *target;
} fx;

static void fx_init(fx *f)
{
	char *r = sbt_mkdtemp("rt-locks");
	f->root = sbt_path(r, "locks");
	free(r);
	f->target = sbt_mkdtemp("rt-target");
	char *lr = NULL;
	SB_ASSERT_OK(sb_rt_lock_root(f->root, &lr));
	free(lr);
}

static void fx_free(fx *f)
{
	char *parent = sb_rt_dirname(f->root);
	sbt_rmtree(parent);
	free(f->root);
	sbt_rmtree(f->target);
}

static void lock_root_is_private(void **state)
{
	(void)state;
	fx f;
	fx_init(&f);
	struct stat st;
	assert_int_equal(stat(f.root, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	/* a lock root others can write to is refused */
	assert_int_equal(chmod(f.root, 0777), 0);
	char *lr = NULL;
	sb_err *err = sb_rt_lock_root(f.root, &lr);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_INVAL);
	sb_err_free(err);
	assert_int_equal(chmod(f.root, 0700), 0);
	fx_free(&f);
}

static void held_lock_times_out_then_frees(void **state)
{
	(void)state;
	fx f;
	fx_init(&f);
	sb_rt_lock a, b;
	SB_ASSERT_OK(sb_rt_lock_acquire(f.root, f.target, 1000, &a));
	/* the same target through another spelling is the same lock */
	char *alias = sb_strfmt("%s/.", f.target);
	sb_err *err = sb_rt_lock_acquire(f.root, alias, 150, &b);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_TIMEOUT);
	assert_non_null(strstr(err->msg, "Timed out waiting for workspace restore lock at"));
	sb_err_free(err);
	sb_rt_lock_release(&a);
	SB_ASSERT_OK(sb_rt_lock_acquire(f.root, alias, 1000, &b));
	sb_rt_lock_release(&b);
	free(alias);
	fx_free(&f);
}

static char *lock_dir(fx *f)
{
	char *d = NULL;
	SB_ASSERT_OK(sb_rt_lock_path(f->root, f->target, &d));
	return d;
}

static void dead_owner_is_recovered(void **state)
{
	(void)state;
	fx f;
	fx_init(&f);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	assert_int_equal(waitpid(child, NULL, 0), child); /* now a pid nobody owns */
	char *d = lock_dir(&f);
	assert_int_equal(mkdir(d, 0700), 0);
	char *owner = sb_strfmt("{\"pid\":%d,\"createdAt\":\"2026-01-01T00:00:00.000Z\"}", child);
	sbt_write_str(d, "owner.json", owner);
	sb_rt_lock l;
	SB_ASSERT_OK(sb_rt_lock_acquire(f.root, f.target, 5000, &l));
	sb_rt_lock_release(&l);
	/* an unparsable owner record is stale too */
	assert_int_equal(mkdir(d, 0700), 0);
	sbt_write_str(d, "owner.json", "not json");
	SB_ASSERT_OK(sb_rt_lock_acquire(f.root, f.target, 5000, &l));
	sb_rt_lock_release(&l);
	free(owner);
	free(d);
	fx_free(&f);
}

static void ownerless_lock_recovered_only_when_old(void **state)
{
	(void)state;
	fx f;
	fx_init(&f);
	char *d = lock_dir(&f);
	assert_int_equal(mkdir(d, 0700), 0); /* fresh, no owner: someone is writing it */
	sb_rt_lock l;
	sb_err *err = sb_rt_lock_acquire(f.root, f.target, 150, &l);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_TIMEOUT);
	sb_err_free(err);
	struct timespec old[2] = {{.tv_sec = time(NULL) - 60}, {.tv_sec = time(NULL) - 60}};
	assert_int_equal(utimensat(AT_FDCWD, d, old, 0), 0);
	SB_ASSERT_OK(sb_rt_lock_acquire(f.root, f.target, 5000, &l));
	sb_rt_lock_release(&l);
	/* a live owner is never stale, however old */
	assert_int_equal(mkdir(d, 0700), 0);
	char *owner =
	    sb_strfmt("{\"pid\":%d,\"createdAt\":\"2026-01-01T00:00:00.000Z\"}", getpid());
	sbt_write_str(d, "owner.json", owner);
	assert_int_equal(utimensat(AT_FDCWD, d, old, 0), 0);
	err = sb_rt_lock_acquire(f.root, f.target, 150, &l);
	assert_non_null(err);
	sb_err_free(err);
	free(owner);
	free(d);
	fx_free(&f);
}

/* pids are reused: a record whose pid is alive but started at another time than the owner did
 * names another process, and the lock is stale; with the owner's start time it is held. */
static void reused_owner_pid_is_recovered(void **state)
{
	(void)state;
	fx f;
	fx_init(&f);
	char *d = lock_dir(&f);
	long long start = sb_proc_start_time(getpid());
	assert_true(start >= 0);
	assert_int_equal(mkdir(d, 0700), 0);
	char *owner = sb_strfmt("{\"pid\":%d,\"createdAt\":\"2026-01-01T00:00:00.000Z\","
	                        "\"pidStartTime\":%lld}",
	                        getpid(), start);
	sbt_write_str(d, "owner.json", owner);
	sb_rt_lock l;
	sb_err *err = sb_rt_lock_acquire(f.root, f.target, 150, &l);
	assert_non_null(err); /* the same process: held */
	assert_int_equal(err->code, SB_E_TIMEOUT);
	sb_err_free(err);
	free(owner);
	owner = sb_strfmt("{\"pid\":%d,\"createdAt\":\"2026-01-01T00:00:00.000Z\","
	                  "\"pidStartTime\":%lld}",
	                  getpid(), start + 1);
	sbt_write_str(d, "owner.json", owner);
	SB_ASSERT_OK(sb_rt_lock_acquire(f.root, f.target, 5000, &l));
	/* what a lock records names its owner for good */
	char *rec = sbt_read(d, "owner.json", NULL);
	char *want = sb_strfmt("\"pidStartTime\":%lld", start);
	assert_non_null(strstr(rec, want));
	free(want);
	free(rec);
	sb_rt_lock_release(&l);
	free(owner);
	free(d);
	fx_free(&f);
}

typedef struct restore_job {
	sb_runtime *rt;
	atomic_bool done;
	sb_err *err;
} restore_job;

static void *run_restore(void *arg)
{
	restore_job *j = arg;
	j->err = sb_runtime_restore(j->rt, NULL, NULL);
	atomic_store(&j->done, true);
	return NULL;
}

static void restore_waits_for_the_lock(void **state)
{
	(void)state;
	fx f;
	fx_init(&f);
	char *base = sbt_mkdtemp("rt-remote");
	char *ws = sbt_path(base, "ws");
	sbt_write_str(f.target, "a.txt", "base\n");
	sb_runner *runner = rth_runner(false);
	sb_runtime_prepare_opts o = {
	    .runner = runner,
	    .spec = {.remote_cwd = ws},
	    .adapter_key = "x",
	    .workspace_local_dir = f.target,
	    .lock_root = f.root,
	};
	sb_runtime *rt;
	SB_ASSERT_OK(sb_runtime_prepare(&o, &rt));
	sbt_write_str(ws, "a.txt", "remote\n");
	sb_rt_lock held;
	SB_ASSERT_OK(sb_rt_lock_acquire(f.root, f.target, 1000, &held));
	restore_job j = {.rt = rt};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, run_restore, &j), 0);
	/* the restore fetches, then blocks on the lock: the file stays as it was */
	/* waits for something that must NOT happen (the restore finishing), so no event can end
	 * the wait early */
	for (int i = 0; i < 20 && !atomic_load(&j.done); i++)
		sb_sleep_ms(25);
	assert_false(atomic_load(&j.done));
	rth_assert_file(f.target, "a.txt", "base\n");
	sb_rt_lock_release(&held);
	pthread_join(t, NULL);
	SB_ASSERT_OK(j.err);
	rth_assert_file(f.target, "a.txt", "remote\n");
	sb_runtime_free(rt);
	sb_runner_free(runner);
	free(ws);
	sbt_rmtree(base);
	fx_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(lock_root_is_private),
	    cmocka_unit_test(held_lock_times_out_then_frees),
	    cmocka_unit_test(dead_owner_is_recovered),
	    cmocka_unit_test(ownerless_lock_recovered_only_when_old),
	    cmocka_unit_test(reused_owner_pid_is_recovered),
	    cmocka_unit_test(restore_waits_for_the_lock),
	};
	return cmocka_run_group_tests_name("runtime.lock", tests, NULL, NULL);
}
