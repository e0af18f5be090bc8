/* See upstream_launch.h. */
#include "upstream_launch.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "clitest.h"

pid_t agt_upstream_start(const char *netns, const char *addr, int port, const char *name,
                         const char *log, const char *cert, const char *key, const char *ready_path)
{
	char *script = sb_strfmt("%s/tests/agents/upstream.py", SB_TEST_SOURCE_DIR);
	char portbuf[16];
	snprintf(portbuf, sizeof portbuf, "%d", port);
	const char *argv[16];
	int n = 0;
	if (netns) {
		argv[n++] = "ip";
		argv[n++] = "netns";
		argv[n++] = "exec";
		argv[n++] = netns;
	}
	argv[n++] = "/usr/bin/python3";
	argv[n++] = script;
	argv[n++] = addr;
	argv[n++] = portbuf;
	argv[n++] = name;
	argv[n++] = log;
	if (cert && key) {
		argv[n++] = cert;
		argv[n++] = key;
	}
	argv[n] = NULL;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		FILE *o = freopen(ready_path, "w", stdout);
		(void)o;
		execv(netns ? "/usr/sbin/ip" : "/usr/bin/python3", (char *const *)argv);
		_exit(127);
	}
	clit_wait_for(ready_path, "ready");
	free(script);
	return pid;
}
