/* Helpers for the warm-pool tests (warmtest.h). */
#include "warmtest.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

sbt_daemon warmt_daemon;

int warmt_setup(void **state)
{
	(void)state;
	warmt_start(&warmt_daemon, 2);
	return 0;
}

int warmt_teardown(void **state)
{
	(void)state;
	sbt_group_stop(&warmt_daemon);
	return 0;
}

void warmt_start(sbt_daemon *d, int n)
{
	sbt_daemon_opts o = {.warm = n};
	sbt_group_start(d, &o);
	SBT_NEED_SANDBOX(sbt_sandbox_ok(d));
}

void warmt_counts(sbt_daemon *d, const char *config, int *size, int *ready)
{
	long st = 0;
	json_t *j = sbt_call(d, "GET", "/v1/health", NULL, &st);
	assert_int_equal(st, 200);
	json_t *w = json_object_get(j, "warm"), *r = json_object_get(j, "warm_ready");
	if (config) {
		json_t *p = json_object_get(json_object_get(j, "warm_pools"), config);
		w = json_object_get(p, "size");
		r = json_object_get(p, "ready");
	}
	assert_true(json_is_integer(w) && json_is_integer(r));
	*size = (int)json_integer_value(w);
	*ready = (int)json_integer_value(r);
	json_decref(j);
}

void warmt_claims(sbt_daemon *d, const char *config, int *claimed, int *empty)
{
	long st = 0;
	json_t *j = sbt_call(d, "GET", "/v1/health", NULL, &st);
	assert_int_equal(st, 200);
	json_t *p = json_object_get(json_object_get(j, "warm_pools"), config);
	json_t *c = json_object_get(p, "claimed"), *e = json_object_get(p, "empty");
	assert_true(json_is_integer(c) && json_is_integer(e));
	*claimed = (int)json_integer_value(c);
	*empty = (int)json_integer_value(e);
	json_decref(j);
}

void warmt_wait_ready(sbt_daemon *d, int n)
{
	static const char *const configs[WARMT_CONFIGS] = {WARMT_DEFAULT, WARMT_BRIDGE};
	int size = 0, ready[WARMT_CONFIGS] = {-1, -1};
	for (int i = 0; i < 3000; i++) {
		bool all = true;
		for (int k = 0; k < WARMT_CONFIGS; k++) {
			warmt_counts(d, configs[k], &size, &ready[k]);
			char **ids = warmt_ids(d, configs[k]);
			all = all && ready[k] == n && (int)sb_strv_len(ids) == n;
			sb_strv_free(ids);
		}
		if (all)
			return;
		usleep(10000); /* poll interval: the condition is the pool's count */
	}
	print_error("the warm pool has %d + %d sandbox(es) ready after 30 s, not %d of each\n",
	            ready[0], ready[1], n);
	fail();
}

char **warmt_ids(sbt_daemon *d, const char *config)
{
	char *dir = sbt_path(d->state_dir, "warm");
	char **ids = sb_xcalloc(1, sizeof *ids);
	DIR *dh = opendir(dir);
	if (dh) {
		struct dirent *de;
		while ((de = readdir(dh))) {
			if (de->d_name[0] == '.')
				continue;
			char *rel = sb_strfmt("warm/%s", de->d_name);
			char *text = sbt_read(d->state_dir, rel, NULL);
			free(rel);
			/* written with the sandbox's configuration's name before the sandbox starts
			 */
			char *want = config ? sb_strfmt("%s\n", config) : NULL;
			if (!config || (text && strcmp(text, want) == 0))
				sb_strv_push(&ids, de->d_name);
			free(want);
			free(text);
		}
		closedir(dh);
	}
	free(dir);
	return ids;
}

char *warmt_sandbox_id(sbt_daemon *d, const char *id)
{
	char *t = sb_strfmt("/v1/leases/%s", id);
	long st = 0;
	json_t *j = sbt_call(d, "GET", t, NULL, &st);
	free(t);
	assert_int_equal(st, 200);
	assert_non_null(sbt_jstr(j, "sandbox_id"));
	char *sid = sb_xstrdup(sbt_jstr(j, "sandbox_id"));
	json_decref(j);
	return sid;
}

bool warmt_has(char *const *ids, const char *id)
{
	for (size_t i = 0; ids && ids[i]; i++)
		if (strcmp(ids[i], id) == 0)
			return true;
	return false;
}

void warmt_sandbox_read(sbt_daemon *d, const char *id, warmt_sandbox *out)
{
	memset(out, 0, sizeof *out);
	char *rel = sb_strfmt("leases/%s/lease.json", id);
	char *text = sbt_read(d->state_dir, rel, NULL);
	free(rel);
	assert_non_null(text);
	json_t *j = json_loads(text, 0, NULL);
	free(text);
	assert_non_null(j);
	out->init_pid = (long)json_integer_value(json_object_get(j, "init_pid"));
	out->init_start = (long long)json_integer_value(json_object_get(j, "init_start"));
	out->cgroups = sb_xcalloc(1, sizeof *out->cgroups);
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(j, "cgroups"), i, v)
	    sb_strv_push(&out->cgroups, json_string_value(v));
	json_decref(j);
	assert_true(out->init_pid > 0);
}

void warmt_sandbox_deinit(warmt_sandbox *s)
{
	sb_strv_free(s->cgroups);
	memset(s, 0, sizeof *s);
}

int warmt_procs(const char *id)
{
	char *needle = sb_strfmt("/sandbar/%s-", id);
	int n = 0;
	DIR *dh = opendir("/proc");
	assert_non_null(dh);
	struct dirent *de;
	while ((de = readdir(dh))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		char *p = sb_strfmt("/proc/%s/cgroup", de->d_name);
		char *text = sbt_read("/", p + 1, NULL);
		if (text && strstr(text, needle))
			n++;
		free(text);
		free(p);
	}
	closedir(dh);
	free(needle);
	return n;
}

bool warmt_init_alive(const warmt_sandbox *s)
{
	char *p = sb_strfmt("proc/%ld/stat", s->init_pid);
	char *text = sbt_read("/", p, NULL);
	free(p);
	if (!text)
		return false;
	/* field 22, counted after the command name's closing parenthesis */
	const char *c = strrchr(text, ')');
	/* a zombie has ended: killed, it waits only for bwrap (its parent) to reap it */
	if (c && c[1] == ' ' && c[2] == 'Z') {
		free(text);
		return false;
	}
	long long start = -1;
	for (int f = 2; c && *c; c++)
		if (*c == ' ' && ++f == 22) {
			start = atoll(c + 1);
			break;
		}
	free(text);
	return start == s->init_start;
}

/* POST body to route; the answer's string key (the new lease's id), or the test fails. */
static char *post_for_id(sbt_daemon *d, const char *route, const char *body, const char *key)
{
	long st = 0;
	json_t *j = sbt_call(d, "POST", route, body, &st);
	if (st != 200 || !sbt_jstr(j, key)) {
		char *s = j ? json_dumps(j, 0) : NULL;
		print_error("POST %s %s: %ld %s\n", route, body, st, s ? s : "");
		free(s);
		fail();
	}
	char *id = sb_xstrdup(sbt_jstr(j, key));
	json_decref(j);
	return id;
}

char *warmt_bridge_acquire(sbt_daemon *d, const char *acq)
{
	json_t *req = json_pack("{s:s, s:s, s:s}", "acquisitionId", acq, "environmentId", "env",
	                        "runId", "run");
	char *body = json_dumps(req, 0);
	json_decref(req);
	char *id =
	    post_for_id(d, "/api/paperclip-sandbox/v2/leases/acquire", body, "providerLeaseId");
	free(body);
	return id;
}

char *warmt_acquire(sbt_daemon *d, const char *body)
{
	return post_for_id(d, "/v1/leases", body, "id");
}

char *warmt_exec(sbt_daemon *d, const char *id, const char *script)
{
	json_t *req = json_pack("{s:s}", "script", script);
	char *body = json_dumps(req, 0);
	json_decref(req);
	char *t = sb_strfmt("/v1/leases/%s/exec", id);
	long st = 0;
	json_t *j = sbt_call(d, "POST", t, body, &st);
	free(t);
	free(body);
	if (st != 200 || json_integer_value(json_object_get(j, "exit_code")) != 0) {
		char *s = j ? json_dumps(j, 0) : NULL;
		print_error("exec in %s: %ld %s\n", id, st, s ? s : "");
		free(s);
		/* what the lease's init said about it (a spool it could not write, ...) */
		char *sid = warmt_sandbox_id(d, id);
		char *rel = sb_strfmt("leases/%s/run/init.log", sid);
		char *log = sbt_read(d->state_dir, rel, NULL);
		print_error("%s:\n%s\n", rel, log ? log : "(none)");
		free(log);
		free(rel);
		free(sid);
		fail();
	}
	char *out = sb_xstrdup(sbt_jstr(j, "stdout") ? sbt_jstr(j, "stdout") : "");
	json_decref(j);
	return out;
}

void warmt_destroy(sbt_daemon *d, const char *id)
{
	char *t = sb_strfmt("/v1/leases/%s?force=1", id);
	long st = 0;
	json_decref(sbt_call(d, "DELETE", t, NULL, &st));
	free(t);
	assert_true(st == 200 || st == 204);
}
