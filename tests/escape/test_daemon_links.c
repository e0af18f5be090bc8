/* The daemon's file and workspace routes against links planted by sandboxed code. The targets
 * are host files and directories OUTSIDE the workspace that the sandbox's host user may write
 * (so the owner's credentials are no defence and only the confinement is tested): a file PUT,
 * GET or DELETE through a planted link must fail and leave them alone, a workspace GET keeps
 * links as links, a workspace PUT never extracts through one, a link swapped in while the
 * daemon writes never leads a write outside, and a hard link to a file the sandbox user cannot
 * write never lets a route write that file.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "srvtest.h"

#define SECRET "host-secret-0123456789"

static sbt_daemon D;
static char *L;
static bool OK;
static char *OUT; /* host directory outside the workspace, owned by the sandbox's host user */
static char *WS;  /* the lease's host-side workspace */
static char *REL; /* a relative link from the workspace root to OUT */

static int setup(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_ALL);
	sbt_daemon_start(&D, NULL);
	OK = sbt_sandbox_ok(&D);
	if (!OK)
		return 0;
	L = sbt_acquire(&D, "escape-links");
	WS = sb_strfmt("%s/leases/%s/workspace", D.state_dir, L);
	struct stat st;
	assert_int_equal(stat(WS, &st), 0);
	OUT = sbt_mkdtemp("esc-out");
	sbt_write_str(OUT, "secret.txt", SECRET "\n");
	assert_int_equal(sbt_sh("chown -R %u:%u '%s' && chmod 0755 '%s' && chmod 0644 "
	                        "'%s/secret.txt'",
	                        (unsigned)st.st_uid, (unsigned)st.st_gid, OUT, OUT, OUT),
	                 0);
	/* ../ once per component of WS, then OUT */
	sb_buf r = SB_BUF_INIT;
	for (const char *p = WS; *p; p++)
		if (*p == '/')
			sb_buf_appends(&r, "../");
	sb_buf_appends(&r, OUT + 1);
	REL = sb_buf_steal(&r, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(L);
	free(WS);
	free(REL);
	if (OUT)
		sbt_rmtree(OUT);
	sbt_daemon_stop(&D);
	curl_global_cleanup();
	return 0;
}

#define NEED_SANDBOX()                                                                             \
	do {                                                                                       \
		if (!OK)                                                                           \
			sbt_skip(SBT_NO_SANDBOX);                                                  \
	} while (0)

static void sh_ok(const char *script)
{
	char *t = sb_strfmt("/v1/leases/%s/exec", L);
	json_t *s = json_pack("{s:s}", "script", script);
	char *b = json_dumps(s, 0);
	long st = 0;
	json_t *j = sbt_call(&D, "POST", t, b, &st);
	assert_int_equal(st, 200);
	if (json_integer_value(json_object_get(j, "exit_code")) != 0)
		fail_msg("script failed: %s: %s", script,
		         json_string_value(json_object_get(j, "stderr")));
	json_decref(j);
	free(b);
	json_decref(s);
	free(t);
}

static long req(const char *method, const char *path, const char *body, sbt_resp *out)
{
	char *t = sb_strfmt("/v1/leases/%s/%s", L, path);
	sbt_req rq = {.method = method, .target = t, .body = body};
	long s = sbt_http(&D, &rq, out);
	free(t);
	return s;
}

/* OUT holds exactly secret.txt with its content. */
static void assert_outside_untouched(void)
{
	char *list = sbt_sh_out("ls -A '%s'", OUT);
	assert_string_equal(list, "secret.txt\n");
	free(list);
	char *c = sbt_read(OUT, "secret.txt", NULL);
	assert_string_equal(c, SECRET "\n");
	free(c);
}

static void plant_links(void)
{
	char *script = sb_strfmt("cd /workspace && rm -rf dirlink rellink filelink sub && "
	                         "ln -s '%s' dirlink && ln -s '%s' rellink && "
	                         "ln -s '%s/secret.txt' filelink && mkdir sub && "
	                         "ln -s ../rellink sub/up",
	                         OUT, REL, OUT);
	sh_ok(script);
	free(script);
}

static void file_routes_refuse_planted_links(void **state)
{
	(void)state;
	NEED_SANDBOX();
	plant_links();
	static const char *const through[] = {"files/dirlink/new.txt", "files/rellink/new.txt",
	                                      "files/sub/up/new.txt", "files/dirlink/secret.txt",
	                                      "files/sub/up/secret.txt"};
	for (size_t i = 0; i < sizeof through / sizeof through[0]; i++) {
		sbt_resp r;
		long s = req("PUT", through[i], "pwned\n", &r);
		if (s == 200)
			print_error("PUT %s was accepted\n", through[i]);
		assert_true(s >= 400 && s < 500);
		sbt_resp_deinit(&r);
		s = req("GET", through[i], NULL, &r);
		assert_true(s >= 400 && s < 500);
		assert_null(strstr(sb_buf_cstr(&r.body), SECRET));
		sbt_resp_deinit(&r);
		s = req("DELETE", through[i], NULL, &r);
		assert_true(s >= 400 && s < 500);
		sbt_resp_deinit(&r);
		assert_outside_untouched();
	}
	/* the link itself as the target: GET refuses, PUT replaces the link, never its target */
	sbt_resp r;
	long s = req("GET", "files/filelink", NULL, &r);
	assert_true(s >= 400 && s < 500);
	assert_null(strstr(sb_buf_cstr(&r.body), SECRET));
	sbt_resp_deinit(&r);
	s = req("PUT", "files/filelink", "replaced\n", &r);
	sbt_resp_deinit(&r);
	assert_outside_untouched();
	if (s == 200) {
		struct stat st;
		char *p = sbt_path(WS, "filelink");
		assert_int_equal(lstat(p, &st), 0);
		assert_true(S_ISREG(st.st_mode));
		free(p);
	}
	/* recursive DELETE of a link to a directory removes the link only */
	s = req("DELETE", "files/dirlink?recursive=1", NULL, &r);
	sbt_resp_deinit(&r);
	s = req("DELETE", "files/sub?recursive=1", NULL, &r);
	sbt_resp_deinit(&r);
	assert_outside_untouched();
}

static void workspace_routes_keep_links_as_links(void **state)
{
	(void)state;
	NEED_SANDBOX();
	plant_links();
	/* GET: the archive holds the links, not what they point at */
	char *tmp = sbt_mkdtemp("esc-tarsrc");
	char *tarpath = sbt_path(tmp, "ws.tar");
	char *t = sb_strfmt("/v1/leases/%s/workspace", L);
	sbt_req rq = {.method = "GET", .target = t, .out_file = tarpath};
	sbt_resp r;
	assert_int_equal(sbt_http(&D, &rq, &r), 200);
	sbt_resp_deinit(&r);
	char *listing = sbt_sh_out("tar -tvf '%s'", tarpath);
	assert_non_null(strstr(listing, "filelink -> "));
	assert_non_null(strstr(listing, "dirlink -> "));
	free(listing);
	/* no member from OUT: nothing below a link */
	listing = sbt_sh_out("tar -tf '%s' | grep -E '^(dirlink|rellink|sub/up)/' ; true", tarpath);
	assert_string_equal(listing, "");
	free(listing);
	assert_int_equal(sbt_sh("grep -q '%s' '%s'", SECRET, tarpath) == 0, 0);
	unlink(tarpath);

	/* PUT into a directory that is a link: refused */
	sbt_write_str(tmp, "new.txt", "pwned\n");
	assert_int_equal(sbt_sh("tar -C '%s' -cf '%s' new.txt", tmp, tarpath), 0);
	static const char *const dirs[] = {"/workspace/dirlink", "/workspace/rellink",
	                                   "/workspace/sub/up", "/workspace/sub/up/deeper"};
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		char *pt = sb_strfmt("/v1/leases/%s/workspace?path=%s", L, dirs[i]);
		sbt_req pq = {.method = "PUT", .target = pt, .in_file = tarpath};
		long s = sbt_http(&D, &pq, &r);
		if (s == 200)
			print_error("workspace PUT into %s was accepted\n", dirs[i]);
		assert_true(s >= 400 && s < 500);
		sbt_resp_deinit(&r);
		free(pt);
		assert_outside_untouched();
	}
	/* PUT keeping the link (preserve) and extracting members through it: refused or not
	 * followed */
	sbt_write_str(tmp, "dirlink/new.txt", "pwned\n");
	assert_int_equal(sbt_sh("tar -C '%s' -cf '%s' dirlink/new.txt", tmp, tarpath), 0);
	char *pt = sb_strfmt("/v1/leases/%s/workspace?preserve=dirlink&preserve=rellink", L);
	sbt_req pq = {.method = "PUT", .target = pt, .in_file = tarpath};
	sbt_http(&D, &pq, &r);
	sbt_resp_deinit(&r);
	assert_outside_untouched();
	free(pt);
	free(tarpath);
	sbt_rmtree(tmp);
	free(t);
}

/* Crafted archives into the workspace PUT: members climbing out with "..", absolute members
 * aimed at OUT, and a link to OUT followed by a member written through it. Refused; nothing
 * lands beside the workspace (the lease directory: run/, spool/) or in OUT. */
static void workspace_put_refuses_crafted_archives(void **state)
{
	(void)state;
	NEED_SANDBOX();
	char *tmp = sbt_mkdtemp("esc-craft");
	sbt_write_str(tmp, "src/esc-a.txt", "pwned\n");
	char *lease_dir = sb_strfmt("%s/leases/%s", D.state_dir, L);
	char *before = sbt_sh_out("ls -A '%s'", lease_dir);
	/* and the workspace itself survives the refusals whole */
	sh_ok("echo keep > /workspace/keep-me.txt");
	char *ws_before = sbt_sh_out("cd '%s' && find . | sort", WS);
	char *cmds[] = {
	    sb_strfmt("tar -C '%s/src' -cf '%s/c.tar' --transform 's,^,../,' esc-a.txt", tmp, tmp),
	    sb_strfmt("tar -C '%s/src' -cf '%s/c.tar' --transform 's,^,sub/../../,' esc-a.txt", tmp,
	              tmp),
	    sb_strfmt("cp '%s/src/esc-a.txt' '%s/abs.txt' && tar -cPf '%s/c.tar' '%s/abs.txt'; "
	              "rm -f '%s/abs.txt'",
	              tmp, OUT, tmp, OUT, OUT),
	    sb_strfmt("ln -s '%s' '%s/src/l' && tar -C '%s/src' -cf '%s/c.tar' l esc-a.txt "
	              "--transform 's,^esc-a.txt$,l/esc-a.txt,'; rm -f '%s/src/l'",
	              OUT, tmp, tmp, tmp, tmp),
	};
	/* the crafted member each archive must hold (so tar did not tidy it away) and the reason
	 * the daemon must give for the 400 */
	static const char *const member[] = {"../esc-a.txt", "sub/../../esc-a.txt", "/abs.txt",
	                                     "l/esc-a.txt"};
	static const char *const why[] = {"climbs out with \\\"..\\\"",
	                                  "climbs out with \\\"..\\\"", "is an absolute path",
	                                  "would be written through the symlink l"};
	char *t = sb_strfmt("/v1/leases/%s/workspace", L);
	char *tarpath = sbt_path(tmp, "c.tar");
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		assert_int_equal(sbt_sh("%s 2>/dev/null", cmds[i]), 0);
		char *list = sbt_sh_out("tar -tf '%s'", tarpath);
		if (!strstr(list, member[i]))
			fail_msg("crafted archive %zu lacks its member %s: %s", i, member[i], list);
		free(list);
		sbt_req pq = {.method = "PUT", .target = t, .in_file = tarpath};
		sbt_resp r;
		long s = sbt_http(&D, &pq, &r);
		print_message("crafted archive %zu: %ld %s\n", i, s, sb_buf_cstr(&r.body));
		assert_int_equal(s, 400);
		if (!strstr(sb_buf_cstr(&r.body), why[i]))
			fail_msg("crafted archive %zu refused for another reason than %s", i,
			         why[i]);
		sbt_resp_deinit(&r);
		assert_outside_untouched();
		char *after = sbt_sh_out("ls -A '%s'", lease_dir);
		assert_string_equal(before, after);
		free(after);
		after = sbt_sh_out("cd '%s' && find . | sort", WS);
		assert_string_equal(ws_before, after);
		free(after);
		free(cmds[i]);
	}
	free(tarpath);
	free(t);
	free(before);
	free(ws_before);
	free(lease_dir);
	sbt_rmtree(tmp);
}

/* ---- a link swapped in while the daemon reads and writes */

typedef struct putter {
	int n;
	int accepted;
	int leaked; /* reads that returned the host secret */
} putter;

static void *put_loop(void *arg)
{
	putter *p = arg;
	for (int i = 0; i < p->n; i++) {
		sbt_resp r;
		if (req("PUT", "files/race/new.txt", "pwned\n", &r) == 200)
			p->accepted++;
		sbt_resp_deinit(&r);
	}
	return NULL;
}

/* Reads through the flipping directory: a file GET and a workspace GET of it. */
static void *get_loop(void *arg)
{
	putter *p = arg;
	for (int i = 0; i < p->n; i++) {
		sbt_resp r;
		req("GET", "files/race/secret.txt", NULL, &r);
		if (r.body.data && memmem(r.body.data, r.body.len, SECRET, strlen(SECRET)))
			p->leaked++;
		sbt_resp_deinit(&r);
		req("GET", "workspace?path=/workspace/race", NULL, &r);
		if (r.body.data && memmem(r.body.data, r.body.len, SECRET, strlen(SECRET)))
			p->leaked++;
		sbt_resp_deinit(&r);
	}
	return NULL;
}

static void swapped_directory_never_leads_a_read_or_write_outside(void **state)
{
	(void)state;
	NEED_SANDBOX();
	/* sandboxed code flips race/ between a directory and a link to OUT as fast as it can */
	char *script = sb_strfmt("cd /workspace && timeout 20 sh -c 'while :; do "
	                         "rm -rf race; mkdir race; rm -rf race; ln -s %s race; done' "
	                         ">/dev/null 2>&1 & echo $! > /tmp/race.pid",
	                         OUT);
	sh_ok(script);
	free(script);
	putter p = {.n = 400}, g = {.n = 150};
	pthread_t t, tg;
	assert_int_equal(pthread_create(&t, NULL, put_loop, &p), 0);
	assert_int_equal(pthread_create(&tg, NULL, get_loop, &g), 0);
	/* and workspace PUTs into race/ at the same time */
	char *tmp = sbt_mkdtemp("esc-tarsrc");
	sbt_write_str(tmp, "new.txt", "pwned\n");
	char *tarpath = sbt_path(tmp, "x.tar");
	assert_int_equal(sbt_sh("tar -C '%s' -cf '%s' new.txt", tmp, tarpath), 0);
	char *pt = sb_strfmt("/v1/leases/%s/workspace?path=/workspace/race", L);
	for (int i = 0; i < 150; i++) {
		sbt_req pq = {.method = "PUT", .target = pt, .in_file = tarpath};
		sbt_resp r;
		sbt_http(&D, &pq, &r);
		sbt_resp_deinit(&r);
	}
	pthread_join(t, NULL);
	pthread_join(tg, NULL);
	sh_ok("kill $(cat /tmp/race.pid)");
	assert_int_equal(g.leaked, 0);
	print_message("file PUTs accepted while racing: %d of %d\n", p.accepted, p.n);
	assert_outside_untouched();
	free(pt);
	free(tarpath);
	sbt_rmtree(tmp);
}

static void hard_link_to_an_unwritable_file_is_not_written(void **state)
{
	(void)state;
	NEED_SANDBOX();
	/* a file the sandbox user cannot write, in the workspace (placed by the host as root) */
	sbt_write_str(WS, "rootfile", "root content\n");
	char *rf = sbt_path(WS, "rootfile");
	assert_int_equal(chown(rf, 0, 0), 0);
	assert_int_equal(chmod(rf, 0644), 0);
	/* sandboxed code tries to hard link it (protected_hardlinks refuses that); where it
	 * cannot, the host makes the link, as if it had succeeded */
	sh_ok("cd /workspace && (ln rootfile hl 2>/dev/null && echo linked || echo refused)");
	char *hl = sbt_path(WS, "hl");
	if (access(hl, F_OK) != 0)
		assert_int_equal(link(rf, hl), 0);
	sbt_resp r;
	long s = req("PUT", "files/hl", "pwned\n", &r);
	sbt_resp_deinit(&r);
	print_message("PUT over a hard link of a root file: %ld\n", s);
	char *c = sbt_read(WS, "rootfile", NULL);
	assert_string_equal(c, "root content\n");
	free(c);
	s = req("DELETE", "files/hl", NULL, &r);
	sbt_resp_deinit(&r);
	c = sbt_read(WS, "rootfile", NULL);
	assert_string_equal(c, "root content\n");
	free(c);
	unlink(hl);
	unlink(rf);
	free(hl);
	free(rf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(file_routes_refuse_planted_links),
	    cmocka_unit_test(workspace_routes_keep_links_as_links),
	    cmocka_unit_test(workspace_put_refuses_crafted_archives),
	    cmocka_unit_test(swapped_directory_never_leads_a_read_or_write_outside),
	    cmocka_unit_test(hard_link_to_an_unwritable_file_is_not_written),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
