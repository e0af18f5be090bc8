/* Private interfaces of the managed runtime (src/runtime). Each block below is implemented by
 * one file; prepare.c and restore.c compose them. Nothing here knows which runner it talks to.
 */
#ifndef SB_RUNTIME_RT_H
#define SB_RUNTIME_RT_H

#include <sandbar/runtime.h>

#include <pthread.h>

/* ---- constants of the command protocol (spec §2.2, §2.3, §5.3) */
#define SB_RT_SINGLE_STREAM_MAX (96u * 1024u * 1024u) /* base64 characters */
#define SB_RT_CHUNK_DECODED (3u * 1024u * 1024u)      /* 4 MiB of base64 per exec */
#define SB_RT_PRINTF_SLICE (32u * 1024u)              /* base64 characters per printf */
#define SB_RT_DD_BS 3145728u
#define SB_RT_TAIL_CHARS 4000u
#define SB_RT_UPLOAD_TAG ".sandbar-upload."
/* Where restore extracts the remote tree: inside the local workspace, so that applying a file
 * is a rename on the same file system rather than a second copy. Always excluded; only touched
 * under the restore lock; removed after every restore (and before, if a crash left one). */
#define SB_RT_STAGING_DIR ".sandbar-restore"

/* Everything a remote operation needs. */
typedef struct sb_rt_ctx {
	sb_runner *runner;
	const char *shell; /* "sh" or "bash" */
	int64_t timeout_ms;
	sb_cancel *cancel;
	sb_runtime_progress_sink progress;
	sb_runtime_status_sink status;
} sb_rt_ctx;

/* ---- script.c: run one `<shell> -c <script>` from cwd "/" and turn failures into errors. */
typedef struct sb_rt_stdin {
	bool has;
	const void *data;
	size_t len;
	bool stream; /* read stdin from fd until its EOF instead (SB_RUNNER_CAP_STDIN_STREAM) */
	int fd;
} sb_rt_stdin;

/* Runs script. in may be NULL (no stdin). cb may be NULL. output_cap 0 = runner default.
 * Returns NULL when the command exited 0 in time; otherwise an SB_E_COMMAND / SB_E_TIMEOUT
 * error "<script> failed with exit code <n|null>:\nstderr: <tail>\nstdout: <tail>". res (may be
 * NULL) receives the result either way. */
sb_err *sb_rt_run(const sb_rt_ctx *c, const char *script, const sb_rt_stdin *in,
                  const sb_exec_callbacks *cb, size_t output_cap, sb_exec_result *res);
/* SB_E_CANCELED when the context's cancel token fired (checked between steps; the native
 * transfers themselves cannot be interrupted through the runner interface). */
sb_err *sb_rt_check_cancel(const sb_rt_ctx *c);
/* Same, ignoring every failure (cleanup paths); logs at debug level. */
void sb_rt_run_quiet(const sb_rt_ctx *c, const char *script);
/* The error for a finished command that did not succeed (exported for tests). */
sb_err *sb_rt_command_error(const char *action, const sb_exec_result *res);
/* Append "<label>: <trimmed tail>" keeping the last SB_RT_TAIL_CHARS characters. */
void sb_rt_append_tail(sb_buf *out, const char *label, const char *data, size_t len);
/* "<dest><tag><16 hex>" beside dest; malloc'd. */
char *sb_rt_temp_name(const char *dest, const char *tag);
/* Parent directory of an absolute path ("/" for "/x"); malloc'd. */
char *sb_rt_dirname(const char *path);

/* ---- progress.c: byte progress lines with throttling (spec §5.1) and status events. */
typedef struct sb_rt_progress {
	sb_runtime_progress_sink sink;
	sb_runtime_status_sink status;
	sb_runtime_phase phase;
	const char *verb;      /* "Syncing", "Restoring" */
	const char *label;     /* "workspace", asset key, or NULL */
	const char *direction; /* "to", "from" */
	unsigned step_percent;
	int64_t min_interval_ms;
	int64_t (*clock_ms)(void);
	/* Optional: every report's raw byte counts, before throttling (tests, callers' meters). */
	sb_progress_fn on_bytes;
	void *bytes_ud;
	bool started, finished;
	unsigned last_bucket;
	int64_t last_emit_ms;
	uint64_t last_done, last_total;
} sb_rt_progress;

void sb_rt_progress_init(sb_rt_progress *p, const sb_runtime_progress_sink *sink,
                         const sb_runtime_status_sink *status, sb_runtime_phase phase,
                         const char *verb, const char *label, const char *direction);
void sb_rt_progress_report(sb_rt_progress *p, uint64_t done, uint64_t total);
/* Emit the terminal 100% line once (no-op after complete or fail). */
void sb_rt_progress_complete(sb_rt_progress *p, uint64_t done, uint64_t total);
void sb_rt_progress_fail(sb_rt_progress *p);
/* sb_progress_fn adapter; ud is an sb_rt_progress (may be NULL). */
void sb_rt_progress_fn(void *ud, uint64_t done, uint64_t total);
/* Send a status event (no-op without a sink). */
void sb_rt_status(const sb_runtime_status_sink *s, sb_runtime_phase phase, const char *msg);
/* Send "[sandbar] <text>\n" to the progress sink, or log it as a warning without one. */
void sb_rt_say(const sb_runtime_progress_sink *s, const char *text);

/* Stage timer (spec §5.1): "[sandbar] sync <phase> <artifact>: tar 12ms, upload 340ms, extract
 * 88ms (total 440ms) [transport=fallback|native]", emitted once by finish, also after a failure
 * (then with " failed" before the transport tag). Without a sink the line goes to debug log. */
typedef struct sb_rt_timer {
	sb_runtime_progress_sink sink;
	const char *phase, *artifact;
	bool native, finished;
	int64_t t0, last;
	sb_buf steps;
} sb_rt_timer;

void sb_rt_timer_start(sb_rt_timer *t, const sb_runtime_progress_sink *sink, const char *phase,
                       const char *artifact, bool native);
/* Record the time since the previous mark (or start) as "<step> <n>ms". */
void sb_rt_timer_mark(sb_rt_timer *t, const char *step);
void sb_rt_timer_finish(sb_rt_timer *t, bool failed);

/* ---- upload.c: write the bytes of fd [0, size) to the remote file dest (spec §2.2). Picks the
 * single-stream, chunked-stdin or printf protocol from the runner's capabilities. */
sb_err *sb_rt_upload(const sb_rt_ctx *c, int fd, uint64_t size, const char *dest,
                     sb_rt_progress *p);

/* ---- download.c: read the remote file path into out_fd (spec §2.3). max_bytes > 0 rejects a
 * larger file before any content is read. */
sb_err *sb_rt_download(const sb_rt_ctx *c, const char *path, int64_t max_bytes, int out_fd,
                       uint64_t *size_out, sb_rt_progress *p);

/* ---- rtexcludes.c: the exclude sets (spec §2.5, §2.8) and their shell forms. */
/* archive (the transfer set): overlay + sandbar's directories + caller literals + matcher.
 * restore (the merge set): archive + the top-level .git + preserve. */
sb_err *sb_rt_build_excludes(const char *overlay, char *const *caller, char *const *preserve,
                             sb_matcher *matcher, sb_excludes *archive, sb_excludes *restore);
/* The matcher of opts' rules for local_dir; *out NULL when there are none. */
sb_err *sb_rt_build_matcher(const char *local_dir, char *const *patterns, const char *preset,
                            bool gitignore, bool no_sandbarignore, sb_matcher **out);
/* A name the archives always skip ("._*" AppleDouble files), so snapshots skip them too. */
bool sb_rt_name_ignored(const char *name);
/* The part of ex a remote `tar -c` can apply exactly: segment names (for --exclude, matched at
 * any depth) and top-level literal names (left out of the entry list). Whatever else ex holds is
 * downloaded and dropped on the host by the same matcher. Both vectors NULL-terminated, owned. */
void sb_rt_remote_tar_filters(const sb_excludes *ex, char ***segments, char ***toplevel);

/* ---- remote.c: the scripts of the command path. All return malloc'd scripts. */
/* Destroy-then-replace: wipe <dir>'s top-level entries except spare, then extract tar (NULL:
 * from stdin). When spare is NULL the whole dir is recreated. */
char *sb_rt_script_extract(const char *dir, const char *tar, char *const *spare);
/* Archive <dir> into tar (NULL: to stdout): entries by name (never "./"), tolerant of tar exit
 * 1, empty archive from /dev/zero. */
char *sb_rt_script_archive(const char *dir, const char *tar, const sb_excludes *ex);

/* ---- transfer.c: move a directory tree in or out, command path or native. */
typedef struct sb_rt_stage {
	const char *local_dir;
	const sb_excludes *ex;
	bool follow_symlinks;
	const char *remote_dir;
	const char *upload_tar; /* command path: where the archive is uploaded */
	char *const *spare;     /* top-level names kept by the wipe; NULL = recreate the dir */
	bool native;
	const char *label; /* "workspace" or the asset key, for the stage timer */
	/* Created after the transfer (the runtime root, which the chunked upload creates by
	 * uploading into it); NULL = none. The streamed path does it in the same command. */
	const char *ensure_dir;
	/* Refuse a non-empty remote_dir that lacks this directory (see refuse_foreign_remote);
	 * NULL = no check. */
	const char *ours_marker;
	/* Create remote_dir (mkdir -m 0700, refused when it exists) before anything else. */
	bool create_fresh;
	/* A native delta (SB_RUNNER_CAP_DELTA, sb_rt_stream_native_in): delta set, the far paths
	 * in dels removed first, only the entries pick chooses sent (pick NULL: none). */
	bool delta;
	char *const *dels;
	sb_tar_pick_fn pick;
	void *pick_ud;
	/* Told of each file archived that want_hash chooses, with the hash of the bytes sent
	 * (sb_tar_create_opts.on_file; NULL: none): the baseline's hashes (baseline.c). */
	sb_tar_file_fn on_file;
	sb_tar_want_fn want_hash;
	void *hash_ud;
} sb_rt_stage;

/* The tar of s's tree into fd (only what pick chooses, when pick is set), telling s->on_file. */
sb_err *sb_rt_stage_tar(const sb_rt_stage *s, sb_tar_pick_fn pick, void *pick_ud, int fd,
                        uint64_t *bytes_out);

/* The exit status of the guard in the staging script, and the error for it. */
#define SB_RT_FOREIGN_EXIT 97
sb_err *sb_rt_foreign_error(const char *dir);
/* The exit status of the create_fresh mkdir when the name is taken. */
#define SB_RT_TAKEN_EXIT 98
/* A staging command's error rerr (consumed) in the words of its head's checks: SB_E_EXISTS for
 * the guard's and the fresh mkdir's exit statuses, rerr itself otherwise. */
sb_err *sb_rt_stage_head_error(const struct sb_rt_stage *s, const sb_exec_result *res,
                               sb_err *rerr);
/* "<guard>; " that exits SB_RT_FOREIGN_EXIT when dir is not empty and lacks ours; malloc'd. */
char *sb_rt_script_guard(const char *dir, const char *ours);
/* The commands a staging script starts with: s->create_fresh's mkdir, s->ours_marker's guard
 * (each ending in "; "), appended to b. */
void sb_rt_script_stage_head(sb_buf *b, const struct sb_rt_stage *s);

/* A pipe (O_CLOEXEC) for an archive stream, grown to SB_RT_STREAM_PIPE_BYTES where the kernel
 * lets it: each wake-up of its reader or writer then moves up to 1 MiB, not 64 KiB. On a VM,
 * where a context switch is dear, the default size cost a quarter of a staging's time. 0, or -1
 * with errno (pipe2's). */
#define SB_RT_STREAM_PIPE_BYTES (1 << 20)
int sb_rt_stream_pipe(int fds[2]);

sb_err *sb_rt_stage_in(const sb_rt_ctx *c, const sb_rt_stage *s, sb_rt_progress *p,
                       uint64_t *bytes_out);
/* Run the ours_marker check on its own (one command): SB_RT_FOREIGN_EXIT becomes
 * sb_rt_foreign_error. */
sb_err *sb_rt_stage_guard(const sb_rt_ctx *c, const sb_rt_stage *s);

typedef struct sb_rt_fetch {
	const char *remote_dir;
	const sb_excludes *ex;
	const char *download_tar; /* command path: where the remote archive is built */
	int64_t max_bytes;
	uint64_t max_extracted; /* file data bytes the extraction may write; 0: no limit */
	const char *local_dest; /* extracted here (created) */
	bool native;
	const char *label;
	/* Native only (SB_RUNNER_CAP_DELTA): fetch just these entries (sync_out_paths). */
	char *const *paths;
	/* When set, receives the hash of every file as it is extracted (known_hashes.c). */
	struct sb_rt_known *known;
} sb_rt_fetch;

/* The extraction options a fetch asks for (its limit, its hash collector). */
sb_tar_extract_opts sb_rt_fetch_extract_opts(const sb_rt_fetch *f);

sb_err *sb_rt_fetch_out(const sb_rt_ctx *c, const sb_rt_fetch *f, sb_rt_progress *p,
                        uint64_t *bytes_out);

/* ---- stream.c: the command path over a runner that streams bytes both ways
 * (SB_RUNNER_CAP_STDIN_STREAM): one remote command per direction, the archive piped from the
 * walker into the far tar's stdin and from the far tar's stdout into the extractor, no
 * temporary archive on either side. */
bool sb_rt_can_stream(const sb_rt_ctx *c);
sb_err *sb_rt_stream_in(const sb_rt_ctx *c, const sb_rt_stage *s, sb_rt_progress *p,
                        sb_rt_timer *tm, uint64_t *bytes_out);
sb_err *sb_rt_stream_native_in(const sb_rt_ctx *c, const sb_rt_stage *s, sb_rt_progress *p,
                               sb_rt_timer *tm, uint64_t *bytes_out);
sb_err *sb_rt_stream_native_out(const sb_rt_ctx *c, const sb_rt_fetch *f, sb_rt_progress *p,
                                sb_rt_timer *tm, uint64_t *bytes_out);
sb_err *sb_rt_stream_out(const sb_rt_ctx *c, const sb_rt_fetch *f, sb_rt_progress *p,
                         sb_rt_timer *tm, uint64_t *bytes_out);

/* The receiving end of a far archive on stdout: an extractor thread into f->local_dest, fed by
 * the callbacks (size limits checked on the running total). close takes the command's error
 * (and its result, whose stdout tail it trims for the message) and returns the one to report. */
typedef struct sb_rt_out sb_rt_out;
sb_err *sb_rt_out_open(const sb_rt_fetch *f, sb_rt_progress *p, sb_rt_out **out);
const sb_exec_callbacks *sb_rt_out_callbacks(sb_rt_out *o);
sb_err *sb_rt_out_close(sb_rt_out *o, sb_err *rerr, const char *script, sb_exec_result *res,
                        uint64_t *bytes_out);

/* ---- content_hash.c: a file's hashes, holes unread (see the file). *size_out receives the size
 * hashed. SB_E_CONFLICT when the file shrank meanwhile. The plain SHA-256 (sha256sum's) is what
 * snapshots and manifests hold; the content hash only what a state saved as version 2 holds. */
sb_err *sb_rt_plain_hash(int fd, const char *path, unsigned char out[SB_SHA256_LEN],
                         uint64_t *size_out);
sb_err *sb_rt_content_hash(int fd, const char *path, unsigned char out[SB_SHA256_LEN],
                           uint64_t *size_out);

/* ---- known_hashes.c: hashes taken while extracting, for the snapshot of what was extracted */
typedef struct sb_rt_known {
	struct sb_rt_known_file *v;
	size_t n, cap;
} sb_rt_known;
void sb_rt_known_init(sb_rt_known *k);
void sb_rt_known_deinit(sb_rt_known *k);
/* An sb_tar_file_fn: ud is the sb_rt_known. */
void sb_rt_known_add(void *ud, const char *relpath, uint64_t size, int64_t ctime_ns,
                     const unsigned char sha[SB_SHA256_LEN]);

/* ---- snapshot.c: dir / file{mode, sha256} / symlink{target} entries of a tree (spec §3.3). */
typedef struct sb_snap_entry {
	char *path;
	sb_ftype type; /* SB_FT_FILE, SB_FT_DIR or SB_FT_SYMLINK */
	mode_t mode;
	uint64_t size;
	int64_t mtime_sec; /* as walked, or as the far side's manifest listed it */
	/* sha holds the file's plain SHA-256 (sha256sum's); false for a file not hashed yet, or
	 * built from a manifest that listed it without a hash */
	bool hashed;
	/* sha holds the content hash instead: an entry of a baseline saved as state version 2.
	 * Compared with a live file by taking that file's content hash (sb_snap_equal). */
	bool content_digest;
	unsigned char sha[SB_SHA256_LEN];
	char *target; /* symlinks */
	/* what the walk saw, naming this version of a file for the hash cache (hash_cache.c):
	 * a write changes ctime, which no one can set back */
	struct {
		int64_t mtime_ns, ctime_ns;
		uint64_t ino, dev;
	} seen;
} sb_snap_entry;

typedef struct sb_snap {
	int rootfd;       /* O_PATH of the root while the snapshot may hash lazily; -1 otherwise */
	sb_snap_entry *v; /* sorted by strcmp(path) */
	size_t n, cap;
} sb_snap;

/* Walk root under ex (and sb_rt_name_ignored). hash_now: hash every file during the walk (the
 * baseline); otherwise files are hashed on first comparison, from rootfd. */
sb_err *sb_snap_take(const char *root, const sb_excludes *ex, bool hash_now, sb_snap *out);
/* The same, and *left_out (a NULL-terminated list, sorted by strcmp) receives the relative path
 * of every entry the walk passed over: excluded, ignored, or neither file, directory nor link
 * (below an excluded directory, only that directory). */
sb_err *sb_snap_take_noting(const char *root, const sb_excludes *ex, bool hash_now, sb_snap *out,
                            char ***left_out);
void sb_snap_init(sb_snap *s);
void sb_snap_deinit(sb_snap *s);
/* Hash one file entry now (no-op when hashed). */
sb_err *sb_snap_entry_hash(const sb_snap *s, sb_snap_entry *e);
/* Hash every file not hashed yet on a helper thread and the caller's, so that other work (the
 * caller's, between start and finish) overlaps with half of it. No other access to s between
 * the two calls. */
typedef struct sb_snap_hasher {
	sb_snap *s;
	bool started;
	pthread_t thread;
	sb_err *err;
} sb_snap_hasher;
void sb_snap_hash_start(sb_snap *s, sb_snap_hasher *h);
sb_err *sb_snap_hash_finish(sb_snap_hasher *h);
/* ---- hash_cache.c: the baseline's file hashes kept between runs of one workspace. */
/* Give every file entry of s not hashed yet the cached hash of the same version of that file
 * (size, mtime, ctime, inode, device unchanged); the number of entries given. A missing or
 * unreadable cache gives none. *all_used: every record of the cache was given to an entry. */
size_t sb_rt_hash_cache_apply(const char *file, sb_snap *s, bool *all_used);
/* Write s's hashed files to the cache, but none whose ctime or mtime is within a second of
 * walk_start_ns (the wall clock, in ns, before the walk that took s). unchanged: when the
 * cache's every record was used, how many (SIZE_MAX otherwise); the file is not rewritten when
 * that is all it would hold. */
sb_err *sb_rt_hash_cache_save(const char *file, const sb_snap *s, int64_t walk_start_ns,
                              size_t unchanged);

/* Give each file entry of s not hashed yet its hash from k, when it is the same version of the
 * file (same size and ctime as when extracted, s's paths relative to the extraction directory);
 * how many were given. */
size_t sb_rt_known_apply(sb_rt_known *k, sb_snap *s);
/* Hash every file not hashed yet and drop the root fd: the snapshot then stands alone. */
sb_err *sb_snap_hash_all(sb_snap *s);
sb_snap_entry *sb_snap_find(const sb_snap *s, const char *path);
/* The index of the first entry whose path is not below key in strcmp order (s->n: none). */
size_t sb_snap_lower_bound(const sb_snap *s, const char *key);
/* The same over any array sorted by strcmp of a path that is each element's first member (a
 * char * itself, an sb_snap_entry, a merge item): n elements of size bytes at v. */
size_t sb_rt_path_lower_bound(const void *v, size_t n, size_t size, const char *key);
/* How many entries' paths start with prefix ("dir/": the entries below dir). They stand
 * together, from sb_snap_lower_bound(s, prefix) on. */
size_t sb_snap_count_below(const sb_snap *s, const char *prefix);
/* Entry equality (kinds, symlink targets, file mode + content); NULL entries mean absent. */
sb_err *sb_snap_equal(const sb_snap *sa, sb_snap_entry *a, const sb_snap *sb, sb_snap_entry *b,
                      bool *eq);

/* ---- delta.c: incremental restore by manifest (see the file for the mtime+size assumption). */
/* SANDBAR_SYNC: "incremental", "checksum" (incremental, every file hashed), "full" (the whole
 * tree each time), anything else or unset: "auto" (incremental on a native runner with
 * SB_RUNNER_CAP_DELTA, full on the command path). */
const char *sb_rt_sync_env(void);
struct sb_runtime;
bool sb_rt_sync_incremental(const struct sb_runtime *rt);
bool sb_rt_sync_checksum(void);
/* Files with an mtime at or after this are compared by content: a sandbox writing after a
 * baseline read at base_sec, with the far clock at most the skew allowance away. */
int64_t sb_rt_hash_since(int64_t base_sec);
/* Append the far side's listing (run in the listed directory): the manifest records of
 * sb_manifest_parse, or one "U <reason>" record when a tool is missing. newer_than: a shell word
 * for find's -newermt @<word> (files hashed unless hash_all). print_pruned: also list the
 * entries the far find prunes (not their contents). */
void sb_rt_script_listing(sb_buf *s, const sb_excludes *ex, const char *newer_than, bool hash_all,
                          bool print_pruned);
/* Restore's one command (the listing, then "SEL" and the paths to archive on stdin). Files
 * with an mtime at or after hash_since (every file with hash_all) are hashed. */
char *sb_rt_script_restore(const char *dir, const sb_excludes *ex, int64_t hash_since,
                           bool hash_all);
bool sb_rt_excluded_path(const sb_excludes *ex, const char *path, bool is_dir);
bool sb_rt_entry_same(const sb_snap_entry *b, const sb_manifest_entry *m, int64_t hash_since,
                      bool checksum);
bool sb_rt_is_git_path(const char *path);
sb_err *sb_rt_git_snapshot(const char *local_dir, const sb_excludes *archive_ex, int64_t hash_since,
                           bool checksum, sb_snap *out);

typedef struct sb_rt_delta {
	sb_snap src;      /* the remote tree as the merge's source (rootfd: the staging tree) */
	sb_snap git_next; /* the remote .git as listed */
	bool git_changed; /* the staging tree holds the whole remote .git */
	uint64_t bytes, manifest_bytes;
	int64_t listed_at; /* our clock before the listing: the next baseline's time */
	int64_t listed_ns; /* native: sb_rt_ctime_clock_ns() before the listing (else 0) */
} sb_rt_delta;

struct sb_runtime;
/* Fetch what changed into f->local_dest (which exists). *full: take the full path instead
 * (said on the progress sink; the caller clears f->local_dest first). An error only for
 * what the full path would meet as well (cancel, limits, timeouts, a full disk). */
sb_err *sb_rt_delta_fetch(struct sb_runtime *rt, const sb_rt_ctx *c, const sb_rt_fetch *f,
                          bool checksum, sb_rt_progress *p, sb_rt_delta *out, bool *full);
void sb_rt_delta_deinit(sb_rt_delta *d);
/* The entries of a list separated (or each ended) by sep, as a NULL-terminated vector (NULL
 * for an empty list). */
char **sb_rt_split_list(const sb_buf *list, char sep);

/* ---- duplex.c: a far command that prints a listing and then reads the answer to it. */
typedef struct sb_rt_duplex sb_rt_duplex;
sb_err *sb_rt_duplex_start(const sb_rt_ctx *c, const char *script, size_t output_cap,
                           sb_rt_duplex **out);
/* Wait for the listing (its records, the "Z" or "U" one included); false when the command
 * ended without one (then finish says why). */
bool sb_rt_duplex_listing(sb_rt_duplex *d, const char **data, size_t *len);
/* The descriptor to write the answer to (SIGPIPE blocked until finish); output after the listing
 * goes to tail (may be NULL: dropped). */
int sb_rt_duplex_answer_begin(sb_rt_duplex *d, const sb_exec_callbacks *tail);
/* Close the answer, wait for the command: its error (owned by the caller); *res (may be NULL)
 * stays valid until free. Idempotent. */
sb_err *sb_rt_duplex_finish(sb_rt_duplex *d, sb_exec_result **res);
void sb_rt_duplex_free(sb_rt_duplex *d);

/* ---- delta_in.c: staging into a directory that holds an earlier staging of the same
 * workspace (see the file). One remote command either way: *done false means the caller stages
 * the usual way (the runner cannot stream, or the command failed before it changed anything;
 * said in the log). */
sb_err *sb_rt_delta_stage(struct sb_runtime *rt, const sb_rt_ctx *c, const sb_rt_stage *s,
                          bool checksum, sb_rt_progress *p, uint64_t *bytes, bool *done);
/* After a whole staging on a runner with SB_RUNNER_CAP_DELTA: the record that lets the next
 * staging be a delta (written by the runner; it creates the runtime root). */
sb_err *sb_rt_delta_record(struct sb_runtime *rt, const sb_rt_ctx *c);

/* ---- lock.c: the restore lock (spec §3.4, §8.3). */
typedef struct sb_rt_lock {
	char *dir;
} sb_rt_lock;

#define SB_RT_LOCK_STALE_MS 30000
/* Default private lock root (created 0700 and checked to be ours). */
sb_err *sb_rt_lock_root(const char *configured, char **out);
/* Lock dir = <root>/<sha256 hex of realpath(target)>.lock. Waits up to timeout_ms. */
sb_err *sb_rt_lock_acquire(const char *root, const char *target, int64_t timeout_ms,
                           sb_rt_lock *out);
void sb_rt_lock_release(sb_rt_lock *l);
/* The lock directory for target (exported for tests). */
sb_err *sb_rt_lock_path(const char *root, const char *target, char **out);

/* ---- merge.c: three-way merge of source into target against baseline (spec §3.3 + §8.2). */
typedef struct sb_rt_merge {
	sb_snap *baseline;
	const char *source_dir;
	const char *target_dir;
	const sb_excludes *ex;
	sb_conflict_policy policy;
	bool move_files; /* rename files out of source_dir instead of copying them */
	/* The source snapshot already built (incremental restore), moved into the merge; its
	 * unhashed files are read from source_dir. NULL: snapshot source_dir. */
	sb_snap *source;
	/* Hashes taken while source_dir was extracted (may be NULL): those files are not read. */
	sb_rt_known *known;
	/* When set, receives the directories the merge created (NULL-terminated, or NULL), even
	 * when it fails part way: the report lists files and links only. */
	char ***dirs_made;
} sb_rt_merge;

/* source_out (may be NULL) receives the source snapshot on success (to become the next
 * baseline). */
sb_err *sb_rt_merge_apply(const sb_rt_merge *m, sb_restore_report *rep, sb_snap *source_out);

/* ---- the prepared runtime (prepare.c builds it, restore.c uses it, runtime.c frees it) */
struct sb_runtime {
	sb_rt_ctx ctx;
	char *shell;
	char *local_dir; /* canonical */
	char *remote_dir, *root_dir, *overlay, *adapter_key, *lock_root;
	char *provider_key, *lease_id;
	char **asset_keys, **asset_dirs; /* NULL-terminated, parallel */
	sb_excludes archive_ex, restore_ex;
	sb_matcher *matcher; /* user rules; shared by both exclude sets; may be NULL */
	sb_runtime_excluded excluded;
	char git_base[41]; /* HEAD of the local repository at staging ("" when none) */
	sb_snap baseline;
	bool native;
	uint64_t bytes_up; /* archive bytes staged by prepare */
	/* Incremental restore (delta.c): the baseline has mtimes and plain hashes read in this
	 * process, at our clock's base_sec or later; git_snap is the .git as staged or last
	 * listed (git_snap_ok false: unknown, the next delta fetches the whole .git). */
	bool delta_ok;
	int64_t base_sec;
	/* The baseline's hashes still to take (baseline.c): pending from the walk until
	 * sb_rt_baseline_hash, which prepare calls before it returns; cache_file (prepare's
	 * caller's) is the hash cache to save then (NULL: none). */
	struct sb_rt_base_hash {
		bool pending;
		const char *cache_file;
		int64_t walk_ns; /* the wall clock before the walk */
		size_t cached;   /* sb_rt_hash_cache_save's unchanged */
	} base_hash;
	sb_snap git_snap;
	bool git_snap_ok;
	/* Native delta (SB_RUNNER_CAP_DELTA): a moment (ns, this host's clock, which the far tree's
	 * ctimes share) after which every change of the far tree has a later ctime, while before
	 * it the far tree was what the baseline says (0: unknown). Set when a staging ends and at
	 * each restore's listing. */
	int64_t far_known_ns;
};

/* baseline.c: rt->baseline walked (hashes from the hash cache file, when not NULL; the .git's
 * snapshot too), the other hashes pending. */
sb_err *sb_rt_baseline_take(struct sb_runtime *rt, const char *hash_cache);
/* While hashes are pending, s's archive writer gives the baseline the hashes of the bytes it
 * stages (sb_rt_stage.on_file). */
void sb_rt_baseline_hooks(struct sb_runtime *rt, sb_rt_stage *s);
/* Every pending hash taken (two threads), the hash cache saved; nothing once done. */
sb_err *sb_rt_baseline_hash(struct sb_runtime *rt);

/* Now on the clock file systems stamp ctimes with (the coarse realtime clock), less a margin
 * of a few of its ticks: a ctime written after this call is never earlier than the result. */
int64_t sb_rt_ctime_clock_ns(void);

#endif
