/* The compat SSE stream carries `id:` fields, and re-posting the same /exec with one of them as
 * Last-Event-ID resumes the stream right after that event: what was received up to it plus
 * what the resumed stream delivers is the command's output, byte for byte, UTF-8 included. */
#include "testutil.h"

#include "compat_daemon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRIPT                                                                                     \
	"yes 'h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93' | head -c 3000001; seq 1 3000 >&2; "         \
	"yes tail | head -c 700000"

typedef struct event {
	char *id, *type, *data; /* data: the JSON "data" string for stdout/stderr */
} event;

/* Every event of an SSE body, in order. */
static size_t parse(const sb_buf *body, event **out)
{
	*out = NULL;
	size_t n = 0;
	const char *p = sb_buf_cstr((sb_buf *)body);
	while (*p) {
		const char *end = strstr(p, "\n\n");
		assert_non_null(end);
		event e = {0};
		for (const char *l = p; l < end;) {
			const char *nl = memchr(l, '\n', (size_t)(end - l));
			if (!nl)
				nl = end;
			if (strncmp(l, "id: ", 4) == 0)
				e.id = sb_xstrndup(l + 4, (size_t)(nl - l - 4));
			else if (strncmp(l, "event: ", 7) == 0)
				e.type = sb_xstrndup(l + 7, (size_t)(nl - l - 7));
			else if (strncmp(l, "data: ", 6) == 0)
				e.data = sb_xstrndup(l + 6, (size_t)(nl - l - 6));
			l = nl + 1;
		}
		if (e.type) {
			*out = sb_xrealloc(*out, (n + 1) * sizeof **out);
			(*out)[n++] = e;
		} else {
			free(e.id);
			free(e.data);
		}
		p = end + 2;
	}
	return n;
}

static void events_free(event *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].id);
		free(v[i].type);
		free(v[i].data);
	}
	free(v);
}

/* Append the output chunks of events [from, to) per stream. */
static void collect(const event *v, size_t from, size_t to, sb_buf *out, sb_buf *err)
{
	for (size_t i = from; i < to; i++) {
		bool is_out = strcmp(v[i].type, "stdout") == 0;
		if (!is_out && strcmp(v[i].type, "stderr") != 0)
			continue;
		assert_non_null(v[i].id);
		json_t *j = json_loads(v[i].data, 0, NULL);
		assert_non_null(j);
		json_t *d = json_object_get(j, "data");
		sb_buf_append(is_out ? out : err, json_string_value(d), json_string_length(d));
		json_decref(j);
	}
}

static json_t *exec_body(const char *id)
{
	return json_pack("{s:s, s:s, s:s, s:[ss], s:b}", "providerLeaseId", id, "acquisitionId",
	                 "resume-1", "command", "sh", "args", "-c", SCRIPT, "streamOutput", 1);
}

static void compat_stream_resumes_from_last_event_id_byte_exact(void **state)
{
	(void)state;
	ct_resp r;
	ct_call(&ct_shared, "POST", "/api/paperclip-sandbox/v2/leases/acquire",
	        json_pack("{s:s, s:s, s:s}", "acquisitionId", "resume-1", "environmentId", "e",
	                  "runId", "r"),
	        &r);
	assert_int_equal(r.status, 200);
	char *id = sb_xstrdup(json_string_value(json_object_get(r.json, "providerLeaseId")));
	ct_resp_deinit(&r);

	/* What the command prints, computed on the host the same way. */
	char *want_out = sbt_sh_out("sh -c \"yes 'h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93' | "
	                            "head -c 3000001; yes tail | head -c 700000\"");
	char *want_err = sbt_sh_out("seq 1 3000");

	json_t *body = exec_body(id);
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	ct_http(&ct_shared, "POST", "/api/paperclip-sandbox/v2/exec", CT_TOKEN, text, NULL, NULL,
	        &r);
	assert_int_equal(r.status, 200);
	event *all = NULL;
	size_t n = parse(&r.body, &all);
	ct_resp_deinit(&r);
	size_t chunks = 0;
	for (size_t i = 0; i < n; i++)
		chunks += strcmp(all[i].type, "stdout") == 0 || strcmp(all[i].type, "stderr") == 0;
	assert_true(chunks >= 4);
	assert_string_equal(all[n - 1].type, "complete");

	/* Resume after several points: the first event, one in the middle, the last chunk. */
	size_t points[3] = {0, chunks / 2, chunks - 1};
	for (int k = 0; k < 3; k++) {
		size_t at = points[k];
		assert_non_null(all[at].id);
		sb_buf out = SB_BUF_INIT, err = SB_BUF_INIT;
		collect(all, 0, at + 1, &out, &err);
		char *hdr = sb_strfmt("Last-Event-ID: %s", all[at].id);
		const char *hdrs[] = {hdr, NULL};
		ct_http_h(&ct_shared, "POST", "/api/paperclip-sandbox/v2/exec", CT_TOKEN, hdrs,
		          text, NULL, NULL, &r);
		assert_int_equal(r.status, 200);
		event *more = NULL;
		size_t m = parse(&r.body, &more);
		ct_resp_deinit(&r);
		assert_true(m >= 1);
		assert_string_equal(more[m - 1].type, "complete");
		collect(more, 0, m, &out, &err);
		assert_int_equal(out.len, strlen(want_out));
		assert_memory_equal(out.data, want_out, out.len);
		assert_int_equal(err.len, strlen(want_err));
		assert_memory_equal(err.data, want_err, err.len);
		/* The command ran once: a resume never starts it again. */
		json_t *done = json_loads(more[m - 1].data, 0, NULL);
		assert_int_equal(json_string_length(json_object_get(done, "stdout")),
		                 strlen(want_out));
		json_decref(done);
		events_free(more, m);
		free(hdr);
		sb_buf_deinit(&out);
		sb_buf_deinit(&err);
	}
	/* A broken id is refused. */
	const char *bad[] = {"Last-Event-ID: nonsense", NULL};
	ct_http_h(&ct_shared, "POST", "/api/paperclip-sandbox/v2/exec", CT_TOKEN, bad, text, NULL,
	          NULL, &r);
	assert_int_equal(r.status, 400);
	ct_resp_deinit(&r);
	events_free(all, n);
	free(text);
	free(want_out);
	free(want_err);
	free(id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(compat_stream_resumes_from_last_event_id_byte_exact),
	};
	return cmocka_run_group_tests(tests, ct_group_setup, ct_group_teardown);
}
