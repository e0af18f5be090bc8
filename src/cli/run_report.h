/* What `sandbar run` tells at the end: the short summary on stderr and the --json object. */
#ifndef SB_CLI_RUN_REPORT_H
#define SB_CLI_RUN_REPORT_H

#include <stdio.h>

#include <sandbar/runner.h>
#include <sandbar/runtime.h>
#include <sandbar/sandbox.h>
#include "sb_json.h"

typedef struct run_report {
	char *lease_id;
	bool ran; /* the command ran and returned a result */
	bool has_exit_code;
	int exit_code;
	char signal[16];
	bool timed_out;
	bool oom_killed;
	int64_t timeout_ms;    /* the --timeout in force (for "timed out after 10s"), 0 = none */
	uint64_t memory_limit; /* the sandbox's memory limit (for the OOM line), 0 = unknown */
	bool truncated;        /* an output tail was cut (only the live stream is whole) */
	struct {
		int64_t acquire_ms, prepare_ms, exec_ms, restore_ms, release_ms;
	} phases;
	uint64_t bytes_up, bytes_down;
	char **added, **changed, **deleted; /* NULL-terminated copies */
	json_t *conflicts;                  /* array of {path, kind, kept, remote_copy} */
	const char *net_mode;               /* "none" | "allowlist" | "full", NULL when not known */
	bool has_egress;                    /* net: what the egress proxy did (allowlist mode) */
	sb_egress_stats net;
	char *branch; /* commits made remotely came back on this branch */
	size_t n_commits;
	char *git_warning;
	bool has_excluded;
	sb_runtime_excluded excluded; /* special_paths borrowed: cleared before the runtime goes */
} run_report;

/* What the staging left out, from a prepared runtime (copied, special_paths too). */
void run_report_set_excluded(run_report *r, const sb_runtime_excluded *ex);

void run_report_init(run_report *r);
void run_report_deinit(run_report *r);
void run_report_set_result(run_report *r, const sb_exec_result *res);
void run_report_set_changes(run_report *r, const sb_restore_report *rr);
/* Why a restore failed, in words a user can act on ("no space left on device", ...), or "". */
const char *run_report_restore_hint(const sb_err *err);
void run_report_print_summary(const run_report *r, FILE *f);
/* What -q still shows: conflicts and warnings. */
void run_report_print_warnings(const run_report *r, FILE *f);
/* A path as git quotes it when it holds control characters or non-ASCII bytes. */
void run_report_put_name(FILE *f, const char *name);
/* {"exit_code","signal","timed_out","lease_id","phases":{...},"bytes_up","bytes_down",
 *  "changes":{"added":[],"changed":[],"deleted":[],"conflicts":[paths]},
 *  "conflict_details":[{path,kind,kept,remote_copy}],
 *  "network":{"mode","connections_allowed","connections_denied","bytes_up","bytes_down",
 *             "denied":["HOST:PORT (rule)"]}} and a newline. */
void run_report_print_json(const run_report *r, FILE *f);
/* How the command ended when sandbar stopped it: "timed out after 10s", "killed: out of
 * memory (limit 64M)"; NULL otherwise. Static or in buf. */
const char *run_report_outcome(const run_report *r, char *buf, size_t len);
json_t *run_report_json(const run_report *r);

#endif
