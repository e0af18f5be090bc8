/* agents.agent_standin: an agent stand-in runs end to end under `sandbar run -t --allow-net`,
 * as a TUI agent would: it checks that it has a terminal, asks for a prompt on it and reads
 * the line the user (the test, on its own pseudo-terminal) types, calls an allowed HTTPS
 * "model API" (tests/agents/upstream.py on 127.0.0.2, named model.test through the proxy's
 * test hosts file) with a key the proxy injects (--secret: inside there is only a
 * placeholder), and edits files in the workspace with the answer. The edits come back, the
 * upstream saw the real key and the prompt, a host off the allowlist is refused, and the
 * user's terminal has its settings back afterwards. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clitest.h"
#include "tty_drive.h"
#include "upstream_launch.h"

#define KEY_VALUE "sk-standin-4f2a-never-inside"

static void agent_runs_on_a_terminal_end_to_end(void **state)
{
	clit *t = *state;
	char *dir = sbt_path(t->root, "net");
	assert_int_equal(sbt_sh("mkdir -p '%s'", dir), 0);
	assert_int_equal(
	    sbt_sh("cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	           "-nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=sandbar-test-ca "
	           ">/dev/null 2>&1 && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	           "-nodes -keyout server.key -out server.csr -subj /CN=model.test >/dev/null "
	           "2>&1 && printf 'subjectAltName=DNS:model.test\\n' > ext.cnf && openssl x509 "
	           "-req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem "
	           "-days 2 -extfile ext.cnf >/dev/null 2>&1",
	           dir),
	    0);
	sbt_write_str(dir, "hosts", "127.0.0.2 model.test\n127.0.0.3 elsewhere.test\n");
	sbt_write_str(dir, "requests.log", "");
	char *log = sbt_path(dir, "requests.log"), *cert = sbt_path(dir, "server.pem"),
	     *key = sbt_path(dir, "server.key"), *ready = sbt_path(dir, "model.out");
	int port = sbt_free_port();
	pid_t up = agt_upstream_start(NULL, "127.0.0.2", port, "model", log, cert, key, ready);

	sbt_write_str(t->ws, "src.txt", "broken\n");
	char *agent = sb_strfmt(
	    "#!/bin/sh\n"
	    "set -eu\n"
	    "[ -t 0 ] && [ -t 1 ] || { echo 'agent: no terminal' >&2; exit 9; }\n"
	    "printf 'prompt> '\n"
	    "IFS= read -r prompt\n"
	    "[ \"$MODEL_KEY\" != '" KEY_VALUE "' ] || { echo 'agent: saw the real key'; exit 8; }\n"
	    "reply=$(curl -sS -f -X POST -H 'content-type: application/json' "
	    "-H \"x-api-key: $MODEL_KEY\" -d \"{\\\"prompt\\\":\\\"$prompt\\\"}\" "
	    "https://model.test:%d/v1/messages)\n"
	    "echo \"$reply\" | sed 's/.*\"edit\": \"\\([^\"]*\\)\".*/\\1/' > src.txt\n"
	    "printf 'prompt: %%s\\n' \"$prompt\" > NOTES.md\n"
	    "if curl -sS -f -o /dev/null https://elsewhere.test:%d/ 2>/dev/null; then\n"
	    "  echo 'agent: reached a host off the allowlist'; exit 7; fi\n"
	    "echo agent done\n",
	    port, port);
	sbt_write(t->ws, "agent.sh", agent, strlen(agent), 0755);

	char *env_hosts = sb_strfmt("SANDBAR_TEST_PROXY_HOSTS=%s/hosts", dir);
	char *env_ca = sb_strfmt("SANDBAR_TEST_PROXY_UPSTREAM_CA=%s/ca.pem", dir);
	ttyrun r;
	tty_start_in(t, &r, NULL, 40, 132, CLIT_V(env_hosts, env_ca, "MODEL_KEY=" KEY_VALUE),
	             CLIT_V("run", "-t", "--allow-net", "127.0.0.2", "--allow-net",
	                    "model.test POST /v1/messages", "--secret",
	                    "model.test=x-api-key:MODEL_KEY", "--", "./agent.sh"));
	tty_wait_for(&r, "prompt> ");
	assert_raw(&r);
	const char *typed = "fix the failing test\r"; /* Enter on a terminal is CR */
	tty_type(&r, typed, strlen(typed));
	tty_wait_for(&r, "agent done");
	int code = tty_finish(t, &r);
	if (code != 0)
		print_error("exit %d; the terminal shows:\n%s\n", code, tty_text(&r));
	assert_int_equal(code, 0);
	/* the prompt was echoed by the command's own terminal, as typed */
	assert_non_null(strstr(tty_text(&r), "fix the failing test"));
	assert_settings_back(&r);
	tty_fini(&r);

	/* the edits came back */
	size_t n;
	char *src = sbt_read(t->ws, "src.txt", &n);
	assert_string_equal(src, "fixed by the model\n");
	char *notes = sbt_read(t->ws, "NOTES.md", &n);
	assert_string_equal(notes, "prompt: fix the failing test\n");
	/* the model API saw the real key, injected outside the sandbox */
	char *got = sbt_read(dir, "requests.log", &n);
	assert_non_null(strstr(got, "\"x-api-key\": \"" KEY_VALUE "\""));
	assert_non_null(strstr(got, "\"path\": \"/v1/messages\""));
	free(got);
	free(notes);
	free(src);
	kill(up, SIGTERM);
	waitpid(up, NULL, 0);
	free(env_hosts);
	free(env_ca);
	free(agent);
	free(log);
	free(cert);
	free(key);
	free(ready);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    CLIT_TEST(agent_runs_on_a_terminal_end_to_end),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
