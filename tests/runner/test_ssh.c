/* The prefix runner through real ssh: a private sshd on a random loopback port (generated host
 * and client keys in a temp dir), `ssh -T ... --` as a shell prefix. Arguments, cwd, environment,
 * stdin and exit codes must survive the trip exactly as through a local prefix. Skipped, saying
 * why, only when sshd cannot be started here. */
#include "rt.h"
#include "quoting_cases.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define SSHD "/usr/sbin/sshd"

typedef struct ssh_fixture {
	char *dir;
	pid_t sshd;
	int port;
	char *why_not; /* set when sshd could not start */
	sb_runner *runner;
	char *key, *target, *port_s;
} ssh_fixture;

static ssh_fixture fx;

static bool port_open(int port)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bool ok = connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(s);
	return ok;
}

static char *sshd_log(void)
{
	char *path = sb_strfmt("%s/sshd.log", fx.dir);
	sb_buf b = SB_BUF_INIT;
	sb_err *err = sb_read_file(path, 1 << 16, &b);
	sb_err_free(err);
	free(path);
	return sb_buf_steal(&b, NULL);
}

static bool start_sshd(void)
{
	if (access(SSHD, X_OK) != 0) {
		fx.why_not = sb_strfmt("%s is not installed (scripts/bootstrap installs "
		                       "openssh-server)",
		                       SSHD);
		return false;
	}
	/* sshd insists on its privilege separation directory even for a private instance. */
	if (getuid() == 0 && mkdir("/run/sshd", 0755) != 0 && errno != EEXIST) {
		fx.why_not = sb_strfmt("cannot create /run/sshd: %s", strerror(errno));
		return false;
	}
	char *keygen = sb_strfmt("ssh-keygen -q -t ed25519 -N '' -f '%s/host_key' && "
	                         "ssh-keygen -q -t ed25519 -N '' -f '%s/client_key' && "
	                         "cp '%s/client_key.pub' '%s/authorized_keys'",
	                         fx.dir, fx.dir, fx.dir, fx.dir);
	int rc = system(keygen);
	free(keygen);
	if (rc != 0) {
		fx.why_not = sb_xstrdup("ssh-keygen failed");
		return false;
	}
	fx.port = sbt_free_port();
	char *conf = sb_strfmt("Port %d\nListenAddress 127.0.0.1\nHostKey %s/host_key\n"
	                       "PidFile %s/sshd.pid\nAuthorizedKeysFile %s/authorized_keys\n"
	                       "StrictModes no\nPubkeyAuthentication yes\n"
	                       "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
	                       "UsePAM no\nPermitRootLogin prohibit-password\n",
	                       fx.port, fx.dir, fx.dir, fx.dir);
	char *conf_path = sb_strfmt("%s/sshd_config", fx.dir);
	char *tmp = rt_tmpfile(conf, strlen(conf));
	assert_int_equal(rename(tmp, conf_path), 0);
	free(tmp);
	char *log_path = sb_strfmt("%s/sshd.log", fx.dir);

	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 2, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, 2, 1);
	char *const argv[] = {SSHD, "-D", "-e", "-f", conf_path, NULL};
	rc = posix_spawn(&fx.sshd, SSHD, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	free(conf);
	free(conf_path);
	free(log_path);
	if (rc != 0) {
		fx.why_not = sb_strfmt("cannot start %s: %s", SSHD, strerror(rc));
		fx.sshd = 0;
		return false;
	}
	for (int i = 0; i < 500; i++) {
		if (port_open(fx.port))
			return true;
		if (waitpid(fx.sshd, NULL, WNOHANG) == fx.sshd) {
			char *log = sshd_log();
			fx.why_not = sb_strfmt("sshd exited at start: %s", log);
			free(log);
			fx.sshd = 0;
			return false;
		}
		sb_sleep_ms(10); /* poll interval: nothing notifies this condition */
	}
	fx.why_not = sb_xstrdup("sshd did not listen within 5 s");
	return false;
}

static int setup(void **state)
{
	(void)state;
	fx.dir = rt_tmpdir();
	if (!start_sshd())
		return 0;
	struct passwd *pw = getpwuid(getuid());
	assert_non_null(pw);
	fx.key = sb_strfmt("%s/client_key", fx.dir);
	fx.target = sb_strfmt("%s@127.0.0.1", pw->pw_name);
	fx.port_s = sb_strfmt("%d", fx.port);
	char *const prefix[] = {"ssh",     "-T",
	                        "-F",      "/dev/null",
	                        "-p",      fx.port_s,
	                        "-i",      fx.key,
	                        "-o",      "BatchMode=yes",
	                        "-o",      "IdentitiesOnly=yes",
	                        "-o",      "StrictHostKeyChecking=no",
	                        "-o",      "UserKnownHostsFile=/dev/null",
	                        "-o",      "LogLevel=ERROR",
	                        fx.target, "--",
	                        NULL};
	sb_prefix_runner_opts opts = {.prefix = prefix, .prefix_is_shell = true};
	SB_ASSERT_OK(sb_prefix_runner_new(&opts, &fx.runner));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sb_runner_free(fx.runner);
	if (fx.sshd > 0) {
		kill(fx.sshd, SIGTERM);
		waitpid(fx.sshd, NULL, 0);
	}
	rt_rmdir(fx.dir);
	free(fx.why_not);
	free(fx.key);
	free(fx.target);
	free(fx.port_s);
	return 0;
}

#define NEED_SSHD()                                                                                \
	do {                                                                                       \
		if (fx.why_not)                                                                    \
			sbt_skip("real sshd unavailable: %s", fx.why_not);                         \
	} while (0)

static void run_ok(const sb_exec_request *req, sb_exec_result *res)
{
	sb_exec_result_init(res);
	SB_ASSERT_OK(sb_runner_execute(fx.runner, req, NULL, NULL, res));
	if (!sb_exec_result_ok(res))
		print_error("exit %d signal %s stderr: %s\n", res->exit_code, res->signal,
		            sb_buf_cstr(&res->err));
	assert_true(sb_exec_result_ok(res));
}

static void quoting_cases_survive_ssh(void **state)
{
	(void)state;
	NEED_SSHD();
	char **argv = NULL;
	sb_strv_push(&argv, "printf");
	sb_strv_push(&argv, "[%s]\\n");
	sb_buf want = SB_BUF_INIT;
	for (char *const *c = quoting_cases; *c; c++) {
		sb_strv_push(&argv, *c);
		sb_buf_appendf(&want, "[%s]\n", *c);
	}
	sb_exec_request req = {.argv = argv};
	sb_exec_result res;
	run_ok(&req, &res);
	assert_string_equal(sb_buf_cstr(&res.out), sb_buf_cstr(&want));
	assert_int_equal(res.pid, 0);
	sb_exec_result_deinit(&res);
	sb_buf_deinit(&want);
	sb_strv_free(argv);
}

static void cwd_env_stdin_and_exit_codes_survive_ssh(void **state)
{
	(void)state;
	NEED_SSHD();
	char *odd = sb_strfmt("%s/it's a \"dir\" $x", fx.dir);
	assert_int_equal(mkdir(odd, 0755), 0);
	sb_exec_request req = {.argv = RT_ARGV("sh", "-c", "pwd; printf '%s|' \"$V\"; cat"),
	                       .cwd = odd,
	                       .env = RT_ARGV("V=a 'b' \"c\" $d\n\xe2\x9c\x93"),
	                       .has_stdin = true,
	                       .stdin_data = "\x00\x01\xff binary\n",
	                       .stdin_len = 11};
	sb_exec_result res;
	run_ok(&req, &res);
	sb_buf want = SB_BUF_INIT;
	sb_buf_appendf(&want, "%s\na 'b' \"c\" $d\n\xe2\x9c\x93|", odd);
	sb_buf_append(&want, "\x00\x01\xff binary\n", 11);
	assert_int_equal(res.out.len, want.len);
	assert_memory_equal(res.out.data, want.data, want.len);
	sb_exec_result_deinit(&res);
	sb_buf_deinit(&want);
	free(odd);

	sb_exec_request fail = {.argv = RT_ARGV("sh", "-c", "echo oops >&2; exit 3")};
	sb_exec_result_init(&res);
	SB_ASSERT_OK(sb_runner_execute(fx.runner, &fail, NULL, NULL, &res));
	assert_true(res.has_exit_code);
	assert_int_equal(res.exit_code, 3);
	assert_string_equal(sb_buf_cstr(&res.err), "oops\n");
	sb_exec_result_deinit(&res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(quoting_cases_survive_ssh),
	    cmocka_unit_test(cwd_env_stdin_and_exit_codes_survive_ssh),
	};
	return cmocka_run_group_tests_name("runner.ssh", tests, setup, teardown);
}
