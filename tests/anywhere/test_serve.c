/* anywhere.serve: `sandbar serve` (the copied binary) with its state directory inside a 0700
 * directory creates sandboxes and runs commands in them; a token file others can read is
 * refused at start with the chmod that fixes it. */
#include "anyt.h"

#include <string.h>
#include <sys/stat.h>

static void state_dir_in_a_private_directory(void **state)
{
	anyt *a = *state;
	char *tok = sbt_path(a->t.root, "token");
	char *err = NULL;
	int rc = anyt_serve(a, "127.0.0.1", tok, 0600, &err);
	if (rc != 0)
		print_error("sandbar serve refused to start: %s\n", err ? err : "");
	assert_int_equal(rc, 0);
	char *body = NULL;
	assert_int_equal(
	    anyt_http(a, "POST", "/v1/leases", "{\"acquisition_id\":\"any-1\"}", &body), 200);
	json_t *lease = clit_json(body);
	free(body);
	const char *id = json_string_value(json_object_get(lease, "id"));
	assert_non_null(id);
	char *path = sb_strfmt("/v1/leases/%s/exec", id);
	int st = anyt_http(a, "POST", path, "{\"script\":\"echo hello from $(id -u)\"}", &body);
	if (st != 200)
		print_error("exec: %d %s\n", st, body);
	assert_int_equal(st, 200);
	json_t *ex = clit_json(body);
	assert_int_equal(json_integer_value(json_object_get(ex, "exit_code")), 0);
	assert_string_equal(json_string_value(json_object_get(ex, "stdout")), "hello from 1000\n");
	json_decref(ex);
	free(body);
	free(path);
	json_decref(lease);
	/* the header limit /v1/health advertises is the one enforced */
	assert_int_equal(anyt_http(a, "GET", "/v1/health", NULL, &body), 200);
	json_t *h = clit_json(body);
	free(body);
	json_int_t max =
	    json_integer_value(json_object_get(json_object_get(h, "limits"), "max_header_bytes"));
	json_decref(h);
	assert_true(max > 1024);
	char *code = sbt_sh_out("curl -s -o /dev/null -w '%%{http_code}' -H \"X-Pad: $(head -c %d "
	                        "/dev/zero | tr '\\0' a)\" %s/v1/health",
	                        (int)max + 16, a->url);
	assert_string_equal(code, "431");
	free(code);
	code = sbt_sh_out("curl -s -o /dev/null -w '%%{http_code}' -H \"X-Pad: $(head -c %d "
	                  "/dev/zero | tr '\\0' a)\" %s/v1/health",
	                  (int)max - 512, a->url);
	assert_string_equal(code, "200");
	free(code);
	struct stat sst;
	assert_int_equal(stat(a->t.root, &sst), 0);
	assert_int_equal(sst.st_mode & 0777, 0700);
	free(tok);
	free(err);
}

static void token_readable_by_others_is_refused(void **state)
{
	anyt *a = *state;
	char *tok = sbt_path(a->t.root, "token");
	char *err = NULL;
	int rc = anyt_serve(a, "127.0.0.1", tok, 0644, &err);
	assert_int_not_equal(rc, 0);
	assert_non_null(err);
	char *fix = sb_strfmt("chmod 600 %s", tok);
	if (!strstr(err, fix) || !strstr(err, "0644"))
		print_error("unexpected message: %s\n", err);
	assert_non_null(strstr(err, fix));
	assert_non_null(strstr(err, "0644"));
	free(fix);
	free(err);
	free(tok);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(state_dir_in_a_private_directory, anyt_setup,
	                                    anyt_teardown),
	    cmocka_unit_test_setup_teardown(token_readable_by_others_is_refused, anyt_setup,
	                                    anyt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
