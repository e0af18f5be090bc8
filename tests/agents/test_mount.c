/* agents.mount: `sandbar run --mount HOST:PATH[:ro|rw]` binds host paths into the sandbox
 * (issue 14): read-only unless :rw, writes through an rw mount land on the host, nothing
 * mounted is staged or restored, and what must stay out of reach is refused before the
 * sandbox starts: the workspace and the sandbox's own paths as targets, sandbar's state
 * directory as a source, a path the sandbox's user cannot read, a malformed spec. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clitest.h"

static void ro_and_rw_mounts(void **state)
{
	clit *t = *state;
	char *ro = sbt_path(t->root, "creds"), *rw = sbt_path(t->root, "data");
	sbt_write_str(ro, "auth.json", "{\"token\":\"from-the-host\"}\n");
	assert_int_equal(sbt_sh("mkdir -p '%s' && chmod 0777 '%s'", rw, rw), 0);
	char *m_ro = sb_strfmt("%s:/home/sandbox/.codex", ro);
	char *m_rw = sb_strfmt("%s:/data:rw", rw);
	clit_res r;
	clit_run(t, &r, NULL,
	         CLIT_V("run", "-q", "-w", t->ws, "--mount", m_ro, "--mount", m_rw, "--", "sh",
	                "-c",
	                "cat /home/sandbox/.codex/auth.json; "
	                "echo x > /home/sandbox/.codex/new 2>/dev/null; echo ro=$?; "
	                "echo written-inside > /data/out.txt; echo rw=$?; "
	                "echo in-ws > ws.txt"));
	if (r.code != 0)
		print_error("exit %d\nstdout: %s\nstderr: %s\n", r.code, r.out, r.err);
	assert_int_equal(r.code, 0);
	assert_non_null(strstr(r.out, "from-the-host"));
	assert_null(strstr(r.out, "ro=0\n"));
	assert_non_null(strstr(r.out, "rw=0\n"));
	clit_res_free(&r);
	/* the rw write is on the host; the ro source is untouched; only the workspace came back */
	char *out = sbt_read(rw, "out.txt", NULL);
	assert_non_null(out);
	assert_string_equal(out, "written-inside\n");
	char *nw = sbt_path(ro, "new");
	assert_int_equal(access(nw, F_OK), -1);
	char *ws_file = sbt_read(t->ws, "ws.txt", NULL);
	assert_non_null(ws_file);
	char *listing = sbt_sh_out("ls -A '%s'", t->ws);
	assert_string_equal(listing, "ws.txt\n");
	free(listing);
	free(ws_file);
	free(nw);
	free(out);
	free(m_ro);
	free(m_rw);
	free(ro);
	free(rw);
}

static void refused_before_the_sandbox_starts(void **state)
{
	clit *t = *state;
	char *src = sbt_path(t->root, "src");
	sbt_write_str(src, "f", "x\n");
	char *secret = sbt_path(t->root, "secret");
	sbt_write_str(secret, "key", "k\n");
	assert_int_equal(sbt_sh("chmod 0700 '%s'", secret), 0);
	struct {
		char *spec;
		int code;
		const char *want;
	} cases[] = {
	    {sb_strfmt("%s:/workspace/x", src), 125, "at or around the workspace"},
	    {sb_strfmt("%s:/", src), 125, "at or around the workspace"},
	    {sb_strfmt("%s:/proc/x", src), 125, "/proc is the sandbox's own"},
	    {sb_strfmt("%s:/s", t->state), 125, "sandbar's state directory"},
	    {sb_strfmt("%s:/s", t->root), 125, "sandbar's state directory"},
	    {sb_strfmt("%s/missing:/m", t->root), 125, "No such file or directory"},
	    {sb_strfmt("%s:/m:rx", src), 2, "the mode is ro or rw"},
	    {sb_xstrdup("relative:/m"), 2, "must be absolute"},
	    {sb_strfmt("%s:/a/../b", src), 2, "must be absolute"},
	    {sb_strfmt("%s:/m", secret), 125, "cannot read it"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		clit_res r;
		clit_run(t, &r, NULL,
		         CLIT_V("run", "-q", "-w", t->ws, "--mount", cases[i].spec, "--", "true"));
		if (r.code == 0 || !strstr(r.err, cases[i].want))
			print_error("%s: exit %d, stderr: %s (want \"%s\")\n", cases[i].spec,
			            r.code, r.err, cases[i].want);
		assert_int_not_equal(r.code, 0);
		assert_non_null(strstr(r.err, cases[i].want));
		clit_res_free(&r);
		free(cases[i].spec);
	}
	/* none of these left a sandbox behind */
	char *leases = sbt_sh_out("ls -A '%s/leases' 2>/dev/null", t->state);
	assert_string_equal(leases, "");
	free(leases);
	free(secret);
	free(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    CLIT_TEST(ro_and_rw_mounts),
	    CLIT_TEST(refused_before_the_sandbox_starts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
