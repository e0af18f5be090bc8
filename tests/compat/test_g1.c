/* G1 (pre-ownership) clients against a real daemon: under /api/paperclip-sandbox/v1 and
 * without an acquisitionId, acquire, exec, resume, release and destroy behave as the G1 bridge
 * (paperclip-bridge-protocol.md §2.3 "(G1)"), while a lease acquired through G2 answers 409
 * to every request that names no acquisition (DESIGN.md §9.11). */
#include "testutil.h"

#include "compat_daemon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define V1 "/api/paperclip-sandbox/v1"
#define V2 "/api/paperclip-sandbox/v2"

static const char *jstr(const json_t *j, const char *k)
{
	return json_string_value(json_object_get(j, k));
}

static json_t *exec_body(const char *id, const char *script)
{
	return json_pack("{s:s, s:s, s:[ss]}", "providerLeaseId", id, "command", "sh", "args", "-c",
	                 script);
}

static void g1_acquire_exec_resume_release_destroy(void **state)
{
	(void)state;
	ct_resp r;
	/* Acquire: no acquisitionId; the G1 id and the G1 answer (no ownership fields). */
	ct_call(&ct_shared, "POST", V1 "/leases/acquire",
	        json_pack("{s:s, s:s}", "environmentId", "env-1", "runId", "Run_42"), &r);
	assert_int_equal(r.status, 200);
	char *id = sb_xstrdup(jstr(r.json, "providerLeaseId"));
	assert_true(strncmp(id, "pc-run-42-", 10) == 0);
	assert_int_equal(strlen(id), 18);
	json_t *md = json_object_get(r.json, "metadata");
	assert_null(json_object_get(md, "acquisitionId"));
	assert_string_equal(jstr(md, "remoteCwd"), "/workspace/paperclip");
	assert_true(json_is_false(json_object_get(md, "resumedLease")));
	ct_resp_deinit(&r);
	/* The sentinel is the G1 one: no acquisition in it. */
	char *ws = ct_workspace(&ct_shared, id);
	char *sentinel = sbt_read(ws, "paperclip/.paperclip-lease.json", NULL);
	assert_non_null(sentinel);
	json_t *sj = json_loads(sentinel, 0, NULL);
	assert_string_equal(jstr(sj, "providerLeaseId"), id);
	assert_null(json_object_get(sj, "acquisitionId"));
	json_decref(sj);
	free(sentinel);

	/* Exec without an acquisitionId, in a named session. */
	json_t *b = exec_body(id, "echo hi; pwd; echo \"$G\" >&2");
	json_object_set_new(b, "env", json_pack("{s:s}", "G", "one"));
	ct_call(&ct_shared, "POST", V1 "/exec", b, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_integer_value(json_object_get(r.json, "exitCode")), 0);
	assert_string_equal(jstr(r.json, "stdout"), "hi\n/workspace/paperclip\n");
	assert_string_equal(jstr(r.json, "stderr"), "one\n");
	ct_resp_deinit(&r);
	/* /v2/exec stays G2: no acquisitionId is 400 before any lookup. */
	ct_call(&ct_shared, "POST", V2 "/exec", exec_body(id, "true"), &r);
	assert_int_equal(r.status, 400);
	ct_resp_deinit(&r);

	/* Resume checks the sentinel and rewrites it resumed. */
	ct_call(&ct_shared, "POST", V1 "/leases/resume", json_pack("{s:s}", "providerLeaseId", id),
	        &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(jstr(r.json, "providerLeaseId"), id);
	assert_true(
	    json_is_true(json_object_get(json_object_get(r.json, "metadata"), "resumedLease")));
	ct_resp_deinit(&r);
	/* A lost sentinel is lost state. */
	char *spath = sb_strfmt("%s/paperclip/.paperclip-lease.json", ws);
	assert_int_equal(unlink(spath), 0);
	ct_call(&ct_shared, "POST", V1 "/leases/resume", json_pack("{s:s}", "providerLeaseId", id),
	        &r);
	assert_int_equal(r.status, 409);
	assert_string_equal(jstr(r.json, "error"), "sandbox_state_lost");
	ct_resp_deinit(&r);

	/* Release with reuseLease keeps the sandbox; without, destroys it; again is 200. */
	ct_call(&ct_shared, "POST", V1 "/leases/release",
	        json_pack("{s:s, s:b}", "providerLeaseId", id, "reuseLease", 1), &r);
	assert_int_equal(r.status, 200);
	ct_resp_deinit(&r);
	b = exec_body(id, "true");
	ct_call(&ct_shared, "POST", V1 "/exec", b, &r);
	assert_int_equal(r.status, 200);
	ct_resp_deinit(&r);
	ct_call(&ct_shared, "POST", V1 "/leases/release",
	        json_pack("{s:s, s:b}", "providerLeaseId", id, "reuseLease", 0), &r);
	assert_int_equal(r.status, 200);
	ct_resp_deinit(&r);
	ct_call(&ct_shared, "POST", V1 "/exec", exec_body(id, "true"), &r);
	assert_int_equal(r.status, 409);
	ct_resp_deinit(&r);
	ct_call(&ct_shared, "POST", V1 "/leases/release", json_pack("{s:s}", "providerLeaseId", id),
	        &r);
	assert_int_equal(r.status, 200);
	ct_resp_deinit(&r);

	/* Reusable: pc-env-<environmentId>, the same sandbox on a second acquire; DELETE
	 * destroys it; a later acquire gets a fresh one. */
	char *rid = NULL;
	for (int k = 0; k < 2; k++) {
		ct_call(&ct_shared, "POST", V1 "/leases/acquire",
		        json_pack("{s:s, s:s, s:b, s:b}", "environmentId", "Env.Shared", "runId",
		                  k ? "run-b" : "run-a", "reuseLease", 1, "keepAlive", 1),
		        &r);
		assert_int_equal(r.status, 200);
		assert_string_equal(jstr(r.json, "providerLeaseId"), "pc-env-env-shared");
		ct_resp_deinit(&r);
		if (k == 0) {
			ct_call(
			    &ct_shared, "POST", V1 "/exec",
			    exec_body("pc-env-env-shared", "echo kept > /workspace/paperclip/k"),
			    &r);
			assert_int_equal(r.status, 200);
			ct_resp_deinit(&r);
		}
	}
	ct_call(&ct_shared, "POST", V1 "/exec",
	        exec_body("pc-env-env-shared", "cat /workspace/paperclip/k"), &r);
	assert_string_equal(jstr(r.json, "stdout"), "kept\n");
	ct_resp_deinit(&r);
	rid = sb_xstrdup("pc-env-env-shared");
	ct_call(&ct_shared, "DELETE", V1 "/leases/pc-env-env-shared", NULL, &r);
	assert_int_equal(r.status, 200);
	ct_resp_deinit(&r);
	ct_call(&ct_shared, "DELETE", V1 "/leases/pc-env-env-shared", NULL, &r);
	assert_int_equal(r.status, 200);
	ct_resp_deinit(&r);
	ct_call(&ct_shared, "POST", V1 "/leases/acquire",
	        json_pack("{s:s, s:s, s:b}", "environmentId", "Env.Shared", "runId", "run-c",
	                  "reuseLease", 1),
	        &r);
	assert_int_equal(r.status, 200);
	ct_resp_deinit(&r);
	ct_call(&ct_shared, "POST", V1 "/exec",
	        exec_body("pc-env-env-shared", "test -e /workspace/paperclip/k || echo fresh"), &r);
	assert_string_equal(jstr(r.json, "stdout"), "fresh\n");
	ct_resp_deinit(&r);
	ct_call(&ct_shared, "DELETE", V1 "/leases/pc-env-env-shared", NULL, &r);
	assert_int_equal(r.status, 200);
	ct_resp_deinit(&r);
	free(rid);
	free(spath);
	free(ws);
	free(id);
}

static void a_g2_lease_refuses_requests_without_acquisition(void **state)
{
	(void)state;
	ct_resp r;
	ct_call(&ct_shared, "POST", V2 "/leases/acquire",
	        json_pack("{s:s, s:s, s:s}", "acquisitionId", "g2-owner", "environmentId", "e",
	                  "runId", "r"),
	        &r);
	assert_int_equal(r.status, 200);
	char *id = sb_xstrdup(jstr(r.json, "providerLeaseId"));
	ct_resp_deinit(&r);
	char *ws = ct_workspace(&ct_shared, id);
	ct_call(&ct_shared, "POST", V1 "/exec", exec_body(id, "touch /workspace/pwned"), &r);
	assert_int_equal(r.status, 409);
	assert_string_equal(jstr(r.json, "error"), "acquisition_conflict");
	ct_resp_deinit(&r);
	assert_null(sbt_read(ws, "pwned", NULL));
	ct_call(&ct_shared, "POST", V1 "/leases/resume", json_pack("{s:s}", "providerLeaseId", id),
	        &r);
	assert_int_equal(r.status, 409);
	ct_resp_deinit(&r);
	ct_call(&ct_shared, "POST", V1 "/leases/release", json_pack("{s:s}", "providerLeaseId", id),
	        &r);
	assert_int_equal(r.status, 409);
	ct_resp_deinit(&r);
	char *dpath = sb_strfmt(V1 "/leases/%s", id);
	ct_call(&ct_shared, "DELETE", dpath, NULL, &r);
	assert_int_equal(r.status, 409);
	ct_resp_deinit(&r);
	/* Still alive and still the G2 owner's. */
	json_t *b = exec_body(id, "true");
	json_object_set_new(b, "acquisitionId", json_string("g2-owner"));
	ct_call(&ct_shared, "POST", V2 "/exec", b, &r);
	assert_int_equal(r.status, 200);
	ct_resp_deinit(&r);
	/* And the G1 prefix cannot be claimed by a G2 client. */
	ct_call(&ct_shared, "POST", V2 "/leases/acquire",
	        json_pack("{s:s, s:s, s:s}", "acquisitionId", "g1:pc-env-x:1", "environmentId", "e",
	                  "runId", "r"),
	        &r);
	assert_int_equal(r.status, 400);
	ct_resp_deinit(&r);
	ct_call(&ct_shared, "DELETE", dpath, json_pack("{s:s}", "acquisitionId", "g2-owner"), &r);
	assert_int_equal(r.status, 200);
	ct_resp_deinit(&r);
	free(dpath);
	free(ws);
	free(id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(g1_acquire_exec_resume_release_destroy),
	    cmocka_unit_test(a_g2_lease_refuses_requests_without_acquisition),
	};
	return cmocka_run_group_tests(tests, ct_group_setup, ct_group_teardown);
}
