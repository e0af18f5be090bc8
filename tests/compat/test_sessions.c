/* State that must outlast one request, from a real daemon: a named session's cwd and env survive
 * a daemon restart (they live in the state database with the lease), and file modes survive
 * Paperclip's staging (a 664 file uploaded as a tar through exec stdin, extracted with the
 * runtime's own `tar -xf`, archived again and read back as base64 keeps 664). */
#include "testutil.h"

#include "compat_daemon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define X "/api/paperclip-sandbox/v2/exec"

static ct_daemon d;

static char *acquire(const char *acq)
{
	ct_resp r;
	ct_call(
	    &d, "POST", "/api/paperclip-sandbox/v2/leases/acquire",
	    json_pack("{s:s, s:s, s:s}", "acquisitionId", acq, "environmentId", "e", "runId", "r"),
	    &r);
	assert_int_equal(r.status, 200);
	char *id = sb_xstrdup(json_string_value(json_object_get(r.json, "providerLeaseId")));
	ct_resp_deinit(&r);
	return id;
}

static json_t *body(const char *id, const char *acq, const char *script)
{
	return json_pack("{s:s, s:s, s:s, s:[ss]}", "providerLeaseId", id, "acquisitionId", acq,
	                 "command", "sh", "args", "-c", script);
}

/* Run and expect exit 0; the stdout, malloc'd. */
static char *run(const char *id, const char *acq, json_t *b)
{
	(void)id;
	(void)acq;
	ct_resp r;
	ct_call(&d, "POST", X, b, &r);
	assert_int_equal(r.status, 200);
	const char *err = json_string_value(json_object_get(r.json, "stderr"));
	if (json_integer_value(json_object_get(r.json, "exitCode")) != 0)
		fail_msg("exec failed: %s", err ? err : "?");
	char *out = sb_xstrdup(json_string_value(json_object_get(r.json, "stdout")));
	ct_resp_deinit(&r);
	return out;
}

static void session_cwd_and_env_survive_a_daemon_restart(void **state)
{
	(void)state;
	char *id = acquire("durable-1");
	json_t *b = body(id, "durable-1", "mkdir -p /workspace/paperclip/deep && true");
	free(run(id, "durable-1", b));
	b = body(id, "durable-1", "true");
	json_object_set_new(b, "sessionId", json_string("agent"));
	json_object_set_new(b, "cwd", json_string("/workspace/paperclip/deep"));
	json_object_set_new(b, "env", json_pack("{s:s}", "KEEP", "kept across restarts"));
	free(run(id, "durable-1", b));

	ct_daemon_restart(&d);

	b = body(id, "durable-1", "printf '%s|%s' \"$(pwd)\" \"${KEEP-unset}\"");
	json_object_set_new(b, "sessionId", json_string("agent"));
	char *out = run(id, "durable-1", b);
	assert_string_equal(out, "/workspace/paperclip/deep|kept across restarts");
	free(out);
	/* Another session of the same lease still starts fresh. */
	b = body(id, "durable-1", "printf '%s|%s' \"$(pwd)\" \"${KEEP-unset}\"");
	json_object_set_new(b, "sessionId", json_string("other"));
	out = run(id, "durable-1", b);
	assert_string_equal(out, "/workspace/paperclip|unset");
	free(out);
	free(id);
}

/* The mode field of the first member of a ustar archive. */
static unsigned tar_mode(const char *tar, size_t len)
{
	assert_true(len >= 512);
	char field[9];
	memcpy(field, tar + 100, 8);
	field[8] = '\0';
	return (unsigned)strtoul(field, NULL, 8) & 07777;
}

static void a_664_file_staged_with_the_runtimes_tar_keeps_664(void **state)
{
	(void)state;
	char *id = acquire("modes-1");
	/* The host side of Paperclip's runtime: tar the workspace entries by name. */
	char *local = sbt_mkdtemp("modes-local");
	sbt_write(local, "shared.txt", "group-writable\n", 15, 0664);
	assert_int_equal(sbt_sh("cd '%s' && tar -cf up.tar -- shared.txt", local), 0);
	size_t tlen = 0;
	char *tar = sbt_read(local, "up.tar", &tlen);
	assert_int_equal(tar_mode(tar, tlen), 0664);
	sb_buf b64 = SB_BUF_INIT;
	sb_b64_encode(tar, tlen, &b64);
	/* Upload through stdin, decoded in the sandbox, then the runtime's extract command. */
	json_t *b = body(id, "modes-1",
	                 "mkdir -p /workspace/paperclip/.paperclip-runtime && base64 -d > "
	                 "/workspace/paperclip/.paperclip-runtime/workspace-upload.tar");
	json_object_set_new(b, "stdin", json_string(sb_buf_cstr(&b64)));
	free(run(id, "modes-1", b));
	b = body(id, "modes-1",
	         "mkdir -p /workspace/paperclip && tar -xf "
	         "/workspace/paperclip/.paperclip-runtime/workspace-upload.tar -C "
	         "/workspace/paperclip && rm -f "
	         "/workspace/paperclip/.paperclip-runtime/workspace-upload.tar");
	free(run(id, "modes-1", b));
	char *mode =
	    run(id, "modes-1", body(id, "modes-1", "stat -c %a /workspace/paperclip/shared.txt"));
	assert_string_equal(mode, "664\n");
	free(mode);
	/* Restore: the runtime archives in the sandbox and reads the archive back as base64. */
	b = body(id, "modes-1",
	         "cd /workspace/paperclip && { tar -cf .paperclip-runtime/dl.tar --exclude '._*' "
	         "-- shared.txt; rc=$?; [ \"$rc\" -le 1 ]; } && base64 -w0 < "
	         ".paperclip-runtime/dl.tar");
	char *back = run(id, "modes-1", b);
	sb_buf raw = SB_BUF_INIT;
	SB_ASSERT_OK(sb_b64_decode(back, strlen(back), &raw));
	assert_int_equal(tar_mode(raw.data, raw.len), 0664);
	/* And the host extract gives the file its mode back. */
	sbt_write(local, "dl.tar", raw.data, raw.len, 0600);
	assert_int_equal(sbt_sh("cd '%s' && mkdir out && tar -xf dl.tar -C out", local), 0);
	char *m = sbt_sh_out("stat -c %%a '%s/out/shared.txt'", local);
	assert_string_equal(m, "664\n");
	free(m);
	free(back);
	sb_buf_deinit(&raw);
	sb_buf_deinit(&b64);
	free(tar);
	sbt_rmtree(local);
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
	    cmocka_unit_test(session_cwd_and_env_survive_a_daemon_restart),
	    cmocka_unit_test(a_664_file_staged_with_the_runtimes_tar_keeps_664),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
