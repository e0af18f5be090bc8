/* Leases acquired, used and destroyed by many clients at once against one real daemon on its
 * unix socket: THREADS threads x CYCLES cycles of acquire -> JSON exec of `seq 1 1000` ->
 * DELETE. Every call must succeed (today's bug: a spare lease directory built by two threads
 * under one temporary name was handed out half-made, 404 on acquire), nothing may be left
 * behind (lease directories, cgroups, sandbox processes, zombies), and /metrics must say exactly
 * what happened. SANDBAR_STRESS_CYCLES raises the count (`make soak`). */
#include "srvtest.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define THREADS 8
#define CYCLES_DEFAULT 20

typedef struct worker {
	sbt_daemon *d;
	int idx, cycles;
	int done, failures;
	char first_error[600];
	char **lease_ids; /* every lease this worker made (NULL-terminated) */
	size_t nleases;
} worker;

static const char *expected_seq(void)
{
	static char text[8192];
	if (!text[0]) {
		size_t n = 0;
		for (int i = 1; i <= 1000; i++)
			n += (size_t)snprintf(text + n, sizeof text - n, "%d\n", i);
	}
	return text;
}

static void failed(worker *w, const char *what, long status, json_t *j)
{
	w->failures++;
	if (w->first_error[0])
		return;
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	snprintf(w->first_error, sizeof w->first_error, "%s: HTTP %ld %s", what, status,
	         s ? s : "(no JSON)");
	free(s);
}

static void *work(void *ud)
{
	worker *w = ud;
	for (int c = 0; c < w->cycles; c++) {
		char *body =
		    sb_strfmt("{\"acquisition_id\":\"churn-%d-%d\",\"ttl_s\":600}", w->idx, c);
		long st = 0;
		json_t *j = sbt_call(w->d, "POST", "/v1/leases", body, &st);
		free(body);
		const char *id = sbt_jstr(j, "id");
		if (st != 200 || !id) {
			failed(w, "acquire", st, j);
			json_decref(j);
			continue;
		}
		char *lease = sb_xstrdup(id);
		json_decref(j);
		sb_strv_push(&w->lease_ids, lease);
		w->nleases++;

		char *t = sb_strfmt("/v1/leases/%s/exec", lease);
		j = sbt_call(w->d, "POST", t, "{\"argv\":[\"seq\",\"1\",\"1000\"]}", &st);
		free(t);
		const char *out = sbt_jstr(j, "stdout");
		if (st != 200 || !out || strcmp(out, expected_seq()) != 0)
			failed(w, "exec", st, j);
		json_decref(j);

		t = sb_strfmt("/v1/leases/%s", lease);
		j = sbt_call(w->d, "DELETE", t, NULL, &st);
		free(t);
		if (st != 200 ||
		    strcmp(sbt_jstr(j, "state") ? sbt_jstr(j, "state") : "", "destroyed") != 0)
			failed(w, "destroy", st, j);
		else
			w->done++;
		json_decref(j);
		free(lease);
	}
	return NULL;
}

static int cycles_per_thread(void)
{
	const char *e = getenv("SANDBAR_STRESS_CYCLES");
	int n = e ? atoi(e) : 0;
	return n > 0 ? n : CYCLES_DEFAULT;
}

/* Entries of <state>/leases that are leases (the hidden spare skeletons are not). */
static int leftover_lease_dirs(const sbt_daemon *d)
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

static int leftover_cgroups(char **ids, size_t n)
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
static void count_processes(const sbt_daemon *d, int *holders, int *zombies)
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
static double metric(const char *text, const char *sample)
{
	char *key = sb_strfmt("\n%s ", sample);
	const char *p = strstr(text, key);
	double v = p ? strtod(p + strlen(key), NULL) : -1;
	free(key);
	return v;
}

static void churn_never_fails_and_leaves_nothing(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_ALL);
	sbt_daemon d;
	sbt_daemon_start(&d, NULL);
	assert_true(sbt_sandbox_ok(&d));
	int cycles = cycles_per_thread();
	worker w[THREADS];
	pthread_t th[THREADS];
	memset(w, 0, sizeof w);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (worker){.d = &d, .idx = i, .cycles = cycles};
		assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
	}
	int failures = 0, done = 0;
	char **ids = NULL;
	size_t nids = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		failures += w[i].failures;
		done += w[i].done;
		if (w[i].first_error[0])
			print_error("thread %d: %d failures, first: %s\n", i, w[i].failures,
			            w[i].first_error);
		for (size_t k = 0; k < w[i].nleases; k++)
			sb_strv_push(&ids, w[i].lease_ids[k]);
		nids += w[i].nleases;
		sb_strv_free(w[i].lease_ids);
	}
	assert_int_equal(failures, 0);
	assert_int_equal(done, THREADS * cycles);

	/* Nothing left: lease directories at once; processes once the kernel has reaped
	 * them (a destroy waits for the sandbox to die, so this is quick). */
	assert_int_equal(leftover_lease_dirs(&d), 0);
	assert_int_equal(leftover_cgroups(ids, nids), 0);
	int holders = 0, zombies = 0;
	for (int tries = 0; tries < 100; tries++) {
		count_processes(&d, &holders, &zombies);
		if (tries == 0)
			print_message(
			    "right after the loop: %d processes hold the state directory, "
			    "%d zombie children of the daemon\n",
			    holders, zombies);
		if (!holders && !zombies)
			break;
		usleep(20000); /* nothing to wait on for another process's reaping */
	}
	assert_int_equal(holders, 0);
	assert_int_equal(zombies, 0);

	sbt_resp r;
	sbt_req rq = {.method = "GET", .target = "/metrics"};
	assert_int_equal(sbt_http(&d, &rq, &r), 200);
	const char *m = sb_buf_cstr(&r.body);
	assert_true(metric(m, "sandbar_execs_running") == 0);
	assert_true(metric(m, "sandbar_execs_total") == THREADS * cycles);
	assert_true(metric(m, "sandbar_leases{state=\"active\"}") == 0);
	assert_true(metric(m, "sandbar_bytes_streamed_total{kind=\"json\"}") >=
	            (double)THREADS * cycles * (double)strlen(expected_seq()));
	assert_true(metric(m, "sandbar_acquire_failures_total{reason=\"none\"}") == 0);
	assert_true(metric(m, "sandbar_acquire_duration_seconds_count") == THREADS * cycles);
	sbt_resp_deinit(&r);
	sb_strv_free(ids);
	sbt_daemon_stop(&d);
	curl_global_cleanup();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(churn_never_fails_and_leaves_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
