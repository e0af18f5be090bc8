/* Idle sleep, from a real daemon: a keepAlive:false lease with no request and no running command
 * for sleepAfter has its command processes frozen (checked in the cgroup v1 freezer the
 * process is in; sandbar-init is not), reported as sleeping in lease info and metrics, stays
 * asleep across a daemon restart, and the next exec wakes it and succeeds; a keepAlive lease
 * never sleeps; the native API sleeps and wakes a lease on request. */
#include "testutil.h"

#include "compat_daemon.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define V2 "/api/paperclip-sandbox/v2"

static ct_daemon d;

/* Host pid of the process whose command line is exactly "sleep <arg>", or 0. */
static int find_sleeper(const char *arg)
{
	DIR *dir = opendir("/proc");
	assert_non_null(dir);
	struct dirent *de;
	int found = 0;
	while (!found && (de = readdir(dir))) {
		int pid = atoi(de->d_name);
		if (pid <= 0)
			continue;
		char p[64];
		snprintf(p, sizeof p, "/proc/%d/cmdline", pid);
		FILE *f = fopen(p, "r");
		if (!f)
			continue;
		char buf[128] = {0};
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		char want[64];
		int wl = snprintf(want, sizeof want, "sleep%c%s", 0, arg);
		if (n == (size_t)wl + 1 && memcmp(buf, want, (size_t)wl + 1) == 0)
			found = pid;
	}
	closedir(dir);
	return found;
}

/* The sleeper, once it has started (the exec may return before the background command runs). */
static int wait_sleeper(const char *arg)
{
	int pid = 0;
	for (int i = 0; i < 1000 && !(pid = find_sleeper(arg)); i++)
		usleep(10000);
	return pid;
}

/* freezer.state of the v1 freezer group pid is in ("" when in the root group). */
static char *freezer_state(int pid)
{
	char *cg = sbt_sh_out("grep ':freezer:' /proc/%d/cgroup | cut -d: -f3", pid);
	size_t n = strlen(cg);
	while (n && cg[n - 1] == '\n')
		cg[--n] = '\0';
	if (n <= 1) {
		free(cg);
		return sb_xstrdup("");
	}
	char *st = sbt_sh_out("cat /sys/fs/cgroup/freezer%s/freezer.state", cg);
	free(cg);
	return st;
}

static bool frozen(int pid)
{
	char *s = freezer_state(pid);
	bool yes = strcmp(s, "FROZEN\n") == 0;
	free(s);
	return yes;
}

static char *acquire(const char *acq, bool keep_alive, const char *sleep_after)
{
	ct_resp r;
	ct_call(&d, "POST", V2 "/leases/acquire",
	        json_pack("{s:s, s:s, s:s, s:b, s:s}", "acquisitionId", acq, "environmentId", "e",
	                  "runId", "r", "keepAlive", keep_alive, "sleepAfter", sleep_after),
	        &r);
	assert_int_equal(r.status, 200);
	char *id = sb_xstrdup(json_string_value(json_object_get(r.json, "providerLeaseId")));
	ct_resp_deinit(&r);
	return id;
}

static void exec_ok(const char *id, const char *acq, const char *script, const char *want_out)
{
	ct_resp r;
	ct_call(&d, "POST", V2 "/exec",
	        json_pack("{s:s, s:s, s:s, s:[ss]}", "providerLeaseId", id, "acquisitionId", acq,
	                  "command", "sh", "args", "-c", script),
	        &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_integer_value(json_object_get(r.json, "exitCode")), 0);
	if (want_out)
		assert_string_equal(json_string_value(json_object_get(r.json, "stdout")), want_out);
	ct_resp_deinit(&r);
}

static char *lease_state(const char *id)
{
	char *path = sb_strfmt("/v1/leases/%s", id);
	ct_resp r;
	ct_call(&d, "GET", path, NULL, &r);
	assert_int_equal(r.status, 200);
	char *st = sb_xstrdup(json_string_value(json_object_get(r.json, "state")));
	ct_resp_deinit(&r);
	free(path);
	return st;
}

static int metric_sleeping(void)
{
	ct_resp r;
	ct_call(&d, "GET", "/metrics", NULL, &r);
	assert_int_equal(r.status, 200);
	const char *p = strstr(sb_buf_cstr(&r.body), "\nsandbar_leases_sleeping ");
	assert_non_null(p);
	int n = atoi(p + strlen("\nsandbar_leases_sleeping "));
	ct_resp_deinit(&r);
	return n;
}

/* Polls cond for up to 30 s (the reaper runs once a second; the machine may be loaded). */
static bool eventually(bool (*cond)(int), int arg)
{
	for (int i = 0; i < 3000; i++) {
		if (cond(arg))
			return true;
		usleep(10000);
	}
	return false;
}

static void idle_lease_sleeps_and_the_next_exec_wakes_it(void **state)
{
	(void)state;
	char *id = acquire("sleepy", false, "1s");
	exec_ok(id, "sleepy", "setsid sleep 7777.25 </dev/null >/dev/null 2>&1 &", NULL);
	int pid = wait_sleeper("7777.25");
	assert_true(pid > 0);
	assert_true(eventually(frozen, pid));
	char *st = lease_state(id);
	assert_string_equal(st, "sleeping");
	free(st);
	assert_int_equal(metric_sleeping(), 1);

	/* A restart keeps it asleep, and knows it is. */
	int old = d.pid;
	ct_daemon_restart(&d);
	assert_true(frozen(pid));
	/* The new daemon holds the freezer for the first wake; the old one let its hold go. */
	char *hold = sb_strfmt("/sys/fs/cgroup/freezer/sandbar/hold-%d/freezer.state", d.pid);
	char *hs = sbt_sh_out("cat %s", hold);
	assert_string_equal(hs, "FROZEN\n");
	free(hs);
	free(hold);
	hold = sb_strfmt("/sys/fs/cgroup/freezer/sandbar/hold-%d", old);
	assert_true(access(hold, F_OK) != 0);
	free(hold);
	st = lease_state(id);
	assert_string_equal(st, "sleeping");
	free(st);

	/* The next exec thaws it first. */
	exec_ok(id, "sleepy", "echo awake; kill -0 $(pgrep -f 'sleep 7777.25') && echo alive",
	        "awake\nalive\n");
	assert_false(frozen(pid));
	st = lease_state(id);
	assert_string_equal(st, "active");
	free(st);
	assert_int_equal(metric_sleeping(), 0);
	/* And it sleeps again once idle, and is destroyed cleanly while asleep. */
	assert_true(eventually(frozen, pid));
	ct_resp r;
	char *dpath = sb_strfmt(V2 "/leases/%s", id);
	ct_call(&d, "DELETE", dpath, json_pack("{s:s}", "acquisitionId", "sleepy"), &r);
	assert_int_equal(r.status, 200);
	ct_resp_deinit(&r);
	for (int i = 0; i < 500 && kill(pid, 0) == 0; i++)
		usleep(10000);
	assert_true(kill(pid, 0) != 0);
	free(dpath);
	free(id);
}

static bool never(int pid)
{
	return frozen(pid);
}

static void keep_alive_lease_never_sleeps(void **state)
{
	(void)state;
	char *id = acquire("awake", true, "1s");
	exec_ok(id, "awake", "setsid sleep 7777.5 </dev/null >/dev/null 2>&1 &", NULL);
	int pid = wait_sleeper("7777.5");
	assert_true(pid > 0);
	/* Several reaper periods past sleepAfter. */
	for (int i = 0; i < 40; i++) {
		assert_false(never(pid));
		usleep(100000);
	}
	char *st = lease_state(id);
	assert_string_equal(st, "active");
	free(st);
	ct_resp r;
	char *dpath = sb_strfmt(V2 "/leases/%s", id);
	ct_call(&d, "DELETE", dpath, json_pack("{s:s}", "acquisitionId", "awake"), &r);
	assert_int_equal(r.status, 200);
	ct_resp_deinit(&r);
	free(dpath);
	free(id);
}

static void native_sleep_and_wake_on_request(void **state)
{
	(void)state;
	ct_resp r;
	ct_call(&d, "POST", "/v1/leases",
	        json_pack("{s:s, s:s}", "acquisition_id", "native-sleep", "sleep_after", "1h"), &r);
	assert_int_equal(r.status, 200);
	char *id = sb_xstrdup(json_string_value(json_object_get(r.json, "id")));
	assert_int_equal(json_integer_value(json_object_get(r.json, "sleep_after_ms")), 3600000);
	ct_resp_deinit(&r);
	char *xpath = sb_strfmt("/v1/leases/%s/exec", id);
	ct_call(&d, "POST", xpath,
	        json_pack("{s:[sss]}", "argv", "sh", "-c",
	                  "setsid sleep 7777.75 </dev/null >/dev/null 2>&1 &"),
	        &r);
	assert_true(r.status == 200 || r.status == 201);
	ct_resp_deinit(&r);
	int pid = 0;
	for (int i = 0; i < 500 && !(pid = find_sleeper("7777.75")); i++)
		usleep(10000);
	assert_true(pid > 0);
	/* Let the exec itself finish: sleeping is refused while a command runs. */
	char *spath = sb_strfmt("/v1/leases/%s/sleep", id);
	for (int i = 0; i < 500; i++) {
		ct_call(&d, "POST", spath, NULL, &r);
		if (r.status != 409)
			break;
		ct_resp_deinit(&r);
		usleep(10000);
	}
	assert_int_equal(r.status, 200);
	assert_string_equal(json_string_value(json_object_get(r.json, "state")), "sleeping");
	ct_resp_deinit(&r);
	assert_true(frozen(pid));
	char *wpath = sb_strfmt("/v1/leases/%s/wake", id);
	ct_call(&d, "POST", wpath, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(json_string_value(json_object_get(r.json, "state")), "active");
	ct_resp_deinit(&r);
	assert_false(frozen(pid));
	char *dpath = sb_strfmt("/v1/leases/%s", id);
	ct_call(&d, "DELETE", dpath, NULL, &r);
	assert_int_equal(r.status, 200);
	ct_resp_deinit(&r);
	free(dpath);
	free(wpath);
	free(spath);
	free(xpath);
	free(id);
}

static char *hold_path(int pid)
{
	return sb_strfmt("/sys/fs/cgroup/freezer/sandbar/hold-%d", pid);
}

static bool hold_frozen(int pid)
{
	char *p = hold_path(pid);
	char *st = sbt_sh_out("cat %s/freezer.state 2>/dev/null", p);
	bool yes = strcmp(st, "FROZEN\n") == 0;
	free(st);
	free(p);
	return yes;
}

static bool hold_gone(int pid)
{
	char *p = hold_path(pid);
	bool gone = access(p, F_OK) != 0;
	free(p);
	return gone;
}

/* While a lease may sleep (has a sleep policy) the daemon holds an empty freezer group frozen,
 * so that the kernel does not rewrite its code on each wake; it lets it go once no lease may
 * sleep, and removes holds left by a daemon that died. */
static void sleeping_leases_hold_the_freezer(void **state)
{
	(void)state;
	/* Earlier tests' leases are gone: their hold goes, and is swept for stale ones when it is
	 * taken anew. */
	assert_true(eventually(hold_gone, d.pid));
	pid_t dead = fork();
	if (dead == 0)
		_exit(0);
	assert_true(dead > 0);
	waitpid(dead, NULL, 0);
	char *stale = hold_path(dead);
	assert_int_equal(sbt_sh("mkdir -p %s && echo FROZEN > %s/freezer.state", stale, stale), 0);

	ct_resp r;
	ct_call(&d, "POST", "/v1/leases",
	        json_pack("{s:s, s:s}", "acquisition_id", "held-sleep", "sleep_after", "1h"), &r);
	assert_int_equal(r.status, 200);
	char *id = sb_xstrdup(json_string_value(json_object_get(r.json, "id")));
	ct_resp_deinit(&r);
	/* Taken by the reaper's next pass, before the lease could sleep. */
	assert_true(eventually(hold_frozen, d.pid));
	assert_true(hold_gone(dead));

	char *xpath = sb_strfmt("/v1/leases/%s/exec", id);
	ct_call(&d, "POST", xpath,
	        json_pack("{s:[sss]}", "argv", "sh", "-c",
	                  "setsid sleep 7777.125 </dev/null >/dev/null 2>&1 &"),
	        &r);
	assert_int_equal(r.status, 200);
	ct_resp_deinit(&r);
	int pid = wait_sleeper("7777.125");
	assert_true(pid > 0);
	char *spath = sb_strfmt("/v1/leases/%s/sleep", id);
	for (int i = 0; i < 500; i++) {
		ct_call(&d, "POST", spath, NULL, &r);
		if (r.status != 409)
			break;
		ct_resp_deinit(&r);
		usleep(10000);
	}
	assert_int_equal(r.status, 200);
	ct_resp_deinit(&r);
	assert_true(frozen(pid));
	char *wpath = sb_strfmt("/v1/leases/%s/wake", id);
	ct_call(&d, "POST", wpath, NULL, &r);
	assert_int_equal(r.status, 200);
	ct_resp_deinit(&r);
	assert_false(frozen(pid));
	/* Still held while the lease may sleep again. */
	assert_true(hold_frozen(d.pid));

	char *dpath = sb_strfmt("/v1/leases/%s", id);
	ct_call(&d, "DELETE", dpath, NULL, &r);
	assert_int_equal(r.status, 200);
	ct_resp_deinit(&r);
	/* Let go by the reaper once no lease may sleep. */
	assert_true(eventually(hold_gone, d.pid));
	free(dpath);
	free(wpath);
	free(spath);
	free(xpath);
	free(stale);
	free(id);
}

static int setup(void **state)
{
	(void)state;
	ct_daemon_start(&d, CT_TOKEN, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ct_daemon_stop(&d);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(idle_lease_sleeps_and_the_next_exec_wakes_it),
	    cmocka_unit_test(keep_alive_lease_never_sleeps),
	    cmocka_unit_test(native_sleep_and_wake_on_request),
	    cmocka_unit_test(sleeping_leases_hold_the_freezer),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
