/* agents.daemon: issue 14 through the daemon (`sandbar serve`), with real sandboxes and the real
 * HTTP(S) upstreams of tests/agents/upstream.py on 127.0.0.2 / 127.0.0.3 (named through the
 * proxy's test hosts file, their CA trusted by the proxy through SANDBAR_TEST_PROXY_UPSTREAM_CA):
 * mounts within the operator's mount_allow, secrets the operator names in [serve] and clients
 * reference by name, the egress proxy coming back after the daemon is SIGKILLed, and the
 * per-lease proxy counters in lease info, /v1/metrics and the access log. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cbtest.h"
#include "upstream_launch.h"

#define SECRET_VALUE "sk-daemon-4e8a1c-real-secret-value"
#define SECRET_ENV "DNET_MODEL_KEY"

typedef struct fixture {
	clit t;
	char *dir;    /* t.root/net: CA, certificates, hosts file, server log */
	char *shared; /* t.root/shared: the operator's mount_allow */
	char *log;    /* every request the upstreams got */
	int http_port, https_port;
	pid_t pids[3];
	int npids;
	cbt_daemon d;
} fixture;

static int group_setup(void **state)
{
	fixture *f = sb_xcalloc(1, sizeof *f);
	clit_init(&f->t);
	f->dir = sbt_path(f->t.root, "net");
	assert_int_equal(sbt_sh("mkdir -p '%s'", f->dir), 0);
	assert_int_equal(
	    sbt_sh("cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	           "-nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=sandbar-test-ca "
	           ">/dev/null 2>&1 && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	           "-nodes -keyout server.key -out server.csr -subj /CN=allowed.test >/dev/null "
	           "2>&1 && printf 'subjectAltName=DNS:allowed.test,DNS:secret.test\\n' > ext.cnf "
	           "&& openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
	           "-out server.pem -days 2 -extfile ext.cnf >/dev/null 2>&1",
	           f->dir),
	    0);
	f->log = sbt_path(f->dir, "requests.log");
	sbt_write_str(f->dir, "requests.log", "");
	sbt_write_str(f->dir, "hosts",
	              "127.0.0.2 allowed.test secret.test\n"
	              "127.0.0.3 denied.test\n");
	f->http_port = sbt_free_port();
	f->https_port = sbt_free_port();
	char *cert = sbt_path(f->dir, "server.pem"), *key = sbt_path(f->dir, "server.key");
	const struct {
		const char *addr, *name;
		bool tls;
	} srv[] = {{"127.0.0.2", "allowed", false},
	           {"127.0.0.2", "allowed", true},
	           {"127.0.0.3", "denied", false}};
	for (size_t i = 0; i < sizeof srv / sizeof *srv; i++) {
		char *ready = sb_strfmt("%s/%s-%zu.out", f->dir, srv[i].name, i);
		f->pids[f->npids++] = agt_upstream_start(
		    NULL, srv[i].addr, srv[i].tls ? f->https_port : f->http_port, srv[i].name,
		    f->log, srv[i].tls ? cert : NULL, srv[i].tls ? key : NULL, ready);
		free(ready);
	}
	free(cert);
	free(key);
	/* what the operator allows: one mount root, one named secret */
	f->shared = sbt_path(f->t.root, "shared");
	assert_int_equal(sbt_sh("mkdir -p '%s/data' && echo 'shared file' > '%s/data/f.txt' && "
	                        "chmod -R a+rX '%s' && ln -s /etc '%s/etc-link'",
	                        f->shared, f->shared, f->shared, f->shared),
	                 0);
	char *conf = sb_strfmt("[serve]\n"
	                       "mount_allow = %s\n"
	                       "secret.model = env:" SECRET_ENV "\n"
	                       "secret.model.hosts = secret.test\n"
	                       "secret.model.header = x-api-key\n"
	                       "secret.model.env = MODEL_API_KEY\n",
	                       f->shared);
	sbt_write_str(f->t.root, "daemon.conf", conf);
	free(conf);
	char *hosts = sbt_path(f->dir, "hosts"), *ca = sbt_path(f->dir, "ca.pem");
	setenv("SANDBAR_TEST_PROXY_HOSTS", hosts, 1);
	setenv("SANDBAR_TEST_PROXY_UPSTREAM_CA", ca, 1);
	setenv(SECRET_ENV, SECRET_VALUE, 1);
	free(hosts);
	free(ca);
	char *cpath = sbt_path(f->t.root, "daemon.conf");
	cbt_daemon_start(&f->d, &f->t, cpath);
	free(cpath);
	*state = f;
	return 0;
}

static int group_teardown(void **state)
{
	fixture *f = *state;
	cbt_daemon_stop(&f->d);
	for (int i = 0; i < f->npids; i++) {
		kill(f->pids[i], SIGTERM);
		waitpid(f->pids[i], NULL, 0);
	}
	clit_fini(&f->t);
	free(f->dir);
	free(f->shared);
	free(f->log);
	free(f);
	return 0;
}

/* POST /v1/leases with body fields (an object's inner text); the answer's JSON in *out. */
static long acquire(fixture *f, const char *fields, json_t **out)
{
	char *aid = sb_random_id("acq-");
	char *body = sb_strfmt("{\"acquisition_id\":\"%s\",%s}", aid, fields);
	sb_buf b = SB_BUF_INIT;
	long st = cbt_api(&f->d, "POST", "/v1/leases", body, &b);
	*out = clit_json(sb_buf_cstr(&b));
	sb_buf_deinit(&b);
	free(body);
	free(aid);
	return st;
}

static char *acquire_ok(fixture *f, const char *fields)
{
	json_t *j = NULL;
	long st = acquire(f, fields, &j);
	if (st != 200)
		fail_msg("acquire answered %ld: %s", st, json_dumps(j, 0));
	char *id = sb_xstrdup(json_string_value(json_object_get(j, "id")));
	json_decref(j);
	return id;
}

static json_t *lease_info(fixture *f, const char *id)
{
	char *t = sb_strfmt("/v1/leases/%s", id);
	sb_buf b = SB_BUF_INIT;
	assert_int_equal(cbt_api(&f->d, "GET", t, NULL, &b), 200);
	json_t *j = clit_json(sb_buf_cstr(&b));
	sb_buf_deinit(&b);
	free(t);
	return j;
}

static void destroy(fixture *f, const char *id)
{
	char *t = sb_strfmt("/v1/leases/%s?force=1", id);
	assert_int_equal(cbt_api(&f->d, "DELETE", t, NULL, NULL), 200);
	free(t);
}

static bool tree_holds(const char *dir, const char *needle)
{
	return sbt_sh("grep -rqsaF -- '%s' '%s'", needle, dir) == 0;
}

static void mounts_within_mount_allow(void **state)
{
	fixture *f = *state;
	char *fields = sb_strfmt("\"mounts\":[\"%s/data:/mnt/data\"]", f->shared);
	char *id = acquire_ok(f, fields);
	/* lease info shows it, read-only */
	json_t *li = lease_info(f, id);
	json_t *m = json_array_get(json_object_get(li, "mounts"), 0);
	assert_non_null(m);
	assert_string_equal(json_string_value(json_object_get(m, "path")), "/mnt/data");
	assert_string_equal(json_string_value(json_object_get(m, "mode")), "ro");
	char *want = sb_strfmt("%s/data", f->shared);
	assert_string_equal(json_string_value(json_object_get(m, "host")), want);
	free(want);
	json_decref(li);
	char *out = cbt_sh(&f->d, id,
	                   "cat /mnt/data/f.txt; (echo x > /mnt/data/new.txt) 2>/dev/null && echo "
	                   "WROTE || echo READONLY; (echo y >> /mnt/data/f.txt) 2>/dev/null && "
	                   "echo APPENDED || echo NOAPPEND");
	assert_string_equal(out, "shared file\nREADONLY\nNOAPPEND\n");
	free(out);
	assert_int_not_equal(sbt_sh("test -e '%s/data/new.txt'", f->shared), 0);
	/* the mount is part of the fingerprint: the same acquisition without it is a conflict */
	sb_buf b = SB_BUF_INIT;
	char *body = sb_strfmt(
	    "{\"acquisition_id\":\"acq-mount-fp\",\"mounts\":[\"%s/data:/mnt/data\"]}", f->shared);
	assert_int_equal(cbt_api(&f->d, "POST", "/v1/leases", body, &b), 200);
	json_t *j = clit_json(sb_buf_cstr(&b));
	char *id2 = sb_xstrdup(json_string_value(json_object_get(j, "id")));
	json_decref(j);
	sb_buf_deinit(&b);
	assert_int_equal(
	    cbt_api(&f->d, "POST", "/v1/leases", "{\"acquisition_id\":\"acq-mount-fp\"}", NULL),
	    409);
	destroy(f, id2);
	free(id2);
	free(body);
	destroy(f, id);
	free(id);
	free(fields);
}

static void mounts_outside_mount_allow_refused(void **state)
{
	fixture *f = *state;
	json_t *j = NULL;
	/* a path outside the list */
	long st = acquire(f, "\"mounts\":[\"/etc:/mnt/etc\"]", &j);
	assert_int_equal(st, 403);
	assert_string_equal(json_string_value(json_object_get(j, "error")), "mount_not_allowed");
	const char *msg = json_string_value(json_object_get(j, "message"));
	assert_non_null(msg);
	assert_non_null(strstr(msg, "/etc"));
	assert_non_null(strstr(msg, "mount_allow"));
	json_decref(j);
	/* a link under the allowed path that leads outside it */
	char *fields = sb_strfmt("\"mounts\":[\"%s/etc-link:/mnt/etc\"]", f->shared);
	assert_int_equal(acquire(f, fields, &j), 403);
	assert_non_null(strstr(json_string_value(json_object_get(j, "message")), "mount_allow"));
	json_decref(j);
	free(fields);
	/* the CLI's refusals hold too: never onto the workspace */
	fields = sb_strfmt("\"mounts\":[\"%s/data:/workspace/data\"]", f->shared);
	assert_int_equal(acquire(f, fields, &j), 400);
	assert_non_null(strstr(json_string_value(json_object_get(j, "message")), "workspace"));
	json_decref(j);
	free(fields);
	/* a bad spec names the entry */
	assert_int_equal(acquire(f, "\"mounts\":[\"relative:/mnt/x\"]", &j), 400);
	assert_non_null(strstr(json_string_value(json_object_get(j, "message")), "mounts[0]"));
	json_decref(j);
}

static const char net_fields[] =
    "\"network\":{\"mode\":\"allowlist\",\"allow\":[\"allowed.test\",\"127.0.0.2\"],"
    "\"secrets\":[\"model\"]}";

static void secret_by_name_never_in_the_sandbox(void **state)
{
	fixture *f = *state;
	json_t *j = NULL;
	/* an unknown name is the client's error, named */
	assert_int_equal(acquire(f,
	                         "\"network\":{\"mode\":\"allowlist\",\"allow\":[],"
	                         "\"secrets\":[\"nope\"]}",
	                         &j),
	                 400);
	assert_non_null(strstr(json_string_value(json_object_get(j, "message")), "nope"));
	json_decref(j);
	char *id = acquire_ok(f, net_fields);
	char *script = sb_strfmt(
	    "echo \"KEY=$MODEL_API_KEY\"\n"
	    "echo \"OK=$(curl -sS -X POST -d '{}' https://secret.test:%d/v1/messages)\"\n"
	    "env > /workspace/env.txt\n"
	    "cat /proc/*/environ > /workspace/environ.bin 2>/dev/null\n"
	    "grep -rlsF '" SECRET_VALUE "' /workspace /home /tmp /etc /dev/shm /proc/*/environ "
	    "&& echo LEAK || echo NOLEAK\n",
	    f->https_port);
	char *out = cbt_sh(&f->d, id, script);
	assert_non_null(strstr(out, "KEY=sandbar-placeholder-model_api_key\n"));
	assert_non_null(strstr(out, "OK={\"edit\": \"fixed by the model\"}"));
	assert_non_null(strstr(out, "NOLEAK"));
	assert_null(strstr(out, SECRET_VALUE));
	free(out);
	/* the upstream got the real value */
	size_t n;
	char *log = sbt_read(f->dir, "requests.log", &n);
	assert_non_null(strstr(log, "\"x-api-key\": \"" SECRET_VALUE "\""));
	free(log);
	/* lease info names the secret, never its value */
	json_t *li = lease_info(f, id);
	char *text = json_dumps(li, 0);
	assert_null(strstr(text, SECRET_VALUE));
	assert_string_equal(json_string_value(json_array_get(
	                        json_object_get(json_object_get(li, "network"), "secrets"), 0)),
	                    "model");
	free(text);
	json_decref(li);
	/* nothing of the daemon's holds it: its log, its state (database, lease files) */
	assert_false(tree_holds(f->d.log, SECRET_VALUE));
	assert_false(tree_holds(f->d.state, SECRET_VALUE));
	destroy(f, id);
	free(script);
	free(id);
}

/* The script the restart test runs: an HTTP and a terminated HTTPS request that must pass, and
 * one to a host not on the allowlist. */
static char *probe_script(fixture *f)
{
	return sb_strfmt(
	    "echo \"A=$(curl -sS http://allowed.test:%d/plain)\"\n"
	    "echo \"S=$(curl -sS -X POST -d '{}' https://secret.test:%d/v1/messages)\"\n"
	    "echo \"D=$(curl -s -o /dev/null -w '%%{http_code}' "
	    "http://denied.test:%d/)\"\n",
	    f->http_port, f->https_port, f->http_port);
}

static void proxy_comes_back_after_sigkill(void **state)
{
	fixture *f = *state;
	char *id = acquire_ok(f, net_fields);
	char *script = probe_script(f);
	char *out = cbt_sh(&f->d, id, script);
	assert_non_null(strstr(out, "A=hello from allowed GET /plain\n"));
	assert_non_null(strstr(out, "S={\"edit\": \"fixed by the model\"}"));
	assert_non_null(strstr(out, "D=403\n"));
	free(out);
	/* what the restarted proxy needs is kept privately */
	char *kept = sb_strfmt("%s/leases/%s/run/egress.json", f->d.state, id);
	struct stat st;
	assert_int_equal(stat(kept, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(kept);
	cbt_daemon_kill(&f->d);
	cbt_daemon_restart(&f->d);
	/* the same allowlist, the secret read again by name, the CA the sandbox trusts */
	out = cbt_sh(&f->d, id, script);
	assert_non_null(strstr(out, "A=hello from allowed GET /plain\n"));
	assert_non_null(strstr(out, "S={\"edit\": \"fixed by the model\"}"));
	assert_non_null(strstr(out, "D=403\n"));
	free(out);
	size_t n;
	char *log = sbt_read(f->dir, "requests.log", &n);
	assert_null(strstr(log, "\"name\": \"denied\""));
	free(log);
	destroy(f, id);
	free(script);
	free(id);
}

static void proxy_counters_per_lease(void **state)
{
	fixture *f = *state;
	char *id = acquire_ok(f, net_fields);
	char *script = sb_strfmt("curl -sS -o /dev/null http://allowed.test:%d/one\n"
	                         "curl -sS -o /dev/null http://allowed.test:%d/two\n"
	                         "curl -s -o /dev/null http://denied.test:%d/\n"
	                         "echo done\n",
	                         f->http_port, f->http_port, f->http_port);
	char *out = cbt_sh(&f->d, id, script);
	assert_string_equal(out, "done\n");
	free(out);
	json_t *li = lease_info(f, id);
	json_t *net = json_object_get(li, "network");
	assert_string_equal(json_string_value(json_object_get(net, "mode")), "allowlist");
	assert_int_equal(json_integer_value(json_object_get(net, "connections_allowed")), 2);
	assert_int_equal(json_integer_value(json_object_get(net, "connections_denied")), 1);
	assert_true(json_integer_value(json_object_get(net, "bytes_up")) > 0);
	assert_true(json_integer_value(json_object_get(net, "bytes_down")) > 0);
	char *d = sb_strfmt("denied.test:%d (not on the allowlist)", f->http_port);
	assert_string_equal(json_string_value(json_array_get(json_object_get(net, "denied"), 0)),
	                    d);
	json_decref(li);
	/* the same counts in /v1/metrics */
	sb_buf m = SB_BUF_INIT;
	assert_int_equal(cbt_api(&f->d, "GET", "/v1/metrics", NULL, &m), 200);
	char *l1 =
	    sb_strfmt("sandbar_egress_connections_total{lease=\"%s\",outcome=\"allowed\"} 2\n", id);
	char *l2 =
	    sb_strfmt("sandbar_egress_connections_total{lease=\"%s\",outcome=\"denied\"} 1\n", id);
	char *l3 = sb_strfmt("sandbar_egress_bytes_total{lease=\"%s\",direction=\"down\"} ", id);
	assert_non_null(strstr(sb_buf_cstr(&m), l1));
	assert_non_null(strstr(sb_buf_cstr(&m), l2));
	assert_non_null(strstr(sb_buf_cstr(&m), l3));
	sb_buf_deinit(&m);
	/* and the denied destination in the access log, with its lease */
	size_t n;
	char *dir = sb_xstrdup(f->d.log), *slash = strrchr(dir, '/');
	*slash = '\0';
	char *log = sbt_read(dir, slash + 1, &n);
	char *line = sb_strfmt("\"lease\": \"%s\", \"destination\": \"%s\"", id, d);
	char *line2 = sb_strfmt("\"lease\":\"%s\",\"destination\":\"%s\"", id, d);
	assert_true(strstr(log, "egress_denied") && (strstr(log, line) || strstr(log, line2)));
	free(line);
	free(line2);
	free(log);
	free(dir);
	free(l1);
	free(l2);
	free(l3);
	free(d);
	destroy(f, id);
	free(script);
	free(id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(mounts_within_mount_allow),
	    cmocka_unit_test(mounts_outside_mount_allow_refused),
	    cmocka_unit_test(secret_by_name_never_in_the_sandbox),
	    cmocka_unit_test(proxy_counters_per_lease),
	    cmocka_unit_test(proxy_comes_back_after_sigkill),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
