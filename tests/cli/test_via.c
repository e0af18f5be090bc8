/* cli.via: where `sandbar run` executes other than the default sandbox. --via local (the host,
 * a fresh temporary remote directory), --via 'cmd:sh -c' (the prefix runner through a shell)
 * and --bridge against a real `sandbar serve` daemon. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clitest.h"

/* root/tmp, created: the TMPDIR the --via tests give sandbar (malloc'd). */
static char *private_tmp(clit *t)
{
	char *tmp = sbt_path(t->root, "tmp");
	SB_ASSERT_OK(sb_fs_mkdir_p(tmp, 0755));
	return tmp;
}

/* Visible entries: in a leases dir the hidden .spare-* skeletons are not leases. */
static int count_entries(const char *dir)
{
	char *n = sbt_sh_out("ls '%s' 2>/dev/null | wc -l", dir);
	int c = atoi(n);
	free(n);
	return c;
}

/* Temporary remote directories left in dir (the runtime's own lock dir, sandbar-<uid>, stays). */
static int count_run_dirs(const char *dir)
{
	char *n = sbt_sh_out("ls -A '%s' 2>/dev/null | grep -c '^sandbar-run'", dir);
	int c = atoi(n);
	free(n);
	return c;
}

/* The same job on any target: one file edited, one created, one deleted, exit 5. */
static void check_roundtrip(clit *t, const char *const *env, const char *flag, const char *value)
{
	sbt_write_str(t->ws, "edit.txt", "v1\n");
	sbt_write_str(t->ws, "gone.txt", "x\n");
	clit_res r;
	int code =
	    clit_run(t, &r, env,
	             CLIT_V("run", "--json", "-w", t->ws, flag, value, "-e", "SB_T=hello world",
	                    "--", "sh", "-c",
	                    "echo \"env:$SB_T\"; cat edit.txt; echo v2 > edit.txt; rm gone.txt; "
	                    "echo made > new.txt; exit 5"));
	if (code != 5) {
		print_error("exit %d, stderr:\n%s\n", code, r.err);
		fail();
	}
	assert_non_null(strstr(r.err, "env:hello world\nv1\n"));
	json_t *j = clit_json(r.out);
	json_t *ch = json_object_get(j, "changes");
	assert_true(clit_json_set_eq(json_object_get(ch, "added"), CLIT_V("new.txt")));
	assert_true(clit_json_set_eq(json_object_get(ch, "changed"), CLIT_V("edit.txt")));
	assert_true(clit_json_set_eq(json_object_get(ch, "deleted"), CLIT_V("gone.txt")));
	assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), 5);
	json_decref(j);
	clit_res_free(&r);
	char *edit = sbt_read(t->ws, "edit.txt", NULL), *made = sbt_read(t->ws, "new.txt", NULL);
	assert_string_equal(edit, "v2\n");
	assert_string_equal(made, "made\n");
	assert_null(sbt_read(t->ws, "gone.txt", NULL));
	free(edit);
	free(made);
}

static void via_local_runs_on_the_host_and_cleans_up(void **state)
{
	clit *t = *state;
	char *tmp = private_tmp(t);
	char *env_tmp = sb_strfmt("TMPDIR=%s", tmp);
	check_roundtrip(t, CLIT_V(env_tmp), "--via", "local");
	/* The temporary remote directory is gone. */
	assert_int_equal(count_run_dirs(tmp), 0);
	/* And it was not the workspace itself: the command ran elsewhere. */
	clit_res r;
	assert_int_equal(clit_run(t, &r, CLIT_V(env_tmp),
	                          CLIT_V("run", "-q", "-w", t->ws, "--via", "local", "--", "pwd")),
	                 0);
	assert_true(sb_str_has_prefix(r.out, tmp));
	clit_res_free(&r);
	free(env_tmp);
	free(tmp);
}

static void via_prefix_through_a_shell(void **state)
{
	clit *t = *state;
	char *tmp = private_tmp(t);
	char *env_tmp = sb_strfmt("TMPDIR=%s", tmp);
	check_roundtrip(t, CLIT_V(env_tmp), "--via", "cmd:sh -c");
	assert_int_equal(count_run_dirs(tmp), 0);
	/* Arguments with spaces and quotes survive the extra shell. */
	clit_res r;
	assert_int_equal(clit_run(t, &r, CLIT_V(env_tmp),
	                          CLIT_V("run", "-q", "-w", t->ws, "--via", "cmd:sh -c", "--",
	                                 "printf", "[%s]", "two words", "it's")),
	                 0);
	assert_string_equal(r.out, "[two words][it's]");
	clit_res_free(&r);
	free(env_tmp);
	free(tmp);
}

static void keep_with_via_local_names_the_kept_copy(void **state)
{
	clit *t = *state;
	char *tmp = private_tmp(t);
	char *env_tmp = sb_strfmt("TMPDIR=%s", tmp);
	sbt_write_str(t->ws, "mine.txt", "m\n");
	clit_res r;
	assert_int_equal(clit_run(t, &r, CLIT_V(env_tmp),
	                          CLIT_V("run", "-q", "--keep", "-w", t->ws, "--via", "local", "--",
	                                 "sh", "-c", "echo r > theirs.txt")),
	                 0);
	char *dir = clit_word_after(r.err, "remote copy kept in ");
	clit_res_free(&r);
	assert_true(sb_str_has_prefix(dir, tmp));
	char *theirs = sbt_read(dir, "theirs.txt", NULL), *mine = sbt_read(dir, "mine.txt", NULL);
	assert_string_equal(theirs, "r\n");
	assert_string_equal(mine, "m\n");
	free(theirs);
	free(mine);
	free(dir);
	free(env_tmp);
	free(tmp);
}

/* ---- a real daemon */

typedef struct daemon {
	pid_t pid;
	int port;
	char *state, *token, *url, *log;
} srv;

static bool port_open(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static void daemon_start(clit *t, srv *d)
{
	memset(d, 0, sizeof *d);
	d->state = sbt_path(t->root, "dstate");
	d->token = sbt_path(t->root, "token");
	d->log = sbt_path(t->root, "daemon.log");
	sbt_write(t->root, "token", "cli-test-token-0123456789\n", 26, 0600); /* 0644 is refused */
	d->port = sbt_free_port();
	char listen[64];
	snprintf(listen, sizeof listen, "127.0.0.1:%d", d->port);
	d->url = sb_strfmt("http://127.0.0.1:%d", d->port);
	clit_proc p;
	clit_start(
	    t, &p, NULL,
	    CLIT_V("serve", "--listen", listen, "--state-dir", d->state, "--token-file", d->token));
	d->pid = p.pid;
	for (int i = 0; i < 3000 && !port_open(d->port); i++) {
		int st;
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			clit_untrack(t, d->pid);
			char *l = sbt_read("/", p.err_path + 1, NULL);
			print_error("sandbar serve exited early:\n%s\n", l ? l : "");
			free(l);
			fail();
		}
		usleep(10000); /* poll interval: the condition is the port answering */
	}
	assert_true(port_open(d->port));
	free(d->log);
	d->log = p.err_path;
	free(p.out_path);
}

static void daemon_stop(clit *t, srv *d)
{
	if (d->pid > 0)
		clit_stop(t, d->pid, SIGTERM);
	clit_destroy_leases(t, d->state);
	free(d->state);
	free(d->token);
	free(d->url);
	free(d->log);
}

static void bridge_against_a_real_daemon(void **state)
{
	clit *t = *state;
	srv d;
	daemon_start(t, &d);
	char *tok = sb_strfmt("SANDBAR_TOKEN_FILE=%s", d.token);
	check_roundtrip(t, CLIT_V(tok), "--bridge", d.url);
	/* The lease was released on the daemon. */
	char *leases = sbt_path(d.state, "leases");
	assert_int_equal(count_entries(leases), 0);
	/* SANDBAR_BRIDGE_URL picks the daemon too. */
	char *url = sb_strfmt("SANDBAR_BRIDGE_URL=%s", d.url);
	clit_res r;
	assert_int_equal(clit_run(t, &r, CLIT_V(tok, url),
	                          CLIT_V("run", "-q", "-w", t->ws, "--", "sh", "-c",
	                                 "echo via-env > env.txt; exit 2")),
	                 2);
	clit_res_free(&r);
	char *e = sbt_read(t->ws, "env.txt", NULL);
	assert_string_equal(e, "via-env\n");
	free(e);
	assert_int_equal(count_entries(leases), 0);
	/* No credentials: a sandbar error that says what to set. */
	assert_int_equal(
	    clit_run(t, &r, NULL,
	             CLIT_V("run", "-q", "-w", t->ws, "--bridge", d.url, "--", "true")),
	    125);
	assert_non_null(strstr(r.err, "SANDBAR_TOKEN_FILE"));
	clit_res_free(&r);
	/* A wrong token: refused, 125. */
	sbt_write_str(t->root, "badtoken", "wrong\n");
	char *bad = sb_strfmt("SANDBAR_TOKEN_FILE=%s/badtoken", t->root);
	assert_int_equal(
	    clit_run(t, &r, CLIT_V(bad),
	             CLIT_V("run", "-q", "-w", t->ws, "--bridge", d.url, "--", "true")),
	    125);
	clit_res_free(&r);
	free(bad);
	free(url);
	free(leases);
	free(tok);
	daemon_stop(t, &d);
}

static void flags_a_target_cannot_honour_are_usage_errors(void **state)
{
	clit *t = *state;
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL,
	                          CLIT_V("run", "--via", "local", "--bridge", "http://127.0.0.1:1",
	                                 "-w", t->ws, "--", "true")),
	                 125);
	assert_non_null(strstr(r.err, "--bridge"));
	clit_res_free(&r);
	/* Limits that a target cannot enforce are refused, never silently dropped. */
	static const struct {
		const char *env, *args[6], *named;
	} cases[] = {
	    {NULL, {"--via", "local", "--memory", "1G"}, "--memory"},
	    {NULL, {"--bridge", "http://127.0.0.1:1", "--memory", "1G"}, "--memory"},
	    {NULL, {"--bridge", "http://127.0.0.1:1", "--network"}, "--network"},
	    {"SANDBAR_BRIDGE_URL=http://127.0.0.1:1", {"--memory", "1G"}, "--memory"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		const char *args[12] = {"run", "-w", t->ws};
		size_t n = 3;
		for (size_t k = 0; k < 6 && cases[i].args[k]; k++)
			args[n++] = cases[i].args[k];
		args[n++] = "--";
		args[n++] = "true";
		const char *env[2] = {cases[i].env ? cases[i].env : "SANDBAR_UNUSED=1", NULL};
		int code = clit_run(t, &r, env, args);
		if (code != 125 || !strstr(r.err, cases[i].named)) {
			print_error("case %zu: exit %d, stderr: %s\n", i, code, r.err);
			fail();
		}
		clit_res_free(&r);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) CLIT_TEST(f)
	    T(via_local_runs_on_the_host_and_cleans_up),      T(via_prefix_through_a_shell),
	    T(keep_with_via_local_names_the_kept_copy),       T(bridge_against_a_real_daemon),
	    T(flags_a_target_cannot_honour_are_usage_errors),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
