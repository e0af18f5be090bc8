/* agents.stdin: `sandbar run -i` streams stdin to the command: 10 MiB of random bytes go
 * through byte-exact (the command writes them into the workspace, which comes back), and a
 * line-reading command gets its line while stdin is still open. */
#include <stdlib.h>
#include <string.h>

#include "clitest.h"

static void ten_mib_byte_exact(void **state)
{
	(void)state;
	clit t;
	clit_init(&t);
	size_t n = 10u << 20;
	char *data = malloc(n);
	assert_non_null(data);
	sbt_fill_random(data, n, 14);
	sbt_write(t.root, "in.bin", data, n, 0644);
	char *in = sbt_path(t.root, "in.bin");
	int rc = sbt_sh("cd '%s' && SANDBAR_CONFIG=/nonexistent '%s' run -q -i --state-dir '%s' -- "
	                "sh -c 'cat > out.bin; wc -c < out.bin' < '%s' > '%s/stdout' 2>&1",
	                t.ws, t.bin, t.state, in, t.root);
	size_t len = 0;
	char *out = sbt_read(t.root, "stdout", &len);
	if (rc != 0)
		print_error("sandbar run -i: %s\n", out ? out : "");
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "10485760"));
	char *got = sbt_read(t.ws, "out.bin", &len);
	assert_non_null(got);
	assert_int_equal(len, n);
	assert_memory_equal(got, data, n);
	/* without -i the command's stdin is empty */
	rc = sbt_sh("cd '%s' && SANDBAR_CONFIG=/nonexistent '%s' run -q --state-dir '%s' -- "
	            "sh -c 'wc -c' < '%s' > '%s/stdout2' 2>&1",
	            t.ws, t.bin, t.state, in, t.root);
	assert_int_equal(rc, 0);
	char *out2 = sbt_read(t.root, "stdout2", &len);
	assert_non_null(strstr(out2, "0\n"));
	free(out2);
	free(got);
	free(out);
	free(in);
	free(data);
	clit_fini(&t);
}

static void line_while_stdin_open(void **state)
{
	(void)state;
	clit t;
	clit_init(&t);
	/* the producer sends one line, waits for the command's answer in a file, then ends */
	int rc = sbt_sh("cd '%s' && { echo ping; i=0; while [ ! -s got.txt ] && [ $i -lt 600 ]; do "
	                "sleep 0.1; i=$((i+1)); done; } | SANDBAR_CONFIG=/nonexistent '%s' run -q "
	                "-i --state-dir '%s' -- sh -c 'read x; echo \"got $x\"' > got.txt 2>&1",
	                t.ws, t.bin, t.state);
	assert_int_equal(rc, 0);
	size_t len;
	char *got = sbt_read(t.ws, "got.txt", &len);
	assert_non_null(got);
	assert_non_null(strstr(got, "got ping"));
	free(got);
	clit_fini(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(ten_mib_byte_exact),
	    cmocka_unit_test(line_while_stdin_open),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
