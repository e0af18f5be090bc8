/* Managed-runtime throughput: stage (prepare) and restore a generated tree of 5,000 files /
 * 100 MiB through the local runner, on the command path (sh + tar + base64 + dd) and on the
 * native path (sync_in / sync_out), against `tar -cf - | tar -xf -` between the same kind of
 * directories in the same run. Each direction moves the whole tree into an empty directory:
 * stage from the full local tree into an empty remote dir; restore into an empty local dir from
 * a full remote dir (so every file is added). Rows give medians in MiB/s and ours/tar (higher is
 * better; targets: native >= 0.9, command >= 0.25). The native rows are the full path
 * (SANDBAR_SYNC=full, the figure #15 names); one more row restores the same way with the default
 * incremental path, where the listing and hashing of the far tree come first. Every row is
 * measured twice: in $TMPDIR (a disk, as users have it) and on tmpfs (/dev/shm: CPU only).
 *
 * Nothing is deleted while anything is timed: every destination is a new directory, and all are
 * removed at the end. ext4 without a journal (this kind of VM) skips every inode freed in the
 * last ~30 s when it allocates one (ialloc.c recently_deleted), so a tree removed just before a
 * measurement made the next 5,000 creates scan past 5,000 dead inodes: that, not the copy, was
 * most of the time, and it fell on whichever step followed a removal. For the same reason every
 * timed step starts after sync(2): the write-back of the step before never lands in the next.
 */
#include "benchutil.h"

#include <sandbar/runner.h>
#include <sandbar/runtime.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NFILES 5000
#define NLARGE 50
#define TOTAL_BYTES (100u << 20)
#define RUNS 5

static void die_err(sb_err *err, const char *what)
{
	if (err) {
		fprintf(stderr, "bench_runtime: %s: %s\n", what, err->msg);
		exit(1);
	}
}

static void sh(const char *cmd)
{
	if (system(cmd) != 0) {
		fprintf(stderr, "bench_runtime: command failed: %s\n", cmd);
		exit(1);
	}
}

static void make_tree(const char *src)
{
	die_err(sbb_make_tree(src, NFILES, NLARGE, TOTAL_BYTES), "making the tree");
}

/* A new, empty directory root/name-run; never one that held a tree before (see the top). */
static char *fresh_dir(const char *root, const char *name, int run)
{
	char *d = sb_strfmt("%s/%s-%d", root, name, run);
	die_err(sb_fs_mkdir_p(d, 0755), "mkdir");
	return d;
}

static double run_tar(const char *src, const char *dst)
{
	char *cmd = sb_strfmt("tar -cf - -C '%s' . | tar -xf - -C '%s'", src, dst);
	sync();
	double t0 = sbb_now();
	sh(cmd);
	double t = sbb_now() - t0;
	free(cmd);
	return t;
}

static sb_runtime *prepare(sb_runner *r, bool native, const char *local, const char *remote)
{
	sb_runtime_prepare_opts o = {
	    .runner = r,
	    .spec = {.remote_cwd = remote},
	    .adapter_key = "bench",
	    .workspace_local_dir = local,
	    .force_command_path = !native,
	};
	sb_runtime *rt = NULL;
	die_err(sb_runtime_prepare(&o, &rt), "prepare");
	if (sb_runtime_uses_native(rt) != native) {
		fprintf(stderr, "bench_runtime: wrong transfer path\n");
		exit(1);
	}
	return rt;
}

static double run_stage(sb_runner *r, bool native, const char *src, const char *remote)
{
	sync();
	double t0 = sbb_now();
	sb_runtime *rt = prepare(r, native, src, remote);
	double t = sbb_now() - t0;
	sb_runtime_free(rt);
	return t;
}

/* Restore into an empty local dir from a remote that holds the whole tree (filled untimed). */
static double run_restore(sb_runner *r, bool native, const char *src, const char *local,
                          const char *remote)
{
	sb_runtime *rt = prepare(r, native, local, remote);
	char *fill = sb_strfmt("tar -cf - -C '%s' . | tar -xf - -C '%s'", src, remote);
	sh(fill);
	free(fill);
	sb_restore_report rep;
	sb_restore_report_init(&rep);
	sync();
	double t0 = sbb_now();
	die_err(sb_runtime_restore(rt, NULL, &rep), "restore");
	double t = sbb_now() - t0;
	if (rep.n_added != NFILES) {
		fprintf(stderr, "bench_runtime: restore added %zu files, expected %d\n",
		        rep.n_added, NFILES);
		exit(1);
	}
	sb_restore_report_deinit(&rep);
	sb_runtime_free(rt);
	return t;
}

static void row(const char *figure, double *ours, double *tar)
{
	double mib = (double)TOTAL_BYTES / 1048576.0;
	double o = mib / sbb_median(ours, RUNS), b = mib / sbb_median(tar, RUNS);
	char so[64], sb[64], sr[64];
	snprintf(so, sizeof so, "%.0f MiB/s", o);
	snprintf(sb, sizeof sb, "%.0f MiB/s (tar | tar)", b);
	snprintf(sr, sizeof sr, "%.2fx", o / b);
	sbb_row(figure, so, sb, sr);
}

/* One full set of rows with every tree under a new temp directory below parent ($TMPDIR when
 * NULL); where names the medium in the row labels ("" for the default). */
static void measure(sb_runner *runner, const char *parent, const char *where)
{
	char *root = NULL;
	if (parent)
		setenv("TMPDIR", parent, 1);
	die_err(sb_fs_mkdtemp("sandbar-bench-runtime", &root), "mkdtemp");
	char *src = fresh_dir(root, "src", 0);
	make_tree(src);
	double tar_t[RUNS], stage[2][RUNS], restore[2][RUNS], restore_incr[RUNS];
	for (int i = 0; i < RUNS; i++) {
		char *dst = fresh_dir(root, "tar-dst", i);
		tar_t[i] = run_tar(src, dst);
		free(dst);
		setenv("SANDBAR_SYNC", "full", 1);
		for (int native = 0; native < 2; native++) {
			char *remote = fresh_dir(root, native ? "stage-native" : "stage-cmd", i);
			stage[native][i] = run_stage(runner, native, src, remote);
			free(remote);
			remote =
			    fresh_dir(root, native ? "restore-native-from" : "restore-cmd-from", i);
			char *local =
			    fresh_dir(root, native ? "restore-native-to" : "restore-cmd-to", i);
			restore[native][i] = run_restore(runner, native, src, local, remote);
			free(local);
			free(remote);
		}
		unsetenv("SANDBAR_SYNC");
		char *remote = fresh_dir(root, "restore-incremental-from", i);
		char *local = fresh_dir(root, "restore-incremental-to", i);
		restore_incr[i] = run_restore(runner, true, src, local, remote);
		free(local);
		free(remote);
	}
	printf("# bench_runtime: %d files, %u MiB, %d runs, medians; temp dirs under %s\n", NFILES,
	       TOTAL_BYTES >> 20, RUNS, root);
	const char *names[] = {"runtime stage, command path", "runtime restore, command path",
	                       "runtime stage, native path", "runtime restore, native path",
	                       "runtime restore, native, incremental, every file new"};
	double *series[] = {stage[0], restore[0], stage[1], restore[1], restore_incr};
	for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
		char *label = sb_strfmt("%s (5,000 files / 100 MiB%s)", names[k], where);
		row(label, series[k], tar_t);
		free(label);
	}
	die_err(sb_fs_rm_rf(root), "cleanup");
	free(root);
	free(src);
}

int main(void)
{
	sb_local_runner_opts lo = {.file_transfer = true};
	sb_runner *runner = sb_local_runner_new(&lo);
	if (!runner) {
		fprintf(stderr, "bench_runtime: no local runner\n");
		return 1;
	}
	measure(runner, NULL, "");
	/* The same on tmpfs: no disk, only CPU, so neither side hides behind the disk's rate of
	 * the minute (on this kind of VM it moves several-fold within an hour). */
	struct stat st;
	if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode))
		measure(runner, "/dev/shm", ", tmpfs");
	else
		printf("# bench_runtime: no /dev/shm: the tmpfs rows were not measured\n");
	sb_runner_free(runner);
	return 0;
}
