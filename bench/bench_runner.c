/* Round trip of `true` through the local runner (process group, three pipes, poll loop, pidfd,
 * output tails) against a bare posix_spawnp + waitpid of the same command, interleaved in one
 * process and run so both see the same machine state. Reports medians and their ratio. */
#include "benchutil.h"

#include <sandbar/runner.h>

#include <stdio.h>
#include <stdlib.h>

#define RUNS 500

static double runner_true(sb_runner *r)
{
	char *const argv[] = {"true", NULL};
	sb_exec_request req = {.argv = argv};
	sb_exec_result res;
	sb_exec_result_init(&res);
	double t0 = sbb_now();
	sb_err *err = sb_runner_execute(r, &req, NULL, NULL, &res);
	double dt = sbb_now() - t0;
	if (err || !sb_exec_result_ok(&res)) {
		fprintf(stderr, "runner true failed: %s\n", err ? err->msg : "bad exit");
		exit(1);
	}
	sb_exec_result_deinit(&res);
	return dt;
}

int main(void)
{
	sb_runner *r = sb_local_runner_new(NULL);
	char *true_argv[] = {"true", NULL};
	static double ours[RUNS], base[RUNS];
	for (int i = 0; i < 20; i++) { /* warm caches and the page cache for `true` */
		runner_true(r);
		sbb_spawn_wait(true_argv);
	}
	for (int i = 0; i < RUNS; i++) {
		/* Alternate which goes first so neither always follows the other. */
		if (i % 2) {
			ours[i] = runner_true(r);
			base[i] = sbb_spawn_wait(true_argv);
		} else {
			base[i] = sbb_spawn_wait(true_argv);
			ours[i] = runner_true(r);
		}
	}
	double mo = sbb_median(ours, RUNS) * 1e6, mb = sbb_median(base, RUNS) * 1e6;
	char o[64], b[64], q[64];
	snprintf(o, sizeof(o), "%.0f us (median of %d)", mo, RUNS);
	snprintf(b, sizeof(b), "%.0f us posix_spawnp+waitpid", mb);
	snprintf(q, sizeof(q), "%.2fx (target <= 1.3x)", mo / mb);
	sbb_row("local runner: `true` round trip", o, b, q);
	sb_runner_free(r);
	return 0;
}
