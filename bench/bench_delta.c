/* Incremental restore (#15): a repeat run on the same remote directory, 5,000 files / 100 MiB,
 * the command having changed 1 % of the files (same sizes, new bytes). The restore by manifest
 * (SANDBAR_SYNC=incremental) against the full restore (SANDBAR_SYNC=full) in the same run,
 * through a command-prefix runner (`sh -c`, the `--via cmd:` path). The incremental run is a
 * repeat run: an untimed staging first leaves the remote holding the workspace, so prepare sends
 * only what differs (nothing). Rows: the restore's wall time, the whole run's overhead (prepare
 * + restore) against the full path with a fresh remote, the prepare alone, and the bytes moved
 * against the changed bytes plus the manifest. Medians of RUNS.
 */
#include "benchutil.h"

#include <sandbar/runner.h>
#include <sandbar/runtime.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NFILES 5000
#define NLARGE 50
#define TOTAL_BYTES (100u << 20)
#define RUNS 5
#define CHANGE_EVERY 100 /* 1 % */

static void die_err(sb_err *err, const char *what)
{
	if (err) {
		fprintf(stderr, "bench_delta: %s: %s\n", what, err->msg);
		exit(1);
	}
}

static void sh(const char *cmd)
{
	if (system(cmd) != 0) {
		fprintf(stderr, "bench_delta: command failed: %s\n", cmd);
		exit(1);
	}
}

static char *sh_out(const char *cmd)
{
	FILE *f = popen(cmd, "r");
	if (!f)
		exit(1);
	char buf[256] = "";
	if (!fgets(buf, sizeof buf, f))
		buf[0] = '\0';
	pclose(f);
	return sb_xstrdup(buf);
}

typedef struct sample {
	double prepare, restore;
	uint64_t moved;
} sample;

static sample one_run(sb_runner *r, const char *root, const char *src, bool incremental,
                      uint64_t *changed_bytes)
{
	char *local = sb_strfmt("%s/local", root), *remote = sb_strfmt("%s/remote", root);
	char *cmd = sb_strfmt("rm -rf '%s' '%s' && cp -a '%s' '%s'", local, remote, src, local);
	sh(cmd);
	free(cmd);
	setenv("SANDBAR_SYNC", incremental ? "incremental" : "full", 1);
	sb_runtime_prepare_opts o = {
	    .runner = r,
	    .spec = {.remote_cwd = remote},
	    .adapter_key = "bench",
	    .workspace_local_dir = local,
	};
	sample s;
	sb_runtime *rt = NULL;
	char *cache = sb_strfmt("%s/hash-cache", root);
	/* A file is cached only once it is a second old (hash_cache.c): a repeat run comes at
	 * least a command later, so the fresh copy is given that second, untimed, in both modes
	 * (the same page-cache and writeback state for both). */
	sleep(1);
	if (incremental) {
		/* a repeat run, as `sandbar run` makes it: the remote already holds an earlier
		 * staging of this workspace, and the local hashes of that staging are in the hash
		 * cache */
		unlink(cache);
		o.hash_cache_file = cache;
		die_err(sb_runtime_prepare(&o, &rt), "seeding prepare");
		sb_runtime_free(rt);
		rt = NULL;
	}
	double t0 = sbb_now();
	die_err(sb_runtime_prepare(&o, &rt), "prepare");
	s.prepare = sbb_now() - t0;
	/* the command: every 100th file gets 64 new bytes at its start, same size */
	cmd = sb_strfmt("cd '%s' && i=0; for f in $(find . -name '*.dat' | sort); do "
	                "if [ $((i %% %d)) -eq 0 ]; then head -c 64 /dev/urandom | "
	                "dd of=\"$f\" conv=notrunc status=none; fi; i=$((i+1)); done",
	                remote, CHANGE_EVERY);
	sh(cmd);
	free(cmd);
	cmd = sb_strfmt("cd '%s' && i=0; t=0; for f in $(find . -name '*.dat' | sort); do "
	                "if [ $((i %% %d)) -eq 0 ]; then t=$((t + $(stat -c %%s \"$f\"))); fi; "
	                "i=$((i+1)); done; echo $t",
	                remote, CHANGE_EVERY);
	char *t = sh_out(cmd);
	*changed_bytes = strtoull(t, NULL, 10);
	free(t);
	free(cmd);
	sb_restore_report rep;
	sb_restore_report_init(&rep);
	t0 = sbb_now();
	die_err(sb_runtime_restore(rt, NULL, &rep), "restore");
	s.restore = sbb_now() - t0;
	s.moved = rep.bytes_moved;
	if (rep.n_changed != NFILES / CHANGE_EVERY) {
		fprintf(stderr, "bench_delta: restore changed %zu files, expected %d\n",
		        rep.n_changed, NFILES / CHANGE_EVERY);
		exit(1);
	}
	sb_restore_report_deinit(&rep);
	sb_runtime_free(rt);
	free(cache);
	free(local);
	free(remote);
	return s;
}

/* The listing's size: what `find -printf` prints for the tree plus one sha256sum line for each
 * changed file (the far side hashes the files written after staging). */
static uint64_t manifest_bytes(const char *src)
{
	char *cmd = sb_strfmt("cd '%s' && find . -mindepth 1 -printf 'E %%y %%m %%s %%T@ "
	                      "%%P\\0%%l\\0' | wc -c",
	                      src);
	char *n = sh_out(cmd);
	uint64_t listing = strtoull(n, NULL, 10);
	free(n);
	free(cmd);
	return listing + (uint64_t)(NFILES / CHANGE_EVERY) * (64 + 4 + 30) + 16;
}

int main(void)
{
	char *root = NULL;
	die_err(sb_fs_mkdtemp("sandbar-bench-delta", &root), "mkdtemp");
	char *src = sb_strfmt("%s/src", root);
	die_err(sbb_make_tree(src, NFILES, NLARGE, TOTAL_BYTES), "making the tree");
	/* every mtime an hour old: a repository the user did not just write */
	char *old = sb_strfmt("find '%s' -exec touch -d '1 hour ago' {} +", src);
	sh(old);
	free(old);
	char *prefix[] = {(char *)"sh", (char *)"-c", NULL};
	sb_prefix_runner_opts po = {.prefix = prefix, .prefix_is_shell = true};
	sb_runner *runner = NULL;
	die_err(sb_prefix_runner_new(&po, &runner), "runner");
	double full_restore[RUNS], inc_restore[RUNS], full_run[RUNS], inc_run[RUNS];
	double full_prep[RUNS], inc_prep[RUNS];
	double moved[RUNS];
	uint64_t changed = 0;
	for (int i = 0; i < RUNS; i++) {
		sample f = one_run(runner, root, src, false, &changed);
		sample d = one_run(runner, root, src, true, &changed);
		full_restore[i] = f.restore;
		inc_restore[i] = d.restore;
		full_run[i] = f.prepare + f.restore;
		inc_run[i] = d.prepare + d.restore;
		full_prep[i] = f.prepare;
		inc_prep[i] = d.prepare;
		moved[i] = (double)d.moved;
	}
	uint64_t man = manifest_bytes(src);
	printf("# bench_delta: %d files, %u MiB, %d%% changed (%llu bytes), %d runs, medians; "
	       "temp dirs under %s\n",
	       NFILES, TOTAL_BYTES >> 20, 100 / CHANGE_EVERY, (unsigned long long)changed, RUNS,
	       root);
	sbb_row_ms("repeat restore, incremental vs full (1% changed)",
	           sbb_median(inc_restore, RUNS), sbb_median(full_restore, RUNS), "full restore");
	sbb_row_ms("repeat prepare into the earlier staging, incremental vs full",
	           sbb_median(inc_prep, RUNS), sbb_median(full_prep, RUNS), "full prepare");
	sbb_row_ms("repeat run overhead (prepare + restore), incremental",
	           sbb_median(inc_run, RUNS), sbb_median(full_run, RUNS), "full path");
	double m = sbb_median(moved, RUNS), base = (double)(changed + man);
	char so[64], sbase[96], sr[32];
	snprintf(so, sizeof so, "%.0f KiB", m / 1024.0);
	snprintf(sbase, sizeof sbase, "%.0f KiB (changed + manifest)", base / 1024.0);
	snprintf(sr, sizeof sr, "%.2fx", m / base);
	sbb_row("bytes moved by the incremental restore", so, sbase, sr);
	sb_runner_free(runner);
	die_err(sb_fs_rm_rf(root), "cleanup");
	free(root);
	free(src);
	return 0;
}
