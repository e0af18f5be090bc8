/* Uploads and downloads of one file at once. WRITERS threads replace workspace file f with one
 * of two versions (different sizes and bytes) while READERS threads download it: every
 * download must be one whole version (an upload is a temp file renamed over the target), never
 * a mix, a short file or an error. Afterwards nothing is left and /metrics counts exactly the
 * file bytes downloaded. SANDBAR_STRESS_TRANSFERS raises the count per thread. */
#include <pthread.h>

#include "stress.h"

#define WRITERS 3
#define READERS 3
#define TRANSFERS_DEFAULT 60
#define SIZE_A 65536
#define SIZE_B 40000

static char *version_a, *version_b;

typedef struct xfer {
	sbt_daemon *d;
	const char *target;
	int n, ok, failures;
	uint64_t bytes;
	char first_error[300];
} xfer;

static void failed(xfer *x, const char *what, long st, const sbt_resp *r)
{
	x->failures++;
	if (!x->first_error[0])
		snprintf(x->first_error, sizeof x->first_error, "%s: HTTP %ld, %zu bytes: %.120s",
		         what, st, r->body.len, sb_buf_cstr((sb_buf *)&r->body));
}

static void *upload(void *ud)
{
	xfer *x = ud;
	for (int i = 0; i < x->n; i++) {
		const char *v = i % 2 ? version_b : version_a;
		sbt_req rq = {.method = "PUT", .target = x->target, .body = v};
		sbt_resp r;
		long st = sbt_http(x->d, &rq, &r);
		if (st == 200)
			x->ok++;
		else
			failed(x, "upload", st, &r);
		sbt_resp_deinit(&r);
	}
	return NULL;
}

static void *download(void *ud)
{
	xfer *x = ud;
	for (int i = 0; i < x->n; i++) {
		sbt_req rq = {.method = "GET", .target = x->target};
		sbt_resp r;
		long st = sbt_http(x->d, &rq, &r);
		const char *b = sb_buf_cstr(&r.body);
		bool whole = (r.body.len == SIZE_A && memcmp(b, version_a, SIZE_A) == 0) ||
		             (r.body.len == SIZE_B && memcmp(b, version_b, SIZE_B) == 0);
		if (st == 200 && whole) {
			x->ok++;
			x->bytes += r.body.len;
		} else {
			failed(x, "download", st, &r);
		}
		sbt_resp_deinit(&r);
	}
	return NULL;
}

static void downloads_see_whole_versions_only(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_ALL);
	version_a = sb_xmalloc(SIZE_A + 1);
	memset(version_a, 'a', SIZE_A);
	version_a[SIZE_A] = '\0';
	version_b = sb_xmalloc(SIZE_B + 1);
	for (int i = 0; i < SIZE_B; i++)
		version_b[i] = (char)('0' + i % 10);
	version_b[SIZE_B] = '\0';

	sbt_daemon d;
	sbt_daemon_start(&d, NULL);
	assert_true(sbt_sandbox_ok(&d));
	char *lease = sbt_acquire(&d, "upload-download");
	char *target = sb_strfmt("/v1/leases/%s/files/dir/f.bin", lease);
	/* the file exists before the first download */
	sbt_req first = {.method = "PUT", .target = target, .body = version_a};
	sbt_resp r;
	assert_int_equal(sbt_http(&d, &first, &r), 200);
	sbt_resp_deinit(&r);

	int n = sbt_stress_count("SANDBAR_STRESS_TRANSFERS", TRANSFERS_DEFAULT);
	xfer x[WRITERS + READERS];
	pthread_t th[WRITERS + READERS];
	for (int i = 0; i < WRITERS + READERS; i++) {
		x[i] = (xfer){.d = &d, .target = target, .n = n};
		assert_int_equal(
		    pthread_create(&th[i], NULL, i < WRITERS ? upload : download, &x[i]), 0);
	}
	int failures = 0, ok = 0;
	uint64_t bytes = 0;
	for (int i = 0; i < WRITERS + READERS; i++) {
		pthread_join(th[i], NULL);
		failures += x[i].failures;
		ok += x[i].ok;
		bytes += x[i].bytes;
		if (x[i].first_error[0])
			print_error("thread %d: %s\n", i, x[i].first_error);
	}
	assert_int_equal(failures, 0);
	assert_int_equal(ok, (WRITERS + READERS) * n);

	/* no temp file of an upload remains beside the target */
	char *dir = sb_strfmt("%s/leases/%s/workspace/dir", d.state_dir, lease);
	DIR *dd = opendir(dir);
	assert_non_null(dd);
	int entries = 0;
	for (struct dirent *de; (de = readdir(dd));)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			entries++;
	closedir(dd);
	free(dir);
	assert_int_equal(entries, 1);

	char *m = metrics_text(&d);
	assert_metric(m, "sandbar_bytes_streamed_total{kind=\"file\"}", bytes);
	assert_metric(m, "sandbar_bytes_streamed_total{kind=\"json\"}", 0);
	assert_metric(m, "sandbar_http_requests_total{class=\"4xx\"}", 0);
	assert_metric(m, "sandbar_http_requests_total{class=\"5xx\"}", 0);
	free(m);

	char *del = sb_strfmt("/v1/leases/%s", lease);
	long st;
	json_decref(sbt_call(&d, "DELETE", del, NULL, &st));
	assert_int_equal(st, 200);
	free(del);
	char *ids[] = {lease, NULL};
	assert_nothing_left(&d, ids, 1);
	m = metrics_text(&d);
	assert_metric(m, "sandbar_leases{state=\"active\"}", 0);
	assert_metric(m, "sandbar_execs_running", 0);
	free(m);
	free(target);
	free(lease);
	free(version_a);
	free(version_b);
	sbt_daemon_stop(&d);
	curl_global_cleanup();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(downloads_see_whole_versions_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
