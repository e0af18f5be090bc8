/* Benchmark (#15): a repeat `sandbar run` on a reused embedded sandbox, 5,000 files / 100 MiB,
 * the command changing 1 % of the files (same sizes, new bytes), against the same run on a fresh
 * lease with the whole-tree path (SANDBAR_SYNC=full), measured interleaved in the same run. The
 * overhead is the wall time minus the command's own (`--json` phases.exec_ms). Rows: the
 * overhead ratio (target <= 0.1x), and the bytes moved both ways against the changed bytes.
 * The real binary, a private state directory. Medians of RUNS. */
#include "benchutil.h"

#include <sandbar/base.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NFILES 5000
#define NLARGE 50
#define TOTAL_BYTES (100u << 20)
#define RUNS 5
#define CHANGE_EVERY 100 /* 1 % */

static void sh(const char *cmd)
{
	if (system(cmd) != 0) {
		fprintf(stderr, "bench_repeat: command failed: %s\n", cmd);
		exit(1);
	}
}

static long long field(const char *json, const char *name)
{
	char key[64];
	snprintf(key, sizeof key, "\"%s\":", name);
	const char *p = strstr(json, key);
	if (!p) {
		fprintf(stderr, "bench_repeat: no %s in the summary: %s\n", name, json);
		exit(1);
	}
	return atoll(p + strlen(key));
}

typedef struct sample {
	double overhead; /* s */
	double moved;    /* bytes up + down */
	double up;
} sample;

/* One `sandbar run --json` (mode: the SANDBAR_SYNC value; reuse: --reuse key or NULL). */
static sample one_run(const char *sandbar, const char *ws, const char *mode, const char *reuse)
{
	/* the command: every 100th .dat file gets 64 new bytes at its start, same size */
	char *change = sb_strfmt(
	    "i=0; for f in $(find . -name \"*.dat\" | sort); do if [ $((i %% %d)) -eq 0 ]; then "
	    "head -c 64 /dev/urandom | dd of=\"$f\" conv=notrunc status=none; fi; i=$((i+1)); "
	    "done",
	    CHANGE_EVERY);
	char *q = sb_shell_quoted(change);
	char *cmd =
	    sb_strfmt("SANDBAR_SYNC=%s '%s' run --json -w '%s' %s%s -- sh -c %s 2>/dev/null", mode,
	              sandbar, ws, reuse ? "--reuse " : "", reuse ? reuse : "", q);
	double t0 = sbb_now();
	FILE *f = popen(cmd, "r");
	static char out[65536];
	size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
	int rc = f ? pclose(f) : -1;
	double wall = sbb_now() - t0;
	out[n] = '\0';
	if (rc != 0) {
		fprintf(stderr, "bench_repeat: run failed (%d): %s\n", rc, out);
		exit(1);
	}
	sample s = {.overhead = wall - (double)field(out, "exec_ms") / 1000.0,
	            .moved = (double)(field(out, "bytes_up") + field(out, "bytes_down")),
	            .up = (double)field(out, "bytes_up")};
	free(cmd);
	free(q);
	free(change);
	return s;
}

int main(void)
{
	char *root = sbb_tmpdir("sandbar-bench-repeat", 0711);
	char state[512], ws[512], cmd[1400];
	snprintf(state, sizeof state, "%s/state", root);
	snprintf(ws, sizeof ws, "%s/ws", root);
	sb_err *err = sbb_make_tree(ws, NFILES, NLARGE, TOTAL_BYTES);
	if (err) {
		fprintf(stderr, "bench_repeat: %s\n", err->msg);
		return 1;
	}
	/* every mtime an hour old: a repository the user did not just write */
	snprintf(cmd, sizeof cmd, "find '%s' -exec touch -d '1 hour ago' {} +", ws);
	sh(cmd);
	setenv("SANDBAR_STATE_DIR", state, 1);
	setenv("SANDBAR_CONFIG", "/nonexistent", 1);
	const char *sandbar = SB_BENCH_BUILD_DIR "/sandbar";
	/* warm-up: the reused lease is made and staged whole here, the hash cache filled */
	one_run(sandbar, ws, "auto", "bench");
	one_run(sandbar, ws, "full", NULL);
	double rep[RUNS], fresh[RUNS], moved[RUNS], up[RUNS];
	for (int i = 0; i < RUNS; i++) {
		sample r = one_run(sandbar, ws, "auto", "bench");
		sample f = one_run(sandbar, ws, "full", NULL);
		rep[i] = r.overhead;
		fresh[i] = f.overhead;
		moved[i] = r.moved;
		up[i] = r.up;
	}
	/* what the command changed each time: NFILES / CHANGE_EVERY files, their whole size */
	snprintf(cmd, sizeof cmd,
	         "cd '%s' && i=0; t=0; for f in $(find . -name '*.dat' | sort); do "
	         "if [ $((i %% %d)) -eq 0 ]; then t=$((t + $(stat -c %%s \"$f\"))); fi; "
	         "i=$((i+1)); done; echo $t",
	         ws, CHANGE_EVERY);
	FILE *f = popen(cmd, "r");
	char buf[64] = "0";
	if (!f || !fgets(buf, sizeof buf, f))
		return 1;
	pclose(f);
	double changed = atof(buf);
	printf("# bench_repeat: %d files, %u MiB, %d%% changed per run (%.0f bytes), %d runs, "
	       "medians; %s\n",
	       NFILES, TOTAL_BYTES >> 20, 100 / CHANGE_EVERY, changed, RUNS, root);
	sbb_row_ms(
	    "repeat `sandbar run --reuse`, overhead (wall - command), vs a fresh lease, full "
	    "path (target <= 0.1x)",
	    sbb_median(rep, RUNS), sbb_median(fresh, RUNS), "fresh lease, full");
	double m = sbb_median(moved, RUNS);
	char so[96], sb[64], sr[32];
	snprintf(so, sizeof so, "%.0f KiB (%.0f KiB up)", m / 1024.0,
	         sbb_median(up, RUNS) / 1024.0);
	/* the changed files come back, and the next staging sends the ones the interleaved fresh
	 * run changed meanwhile (in the reused lease they are stale): changed bytes both ways */
	snprintf(sb, sizeof sb, "%.0f KiB (changed, both ways)", 2 * changed / 1024.0);
	snprintf(sr, sizeof sr, "%.2fx", m / (2 * changed));
	sbb_row("bytes moved by that repeat run", so, sb, sr);
	snprintf(cmd, sizeof cmd, "'%s' lease destroy reuse-bench >/dev/null; rm -rf '%s'", sandbar,
	         root);
	return system(cmd) == 0 ? 0 : 1;
}
