/* 200 streaming execs at once on one lease, each over its own connection (curl multi): every
 * stream carries exactly its own command's bytes, in order, and ends with exit code 0. */
#include <string.h>

#include "srvtest.h"

#define N 200
#define LINES 400

static void two_hundred_concurrent_streams_lose_no_bytes(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_ALL);
	sbt_daemon d;
	sbt_daemon_start(&d, NULL);
	if (!sbt_sandbox_ok(&d)) {
		sbt_daemon_stop(&d);
		curl_global_cleanup();
		sbt_skip(SBT_NO_SANDBOX);
	}
	char *lease = sbt_acquire(&d, "concurrent");
	char *t = sb_strfmt("/v1/leases/%s/exec", lease);
	CURLM *m = curl_multi_init();
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)N);
	static sbt_resp resp[N];
	static struct curl_slist *hdrs[N];
	static CURL *easy[N];
	static char *bodies[N];
	for (int i = 0; i < N; i++) {
		bodies[i] =
		    sb_strfmt("{\"argv\":[\"seq\",\"-f\",\"%d:%%g\",\"1\",\"%d\"]}", i, LINES);
		sbt_req rq = {.method = "POST",
		              .target = t,
		              .body = bodies[i],
		              .accept = "text/event-stream",
		              .tcp = (i % 2) == 0};
		easy[i] = sbt_easy(&d, &rq, &resp[i], &hdrs[i]);
		curl_easy_setopt(easy[i], CURLOPT_FORBID_REUSE, 1L);
		curl_multi_add_handle(m, easy[i]);
	}
	int running = 1;
	while (running) {
		assert_int_equal(curl_multi_perform(m, &running), CURLM_OK);
		if (running)
			curl_multi_poll(m, NULL, 0, 1000, NULL);
	}
	int msgs;
	CURLMsg *msg;
	while ((msg = curl_multi_info_read(m, &msgs)))
		if (msg->msg == CURLMSG_DONE)
			assert_int_equal(msg->data.result, CURLE_OK);
	for (int i = 0; i < N; i++) {
		curl_multi_remove_handle(m, easy[i]);
		sbt_easy_finish(easy[i], &resp[i], hdrs[i]);
		assert_int_equal(resp[i].status, 200);
		sbt_event *ev;
		size_t n = sbt_sse_parse(resp[i].body.data, resp[i].body.len, &ev, NULL);
		sb_buf out = SB_BUF_INIT;
		uint64_t next = 0;
		bool ended = false;
		for (size_t k = 0; k < n; k++) {
			if (!strcmp(ev[k].type, "end")) {
				assert_int_equal(
				    json_integer_value(json_object_get(ev[k].data, "exit_code")),
				    0);
				ended = true;
			} else if (!strcmp(ev[k].type, "stdout")) {
				assert_int_equal(
				    json_integer_value(json_object_get(ev[k].data, "offset")),
				    next);
				const char *b64 =
				    json_string_value(json_object_get(ev[k].data, "data_b64"));
				size_t before = out.len;
				SB_ASSERT_OK(sb_b64_decode(b64, strlen(b64), &out));
				next += out.len - before;
			}
		}
		if (!ended)
			print_error("stream %d: %zu events, last %s, body tail: %.600s\n", i, n,
			            n ? ev[n - 1].type : "-",
			            resp[i].body.len > 600
			                ? resp[i].body.data + resp[i].body.len - 600
			                : sb_buf_cstr(&resp[i].body));
		assert_true(ended);
		sb_buf want = SB_BUF_INIT;
		for (int k = 1; k <= LINES; k++)
			sb_buf_appendf(&want, "%d:%d\n", i, k);
		assert_int_equal(out.len, want.len);
		assert_memory_equal(out.data, want.data, want.len);
		sb_buf_deinit(&want);
		sb_buf_deinit(&out);
		sbt_events_free(ev, n);
		sbt_resp_deinit(&resp[i]);
		free(bodies[i]);
	}
	curl_multi_cleanup(m);
	free(t);
	free(lease);
	sbt_daemon_stop(&d);
	curl_global_cleanup();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(two_hundred_concurrent_streams_lose_no_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
