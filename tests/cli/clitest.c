/* cli test helpers (see clitest.h). A failed step aborts the running test; the processes and
 * leases a test leaves behind are stopped and destroyed by clit_fini, which the fixture's
 * teardown calls whether the test passed or failed. */
#include "clitest.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

void clit_init(clit *t)
{
	memset(t, 0, sizeof *t);
	t->root = sbt_mkdtemp("cli");
	/* When we are root, sandboxes run as the sandbar user, which must reach the state dir. */
	assert_int_equal(chmod(t->root, 0755), 0);
	t->state = sbt_path(t->root, "state");
	t->ws = sbt_path(t->root, "ws");
	SB_ASSERT_OK(sb_fs_mkdir_p(t->ws, 0755));
	t->bin = sbt_build_path("sandbar");
}

void clit_destroy_leases(clit *t, const char *state_dir)
{
	clit_res r;
	clit_run(t, &r, NULL, CLIT_V("lease", "list", "--json", "--state-dir", state_dir));
	json_t *arr = r.code == 0 ? json_loads(r.out, 0, NULL) : NULL;
	size_t i;
	json_t *o;
	json_array_foreach(arr, i, o)
	{
		const char *id = json_string_value(json_object_get(o, "id"));
		if (!id)
			continue;
		clit_res d;
		clit_run(t, &d, NULL, CLIT_V("lease", "destroy", id, "--state-dir", state_dir));
		clit_res_free(&d);
	}
	json_decref(arr);
	clit_res_free(&r);
}

void clit_track(clit *t, pid_t pid)
{
	for (size_t i = 0; i < sizeof t->live / sizeof t->live[0]; i++)
		if (t->live[i] == 0) {
			t->live[i] = pid;
			return;
		}
	print_error("more than %zu live processes in one cli test\n",
	            sizeof t->live / sizeof t->live[0]);
	fail();
}

void clit_untrack(clit *t, pid_t pid)
{
	for (size_t i = 0; i < sizeof t->live / sizeof t->live[0]; i++)
		if (t->live[i] == pid)
			t->live[i] = 0;
}

/* Wait for pid at most ms; returns whether it was reaped (status in *st). */
static bool wait_ms(pid_t pid, int *st, int ms)
{
	for (int i = 0; i <= ms / 10; i++) {
		pid_t w = waitpid(pid, st, WNOHANG);
		if (w == pid || (w < 0 && errno == ECHILD))
			return true;
		usleep(10000); /* polling waitpid: a child's exit has no descriptor to wait on */
	}
	return false;
}

int clit_stop(clit *t, pid_t pid, int sig)
{
	int st = 0;
	kill(pid, sig);
	if (!wait_ms(pid, &st, 30000)) {
		print_error("pid %d ignored signal %d for 30 s: killed\n", (int)pid, sig);
		kill(pid, SIGKILL);
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	clit_untrack(t, pid);
	return st;
}

void clit_fini(clit *t)
{
	if (!t->root)
		return;
	/* sandbar handles TERM by cleaning up (a daemon stops, a run destroys its lease) */
	for (size_t i = 0; i < sizeof t->live / sizeof t->live[0]; i++)
		if (t->live[i] > 0)
			clit_stop(t, t->live[i], SIGTERM);
	/* every state directory under the root: t->state and those a test made */
	DIR *d = opendir(t->root);
	for (struct dirent *e; d && (e = readdir(d));) {
		char *leases = sb_strfmt("%s/%s/leases", t->root, e->d_name);
		struct stat sst;
		if (e->d_name[0] != '.' && stat(leases, &sst) == 0 && S_ISDIR(sst.st_mode)) {
			char *state = sbt_path(t->root, e->d_name);
			clit_destroy_leases(t, state);
			free(state);
		}
		free(leases);
	}
	if (d)
		closedir(d);
	sbt_rmtree(t->root);
	free(t->state);
	free(t->ws);
	free(t->bin);
	memset(t, 0, sizeof *t);
}

int clit_setup(void **state)
{
	clit *t = sb_xcalloc(1, sizeof *t);
	clit_init(t);
	*state = t;
	return 0;
}

int clit_teardown(void **state)
{
	clit *t = *state;
	clit_fini(t);
	free(t);
	*state = NULL;
	return 0;
}

static void child_env(clit *t, const char *const *env)
{
	static const char *const unset[] = {"SANDBAR_BRIDGE_URL",    "SANDBAR_TOKEN_FILE",
	                                    "SANDBAR_TOKEN",         "SANDBAR_HMAC_KEY_ID",
	                                    "SANDBAR_HMAC_KEY_FILE", "XDG_STATE_HOME"};
	for (size_t i = 0; i < sizeof unset / sizeof *unset; i++)
		unsetenv(unset[i]);
	setenv("SANDBAR_STATE_DIR", t->state, 1);
	char *nocfg = sbt_path(t->root, "no-such-config");
	setenv("SANDBAR_CONFIG", nocfg, 1);
	free(nocfg);
	for (size_t i = 0; env && env[i]; i++) {
		const char *eq = strchr(env[i], '=');
		if (!eq) {
			unsetenv(env[i]);
			continue;
		}
		char *k = sb_xstrndup(env[i], (size_t)(eq - env[i]));
		setenv(k, eq + 1, 1);
		free(k);
	}
}

static void start(clit *t, clit_proc *p, const char *const *env, const char *const *args,
                  const char *stdin_path);

void clit_start(clit *t, clit_proc *p, const char *const *env, const char *const *args)
{
	start(t, p, env, args, "/dev/null");
}

int clit_run_stdin(clit *t, clit_res *r, const char *input, const char *const *env,
                   const char *const *args)
{
	char *in = sb_strfmt("%s/in.%u", t->root, t->seq);
	sbt_write("/", in + 1, input, strlen(input), 0644);
	clit_proc p;
	start(t, &p, env, args, in);
	free(in);
	return clit_finish(t, &p, r);
}

static void start(clit *t, clit_proc *p, const char *const *env, const char *const *args,
                  const char *stdin_path)
{
	unsigned n = ++t->seq;
	p->out_path = sb_strfmt("%s/out.%u", t->root, n);
	p->err_path = sb_strfmt("%s/err.%u", t->root, n);
	size_t nargs = 0;
	while (args[nargs])
		nargs++;
	char **argv = sb_xcalloc(nargs + 2, sizeof *argv);
	argv[0] = t->bin;
	for (size_t i = 0; i < nargs; i++)
		argv[i + 1] = (char *)args[i];
	pid_t parent = getpid();
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* a test process that dies outright must not leave a daemon behind */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
			_exit(97);
		int in = open(stdin_path, O_RDONLY | O_CLOEXEC);
		int out = open(p->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		int err = open(p->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
		    dup2(err, 2) < 0)
			_exit(99);
		signal(SIGINT, SIG_DFL);
		child_env(t, env);
		execv(argv[0], argv);
		_exit(98);
	}
	free(argv);
	p->pid = pid;
	clit_track(t, pid);
}

int clit_finish(clit *t, clit_proc *p, clit_res *r)
{
	int st = 0;
	for (int i = 0;; i++) {
		pid_t w = waitpid(p->pid, &st, WNOHANG);
		if (w == p->pid)
			break;
		assert_true(w == 0 || errno == EINTR);
		if (i == 6000) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &st, 0);
			clit_untrack(t, p->pid);
			print_error("sandbar (pid %d) did not finish within 60 s\n", (int)p->pid);
			fail();
		}
		usleep(10000); /* polling waitpid: a child's exit has no descriptor to wait on */
	}
	clit_untrack(t, p->pid);
	r->code = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
	r->out = sbt_read("/", p->out_path + 1, NULL);
	r->err = sbt_read("/", p->err_path + 1, NULL);
	if (!r->out)
		r->out = sb_xstrdup("");
	if (!r->err)
		r->err = sb_xstrdup("");
	free(p->out_path);
	free(p->err_path);
	memset(p, 0, sizeof *p);
	return r->code;
}

int clit_run(clit *t, clit_res *r, const char *const *env, const char *const *args)
{
	clit_proc p;
	clit_start(t, &p, env, args);
	return clit_finish(t, &p, r);
}

void clit_res_free(clit_res *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

void clit_wait_for(const char *path, const char *needle)
{
	for (int i = 0; i < 3000; i++) {
		char *s = sbt_read("/", path + 1, NULL);
		bool found = s && strstr(s, needle);
		free(s);
		if (found)
			return;
		usleep(10000); /* poll interval: nothing notifies this condition */
	}
	char *s = sbt_read("/", path + 1, NULL);
	print_error("\"%s\" never appeared in %s; it holds:\n%s\n", needle, path, s ? s : "");
	free(s);
	fail();
}

char *clit_wait_glob(const char *pattern)
{
	for (int i = 0; i < 3000; i++) {
		glob_t g;
		int rc = glob(pattern, 0, NULL, &g);
		if (rc == 0 && g.gl_pathc == 1) {
			char *p = sb_xstrdup(g.gl_pathv[0]);
			globfree(&g);
			return p;
		}
		if (rc == 0)
			globfree(&g);
		usleep(10000); /* poll interval: nothing notifies this condition */
	}
	print_error("%s never matched exactly one path\n", pattern);
	fail();
	return NULL;
}

json_t *clit_json(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);
	if (!j || !json_is_object(j)) {
		print_error("not one JSON object (%s): %s\n", e.text, text);
		fail();
	}
	return j;
}

bool clit_json_set_eq(json_t *arr, const char *const *want)
{
	size_t n = 0;
	while (want[n])
		n++;
	if (!json_is_array(arr) || json_array_size(arr) != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool found = false;
		size_t k;
		json_t *v;
		json_array_foreach(arr, k, v) found =
		    found || (json_is_string(v) && !strcmp(json_string_value(v), want[i]));
		if (!found)
			return false;
	}
	return true;
}

char *clit_word_after(const char *text, const char *marker)
{
	const char *p = text ? strstr(text, marker) : NULL;
	if (!p) {
		print_error("\"%s\" not found in:\n%s\n", marker, text ? text : "(null)");
		fail();
	}
	p += strlen(marker);
	size_t n = strcspn(p, " \t\n\"'`)");
	return sb_xstrndup(p, n);
}

char *clit_acquire(clit *t)
{
	clit_res r;
	int code = clit_run(t, &r, NULL, CLIT_V("lease", "acquire"));
	if (code != 0)
		print_error("lease acquire: exit %d: %s\n", code, r.err);
	assert_int_equal(code, 0);
	size_t n = strcspn(r.out, "\n");
	assert_true(n > 0);
	char *id = sb_xstrndup(r.out, n);
	clit_res_free(&r);
	return id;
}

json_t *clit_find_lease(clit *t, const char *id)
{
	clit_res r;
	assert_int_equal(clit_run(t, &r, NULL, CLIT_V("lease", "list", "--json")), 0);
	json_t *arr = json_loads(r.out, 0, NULL);
	assert_true(json_is_array(arr));
	clit_res_free(&r);
	json_t *found = NULL;
	size_t i;
	json_t *o;
	json_array_foreach(arr, i, o) if (!strcmp(json_string_value(json_object_get(o, "id")), id))
	    found = json_incref(o);
	json_decref(arr);
	return found;
}
