/* anywhere.limits: the safe defaults are in force in a sandbox that asks for nothing: a pids
 * limit (1100 background processes cannot all start), /tmp and /dev/shm tmpfs of bounded size
 * (1 GiB without a memory limit, the memory limit with one: writing past it fails), and the
 * limits show in `sandbar lease list --json`. */
#include "anyt.h"

#include <stdlib.h>
#include <string.h>

static void pids_default_enforced(void **state)
{
	anyt *a = *state;
	clit_res r;
	int code = clit_run(&a->t, &r, NULL,
	                    CLIT_V("run", "-q", "-w", a->t.ws, "--", "sh", "-c",
	                           "(i=0; while [ $i -lt 1100 ]; do sleep 120 & i=$((i+1)); done) "
	                           "2>/dev/null; n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; "
	                           "echo procs=$n; kill -9 -1 2>/dev/null; true"));
	if (code != 0)
		print_error("%d: %s / %s\n", code, r.out, r.err);
	assert_int_equal(code, 0);
	char *p = strstr(r.out, "procs=");
	assert_non_null(p);
	int procs = atoi(p + 6);
	print_message("processes alive at once: %d\n", procs);
	assert_true(procs > 100);   /* it did start processes */
	assert_true(procs <= 1024); /* and no more than the default limit */
	clit_res_free(&r);
}

static void tmpfs_sizes_bounded(void **state)
{
	anyt *a = *state;
	clit_res r;
	int code = clit_run(&a->t, &r, NULL,
	                    CLIT_V("run", "-q", "-w", a->t.ws, "--", "sh", "-c",
	                           "grep -E ' /tmp | /dev/shm ' /proc/mounts"));
	assert_int_equal(code, 0);
	assert_non_null(strstr(r.out, "/tmp tmpfs"));
	assert_non_null(strstr(r.out, "/dev/shm tmpfs"));
	assert_int_equal(strstr(r.out, "size=1048576k") != NULL, 1);
	assert_non_null(strstr(strstr(r.out, "size=1048576k") + 1, "size=1048576k"));
	clit_res_free(&r);
	/* with a memory limit the tmpfs is that size, and writing past it fails */
	code = clit_run(&a->t, &r, NULL,
	                CLIT_V("run", "-q", "--memory", "64M", "-w", a->t.ws, "--", "sh", "-c",
	                       "grep ' /tmp ' /proc/mounts; "
	                       "dd if=/dev/zero of=/tmp/big bs=1M count=80 2>/dev/null; "
	                       "echo dd=$?; rm -f /tmp/big"));
	assert_int_equal(code, 0);
	assert_non_null(strstr(r.out, "size=65536k"));
	assert_null(strstr(r.out, "dd=0\n"));
	clit_res_free(&r);
}

static void limits_shown_in_lease_info(void **state)
{
	anyt *a = *state;
	clit_res r;
	int code = clit_run(&a->t, &r, NULL, CLIT_V("lease", "acquire"));
	if (code != 0)
		print_error("%s\n", r.err);
	assert_int_equal(code, 0);
	clit_res_free(&r);
	code = clit_run(&a->t, &r, NULL, CLIT_V("lease", "list", "--json"));
	assert_int_equal(code, 0);
	json_t *arr = json_loads(r.out, 0, NULL);
	assert_true(json_is_array(arr));
	assert_int_equal(json_array_size(arr), 1);
	json_t *lim = json_object_get(json_array_get(arr, 0), "limits");
	assert_non_null(lim);
	assert_int_equal(json_integer_value(json_object_get(lim, "pids")), 1024);
	assert_int_equal(json_integer_value(json_object_get(lim, "tmpfs_bytes")), 1 << 30);
	json_decref(arr);
	clit_res_free(&r);
}

/* The operator's memory default: `memory =` in the config file's [run] section for `sandbar
 * run`, $SANDBAR_MEMORY for the daemon; a value too small to run anything is refused. */
static void memory_default_from_the_config(void **state)
{
	anyt *a = *state;
	char *cfg = sbt_path(a->t.root, "config");
	sbt_write_str(a->t.root, "config", "[serve]\nmemory = 1G\n[run]\nmemory = 96M\n");
	char *env_cfg = sb_strfmt("SANDBAR_CONFIG=%s", cfg);
	const char *const env[] = {env_cfg, NULL};
	clit_res r;
	int code =
	    clit_run(&a->t, &r, env,
	             CLIT_V("run", "-q", "-w", a->t.ws, "--", "grep", " /tmp ", "/proc/mounts"));
	if (code != 0)
		print_error("%d: %s / %s\n", code, r.out, r.err);
	assert_int_equal(code, 0);
	assert_non_null(strstr(r.out, "size=98304k")); /* the tmpfs follows the memory limit */
	clit_res_free(&r);
	sbt_write_str(a->t.root, "config", "memory = 10\n");
	code = clit_run(&a->t, &r, env, CLIT_V("run", "-q", "-w", a->t.ws, "--", "true"));
	assert_int_equal(code, 125);
	assert_non_null(strstr(r.err, "too small"));
	assert_non_null(strstr(r.err, cfg));
	clit_res_free(&r);
	/* the daemon: its leases get the default, and show it as in force */
	setenv("SANDBAR_MEMORY", "80M", 1);
	char *tok = sbt_path(a->t.root, "token");
	int rc = anyt_serve(a, "127.0.0.1", tok, 0600, NULL);
	unsetenv("SANDBAR_MEMORY");
	assert_int_equal(rc, 0);
	char *body = NULL;
	assert_int_equal(
	    anyt_http(a, "POST", "/v1/leases", "{\"acquisition_id\":\"mem-1\"}", &body), 200);
	json_t *lease = clit_json(body);
	free(body);
	json_t *lim = json_object_get(lease, "limits");
	assert_int_equal(json_integer_value(json_object_get(lim, "memory_bytes")), 80 << 20);
	json_decref(lease);
	free(tok);
	free(env_cfg);
	free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(pids_default_enforced, anyt_setup, anyt_teardown),
	    cmocka_unit_test_setup_teardown(tmpfs_sizes_bounded, anyt_setup, anyt_teardown),
	    cmocka_unit_test_setup_teardown(limits_shown_in_lease_info, anyt_setup, anyt_teardown),
	    cmocka_unit_test_setup_teardown(memory_default_from_the_config, anyt_setup,
	                                    anyt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
