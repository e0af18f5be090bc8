/* Tar throughput: sb_tar_create piped into sb_tar_extract (two threads, like a local sync)
 * against `tar -cf - | tar -xf -` on the same tree of 5,000 files / 100 MiB. Rows give MiB/s
 * and the ratio ours/tar (higher is better; the runtime needs >= 0.7). */
#include "benchutil.h"

#include <sandbar/base.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NFILES 5000
#define TOTAL_BYTES (100u << 20)
#define RUNS 5

static void die_err(sb_err *err)
{
	if (err) {
		fprintf(stderr, "bench_tar: %s\n", err->msg);
		exit(1);
	}
}

/* 5,000 files over 50 directories, sizes spread around the mean (a few large, many small). */
static void make_tree(const char *src)
{
	size_t mean = TOTAL_BYTES / NFILES;
	char *buf = sb_xmalloc(mean * 8);
	for (size_t i = 0; i < mean * 8; i++)
		buf[i] = (char)(i * 131 + (i >> 9));
	size_t written = 0;
	for (int i = 0; i < NFILES; i++) {
		size_t size = i % 100 == 0 ? mean * 7 : (size_t)(i % 7) * mean / 4 + 64;
		if (i == NFILES - 1)
			size = written < TOTAL_BYTES ? TOTAL_BYTES - written : 0;
		if (size > mean * 8)
			size = mean * 8;
		char *path = sb_strfmt("%s/d%02d/sub%d/file-%04d.dat", src, i % 50, i % 3, i);
		char *slash = strrchr(path, '/');
		*slash = '\0';
		die_err(sb_fs_mkdir_p(path, 0755));
		*slash = '/';
		die_err(sb_fs_write_atomic(path, buf, size, 0644));
		written += size;
		free(path);
	}
	free(buf);
}

struct extract_job {
	int fd;
	const char *dst;
	sb_err *err;
};

static void *extract_thread(void *ud)
{
	struct extract_job *j = ud;
	j->err = sb_tar_extract(j->fd, j->dst, NULL);
	close(j->fd);
	return NULL;
}

static double run_ours(const char *src, const char *dst)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		exit(1);
	double t0 = sbb_now();
	struct extract_job job = {p[0], dst, NULL};
	pthread_t th;
	pthread_create(&th, NULL, extract_thread, &job);
	die_err(sb_tar_create(src, NULL, false, p[1], NULL));
	close(p[1]);
	pthread_join(th, NULL);
	die_err(job.err);
	return sbb_now() - t0;
}

static double run_tar(const char *src, const char *dst)
{
	die_err(sb_fs_mkdir_p(dst, 0755));
	char *cmd = sb_strfmt("tar -cf - -C '%s' . | tar -xf - -C '%s'", src, dst);
	double t0 = sbb_now();
	if (system(cmd) != 0) {
		fprintf(stderr, "bench_tar: %s failed\n", cmd);
		exit(1);
	}
	double t = sbb_now() - t0;
	free(cmd);
	return t;
}

int main(void)
{
	char *top = NULL;
	die_err(sb_fs_mkdtemp("sb-bench-tar", &top));
	char *src = sb_strfmt("%s/src", top), *dst = sb_strfmt("%s/dst", top);
	make_tree(src);
	double ours[RUNS], tar[RUNS];
	for (int i = 0; i < RUNS; i++) {
		/* alternate, so neither side always runs on a warmer cache */
		ours[i] = run_ours(src, dst);
		die_err(sb_fs_rm_rf(dst));
		tar[i] = run_tar(src, dst);
		die_err(sb_fs_rm_rf(dst));
	}
	double mib = (double)TOTAL_BYTES / (1 << 20);
	double o = mib / sbb_median(ours, RUNS), t = mib / sbb_median(tar, RUNS);
	char so[32], st[32], sr[32];
	snprintf(so, sizeof so, "%.0f MiB/s", o);
	snprintf(st, sizeof st, "%.0f MiB/s", t);
	snprintf(sr, sizeof sr, "%.2f", o / t);
	sbb_row("tar create|extract pipe, 5000 files / 100 MiB", so, st, sr);
	die_err(sb_fs_rm_rf(top));
	free(src);
	free(dst);
	free(top);
	return 0;
}
