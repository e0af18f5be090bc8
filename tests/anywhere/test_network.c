/* anywhere.network: a sandbox with full network (its own network namespace, slirp4netns) has
 * an interface of its own, yet cannot reach the daemon: not its TCP port through the host's
 * non-loopback address (the daemon listens on 0.0.0.0, and the host itself reaches it there),
 * not through the gateway's address, not its unix socket; and the daemon's token file, kept
 * under /etc/sandbar, does not exist inside. */
#include "anyt.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *etc_dir; /* /etc/sandbar/anywhere-XXXXXX */
static bool made_etc; /* we created /etc/sandbar */

static int setup(void **state)
{
	if (mkdir("/etc/sandbar", 0755) == 0)
		made_etc = true;
	char tmpl[] = "/etc/sandbar/anywhere-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	etc_dir = sb_xstrdup(tmpl);
	return anyt_setup(state);
}

static int teardown(void **state)
{
	int rc = anyt_teardown(state);
	sb_err_free(sb_fs_rm_rf(etc_dir));
	free(etc_dir);
	if (made_etc)
		rmdir("/etc/sandbar");
	return rc;
}

static void full_network_cannot_reach_the_daemon(void **state)
{
	anyt *a = *state;
	char *addr = anyt_host_address();
	if (!addr)
		print_error("this host has no global IPv4 address to probe the daemon through\n");
	assert_non_null(addr);
	char *tok = sbt_path(etc_dir, "token");
	char *err = NULL;
	int rc = anyt_serve(a, "0.0.0.0", tok, 0600, &err);
	if (rc != 0)
		print_error("sandbar serve: %s\n", err ? err : "");
	assert_int_equal(rc, 0);
	/* the probe is meaningful: from the host the daemon answers on that address */
	assert_int_equal(sbt_sh("curl -s -m 10 -o /dev/null http://%s:%d/v1/health", addr, a->port),
	                 0);

	char *body = NULL;
	assert_int_equal(anyt_http(a, "POST", "/v1/leases",
	                           "{\"acquisition_id\":\"net-1\",\"network\":true}", &body),
	                 200);
	json_t *lease = clit_json(body);
	free(body);
	const char *id = json_string_value(json_object_get(lease, "id"));
	assert_non_null(id);
	char *script = sb_strfmt(
	    "grep -q tap0 /proc/net/dev && echo iface=yes; "
	    "curl -s -m 5 -o /dev/null http://%s:%d/v1/health; echo tcp=$?; "
	    "curl -s -m 5 -o /dev/null http://10.0.2.2:%d/v1/health; echo gw=$?; "
	    "curl -s -m 5 -o /dev/null http://127.0.0.1:%d/v1/health; echo lo=$?; "
	    "curl -s -m 5 -o /dev/null --unix-socket '%s' http://x/v1/health; echo unix=$?; "
	    "test -e '%s'; echo token=$?; test -e '%s'; echo state=$?",
	    addr, a->port, a->port, a->port, a->sock, tok, a->dstate);
	json_t *req = json_pack("{s:s}", "script", script);
	char *req_text = json_dumps(req, JSON_COMPACT);
	char *path = sb_strfmt("/v1/leases/%s/exec", id);
	int st = anyt_http(a, "POST", path, req_text, &body);
	if (st != 200)
		print_error("exec: %d %s\n", st, body);
	assert_int_equal(st, 200);
	json_t *ex = clit_json(body);
	const char *out = json_string_value(json_object_get(ex, "stdout"));
	assert_non_null(out);
	print_message("inside the sandbox:\n%s", out);
	assert_non_null(strstr(out, "iface=yes\n"));
	assert_null(strstr(out, "tcp=0\n"));
	assert_null(strstr(out, "gw=0\n"));
	assert_null(strstr(out, "lo=0\n"));
	assert_null(strstr(out, "unix=0\n"));
	assert_non_null(strstr(out, "token=1\n"));
	assert_non_null(strstr(out, "state=1\n"));
	/* curl ran (exit codes of a refused or timed-out connection, not "command not found") */
	assert_null(strstr(out, "tcp=127\n"));
	json_decref(ex);
	free(body);
	free(path);
	free(req_text);
	json_decref(req);
	free(script);
	json_decref(lease);
	free(tok);
	free(err);
	free(addr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(full_network_cannot_reach_the_daemon, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
