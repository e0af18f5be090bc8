/* Benchmark helpers (see benchutil.h). */
#include "benchutil.h"

#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
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
