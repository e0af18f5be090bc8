/* Test helpers for real sandboxes (see sbx.h). */
#include "sbx.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* State directories not yet freed: a failing test leaves its sandboxes running, so at exit
 * every lease in them is destroyed (sandboxes outlive their creator by design). */
static char *live_states[64];

/* Destroy every lease still in a state directory, then the directory. */
static void destroy_state(const char *dir)
{
	sb_sandbox_config cfg;
	sbx_config(&cfg, dir);
	char **ids = NULL;
	sb_err *err = sb_sandbox_list(&cfg, &ids);
	for (size_t k = 0; !err && ids[k]; k++) {
		sb_sandbox *sb = NULL;
		if (!sb_sandbox_open_dead(&cfg, ids[k], &sb))
			sb_err_free(sb_sandbox_destroy(sb));
	}
	sb_err_free(err);
	sb_strv_free(ids);
	sb_err_free(sb_fs_rm_rf(dir));
}

static void destroy_leftovers(void)
{
	for (size_t i = 0; i < sizeof live_states / sizeof live_states[0]; i++) {
		if (!live_states[i])
			continue;
		destroy_state(live_states[i]);
		free(live_states[i]);
		live_states[i] = NULL;
	}
}

char *sbx_state_dir(void)
{
	static bool registered;
	if (!registered) {
		atexit(destroy_leftovers);
		registered = true;
	}
	char tmpl[] = "/tmp/sbx-state-XXXXXX";
	char *dir = mkdtemp(tmpl);
	assert_non_null(dir); /* 0700, and stays so: sandboxes reach their leases anyway */
	for (size_t i = 0; i < sizeof live_states / sizeof live_states[0]; i++)
		if (!live_states[i]) {
			live_states[i] = sb_xstrdup(dir);
			break;
		}
	return sb_xstrdup(dir);
}

void sbx_state_free(char *dir)
{
	if (!dir)
		return;
	for (size_t i = 0; i < sizeof live_states / sizeof live_states[0]; i++)
		if (live_states[i] && strcmp(live_states[i], dir) == 0) {
			free(live_states[i]);
			live_states[i] = NULL;
		}
	destroy_state(dir); /* leases a failed test left behind included */
	free(dir);
}

void sbx_config(sb_sandbox_config *cfg, const char *state_dir)
{
	sb_sandbox_config_init(cfg);
	cfg->state_dir = state_dir;
	cfg->init_path = SB_TEST_BUILD_DIR "/sandbar-init";
}

sb_sandbox *sbx_create(const char *state_dir, const char *id, const sb_sandbox_opts *opts)
{
	sb_sandbox_config cfg;
	sbx_config(&cfg, state_dir);
	sb_sandbox *sb = NULL;
	SB_ASSERT_OK(sb_sandbox_create(&cfg, id, opts, &sb));
	return sb;
}

static void read_new(sb_sandbox_exec *x, sb_stream s, sb_buf *b)
{
	char buf[65536];
	for (;;) {
		size_t got = 0;
		SB_ASSERT_OK(sb_sandbox_exec_read(x, s, b->len, buf, sizeof buf, &got));
		if (got == 0)
			return;
		sb_buf_append(b, buf, got);
	}
}

void sbx_follow(sb_sandbox_exec *x, sbx_result *r)
{
	for (;;) {
		SB_ASSERT_OK(sb_sandbox_exec_status_of(x, &r->st));
		read_new(x, SB_STREAM_STDOUT, &r->out);
		read_new(x, SB_STREAM_STDERR, &r->err);
		if (!r->st.running)
			return;
		SB_ASSERT_OK(sb_sandbox_exec_wait(x, 1000, NULL));
	}
}

void sbx_run(sb_sandbox *sb, char *const *argv, int64_t timeout_ms, sbx_result *r)
{
	memset(r, 0, sizeof *r);
	sb_buf_init(&r->out);
	sb_buf_init(&r->err);
	sb_sandbox_exec_req req = {.argv = argv, .timeout_ms = timeout_ms};
	sb_sandbox_exec *x = NULL;
	SB_ASSERT_OK(sb_sandbox_exec_start(sb, &req, &x));
	sbx_follow(x, r);
	sb_sandbox_exec_free(x);
}

void sbx_sh(sb_sandbox *sb, const char *script, sbx_result *r)
{
	char *argv[] = {"sh", "-c", (char *)script, NULL};
	sbx_run(sb, argv, 60000, r);
}

void sbx_result_free(sbx_result *r)
{
	sb_buf_deinit(&r->out);
	sb_buf_deinit(&r->err);
}

void sbx_install_probe(sb_sandbox *sb)
{
	char *dst = sb_strfmt("%s/probe", sb_sandbox_workspace_dir(sb));
	char *cmd =
	    sb_strfmt("cp '%s/sbx-probe' '%s' && chmod 755 '%s'", SB_TEST_BUILD_DIR, dst, dst);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(dst);
}

size_t sbx_host_pids(sb_sandbox *sb, int *pids, size_t max)
{
	sb_sandbox_info info;
	sb_sandbox_get_info(sb, &info);
	char want[128], path[64], got[128];
	snprintf(path, sizeof path, "/proc/%d/ns/pid", info.init_pid);
	ssize_t n = readlink(path, want, sizeof want - 1);
	assert_true(n > 0);
	want[n] = '\0';
	size_t count = 0;
	DIR *d = opendir("/proc");
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d)) && count < max) {
		int pid = atoi(de->d_name);
		if (pid <= 0)
			continue;
		snprintf(path, sizeof path, "/proc/%d/ns/pid", pid);
		n = readlink(path, got, sizeof got - 1);
		if (n <= 0)
			continue;
		got[n] = '\0';
		if (strcmp(got, want) == 0)
			pids[count++] = pid;
	}
	closedir(d);
	return count;
}
