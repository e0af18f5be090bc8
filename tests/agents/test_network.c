/* agents.network: `sandbar run --allow-net` against real servers. An "allowed" and a "denied"
 * HTTP and HTTPS server listen on 127.0.0.2 and 127.0.0.3 (DESIGN.md §9.10), named through a
 * test hosts file for the proxy's resolver (SANDBAR_TEST_PROXY_HOSTS); their certificates come
 * from a test CA made with openssl here, which the proxy trusts for upstreams through
 * SANDBAR_TEST_PROXY_UPSTREAM_CA. Every request the servers get is logged, so a test can tell
 * what reached them, with which headers. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clitest.h"
#include "upstream_launch.h"

#define SECRET_VALUE "sk-test-9f2c6e1d-real-secret-value"
#define HOSTVAR_VALUE "hostvar-7b1d-value-never-logged"

typedef struct fixture {
	clit t;
	char *dir;   /* t.root/net: CA, certificates, hosts file, server logs */
	char *hosts; /* the proxy's hosts file */
	char *ca;    /* the test CA certificate */
	char *log;   /* every request the servers got, one JSON line each */
	int http_port, https_port;
	pid_t pids[4];
	int npids;
	char *env_hosts, *env_ca;
} fixture;

static pid_t start_server(fixture *f, const char *addr, int port, const char *name, bool tls)
{
	char *ready = sb_strfmt("%s/%s-%s.out", f->dir, name, tls ? "https" : "http");
	char *cert = sbt_path(f->dir, "server.pem"), *key = sbt_path(f->dir, "server.key");
	pid_t pid = agt_upstream_start(NULL, addr, port, name, f->log, tls ? cert : NULL,
	                               tls ? key : NULL, ready);
	free(ready);
	free(cert);
	free(key);
	return pid;
}

static int group_setup(void **state)
{
	fixture *f = sb_xcalloc(1, sizeof *f);
	clit_init(&f->t);
	f->dir = sbt_path(f->t.root, "net");
	assert_int_equal(sbt_sh("mkdir -p '%s'", f->dir), 0);
	/* a test CA and one server certificate for every test name, made with openssl */
	assert_int_equal(
	    sbt_sh("cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	           "-nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=sandbar-test-ca "
	           ">/dev/null 2>&1 && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	           "-nodes -keyout server.key -out server.csr -subj /CN=allowed.test >/dev/null "
	           "2>&1 && printf 'subjectAltName=DNS:allowed.test,DNS:denied.test,"
	           "DNS:secret.test,DNS:model.test\\n' > ext.cnf && openssl x509 -req -in "
	           "server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 "
	           "-extfile ext.cnf >/dev/null 2>&1",
	           f->dir),
	    0);
	f->ca = sbt_path(f->dir, "ca.pem");
	f->log = sbt_path(f->dir, "requests.log");
	sbt_write_str(f->dir, "requests.log", "");
	sbt_write_str(f->dir, "hosts",
	              "# the proxy's view of the test names\n"
	              "127.0.0.2 allowed.test secret.test model.test rebind.test\n"
	              "127.0.0.3 denied.test\n");
	f->hosts = sbt_path(f->dir, "hosts");
	f->http_port = sbt_free_port();
	f->https_port = sbt_free_port();
	f->pids[f->npids++] = start_server(f, "127.0.0.2", f->http_port, "allowed", false);
	f->pids[f->npids++] = start_server(f, "127.0.0.2", f->https_port, "allowed", true);
	f->pids[f->npids++] = start_server(f, "127.0.0.3", f->http_port, "denied", false);
	f->pids[f->npids++] = start_server(f, "127.0.0.3", f->https_port, "denied", true);
	f->env_hosts = sb_strfmt("SANDBAR_TEST_PROXY_HOSTS=%s", f->hosts);
	f->env_ca = sb_strfmt("SANDBAR_TEST_PROXY_UPSTREAM_CA=%s", f->ca);
	*state = f;
	return 0;
}

static int group_teardown(void **state)
{
	fixture *f = *state;
	for (int i = 0; i < f->npids; i++) {
		kill(f->pids[i], SIGTERM);
		waitpid(f->pids[i], NULL, 0);
	}
	clit_fini(&f->t);
	free(f->dir);
	free(f->hosts);
	free(f->ca);
	free(f->log);
	free(f->env_hosts);
	free(f->env_ca);
	free(f);
	return 0;
}

/* A fresh workspace under the fixture's root. */
static char *new_ws(fixture *f, const char *name)
{
	char *ws = sbt_path(f->t.root, name);
	assert_int_equal(sbt_sh("rm -rf '%s' && mkdir -p '%s'", ws, ws), 0);
	return ws;
}

static char *read_log(fixture *f)
{
	size_t n;
	char *s = sbt_read(f->dir, "requests.log", &n);
	return s ? s : sb_xstrdup("");
}

/* Does any file under dir hold needle? (logs, lease state, spools) */
static bool tree_holds(const char *dir, const char *needle)
{
	return sbt_sh("grep -rqsF -- '%s' '%s'", needle, dir) == 0;
}

static void allowlist_http_https_and_denials(void **state)
{
	fixture *f = *state;
	char *ws = new_ws(f, "ws-allow");
	assert_int_equal(sbt_sh("cp '%s' '%s/ca.pem'", f->ca, ws), 0);
	char *script = sb_strfmt(
	    "H=%d; S=%d\n"
	    "set -u\n"
	    "echo \"A=$(curl -sS http://allowed.test:$H/plain)\"\n"
	    /* passthrough CONNECT: the sandbox verifies the real server itself */
	    "echo \"B=$(curl -sS --cacert /workspace/ca.pem https://allowed.test:$S/tls)\"\n"
	    "echo \"C=$(curl -s -o /dev/null -w '%%{http_code}' http://denied.test:$H/)\"\n"
	    "curl -sS --cacert /workspace/ca.pem https://denied.test:$S/ 2>&1 | tail -1 | "
	    "sed 's/^/D=/'\n"
	    /* host loopback through the proxy: not on the allowlist, and loopback */
	    "echo \"E=$(curl -s -o /dev/null -w '%%{http_code}' --noproxy '' "
	    "http://127.0.0.1:$H/)\"\n"
	    /* host loopback directly: the sandbox's loopback is its own */
	    "curl -sS --noproxy '*' --max-time 5 http://127.0.0.2:$H/ >/dev/null 2>&1; "
	    "echo \"F=$?\"\n"
	    /* an allowed NAME that resolves to a private address is refused by the address */
	    "curl -sS http://rebind.test:$H/ 2>&1 | tail -1 | sed 's/^/G=/'\n",
	    f->http_port, f->https_port);
	clit_res r;
	/* 127.0.0.2 is allowed by IP (the test's "public" server); 127.0.0.3 is not */
	int code =
	    clit_run(&f->t, &r, CLIT_V(f->env_hosts, f->env_ca),
	             CLIT_V("run", "--json", "-w", ws, "--allow-net", "allowed.test", "--allow-net",
	                    "127.0.0.2", "--allow-net", "rebind.test:1", "--", "sh", "-c", script));
	if (code != 0)
		print_error("stderr: %s\nstdout: %s\n", r.err, r.out);
	assert_int_equal(code, 0);
	char *want = sb_strfmt("A=hello from allowed GET /plain");
	assert_non_null(strstr(r.err, want));
	free(want);
	assert_non_null(strstr(r.err, "B=hello from allowed GET /tls"));
	assert_non_null(strstr(r.err, "C=403"));
	/* curl reports a refused CONNECT with its status */
	assert_non_null(strstr(r.err, "D=curl: (56)"));
	assert_non_null(strstr(r.err, "403"));
	assert_non_null(strstr(r.err, "E=403"));
	assert_null(strstr(r.err, "F=0"));
	assert_non_null(strstr(r.err, "F="));
	/* rebind.test is allowed only on port 1: on this port it is not on the allowlist */
	assert_non_null(strstr(r.err, "G=sandbar egress proxy:"));
	/* the denied server never saw a request */
	char *log = read_log(f);
	assert_null(strstr(log, "\"name\": \"denied\""));
	assert_non_null(strstr(log, "\"path\": \"/plain\""));
	free(log);
	/* --json lists the denied destinations */
	json_t *j = clit_json(r.out);
	json_t *net = json_object_get(j, "network");
	assert_string_equal(json_string_value(json_object_get(net, "mode")), "allowlist");
	json_t *denied = json_object_get(net, "denied");
	assert_true(json_is_array(denied));
	char *d1 = sb_strfmt("denied.test:%d (not on the allowlist)", f->http_port);
	char *d2 = sb_strfmt("denied.test:%d (not on the allowlist)", f->https_port);
	bool s1 = false, s2 = false, s3 = false;
	size_t i;
	json_t *v;
	json_array_foreach(denied, i, v)
	{
		s1 |= strcmp(json_string_value(v), d1) == 0;
		s2 |= strcmp(json_string_value(v), d2) == 0;
		s3 |= strncmp(json_string_value(v), "127.0.0.1:", 10) == 0;
	}
	assert_true(s1 && s2 && s3);
	assert_true(json_integer_value(json_object_get(net, "connections_allowed")) >= 2);
	assert_true(json_integer_value(json_object_get(net, "connections_denied")) >= 4);
	json_decref(j);
	clit_res_free(&r);

	/* the human summary lists the denied host too */
	code = clit_run(&f->t, &r, CLIT_V(f->env_hosts),
	                CLIT_V("run", "-w", ws, "--allow-net", "allowed.test", "--", "sh", "-c",
	                       "curl -s -o /dev/null http://denied.test:1/"));
	assert_int_equal(code, 0);
	assert_non_null(strstr(r.err, "sandbar:   denied denied.test:1 (not on the allowlist)"));
	clit_res_free(&r);
	free(d1);
	free(d2);
	free(script);
	free(ws);
}

/* Many connections at once and bulk transfers both ways: every connection is served (the
 * proxy's reading moves between threads), and the bytes of a download and an upload that go
 * from copying to splicing arrive whole. */
static void parallel_connections_and_bulk_both_ways(void **state)
{
	fixture *f = *state;
	char *ws = new_ws(f, "ws-parallel");
	char *script = sb_strfmt(
	    "H=%d\n"
	    "set -eu\n"
	    "i=0; while [ $i -lt 40 ]; do\n"
	    "  curl -sS http://allowed.test:$H/p$i > out.$i & i=$((i+1))\n"
	    "done\n"
	    "wait\n"
	    "i=0; ok=0; while [ $i -lt 40 ]; do\n"
	    "  grep -qx \"hello from allowed GET /p$i\" out.$i && ok=$((ok+1)); i=$((i+1))\n"
	    "done\n"
	    "rm -f out.*\n"
	    "echo \"PARALLEL=$ok\"\n"
	    "echo \"DOWN=$(curl -sS http://allowed.test:$H/bulk/20000000 | wc -c)\"\n"
	    "head -c 6000000 /dev/urandom > up.bin\n"
	    "echo \"UPSHA=$(sha256sum < up.bin | cut -d' ' -f1)\"\n"
	    "curl -sS -X POST --data-binary @up.bin http://allowed.test:$H/upload > /dev/null\n"
	    "rm up.bin\n",
	    f->http_port);
	clit_res r;
	int code = clit_run(&f->t, &r, CLIT_V(f->env_hosts),
	                    CLIT_V("run", "-w", ws, "--allow-net", "allowed.test", "--allow-net",
	                           "127.0.0.2", "--", "sh", "-c", script));
	if (code != 0)
		print_error("stderr: %s\nstdout: %s\n", r.err, r.out);
	assert_int_equal(code, 0);
	if (!strstr(r.out, "PARALLEL=40\n"))
		print_error("stdout: %s\n", r.out);
	assert_non_null(strstr(r.out, "PARALLEL=40\n"));
	assert_non_null(strstr(r.out, "DOWN=20000000\n"));
	const char *sha = strstr(r.out, "UPSHA=");
	assert_non_null(sha);
	char want[128];
	snprintf(want, sizeof want, "\"body_len\": 6000000, \"body_sha256\": \"%.64s\"", sha + 6);
	char *log = read_log(f);
	if (!strstr(log, want))
		print_error("want %s in the upstream's log\n", want);
	assert_non_null(strstr(log, want));
	free(log);
	clit_res_free(&r);
	free(script);
	free(ws);
}

static void address_check_without_ip_entry(void **state)
{
	fixture *f = *state;
	char *ws = new_ws(f, "ws-rebind");
	char *script =
	    sb_strfmt("curl -s -w ' %%{http_code}' http://rebind.test:%d/", f->http_port);
	clit_res r;
	/* the name is allowed, its address (loopback) is not: DNS rebinding cannot reach it */
	int code = clit_run(&f->t, &r, CLIT_V(f->env_hosts),
	                    CLIT_V("run", "--json", "-w", ws, "--allow-net", "rebind.test", "--",
	                           "sh", "-c", script));
	assert_int_equal(code, 0);
	assert_non_null(strstr(r.err, "which is loopback (127.0.0.0/8): denied"));
	assert_non_null(strstr(r.err, " 403"));
	json_t *j = clit_json(r.out);
	json_t *d = json_array_get(json_object_get(json_object_get(j, "network"), "denied"), 0);
	assert_non_null(strstr(json_string_value(d), "address 127.0.0.2 is loopback"));
	json_decref(j);
	clit_res_free(&r);
	free(script);
	free(ws);
}

static void secret_injected_outside_the_sandbox(void **state)
{
	fixture *f = *state;
	char *ws = new_ws(f, "ws-secret");
	sbt_write_str(ws, "note.txt", "workspace file\n");
	char *script = sb_strfmt(
	    "S=%d; H=%d\n"
	    "echo \"KEY=$TEST_API_KEY\"\n"
	    /* the sandbox trusts the lease's CA through its system bundle and the env vars */
	    "echo \"OK=$(curl -sS -X POST -d '{}' https://secret.test:$S/v1/messages)\"\n"
	    "echo \"RULE=$(curl -s -w ' %%{http_code}' https://secret.test:$S/v1/models)\"\n"
	    "echo \"HTTP=$(curl -s -o /dev/null -w '%%{http_code}' "
	    "http://secret.test:$H/v1/other)\"\n"
	    "env > /workspace/env.txt\n"
	    "cat /proc/*/environ > /workspace/environ.bin 2>/dev/null\n"
	    "grep -rlsF '" SECRET_VALUE "' /workspace /home /tmp /etc /dev/shm /proc/*/environ "
	    "&& echo LEAK || echo NOLEAK\n",
	    f->https_port, f->http_port);
	clit_res r;
	int code =
	    clit_run(&f->t, &r, CLIT_V(f->env_hosts, f->env_ca, "TEST_API_KEY=" SECRET_VALUE),
	             CLIT_V("run", "--json", "-w", ws, "--allow-net", "127.0.0.2", "--allow-net",
	                    "secret.test POST /v1/messages", "--secret",
	                    "secret.test=x-api-key:TEST_API_KEY", "--", "sh", "-c", script));
	if (code != 0)
		print_error("stderr: %s\n", r.err);
	assert_int_equal(code, 0);
	assert_non_null(strstr(r.err, "KEY=sandbar-placeholder-test_api_key"));
	assert_non_null(strstr(r.err, "OK={\"edit\": \"fixed by the model\"}"));
	assert_non_null(strstr(r.err, "RULE=sandbar egress proxy: GET /v1/models to secret.test "
	                              "is not allowed by the request rules for this host\n 403"));
	assert_non_null(strstr(r.err, "HTTP=403"));
	assert_non_null(strstr(r.err, "NOLEAK"));
	assert_null(strstr(r.err, "\nLEAK"));
	/* upstream got the real value, on the allowed request only */
	char *log = read_log(f);
	assert_non_null(strstr(log, "\"x-api-key\": \"" SECRET_VALUE "\""));
	assert_null(strstr(log, "/v1/models"));
	assert_null(strstr(log, "/v1/other"));
	free(log);
	/* and nothing of ours holds it: output, the restored workspace, state and logs */
	assert_null(strstr(r.out, SECRET_VALUE));
	assert_null(strstr(r.err, SECRET_VALUE));
	size_t n;
	char *env = sbt_read(ws, "env.txt", &n);
	assert_non_null(env);
	assert_non_null(strstr(env, "TEST_API_KEY=sandbar-placeholder-test_api_key"));
	assert_non_null(strstr(env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"));
	free(env);
	assert_false(tree_holds(ws, SECRET_VALUE));
	assert_false(tree_holds(f->t.state, SECRET_VALUE));
	clit_res_free(&r);
	free(script);
	free(ws);
}

static void env_key_passes_the_host_value_unlogged(void **state)
{
	fixture *f = *state;
	char *ws = new_ws(f, "ws-env");
	sbt_write_str(f->t.root, "vars.env", "# comment\nFROMFILE=file-value\n\nHOSTVAR2\n");
	char *envfile = sbt_path(f->t.root, "vars.env");
	clit_res r;
	int code =
	    clit_run(&f->t, &r, CLIT_V("HOSTVAR=" HOSTVAR_VALUE, "HOSTVAR2=" HOSTVAR_VALUE "-2"),
	             CLIT_V("run", "--json", "-w", ws, "-e", "HOSTVAR", "--env-file", envfile, "--",
	                    "sh", "-c",
	                    "echo \"$HOSTVAR\" > got.txt; echo \"$FROMFILE $HOSTVAR2\" "
	                    ">> got.txt"));
	assert_int_equal(code, 0);
	size_t n;
	char *got = sbt_read(ws, "got.txt", &n);
	assert_string_equal(got, HOSTVAR_VALUE "\nfile-value " HOSTVAR_VALUE "-2\n");
	free(got);
	assert_null(strstr(r.out, HOSTVAR_VALUE));
	assert_null(strstr(r.err, HOSTVAR_VALUE));
	assert_false(tree_holds(f->t.state, HOSTVAR_VALUE));
	clit_res_free(&r);
	/* an unset KEY is an error, never skipped */
	code = clit_run(&f->t, &r, CLIT_V("NOT_SET_ANYWHERE"),
	                CLIT_V("run", "-w", ws, "-e", "NOT_SET_ANYWHERE", "--", "true"));
	assert_int_equal(code, 125);
	assert_non_null(strstr(r.err, "NOT_SET_ANYWHERE is not set"));
	clit_res_free(&r);
	free(envfile);
	free(ws);
}

/* The agent stand-in: reads a prompt, asks an allowed "model API" for an edit, applies it. */
static void agent_stand_in_end_to_end(void **state)
{
	fixture *f = *state;
	char *ws = new_ws(f, "ws-agent");
	sbt_write_str(ws, "PROMPT", "fix the failing test\n");
	sbt_write_str(ws, "src.txt", "broken\n");
	char *agent =
	    sb_strfmt("#!/bin/sh\n"
	              "set -eu\n"
	              "prompt=$(cat PROMPT)\n"
	              "reply=$(curl -sS -f -X POST -H 'content-type: application/json' "
	              "-H \"x-api-key: $MODEL_KEY\" -d \"{\\\"prompt\\\":\\\"$prompt\\\"}\" "
	              "https://model.test:%d/v1/messages)\n"
	              "echo \"$reply\" | sed 's/.*\"edit\": \"\\([^\"]*\\)\".*/\\1/' > src.txt\n"
	              "echo agent done\n",
	              f->https_port);
	sbt_write(ws, "agent.sh", agent, strlen(agent), 0755);
	clit_res r;
	int code = clit_run(&f->t, &r, CLIT_V(f->env_hosts, f->env_ca, "MODEL_KEY=" SECRET_VALUE),
	                    CLIT_V("run", "-w", ws, "--allow-net", "127.0.0.2", "--allow-net",
	                           "model.test POST /v1/messages", "--secret",
	                           "model.test=x-api-key:MODEL_KEY", "--", "./agent.sh"));
	if (code != 0 || !strstr(r.out, "agent done"))
		print_error("stderr: %s\n", r.err);
	assert_int_equal(code, 0);
	assert_non_null(strstr(r.out, "agent done"));
	size_t n;
	char *src = sbt_read(ws, "src.txt", &n);
	assert_string_equal(src, "fixed by the model\n");
	free(src);
	char *log = read_log(f);
	assert_non_null(strstr(log, "\"x-api-key\": \"" SECRET_VALUE "\""));
	free(log);
	clit_res_free(&r);
	free(agent);
	free(ws);
}

static void usage_errors(void **state)
{
	fixture *f = *state;
	clit_res r;
	assert_int_equal(
	    clit_run(&f->t, &r, NULL,
	             CLIT_V("run", "--network=full", "--allow-net", "a.test", "--", "true")),
	    125);
	assert_non_null(strstr(r.err, "need --network=allowlist"));
	clit_res_free(&r);
	assert_int_equal(clit_run(&f->t, &r, NULL, CLIT_V("run", "--network=some", "--", "true")),
	                 125);
	assert_non_null(strstr(r.err, "none, allowlist or full"));
	clit_res_free(&r);
	assert_int_equal(
	    clit_run(&f->t, &r, NULL, CLIT_V("run", "--allow-net", "10.0.0.0/0", "--", "true")),
	    125);
	assert_non_null(strstr(r.err, "CIDR"));
	clit_res_free(&r);
	assert_int_equal(
	    clit_run(&f->t, &r, NULL, CLIT_V("run", "--secret", "nohader", "--", "true")), 125);
	assert_non_null(strstr(r.err, "HOST=HEADER:ENV"));
	clit_res_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(allowlist_http_https_and_denials),
	    cmocka_unit_test(parallel_connections_and_bulk_both_ways),
	    cmocka_unit_test(address_check_without_ip_entry),
	    cmocka_unit_test(secret_injected_outside_the_sandbox),
	    cmocka_unit_test(env_key_passes_the_host_value_unlogged),
	    cmocka_unit_test(agent_stand_in_end_to_end),
	    cmocka_unit_test(usage_errors),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
