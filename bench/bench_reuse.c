/* Benchmark (#15): `sandbar run -- true` on a tiny workspace with a reused lease (--reuse), and
 * with a fresh lease, vs a bare `bwrap --unshare-all ... /bin/true` measured interleaved in the
 * same run (target for the reused lease: <= 2x). The real binary, a private state directory. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "benchutil.h"

#define RUNS 30

int main(void)
{
	char *root = sbb_tmpdir("sandbar-bench", 0711);
	char state[512], ws[512], cmd[1200];
	snprintf(state, sizeof state, "%s/state", root);
	snprintf(ws, sizeof ws, "%s/ws", root);
	snprintf(cmd, sizeof cmd, "mkdir -p '%s' && echo hello > '%s/README'", ws, ws);
	if (system(cmd) != 0)
		return 1;
	setenv("SANDBAR_STATE_DIR", state, 1);
	setenv("SANDBAR_CONFIG", "/nonexistent", 1);
	char *sandbar = SB_BENCH_BUILD_DIR "/sandbar";
	char *reuse_argv[] = {sandbar,   "run",   "-q", "-w",   ws,
	                      "--reuse", "bench", "--", "true", NULL};
	char *fresh_argv[] = {sandbar, "run", "-q", "-w", ws, "--", "true", NULL};
	char *bwrap_argv[] = {"bwrap", "--unshare-all", "--ro-bind", "/",         "/", "--proc",
	                      "/proc", "--dev",         "/dev",      "/bin/true", NULL};

	/* warm-up: the reused lease is created here, page cache, seccomp compile */
	sbb_spawn_wait(reuse_argv);
	sbb_spawn_wait(fresh_argv);
	sbb_spawn_wait(bwrap_argv);
	double reuse[RUNS], fresh[RUNS], bare[RUNS];
	for (int i = 0; i < RUNS; i++) {
		reuse[i] = sbb_spawn_wait(reuse_argv);
		fresh[i] = sbb_spawn_wait(fresh_argv);
		bare[i] = sbb_spawn_wait(bwrap_argv);
	}
	double mr = sbb_median(reuse, RUNS), mf = sbb_median(fresh, RUNS),
	       mb = sbb_median(bare, RUNS);
	sbb_row_ms("reuse: `sandbar run --reuse -- true`, tiny workspace, vs bare bwrap (target "
	           "<= 2x)",
	           mr, mb, "bare bwrap");
	sbb_row_ms("reuse: `sandbar run -- true`, fresh lease, vs bare bwrap", mf, mb,
	           "bare bwrap");
	snprintf(cmd, sizeof cmd, "'%s' lease destroy reuse-bench >/dev/null; rm -rf '%s'", sandbar,
	         root);
	return system(cmd) == 0 ? 0 : 1;
}
