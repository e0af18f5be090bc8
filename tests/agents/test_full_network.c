/* agents.full_network: `sandbar run --network=full` reaches a server outside the host (here in
 * a network namespace the test makes, behind a veth pair, as a machine on the LAN would be),
 * while the host's own loopback stays out of reach (issue 14: full = user-mode networking,
 * never host loopback). The same server is unreachable with --network=none. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clitest.h"
#include "upstream_launch.h"

typedef struct fixture {
	clit t;
	char ns[32], veth_host[16], veth_ns[16];
	char outside_addr[32]; /* the server in the namespace */
	int outside_port, lo_port;
	pid_t outside_pid, lo_pid;
	char *log;
} fixture;

static pid_t start_upstream(fixture *f, const char *netns, const char *addr, int port,
                            const char *name)
{
	char *ready = sb_strfmt("%s/%s.out", f->t.root, name);
	pid_t pid = agt_upstream_start(netns, addr, port, name, f->log, NULL, NULL, ready);
	free(ready);
	return pid;
}

static int setup(void **state)
{
	fixture *f = sb_xcalloc(1, sizeof *f);
	clit_init(&f->t);
	f->log = sbt_path(f->t.root, "requests.log");
	/* names and a /30 of their own, so parallel runs never meet */
	unsigned r = (unsigned)getpid() ^ (unsigned)time(NULL);
	unsigned net = r % 250 + 1, tag = r % 100000;
	snprintf(f->ns, sizeof f->ns, "sbt-full-%u", tag);
	snprintf(f->veth_host, sizeof f->veth_host, "sbtfh%u", tag);
	snprintf(f->veth_ns, sizeof f->veth_ns, "sbtfn%u", tag);
	snprintf(f->outside_addr, sizeof f->outside_addr, "10.231.%u.2", net);
	int rc = sbt_sh("ip netns add %s && ip link add %s type veth peer name %s && "
	                "ip link set %s netns %s && ip addr add 10.231.%u.1/30 dev %s && "
	                "ip link set %s up && ip netns exec %s ip addr add %s/30 dev %s && "
	                "ip netns exec %s ip link set %s up && ip netns exec %s ip link set lo up",
	                f->ns, f->veth_host, f->veth_ns, f->veth_ns, f->ns, net, f->veth_host,
	                f->veth_host, f->ns, f->outside_addr, f->veth_ns, f->ns, f->veth_ns, f->ns);
	if (rc != 0)
		print_error("cannot build the test network namespace (root and iproute2 needed)\n");
	assert_int_equal(rc, 0);
	f->outside_port = sbt_free_port();
	f->lo_port = sbt_free_port();
	f->outside_pid = start_upstream(f, f->ns, f->outside_addr, f->outside_port, "outside");
	f->lo_pid = start_upstream(f, NULL, "127.0.0.1", f->lo_port, "loopback");
	*state = f;
	return 0;
}

static void stop(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
}

static int teardown(void **state)
{
	fixture *f = *state;
	stop(f->outside_pid);
	stop(f->lo_pid);
	sbt_sh("ip link del %s 2>/dev/null; ip netns del %s 2>/dev/null", f->veth_host, f->ns);
	clit_fini(&f->t);
	free(f->log);
	free(f);
	return 0;
}

static void full_reaches_outside_never_host_loopback(void **state)
{
	fixture *f = *state;
	char *script = sb_strfmt("curl -s -m 10 http://%s:%d/hello; echo out=$?; "
	                         "curl -s -m 5 http://127.0.0.1:%d/hello; echo lo=$?",
	                         f->outside_addr, f->outside_port, f->lo_port);
	clit_res r;
	clit_run(&f->t, &r, NULL,
	         CLIT_V("run", "-q", "-w", f->t.ws, "--network=full", "--", "sh", "-c", script));
	if (r.code != 0)
		print_error("exit %d\nstdout: %s\nstderr: %s\n", r.code, r.out, r.err);
	assert_int_equal(r.code, 0);
	print_message("inside: %s", r.out);
	assert_non_null(strstr(r.out, "hello from outside GET /hello\nout=0\n"));
	assert_null(strstr(r.out, "hello from loopback"));
	assert_null(strstr(r.out, "lo=0\n"));
	clit_res_free(&r);
	/* the server saw the sandbox's request; the loopback one saw nothing */
	char *log = sbt_read("/", f->log + 1, NULL);
	assert_non_null(log);
	assert_non_null(strstr(log, "\"name\": \"outside\""));
	assert_null(strstr(log, "\"name\": \"loopback\""));
	free(log);
	free(script);
}

static void none_reaches_nothing(void **state)
{
	fixture *f = *state;
	char *script = sb_strfmt("curl -s -m 5 http://%s:%d/hello; echo out=$?", f->outside_addr,
	                         f->outside_port);
	clit_res r;
	clit_run(&f->t, &r, NULL, CLIT_V("run", "-q", "-w", f->t.ws, "--", "sh", "-c", script));
	assert_int_equal(r.code, 0);
	assert_null(strstr(r.out, "hello from outside"));
	assert_null(strstr(r.out, "out=0\n"));
	clit_res_free(&r);
	free(script);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(full_reaches_outside_never_host_loopback, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(none_reaches_nothing, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
