/* The seed's two managed-runtime cases through the sandbox runner, on a real lease: the
 * overlay stays out of the sync in both directions (native transfer, command path, and a
 * runner without stdin), and staging into a nested remote workspace runs every command from
 * cwd "/" and the file arrives. Remote edits are made from inside the sandbox. */
#include "sbx.h"

#include <string.h>

#include <sandbar/runtime.h>

/* A runner that forwards to the sandbox runner, records every execute (cwd, stdin) and can
 * hide capabilities, so the command path and the no-stdin path are exercised too. */
typedef struct rec_call {
	char *cwd;
	bool has_stdin;
} rec_call;

typedef struct recorder {
	sb_runner *inner;
	rec_call calls[512];
	size_t n;
} recorder;

static sb_err *rec_execute(sb_runner *r, const sb_exec_request *req, const sb_exec_callbacks *cb,
                           sb_cancel *cancel, sb_exec_result *res)
{
	recorder *rc = r->impl;
	if (rc->n < sizeof rc->calls / sizeof rc->calls[0]) {
		rc->calls[rc->n].cwd = sb_xstrdup(req->cwd ? req->cwd : "(default)");
		rc->calls[rc->n].has_stdin = req->has_stdin;
		rc->n++;
	}
	return sb_runner_execute(rc->inner, req, cb, cancel, res);
}

static sb_err *rec_sync_in(sb_runner *r, const char *dir, char *const *preserve, int fd,
                           sb_progress_fn p, void *ud)
{
	return sb_runner_sync_in(((recorder *)r->impl)->inner, dir, preserve, fd, p, ud);
}

static sb_err *rec_sync_out(sb_runner *r, const char *dir, const sb_excludes *ex, int fd,
                            sb_progress_fn p, void *ud)
{
	return sb_runner_sync_out(((recorder *)r->impl)->inner, dir, ex, fd, p, ud);
}

static void rec_destroy(sb_runner *r)
{
	recorder *rc = r->impl;
	for (size_t i = 0; i < rc->n; i++)
		free(rc->calls[i].cwd);
	free(rc);
	free(r);
}

/* No incremental ops (SB_RUNNER_CAP_DELTA is cleared): every transfer shows as a call. */
static const sb_runner_ops rec_ops = {.name = "recording-sandbox",
                                      .execute = rec_execute,
                                      .sync_in = rec_sync_in,
                                      .sync_out = rec_sync_out,
                                      .destroy = rec_destroy};

static sb_runner *rec_new(sb_runner *inner, unsigned caps_clear, recorder **out)
{
	recorder *rc = sb_xcalloc(1, sizeof *rc);
	rc->inner = inner;
	sb_runner *r = sb_xcalloc(1, sizeof *r);
	r->ops = &rec_ops;
	r->caps = sb_runner_caps(inner) & ~caps_clear & ~(unsigned)SB_RUNNER_CAP_DELTA;
	r->impl = rc;
	*out = rc;
	return r;
}

static size_t count_stdin(const recorder *rc, size_t from)
{
	size_t n = 0;
	for (size_t i = from; i < rc->n; i++)
		n += rc->calls[i].has_stdin;
	return n;
}

static void assert_all_from_root(const recorder *rc)
{
	for (size_t i = 0; i < rc->n; i++) {
		if (strcmp(rc->calls[i].cwd, "/") != 0)
			print_error("call %zu ran in %s\n", i, rc->calls[i].cwd);
		assert_string_equal(rc->calls[i].cwd, "/");
	}
}

static char *inside(sb_sandbox *sb, const char *script)
{
	sbx_result r;
	sbx_sh(sb, script, &r);
	assert_true(r.st.has_exit_code);
	char *out = sb_buf_steal(&r.out, NULL);
	sbx_result_free(&r);
	return out;
}

enum mode { NATIVE, COMMAND, COMMAND_NO_STDIN };

static void overlay_case(enum mode mode)
{
	char *state = sbx_state_dir();
	sb_sandbox *sb = sbx_create(state, "seed", NULL);
	sb_runner *sandbox_runner = NULL;
	SB_ASSERT_OK(sb_sandbox_runner_new(sb, NULL, &sandbox_runner));
	recorder *rc = NULL;
	unsigned clear =
	    mode == COMMAND_NO_STDIN ? SB_RUNNER_CAP_STDIN | SB_RUNNER_CAP_STDIN_PROGRESS : 0;
	sb_runner *runner = rec_new(sandbox_runner, clear, &rc);
	char *local = sbt_mkdtemp("seed-local");
	sbt_write_str(local, "README.md", "hello from the host\n");
	sbt_write_str(local, ".paperclip-runtime/state.json", "{\"local\":true}\n");
	sb_runtime_prepare_opts o = {
	    .runner = runner,
	    .spec = {.remote_cwd = "/workspace/ws"},
	    .adapter_key = "claude",
	    .workspace_local_dir = local,
	    .force_command_path = mode != NATIVE,
	};
	sb_runtime *rt = NULL;
	SB_ASSERT_OK(sb_runtime_prepare(&o, &rt));
	assert_true(sb_runtime_uses_native(rt) == (mode == NATIVE));
	char *seen =
	    inside(sb, "cat /workspace/ws/README.md; "
	               "test -e /workspace/ws/.paperclip-runtime/state.json && echo LEAKED; "
	               "true");
	assert_string_equal(seen, "hello from the host\n");
	free(seen);
	if (mode == COMMAND_NO_STDIN)
		assert_int_equal(count_stdin(rc, 0), 0);
	assert_all_from_root(rc);
	size_t prepare_calls = rc->n;

	/* the agent edits README and writes its own overlay state inside the sandbox */
	free(inside(
	    sb, "echo 'edited in the sandbox' > /workspace/ws/README.md && "
	        "mkdir -p /workspace/ws/.paperclip-runtime && "
	        "echo '{\"remote\":true}' > /workspace/ws/.paperclip-runtime/remote-state.json"));
	sb_restore_report rep;
	sb_restore_report_init(&rep);
	SB_ASSERT_OK(sb_runtime_restore(rt, NULL, &rep));
	char *readme = sbt_read(local, "README.md", NULL);
	assert_string_equal(readme, "edited in the sandbox\n");
	free(readme);
	char *st = sbt_read(local, ".paperclip-runtime/state.json", NULL);
	assert_string_equal(st, "{\"local\":true}\n");
	free(st);
	assert_null(sbt_read(local, ".paperclip-runtime/remote-state.json", NULL));
	assert_int_equal(rep.n_changed, 1);
	assert_string_equal(rep.changed[0], "README.md");
	assert_int_equal(rep.n_conflicts, 0);
	assert_int_equal(count_stdin(rc, prepare_calls), 0); /* restore never sends stdin */
	if (mode == COMMAND_NO_STDIN)
		assert_int_equal(count_stdin(rc, 0), 0);
	assert_all_from_root(rc);

	sb_restore_report_deinit(&rep);
	sb_runtime_free(rt);
	sb_runner_free(runner);
	sb_runner_free(sandbox_runner);
	sbt_rmtree(local);
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(state);
}

static void overlay_stays_out_of_sync_native(void **s)
{
	(void)s;
	overlay_case(NATIVE);
}

static void overlay_stays_out_of_sync_command_path(void **s)
{
	(void)s;
	overlay_case(COMMAND);
}

static void overlay_stays_out_of_sync_without_stdin(void **s)
{
	(void)s;
	overlay_case(COMMAND_NO_STDIN);
}

static void nested_case(bool native)
{
	char *state = sbx_state_dir();
	sb_sandbox *sb = sbx_create(state, "seed-nested", NULL);
	sb_runner *sandbox_runner = NULL;
	SB_ASSERT_OK(sb_sandbox_runner_new(sb, NULL, &sandbox_runner));
	recorder *rc = NULL;
	sb_runner *runner = rec_new(sandbox_runner, 0, &rc);
	char *local = sbt_mkdtemp("seed-local");
	sbt_write_str(local, "task.txt", "nested\n");
	const char *ws = "/workspace/.paperclip-runtime/runs/test/workspace";
	sb_runtime_prepare_opts o = {
	    .runner = runner,
	    .spec = {.remote_cwd = "/workspace"},
	    .workspace_remote_dir = ws,
	    .adapter_key = "codex",
	    .workspace_local_dir = local,
	    .force_command_path = !native,
	};
	sb_runtime *rt = NULL;
	SB_ASSERT_OK(sb_runtime_prepare(&o, &rt));
	char *seen = inside(sb, "cat /workspace/.paperclip-runtime/runs/test/workspace/task.txt");
	assert_string_equal(seen, "nested\n");
	free(seen);
	assert_string_equal(sb_runtime_root_dir(rt),
	                    "/workspace/.paperclip-runtime/runs/test/workspace/.paperclip-runtime/"
	                    "codex");
	if (!native)
		assert_true(rc->n > 0);
	assert_all_from_root(rc);
	free(inside(sb, "echo done > /workspace/.paperclip-runtime/runs/test/workspace/task.txt"));
	SB_ASSERT_OK(sb_runtime_restore(rt, NULL, NULL));
	char *back = sbt_read(local, "task.txt", NULL);
	assert_string_equal(back, "done\n");
	free(back);
	assert_all_from_root(rc);
	sb_runtime_free(rt);
	sb_runner_free(runner);
	sb_runner_free(sandbox_runner);
	sbt_rmtree(local);
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(state);
}

static void nested_remote_workspace_runs_from_root_native(void **s)
{
	(void)s;
	nested_case(true);
}

static void nested_remote_workspace_runs_from_root_command_path(void **s)
{
	(void)s;
	nested_case(false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(overlay_stays_out_of_sync_native),
	    cmocka_unit_test(overlay_stays_out_of_sync_command_path),
	    cmocka_unit_test(overlay_stays_out_of_sync_without_stdin),
	    cmocka_unit_test(nested_remote_workspace_runs_from_root_native),
	    cmocka_unit_test(nested_remote_workspace_runs_from_root_command_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
