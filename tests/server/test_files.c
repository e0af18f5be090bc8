/* File and workspace transfer: streamed PUT/GET/DELETE of files with modes and atomic
 * replacement, confinement to the workspace (".." and symlinks planted by sandboxed code lead
 * nowhere), and workspace tar streams in (destroy-then-replace, overlay kept) and out (with
 * excludes). */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "srvtest.h"

static sbt_daemon D;
static char *L;
static bool OK;
static char *TMP;

static int setup(void **state)
{
	(void)state;
	sbt_group_start(&D, NULL);
	OK = sbt_sandbox_ok(&D);
	if (OK)
		L = sbt_acquire(&D, "files-tests");
	TMP = sbt_mkdtemp("files");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(L);
	sbt_rmtree(TMP);
	sbt_group_stop(&D);
	return 0;
}

static json_t *sh(const char *script, long *st)
{
	char *t = sb_strfmt("/v1/leases/%s/exec", L);
	json_t *s = json_pack("{s:s}", "script", script);
	char *b = json_dumps(s, 0);
	json_t *j = sbt_call(&D, "POST", t, b, st);
	free(b);
	json_decref(s);
	free(t);
	return j;
}

static void put_get_delete_roundtrip_with_mode(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	size_t n = 300 * 1024 + 7;
	unsigned char *data = sb_xmalloc(n);
	sbt_fill_random(data, n, 42);
	sbt_write(TMP, "blob", data, n, 0644);
	char *src = sbt_path(TMP, "blob");
	char *t = sb_strfmt("/v1/leases/%s/files/sub/dir/blob%%20x.bin", L);
	const char *mh[] = {"X-Sandbar-Mode: 0750", NULL};
	sbt_req put = {
	    .method = "PUT", .target = t, .in_file = src, .headers = mh, .auth = SBT_AUTH_HMAC};
	sbt_resp r;
	assert_int_equal(sbt_http(&D, &put, &r), 200);
	assert_int_equal(json_integer_value(json_object_get(r.json, "size")), n);
	sbt_resp_deinit(&r);

	long st;
	json_t *j =
	    sh("stat -c %a '/workspace/sub/dir/blob x.bin'; wc -c < '/workspace/sub/dir/blob "
	       "x.bin'; ls -a /workspace/sub/dir",
	       &st);
	assert_int_equal(st, 200);
	char *want = sb_strfmt("750\n%zu\n.\n..\nblob x.bin\n", n);
	assert_string_equal(json_string_value(json_object_get(j, "stdout")),
	                    want); /* no temp left */
	free(want);
	json_decref(j);

	char *dst = sbt_path(TMP, "back");
	sbt_req get = {.method = "GET", .target = t, .out_file = dst};
	assert_int_equal(sbt_http(&D, &get, &r), 200);
	char *mode = sbt_resp_header(&r, "X-Sandbar-Mode");
	assert_string_equal(mode, "0750");
	free(mode);
	sbt_resp_deinit(&r);
	size_t got = 0;
	char *back = sbt_read(TMP, "back", &got);
	assert_int_equal(got, n);
	assert_memory_equal(back, data, n);
	free(back);

	/* Replace: a second PUT swaps the content whole. */
	sbt_req put2 = {.method = "PUT", .target = t, .body = "short", .body_len = 5};
	assert_int_equal(sbt_http(&D, &put2, &r), 200);
	sbt_resp_deinit(&r);
	sbt_req get2 = {.method = "GET", .target = t};
	assert_int_equal(sbt_http(&D, &get2, &r), 200);
	assert_int_equal(r.body.len, 5);
	assert_memory_equal(r.body.data, "short", 5);
	sbt_resp_deinit(&r);

	sbt_req del = {.method = "DELETE", .target = t};
	assert_int_equal(sbt_http(&D, &del, &r), 200);
	sbt_resp_deinit(&r);
	assert_int_equal(sbt_http(&D, &get2, &r), 404);
	sbt_resp_deinit(&r);
	assert_int_equal(sbt_http(&D, &del, &r), 404);
	sbt_resp_deinit(&r);
	char *dd = sb_strfmt("/v1/leases/%s/files/sub", L);
	sbt_req deld = {.method = "DELETE", .target = dd};
	assert_int_equal(sbt_http(&D, &deld, &r), 409);
	sbt_resp_deinit(&r);
	char *ddr = sb_strfmt("/v1/leases/%s/files/sub?recursive=1", L);
	sbt_req deldr = {.method = "DELETE", .target = ddr};
	assert_int_equal(sbt_http(&D, &deldr, &r), 200);
	sbt_resp_deinit(&r);
	free(ddr);
	free(dd);
	free(dst);
	free(t);
	free(src);
	free(data);
}

static void paths_stay_inside_the_workspace(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	long st;
	json_t *j = sh("ln -s /etc /workspace/etc-link; ln -s ../../../../../../tmp "
	               "/workspace/up; ln -s /etc/hostname /workspace/host-link",
	               &st);
	assert_int_equal(st, 200);
	json_decref(j);
	const char *bad[] = {"etc-link/passwd", "up/x", "host-link", "../x", "a/../../x"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *t = sb_strfmt("/v1/leases/%s/files/%s", L, bad[i]);
		sbt_req get = {.method = "GET", .target = t};
		sbt_resp r;
		long s = sbt_http(&D, &get, &r);
		assert_true(s == 400 || s == 404);
		sbt_resp_deinit(&r);
		sbt_req put = {.method = "PUT", .target = t, .body = "pwned", .body_len = 5};
		s = sbt_http(&D, &put, &r);
		if (!strcmp(bad[i], "host-link")) {
			/* The link itself is replaced by a file; its target is never written. */
			assert_int_equal(s, 200);
		} else {
			if (s < 400 || s >= 500)
				print_error("PUT %s -> %ld\n", bad[i], s);
			assert_true(s >= 400 && s < 500);
		}
		sbt_resp_deinit(&r);
		free(t);
	}
	struct stat sb;
	char *hn = sbt_read("/etc", "hostname", NULL);
	assert_true(hn == NULL || strstr(hn, "pwned") == NULL);
	free(hn);
	assert_int_not_equal(stat("/etc/x", &sb), 0);
	assert_int_not_equal(stat("/tmp/x", &sb), 0);
}

static void workspace_tar_in_replaces_but_keeps_overlay_and_out_excludes(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	long st;
	json_t *j = sh("mkdir -p /workspace/old /workspace/.paperclip-runtime && echo o > "
	               "/workspace/old/f && echo keep > /workspace/.paperclip-runtime/state",
	               &st);
	assert_int_equal(st, 200);
	json_decref(j);
	assert_int_equal(sbt_sh("cd '%s' && mkdir -p src/a node_modules/m && echo A > src/a/x && "
	                        "echo M > node_modules/m/y && tar -cf in.tar src node_modules",
	                        TMP),
	                 0);
	char *tar = sbt_path(TMP, "in.tar");
	char *t = sb_strfmt("/v1/leases/%s/workspace", L);
	sbt_req put = {.method = "PUT", .target = t, .in_file = tar, .auth = SBT_AUTH_HMAC};
	sbt_resp r;
	assert_int_equal(sbt_http(&D, &put, &r), 200);
	sbt_resp_deinit(&r);
	j = sh("cd /workspace && find . | sort && cat .paperclip-runtime/state", &st);
	assert_string_equal(
	    json_string_value(json_object_get(j, "stdout")),
	    ".\n./.paperclip-runtime\n./.paperclip-runtime/state\n./node_modules\n"
	    "./node_modules/m\n./node_modules/m/y\n./src\n./src/a\n./src/a/x\nkeep\n");
	json_decref(j);

	char *o =
	    sb_strfmt("/v1/leases/%s/workspace?exclude=node_modules&exclude=.paperclip-runtime", L);
	char *out = sbt_path(TMP, "out.tar");
	sbt_req get = {.method = "GET", .target = o, .out_file = out};
	assert_int_equal(sbt_http(&D, &get, &r), 200);
	char *ct = sbt_resp_header(&r, "Content-Type");
	assert_string_equal(ct, "application/x-tar");
	free(ct);
	sbt_resp_deinit(&r);
	char *list = sbt_sh_out("tar -tf '%s' | sort", out);
	assert_string_equal(list, "src/\nsrc/a/\nsrc/a/x\n");
	free(list);
	char *bad = sb_strfmt("/v1/leases/%s/workspace?exclude=*.o", L);
	sbt_req getb = {.method = "GET", .target = bad};
	assert_int_equal(sbt_http(&D, &getb, &r), 400);
	sbt_resp_deinit(&r);
	/* A tar trying to escape is refused. */
	assert_int_equal(sbt_sh("cd '%s' && printf x > esc && tar -cPf esc.tar --transform "
	                        "'s,^,../../,' esc 2>/dev/null",
	                        TMP),
	                 0);
	char *esc = sbt_path(TMP, "esc.tar");
	sbt_req pe = {.method = "PUT", .target = t, .in_file = esc};
	long s = sbt_http(&D, &pe, &r);
	assert_true(s >= 400 && s < 500);
	sbt_resp_deinit(&r);
	free(esc);
	free(bad);
	free(out);
	free(o);
	free(t);
	free(tar);
}

static void workspace_routes_take_a_directory_and_preserve_list(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	long st;
	json_t *j = sh("mkdir -p /workspace/pc/keep /workspace/pc/old /workspace/other && echo k > "
	               "/workspace/pc/keep/f && echo o > /workspace/other/f",
	               &st);
	assert_int_equal(st, 200);
	json_decref(j);
	assert_int_equal(sbt_sh("cd '%s' && mkdir -p sub/x/deep && echo N > sub/new && echo D > "
	                        "sub/x/deep/d && tar -C sub -cf sub.tar .",
	                        TMP),
	                 0);
	char *tar = sbt_path(TMP, "sub.tar");
	char *t = sb_strfmt("/v1/leases/%s/workspace?path=/workspace/pc&preserve=keep", L);
	sbt_req put = {.method = "PUT", .target = t, .in_file = tar};
	sbt_resp r;
	assert_int_equal(sbt_http(&D, &put, &r), 200);
	sbt_resp_deinit(&r);
	j = sh("cd /workspace && find pc other | sort", &st);
	assert_string_equal(json_string_value(json_object_get(j, "stdout")),
	                    "other\nother/f\npc\npc/keep\npc/keep/f\npc/new\npc/x\npc/x/deep\n"
	                    "pc/x/deep/d\n");
	json_decref(j);
	/* A new directory is created; outside the workspace is refused. */
	char *t2 = sb_strfmt("/v1/leases/%s/workspace?path=/workspace/fresh/dir", L);
	sbt_req put2 = {.method = "PUT", .target = t2, .in_file = tar};
	assert_int_equal(sbt_http(&D, &put2, &r), 200);
	sbt_resp_deinit(&r);
	char *t3 = sb_strfmt("/v1/leases/%s/workspace?path=/etc", L);
	sbt_req put3 = {.method = "PUT", .target = t3, .in_file = tar};
	assert_int_equal(sbt_http(&D, &put3, &r), 400);
	sbt_resp_deinit(&r);
	/* Out of a directory, with the matcher's own exclude forms. */
	char *g = sb_strfmt(
	    "/v1/leases/%s/workspace?path=/workspace/pc&exclude=*/deep/*&exclude=keep", L);
	char *out = sbt_path(TMP, "pc.tar");
	sbt_req get = {.method = "GET", .target = g, .out_file = out};
	assert_int_equal(sbt_http(&D, &get, &r), 200);
	sbt_resp_deinit(&r);
	char *list = sbt_sh_out("tar -tf '%s' | sort", out);
	assert_string_equal(list, "new\nx/\n"); /* a segment pattern drops the directory itself */
	free(list);
	free(out);
	free(g);
	free(t3);
	free(t2);
	free(t);
	free(tar);
}

/* A listing of the whole workspace with modes, sizes and checksums: equal means byte-identical. */
static char *tree_state(void)
{
	long st;
	json_t *j = sh("cd /workspace && find . -printf '%p %y %m %s\\n' | sort && find . -type f "
	               "-print0 | sort -z | xargs -0 -r md5sum",
	               &st);
	assert_int_equal(st, 200);
	char *out = sb_xstrdup(json_string_value(json_object_get(j, "stdout")));
	json_decref(j);
	return out;
}

static void workspace_put_refused_mid_archive_keeps_the_old_tree(void **state)
{
	(void)state;
	SBT_NEED_SANDBOX(OK);
	long st;
	json_t *j = sh("rm -rf /workspace/* && mkdir -p /workspace/keepme/d && echo old > "
	               "/workspace/keepme/d/f && head -c 4096 /dev/urandom > /workspace/bin && "
	               "chmod 0640 /workspace/bin && ln -s keepme /workspace/link",
	               &st);
	assert_int_equal(st, 200);
	json_decref(j);
	char *before = tree_state();
	assert_non_null(strstr(before, "./keepme/d/f f 644 4"));
	/* Good members first, then a member cut off in the middle of its data. */
	assert_int_equal(sbt_sh("cd '%s' && rm -rf mid && mkdir -p mid/a && echo A > mid/a/x && "
	                        "head -c 200000 /dev/urandom > mid/big && tar -C mid -cf full.tar "
	                        "a big && head -c 100000 full.tar > cut.tar",
	                        TMP),
	                 0);
	char *cut = sbt_path(TMP, "cut.tar");
	char *t = sb_strfmt("/v1/leases/%s/workspace", L);
	sbt_req put = {.method = "PUT", .target = t, .in_file = cut};
	sbt_resp r;
	assert_int_equal(sbt_http(&D, &put, &r), 400);
	sbt_resp_deinit(&r);
	char *after = tree_state();
	assert_string_equal(after, before); /* no staging directory left either */
	free(after);
	/* A FIFO member (after good ones) is refused with a 400 naming it. */
	assert_int_equal(sbt_sh("cd '%s' && rm -rf ff && mkdir -p ff && echo A > ff/a && mkfifo "
	                        "ff/the-pipe && tar -C ff -cf fifo.tar a the-pipe",
	                        TMP),
	                 0);
	char *ff = sbt_path(TMP, "fifo.tar");
	sbt_req pf = {.method = "PUT", .target = t, .in_file = ff};
	assert_int_equal(sbt_http(&D, &pf, &r), 400);
	sb_buf_appendc(&r.body, '\0');
	assert_non_null(strstr(r.body.data, "the-pipe"));
	assert_non_null(strstr(r.body.data, "FIFO"));
	sbt_resp_deinit(&r);
	after = tree_state();
	assert_string_equal(after, before);
	free(after);
	free(ff);
	free(before);
	free(t);
	free(cut);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(put_get_delete_roundtrip_with_mode),
	    cmocka_unit_test(paths_stay_inside_the_workspace),
	    cmocka_unit_test(workspace_tar_in_replaces_but_keeps_overlay_and_out_excludes),
	    cmocka_unit_test(workspace_routes_take_a_directory_and_preserve_list),
	    cmocka_unit_test(workspace_put_refused_mid_archive_keeps_the_old_tree),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
