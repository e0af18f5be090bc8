/* base.manifest: the far side's manifest parser (src/base/manifest.c) takes what the runtime's
 * script prints (checked against a real `find -printf` + `sha256sum -z` run) and refuses every
 * malformed, truncated or ambiguous listing; the fuzz target's seeds replay in fuzz.manifest.
 * The manifest taken in this process (src/base/manifest_take.c) hashes only what it is asked to. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static sb_err *parse_lit(const char *s, size_t n, sb_manifest *m)
{
	return sb_manifest_parse(s, n, m);
}

#define PARSE(lit, m) parse_lit(lit, sizeof(lit) - 1, m)

static void parses_entries_targets_and_hashes(void **state)
{
	(void)state;
	sb_manifest m;
	SB_ASSERT_OK(
	    PARSE("V 1 1700000000\0"
	          "E d 755 4096 1700000000.5 src\0\0"
	          "E f 4755 5 -3.25 src/a b\0\0"
	          "E l 777 3 1700000000 link\0src\0"
	          "E p 644 0 1 fifo\0\0"
	          "H\0"
	          "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824  ./src/a b\0"
	          "Z\0",
	          &m));
	assert_int_equal(m.now_sec, 1700000000);
	assert_int_equal(m.n, 4);
	sb_manifest_entry *a = sb_manifest_find(&m, "src/a b");
	assert_non_null(a);
	assert_int_equal(a->type, SB_FT_FILE);
	assert_int_equal(a->mode, 04755);
	assert_int_equal(a->size, 5);
	assert_int_equal(a->mtime_sec, -3);
	assert_true(a->hashed);
	assert_int_equal(a->sha[0], 0x2c);
	sb_manifest_entry *l = sb_manifest_find(&m, "link");
	assert_string_equal(l->target, "src");
	assert_false(l->hashed);
	assert_int_equal(sb_manifest_find(&m, "fifo")->type, SB_FT_OTHER);
	assert_int_equal(sb_manifest_find(&m, "src")->mtime_sec, 1700000000);
	sb_manifest_deinit(&m);
}

static void untrusted_listing_says_why(void **state)
{
	(void)state;
	sb_manifest m;
	SB_ASSERT_OK(PARSE("U sha256sum is missing\0", &m));
	assert_string_equal(m.untrusted, "sha256sum is missing");
	assert_int_equal(m.n, 0);
	sb_manifest_deinit(&m);
}

static void refuses_malformed_listings(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		size_t n;
	} bad[] = {
#define B(lit) {lit, sizeof(lit) - 1}
	    B(""),
	    B("V 1 5\0E f 644 0 1 x\0\0H\0"),                     /* no end record */
	    B("V 1 5\0E f 644 0 1 x\0\0H\0Z\0junk"),              /* data after the end */
	    B("V 1 5\0E f 644 0 1 x\0\0E f 644 0 1 x\0\0H\0Z\0"), /* twice */
	    B("V 1 5\0E f 644 0 1 ../x\0\0H\0Z\0"),
	    B("V 1 5\0E f 644 0 1 /x\0\0H\0Z\0"),
	    B("V 1 5\0E f 644 0 1 a//b\0\0H\0Z\0"),
	    B("V 1 5\0E f 844 0 1 x\0\0H\0Z\0"), /* not octal */
	    B("V 1 5\0E f 644 99999999999999999999 1 x\0\0H\0Z\0"),
	    B("V 1 5\0E q 644 0 1 x\0\0H\0Z\0"),  /* unknown kind */
	    B("V 1 5\0E l 777 1 1 x\0\0H\0Z\0"),  /* link without target */
	    B("V 1 5\0E f 644 1 1 x\0t\0H\0Z\0"), /* file with a target */
	    B("V 1 5\0E f 644 0 1 x\0\0Z\0"),     /* no hash section */
	    B("V 2 5\0H\0Z\0"),                   /* unknown version */
	    B("V 1 5\0E d 755 0 1 x\0\0H\0"
	      "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824  ./x\0Z\0"),
	    B("V 1 5\0E f 644 0 1 x\0\0H\0"
	      "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824  ./y\0Z\0"),
	    B("V 1 5\0E f 644 0 1 x"), /* unterminated */
#undef B
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		sb_manifest m;
		sb_err *err = sb_manifest_parse(bad[i].s, bad[i].n, &m);
		if (!err) {
			print_error("case %zu was accepted\n", i);
			fail();
		}
		assert_int_equal(m.n, 0);
		assert_null(m.v);
		sb_err_free(err);
	}
}

/* What the runtime's far-side commands print for a real tree parses back to that tree. */
static void real_find_and_sha256sum_output_parses(void **state)
{
	(void)state;
	char *dir = sbt_mkdtemp("manifest");
	sbt_write_str(dir, "sub/with\nnewline", "hello");
	sbt_write_str(dir, "plain.txt", "x\n");
	assert_int_equal(sbt_sh("cd '%s' && ln -s plain.txt link", dir), 0);
	char *out = sb_strfmt("%s.out", dir);
	int rc = sbt_sh("cd '%s' && { printf 'V 1 %%s\\0' \"$(date +%%s)\"; find . -mindepth 1 "
	                "-printf 'E %%y %%m %%s %%T@ %%P\\0%%l\\0'; printf 'H\\0'; find . "
	                "-mindepth 1 -type f -exec sha256sum -z -- {} +; printf 'Z\\0'; } > '%s'",
	                dir, out);
	assert_int_equal(rc, 0);
	sb_buf b = SB_BUF_INIT;
	SB_ASSERT_OK(sb_read_file(out, 1 << 20, &b));
	sb_manifest m;
	SB_ASSERT_OK(sb_manifest_parse(b.data, b.len, &m));
	assert_int_equal(m.n, 4);
	sb_manifest_entry *e = sb_manifest_find(&m, "sub/with\nnewline");
	assert_non_null(e);
	assert_true(e->hashed);
	unsigned char want[SB_SHA256_LEN];
	sb_sha256_once("hello", 5, want);
	assert_memory_equal(e->sha, want, SB_SHA256_LEN);
	assert_string_equal(sb_manifest_find(&m, "link")->target, "plain.txt");
	sb_manifest_deinit(&m);
	sb_buf_deinit(&b);
	unlink(out);
	free(out);
	sbt_rmtree(dir);
}

static bool want_the_four_byte_ones(void *ud, const char *relpath, uint64_t size)
{
	(*(int *)ud)++;
	(void)relpath;
	return size == 4;
}

/* sb_manifest_take's want_hash narrows what its rules chose: asked of every file they chose
 * (never of a directory or a link, nor of a file they passed over), and a file it declines is
 * listed unhashed. */
static void taking_hashes_only_what_want_hash_chooses(void **state)
{
	(void)state;
	char *dir = sbt_mkdtemp("manifest-take");
	sbt_write_str(dir, "a/four", "four");
	sbt_write_str(dir, "five!", "five!");
	sbt_write_str(dir, "old", "four");
	assert_int_equal(sbt_sh("cd '%s' && ln -s five! link && touch -d '2 hours ago' old", dir),
	                 0);
	int asked = 0;
	sb_manifest_opts o = {.hash_newer_than = (int64_t)time(NULL) - 3600,
	                      .want_hash = want_the_four_byte_ones,
	                      .want_hash_ud = &asked};
	sb_manifest m;
	SB_ASSERT_OK(sb_manifest_take(dir, NULL, &o, &m));
	assert_int_equal(m.n, 5); /* a, a/four, five!, link, old */
	assert_int_equal(asked, 2);
	sb_manifest_entry *four = sb_manifest_find(&m, "a/four");
	assert_true(four->hashed);
	unsigned char want[SB_SHA256_LEN];
	sb_sha256_once("four", 4, want);
	assert_memory_equal(four->sha, want, SB_SHA256_LEN);
	assert_false(sb_manifest_find(&m, "five!")->hashed);
	assert_false(sb_manifest_find(&m, "old")->hashed); /* older than the rules look */
	sb_manifest_deinit(&m);
	o.want_hash = NULL;
	SB_ASSERT_OK(sb_manifest_take(dir, NULL, &o, &m));
	assert_true(sb_manifest_find(&m, "five!")->hashed);
	sb_manifest_deinit(&m);
	sbt_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parses_entries_targets_and_hashes),
	    cmocka_unit_test(untrusted_listing_says_why),
	    cmocka_unit_test(refuses_malformed_listings),
	    cmocka_unit_test(real_find_and_sha256sum_output_parses),
	    cmocka_unit_test(taking_hashes_only_what_want_hash_chooses),
	};
	return cmocka_run_group_tests_name("base.manifest", tests, NULL, NULL);
}
