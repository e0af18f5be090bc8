/* cgroup limits on a whole sandbox: pids against fork bombs, memory against hogs (and the
 * result says so), and the health check that reports what this host can enforce. */
#include "sbx.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sandbar/runner.h>

#include "sb_sandbox_json.h"

static void fork_bomb_is_stopped_by_the_pids_limit(void **s)
{
	(void)s;
	char *state = sbx_state_dir();
	sb_sandbox_opts o = {.limits = {.pids = 32}};
	sb_sandbox *sb = sbx_create(state, "pids", &o);
	sb_sandbox_info info;
	sb_sandbox_get_info(sb, &info);
	assert_true(info.enforced.pids);
	/* a bounded bomb: the shell dies when fork fails ("Cannot fork") */
	char *bomb[] = {"sh", "-c",
	                "i=0; while [ $i -lt 200 ]; do sleep 30 & i=$((i+1)); done; echo never",
	                NULL};
	sb_sandbox_exec_req req = {.argv = bomb};
	sb_sandbox_exec *x = NULL;
	SB_ASSERT_OK(sb_sandbox_exec_start(sb, &req, &x));
	sbx_result r = {0};
	sbx_follow(x, &r);
	assert_null(strstr(sb_buf_cstr(&r.out), "never"));
	assert_true(r.st.has_exit_code && r.st.exit_code != 0);
	assert_non_null(strstr(sb_buf_cstr(&r.err), "fork"));
	sbx_result_free(&r);
	sb_sandbox_process *p = NULL;
	size_t n = 0;
	SB_ASSERT_OK(sb_sandbox_list_processes(sb, &p, &n));
	assert_true(n > 5 && n < 32); /* init is the 32nd */
	for (size_t i = 0; i < n; i++)
		assert_string_equal(p[i].exec_id, sb_sandbox_exec_id(x));
	sb_sandbox_processes_free(p, n);
	/* its leftovers can still be killed through the exec, and the lease recovers */
	SB_ASSERT_OK(sb_sandbox_exec_signal(sb, sb_sandbox_exec_id(x), SIGKILL));
	sb_sandbox_exec_free(x);
	for (int tries = 0; tries < 200; tries++) {
		SB_ASSERT_OK(sb_sandbox_list_processes(sb, &p, &n));
		sb_sandbox_processes_free(p, n);
		if (n == 0)
			break;
		sb_sleep_ms(10); /* poll interval: nothing notifies this condition */
	}
	assert_int_equal(n, 0);
	sbx_sh(sb, "echo ok", &r);
	assert_string_equal(sb_buf_cstr(&r.out), "ok\n");
	sbx_result_free(&r);
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(state);
}

static void memory_hog_is_killed_and_the_result_says_so(void **s)
{
	(void)s;
	char *state = sbx_state_dir();
	sb_sandbox_opts o = {.limits = {.memory_bytes = 64u << 20}};
	sb_sandbox *sb = sbx_create(state, "mem", &o);
	sb_sandbox_info info;
	sb_sandbox_get_info(sb, &info);
	assert_true(info.enforced.memory);
	char *argv[] = {"tail", "/dev/zero", NULL};
	sbx_result r;
	sbx_run(sb, argv, 60000, &r);
	assert_false(r.st.has_exit_code);
	assert_int_equal(r.st.signal, SIGKILL);
	assert_true(r.st.oom_killed);
	sbx_result_free(&r);
	/* a small command in the same lease is fine, and is not blamed */
	sbx_sh(sb, "echo ok", &r);
	assert_string_equal(sb_buf_cstr(&r.out), "ok\n");
	assert_false(r.st.oom_killed);
	sbx_result_free(&r);
	/* through the runner: SIGKILL plus a note on stderr */
	sb_runner *run = NULL;
	SB_ASSERT_OK(sb_sandbox_runner_new(sb, NULL, &run));
	sb_exec_request req = {.argv = argv};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(run, &req, NULL, NULL, &res));
	assert_false(res.has_exit_code);
	assert_string_equal(res.signal, "SIGKILL");
	assert_non_null(strstr(sb_buf_cstr(&res.err), "memory limit"));
	sb_exec_result_deinit(&res);
	sb_runner_free(run);
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(state);
}

/* Memory no process owns (a full /tmp tmpfs) fills the cgroup: the OOM killer must pick a
 * command, never sandbar-init, or the lease dies with it (an ASan-built init is the largest
 * process of a small lease). */
static void oom_kills_a_command_never_init(void **s)
{
	(void)s;
	char *state = sbx_state_dir();
	sb_sandbox_opts o = {.limits = {.memory_bytes = 64u << 20}};
	sb_sandbox *sb = sbx_create(state, "oom-init", &o);
	sbx_result r;
	sbx_sh(sb, "cat /proc/self/oom_score_adj", &r);
	assert_string_equal(sb_buf_cstr(&r.out), "500\n");
	sbx_result_free(&r);
	sbx_sh(sb, "dd if=/dev/zero of=/tmp/fill bs=1M count=80 2>/dev/null; echo dd=$?", &r);
	assert_null(strstr(sb_buf_cstr(&r.out), "dd=0"));
	sbx_result_free(&r);
	assert_true(sb_sandbox_alive(sb));
	sbx_sh(sb, "rm -f /tmp/fill; echo ok", &r);
	assert_string_equal(sb_buf_cstr(&r.out), "ok\n");
	sbx_result_free(&r);
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(state);
}

static void cpu_weight_sets_the_cgroup_share(void **s)
{
	(void)s;
	char *state = sbx_state_dir();
	sb_sandbox_opts o = {.limits = {.cpu_weight = 200}};
	sb_sandbox *sb = sbx_create(state, "cpu", &o);
	sb_sandbox_info info;
	sb_sandbox_get_info(sb, &info);
	assert_true(info.enforced.cpu);
	/* the lease records its cgroup; v1 shares are weight * 1024 / 100 */
	char *lease = sb_strfmt("%s/leases/cpu", state);
	char *text = sbt_read(lease, "lease.json", NULL);
	json_t *j = json_loads(text, 0, NULL);
	assert_non_null(j);
	/* v1: one directory per controller (every lease also has the default pids limit): the
	 * one with cpu.shares */
	json_t *dirs = json_object_get(j, "cgroups");
	const char *dir = NULL;
	char *shares = NULL;
	for (size_t k = 0; k < json_array_size(dirs) && !shares; k++) {
		dir = json_string_value(json_array_get(dirs, k));
		shares = dir ? sbt_read(dir, "cpu.shares", NULL) : NULL;
	}
	assert_non_null(shares);
	assert_string_equal(shares, "2048\n");
	/* and the sandbox is in it */
	char *procs = sbt_read(dir, "cgroup.procs", NULL);
	char pid[16];
	snprintf(pid, sizeof pid, "%d\n", info.init_pid);
	assert_non_null(strstr(procs, pid));
	free(procs);
	free(shares);
	json_decref(j);
	free(text);
	free(lease);
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(state);
}

static void health_reports_what_is_enforced(void **s)
{
	(void)s;
	char *state = sbx_state_dir();
	sb_sandbox_config cfg;
	sbx_config(&cfg, state);
	sb_sandbox_health h;
	sb_sandbox_health_check(&cfg, &h);
	assert_true(h.ok);
	assert_non_null(h.bwrap_version);
	assert_true(h.enforceable.seccomp && h.enforceable.rlimits);
	/* this machine has v1 memory and pids controllers and we run as root */
	assert_string_equal(h.cgroup_version, "v1");
	assert_true(h.enforceable.memory && h.enforceable.pids);
	json_t *j = sb_sandbox_health_json(&h);
	assert_true(json_is_true(json_object_get(json_object_get(j, "limits"), "memory")));
	json_decref(j);
	sb_sandbox_health_deinit(&h);
	/* a host without writable cgroups says so instead of pretending */
	cfg.cgroup_root = state; /* no controllers there */
	sb_sandbox_health_check(&cfg, &h);
	assert_false(h.enforceable.memory);
	assert_non_null(strstr(h.message, "memory limits cannot be enforced"));
	sb_sandbox_health_deinit(&h);
	/* ... and a lease asking for one either fails (require_limits) or records it */
	sb_sandbox_opts o = {.limits = {.memory_bytes = 64u << 20}, .require_limits = true};
	sb_sandbox *sb = NULL;
	sb_err *err = sb_sandbox_create(&cfg, "nocg", &o, &sb);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_UNSUPPORTED);
	sb_err_free(err);
	o.require_limits = false;
	SB_ASSERT_OK(sb_sandbox_create(&cfg, "nocg", &o, &sb));
	sb_sandbox_info info;
	sb_sandbox_get_info(sb, &info);
	assert_false(info.enforced.memory);
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(fork_bomb_is_stopped_by_the_pids_limit),
	    cmocka_unit_test(memory_hog_is_killed_and_the_result_says_so),
	    cmocka_unit_test(oom_kills_a_command_never_init),
	    cmocka_unit_test(cpu_weight_sets_the_cgroup_share),
	    cmocka_unit_test(health_reports_what_is_enforced),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
