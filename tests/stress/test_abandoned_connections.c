/* CONNS connections opened and abandoned while a client runs execs: a third connect and close
 * at once, a third send half a request head and close, a third connect and stay silent until
 * the end. The client's execs must all succeed (none locked out, none slowed past the curl
 * timeout), GET /v1/health must answer throughout, and afterwards the daemon holds no more
 * descriptors than before (every abandoned connection closed), nothing is left and /metrics
 * counts exactly the execs run. SANDBAR_STRESS_CONNS raises the count. */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "stress.h"

#define CONNS_DEFAULT 1000

typedef struct client {
	sbt_daemon *d;
	const char *lease;
	atomic_bool *stop;
	int ok, failures, health_ok, health_failures;
	uint64_t json_bytes;
	char first_error[400];
} client;

static void *run_client(void *ud)
{
	client *c = ud;
	char *t = sb_strfmt("/v1/leases/%s/exec", c->lease);
	/* at least a few execs, and on until the connections are all made */
	for (int i = 0; i < 5 || !atomic_load(c->stop); i++) {
		sbt_req rq = {
		    .method = "POST", .target = t, .body = "{\"argv\":[\"echo\",\"hi\"]}"};
		sbt_resp r;
		long st = sbt_http(c->d, &rq, &r);
		if (st == 200 && sbt_jstr(r.json, "stdout") &&
		    !strcmp(sbt_jstr(r.json, "stdout"), "hi\n")) {
			c->ok++;
			c->json_bytes += r.body.len;
		} else {
			c->failures++;
			if (!c->first_error[0])
				snprintf(c->first_error, sizeof c->first_error,
				         "exec: HTTP %ld (curl %d) %s", st, (int)r.curl_rc,
				         sb_buf_cstr(&r.body));
		}
		sbt_resp_deinit(&r);
		sbt_req hq = {.method = "GET", .target = "/v1/health", .auth = SBT_AUTH_NONE};
		st = sbt_http(c->d, &hq, &r);
		if (st == 200)
			c->health_ok++;
		else
			c->health_failures++;
		sbt_resp_deinit(&r);
	}
	free(t);
	return NULL;
}

static int daemon_fds(pid_t pid)
{
	char *p = sb_strfmt("/proc/%d/fd", (int)pid);
	DIR *dir = opendir(p);
	free(p);
	int n = 0;
	for (struct dirent *de; dir && (de = readdir(dir));)
		if (de->d_name[0] != '.')
			n++;
	if (dir)
		closedir(dir);
	return n;
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void abandoned_connections_lock_no_one_out(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_ALL);
	int conns = sbt_stress_count("SANDBAR_STRESS_CONNS", CONNS_DEFAULT);
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = rl.rlim_max;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_true(rl.rlim_cur > (rlim_t)conns + 200);

	sbt_daemon d;
	sbt_daemon_start(&d, NULL);
	assert_true(sbt_sandbox_ok(&d));
	char *lease = sbt_acquire(&d, "abandoned");
	int fds_before = daemon_fds(d.pid);

	atomic_bool stop = false;
	client c = {.d = &d, .lease = lease, .stop = &stop};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, run_client, &c), 0);
	int *held = sb_xcalloc((size_t)conns, sizeof *held);
	int nheld = 0, refused = 0;
	for (int i = 0; i < conns; i++) {
		int fd = connect_unix(d.sock);
		if (fd < 0) {
			refused++;
			continue;
		}
		switch (i % 3) {
		case 0:
			close(fd);
			break;
		case 1: {
			static const char half[] =
			    "POST /v1/leases HTTP/1.1\r\nHost: sandbar.test\r\n";
			ssize_t n = send(fd, half, sizeof half - 1, MSG_NOSIGNAL);
			(void)n;
			close(fd);
			break;
		}
		default:
			held[nheld++] = fd;
		}
	}
	atomic_store(&stop, true);
	pthread_join(th, NULL);
	for (int i = 0; i < nheld; i++)
		close(held[i]);
	free(held);
	print_message("%d connections (%d refused at connect); client: %d execs, %d health "
	              "probes\n",
	              conns, refused, c.ok, c.health_ok);
	if (c.first_error[0])
		print_error("%s\n", c.first_error);
	assert_int_equal(refused, 0);
	assert_int_equal(c.failures, 0);
	assert_int_equal(c.health_failures, 0);

	/* every abandoned connection is closed on the daemon's side too */
	int fds = 0;
	for (int i = 0; i < 500; i++) {
		fds = daemon_fds(d.pid);
		if (fds <= fds_before)
			break;
		usleep(10000); /* polling: the daemon's descriptor table has no notification */
	}
	if (fds > fds_before)
		print_error("the daemon holds %d descriptors, %d before\n", fds, fds_before);
	assert_true(fds <= fds_before);

	char *t = sb_strfmt("/v1/leases/%s", lease);
	long st;
	json_decref(sbt_call(&d, "DELETE", t, NULL, &st));
	assert_int_equal(st, 200);
	free(t);
	char *ids[] = {lease, NULL};
	assert_nothing_left(&d, ids, 1);
	char *m = metrics_text(&d);
	assert_metric(m, "sandbar_execs_running", 0);
	assert_metric(m, "sandbar_execs_total", c.ok);
	assert_metric(m, "sandbar_bytes_streamed_total{kind=\"json\"}", c.json_bytes);
	assert_metric(m, "sandbar_leases{state=\"active\"}", 0);
	assert_metric(m, "sandbar_http_requests_total{class=\"4xx\"}", 0);
	assert_metric(m, "sandbar_http_requests_total{class=\"5xx\"}", 0);
	free(m);
	free(lease);
	sbt_daemon_stop(&d);
	curl_global_cleanup();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(abandoned_connections_lock_no_one_out),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
