/* Sandbox benchmarks (issue 5), ratios of medians measured in the same run:
 *  - lease create (ready for exec) vs a bare `bwrap --unshare-all ... /bin/true`;
 *  - exec of `true` on a warm lease vs a bare posix_spawn + waitpid of `true`;
 *  - the same exec vs a fresh bwrap per command.
 * Runs as root here (sandboxes then run as the sandbar user). */
#include "benchutil.h"

#include <sandbar/sandbox.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CREATES 30
#define EXECS 300
#define BWRAPS 30

static void die(sb_err *err, const char *what)
{
	if (!err)
		return;
	fprintf(stderr, "bench_sandbox: %s: %s\n", what, err->msg);
	exit(1);
}

/* Exec and wait for the final status, as a client of the lease would. */
static double exec_true(sb_sandbox *sb)
{
	static char *argv[] = {"/bin/true", NULL}; /* the same program as the baseline */
	sb_sandbox_exec_req req = {.argv = argv};
	double t0 = sbb_now();
	sb_sandbox_exec *x = NULL;
	die(sb_sandbox_exec_start(sb, &req, &x), "exec");
	sb_sandbox_exec_status st;
	for (;;) {
		die(sb_sandbox_exec_status_of(x, &st), "status");
		if (!st.running)
			break;
		die(sb_sandbox_exec_wait(x, 1000, NULL), "wait");
	}
	double t = sbb_now() - t0;
	if (!st.has_exit_code || st.exit_code != 0) {
		fprintf(stderr, "bench_sandbox: true failed in the sandbox\n");
		exit(1);
	}
	sb_sandbox_exec_free(x);
	return t;
}

int main(void)
{
	char *state = sbb_tmpdir("sandbar-bench", 0711);
	sb_sandbox_config cfg;
	sb_sandbox_config_init(&cfg);
	cfg.state_dir = state;
	char *bwrap_argv[] = {"bwrap", "--unshare-all", "--ro-bind", "/",         "/", "--proc",
	                      "/proc", "--dev",         "/dev",      "/bin/true", NULL};
	char *true_argv[] = {"/bin/true", NULL};

	/* warm-up: first sandbox, page cache, seccomp compile */
	sb_sandbox *sb = NULL;
	die(sb_sandbox_create(&cfg, "warm", NULL, &sb), "create");
	for (int i = 0; i < 20; i++)
		exec_true(sb);
	sbb_spawn_wait(bwrap_argv);

	double create[CREATES], bare_bwrap[CREATES];
	for (int i = 0; i < CREATES; i++) {
		/* interleaved, so that load from elsewhere hits both alike */
		char id[32];
		snprintf(id, sizeof id, "c%d", i);
		sb_sandbox *c = NULL;
		double t0 = sbb_now();
		die(sb_sandbox_create(&cfg, id, NULL, &c), "create");
		create[i] = sbb_now() - t0;
		die(sb_sandbox_destroy(c), "destroy");
		bare_bwrap[i] = sbb_spawn_wait(bwrap_argv);
	}
	/* all three interleaved, so that load from elsewhere hits them alike */
	double ex[EXECS], sp[EXECS], fresh[BWRAPS];
	size_t nfresh = 0;
	for (int i = 0; i < EXECS; i++) {
		ex[i] = exec_true(sb);
		sp[i] = sbb_spawn_wait(true_argv);
		if (i % (EXECS / BWRAPS) == 0 && nfresh < BWRAPS)
			fresh[nfresh++] = sbb_spawn_wait(bwrap_argv);
	}
	double mc = sbb_median(create, CREATES), mb = sbb_median(bare_bwrap, CREATES);
	double me = sbb_median(ex, EXECS), ms = sbb_median(sp, EXECS);
	double mf = sbb_median(fresh, nfresh);
	sbb_row_ms(
	    "sandbox: lease create (ready for exec) vs bare bwrap /bin/true (target <= 1.3x)", mc,
	    mb, NULL);
	sbb_row_ms("sandbox: exec `true` on a warm lease vs posix_spawn+waitpid (target <= 2x)", me,
	           ms, NULL);
	char o[64], b[64], r[64];
	snprintf(o, sizeof o, "%.3f ms", me * 1e3);
	snprintf(b, sizeof b, "%.3f ms (fresh bwrap per command)", mf * 1e3);
	snprintf(r, sizeof r, "%.1fx faster", mf / me);
	sbb_row("sandbox: exec `true` on a warm lease vs a fresh bwrap per command (target >= 4x "
	        "faster)",
	        o, b, r);
	die(sb_sandbox_destroy(sb), "destroy");
	sb_err_free(sb_fs_rm_rf(state));
	return 0;
}
