/* Soak: a sandbox whose supervisor is killed is reported lost within a second, never a hang
 * (#18). Each trial acquires a lease from a real daemon, starts a JSON exec of `sleep 60` in a
 * thread, waits until sleep runs, SIGKILLs the lease's sandbar-init and times how long the
 * waiting exec takes to answer. A 200 with exit code 0, an answer after 1 s, or a later exec
 * that does not answer 409 sandbox_state_lost is a failure. SANDBAR_SOAK_TRIALS sets the count
 * (default 20). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchdaemon.h"
#include "benchutil.h"

#define ANSWER_WITHIN_S 1.0

typedef struct waiter {
	const sbb_daemon *d;
	char target[200];
	long status;
	sb_buf out;
	double answered; /* sbb_now() when the reply arrived */
} waiter;

static void *wait_exec(void *arg)
{
	waiter *w = arg;
	CURL *c = curl_easy_init();
	w->status =
	    sbb_daemon_call(w->d, c, "POST", w->target, "{\"argv\":[\"sleep\",\"60\"]}", &w->out);
	w->answered = sbb_now();
	curl_easy_cleanup(c);
	return NULL;
}

static int init_pid(const sbb_daemon *d, const char *lease)
{
	char path[300];
	snprintf(path, sizeof path, "%s/leases/%s/lease.json", d->state, lease);
	sb_buf b = SB_BUF_INIT;
	sb_err *err = sb_read_file(path, 1u << 20, &b);
	const char *p = err ? NULL : strstr(sb_buf_cstr(&b), "\"init_pid\":");
	int pid = p ? atoi(p + strlen("\"init_pid\":")) : -1;
	sb_err_free(err);
	sb_buf_deinit(&b);
	return pid;
}

static bool sleep_running(const sbb_daemon *d, CURL *c, const char *lease, sb_buf *out)
{
	char target[200];
	snprintf(target, sizeof target, "/v1/leases/%s/processes", lease);
	return sbb_daemon_call(d, c, "GET", target, NULL, out) == 200 &&
	       strstr(sb_buf_cstr(out), "sleep") != NULL;
}

/* One trial: true when everything held; *answer_s is the time from the kill to the answer. */
static bool trial(const sbb_daemon *d, CURL *c, int i, double *answer_s)
{
	sb_buf out = SB_BUF_INIT;
	char body[160], lease[96];
	snprintf(body, sizeof body, "{\"acquisition_id\":\"soak-initkill-%d\"}", i);
	bool ok = false;
	*answer_s = -1;
	if (sbb_daemon_call(d, c, "POST", "/v1/leases", body, &out) != 200 ||
	    !sbb_json_str(sb_buf_cstr(&out), "id", lease, sizeof lease)[0]) {
		fprintf(stderr, "# trial %d: acquire failed: %.200s\n", i, sb_buf_cstr(&out));
		sb_buf_deinit(&out);
		return false;
	}
	waiter w = {.d = d};
	snprintf(w.target, sizeof w.target, "/v1/leases/%s/exec", lease);
	pthread_t t;
	pthread_create(&t, NULL, wait_exec, &w);
	bool running = false;
	for (int k = 0; k < 500 && !running; k++) {
		running = sleep_running(d, c, lease, &out);
		if (!running)
			sb_sleep_ms(10); /* poll: nothing announces that a command started */
	}
	int pid = init_pid(d, lease);
	double killed = sbb_now();
	if (!running || pid <= 1 || kill(pid, SIGKILL) != 0) {
		fprintf(stderr, "# trial %d: sleep running %d, init pid %d\n", i, running, pid);
		/* the lease is destroyed below, which ends the waiting exec */
	} else {
		ok = true;
	}
	char target[200];
	if (!ok) {
		snprintf(target, sizeof target, "/v1/leases/%s", lease);
		sbb_daemon_call(d, c, "DELETE", target, NULL, &out);
	}
	pthread_join(t, NULL);
	if (ok) {
		*answer_s = w.answered - killed;
		bool success = w.status == 200 && strstr(sb_buf_cstr(&w.out), "\"exit_code\":0");
		if (success || *answer_s > ANSWER_WITHIN_S) {
			fprintf(stderr, "# trial %d: answered %ld after %.3f s: %.200s\n", i,
			        w.status, *answer_s, sb_buf_cstr(&w.out));
			ok = false;
		}
		long st = sbb_daemon_call(d, c, "POST", w.target, "{\"argv\":[\"true\"]}", &out);
		if (st != 409 || !strstr(sb_buf_cstr(&out), "sandbox_state_lost")) {
			fprintf(stderr, "# trial %d: a later exec answered %ld: %.200s\n", i, st,
			        sb_buf_cstr(&out));
			ok = false;
		}
		snprintf(target, sizeof target, "/v1/leases/%s", lease);
		sbb_daemon_call(d, c, "DELETE", target, NULL, &out);
	}
	sb_buf_deinit(&w.out);
	sb_buf_deinit(&out);
	return ok;
}

int main(void)
{
	const char *env = getenv("SANDBAR_SOAK_TRIALS");
	int trials = env && atoi(env) > 0 ? atoi(env) : 20;
	curl_global_init(CURL_GLOBAL_ALL);
	sbb_daemon d;
	if (!sbb_daemon_start(&d, "soak-initkill", NULL))
		return 1;
	CURL *c = curl_easy_init();
	double *lat = sb_xcalloc((size_t)trials, sizeof *lat);
	int failures = 0;
	size_t timed = 0;
	for (int i = 0; i < trials; i++) {
		double s = -1;
		failures += !trial(&d, c, i, &s);
		if (s >= 0)
			lat[timed++] = s;
	}
	double p50 = sbb_percentile(lat, timed, 0.5); /* sorts: the maximum is last */
	double max = timed ? lat[timed - 1] : 0.0;
	char figures[256];
	snprintf(figures, sizeof figures,
	         "kill to answer: p50 %.0f ms, max %.0f ms (limit %.0f ms); later execs 409 "
	         "sandbox_state_lost",
	         p50 * 1e3, max * 1e3, ANSWER_WITHIN_S * 1e3);
	printf("sandbar-init SIGKILLed under a running exec: reported lost, never a "
	       "hang\t%d\t%d\t%s\n",
	       trials, failures, figures);
	free(lat);
	curl_easy_cleanup(c);
	sbb_daemon_stop(&d);
	curl_global_cleanup();
	return 0;
}
