/* The bridge's SSE exec stream, byte for byte, from a real daemon: a chunk holding a newline, a
 * multi-byte character whose bytes the command writes in two separate writes (so the daemon
 * reads them apart), stderr interleaved, and the `complete` result repeating all output. The
 * command waits for files the test creates after seeing each event, so the event boundaries
 * do not depend on timing. */
#include "testutil.h"

#include "compat_daemon.h"

#include <stdlib.h>
#include <string.h>

typedef struct steps {
	char *ws;
	int stage;
	sb_buf seen;
} steps;

static void on_piece(void *ud, const char *p, size_t n)
{
	steps *s = ud;
	sb_buf_append(&s->seen, p, n);
	const char *all = sb_buf_cstr(&s->seen);
	if (s->stage == 0 && strstr(all, "data: {\"data\":\"a\\nb\"}\n\n")) {
		s->stage = 1;
		sbt_write_str(s->ws, "go1", "");
	} else if (s->stage == 1 && strstr(all, "event: stderr\ndata: {\"data\":\"x\"}\n\n")) {
		s->stage = 2;
		sbt_write_str(s->ws, "go2", "");
	}
}

static void stream_frames_are_byte_exact(void **state)
{
	(void)state;
	for (int v = 1; v <= 2; v++) {
		ct_resp r;
		char *acq = sb_strfmt("stream-%d", v);
		char *path = sb_strfmt("/api/paperclip-sandbox/v%d/leases/acquire", v);
		ct_call(&ct_shared, "POST", path,
		        json_pack("{s:s, s:s, s:s}", "acquisitionId", acq, "environmentId", "e",
		                  "runId", "r"),
		        &r);
		assert_int_equal(r.status, 200);
		char *id =
		    sb_xstrdup(json_string_value(json_object_get(r.json, "providerLeaseId")));
		ct_resp_deinit(&r);
		free(path);

		steps s = {.ws = ct_workspace(&ct_shared, id)};
		sb_buf_init(&s.seen);
		const char *script = "printf 'a\\nb'; "
		                     "while [ ! -e /workspace/go1 ]; do sleep 0.01; done; "
		                     "printf '\\303'; printf x >&2; "
		                     "while [ ! -e /workspace/go2 ]; do sleep 0.01; done; "
		                     "printf '\\251z'";
		json_t *b = json_pack("{s:s, s:s, s:s, s:[ss], s:b}", "providerLeaseId", id,
		                      "acquisitionId", acq, "command", "sh", "args", "-c", script,
		                      "streamOutput", 1);
		char *text = json_dumps(b, JSON_COMPACT);
		json_decref(b);
		path = sb_strfmt("/api/paperclip-sandbox/v%d/exec", v);
		ct_http(&ct_shared, "POST", path, CT_TOKEN, text, on_piece, &s, &r);
		assert_int_equal(r.status, 200);
		assert_true(sb_str_has_prefix(r.content_type, "text/event-stream"));
		/* Each output event carries `id: <exec id>:<stdout bytes>,<stderr bytes>` (what
		 * Last-Event-ID resumes from). */
		const char *body = sb_buf_cstr(&r.body);
		assert_true(sb_str_has_prefix(body, "id: "));
		char *xid = sb_xstrndup(body + 4, strcspn(body + 4, ":"));
		char *want = sb_strfmt(
		    "id: %s:3,0\nevent: stdout\ndata: {\"data\":\"a\\nb\"}\n\n"
		    "id: %s:3,1\nevent: stderr\ndata: {\"data\":\"x\"}\n\n"
		    "id: %s:6,1\nevent: stdout\ndata: {\"data\":\"\xc3\xa9z\"}\n\n"
		    "event: complete\ndata: {\"exitCode\":0,\"signal\":null,\"timedOut\":false,"
		    "\"stdout\":\"a\\nb\xc3\xa9z\",\"stderr\":\"x\",\"stdoutTruncated\":false,"
		    "\"stderrTruncated\":false}\n\n",
		    xid, xid, xid);
		free(xid);
		assert_string_equal(sb_buf_cstr(&r.body), want);
		free(want);
		ct_resp_deinit(&r);
		sb_buf_deinit(&s.seen);
		free(s.ws);
		free(text);
		free(path);
		free(id);
		free(acq);
	}
}

typedef struct ka {
	char *ws;
	bool released;
} ka;

static void on_keepalive(void *ud, const char *p, size_t n)
{
	ka *k = ud;
	if (!k->released && memmem(p, n, ": keepalive\n\n", 13)) {
		k->released = true;
		sbt_write_str(k->ws, "go", "");
	}
}

/* A quiet command gets ": keepalive" comments (the daemon's interval, short here), and the
 * stream still ends with the full result. The command waits for the first keepalive. */
static void stream_sends_keepalives_while_quiet(void **state)
{
	(void)state;
	ct_daemon K;
	ct_daemon_start_ex(&K, CT_TOKEN, NULL, NULL, 50);
	ct_resp r;
	ct_call(&K, "POST", "/api/paperclip-sandbox/v2/leases/acquire",
	        json_pack("{s:s, s:s, s:s}", "acquisitionId", "quiet", "environmentId", "e",
	                  "runId", "r"),
	        &r);
	assert_int_equal(r.status, 200);
	char *id = sb_xstrdup(json_string_value(json_object_get(r.json, "providerLeaseId")));
	ct_resp_deinit(&r);
	ka k = {.ws = ct_workspace(&K, id)};
	json_t *b = json_pack("{s:s, s:s, s:s, s:[ss], s:b}", "providerLeaseId", id,
	                      "acquisitionId", "quiet", "command", "sh", "args", "-c",
	                      "while [ ! -e /workspace/go ]; do sleep 0.01; done; echo woke",
	                      "streamOutput", 1);
	char *text = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	ct_http(&K, "POST", "/api/paperclip-sandbox/v2/exec", CT_TOKEN, text, on_keepalive, &k, &r);
	assert_int_equal(r.status, 200);
	assert_true(k.released);
	const char *body = sb_buf_cstr(&r.body);
	assert_true(sb_str_has_prefix(body, ": keepalive\n\n"));
	/* More keepalives may come between events; the events themselves are exact. */
	assert_non_null(strstr(body, "event: stdout\ndata: {\"data\":\"woke\\n\"}\n\n"));
	assert_true(sb_str_has_suffix(body,
	                              "event: complete\ndata: {\"exitCode\":0,\"signal\":null,"
	                              "\"timedOut\":false,\"stdout\":\"woke\\n\",\"stderr\":\"\","
	                              "\"stdoutTruncated\":false,\"stderrTruncated\":false}\n\n"));
	ct_resp_deinit(&r);
	free(text);
	free(k.ws);
	free(id);
	ct_daemon_stop(&K);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(stream_frames_are_byte_exact),
	    cmocka_unit_test(stream_sends_keepalives_while_quiet),
	};
	return cmocka_run_group_tests(tests, ct_group_setup, ct_group_teardown);
}
