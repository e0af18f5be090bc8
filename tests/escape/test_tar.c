/* Crafted archives from a sandbox: the restore's command path asks the far side for a tar of
 * the workspace, and a sandboxed `tar` shim on the command PATH answers with an archive of its
 * own making: members named `../x`, `/abs/x`, or a symlink leading out followed by a file
 * written through it (and a hard link to a host file). The restore must fail or skip those
 * members; it must never write outside the local workspace.
 */
#include "harness.h"
#include "sbx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sandbar/sandbox.h>

static char *state;
static sb_sandbox *sb;

static int setup(void **s)
{
	(void)s;
	state = sbx_state_dir();
	sb = sbx_create(state, "esc-tar", NULL);
	return 0;
}

static int teardown(void **s)
{
	(void)s;
	SB_ASSERT_OK(sb_sandbox_destroy(sb));
	sbx_state_free(state);
	return 0;
}

/* ---- a minimal ustar writer, so the archive can hold what no honest tar writes */

static void octal(char *dst, size_t width, uint64_t v)
{
	char tmp[32];
	snprintf(tmp, sizeof tmp, "%0*llo", (int)(width - 1), (unsigned long long)v);
	memcpy(dst, tmp, width - 1);
	dst[width - 1] = '\0';
}

static void member(sb_buf *out, const char *name, char type, const char *link, const char *data)
{
	char h[512];
	memset(h, 0, sizeof h);
	size_t len = data ? strlen(data) : 0;
	assert_true(strlen(name) < 100 && (!link || strlen(link) < 100));
	memcpy(h, name, strlen(name));
	octal(h + 100, 8, type == '5' ? 0755 : 0644);
	octal(h + 108, 8, 1000);
	octal(h + 116, 8, 1000);
	octal(h + 124, 12, len);
	octal(h + 136, 12, 1700000000);
	h[156] = type;
	if (link)
		memcpy(h + 157, link, strlen(link));
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	unsigned sum = 0;
	for (size_t i = 0; i < sizeof h; i++)
		sum += (unsigned char)h[i];
	snprintf(h + 148, 8, "%06o", sum);
	h[155] = ' ';
	sb_buf_append(out, h, sizeof h);
	if (len) {
		sb_buf_append(out, data, len);
		static const char zeros[512];
		if (len % 512)
			sb_buf_append(out, zeros, 512 - len % 512);
	}
}

static void finish(sb_buf *out)
{
	static const char zeros[1024];
	sb_buf_append(out, zeros, sizeof zeros);
}

typedef struct env {
	char *top;     /* host directory holding local/ and the outside targets */
	char *local;   /* top/local: the local workspace */
	char *outside; /* top/outside: a host directory the archive aims at */
	char *abs;     /* an absolute host path the archive names */
	rth_rec *rec;
	sb_runner *runner;
	sb_runtime *rt;
} env;

static void env_init(env *e)
{
	memset(e, 0, sizeof *e);
	e->top = sbt_mkdtemp("esc-tar");
	e->local = sbt_path(e->top, "local");
	e->outside = sbt_path(e->top, "outside");
	e->abs = sb_strfmt("%s/abs-target", e->top);
	sbt_write_str(e->local, "a.txt", "local a\n");
	sbt_write_str(e->outside, "keep.txt", "host file\n");
	sb_runner *inner = NULL;
	SB_ASSERT_OK(sb_sandbox_runner_new(sb, NULL, &inner));
	e->runner = rth_rec_new(inner, 0, &e->rec);
	sb_runtime_prepare_opts o = {
	    .runner = e->runner,
	    .spec = {.remote_cwd = "/workspace"},
	    .adapter_key = "claude",
	    .workspace_local_dir = e->local,
	    .force_command_path = true,
	};
	SB_ASSERT_OK(sb_runtime_prepare(&o, &e->rt));
}

static void env_free(env *e)
{
	sb_runtime_free(e->rt);
	sb_runner_free(e->runner);
	free(e->abs);
	free(e->outside);
	free(e->local);
	sbt_rmtree(e->top);
}

/* Sandboxed code puts a `tar` on the command PATH that answers `tar -cf <file> ...` with the
 * crafted archive (kept in the sandbox's /tmp) instead of the workspace. Every call appends its
 * arguments to /tmp/tar-calls, and every archive served a line to /tmp/tar-served, so the test
 * can tell that the restore read the crafted archive and not an honest one. */
static void plant_shim(env *e, const sb_buf *archive)
{
	const char *ws = sb_sandbox_workspace_dir(sb);
	sbt_write(ws, ".evil.tar", archive->data, archive->len, 0644);
	sbx_result r;
	sbx_sh(sb,
	       "set -e; mkdir -p /tmp/bin; mv /workspace/.evil.tar /tmp/evil.tar; "
	       "rm -f /tmp/tar-served; "
	       "real=$(command -v tar); "
	       "printf '#!/bin/sh\\necho \"$*\" >> /tmp/tar-calls\\n"
	       "if [ \"$1\" = \"-cf\" ]; then if [ \"$2\" = - ]; then "
	       "cat /tmp/evil.tar; else cat /tmp/evil.tar > \"$2\"; fi; "
	       "echo served >> /tmp/tar-served; exit 0; fi\\nexec %s \"$@\"\\n' \"$real\" "
	       "> /tmp/bin/tar; chmod 755 /tmp/bin/tar",
	       &r);
	assert_int_equal(r.st.exit_code, 0);
	sbx_result_free(&r);
	rth_rec_add_env(e->rec, "PATH=/tmp/bin:/usr/local/bin:/usr/bin:/bin");
}

/* How many crafted archives the shim served since it was planted; on none, prints how the
 * runtime called tar (the shim must be adapted to it, or the test tests nothing). */
static int served_count(void)
{
	sbx_result r;
	sbx_sh(sb, "cat /tmp/tar-served 2>/dev/null | wc -l; echo '--'; cat /tmp/tar-calls", &r);
	assert_int_equal(r.st.exit_code, 0);
	const char *o = sb_buf_cstr(&r.out);
	int n = atoi(o);
	if (n == 0)
		print_error("the crafted archive was never served; tar calls:\n%s\n", o);
	sbx_result_free(&r);
	return n;
}

/* Nothing appeared beside the local workspace or at the absolute target. */
static void assert_nothing_outside(env *e)
{
	char *list = sbt_sh_out("cd '%s' && find . -path ./local -prune -o -print | sort", e->top);
	assert_string_equal(list, ".\n./outside\n./outside/keep.txt\n");
	free(list);
	rth_assert_file(e->outside, "keep.txt", "host file\n");
	assert_int_not_equal(access(e->abs, F_OK), 0);
	struct stat st;
	char *keep = sbt_path(e->outside, "keep.txt");
	assert_int_equal(stat(keep, &st), 0);
	assert_int_equal(st.st_nlink, 1); /* no local name shares the host file */
	free(keep);
	/* and the workspace holds no link leading out */
	char *links = sbt_sh_out("cd '%s' && find . -type l -exec readlink {} \\;", e->local);
	assert_null(strstr(links, e->top));
	free(links);
}

/* The crafted archive must be what the restore read (served exactly once). expect is a
 * fragment of the message the restore must refuse it with (a path_escape error), or NULL when
 * the archive is harmless as a whole and must be applied (its a.txt then arrives). */
static void restore_archive(env *e, sb_buf *archive, const char *what, const char *expect)
{
	plant_shim(e, archive);
	sb_err *err = sb_runtime_restore(e->rt, NULL, NULL);
	const char *msg = err ? err->msg : "restore succeeded";
	print_message("%s: %s\n", what, msg);
	assert_int_equal(served_count(), 1);
	if (!expect) {
		if (err)
			fail_msg("%s: a harmless archive was refused: %s", what, msg);
		rth_assert_file(e->local, "a.txt", "remote a\n");
	} else if (!err) {
		fail_msg("%s: the restore accepted the crafted archive", what);
	} else if (err->code != SB_E_ESCAPE || !strstr(msg, expect)) {
		fail_msg("%s: refused for another reason than [path_escape] \"%s\": [%s] %s", what,
		         expect, sb_errcode_name(err->code), msg);
	}
	sb_err_free(err);
	assert_nothing_outside(e);
}

/* Each case is its own archive, so every trick is tried even though the first refusal ends a
 * restore. */
typedef struct tmember {
	const char *name; /* "@" is replaced by the outside dir, "#" by the absolute target */
	char type;
	const char *link;
	const char *data;
} tmember;

static char *expand(env *e, const char *s)
{
	if (!s)
		return NULL;
	if (s[0] == '@')
		return sb_strfmt("%s%s", e->outside, s + 1);
	if (s[0] == '#')
		return sb_xstrdup(e->abs);
	return sb_xstrdup(s);
}

static void try_cases(const char *what, const tmember *const *cases, const char *const *expect,
                      size_t n)
{
	env e;
	env_init(&e);
	for (size_t c = 0; c < n; c++) {
		sb_buf a = SB_BUF_INIT;
		member(&a, "a.txt", '0', NULL, "remote a\n");
		for (const tmember *m = cases[c]; m->name; m++) {
			char *name = expand(&e, m->name), *link = expand(&e, m->link);
			member(&a, name, m->type, link, m->data);
			free(name);
			free(link);
		}
		finish(&a);
		char *label = sb_strfmt("%s, case %zu", what, c);
		restore_archive(&e, &a, label, expect[c]);
		free(label);
		sb_buf_deinit(&a);
	}
	env_free(&e);
}

static void dotdot_members_never_land_outside(void **s)
{
	(void)s;
	static const tmember c0[] = {{"../escaped.txt", '0', NULL, "out\n"}, {0}};
	static const tmember c1[] = {{"sub/../../escaped2.txt", '0', NULL, "out\n"}, {0}};
	static const tmember c2[] = {{"../outside/keep.txt", '0', NULL, "overwritten\n"}, {0}};
	static const tmember c3[] = {{"./../escaped3.txt", '0', NULL, "out\n"}, {0}};
	static const tmember c4[] = {
	    {"..", '5', NULL, NULL}, {"../escaped4.txt", '0', NULL, "x"}, {0}};
	const tmember *const cases[] = {c0, c1, c2, c3, c4};
	const char *const why[] = {"climbs out with \"..\"", "climbs out with \"..\"",
	                           "climbs out with \"..\"", "climbs out with \"..\"",
	                           "climbs out with \"..\""};
	assert_int_equal(sizeof why / sizeof why[0], sizeof cases / sizeof cases[0]);
	try_cases("../ members", cases, why, sizeof cases / sizeof cases[0]);
}

static void absolute_members_never_land_outside(void **s)
{
	(void)s;
	static const tmember c0[] = {{"#", '0', NULL, "absolute\n"}, {0}};
	static const tmember c1[] = {{"@/keep.txt", '0', NULL, "overwritten\n"}, {0}};
	static const tmember c2[] = {{"@/newdir", '5', NULL, NULL}, {0}};
	const tmember *const cases[] = {c0, c1, c2};
	const char *const why[] = {"is an absolute path", "is an absolute path",
	                           "is an absolute path"};
	assert_int_equal(sizeof why / sizeof why[0], sizeof cases / sizeof cases[0]);
	try_cases("absolute members", cases, why, sizeof cases / sizeof cases[0]);
}

static void write_through_a_symlink_member_never_lands_outside(void **s)
{
	(void)s;
	/* links out (absolute, relative, from a subdirectory), each followed by members written
	 * through them; a link to a host file replaced by a regular member of the same name; a
	 * link to a link */
	static const tmember c0[] = {
	    {"l", '2', "@", NULL}, {"l/keep.txt", '0', NULL, "overwritten\n"}, {0}};
	static const tmember c1[] = {{"l", '2', "@", NULL}, {"l/new.txt", '0', NULL, "x\n"}, {0}};
	static const tmember c2[] = {
	    {"r", '2', "../outside", NULL}, {"r/new2.txt", '0', NULL, "x\n"}, {0}};
	static const tmember c3[] = {{"d", '5', NULL, NULL},
	                             {"d/up", '2', "../../outside", NULL},
	                             {"d/up/new3.txt", '0', NULL, "x\n"},
	                             {0}};
	static const tmember c4[] = {
	    {"f", '2', "../outside/keep.txt", NULL}, {"f", '0', NULL, "overwritten\n"}, {0}};
	static const tmember c5[] = {{"x", '2', "../outside", NULL},
	                             {"y", '2', "x", NULL},
	                             {"y/new4.txt", '0', NULL, "x\n"},
	                             {0}};
	static const tmember c6[] = {
	    {"z", '2', "../outside", NULL}, {"z/sub", '5', NULL, NULL}, {0}};
	const tmember *const cases[] = {c0, c1, c2, c3, c4, c5, c6};
	const char *const why[] = {
	    "would be written through the symlink l",   "would be written through the symlink l",
	    "would be written through the symlink r",   "would be written through the symlink up",
	    NULL /* the regular f replaces the link */, "would be written through the symlink y",
	    "would be written through the symlink z"};
	assert_int_equal(sizeof why / sizeof why[0], sizeof cases / sizeof cases[0]);
	try_cases("symlink then write", cases, why, sizeof cases / sizeof cases[0]);
}

static void hard_link_members_never_reach_host_files(void **s)
{
	(void)s;
	static const tmember c0[] = {
	    {"h", '1', "@/keep.txt", NULL}, {"h", '0', NULL, "overwritten\n"}, {0}};
	static const tmember c1[] = {{"h2", '1', "../outside/keep.txt", NULL}, {0}};
	static const tmember c2[] = {
	    {"l", '2', "../outside", NULL}, {"h3", '1', "l/keep.txt", NULL}, {0}};
	const tmember *const cases[] = {c0, c1, c2};
	const char *const why[] = {"is an absolute path", "climbs out with \"..\"",
	                           "would be written through the symlink l"};
	assert_int_equal(sizeof why / sizeof why[0], sizeof cases / sizeof cases[0]);
	try_cases("hard links", cases, why, sizeof cases / sizeof cases[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(dotdot_members_never_land_outside),
	    cmocka_unit_test(absolute_members_never_land_outside),
	    cmocka_unit_test(write_through_a_symlink_member_never_lands_outside),
	    cmocka_unit_test(hard_link_members_never_reach_host_files),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
