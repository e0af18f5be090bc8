/* Benchmark helpers (see benchutil.h). */
#include "benchutil.h"

#include <sandbar/base.h>

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double sbb_median(double *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double sbb_percentile(double *v, size_t n, double q)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof *v, cmp_double);
	size_t i = (size_t)(q * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

void sbb_row(const char *figure, const char *ours, const char *baseline, const char *ratio)
{
	printf("%s\t%s\t%s\t%s\n", figure, ours, baseline, ratio);
	fflush(stdout);
}

double sbb_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sbb_row_ms(const char *figure, double ours_s, double base_s, const char *base_name)
{
	char o[64], b[128], r[32];
	snprintf(o, sizeof o, "%.3f ms", ours_s * 1e3);
	if (base_name && base_name[0])
		snprintf(b, sizeof b, "%.3f ms (%s)", base_s * 1e3, base_name);
	else
		snprintf(b, sizeof b, "%.3f ms", base_s * 1e3);
	snprintf(r, sizeof r, "%.2fx", ours_s / base_s);
	sbb_row(figure, o, b, r);
}

double sbb_spawn_wait(char *const *argv)
{
	double t0 = sbb_now();
	pid_t pid;
	if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0) {
		perror("posix_spawnp");
		exit(1);
	}
	int ws;
	if (waitpid(pid, &ws, 0) != pid || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
		fprintf(stderr, "baseline %s failed\n", argv[0]);
		exit(1);
	}
	return sbb_now() - t0;
}

sb_err *sbb_make_tree(const char *src, int nfiles, int nlarge, size_t total)
{
	size_t *sizes = sb_xcalloc((size_t)nfiles, sizeof *sizes), small_sum = 0;
	for (int i = 0; i < nfiles - nlarge; i++) {
		sizes[i] = (size_t)(i % 7 + 1) * 2048 + (size_t)(i % 13);
		small_sum += sizes[i];
	}
	size_t large = (total - small_sum) / (size_t)nlarge;
	for (int i = nfiles - nlarge; i < nfiles; i++)
		sizes[i] = large;
	sizes[nfiles - 1] += total - small_sum - large * (size_t)nlarge;
	/* files start at different offsets of one random buffer, so no two are alike */
	size_t buflen = sizes[nfiles - 1] + 4096;
	char *buf = sb_xmalloc(buflen);
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < buflen; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (char)x;
	}
	for (int i = 0; i < nfiles; i++) {
		char *path = sb_strfmt("%s/d%02d/sub%d/file-%04d.dat", src, i % 50, i % 3, i);
		char *slash = strrchr(path, '/');
		*slash = '\0';
		sb_err *err = sb_fs_mkdir_p(path, 0755);
		*slash = '/';
		if (!err)
			err = sb_fs_write_atomic(path, buf + (i % 4096), sizes[i], 0644);
		free(path);
		if (err) {
			free(buf);
			free(sizes);
			return err;
		}
	}
	free(buf);
	free(sizes);
	return NULL;
}

char *sbb_tmpdir(const char *prefix, mode_t mode)
{
	char *dir = NULL;
	sb_err *err = sb_fs_mkdtemp(prefix, &dir);
	if (err || chmod(dir, mode) < 0) {
		fprintf(stderr, "%s: making a temp directory: %s\n", prefix,
		        err ? err->msg : strerror(errno));
		exit(1);
	}
	return dir;
}
