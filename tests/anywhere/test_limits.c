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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(pids_default_enforced, anyt_setup, anyt_teardown),
	    cmocka_unit_test_setup_teardown(tmpfs_sizes_bounded, anyt_setup, anyt_teardown),
	    cmocka_unit_test_setup_teardown(limits_shown_in_lease_info, anyt_setup, anyt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
