/* Soak (#18): the daemon SIGKILLed at a random point of five operations, then restarted on the
 * same state. Trial i exercises phase i % 5, its kill point drawn uniformly over the length of
 * an uninterrupted run of the same operation (measured first):
 *  - acquire: retrying the acquisition after the restart yields one lease, the same one the
 *    list shows, never two;
 *  - exec: a command writing output for a second and exiting 7: once it ends, its status has
 *    exit code 7 and its output route returns every byte it wrote;
 *  - upload: a workspace PUT: once the lease is opened again, the workspace is wholly the old
 *    tree or wholly the new one, no staging directory left;
 *  - callback: a sandboxed POST through the callback bridge to an upstream run here, counting
 *    what reaches it: never twice; a 200 means it arrived once, a 503 that it never did;
 *  - destroy: a retried DELETE destroys the lease.
 * After every trial no lease is lost, duplicated or leaked: each live lease has exactly one
 * sandbar-init and its cgroups, every other lease the daemon's state ever named has neither.
 * SANDBAR_SOAK_TRIALS sets the count (default 100); exits 1 when a trial failed (the quick
 * version, fault.daemon_kill_phases, runs it with a few trials). Over 600 lines: the five
 * phases share the fixture, the upstream and the lease accounting, and read best together. */
#include <glob.h>
#include <dirent.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "benchdaemon.h"
#include "benchutil.h"

#define N_PHASES 5
#define EXEC_LINES 200
#define CB_MS 400 /* how long the upstream takes to answer the callback POST */
#define SECRET_ENV "SOAK_UPSTREAM_SECRET"

static const char *const phase_names[N_PHASES] = {"acquire", "exec", "upload", "callback",
                                                  "destroy"};

/* ------------------------------------------------------------------ the upstream */

/* A loopback HTTP/1.1 upstream: one request per connection, answered after CB_MS; it records
 * every request's target. One per process (the daemon under test has one callback section). */
static struct {
	int fd, port;
	pthread_mutex_t mu;
	char **targets;
	size_t n;
} g_up = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *upstream_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	sb_buf in = SB_BUF_INIT;
	char buf[4096];
	size_t want = 0;
	bool whole = false;
	while (!whole) {
		ssize_t r = recv(fd, buf, sizeof buf, 0);
		if (r <= 0)
			break;
		sb_buf_append(&in, buf, (size_t)r);
		const char *s = sb_buf_cstr(&in), *end = strstr(s, "\r\n\r\n");
		if (end && !want) {
			const char *cl = strcasestr(s, "content-length:");
			want = (size_t)(end - s) + 4 + (cl ? strtoul(cl + 15, NULL, 10) : 0);
		}
		whole = end && in.len >= want;
	}
	const char *sp = whole ? strchr(sb_buf_cstr(&in), ' ') : NULL;
	if (sp) {
		pthread_mutex_lock(&g_up.mu);
		g_up.targets = sb_xrealloc(g_up.targets, (g_up.n + 1) * sizeof *g_up.targets);
		g_up.targets[g_up.n++] = sb_xstrndup(sp + 1, strcspn(sp + 1, " "));
		pthread_mutex_unlock(&g_up.mu);
		sb_sleep_ms(CB_MS);
		const char *reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		                    "Content-Length: 12\r\nConnection: close\r\n\r\n{\"ok\":true}\n";
		(void)!send(fd, reply, strlen(reply), MSG_NOSIGNAL);
	}
	close(fd);
	sb_buf_deinit(&in);
	return NULL;
}

static void *upstream_main(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept4(g_up.fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		pthread_t t;
		pthread_create(&t, NULL, upstream_conn, (void *)(intptr_t)c);
		pthread_detach(t);
	}
	return NULL;
}

static bool upstream_start(void)
{
	g_up.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	if (g_up.fd < 0 || bind(g_up.fd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    listen(g_up.fd, 64) < 0 || getsockname(g_up.fd, (struct sockaddr *)&a, &len) < 0) {
		perror("starting the upstream");
		return false;
	}
	g_up.port = ntohs(a.sin_port);
	pthread_t t;
	pthread_create(&t, NULL, upstream_main, NULL);
	pthread_detach(t);
	return true;
}

static size_t upstream_count(const char *target)
{
	size_t n = 0;
	pthread_mutex_lock(&g_up.mu);
	for (size_t i = 0; i < g_up.n; i++)
		n += strcmp(g_up.targets[i], target) == 0;
	pthread_mutex_unlock(&g_up.mu);
	return n;
}

/* ------------------------------------------------------------------ daemon calls */

static sbb_daemon g_d;
static char g_trees[200]; /* old/, new/, old.tar, new.tar of the upload phase */
static int g_trial;

static void say(const char *fmt, ...) SB_PRINTF(1, 2);
static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "# daemon-kill trial %d: ", g_trial);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* One call on a handle of the calling thread; the parsed reply (NULL when not JSON). */
static json_t *call(const char *method, const char *target, const char *body, long *status)
{
	CURL *c = curl_easy_init();
	sb_buf out = SB_BUF_INIT;
	*status = sbb_daemon_call(&g_d, c, method, target, body, &out);
	curl_easy_cleanup(c);
	json_t *j = json_loadb(out.data ? out.data : "", out.len, 0, NULL);
	sb_buf_deinit(&out);
	return j;
}

static const char *jstr(const json_t *j, const char *k)
{
	return json_string_value(json_object_get(j, k));
}

/* A request made on its own thread, so the daemon can be killed under it. */
typedef struct bg {
	const char *method;
	char target[200];
	const void *body;
	size_t len;
	long status;
	sb_buf out;
	pthread_t t;
} bg;

static void *bg_main(void *arg)
{
	bg *b = arg;
	CURL *c = curl_easy_init();
	b->status = sbb_daemon_call_body(&g_d, c, b->method, b->target, b->body, b->len, &b->out);
	curl_easy_cleanup(c);
	return NULL;
}

static void bg_start(bg *b)
{
	sb_buf_init(&b->out);
	pthread_create(&b->t, NULL, bg_main, b);
}

/* Acquire with acquisition_id acq (and extra JSON members); retries 503 and 500 (both say
 * "retry") for 30 s. The lease id, or NULL. */
static char *acquire(const char *acq, const char *extra)
{
	char *body = sb_strfmt("{\"acquisition_id\":\"%s\"%s%s}", acq, extra ? "," : "",
	                       extra ? extra : "");
	char *id = NULL;
	long st = 0;
	for (int i = 0; i < 300 && !id; i++) {
		json_t *j = call("POST", "/v1/leases", body, &st);
		if (st == 200 && jstr(j, "id"))
			id = sb_xstrdup(jstr(j, "id"));
		else if (st != 503 && st != 500) {
			say("acquiring %s: %ld", acq, st);
			json_decref(j);
			break;
		}
		json_decref(j);
		if (!id)
			sb_sleep_ms(100);
	}
	free(body);
	return id;
}

/* DELETE (force) until the lease is gone; false when it would not go. */
static bool destroy(const char *id)
{
	char *t = sb_strfmt("/v1/leases/%s?force=1", id);
	long st = 0;
	for (int i = 0; i < 100; i++) {
		json_decref(call("DELETE", t, NULL, &st));
		if (st == 200 || st == 404)
			break;
		sb_sleep_ms(100);
	}
	free(t);
	if (st != 200 && st != 404)
		say("destroying %s: %ld", id, st);
	return st == 200 || st == 404;
}

/* Wait (30 s) for an exec to end; its status, or NULL (404: never started; or still running). */
static json_t *exec_end(const char *lease, const char *exec_id, long *status)
{
	char *t = sb_strfmt("/v1/leases/%s/execs/%s", lease, exec_id);
	json_t *j = NULL;
	for (int i = 0; i < 300; i++) {
		j = call("GET", t, NULL, status);
		if (*status != 200 || json_is_false(json_object_get(j, "running")))
			break;
		json_decref(j);
		j = NULL;
		sb_sleep_ms(100);
	}
	free(t);
	if (*status != 200) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

static sb_buf exec_output(const char *lease, const char *exec_id)
{
	char *t = sb_strfmt("/v1/leases/%s/execs/%s/output?stream=stdout", lease, exec_id);
	CURL *c = curl_easy_init();
	sb_buf out = SB_BUF_INIT;
	long st = sbb_daemon_call(&g_d, c, "GET", t, NULL, &out);
	curl_easy_cleanup(c);
	free(t);
	if (st != 200)
		sb_buf_clear(&out);
	return out;
}

/* ------------------------------------------------------------------ leases, processes, cgroups */

/* Processes of ours of the lease id (NULL: of any lease): bwrap and sandbar-init write their
 * stderr to <state>/leases/<id>/run/init.log. Only those named sandbar-init (comm
 * ".sandbar-init") with init_only. */
static int lease_procs(const char *id, bool init_only)
{
	char want[200];
	snprintf(want, sizeof want, "%s/leases/%s%s", g_d.state, id ? id : "", id ? "/" : "");
	DIR *p = opendir("/proc");
	int n = 0;
	for (struct dirent *e; p && (e = readdir(p));) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		char path[300], link[512];
		snprintf(path, sizeof path, "/proc/%s/fd/2", e->d_name);
		ssize_t l = readlink(path, link, sizeof link - 1);
		if (l <= 0)
			continue;
		link[l] = 0;
		if (!sb_str_has_prefix(link, want))
			continue;
		snprintf(path, sizeof path, "/proc/%s/comm", e->d_name);
		sb_buf b = SB_BUF_INIT;
		sb_err *err = sb_read_file(path, 256, &b);
		n += !err && (!init_only || strstr(sb_buf_cstr(&b), "sandbar-init") != NULL);
		sb_err_free(err);
		sb_buf_deinit(&b);
	}
	if (p)
		closedir(p);
	return n;
}

/* cgroup directories named for the lease (<controller>/.../sandbar/<id>-<random>). */
static int cgroups(const char *id)
{
	static const char *const dirs[] = {"/sys/fs/cgroup/sandbar", "/sys/fs/cgroup/*/sandbar",
	                                   "/sys/fs/cgroup/*/*/*/sandbar"};
	int n = 0;
	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
		char pat[300];
		snprintf(pat, sizeof pat, "%s/%s-*", dirs[i], id);
		glob_t g;
		if (glob(pat, GLOB_ONLYDIR, NULL, &g) == 0)
			n += (int)g.gl_pathc;
		globfree(&g);
	}
	return n;
}

/* Every lease id the daemon's state names on disk, added to *ids (a NULL-terminated list). */
static void note_lease_dirs(char ***ids)
{
	char path[200];
	snprintf(path, sizeof path, "%s/leases", g_d.state);
	DIR *dir = opendir(path);
	for (struct dirent *e; dir && (e = readdir(dir));) {
		if (e->d_name[0] == '.')
			continue;
		bool seen = false;
		for (size_t i = 0; *ids && (*ids)[i] && !seen; i++)
			seen = strcmp((*ids)[i], e->d_name) == 0;
		if (!seen)
			sb_strv_push(ids, e->d_name);
	}
	if (dir)
		closedir(dir);
}

/* Leaked leases already reported: a later trial does not count them again. */
static char **g_reported;

static bool reported(const char *id)
{
	for (size_t i = 0; g_reported && g_reported[i]; i++)
		if (strcmp(g_reported[i], id) == 0)
			return true;
	return false;
}

/* No lease lost, duplicated or leaked: each lease the list shows is active with one
 * sandbar-init of ours in its cgroups; each other id the state ever named has no process and
 * no cgroup; and nothing of ours runs beyond the listed leases. */
static bool leases_accounted(char **ids)
{
	long st = 0;
	json_t *j = call("GET", "/v1/leases", NULL, &st);
	json_t *arr = json_object_get(j, "leases");
	bool ok = st == 200;
	size_t i;
	json_t *l;
	int listed_procs = 0, leaked_procs = 0;
	json_array_foreach(arr, i, l)
	{
		const char *id = jstr(l, "id"), *state = jstr(l, "state");
		int procs = lease_procs(id, true), cgs = cgroups(id);
		listed_procs += lease_procs(id, false);
		if (strcmp(state, "active") != 0 || procs != 1 || cgs < 1) {
			say("lease %s: state %s, %d sandbar-init, %d cgroups", id, state, procs, cgs);
			ok = false;
		}
	}
	for (size_t k = 0; ids && ids[k]; k++) {
		bool listed = false;
		json_array_foreach(arr, i, l) listed = listed || strcmp(jstr(l, "id"), ids[k]) == 0;
		if (listed)
			continue;
		int procs = lease_procs(ids[k], false), cgs = cgroups(ids[k]);
		if (reported(ids[k])) {
			leaked_procs += procs;
			continue;
		}
		if (procs || cgs) {
			sb_strv_push(&g_reported, ids[k]);
			leaked_procs += procs;
			say("lease %s is not listed yet has %d processes, %d cgroups", ids[k], procs,
			    cgs);
			ok = false;
		}
	}
	int inits = lease_procs(NULL, true), all = lease_procs(NULL, false);
	if (all != listed_procs + leaked_procs ||
	    (inits != (int)json_array_size(arr) && all == listed_procs)) {
		say("%d sandbar-init and %d processes of ours for %zu listed leases (with %d)", inits,
		    all, json_array_size(arr), listed_procs);
		ok = false;
	}
	json_decref(j);
	return ok;
}

/* ------------------------------------------------------------------ phases */

typedef struct fixture {
	char *exec_lease, *upload_lease, *cb_lease;
	double span[N_PHASES]; /* seconds an uninterrupted run of each phase takes */
	int outcomes[N_PHASES][2]; /* [phase][0]: killed before the reply, [1]: after */
	int cb_200, cb_409, cb_503, cb_other; /* what the sandboxed client got */
	size_t cb_max_sent;                    /* the most times one POST reached the upstream */
} fixture;

/* Sleep a random part of the phase's span (delay < 0: not at all), then kill and restart. */
static bool kill_at(double delay)
{
	if (delay >= 0)
		sb_sleep_ms((int)(delay * 1000));
	if (!sbb_daemon_kill_restart(&g_d)) {
		say("the daemon did not come back");
		return false;
	}
	return true;
}

static bool phase_acquire(fixture *f, double delay, char ***ids)
{
	(void)f;
	bg b = {.method = "POST"};
	snprintf(b.target, sizeof b.target, "/v1/leases");
	char *body = sb_strfmt("{\"acquisition_id\":\"soak-dk-acq-%d\"}", g_trial);
	b.body = body;
	b.len = strlen(body);
	bg_start(&b);
	bool ok = kill_at(delay);
	pthread_join(b.t, NULL);
	note_lease_dirs(ids);
	char acq[64];
	snprintf(acq, sizeof acq, "soak-dk-acq-%d", g_trial);
	char *id = ok ? acquire(acq, NULL) : NULL;
	ok = id != NULL;
	/* exactly one lease for the acquisition, the one the retry answered */
	long st = 0;
	json_t *j = call("GET", "/v1/leases", NULL, &st);
	size_t i, mine = 0;
	json_t *l;
	json_array_foreach(json_object_get(j, "leases"), i, l)
	{
		const char *a = jstr(l, "acquisition_id");
		if (a && strcmp(a, acq) == 0) {
			mine++;
			ok = ok && strcmp(jstr(l, "id"), id) == 0;
		}
	}
	json_decref(j);
	if (mine != 1) {
		say("acquisition %s has %zu leases", acq, mine);
		ok = false;
	}
	f->outcomes[0][b.status == 200]++;
	if (id) {
		sb_strv_push(ids, id);
		ok = leases_accounted(*ids) && ok;
		ok = destroy(id) && ok;
	}
	sb_buf_deinit(&b.out);
	free(body);
	free(id);
	return ok;
}

static const char exec_script[] =
    "i=0; while [ $i -lt 200 ]; do " /* EXEC_LINES */
    "echo \"line $i of the soak's exec, padded to carry some bytes\"; i=$((i + 1)); "
    "[ $((i % 10)) = 0 ] && sleep 0.05; done; exit 7";

/* Start the exec (script, exec_id) on lease in the background, kill the daemon after delay,
 * and once it is back wait for the command's end: its status, or NULL (*st 404: the daemon
 * died before it started it; *ok false: no end). */
static json_t *exec_across_kill(fixture *f, int phase, const char *lease, const char *script,
                                const char *exec_id, double delay, bool *ok)
{
	json_t *req = json_pack("{s:s,s:s}", "script", script, "exec_id", exec_id);
	char *body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	bg b = {.method = "POST", .body = body, .len = strlen(body)};
	snprintf(b.target, sizeof b.target, "/v1/leases/%s/exec", lease);
	bg_start(&b);
	*ok = kill_at(delay);
	pthread_join(b.t, NULL);
	f->outcomes[phase][b.status == 200]++;
	long st = 0;
	json_t *end = *ok ? exec_end(lease, exec_id, &st) : NULL;
	if (!end && st != 404) {
		say("exec %s: no end (%ld)", exec_id, st);
		*ok = false;
	}
	sb_buf_deinit(&b.out);
	free(body);
	return end;
}

static bool phase_exec(fixture *f, double delay, char ***ids)
{
	(void)ids;
	char exec_id[64];
	snprintf(exec_id, sizeof exec_id, "soak-dk-ex-%d", g_trial);
	bool ok = true;
	json_t *end = exec_across_kill(f, 1, f->exec_lease, exec_script, exec_id, delay, &ok);
	if (end) {
		/* what the command wrote: EXEC_LINES lines */
		sb_buf want = SB_BUF_INIT;
		for (int i = 0; i < EXEC_LINES; i++) {
			char line[100];
			int n = snprintf(line, sizeof line,
			                 "line %d of the soak's exec, padded to carry some bytes\n", i);
			sb_buf_append(&want, line, (size_t)n);
		}
		sb_buf got = exec_output(f->exec_lease, exec_id);
		json_t *code = json_object_get(end, "exit_code");
		if (!json_is_integer(code) || json_integer_value(code) != 7) {
			say("exec %s ended without its exit code 7", exec_id);
			ok = false;
		}
		if (got.len != want.len || memcmp(got.data, want.data, want.len) != 0) {
			say("exec %s: %zu bytes of output, want %zu", exec_id, got.len, want.len);
			ok = false;
		}
		sb_buf_deinit(&got);
		sb_buf_deinit(&want);
		json_decref(end);
	}
	return ok;
}

static long put_tree(const char *lease, const char *which)
{
	char path[300], target[200];
	snprintf(path, sizeof path, "%s/%s.tar", g_trees, which);
	snprintf(target, sizeof target, "/v1/leases/%s/workspace", lease);
	sb_buf tar = SB_BUF_INIT, out = SB_BUF_INIT;
	sb_err *err = sb_read_file(path, 64u << 20, &tar);
	CURL *c = curl_easy_init();
	long st = err ? 0 : sbb_daemon_call_body(&g_d, c, "PUT", target, tar.data, tar.len, &out);
	curl_easy_cleanup(c);
	sb_err_free(err);
	sb_buf_deinit(&tar);
	sb_buf_deinit(&out);
	return st;
}

/* Whether the lease's workspace is exactly the tree named which (the overlay dir aside). */
static bool workspace_is(const char *lease, const char *which)
{
	char cmd[700];
	snprintf(cmd, sizeof cmd,
	         "diff -r --no-dereference -x .paperclip-runtime '%s/%s' "
	         "'%s/leases/%s/workspace' >/dev/null 2>&1",
	         g_trees, which, g_d.state, lease);
	return system(cmd) == 0;
}

static bool phase_upload(fixture *f, double delay, char ***ids)
{
	(void)ids;
	if (put_tree(f->upload_lease, "old") != 200) {
		say("PUT of the old tree failed");
		return false;
	}
	char path[300];
	snprintf(path, sizeof path, "%s/new.tar", g_trees);
	sb_buf tar = SB_BUF_INIT;
	sb_err *err = sb_read_file(path, 64u << 20, &tar);
	if (err) {
		say("%s", err->msg);
		sb_err_free(err);
		return false;
	}
	bg b = {.method = "PUT", .body = tar.data, .len = tar.len};
	snprintf(b.target, sizeof b.target, "/v1/leases/%s/workspace", f->upload_lease);
	bg_start(&b);
	bool ok = kill_at(delay);
	pthread_join(b.t, NULL);
	f->outcomes[2][b.status == 200]++;
	/* the lease is opened again (recovering an interrupted replace) by its first use */
	char target[200];
	snprintf(target, sizeof target, "/v1/leases/%s/exec", f->upload_lease);
	long st = 0;
	json_decref(call("POST", target, "{\"argv\":[\"true\"]}", &st));
	if (st != 200) {
		say("the upload's lease does not run commands after the restart: %ld", st);
		ok = false;
	}
	bool old = workspace_is(f->upload_lease, "old"), neu = workspace_is(f->upload_lease, "new");
	if (!old && !neu) {
		say("the workspace is neither wholly old nor wholly new (PUT answered %ld)", b.status);
		ok = false;
	}
	if (b.status == 200 && !neu) {
		say("the PUT answered 200 but the workspace is not the new tree");
		ok = false;
	}
	sb_buf_deinit(&b.out);
	sb_buf_deinit(&tar);
	return ok;
}

static bool phase_callback(fixture *f, double delay, char ***ids)
{
	(void)ids;
	char exec_id[64], up_target[64];
	snprintf(exec_id, sizeof exec_id, "soak-dk-cb-%d", g_trial);
	snprintf(up_target, sizeof up_target, "/api/slow?t=%d", g_trial);
	char *script = sb_strfmt("curl -sS -o /dev/null -w '%%{http_code}' -X POST -H "
	                         "\"Authorization: Bearer $SANDBAR_CALLBACK_TOKEN\" -H "
	                         "'Content-Type: application/json' --data '{\"n\":%d}' "
	                         "\"$SANDBAR_CALLBACK_URL%s\"",
	                         g_trial, up_target);
	bool ok = true;
	json_t *end = exec_across_kill(f, 3, f->cb_lease, script, exec_id, delay, &ok);
	sb_buf code = end ? exec_output(f->cb_lease, exec_id) : (sb_buf)SB_BUF_INIT;
	size_t sent = upstream_count(up_target);
	const char *c = code.len ? sb_buf_cstr(&code) : "none";
	f->cb_200 += strcmp(c, "200") == 0;
	f->cb_409 += strcmp(c, "409") == 0;
	f->cb_503 += strcmp(c, "503") == 0;
	f->cb_other += strcmp(c, "200") && strcmp(c, "409") && strcmp(c, "503");
	f->cb_max_sent = sent > f->cb_max_sent ? sent : f->cb_max_sent;
	if (sent > 1 || (strcmp(c, "200") == 0 && sent != 1) ||
	    (strcmp(c, "503") == 0 && sent != 0)) {
		say("the POST reached the upstream %zu times; the sandbox got %s", sent, c);
		ok = false;
	}
	sb_buf_deinit(&code);
	json_decref(end);
	free(script);
	return ok;
}

static bool phase_destroy(fixture *f, double delay, char ***ids)
{
	char acq[64];
	snprintf(acq, sizeof acq, "soak-dk-del-%d", g_trial);
	char *id = acquire(acq, NULL);
	if (!id)
		return false;
	sb_strv_push(ids, id);
	bg b = {.method = "DELETE"};
	snprintf(b.target, sizeof b.target, "/v1/leases/%s", id);
	bg_start(&b);
	bool ok = kill_at(delay);
	pthread_join(b.t, NULL);
	f->outcomes[4][b.status == 200]++;
	note_lease_dirs(ids);
	ok = ok && destroy(id);
	char target[200];
	snprintf(target, sizeof target, "/v1/leases/%s", id);
	long st = 0;
	json_t *j = call("GET", target, NULL, &st);
	if (st != 200 || !jstr(j, "state") || strcmp(jstr(j, "state"), "destroyed") != 0) {
		say("lease %s after the retried destroy: %ld %s", id, st,
		    jstr(j, "state") ? jstr(j, "state") : "");
		ok = false;
	}
	json_decref(j);
	sb_buf_deinit(&b.out);
	free(id);
	return ok;
}

typedef bool (*phase_fn)(fixture *f, double delay, char ***ids);
static const phase_fn phases[N_PHASES] = {phase_acquire, phase_exec, phase_upload,
                                          phase_callback, phase_destroy};

/* ------------------------------------------------------------------ setup */

static bool make_trees(void)
{
	snprintf(g_trees, sizeof g_trees, "%s/trees", g_d.dir);
	char cmd[1200];
	snprintf(cmd, sizeof cmd,
	         "set -e; cd '%s' && mkdir -p trees && cd trees && mkdir old new && "
	         "for i in $(seq 1 300); do d=d$((i %% 9)); mkdir -p old/$d new/$d; "
	         "echo \"old $i\" > old/$d/f$i.txt; "
	         "[ $((i %% 4)) = 0 ] || echo \"new $i with more bytes than before\" > new/$d/f$i.txt; "
	         "done && mkdir new/added && for i in $(seq 1 50); do echo $i > new/added/n$i; done "
	         "&& head -c 2097152 /dev/urandom > old/big.bin && "
	         "head -c 3145728 /dev/urandom > new/big.bin && "
	         "tar -C old -cf old.tar . && tar -C new -cf new.tar .",
	         g_d.dir);
	return system(cmd) == 0;
}

static bool setup(fixture *f)
{
	f->exec_lease = acquire("soak-dk-exec", NULL);
	f->upload_lease = acquire("soak-dk-upload", NULL);
	f->cb_lease = acquire("soak-dk-cb", "\"callback\":{\"name\":\"up\",\"routes\":[{\"method\":"
	                                    "\"POST\",\"path\":\"^/api/slow$\"}]}");
	return f->exec_lease && f->upload_lease && f->cb_lease && make_trees();
}

/* Destroy every listed lease but the fixture's: after a failed trial (so that the next one
 * starts clean) and at the end (sandboxes outlive the daemon). */
static void destroy_others(const fixture *f)
{
	long st = 0;
	json_t *j = call("GET", "/v1/leases", NULL, &st);
	size_t i;
	json_t *l;
	json_array_foreach(json_object_get(j, "leases"), i, l)
	{
		const char *id = jstr(l, "id");
		if (id && strcmp(id, f->exec_lease) != 0 && strcmp(id, f->upload_lease) != 0 &&
		    strcmp(id, f->cb_lease) != 0)
			destroy(id);
	}
	json_decref(j);
}

/* How long each operation takes uninterrupted: the kill points are drawn over that span. */
static void calibrate(fixture *f)
{
	long st = 0;
	double t0 = sbb_now();
	char *id = acquire("soak-dk-calibrate", NULL);
	f->span[0] = sbb_now() - t0;
	t0 = sbb_now();
	if (id)
		destroy(id);
	f->span[4] = sbb_now() - t0;
	free(id);
	char *t = sb_strfmt("/v1/leases/%s/exec", f->exec_lease);
	json_t *req = json_pack("{s:s}", "script", exec_script);
	char *body = json_dumps(req, JSON_COMPACT);
	t0 = sbb_now();
	json_decref(call("POST", t, body, &st));
	f->span[1] = sbb_now() - t0;
	free(body);
	json_decref(req);
	free(t);
	put_tree(f->upload_lease, "old");
	t0 = sbb_now();
	put_tree(f->upload_lease, "new");
	f->span[2] = sbb_now() - t0;
	t = sb_strfmt("/v1/leases/%s/exec", f->cb_lease);
	t0 = sbb_now();
	json_decref(call("POST", t,
	                 "{\"script\":\"curl -sS -o /dev/null -X POST -H \\\"Authorization: "
	                 "Bearer $SANDBAR_CALLBACK_TOKEN\\\" -H 'Content-Type: application/json' "
	                 "--data '{}' \\\"$SANDBAR_CALLBACK_URL/api/slow?t=calibrate\\\"\"}",
	                 &st));
	f->span[3] = sbb_now() - t0;
	free(t);
}

int main(void)
{
	const char *env = getenv("SANDBAR_SOAK_TRIALS");
	int trials = env && atoi(env) > 0 ? atoi(env) : 100;
	curl_global_init(CURL_GLOBAL_ALL);
	if (!upstream_start())
		return 1;
	/* the daemon reads its callback section from the config named here, written below
	 * before its first restart reads it... so write it before the first start */
	char *cfgdir = sbb_tmpdir("sandbar-soak-dk-cfg", 0700);
	char *cfg = sb_strfmt("%s/config", cfgdir);
	char *text = sb_strfmt("[serve]\n[callback up]\nupstream = http://127.0.0.1:%d\n"
	                       "credential = env:" SECRET_ENV "\ntimeout_ms = 30000\n",
	                       g_up.port);
	sb_err *err = sb_fs_write_atomic(cfg, text, strlen(text), 0600);
	free(text);
	if (err) {
		fprintf(stderr, "# %s\n", err->msg);
		return 1;
	}
	setenv("SANDBAR_CONFIG", cfg, 1);
	setenv(SECRET_ENV, "soak-upstream-secret-0123456789", 1);
	fixture f;
	memset(&f, 0, sizeof f);
	if (!sbb_daemon_start(&g_d, "soak-dk", NULL) || !setup(&f)) {
		fprintf(stderr, "# daemon-kill: setup failed\n");
		sbb_daemon_stop(&g_d);
		return 1;
	}
	calibrate(&f);
	fprintf(stderr, "# daemon-kill: uninterrupted spans (ms): acquire %.0f, exec %.0f, upload "
	                "%.0f, callback %.0f, destroy %.0f\n",
	        f.span[0] * 1e3, f.span[1] * 1e3, f.span[2] * 1e3, f.span[3] * 1e3,
	        f.span[4] * 1e3);
	int failures = 0, per_phase_fail[N_PHASES] = {0};
	unsigned seed = (unsigned)getpid();
	for (int i = 0; i < trials; i++) {
		g_trial = i;
		int p = i % N_PHASES;
		double span = f.span[p] > 0 ? f.span[p] : 1.0;
		double delay = span * ((double)rand_r(&seed) / RAND_MAX);
		char **tids = NULL;
		bool ok = phases[p](&f, delay, &tids);
		note_lease_dirs(&tids);
		ok = leases_accounted(tids) && ok;
		sb_strv_free(tids);
		if (!ok) {
			say("phase %s failed (kill after %.0f ms)", phase_names[p], delay * 1e3);
			failures++;
			per_phase_fail[p]++;
			destroy_others(&f);
		}
	}
	char figures[1024];
	size_t n = 0;
	for (int p = 0; p < N_PHASES; p++)
		n += (size_t)snprintf(figures + n, sizeof figures - n, "%s%s %d/%d failed (%d killed before the reply)",
		                      p ? "; " : "", phase_names[p], per_phase_fail[p],
		                      f.outcomes[p][0] + f.outcomes[p][1], f.outcomes[p][0]);
	snprintf(figures + n, sizeof figures - n,
	         "; callback client got 200 x%d, 409 x%d, 503 x%d, other x%d, a POST reached "
	         "the upstream at most %zu time(s)",
	         f.cb_200, f.cb_409, f.cb_503, f.cb_other, f.cb_max_sent);
	printf("sandbar serve SIGKILLed mid-acquire, exec, upload, callback, destroy\t%d\t%d\t%s\n",
	       trials, failures, figures);
	destroy_others(&f);
	destroy(f.exec_lease);
	destroy(f.upload_lease);
	destroy(f.cb_lease);
	free(f.exec_lease);
	free(f.upload_lease);
	free(f.cb_lease);
	sbb_daemon_stop(&g_d);
	unlink(cfg);
	rmdir(cfgdir);
	free(cfgdir);
	free(cfg);
	curl_global_cleanup();
	return failures ? 1 : 0;
}
