#include "anyt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOKEN "anywhere-token-0123456789abcdef"

static anyt *live; /* for the atexit handler */

static void stop_at_exit(void)
{
	if (live)
		anyt_stop(live);
}

int anyt_setup(void **state)
{
	anyt *a = sb_xcalloc(1, sizeof *a);
	a->t.root = sbt_mkdtemp("anywhere"); /* 0700, and it stays so */
	struct stat st;
	assert_int_equal(stat(a->t.root, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	a->bindir = sb_strfmt("%s/dir with spaces/bin", a->t.root);
	SB_ASSERT_OK(sb_fs_mkdir_p(a->bindir, 0700));
	/* copies of the built programs (DESIGN §9.2: never a rebuild), side by side as in the
	 * build tree: sandbar finds sandbar-init and sandbar-serve beside itself */
	assert_int_equal(sbt_sh("cp '%s/sandbar' '%s/sandbar-init' '%s/sandbar-serve' '%s/'",
	                        SB_TEST_BUILD_DIR, SB_TEST_BUILD_DIR, SB_TEST_BUILD_DIR, a->bindir),
	                 0);
	a->t.bin = sb_strfmt("%s/sandbar", a->bindir);
	a->t.state = sb_strfmt("%s/st ate", a->t.root);
	a->t.ws = sb_strfmt("%s/work space", a->t.root);
	SB_ASSERT_OK(sb_fs_mkdir_p(a->t.ws, 0700));
	static bool registered;
	if (!registered) {
		atexit(stop_at_exit);
		registered = true;
	}
	live = a;
	*state = a;
	return 0;
}

int anyt_teardown(void **state)
{
	anyt *a = *state;
	anyt_stop(a);
	live = NULL;
	free(a->bindir);
	clit_fini(&a->t);
	free(a);
	return 0;
}

static bool port_open(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

int anyt_serve(anyt *a, const char *listen_host, const char *token_path, unsigned token_mode,
               char **err_out)
{
	if (err_out)
		*err_out = NULL;
	a->dstate = sb_strfmt("%s/daemon state", a->t.root);
	a->sock = sb_strfmt("%s/sandbar.sock", a->t.root);
	a->log = sb_strfmt("%s/daemon.log", a->t.root);
	a->token = sb_xstrdup(token_path);
	char *dir = sb_xstrdup(token_path);
	*strrchr(dir, '/') = '\0';
	sbt_write(dir, strrchr(token_path, '/') + 1, TOKEN "\n", strlen(TOKEN "\n"), token_mode);
	free(dir);
	a->port = sbt_free_port();
	char *listen = sb_strfmt("%s:%d", listen_host, a->port);
	a->url = sb_strfmt("http://127.0.0.1:%d", a->port);
	pid_t parent = getpid();
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
			_exit(97);
		int fd = open(a->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0 || in < 0 || dup2(in, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(99);
		unsetenv("SANDBAR_TOKEN");
		char *nocfg = sbt_path(a->t.root, "no-such-config");
		setenv("SANDBAR_CONFIG", nocfg, 1);
		execl(a->t.bin, a->t.bin, "serve", "--listen", listen, "--socket", a->sock,
		      "--state-dir", a->dstate, "--token-file", a->token, (char *)NULL);
		_exit(98);
	}
	free(listen);
	a->pid = pid;
	for (int i = 0; i < 3000 && !port_open(a->port); i++) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			a->pid = 0;
			if (err_out)
				*err_out = sbt_read("/", a->log + 1, NULL);
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		usleep(10000);
	}
	assert_true(port_open(a->port));
	return 0;
}

void anyt_stop(anyt *a)
{
	if (a->pid > 0) {
		kill(a->pid, SIGTERM);
		while (waitpid(a->pid, NULL, 0) < 0 && errno == EINTR)
			;
		a->pid = 0;
	}
	if (a->dstate) {
		clit_destroy_leases(&a->t, a->dstate);
		free(a->dstate);
		a->dstate = NULL;
	}
	free(a->token);
	free(a->sock);
	free(a->log);
	free(a->url);
	a->token = a->sock = a->log = a->url = NULL;
}

int anyt_http(anyt *a, const char *method, const char *path, const char *json_body, char **body)
{
	char *bfile = sbt_path(a->t.root, "http-body");
	char *rfile = sbt_path(a->t.root, "http-req");
	sbt_write_str(a->t.root, "http-req", json_body ? json_body : "");
	char *code = sbt_sh_out("curl -s -m 60 -o '%s' -w '%%{http_code}' -X %s "
	                        "-H 'Authorization: Bearer " TOKEN "' "
	                        "-H 'Content-Type: application/json' %s%s%s '%s%s'",
	                        bfile, method, json_body ? "--data-binary @'" : "",
	                        json_body ? rfile : "", json_body ? "'" : "", a->url, path);
	int status = code ? atoi(code) : 0;
	free(code);
	*body = sbt_read("/", bfile + 1, NULL);
	if (!*body)
		*body = sb_xstrdup("");
	free(bfile);
	free(rfile);
	return status;
}

char *anyt_host_address(void)
{
	char *out = sbt_sh_out("ip -4 -o addr show scope global | awk '{print $4}' | "
	                       "cut -d/ -f1 | head -n1");
	if (out) {
		out[strcspn(out, "\n")] = '\0';
		if (!*out) {
			free(out);
			out = NULL;
		}
	}
	return out;
}
