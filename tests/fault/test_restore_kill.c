/* A restore SIGKILLed at many points: a child process (and its process group: tar, sh) runs the
 * restore and is killed after a delay spread over the length of a clean restore. After every
 * kill each local file must be its old or its new version (or absent where one side has no such
 * file), never a partial write; the next restore must recover the dead process's lock and
 * staging, finish the job and leave no temp files or locks behind.
 */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define N_SMALL 150
#define N_ITER 12
#define N_LINKS 400 /* a long run of link replacements for the kills to land in */

static char *version(const char *side, int i)
{
	/* sizes differ between versions so a torn write shows up as a wrong length too */
	return sb_strfmt("%s version of file %d %0*d\n", side, i,
	                 strcmp(side, "old") == 0 ? 10 : 200, i);
}

static void write_side(const char *dir, const char *side)
{
	for (int i = 0; i < N_SMALL; i++) {
		/* old: 0..N-1; new: drops every 5th, adds N..N+19 */
		if (strcmp(side, "new") == 0 && i % 5 == 0)
			continue;
		char *rel = sb_strfmt("d%d/f%d.txt", i % 7, i);
		char *body = version(side, i);
		sbt_write_str(dir, rel, body);
		free(body);
		free(rel);
	}
	if (strcmp(side, "new") == 0)
		for (int i = N_SMALL; i < N_SMALL + 20; i++) {
			char *rel = sb_strfmt("added/f%d.txt", i);
			char *body = version(side, i);
			sbt_write_str(dir, rel, body);
			free(body);
			free(rel);
		}
	/* links whose targets change between the versions */
	for (int i = 0; i < N_LINKS; i++) {
		char *p = sb_strfmt("%s/links", dir);
		mkdir(p, 0755);
		free(p);
		p = sb_strfmt("%s/links/l%d", dir, i);
		char *t = sb_strfmt("../d%d/%s-target-%d", i % 7, side, i);
		assert_int_equal(symlink(t, p), 0);
		free(t);
		free(p);
	}
	size_t n = 1u << 20;
	char *big = sb_xmalloc(n);
	sbt_fill_random(big, n, strcmp(side, "old") == 0 ? 1 : 2);
	sbt_write(dir, "big.bin", big, n, 0644);
	free(big);
}

/* A file's bytes, or a symlink's target. */
static char *read_entry(const char *dir, const char *rel, size_t *len)
{
	char *p = sbt_path(dir, rel);
	char buf[4096];
	ssize_t n = readlink(p, buf, sizeof buf);
	free(p);
	if (n >= 0) {
		*len = (size_t)n;
		return sb_xstrndup(buf, (size_t)n);
	}
	return sbt_read(dir, rel, len);
}

/* Every local file is exactly the old or the new version of its path. */
static void assert_old_or_new(const char *local, const char *old, const char *neu, int iter)
{
	/* the staging dir and temp names are the next restore's to clear (checked at the end) */
	char *list =
	    sbt_sh_out("cd '%s' && find . \\( -path ./.paperclip-runtime -o -path "
	               "./.sandbar-restore \\) -prune -o \\( -type f -o -type l \\) ! -name "
	               "'*.sandbar-*' ! -name '*.sbtmp-*' -print | sort",
	               local);
	char *save = NULL;
	for (char *p = strtok_r(list, "\n", &save); p; p = strtok_r(NULL, "\n", &save)) {
		const char *rel = p + 2;
		size_t ln = 0, lo = 0, lw = 0;
		char *l = read_entry(local, rel, &ln);
		char *o = read_entry(old, rel, &lo);
		char *w = read_entry(neu, rel, &lw);
		bool ok = l && ((o && lo == ln && memcmp(o, l, ln) == 0) ||
		                (w && lw == ln && memcmp(w, l, ln) == 0));
		if (!ok)
			print_error("iteration %d: %s is neither the old nor the new version "
			            "(%zu bytes)\n",
			            iter, rel, ln);
		assert_true(ok);
		free(l);
		free(o);
		free(w);
	}
	free(list);
	/* and nothing that was in both versions went missing */
	for (int i = 1; i < N_SMALL; i++) {
		if (i % 5 == 0)
			continue;
		char *rel = sb_strfmt("d%d/f%d.txt", i % 7, i);
		if (!rth_exists(local, rel))
			print_error("iteration %d: %s vanished\n", iter, rel);
		assert_true(rth_exists(local, rel));
		free(rel);
	}
}

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Run a restore in a child process group; kill it after delay_us (< 0: let it finish).
 * Returns true when the child was killed before it finished. */
static bool restore_in_child(sb_runtime *rt, int64_t delay_us)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setpgid(0, 0);
		sb_err *err = sb_runtime_restore(rt, NULL, NULL);
		if (err)
			fprintf(stderr, "child restore: %s\n", err->msg);
		_exit(err ? 1 : 0);
	}
	setpgid(pid, pid);
	if (delay_us >= 0) {
		/* not synchronisation: the caller sweeps the kill point across the restore */
		usleep((useconds_t)delay_us);
		kill(-pid, SIGKILL);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0)
		;
	if (delay_us < 0)
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	return WIFSIGNALED(st);
}

/* Local side back to the old version, remote side the new one, a fresh runtime between. */
static sb_runtime *fresh_runtime(const sb_runtime_prepare_opts *o, const char *old, const char *neu)
{
	const char *local = o->workspace_local_dir, *ws = o->spec.remote_cwd;
	assert_int_equal(
	    sbt_sh("rm -rf '%s' && mkdir '%s' && cp -a '%s/.' '%s/'", local, local, old, local), 0);
	sb_runtime *rt = NULL;
	SB_ASSERT_OK(sb_runtime_prepare(o, &rt));
	assert_int_equal(sbt_sh("cd '%s' && find . -mindepth 1 -maxdepth 1 ! -name "
	                        ".paperclip-runtime -exec rm -rf {} + && cp -a '%s/.' .",
	                        ws, neu),
	                 0);
	return rt;
}

static void assert_clean(const char *local, const char *locks, int iter)
{
	char *left = sbt_sh_out("cd '%s' && find . -name '*.sandbar-*' -o -name '*.sbtmp-*' -o "
	                        "-name '.sandbar-restore'",
	                        local);
	if (left[0])
		print_error("iteration %d: left behind after the next restore:\n%s", iter, left);
	assert_string_equal(left, "");
	free(left);
	left = sbt_sh_out("find '%s' -mindepth 1", locks);
	assert_string_equal(left, "");
	free(left);
}

static void killed_restores_never_leave_partial_files(bool command_path)
{
	char *local = sbt_mkdtemp("rk-local");
	char *old = sbt_mkdtemp("rk-old");
	char *neu = sbt_mkdtemp("rk-new");
	char *base = sbt_mkdtemp("rk-remote");
	char *locks = sbt_mkdtemp("rk-locks");
	char *ws = sbt_path(base, "ws");
	write_side(old, "old");
	write_side(neu, "new");
	sb_runner *runner = rth_runner(true);
	sb_runtime_prepare_opts o = {
	    .runner = runner,
	    .spec = {.remote_cwd = ws},
	    .adapter_key = "claude",
	    .workspace_local_dir = local,
	    .force_command_path = command_path,
	    .lock_root = locks,
	};
	/* how long a clean restore takes */
	sb_runtime *rt = fresh_runtime(&o, old, neu);
	int64_t t0 = now_us();
	assert_false(restore_in_child(rt, -1));
	int64_t span = now_us() - t0;
	sb_runtime_free(rt);

	int killed = 0;
	for (int i = 0; i < N_ITER; i++) {
		rt = fresh_runtime(&o, old, neu);
		if (restore_in_child(rt, span * 3 / 4 * i / N_ITER))
			killed++;
		assert_old_or_new(local, old, neu, i);
		/* the next restore recovers the dead owner's lock and staging and completes */
		sb_restore_report rep;
		sb_restore_report_init(&rep);
		SB_ASSERT_OK(sb_runtime_restore(rt, NULL, &rep));
		assert_int_equal(rep.n_conflicts, 0);
		sb_restore_report_deinit(&rep);
		rth_assert_trees_equal(neu, local,
		                       (const char *const[]){".paperclip-runtime", NULL});
		assert_clean(local, locks, i);
		sb_runtime_free(rt);
	}
	/* some kills landed inside restores (how many depends on the host's speed) */
	print_message("%d of %d restores killed part way\n", killed, N_ITER);
	assert_true(killed >= 1);

	sb_runner_free(runner);
	free(ws);
	sbt_rmtree(locks);
	sbt_rmtree(base);
	sbt_rmtree(neu);
	sbt_rmtree(old);
	sbt_rmtree(local);
}

static void killed_native_restores_never_leave_partial_files(void **state)
{
	(void)state;
	killed_restores_never_leave_partial_files(false);
}

static void killed_command_path_restores_never_leave_partial_files(void **state)
{
	(void)state;
	killed_restores_never_leave_partial_files(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(killed_native_restores_never_leave_partial_files),
	    cmocka_unit_test(killed_command_path_restores_never_leave_partial_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
