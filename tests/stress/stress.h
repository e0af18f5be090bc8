/* Shared by the stress tests (header-only: each test_<name>.c is its own executable): the
 * checks that a scenario left nothing behind (lease directories, cgroups, sandbox processes,
 * zombies), reading /metrics samples, and the scenario sizes that `make soak` raises. */
#ifndef SB_STRESS_H
#define SB_STRESS_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srvtest.h"

/* A scenario size: the environment variable env when set to a positive number (`make soak`),
 * else dflt (quick, for `make test`). */
static inline int sbt_stress_count(const char *env, int dflt)
{
	const char *e = getenv(env);
	int n = e ? atoi(e) : 0;
	return n > 0 ? n : dflt;
}

/* Entries of <state>/leases that are leases (the hidden spare skeletons are not). */
static inline int leftover_lease_dirs(const sbt_daemon *d)
{
	char *p = sb_strfmt("%s/leases", d->state_dir);
	DIR *dir = opendir(p);
	free(p);
	int n = 0;
	for (struct dirent *de; dir && (de = readdir(dir));)
		if (de->d_name[0] != '.')
			n++;
	if (dir)
		closedir(dir);
	return n;
}

static inline int leftover_cgroups(char **ids, size_t n)
{
	static const char *ctls[] = {"memory", "pids", "cpu", "freezer", "unified", ""};
	int found = 0;
	for (size_t k = 0; k < sizeof ctls / sizeof ctls[0]; k++) {
		char *base =
		    sb_strfmt("/sys/fs/cgroup/%s%ssandbar", ctls[k], ctls[k][0] ? "/" : "");
		DIR *dir = opendir(base);
		for (struct dirent *de; dir && (de = readdir(dir));)
			for (size_t i = 0; i < n; i++)
				if (sb_str_has_prefix(de->d_name, ids[i]) &&
				    de->d_name[strlen(ids[i])] == '-')
					found++;
		if (dir)
			closedir(dir);
		free(base);
	}
	return found;
}

/* Processes that hold something of the state directory open (sandbar-init keeps its log and
 * spool there), and zombie children of the daemon (sandbox launchers not reaped). */
static inline void count_processes(const sbt_daemon *d, int *holders, int *zombies)
{
	*holders = *zombies = 0;
	DIR *proc = opendir("/proc");
	for (struct dirent *de; proc && (de = readdir(proc));) {
		int pid = atoi(de->d_name);
		if (pid <= 0 || pid == d->pid)
			continue;
		char *stat = sb_strfmt("/proc/%d/stat", pid);
		FILE *f = fopen(stat, "r");
		free(stat);
		int ppid = 0;
		char state = 0;
		if (f) {
			if (fscanf(f, "%*d (%*[^)]) %c %d", &state, &ppid) != 2)
				state = 0;
			fclose(f);
		}
		if (state == 'Z' && ppid == d->pid)
			(*zombies)++;
		char *fds = sb_strfmt("/proc/%d/fd", pid);
		DIR *fd = opendir(fds);
		for (struct dirent *e; fd && (e = readdir(fd));) {
			char *l = sb_strfmt("%s/%s", fds, e->d_name);
			char target[4096];
			ssize_t len = readlink(l, target, sizeof target - 1);
			free(l);
			if (len > 0) {
				target[len] = '\0';
				if (sb_str_has_prefix(target, d->state_dir)) {
					(*holders)++;
					break;
				}
			}
		}
		if (fd)
			closedir(fd);
		free(fds);
	}
	if (proc)
		closedir(proc);
}

/* A sample's value from the Prometheus text; -1 when absent. */
static inline double metric(const char *text, const char *sample)
{
	char *key = sb_strfmt("\n%s ", sample);
	const char *p = strstr(text, key);
	double v = p ? strtod(p + strlen(key), NULL) : -1;
	free(key);
	return v;
}

/* GET /metrics into a malloc'd string. */
static inline char *metrics_text(sbt_daemon *d)
{
	sbt_resp r;
	sbt_req rq = {.method = "GET", .target = "/metrics"};
	assert_int_equal(sbt_http(d, &rq, &r), 200);
	char *m = sb_xstrdup(sb_buf_cstr(&r.body));
	sbt_resp_deinit(&r);
	return m;
}

/* Assert that sample has exactly the value want, saying which one differs. */
#define assert_metric(text, sample, want)                                                          \
	do {                                                                                       \
		double got_ = metric((text), (sample));                                            \
		if (got_ != (double)(want))                                                        \
			print_error("metric %s is %.0f, expected %.0f\n", (sample), got_,          \
			            (double)(want));                                               \
		assert_true(got_ == (double)(want));                                               \
	} while (0)

/* Nothing of the scenario remains: no lease directory, none of the leases' cgroups (ids, n),
 * no process holding the state directory and no zombie child of the daemon (waited for,
 * bounded: the kernel reaps asynchronously). */
static inline void assert_nothing_left(const sbt_daemon *d, char **ids, size_t n)
{
	assert_int_equal(leftover_lease_dirs(d), 0);
	assert_int_equal(leftover_cgroups(ids, n), 0);
	int holders = 0, zombies = 0;
	for (int tries = 0; tries < 250; tries++) {
		count_processes(d, &holders, &zombies);
		if (!holders && !zombies)
			break;
		usleep(20000); /* nothing to wait on for another process's reaping */
	}
	if (holders || zombies)
		print_error("%d processes hold the state directory, %d zombie children\n", holders,
		            zombies);
	assert_int_equal(holders, 0);
	assert_int_equal(zombies, 0);
}

#endif
