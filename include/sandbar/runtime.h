/* sandbar runtime: the command-managed runtime (DESIGN.md §4, specs/managed-runtime.md).
 *
 * prepare stages a local workspace (and optional asset directories) into a remote directory
 * through any runner, and records a baseline snapshot of the local tree; restore brings the
 * remote workspace back and three-way merges it into the local directory against that baseline.
 * The runtime talks to the far side only through sb_runner: on the command path with `sh -c`
 * scripts run from cwd `/` that need nothing but sh, tar, base64, dd, wc, mkdir, mv, rm and find;
 * on the native path through the runner's sync_in / sync_out tar streams, with identical results.
 */
#ifndef SANDBAR_RUNTIME_H
#define SANDBAR_RUNTIME_H

#include <sandbar/base.h>
#include <sandbar/runner.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Paperclip's overlay name: agents and tools that know this layout keep working. */
#define SB_RUNTIME_OVERLAY_DEFAULT ".paperclip-runtime"
#define SB_RUNTIME_TIMEOUT_MS_DEFAULT 300000
/* Prefix of every progress and warning line. sandbar's own name rather than Paperclip's
 * "[paperclip]": the lines are human-facing log text, no Paperclip component parses them, and
 * the status sink receives the same text without any prefix. */
#define SB_RUNTIME_LOG_PREFIX "[sandbar]"
/* Suffix of the file written beside a conflicting local file under SB_CONFLICT_KEEP_LOCAL. */
#define SB_RUNTIME_REMOTE_SUFFIX ".sandbar-remote"

/* Status phases (spec §5.2); sb_runtime_phase_name gives the wire names "git_sync", ... */
typedef enum sb_runtime_phase {
	SB_PHASE_GIT_SYNC,
	SB_PHASE_CONFIG_SYNC,
	SB_PHASE_ADAPTER_STARTUP,
	SB_PHASE_RESTORE,
	SB_PHASE_EXPORT,
	SB_PHASE_FINALIZE,
	SB_PHASE_RUN_ACTIVITY,
} sb_runtime_phase;

const char *sb_runtime_phase_name(sb_runtime_phase phase);

/* Progress sink: one complete line at a time, "[sandbar] Syncing workspace to sandbox: 40%
 * (12.6/31.4 MB)\n" (newline included). Also receives install warnings. Called on the thread
 * that called prepare/restore. */
typedef struct sb_runtime_progress_sink {
	void (*fn)(void *ud, const char *line);
	void *ud;
	/* Optional: every transfer's raw byte counts (decoded bytes, unthrottled), with the same
	 * ud, for callers that draw their own meter. */
	void (*bytes)(void *ud, uint64_t done, uint64_t total);
} sb_runtime_progress_sink;

/* Status sink: phase changes and every progress line mirrored without the prefix and newline.
 * The last status of a restore is always SB_PHASE_FINALIZE. */
typedef struct sb_runtime_status_sink {
	void (*fn)(void *ud, sb_runtime_phase phase, const char *message);
	void *ud;
} sb_runtime_status_sink;

typedef struct sb_runtime_spec {
	const char *remote_cwd;   /* required, absolute */
	int64_t timeout_ms;       /* per remote command; <= 0 = SB_RUNTIME_TIMEOUT_MS_DEFAULT */
	const char *shell;        /* "sh" (default, NULL) or "bash" */
	const char *provider_key; /* informational, default "sandbox" */
	const char *lease_id;     /* informational, default "managed" */
} sb_runtime_spec;

typedef struct sb_runtime_asset {
	const char *key;       /* one path segment; not "workspace" nor "git-workspace" */
	const char *local_dir; /* absolute */
	bool follow_symlinks;  /* archive link targets instead of links (exclude tmp/.tmp then) */
	char *const *excludes; /* NULL-terminated literal relative paths; may be NULL */
} sb_runtime_asset;

typedef struct sb_runtime_prepare_opts {
	sb_runner *runner; /* required; borrowed, must outlive the prepared runtime */
	sb_runtime_spec spec;
	const char *adapter_key;          /* required, one path segment */
	const char *workspace_local_dir;  /* required, an existing directory */
	const char *workspace_remote_dir; /* absolute; NULL = spec.remote_cwd */
	/* Caller excludes: literal relative paths (no globs, no ./.. segments), matched as path
	 * prefixes. They apply in both directions. */
	char *const *excludes;
	/* Exclusion rules (DESIGN.md §9.4), one ordered list evaluated by sb_matcher: the
	 * repository's ignore files when gitignore is set, then the named preset (NULL or
	 * "paperclip": the spec's heavy directories and .git, for orchestrators that reinstall
	 * dependencies inside the sandbox), then <workspace>/.sandbarignore unless
	 * no_sandbarignore, then exclude_patterns (gitignore syntax, one rule per element). By
	 * default nothing is excluded but the overlay and sandbar's own directories; .git is
	 * staged so git works remotely, but never merged back file by file: commits made remotely
	 * come back as a branch (sb_runtime_restore_opts.branch). */
	char *const *exclude_patterns;
	const char *exclude_preset;
	bool gitignore;
	bool no_sandbarignore;
	/* Paths never deleted locally when absent remotely (e.g. ".claude", ".claude.json"):
	 * uploaded, spared by the remote wipe (top-level names), never restored. */
	char *const *preserve_absent_on_restore;
	const sb_runtime_asset *assets;
	size_t n_assets;
	/* Install: when install_command is non-blank it runs at prepare, unless detect_command is
	 * non-blank and `command -v <detect>` succeeds. A failed install only warns. */
	const char *install_command;
	const char *detect_command;
	const char *overlay_dir; /* NULL = SB_RUNTIME_OVERLAY_DEFAULT; one path segment */
	sb_runtime_progress_sink progress;
	sb_runtime_status_sink status;
	/* Use the command path even when the runner offers native file transfer. */
	bool force_command_path;
	/* Refuse (SB_E_EXISTS, nothing deleted) to stage into a remote workspace that exists, is
	 * not empty and holds no runtime root of this adapter (an earlier staging): staging
	 * replaces its content. Checked in the staging command itself where the runner streams. */
	bool refuse_foreign_remote;
	/* Create the remote workspace directory (mode 0700) in the first staging command instead
	 * of expecting it: it must not exist yet (the staging fails otherwise, nothing written), as
	 * a directory from mktemp would be, without a command of its own. */
	bool create_remote_dir;
	/* Private instance-scoped directory for restore locks; NULL = $XDG_RUNTIME_DIR/sandbar/
	 * restore-locks, else $TMPDIR (or /tmp)/sandbar-<uid>/restore-locks (mode 0700). */
	const char *lock_root;
	/* A file of this host where the workspace's file hashes are kept between runs, so that a
	 * repeat run hashes only the files written since (a file counts as unchanged while its
	 * size, mtime, ctime, inode and device are); NULL = hash every file each time. */
	const char *hash_cache_file;
	sb_cancel *cancel; /* may be NULL; checked between remote commands */
} sb_runtime_prepare_opts;

typedef struct sb_runtime sb_runtime;

/* Stage the workspace (and assets) and record the baseline. On success *out is a prepared
 * runtime the caller frees with sb_runtime_free. On failure nothing is returned; remote
 * temporaries are removed as far as the far side still answers. */
sb_err *sb_runtime_prepare(const sb_runtime_prepare_opts *opts, sb_runtime **out);

/* Accessors (strings owned by the runtime). */
const char *sb_runtime_workspace_local_dir(const sb_runtime *rt);
const char *sb_runtime_workspace_remote_dir(const sb_runtime *rt);
/* <remote>/<overlay>/<adapter_key>. */
const char *sb_runtime_root_dir(const sb_runtime *rt);
/* <runtime root>/<key>, NULL when no such asset was staged. */
const char *sb_runtime_asset_dir(const sb_runtime *rt, const char *key);
/* True when prepare used the runner's native transfer (restore does the same). */
bool sb_runtime_uses_native(const sb_runtime *rt);
/* Bytes sent to the far side by prepare (archives of the workspace and assets). */
uint64_t sb_runtime_bytes_up(const sb_runtime *rt);

/* What the staging left out (counted by prepare's walk of the local workspace): entries and
 * file bytes excluded per rule source (index: sb_rule_source; an excluded directory counts as
 * one entry and all the bytes below it), and special files (FIFOs, sockets, devices) that
 * cannot be staged. */
typedef struct sb_runtime_excluded {
	uint64_t entries[SB_RULE_N_SOURCES];
	uint64_t bytes[SB_RULE_N_SOURCES];
	uint64_t specials;
	char **special_paths; /* NULL-terminated, at most SB_RUNTIME_NAMED_MAX */
	/* Regular files with more than one hard link: staged, but a change made to one in the
	 * sandbox comes back as a separate file (the link is not kept). */
	uint64_t hardlinks;
	char **hardlink_paths; /* NULL-terminated, at most SB_RUNTIME_NAMED_MAX */
} sb_runtime_excluded;
#define SB_RUNTIME_NAMED_MAX 20
const sb_runtime_excluded *sb_runtime_excluded_stats(const sb_runtime *rt);

/* Walk the local workspace with the exclusion rules of opts (only the workspace and exclusion
 * fields are read; nothing remote happens) and call fn for every entry, parents first, with
 * the source that excludes it (SB_RULE_NONE: staged). Nothing below an excluded directory is
 * reported. */
typedef void (*sb_runtime_plan_fn)(void *ud, const char *relpath, bool is_dir,
                                   sb_rule_source excluded_by);
sb_err *sb_runtime_plan(const sb_runtime_prepare_opts *opts, sb_runtime_plan_fn fn, void *ud);

typedef enum sb_conflict_policy {
	/* The local entry stays; a remote file or symlink is written beside it as
	 * <name>.sandbar-remote. */
	SB_CONFLICT_KEEP_LOCAL = 0,
	/* The remote entry replaces (or deletes) the local one. */
	SB_CONFLICT_TAKE_REMOTE,
	/* Nothing is applied; restore fails with SB_E_CONFLICT listing the conflicts. */
	SB_CONFLICT_FAIL,
} sb_conflict_policy;

const char *sb_conflict_policy_name(sb_conflict_policy p);
/* "keep-local", "take-remote", "fail". */
sb_err *sb_conflict_policy_parse(const char *s, sb_conflict_policy *out);

typedef enum sb_conflict_kind {
	SB_CONFLICT_BOTH_CHANGED,   /* both sides changed (or created) the entry */
	SB_CONFLICT_REMOTE_DELETED, /* remote deleted it, the local side changed it */
	SB_CONFLICT_LOCAL_DELETED,  /* local deleted it, the remote side changed it */
	SB_CONFLICT_BLOCKED,        /* the remote entry cannot be placed: a local non-directory
	                             * or a symlink sits on its parent path */
} sb_conflict_kind;

const char *sb_conflict_kind_name(sb_conflict_kind k);

typedef struct sb_runtime_conflict {
	char *path; /* relative to the workspace */
	sb_conflict_kind kind;
	bool kept_remote;  /* true when the remote version replaced the local one */
	char *remote_copy; /* relative path of the .sandbar-remote copy, NULL when none written */
} sb_runtime_conflict;

typedef struct sb_restore_report {
	/* NULL-terminated relative paths of files and symlinks (directories are not listed);
	 * conflicts appear only in conflicts[], whatever the policy did with them */
	char **added;   /* created locally */
	char **changed; /* replaced with the remote version */
	char **deleted; /* removed locally because the remote removed them */
	size_t n_added, n_changed, n_deleted;
	sb_runtime_conflict *conflicts;
	size_t n_conflicts;
	uint64_t bytes_moved;   /* archive bytes transferred from the remote side */
	uint64_t bytes_written; /* file bytes written into the local workspace */
	/* Commits made remotely, brought back as refs/heads/<branch> (NULL: none). */
	char *branch;
	size_t n_commits;
	char *git_warning; /* why commits could not be brought back (NULL: no problem) */
} sb_restore_report;

void sb_restore_report_init(sb_restore_report *r);
void sb_restore_report_deinit(sb_restore_report *r);

#define SB_RESTORE_EXTRACT_FACTOR 8
#define SB_RESTORE_EXTRACT_FLOOR ((int64_t)4 << 30)

typedef struct sb_runtime_restore_opts {
	sb_runtime_progress_sink progress; /* fn NULL = the prepare sink */
	sb_conflict_policy policy;
	/* > 0: refuse a workspace archive larger than this (SB_E_FILE_TOO_LARGE with actual and
	 * limit bytes) and apply nothing. Command path: decided by the size probe before any
	 * content is read; native path: after the transfer, before extraction. */
	int64_t max_bytes;
	/* The file data the restore may write while unpacking the remote tree (holes excluded; a
	 * hard link that becomes a copy counts its size): > 0 that many bytes, < 0 no limit, 0 the
	 * default, SB_RESTORE_EXTRACT_FACTOR times the workspace's size at staging but at least
	 * SB_RESTORE_EXTRACT_FLOOR. Past it nothing is applied (SB_E_FILE_TOO_LARGE). */
	int64_t max_extracted_bytes;
	/* Branch for commits made remotely; NULL = "sandbar/<lease id>" (spec.lease_id), or
	 * "sandbar/run-<time>" without one. */
	const char *branch;
	/* Incremental restore (the default; SANDBAR_SYNC=full turns it off): the far side's
	 * manifest is compared with the baseline and only what differs is fetched. A remote file
	 * whose kind, mode, size and mtime match the baseline counts as unchanged unless its mtime
	 * is recent enough to be hashed; checksum (or SANDBAR_SYNC=checksum) hashes every file
	 * instead. */
	bool checksum;
} sb_runtime_restore_opts;

/* Bring the remote workspace back and merge it into the local directory (spec §3). opts may be
 * NULL (keep-local, prepare's sinks). report (may be NULL) must have been initialised; it is
 * filled even when the restore fails part way, as far as changes were applied. Restores into the
 * same local directory are serialised by a lock (in the prepare's lock_root). While a restore
 * runs, the remote tree is staged in <local>/.sandbar-restore (excluded from every sync and
 * removed afterwards), so that applying a file is a rename on the workspace's own file system;
 * a directory of that name that sandbar did not create is never deleted (SB_E_EXISTS). After a
 * successful restore the remote tree becomes the baseline of the next one. A failure always
 * returns an error. One restore at a time per runtime (different runtimes may run in parallel). */
sb_err *sb_runtime_restore(sb_runtime *rt, const sb_runtime_restore_opts *opts,
                           sb_restore_report *report);

/* Save everything restore needs (directories, excludes, the baseline) to path (atomically,
 * mode 0600), so a later process can restore: `sandbar push` then `sandbar pull`. */
sb_err *sb_runtime_save(sb_runtime *rt, const char *path);

typedef struct sb_runtime_load_opts {
	sb_runner *runner; /* required; reaches the same remote directory as at prepare */
	sb_runtime_progress_sink progress;
	sb_runtime_status_sink status;
	bool force_command_path;
	const char *lock_root;
	sb_cancel *cancel;
	/* The remote directory is now reached at this path (a dead sandbox's workspace read from
	 * the host): the saved remote and runtime directories below it are moved there. NULL =
	 * where it was at prepare. */
	const char *remote_dir_at;
} sb_runtime_load_opts;

/* Load a runtime saved by sb_runtime_save. The file is validated as outside input. */
sb_err *sb_runtime_load(const char *path, const sb_runtime_load_opts *opts, sb_runtime **out);

void sb_runtime_free(sb_runtime *rt);

#ifdef __cplusplus
}
#endif
#endif
