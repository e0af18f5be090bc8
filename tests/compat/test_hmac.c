/* HMAC-signed bridge requests (paperclip-bridge-protocol.md §7.1): against a daemon that knows
 * only HMAC keys (no bearer token), the bridge client signs with the daemon's exported signer and
 * gets through, including an exec body and the native workspace upload; a wrong secret, an
 * unknown key and a Host other than the pinned one are refused; a client holding both a token
 * and a key signs once /health says the server verifies signatures. */
#include "testutil.h"

#include "compat_daemon.h"

#include <sandbar/runner.h>

#include "../../src/runner/bridge_int.h" /* to see the signing decision */

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ct_daemon D;
static char *keys_dir;

static int setup(void **state)
{
	(void)state;
	keys_dir = sbt_mkdtemp("compat-hmac");
	const char *keys = "# test keys\nk1 s3cret-one-0123456789\nk2 s3cret-two-0123456789\n";
	sbt_write(keys_dir, "keys", keys, strlen(keys), 0600); /* the daemon refuses 0644 */
	char *path = sbt_path(keys_dir, "keys");
	ct_daemon_start_ex(&D, NULL, path, "bridge.test:7469", 0);
	free(path);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ct_daemon_stop(&D);
	sbt_rmtree(keys_dir);
	return 0;
}

static sb_bridge_opts signed_opts(const char *key, const char *secret)
{
	sb_bridge_opts o = {.base_url = D.base_url,
	                    .hmac_key_id = key,
	                    .hmac_secret = secret,
	                    .expected_host = "bridge.test:7469",
	                    .request_timeout_ms = 30000};
	return o;
}

static void bridge_client_signs_requests_with_hmac(void **state)
{
	(void)state;
	sb_bridge_opts o = signed_opts("k2", "s3cret-two-0123456789");
	sb_bridge *b = NULL;
	SB_ASSERT_OK(sb_bridge_new(&o, &b));
	sb_bridge_lease_params p = {
	    .acquisition_id = "hmac-1", .environment_id = "e", .run_id = "r"};
	sb_bridge_lease l = {0};
	SB_ASSERT_OK(sb_bridge_acquire(b, &p, &l));

	sb_bridge_runner_opts ro = {.bridge = o,
	                            .provider_lease_id = l.provider_lease_id,
	                            .acquisition_id = l.acquisition_id,
	                            .remote_cwd = l.remote_cwd};
	sb_runner *r = NULL;
	SB_ASSERT_OK(sb_bridge_runner_new(&ro, &r));
	char *argv[] = {"sh", "-c", "cat; echo signed", NULL};
	sb_exec_request rq = {
	    .argv = argv, .has_stdin = true, .stdin_data = "body ", .stdin_len = 5};
	sb_exec_result res;
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(r, &rq, NULL, NULL, &res));
	assert_string_equal(sb_buf_cstr(&res.out), "body signed\n");
	sb_exec_result_deinit(&res);

	/* The native upload is signed over its streamed body too. */
	assert_true(sb_runner_caps(r) & SB_RUNNER_CAP_FILE_TRANSFER);
	char *src = sbt_mkdtemp("compat-hmac-src");
	sbt_write_str(src, "f.txt", "through a signed PUT\n");
	char *tar = sbt_path(src, "../compat-hmac.tar");
	int fd = open(tar, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	SB_ASSERT_OK(sb_tar_create(src, NULL, false, fd, NULL));
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	SB_ASSERT_OK(sb_runner_sync_in(r, "/workspace/paperclip/in", NULL, fd, NULL, NULL));
	close(fd);
	unlink(tar);
	char *ws = ct_workspace(&D, l.provider_lease_id);
	char *in = sbt_path(ws, "paperclip/in");
	char *got = sbt_read(in, "f.txt", NULL);
	assert_non_null(got);
	assert_string_equal(got, "through a signed PUT\n");
	free(got);
	free(in);
	free(ws);
	free(tar);
	sbt_rmtree(src);

	sb_runner_free(r);
	SB_ASSERT_OK(sb_bridge_destroy(b, l.provider_lease_id, &p));
	sb_bridge_lease_deinit(&l);
	sb_bridge_free(b);
}

static void bridge_client_is_refused_with_bad_signatures(void **state)
{
	(void)state;
	const struct {
		const char *key, *secret, *host;
	} bad[] = {
	    {"k1", "wrong-secret", "bridge.test:7469"},
	    {"nokey", "s3cret-one-0123456789", "bridge.test:7469"},
	    {"k1", "s3cret-one-0123456789", "other.host:7469"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sb_bridge_opts o = signed_opts(bad[i].key, bad[i].secret);
		o.expected_host = bad[i].host;
		sb_bridge *b = NULL;
		SB_ASSERT_OK(sb_bridge_new(&o, &b));
		sb_bridge_health h;
		sb_err *err = sb_bridge_health_get(b, &h);
		assert_non_null(err);
		assert_int_equal(err->code, SB_E_AUTH);
		sb_err_free(err);
		sb_bridge_free(b);
	}
	/* A bearer token alone gets nowhere on a daemon without one. */
	sb_bridge_opts o = {
	    .base_url = D.base_url, .token = "guess", .expected_host = "bridge.test:7469"};
	sb_bridge *b = NULL;
	SB_ASSERT_OK(sb_bridge_new(&o, &b));
	sb_bridge_health h;
	sb_err *err = sb_bridge_health_get(b, &h);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_AUTH);
	sb_err_free(err);
	sb_bridge_free(b);
}

/* Holding both a token and a key, the client starts with the token and switches to signatures
 * once /health says the server verifies them; signed requests then work end to end. */
static void bridge_client_signs_once_the_server_advertises_it(void **state)
{
	(void)state;
	char *path = sbt_path(keys_dir, "keys");
	ct_daemon both;
	ct_daemon_start_ex(&both, CT_TOKEN, path, NULL, 0);
	free(path);
	sb_bridge_opts o = {.base_url = both.base_url,
	                    .token = CT_TOKEN,
	                    .hmac_key_id = "k1",
	                    .hmac_secret = "s3cret-one-0123456789"};
	sb_bridge *b = NULL;
	SB_ASSERT_OK(sb_bridge_new(&o, &b));
	bool sign = true;
	(void)bridge_client_conf(b, &sign);
	assert_false(sign); /* nothing known yet: the token */
	sb_bridge_health h;
	SB_ASSERT_OK(sb_bridge_health_get(b, &h));
	assert_true(h.hmac);
	sb_bridge_health_deinit(&h);
	(void)bridge_client_conf(b, &sign);
	assert_true(sign);
	sb_bridge_lease_params p = {
	    .acquisition_id = "hmac-both", .environment_id = "e", .run_id = "r"};
	sb_bridge_lease l = {0};
	SB_ASSERT_OK(sb_bridge_acquire(b, &p, &l));
	SB_ASSERT_OK(sb_bridge_destroy(b, l.provider_lease_id, &p));
	sb_bridge_lease_deinit(&l);
	sb_bridge_free(b);

	/* The same client with a wrong secret now fails: it really signs. */
	o.hmac_secret = "not-the-secret-0123456789";
	SB_ASSERT_OK(sb_bridge_new(&o, &b));
	SB_ASSERT_OK(sb_bridge_health_get(b, &h)); /* bearer */
	sb_bridge_health_deinit(&h);
	p.acquisition_id = "hmac-both-2";
	sb_err *err = sb_bridge_acquire(b, &p, &l);
	assert_non_null(err);
	assert_int_equal(err->code, SB_E_AUTH);
	sb_err_free(err);
	sb_bridge_lease_deinit(&l);
	sb_bridge_free(b);
	ct_daemon_stop(&both);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(bridge_client_signs_requests_with_hmac),
	    cmocka_unit_test(bridge_client_is_refused_with_bad_signatures),
	    cmocka_unit_test(bridge_client_signs_once_the_server_advertises_it),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
