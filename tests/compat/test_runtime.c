/* The managed runtime (include/sandbar/runtime.h) unchanged over the bridge runner and a real
 * daemon: the seed's two cases on the command path (with stdin, and with stdin taken away) and
 * on the native path (the daemon's workspace tar routes), and a 20 MiB workspace round trip on
 * both paths, byte for byte. A recording wrapper runner checks that every command ran from
 * cwd "/" and which ones carried stdin. */
#include "testutil.h"

#include "compat_daemon.h"

#include <sandbar/runner.h>
#include <sandbar/runtime.h>

#include <stdlib.h>
#include <string.h>

static ct_daemon D;

/* ---------------------------------------------------------------- recording wrapper */

typedef struct rec {
	sb_runner *inner;
	size_t calls, stdin_calls, non_root_cwd, syncs;
} rec;

static sb_err *rec_execute(sb_runner *r, const sb_exec_request *req, const sb_exec_callbacks *cb,
                           sb_cancel *cancel, sb_exec_result *res)
{
	rec *x = r->impl;
	x->calls++;
	if (req->has_stdin)
		x->stdin_calls++;
	if (!req->cwd || strcmp(req->cwd, "/") != 0)
		x->non_root_cwd++;
	return sb_runner_execute(x->inner, req, cb, cancel, res);
}

static sb_err *rec_sync_in(sb_runner *r, const char *dir, char *const *preserve, int fd,
                           sb_progress_fn p, void *ud)
{
	rec *x = r->impl;
	x->syncs++;
	return sb_runner_sync_in(x->inner, dir, preserve, fd, p, ud);
}

static sb_err *rec_sync_out(sb_runner *r, const char *dir, const sb_excludes *ex, int fd,
                            sb_progress_fn p, void *ud)
{
	rec *x = r->impl;
	x->syncs++;
	return sb_runner_sync_out(x->inner, dir, ex, fd, p, ud);
}

static void rec_destroy(sb_runner *r)
{
	rec *x = r->impl;
	sb_runner_free(x->inner);
	free(x);
	free(r);
}

static const sb_runner_ops rec_ops = {.name = "recorded-bridge",
                                      .execute = rec_execute,
                                      .sync_in = rec_sync_in,
                                      .sync_out = rec_sync_out,
                                      .destroy = rec_destroy};

typedef enum path_kind { COMMAND, COMMAND_NO_STDIN, NATIVE } path_kind;

typedef struct lease_fixture {
	sb_bridge *client;
	sb_bridge_lease lease;
	sb_bridge_lease_params params;
	sb_runner *runner; /* the recording wrapper */
	rec *rec;
	char *host_ws; /* host directory behind /workspace */
} lease_fixture;

static void fixture_open(lease_fixture *f, const char *acq, path_kind kind)
{
	memset(f, 0, sizeof(*f));
	sb_bridge_opts o = {.base_url = D.base_url, .token = CT_TOKEN};
	SB_ASSERT_OK(sb_bridge_new(&o, &f->client));
	f->params = (sb_bridge_lease_params){
	    .acquisition_id = acq, .environment_id = "env", .run_id = "run"};
	SB_ASSERT_OK(sb_bridge_acquire(f->client, &f->params, &f->lease));
	sb_bridge_runner_opts ro = {.bridge = o,
	                            .provider_lease_id = f->lease.provider_lease_id,
	                            .acquisition_id = f->lease.acquisition_id,
	                            .remote_cwd = f->lease.remote_cwd,
	                            .no_file_transfer = kind != NATIVE};
	sb_runner *inner = NULL;
	SB_ASSERT_OK(sb_bridge_runner_new(&ro, &inner));
	assert_int_equal(!!(sb_runner_caps(inner) & SB_RUNNER_CAP_FILE_TRANSFER), kind == NATIVE);
	f->rec = sb_xcalloc(1, sizeof(*f->rec));
	f->rec->inner = inner;
	f->runner = sb_xcalloc(1, sizeof(*f->runner));
	f->runner->ops = &rec_ops;
	f->runner->impl = f->rec;
	f->runner->caps = sb_runner_caps(inner);
	if (kind == COMMAND_NO_STDIN)
		f->runner->caps &= ~(unsigned)(SB_RUNNER_CAP_STDIN | SB_RUNNER_CAP_STDIN_PROGRESS);
	f->host_ws = ct_workspace(&D, f->lease.provider_lease_id);
}

static void fixture_close(lease_fixture *f)
{
	sb_runner_free(f->runner);
	SB_ASSERT_OK(sb_bridge_destroy(f->client, f->lease.provider_lease_id, &f->params));
	sb_bridge_lease_deinit(&f->lease);
	sb_bridge_free(f->client);
	free(f->host_ws);
}

/* Run a script in the sandbox through the (unwrapped) bridge runner. */
static void sandbox_sh(lease_fixture *f, const char *script)
{
	char *argv[] = {"sh", "-c", (char *)script, NULL};
	sb_exec_request rq = {.argv = argv, .cwd = "/"};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(f->rec->inner, &rq, NULL, NULL, &res));
	if (!sb_exec_result_ok(&res))
		fail_msg("%s: exit %d: %s", script, res.exit_code, sb_buf_cstr(&res.err));
	sb_exec_result_deinit(&res);
}

static void assert_file(const char *dir, const char *rel, const char *want)
{
	char *got = sbt_read(dir, rel, NULL);
	if (!got)
		fail_msg("%s/%s is missing", dir, rel);
	assert_string_equal(got, want);
	free(got);
}

/* ---------------------------------------------------------------- the seed's cases */

static void overlay_case(path_kind kind, const char *acq)
{
	lease_fixture f;
	fixture_open(&f, acq, kind);
	char *local = sbt_mkdtemp("compat-rt-local");
	sbt_write_str(local, "README.md", "hello from the host\n");
	sbt_write_str(local, ".paperclip-runtime/state.json", "{\"local\":true}\n");
	sb_runtime_prepare_opts o = {.runner = f.runner,
	                             .spec = {.remote_cwd = "/workspace/paperclip"},
	                             .adapter_key = "claude",
	                             .workspace_local_dir = local};
	sb_runtime *rt = NULL;
	SB_ASSERT_OK(sb_runtime_prepare(&o, &rt));
	assert_int_equal(sb_runtime_uses_native(rt), kind == NATIVE);
	char *remote = sbt_path(f.host_ws, "paperclip");
	assert_file(remote, "README.md", "hello from the host\n");
	assert_null(sbt_read(remote, ".paperclip-runtime/state.json", NULL));
	if (kind == COMMAND)
		assert_true(f.rec->stdin_calls > 0);
	if (kind == NATIVE)
		assert_true(f.rec->syncs > 0);
	size_t prepare_stdin = f.rec->stdin_calls;

	sandbox_sh(&f, "printf 'edited in the sandbox\\n' > /workspace/paperclip/README.md && "
	               "mkdir -p /workspace/paperclip/.paperclip-runtime && "
	               "printf '{\"remote\":true}\\n' > "
	               "/workspace/paperclip/.paperclip-runtime/remote-state.json");
	sb_restore_report rep;
	sb_restore_report_init(&rep);
	SB_ASSERT_OK(sb_runtime_restore(rt, NULL, &rep));
	assert_file(local, "README.md", "edited in the sandbox\n");
	assert_file(local, ".paperclip-runtime/state.json", "{\"local\":true}\n");
	assert_null(sbt_read(local, ".paperclip-runtime/remote-state.json", NULL));
	assert_int_equal(rep.n_changed, 1);
	assert_string_equal(rep.changed[0], "README.md");
	assert_int_equal(rep.n_conflicts, 0);
	assert_int_equal(f.rec->stdin_calls, prepare_stdin); /* restore never uses stdin */
	if (kind == COMMAND_NO_STDIN)
		assert_int_equal(f.rec->stdin_calls, 0);
	assert_int_equal(f.rec->non_root_cwd, 0);
	sb_restore_report_deinit(&rep);
	sb_runtime_free(rt);
	free(remote);
	sbt_rmtree(local);
	fixture_close(&f);
}

static void bridge_runtime_overlay_stays_out_of_sync_command_path(void **state)
{
	(void)state;
	overlay_case(COMMAND, "rt-overlay-cmd");
}

static void bridge_runtime_overlay_stays_out_of_sync_without_stdin(void **state)
{
	(void)state;
	overlay_case(COMMAND_NO_STDIN, "rt-overlay-nostdin");
}

static void bridge_runtime_overlay_stays_out_of_sync_native_path(void **state)
{
	(void)state;
	overlay_case(NATIVE, "rt-overlay-native");
}

static void nested_case(path_kind kind, const char *acq)
{
	lease_fixture f;
	fixture_open(&f, acq, kind);
	char *local = sbt_mkdtemp("compat-rt-local");
	sbt_write_str(local, "task.txt", "nested\n");
	const char *ws = "/workspace/paperclip/.paperclip-runtime/runs/test/workspace";
	sb_runtime_prepare_opts o = {.runner = f.runner,
	                             .spec = {.remote_cwd = "/workspace/paperclip"},
	                             .workspace_remote_dir = ws,
	                             .adapter_key = "codex",
	                             .workspace_local_dir = local};
	sb_runtime *rt = NULL;
	SB_ASSERT_OK(sb_runtime_prepare(&o, &rt));
	char *host = sbt_path(f.host_ws, "paperclip/.paperclip-runtime/runs/test/workspace");
	assert_file(host, "task.txt", "nested\n");
	char *root = sb_strfmt("%s/.paperclip-runtime/codex", ws);
	assert_string_equal(sb_runtime_root_dir(rt), root);
	sandbox_sh(&f, "printf 'done\\n' > "
	               "/workspace/paperclip/.paperclip-runtime/runs/test/workspace/task.txt");
	SB_ASSERT_OK(sb_runtime_restore(rt, NULL, NULL));
	assert_file(local, "task.txt", "done\n");
	assert_true(f.rec->calls + f.rec->syncs > 0);
	assert_int_equal(f.rec->non_root_cwd, 0);
	free(root);
	free(host);
	sb_runtime_free(rt);
	sbt_rmtree(local);
	fixture_close(&f);
}

static void bridge_runtime_nested_workspace_runs_from_root_command_path(void **state)
{
	(void)state;
	nested_case(COMMAND, "rt-nested-cmd");
}

static void bridge_runtime_nested_workspace_runs_from_root_native_path(void **state)
{
	(void)state;
	nested_case(NATIVE, "rt-nested-native");
}

/* ---------------------------------------------------------------- 20 MiB round trip */

#define BIG (20u * 1024u * 1024u)

static void round_trip(path_kind kind, const char *acq)
{
	lease_fixture f;
	fixture_open(&f, acq, kind);
	char *local = sbt_mkdtemp("compat-rt-big");
	unsigned char *big = sb_xmalloc(BIG);
	sbt_fill_random(big, BIG, 20);
	sbt_write(local, "data/big.bin", big, BIG, 0644);
	sbt_write(local, "bin/tool.sh", "#!/bin/sh\necho hi\n", 18, 0755);
	sbt_write_str(local, "notes/ünï code.txt", "x\n");
	sb_runtime_prepare_opts o = {.runner = f.runner,
	                             .spec = {.remote_cwd = "/workspace/paperclip"},
	                             .adapter_key = "claude",
	                             .workspace_local_dir = local};
	sb_runtime *rt = NULL;
	SB_ASSERT_OK(sb_runtime_prepare(&o, &rt));
	char *remote = sbt_path(f.host_ws, "paperclip");
	size_t n = 0;
	char *got = sbt_read(remote, "data/big.bin", &n);
	assert_non_null(got);
	assert_int_equal(n, BIG);
	assert_memory_equal(got, big, BIG);
	free(got);
	/* The sandbox rewrites the big file (reversing every 4 KiB block's order would be slow
	 * in sh; appending a tail and flipping the head is enough to make it differ). */
	sandbox_sh(&f, "cd /workspace/paperclip && printf 'HEAD' | dd of=data/big.bin bs=1 "
	               "conv=notrunc 2>/dev/null && printf 'tail' >> data/big.bin && "
	               "printf 'new\\n' > added.txt");
	sb_restore_report rep;
	sb_restore_report_init(&rep);
	SB_ASSERT_OK(sb_runtime_restore(rt, NULL, &rep));
	memcpy(big, "HEAD", 4);
	got = sbt_read(local, "data/big.bin", &n);
	assert_non_null(got);
	assert_int_equal(n, BIG + 4);
	assert_memory_equal(got, big, BIG);
	assert_memory_equal(got + BIG, "tail", 4);
	free(got);
	assert_file(local, "added.txt", "new\n");
	assert_file(local, "notes/ünï code.txt", "x\n");
	assert_int_equal(rep.n_conflicts, 0);
	assert_int_equal(f.rec->non_root_cwd, 0);
	sb_restore_report_deinit(&rep);
	sb_runtime_free(rt);
	free(remote);
	free(big);
	sbt_rmtree(local);
	fixture_close(&f);
}

static void bridge_runtime_20mib_round_trip_native_path(void **state)
{
	(void)state;
	round_trip(NATIVE, "rt-big-native");
}

static void bridge_runtime_20mib_round_trip_command_path(void **state)
{
	(void)state;
	round_trip(COMMAND, "rt-big-cmd");
}

static int setup(void **state)
{
	(void)state;
	ct_daemon_start(&D, CT_TOKEN, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ct_daemon_stop(&D);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(bridge_runtime_overlay_stays_out_of_sync_command_path),
	    cmocka_unit_test(bridge_runtime_overlay_stays_out_of_sync_without_stdin),
	    cmocka_unit_test(bridge_runtime_overlay_stays_out_of_sync_native_path),
	    cmocka_unit_test(bridge_runtime_nested_workspace_runs_from_root_command_path),
	    cmocka_unit_test(bridge_runtime_nested_workspace_runs_from_root_native_path),
	    cmocka_unit_test(bridge_runtime_20mib_round_trip_native_path),
	    cmocka_unit_test(bridge_runtime_20mib_round_trip_command_path),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
