/* Helpers shared by every test program: temp directories, file fixtures, running the built
 * binaries. Area-specific helpers live beside their tests, not here. */
#ifndef SB_TESTUTIL_H
#define SB_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sandbar/base.h>

/* The tests are white-box: they use the internal JSON helpers (jansson) and stdio freely, which
 * the public headers no longer pull in. */
#include <stdio.h>
#include <stdlib.h>

#include "sb_json.h"

/* Fail the test with the error's message when err != NULL (and free it). */
#define SB_ASSERT_OK(expr)                                                                         \
	do {                                                                                       \
		sb_err *sb_t_err_ = (expr);                                                        \
		if (sb_t_err_) {                                                                   \
			print_error("%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr,           \
			            sb_t_err_->msg);                                               \
			sb_err_free(sb_t_err_);                                                    \
			fail();                                                                    \
		}                                                                                  \
	} while (0)

/* The calling test cannot run on this host (no sandbox, not root, no sshd, ...): why says what
 * is missing and what provides it. By default this FAILS the test: a host without bubblewrap
 * must not turn the suite green. Only with SANDBAR_ALLOW_SKIP=1 in the environment does it skip,
 * printing a line that starts with SBT_SKIP_MARKER and appending the same line to the file named
 * by $SBT_SKIP_LOG (CTest sets it; the meta.skipped_cases step and `make test` list them). */
#define SBT_SKIP_MARKER "SANDBAR-SKIPPED:"
#define sbt_skip(...) sbt_skip_at(__FILE__, __LINE__, __func__, __VA_ARGS__)
void sbt_skip_at(const char *file, int line, const char *func, const char *fmt, ...)
    SB_PRINTF(4, 5);
/* sbt_skip unless ok. */
#define SBT_REQUIRE(ok, ...)                                                                       \
	do {                                                                                       \
		if (!(ok))                                                                         \
			sbt_skip(__VA_ARGS__);                                                     \
	} while (0)
/* The message sbt_skip gives when the daemon reports it cannot create sandboxes. */
#define SBT_NO_SANDBOX                                                                             \
	"this host cannot create sandboxes (bubblewrap, user namespaces: see scripts/bootstrap)"

/* Fail the test unless err is an error with code (what names the call in the message); frees
 * err. */
void sbt_expect_code(sb_err *err, sb_errcode code, const char *what);

/* A fresh temp directory (removed by sbt_rmtree). Aborts the test on failure. */
char *sbt_mkdtemp(const char *tag);
void sbt_rmtree(char *dir); /* removes and frees */
/* path = dir + "/" + rel; malloc'd. */
char *sbt_path(const char *dir, const char *rel);
/* Write bytes to dir/rel, creating parents, with mode. */
void sbt_write(const char *dir, const char *rel, const void *p, size_t n, unsigned mode);
void sbt_write_str(const char *dir, const char *rel, const char *s);
/* Read dir/rel whole (NUL-terminated, caller frees); NULL when missing. */
char *sbt_read(const char *dir, const char *rel, size_t *len);
/* Path of a built program (SB_TEST_BUILD_DIR/name). malloc'd. */
char *sbt_build_path(const char *name);
/* Run a shell command line, return its exit status (or -1). */
int sbt_sh(const char *fmt, ...) SB_PRINTF(1, 2);
/* Run a shell command line and capture stdout (malloc'd). */
char *sbt_sh_out(const char *fmt, ...) SB_PRINTF(1, 2);
/* Deterministic pseudo-random bytes for fixtures. */
void sbt_fill_random(void *p, size_t n, uint64_t seed);
/* A TCP port free on every address for a daemon the test starts. It is drawn at random below
 * the kernel's ephemeral range, so the outgoing connections of tests running in parallel can
 * never take it between this check and the daemon's bind (they did, at 1 run in ~50). */
int sbt_free_port(void);

#endif
