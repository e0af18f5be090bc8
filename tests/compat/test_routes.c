/* The bridge protocol served by a real daemon (paperclip-bridge-protocol.md §2), under both
 * /api/paperclip-sandbox/v1 and /v2: auth before routing, health, probe, acquire with replay,
 * conflict and tombstones, resume (also after the sandbox was killed), release, destroy, exec
 * (JSON, the bridge session, env/args/cwd/stdin, named sessions, default-session timeout), and
 * destroy refused while an exec runs. */
#include "testutil.h"

#include "compat_daemon.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const PREFIXES[] = {"/api/paperclip-sandbox/v1", "/api/paperclip-sandbox/v2"};

static char *P(size_t i, const char *route)
{
	return sb_strfmt("%s%s", PREFIXES[i], route);
}

static void assert_error(const ct_resp *r, long status, const char *code)
{
	if (r->status != status || !r->json)
		fail_msg("want %ld %s, got %ld: %s", status, code, r->status,
		         sb_buf_cstr((sb_buf *)&r->body));
	assert_string_equal(json_string_value(json_object_get(r->json, "error")), code);
	assert_non_null(json_string_value(json_object_get(r->json, "message")));
}

static const char *jstr(const json_t *j, const char *path1, const char *path2)
{
	const json_t *v = json_object_get(j, path1);
	if (path2)
		v = json_object_get(v, path2);
	return json_string_value(v);
}

/* Acquire an ephemeral lease for acquisition acq; returns the lease id (malloc'd). */
static char *acquire(size_t pi, const char *acq, const char *cwd)
{
	ct_resp r;
	char *path = P(pi, "/leases/acquire");
	ct_call(&ct_shared, "POST", path,
	        json_pack("{s:s, s:s, s:s, s:s, s:s}", "acquisitionId", acq, "environmentId",
	                  "env-1", "runId", "run-1", "issueId", "issue-42", "requestedCwd", cwd),
	        &r);
	if (r.status != 200)
		fail_msg("acquire %s: %ld %s", acq, r.status, sb_buf_cstr(&r.body));
	char *id = sb_xstrdup(jstr(r.json, "providerLeaseId", NULL));
	ct_resp_deinit(&r);
	free(path);
	return id;
}

static json_t *exec_body(const char *id, const char *acq, const char *script)
{
	return json_pack("{s:s, s:s, s:s, s:[ss]}", "providerLeaseId", id, "acquisitionId", acq,
	                 "command", "sh", "args", "-c", script);
}

/* ---------------------------------------------------------------- auth and routing */

static void bridge_auth_runs_before_routing(void **state)
{
	(void)state;
	for (size_t i = 0; i < 2; i++) {
		const char *routes[] = {"/health", "/leases/acquire", "/no/such/route"};
		for (size_t k = 0; k < 3; k++) {
			char *path = P(i, routes[k]);
			ct_resp r;
			ct_http(&ct_shared, "GET", path, NULL, NULL, NULL, NULL, &r);
			assert_error(&r, 401, "unauthorized");
			ct_resp_deinit(&r);
			ct_http(&ct_shared, "GET", path, "wrong-token", NULL, NULL, NULL, &r);
			assert_error(&r, 401, "unauthorized");
			/* The stock plugin sees the bridge's own wording (spec §2.2). */
			assert_string_equal(jstr(r.json, "message", NULL),
			                    "Missing or invalid bridge bearer token.");
			ct_resp_deinit(&r);
			free(path);
		}
		/* Unknown paths and known paths with another method alike: 404. */
		const char *const misses[][2] = {{"GET", "/no/such/route"},
		                                 {"GET", "/exec"},
		                                 {"POST", "/health"},
		                                 {"PUT", "/leases/x"}};
		for (size_t k = 0; k < 4; k++) {
			char *path = P(i, misses[k][1]);
			ct_resp r;
			ct_http(&ct_shared, misses[k][0], path, CT_TOKEN, NULL, NULL, NULL, &r);
			assert_error(&r, 404, "not_found");
			assert_non_null(
			    strstr(jstr(r.json, "message", NULL), "No bridge route matched"));
			ct_resp_deinit(&r);
			free(path);
		}
	}
}

static void bridge_without_a_token_refuses_everything(void **state)
{
	(void)state;
	ct_daemon closed;
	ct_daemon_start(&closed, NULL, NULL);
	ct_resp r;
	ct_http(&closed, "GET", "/api/paperclip-sandbox/v1/health", NULL, NULL, NULL, NULL, &r);
	assert_error(&r, 401, "unauthorized");
	ct_resp_deinit(&r);
	ct_http(&closed, "GET", "/api/paperclip-sandbox/v2/health", "", NULL, NULL, NULL, &r);
	assert_error(&r, 401, "unauthorized");
	ct_resp_deinit(&r);
	ct_daemon_stop(&closed);
}

static void bridge_health_advertises_g2_capabilities(void **state)
{
	(void)state;
	for (size_t i = 0; i < 2; i++) {
		char *path = P(i, "/health");
		ct_resp r;
		ct_http(&ct_shared, "GET", path, CT_TOKEN, NULL, NULL, NULL, &r);
		assert_int_equal(r.status, 200);
		assert_true(json_is_true(json_object_get(r.json, "ok")));
		json_t *want =
		    json_pack("{s:b, s:b, s:b, s:b, s:b}", "reuseLease", 1, "namedSessions", 1,
		              "previewUrls", 0, "acquisitionReplay", 1, "scopedReuse", 1);
		assert_true(json_equal(json_object_get(r.json, "capabilities"), want));
		json_decref(want);
		ct_resp_deinit(&r);
		free(path);
	}
}

static void bridge_probe_creates_and_destroys_a_sandbox(void **state)
{
	(void)state;
	for (size_t i = 0; i < 2; i++) {
		char *path = P(i, "/probe");
		ct_resp r;
		ct_call(&ct_shared, "POST", path,
		        json_pack("{s:s}", "requestedCwd", "/workspace/probe"), &r);
		assert_int_equal(r.status, 200);
		assert_true(json_is_true(json_object_get(r.json, "ok")));
		assert_string_equal(jstr(r.json, "metadata", "stdout"), "/workspace/probe");
		assert_string_equal(jstr(r.json, "metadata", "remoteCwd"), "/workspace/probe");
		ct_resp_deinit(&r);
		free(path);
	}
	/* Nothing is left behind. */
	ct_resp r;
	ct_http(&ct_shared, "GET", "/v1/leases", CT_TOKEN, NULL, NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_null(strstr(sb_buf_cstr(&r.body), "\"state\":\"active\""));
	ct_resp_deinit(&r);
}

/* ---------------------------------------------------------------- acquire */

static void bridge_acquire_validates_replays_conflicts_and_tombstones(void **state)
{
	(void)state;
	for (size_t i = 0; i < 2; i++) {
		char *path = P(i, "/leases/acquire");
		ct_resp r;
		/* 400s, with no sandbox made. */
		ct_call(&ct_shared, "POST", path,
		        json_pack("{s:s, s:s}", "acquisitionId", "a", "runId", "r"), &r);
		assert_error(&r, 400, "invalid_request");
		ct_resp_deinit(&r);
		ct_call(&ct_shared, "POST", path,
		        json_pack("{s:s, s:s, s:s, s:b}", "acquisitionId", "a", "environmentId",
		                  "e", "runId", "r", "reuseLease", 1),
		        &r);
		assert_error(&r, 400, "invalid_request");
		ct_resp_deinit(&r);
		ct_call(&ct_shared, "POST", path,
		        json_pack("{s:s, s:s, s:s, s:b, s:s}", "acquisitionId", "a",
		                  "environmentId", "e", "runId", "r", "reuseLease", 1,
		                  "reuseScopeId", "xyz"),
		        &r);
		assert_error(&r, 400, "invalid_request");
		ct_resp_deinit(&r);

		/* Claim, then replay the same body: the same lease, nothing new. */
		char *acq = sb_strfmt("Acq_Replay.%zu", i);
		json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:s}", "acquisitionId",
		                         acq, "environmentId", "env-1", "runId", "run-1", "issueId",
		                         "issue-7", "reuseLease", 1, "keepAlive", 1, "reuseScopeId",
		                         i ? "0123456789abcdef0123456789ABCDEF"
		                           : "fedcba9876543210fedcba9876543210");
		ct_call(&ct_shared, "POST", path, json_incref(body), &r);
		assert_int_equal(r.status, 200);
		char *id = sb_xstrdup(jstr(r.json, "providerLeaseId", NULL));
		assert_true(sb_str_has_prefix(id, "pc-scope-"));
		assert_string_equal(jstr(r.json, "metadata", "acquisitionId"), acq);
		assert_string_equal(jstr(r.json, "metadata", "remoteCwd"), "/workspace/paperclip");
		assert_false(json_is_true(
		    json_object_get(json_object_get(r.json, "metadata"), "resumedLease")));
		ct_resp_deinit(&r);
		ct_call(&ct_shared, "POST", path, json_incref(body), &r);
		assert_int_equal(r.status, 200);
		assert_string_equal(jstr(r.json, "providerLeaseId", NULL), id);
		ct_resp_deinit(&r);

		/* The ownership mirror in the workspace names the owner. */
		char *ws = ct_workspace(&ct_shared, id);
		char *mirror = sbt_read(ws, "paperclip/.paperclip-lease.json", NULL);
		assert_non_null(mirror);
		assert_non_null(strstr(mirror, acq));
		free(mirror);

		/* Changed parameters under the same acquisition: 409. */
		json_t *changed = json_deep_copy(body);
		json_object_set_new(changed, "requestedCwd", json_string("/workspace/other"));
		ct_call(&ct_shared, "POST", path, changed, &r);
		assert_error(&r, 409, "acquisition_conflict");
		ct_resp_deinit(&r);
		/* Another acquisition on the same reuse scope: 409. */
		json_t *other = json_deep_copy(body);
		json_object_set_new(other, "acquisitionId", json_string("someone-else"));
		ct_call(&ct_shared, "POST", path, other, &r);
		assert_error(&r, 409, "acquisition_conflict");
		ct_resp_deinit(&r);

		/* issueId is recorded, shown with the lease and in the lease listing. */
		char *lpath = sb_strfmt("/v1/leases/%s", id);
		ct_http(&ct_shared, "GET", lpath, CT_TOKEN, NULL, NULL, NULL, &r);
		assert_int_equal(r.status, 200);
		assert_non_null(strstr(sb_buf_cstr(&r.body), "issue-7"));
		ct_resp_deinit(&r);
		ct_http(&ct_shared, "GET", "/v1/leases", CT_TOKEN, NULL, NULL, NULL, &r);
		assert_int_equal(r.status, 200);
		assert_non_null(strstr(sb_buf_cstr(&r.body), "issue-7"));
		ct_resp_deinit(&r);
		free(lpath);

		/* Destroy, then a late replay cannot revive it. */
		char *dpath = sb_strfmt("%s/leases/%s", PREFIXES[i], id);
		ct_call(&ct_shared, "DELETE", dpath, json_pack("{s:s}", "acquisitionId", acq), &r);
		assert_int_equal(r.status, 200);
		ct_resp_deinit(&r);
		ct_call(&ct_shared, "DELETE", dpath, json_pack("{s:s}", "acquisitionId", acq), &r);
		assert_int_equal(r.status, 200); /* replayed destruction */
		ct_resp_deinit(&r);
		ct_call(&ct_shared, "POST", path, json_incref(body), &r);
		assert_error(&r, 409, "acquisition_conflict");
		ct_resp_deinit(&r);
		/* A new acquisition may claim the reuse scope again. */
		json_t *fresh = json_deep_copy(body);
		char *acq2 = sb_strfmt("%s-next", acq);
		json_object_set_new(fresh, "acquisitionId", json_string(acq2));
		ct_call(&ct_shared, "POST", path, fresh, &r);
		assert_int_equal(r.status, 200);
		assert_string_equal(jstr(r.json, "providerLeaseId", NULL), id);
		ct_resp_deinit(&r);
		ct_call(&ct_shared, "DELETE", dpath, json_pack("{s:s}", "acquisitionId", acq2), &r);
		assert_int_equal(r.status, 200);
		ct_resp_deinit(&r);
		free(acq2);
		free(dpath);
		free(ws);
		free(id);
		free(acq);
		json_decref(body);
		free(path);
	}
}

/* ---------------------------------------------------------------- resume, release */

static void bridge_resume_answers_state_lost_when_the_sandbox_died(void **state)
{
	(void)state;
	for (size_t i = 0; i < 2; i++) {
		char *acq = sb_strfmt("resume-%zu", i);
		char *id = acquire(i, acq, "/workspace/paperclip");
		char *path = P(i, "/leases/resume");
		ct_resp r;
		ct_call(&ct_shared, "POST", path,
		        json_pack("{s:s, s:s}", "providerLeaseId", id, "acquisitionId", acq), &r);
		assert_int_equal(r.status, 200);
		assert_string_equal(jstr(r.json, "providerLeaseId", NULL), id);
		assert_string_equal(jstr(r.json, "metadata", "acquisitionId"), acq);
		assert_true(json_is_true(
		    json_object_get(json_object_get(r.json, "metadata"), "resumedLease")));
		ct_resp_deinit(&r);
		/* A foreign or missing acquisition is refused before anything runs. */
		ct_call(&ct_shared, "POST", path,
		        json_pack("{s:s, s:s}", "providerLeaseId", id, "acquisitionId", "thief"),
		        &r);
		assert_error(&r, 409, "acquisition_conflict");
		ct_resp_deinit(&r);
		ct_call(&ct_shared, "POST", path, json_pack("{s:s}", "providerLeaseId", id), &r);
		assert_error(&r, 409, "acquisition_conflict");
		ct_resp_deinit(&r);
		ct_call(&ct_shared, "POST", path, json_pack("{}"), &r);
		assert_error(&r, 400, "invalid_request");
		ct_resp_deinit(&r);

		/* A corrupted mirror means the state is lost. */
		char *ws = ct_workspace(&ct_shared, id);
		sbt_write_str(ws, "paperclip/.paperclip-lease.json", "{not json");
		ct_call(&ct_shared, "POST", path,
		        json_pack("{s:s, s:s}", "providerLeaseId", id, "acquisitionId", acq), &r);
		assert_error(&r, 409, "sandbox_state_lost");
		ct_resp_deinit(&r);

		/* So does a sandbox that died. */
		char *acq2 = sb_strfmt("resume-killed-%zu", i);
		char *id2 = acquire(i, acq2, "/workspace/paperclip");
		ct_kill_sandbox(&ct_shared, id2);
		ct_call(&ct_shared, "POST", path,
		        json_pack("{s:s, s:s}", "providerLeaseId", id2, "acquisitionId", acq2), &r);
		assert_error(&r, 409, "sandbox_state_lost");
		ct_resp_deinit(&r);
		/* And an id nobody knows. */
		ct_call(&ct_shared, "POST", path,
		        json_pack("{s:s, s:s}", "providerLeaseId", "pc-acq-nobody", "acquisitionId",
		                  "nobody"),
		        &r);
		assert_error(&r, 409, "sandbox_state_lost");
		ct_resp_deinit(&r);
		free(ws);
		free(id2);
		free(acq2);
		free(path);
		free(id);
		free(acq);
	}
}

static void bridge_release_keeps_reusable_and_destroys_others(void **state)
{
	(void)state;
	for (size_t i = 0; i < 2; i++) {
		char *path = P(i, "/leases/release");
		ct_resp r;
		ct_call(&ct_shared, "POST", path, json_pack("{}"), &r); /* no lease: idempotent */
		assert_int_equal(r.status, 200);
		ct_resp_deinit(&r);

		char *acq = sb_strfmt("release-%zu", i);
		char *id = acquire(i, acq, "/workspace/paperclip");
		ct_call(&ct_shared, "POST", path,
		        json_pack("{s:s, s:b}", "providerLeaseId", id, "reuseLease", 1), &r);
		/* reuse needs the owner: v2 validates the body, v1 (a G1 request) meets a G2
		 * lease, which refuses requests without an acquisition (DESIGN.md §9.11) */
		if (i == 0)
			assert_error(&r, 409, "acquisition_conflict");
		else
			assert_error(&r, 400, "invalid_request");
		ct_resp_deinit(&r);
		ct_call(&ct_shared, "POST", path,
		        json_pack("{s:s, s:s, s:b}", "providerLeaseId", id, "acquisitionId", "x",
		                  "reuseLease", 1),
		        &r);
		assert_error(&r, 409, "acquisition_conflict");
		ct_resp_deinit(&r);
		ct_call(&ct_shared, "POST", path,
		        json_pack("{s:s, s:s, s:b}", "providerLeaseId", id, "acquisitionId", acq,
		                  "reuseLease", 1),
		        &r);
		assert_int_equal(r.status, 200);
		ct_resp_deinit(&r);
		char *ws = ct_workspace(&ct_shared, id);
		struct stat st;
		assert_int_equal(stat(ws, &st), 0); /* kept */
		ct_call(&ct_shared, "POST", path,
		        json_pack("{s:s, s:s}", "providerLeaseId", id, "acquisitionId", "x"), &r);
		assert_error(&r, 409, "acquisition_conflict"); /* not the owner: not destroyed */
		ct_resp_deinit(&r);
		ct_call(&ct_shared, "POST", path,
		        json_pack("{s:s, s:s}", "providerLeaseId", id, "acquisitionId", acq), &r);
		assert_int_equal(r.status, 200);
		ct_resp_deinit(&r);
		assert_int_not_equal(stat(ws, &st), 0); /* gone */
		ct_call(&ct_shared, "POST", path,
		        json_pack("{s:s, s:s}", "providerLeaseId", id, "acquisitionId", acq), &r);
		assert_int_equal(r.status, 200); /* completed: replay-safe */
		ct_resp_deinit(&r);
		char *dpath = sb_strfmt("%s/leases/", PREFIXES[i]);
		ct_http(&ct_shared, "DELETE", dpath, CT_TOKEN, NULL, NULL, NULL, &r);
		assert_true(r.status == 400 || r.status == 404);
		ct_resp_deinit(&r);
		free(dpath);
		free(ws);
		free(id);
		free(acq);
		free(path);
	}
}

/* ---------------------------------------------------------------- exec */

static void bridge_exec_runs_commands_as_composed(void **state)
{
	(void)state;
	for (size_t i = 0; i < 2; i++) {
		char *acq = sb_strfmt("exec-%zu", i);
		char *id = acquire(i, acq, "/workspace/paperclip");
		char *path = P(i, "/exec");
		ct_resp r;
		json_t *b = json_pack(
		    "{s:s, s:s, s:s, s:[ssssi], s:s, s:{s:s}, s:s, s:b}", "providerLeaseId", id,
		    "acquisitionId", acq, "command", "sh", "args", "-c",
		    "printf '%s|%s|%s|' \"$1\" \"$(pwd)\" \"$MY_VAR\"; cat; "
		    "echo oops >&2; exit 3",
		    "zero", "arg with 'quotes' and $dollar", 42, "cwd", "/workspace/paperclip",
		    "env", "MY_VAR", "v a l", "stdin", "from stdin\n", "streamOutput", 0);
		ct_call(&ct_shared, "POST", path, b, &r);
		assert_int_equal(r.status, 200);
		assert_int_equal(json_integer_value(json_object_get(r.json, "exitCode")), 3);
		assert_false(json_is_true(json_object_get(r.json, "timedOut")));
		assert_string_equal(jstr(r.json, "stdout", NULL),
		                    "arg with 'quotes' and $dollar|/workspace/paperclip|v a l|"
		                    "from stdin\n");
		assert_string_equal(jstr(r.json, "stderr", NULL), "oops\n");
		ct_resp_deinit(&r);

		/* Validation: ownership is checked before anything runs. */
		json_t *noacq = exec_body(id, acq, "true");
		json_object_del(noacq, "acquisitionId");
		ct_call(&ct_shared, "POST", path, noacq, &r);
		/* v2: 400 before any lookup; v1 (G1) finds a G2 lease: 409 (DESIGN.md §9.11) */
		if (i == 0)
			assert_error(&r, 409, "acquisition_conflict");
		else
			assert_error(&r, 400, "invalid_request");
		ct_resp_deinit(&r);
		ct_call(&ct_shared, "POST", path,
		        exec_body(id, "intruder", "touch /workspace/pwned"), &r);
		assert_error(&r, 409, "acquisition_conflict");
		ct_resp_deinit(&r);
		char *ws = ct_workspace(&ct_shared, id);
		assert_null(sbt_read(ws, "pwned", NULL));
		json_t *badenv = exec_body(id, acq, "true");
		json_object_set_new(badenv, "env", json_pack("{s:s}", "bad-key", "v"));
		ct_call(&ct_shared, "POST", path, badenv, &r);
		assert_error(&r, 400, "invalid_request");
		assert_non_null(strstr(jstr(r.json, "message", NULL),
		                       "Invalid sandbox environment variable key: bad-key"));
		ct_resp_deinit(&r);
		json_t *nocmd = exec_body(id, acq, "true");
		json_object_del(nocmd, "command");
		ct_call(&ct_shared, "POST", path, nocmd, &r);
		assert_error(&r, 400, "invalid_request");
		ct_resp_deinit(&r);

		free(ws);
		free(path);
		free(id);
		free(acq);
	}
}

static void bridge_named_sessions_keep_cwd_and_env(void **state)
{
	(void)state;
	char *id = acquire(1, "sessions", "/workspace/paperclip");
	char *path = P(1, "/exec");
	ct_resp r;
	json_t *b = exec_body(id, "sessions", "mkdir -p sub; true");
	json_object_set_new(b, "cwd", json_string("/workspace/paperclip"));
	ct_call(&ct_shared, "POST", path, b, &r);
	assert_int_equal(r.status, 200);
	ct_resp_deinit(&r);
	b = exec_body(id, "sessions", "true");
	json_object_set_new(b, "cwd", json_string("/workspace/paperclip/sub"));
	json_object_set_new(b, "env", json_pack("{s:s}", "KEEP", "kept"));
	json_object_set_new(b, "sessionId", json_string("agent"));
	ct_call(&ct_shared, "POST", path, b, &r);
	assert_int_equal(r.status, 200);
	ct_resp_deinit(&r);
	/* Same session, no cwd and no env: both persist. */
	b = exec_body(id, "sessions", "printf '%s %s' \"$(pwd)\" \"${KEEP-unset}\"");
	json_object_set_new(b, "sessionId", json_string("agent"));
	ct_call(&ct_shared, "POST", path, b, &r);
	assert_string_equal(jstr(r.json, "stdout", NULL), "/workspace/paperclip/sub kept");
	ct_resp_deinit(&r);
	/* Another session sees neither. */
	b = exec_body(id, "sessions", "printf '%s %s' \"$(pwd)\" \"${KEEP-unset}\"");
	json_object_set_new(b, "sessionId", json_string("other"));
	ct_call(&ct_shared, "POST", path, b, &r);
	assert_string_equal(jstr(r.json, "stdout", NULL), "/workspace/paperclip unset");
	ct_resp_deinit(&r);
	/* The default session has no memory. */
	b = exec_body(id, "sessions", "printf '%s' \"${KEEP-unset}\"");
	json_object_set_new(b, "sessionStrategy", json_string("default"));
	ct_call(&ct_shared, "POST", path, b, &r);
	assert_string_equal(jstr(r.json, "stdout", NULL), "unset");
	ct_resp_deinit(&r);
	free(path);
	free(id);
}

/* A later owner of a reusable lease id never inherits an earlier owner's session. */
static void bridge_sessions_do_not_outlive_their_owner(void **state)
{
	(void)state;
	const char *scope = "abcdefabcdefabcdefabcdefabcdef01";
	char *path = P(0, "/leases/acquire");
	char *xpath = P(0, "/exec");
	const char *owners[] = {"owner-a", "owner-b"};
	char *id = NULL;
	for (int k = 0; k < 2; k++) {
		ct_resp r;
		ct_call(&ct_shared, "POST", path,
		        json_pack("{s:s, s:s, s:s, s:b, s:b, s:s}", "acquisitionId", owners[k],
		                  "environmentId", "e", "runId", "r", "reuseLease", 1, "keepAlive",
		                  1, "reuseScopeId", scope),
		        &r);
		assert_int_equal(r.status, 200);
		free(id);
		id = sb_xstrdup(jstr(r.json, "providerLeaseId", NULL));
		ct_resp_deinit(&r);
		json_t *b = exec_body(id, owners[k], "printf '%s' \"${SECRET-unset}\"");
		json_object_set_new(b, "sessionId", json_string("agent"));
		if (k == 0)
			json_object_set_new(b, "env", json_pack("{s:s}", "SECRET", "a-only"));
		ct_call(&ct_shared, "POST", xpath, b, &r);
		assert_int_equal(r.status, 200);
		assert_string_equal(jstr(r.json, "stdout", NULL), k == 0 ? "a-only" : "unset");
		ct_resp_deinit(&r);
		char *dpath = sb_strfmt("%s/leases/%s", PREFIXES[0], id);
		ct_call(&ct_shared, "DELETE", dpath, json_pack("{s:s}", "acquisitionId", owners[k]),
		        &r);
		assert_int_equal(r.status, 200);
		ct_resp_deinit(&r);
		free(dpath);
	}
	free(id);
	free(xpath);
	free(path);
}

static void bridge_default_session_timeout_destroys_the_lease(void **state)
{
	(void)state;
	char *id = acquire(0, "timeout-default", "/workspace/paperclip");
	char *path = P(0, "/exec");
	ct_resp r;
	json_t *b = exec_body(id, "timeout-default", "echo started; sleep 30");
	json_object_set_new(b, "timeoutMs", json_integer(300));
	json_object_set_new(b, "sessionStrategy", json_string("default"));
	ct_call(&ct_shared, "POST", path, b, &r);
	assert_int_equal(r.status, 200);
	assert_true(json_is_true(json_object_get(r.json, "timedOut")));
	assert_true(json_is_null(json_object_get(r.json, "exitCode")));
	assert_string_equal(jstr(r.json, "stdout", NULL), "started\n");
	assert_non_null(strstr(jstr(r.json, "stderr", NULL), "timed out"));
	ct_resp_deinit(&r);
	char *rpath = P(0, "/leases/resume");
	ct_call(&ct_shared, "POST", rpath,
	        json_pack("{s:s, s:s}", "providerLeaseId", id, "acquisitionId", "timeout-default"),
	        &r);
	assert_error(&r, 409, "sandbox_state_lost");
	ct_resp_deinit(&r);
	free(rpath);
	free(path);
	free(id);
}

/* A DELETE while an exec runs is refused; afterwards it succeeds. The command waits for a
 * file the test creates, so nothing here depends on timing. */
typedef struct during {
	const char *dpath, *acq, *ws;
	bool deleted_during;
	long status_during;
} during;

static void on_piece(void *ud, const char *p, size_t n)
{
	during *d = ud;
	if (d->deleted_during || !memmem(p, n, "running", 7))
		return;
	d->deleted_during = true;
	ct_resp r;
	ct_call(&ct_shared, "DELETE", d->dpath, json_pack("{s:s}", "acquisitionId", d->acq), &r);
	d->status_during = r.status;
	ct_resp_deinit(&r);
	sbt_write_str(d->ws, "go", "");
}

static void bridge_destroy_is_refused_while_an_exec_runs(void **state)
{
	(void)state;
	char *id = acquire(1, "busy", "/workspace/paperclip");
	char *ws = ct_workspace(&ct_shared, id);
	char *dpath = sb_strfmt("%s/leases/%s", PREFIXES[1], id);
	during d = {.dpath = dpath, .acq = "busy", .ws = ws};
	json_t *b = exec_body(id, "busy",
	                      "echo running; while [ ! -e /workspace/go ]; do sleep 0.01; done; "
	                      "echo done");
	json_object_set_new(b, "streamOutput", json_true());
	char *text = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	char *path = P(1, "/exec");
	ct_resp r;
	ct_http(&ct_shared, "POST", path, CT_TOKEN, text, on_piece, &d, &r);
	assert_int_equal(r.status, 200);
	assert_true(d.deleted_during);
	assert_int_equal(d.status_during, 409);
	assert_non_null(strstr(sb_buf_cstr(&r.body), "event: complete"));
	ct_resp_deinit(&r);
	ct_call(&ct_shared, "DELETE", dpath, json_pack("{s:s}", "acquisitionId", "busy"), &r);
	assert_int_equal(r.status, 200);
	ct_resp_deinit(&r);
	free(path);
	free(text);
	free(dpath);
	free(ws);
	free(id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(bridge_auth_runs_before_routing),
	    cmocka_unit_test(bridge_without_a_token_refuses_everything),
	    cmocka_unit_test(bridge_health_advertises_g2_capabilities),
	    cmocka_unit_test(bridge_probe_creates_and_destroys_a_sandbox),
	    cmocka_unit_test(bridge_acquire_validates_replays_conflicts_and_tombstones),
	    cmocka_unit_test(bridge_resume_answers_state_lost_when_the_sandbox_died),
	    cmocka_unit_test(bridge_release_keeps_reusable_and_destroys_others),
	    cmocka_unit_test(bridge_exec_runs_commands_as_composed),
	    cmocka_unit_test(bridge_named_sessions_keep_cwd_and_env),
	    cmocka_unit_test(bridge_sessions_do_not_outlive_their_owner),
	    cmocka_unit_test(bridge_default_session_timeout_destroys_the_lease),
	    cmocka_unit_test(bridge_destroy_is_refused_while_an_exec_runs),
	};
	return cmocka_run_group_tests(tests, ct_group_setup, ct_group_teardown);
}
