/* base.excludes: the literal matcher of managed-runtime spec §2.8 and the check of user-given
 * exclude paths. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

static bool matches(const char *pattern, const char *path)
{
	sb_excludes ex;
	sb_excludes_init(&ex);
	sb_excludes_add(&ex, pattern);
	bool m = sb_excludes_match(&ex, path);
	sb_excludes_deinit(&ex);
	return m;
}

static void any_depth_forms_match_the_segment_anywhere(void **state)
{
	(void)state;
	const char *forms[] = {"*/node_modules", "*/node_modules/*"};
	for (size_t i = 0; i < 2; i++) {
		const char *f = forms[i];
		assert_true(matches(f, "node_modules"));
		assert_true(matches(f, "node_modules/x/y"));
		assert_true(matches(f, "a/node_modules"));
		assert_true(matches(f, "a/b/node_modules/pkg/index.js"));
		assert_false(matches(f, "node_modules2"));
		assert_false(matches(f, "xnode_modules"));
		assert_false(matches(f, "a/node_modules2/x"));
		assert_false(matches(f, "a/my_node_modules"));
		assert_false(matches(f, "src"));
	}
	/* a multi-segment X works the same way */
	assert_true(matches("*/.claude/worktrees", "a/.claude/worktrees/w1/f"));
	assert_true(matches("*/.claude/worktrees", ".claude/worktrees"));
	assert_false(matches("*/.claude/worktrees", "a/.claude/worktrees2"));
	assert_false(matches("*/.claude/worktrees", ".claude"));
}

static void under_form_matches_only_below(void **state)
{
	(void)state;
	assert_true(matches("build/*", "build/out.o"));
	assert_true(matches("build/*", "build/a/b"));
	assert_false(matches("build/*", "build"));
	assert_false(matches("build/*", "builder/x"));
	assert_false(matches("build/*", "src/build/x"));
}

static void other_patterns_are_literal_prefixes_without_globbing(void **state)
{
	(void)state;
	assert_true(matches(".paperclip-runtime", ".paperclip-runtime"));
	assert_true(matches(".paperclip-runtime", ".paperclip-runtime/state.json"));
	assert_false(matches(".paperclip-runtime", ".paperclip-runtime2"));
	assert_false(matches(".paperclip-runtime", "a/.paperclip-runtime"));
	assert_true(matches("a/b", "a/b/c"));
	assert_false(matches("a/b", "a/bc"));
	/* no globbing: '*' and '?' are plain characters */
	assert_true(matches("*.log", "*.log"));
	assert_false(matches("*.log", "debug.log"));
	assert_false(matches("?", "a"));
	assert_false(matches("[ab]", "a"));
	/* "*" alone is not an any-depth form */
	assert_false(matches("*", "anything"));
}

static void add_dir_adds_four_forms_once(void **state)
{
	(void)state;
	sb_excludes ex;
	sb_excludes_init(&ex);
	assert_false(sb_excludes_match(&ex, "x"));
	sb_excludes_add_dir(&ex, "node_modules");
	sb_excludes_add_dir(&ex, "node_modules");
	sb_excludes_add(&ex, "*/node_modules");
	sb_excludes_add(&ex, "");
	assert_int_equal(sb_strv_len(ex.patterns), 4);
	assert_string_equal(ex.patterns[0], "node_modules");
	assert_string_equal(ex.patterns[1], "node_modules/*");
	assert_string_equal(ex.patterns[2], "*/node_modules");
	assert_string_equal(ex.patterns[3], "*/node_modules/*");
	assert_true(sb_excludes_match(&ex, "node_modules"));
	assert_true(sb_excludes_match(&ex, "web/node_modules/react/index.js"));
	assert_false(sb_excludes_match(&ex, "web/src/index.js"));
	assert_false(sb_excludes_match(NULL, "node_modules"));
	sb_excludes_deinit(&ex);
	sb_excludes_deinit(&ex); /* twice is harmless */
}

static void check_user_accepts_plain_paths_only(void **state)
{
	(void)state;
	SB_ASSERT_OK(sb_excludes_check_user("node_modules"));
	SB_ASSERT_OK(sb_excludes_check_user("web/.cache"));
	const char *bad[] = {"",     "/abs", "../x",  "a/../b", "./a",  "a/./b",
	                     "a//b", "a/",   "*.log", "a?",     "[ab]", "a\\b"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		sb_err *err = sb_excludes_check_user(bad[i]);
		if (!err)
			print_error("exclude \"%s\" was accepted\n", bad[i]);
		assert_non_null(err);
		assert_int_equal(err->code, SB_E_INVAL);
		sb_err_free(err);
	}
	sb_err *err = sb_excludes_check_user(NULL);
	assert_non_null(err);
	sb_err_free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(any_depth_forms_match_the_segment_anywhere),
	    cmocka_unit_test(under_form_matches_only_below),
	    cmocka_unit_test(other_patterns_are_literal_prefixes_without_globbing),
	    cmocka_unit_test(add_dir_adds_four_forms_once),
	    cmocka_unit_test(check_user_accepts_plain_paths_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
