/* Helpers for the sandbox and init tests: state directories, real sandboxes, running a command
 * to completion and collecting its output and status. Shared by tests/sandbox and tests/init. */
#ifndef SB_TEST_SBX_H
#define SB_TEST_SBX_H

#include "testutil.h"

#include <sandbar/sandbox.h>

typedef struct sbx_result {
	sb_sandbox_exec_status st;
	sb_buf out, err;
} sbx_result;

/* A fresh state directory (removed by sbx_state_free). */
char *sbx_state_dir(void);
void sbx_state_free(char *dir);
void sbx_config(sb_sandbox_config *cfg, const char *state_dir);
/* Create a sandbox or fail the test. */
sb_sandbox *sbx_create(const char *state_dir, const char *id, const sb_sandbox_opts *opts);
/* Read an exec to completion (output and final status). */
void sbx_follow(sb_sandbox_exec *x, sbx_result *r);
/* Start argv / an sh script and follow it to the end. */
void sbx_run(sb_sandbox *sb, char *const *argv, int64_t timeout_ms, sbx_result *r);
void sbx_sh(sb_sandbox *sb, const char *script, sbx_result *r);
void sbx_result_free(sbx_result *r);
/* Copy the probe helper into the workspace as /workspace/probe. */
void sbx_install_probe(sb_sandbox *sb);
/* Host pids of every process in sb's pid namespace (init's), at most max of them. */
size_t sbx_host_pids(sb_sandbox *sb, int *pids, size_t max);

#endif
