/* sandbar runner: the one seam through which every command runs (DESIGN.md §3).
 *
 * A runner executes one request and returns one result, optionally streaming output through
 * callbacks. The managed runtime, the CLI and the daemon know only this interface; the local,
 * prefix, sandbox and bridge runners implement it. A runner may also offer native file transfer
 * (tar streams in and out of a remote directory), which the runtime uses as its fast path.
 */
#ifndef SANDBAR_RUNNER_H
#define SANDBAR_RUNNER_H

#include <sandbar/base.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SB_OUTPUT_CAP_DEFAULT (4u * 1024u * 1024u)
#define SB_GRACE_MS_DEFAULT 1000

typedef enum sb_stream {
	SB_STREAM_STDOUT = 1,
	SB_STREAM_STDERR = 2,
} sb_stream;

typedef struct sb_exec_request {
	char *const *argv; /* required, NULL-terminated, argv[0] looked up in PATH */
	const char *cwd;   /* NULL = the runner's default */
	char *const *env;  /* "KEY=VALUE" additions, NULL-terminated; may be NULL */
	bool clear_env;    /* start from an empty environment instead of the runner's */
	bool has_stdin;    /* false: no stdin at all (/dev/null); true: stdin_data is written */
	const void *stdin_data; /* may be NULL when stdin_len == 0 (closed at once) */
	size_t stdin_len;
	/* Stream stdin from stdin_fd until its EOF instead of stdin_data (has_stdin must be set).
	 * Only runners with SB_RUNNER_CAP_STDIN_STREAM accept it; others fail SB_E_UNSUPPORTED. */
	bool stdin_stream;
	int stdin_fd;
	/* A pseudo-terminal as the command's stdin, stdout and stderr (runners with
	 * SB_RUNNER_CAP_TTY; others fail SB_E_UNSUPPORTED). Needs stdin_stream: what stdin_fd
	 * gives is typed (its EOF is not passed on; a terminal has none). The output is one
	 * stream, stdout. tty_rows/tty_cols: the initial size (0 = 24 x 80); tty_term: TERM
	 * (NULL = xterm). tty_resize_fd (-1 for none): readable when the window changed, holding
	 * records of two native uint16_t (rows, cols); the last one read wins. */
	bool tty;
	unsigned short tty_rows, tty_cols;
	const char *tty_term;
	int tty_resize_fd;
	int64_t timeout_ms; /* 0 = no deadline */
	int64_t grace_ms;   /* TERM-to-KILL grace; 0 = default; raised to at least 1000 */
	size_t output_cap;  /* per stream, the LAST bytes kept; 0 = SB_OUTPUT_CAP_DEFAULT */
} sb_exec_request;

typedef struct sb_exec_callbacks {
	/* After the process exists and before any stdin is written. pid is 0 when unknown. An error
	 * cancels the command. */
	sb_err *(*on_spawn)(void *ud, int pid, const char *started_at);
	/* Each chunk of output, in order; the runner reads no more output until it returns (back
	 * pressure). An error cancels the command; execute() then returns that error. */
	sb_err *(*on_output)(void *ud, sb_stream stream, const char *data, size_t len);
	void *ud;
	/* Optional: stdin bytes handed to the command so far, of the total, after each write.
	 * Runners with SB_RUNNER_CAP_STDIN_PROGRESS call it as stdin goes out; others may call it
	 * once at the end, or never. */
	sb_progress_fn on_stdin_progress;
} sb_exec_callbacks;

typedef struct sb_exec_result {
	bool has_exit_code; /* false when killed by a signal (or unknown) */
	int exit_code;
	char signal[16]; /* "SIGKILL", "" when none */
	bool timed_out;
	bool oom_killed; /* a sandbox's memory limit killed it (signal is then SIGKILL) */
	sb_buf out, err; /* the last output_cap bytes, cut at a UTF-8 boundary when truncated */
	bool out_truncated, err_truncated;
	int pid; /* 0 when unknown */
	char started_at[SB_ISO8601_LEN];
	char finished_at[SB_ISO8601_LEN];
	int64_t duration_ms;
	/* Set when the channel itself failed after the command started (result still filled as far
	 * as known), e.g. "duplex_channel_lost". NULL otherwise. */
	char *transport_error_code;
	char *transport_error_msg;
} sb_exec_result;

void sb_exec_result_init(sb_exec_result *r);
void sb_exec_result_deinit(sb_exec_result *r);
/* exit code 0 and not timed out (and no transport error). */
bool sb_exec_result_ok(const sb_exec_result *r);
/* The exit status sandbar's commands report for a command they ran (sandbar(1), EXIT STATUS).
 * A command's own exit code passes through unchanged; these are the ones sandbar adds. This is
 * the only place that maps how a command ended to a status: callers never pick one themselves,
 * and never by looking at an error message's text. */
enum {
	SB_EXIT_OK = 0,
	SB_EXIT_TIMEOUT = 124,  /* the command hit its timeout */
	SB_EXIT_FAILURE = 125,  /* sandbar itself failed (usage, setup, staging, restore, daemon) */
	SB_EXIT_NOEXEC = 126,   /* the command was found but could not be started */
	SB_EXIT_NOTFOUND = 127, /* the command was not found */
	SB_EXIT_SIGNAL_BASE = 128, /* + n when the command was killed by signal n */
};

/* How a command that started ended, as every exec record (runner result, sandbox exec status)
 * can describe it. */
typedef struct sb_exit_how {
	bool timed_out;
	bool has_exit_code;
	int exit_code;
	int signo; /* terminating signal number, 0 when none or unknown */
} sb_exit_how;

/* timed out -> 124; else its exit code; else killed by signal n -> 128+n; else 125. */
int sb_exit_status(const sb_exit_how *how);
/* sb_exit_status for a runner's result (its signal name mapped back to a number). */
int sb_exec_result_exit_status(const sb_exec_result *r);
/* The status for a command that could not be started: SB_E_SPAWN with errno ENOENT -> 127,
 * any other SB_E_SPAWN -> 126, any other error (sandbar failed) -> 125. */
int sb_exit_status_for_start_error(const sb_err *err);

/* "SIGKILL" for 9, "SIG<n>" for unknown numbers; and back (0 when unknown). */
const char *sb_signal_name(int signo);
int sb_signal_number(const char *name);

enum {
	SB_RUNNER_CAP_STDIN = 1u << 0,          /* requests may carry stdin */
	SB_RUNNER_CAP_STDIN_PROGRESS = 1u << 1, /* one stdin exec can stream a large upload */
	SB_RUNNER_CAP_STDIN_STREAM = 1u << 7,   /* requests may stream stdin from a descriptor */
	SB_RUNNER_CAP_TTY = 1u << 8,            /* requests may ask for a pseudo-terminal */
	SB_RUNNER_CAP_FILE_TRANSFER = 1u << 2,  /* sync_in / sync_out available */
	/* With SB_RUNNER_CAP_FILE_TRANSFER: the incremental transfer ops below (manifest,
	 * sync_out_paths, sync_in_delta, file_read, file_write) are available. */
	SB_RUNNER_CAP_DELTA = 1u << 9,
};

typedef struct sb_runner sb_runner;

/* For runner implementations. */
typedef struct sb_runner_ops {
	const char *name;
	sb_err *(*execute)(sb_runner *r, const sb_exec_request *req, const sb_exec_callbacks *cb,
	                   sb_cancel *cancel, sb_exec_result *res);
	/* Native transfer in: replace the contents of remote_dir (created if missing) with the tar
	 * stream read from tar_fd, first deleting every top-level entry except the names in
	 * preserve (NULL-terminated, may be NULL). */
	sb_err *(*sync_in)(sb_runner *r, const char *remote_dir, char *const *preserve, int tar_fd,
	                   sb_progress_fn progress, void *progress_ud);
	/* Native transfer out: write a tar of remote_dir (entries relative to it, never "./"),
	 * skipping what ex matches and "._*", to tar_fd. */
	sb_err *(*sync_out)(sb_runner *r, const char *remote_dir, const sb_excludes *ex, int tar_fd,
	                    sb_progress_fn progress, void *progress_ud);
	/* Optional, with SB_RUNNER_CAP_DELTA (incremental native transfer, #15): the runner reaches
	 * the far tree itself, so it lists and moves only what differs without a far command.
	 * manifest: remote_dir's manifest as sb_manifest_take makes it (SB_E_NOTFOUND when
	 * remote_dir does not exist). */
	sb_err *(*manifest)(sb_runner *r, const char *remote_dir, const sb_excludes *ex,
	                    const sb_manifest_opts *o, sb_manifest *out);
	/* A tar of exactly these entries of remote_dir (relative paths of files and symlinks,
	 * NULL-terminated; no recursion) to tar_fd; an entry gone meanwhile is left out (the caller
	 * checks what came). */
	sb_err *(*sync_out_paths)(sb_runner *r, const char *remote_dir, char *const *paths,
	                          int tar_fd, sb_progress_fn progress, void *progress_ud);
	/* Remove each relative path of dels (NULL-terminated, may be NULL; a tree whole, never
	 * following a symlink), then extract the tar stream read from tar_fd (-1: none) over
	 * remote_dir (created if missing). Not atomic: the caller's record of the far tree must
	 * say "unknown" while it runs. */
	sb_err *(*sync_in_delta)(sb_runner *r, const char *remote_dir, char *const *dels,
	                         int tar_fd, sb_progress_fn progress, void *progress_ud);
	/* A small file at an absolute remote path: read at most max bytes (SB_E_NOTFOUND when
	 * missing, SB_E_TOO_LARGE past max); write it whole (its directory created) so a reader
	 * sees the old or the new content; data NULL: remove it (missing is success). */
	sb_err *(*file_read)(sb_runner *r, const char *path, size_t max, sb_buf *out);
	sb_err *(*file_write)(sb_runner *r, const char *path, const void *data, size_t len);
	void (*destroy)(sb_runner *r);
} sb_runner_ops;

struct sb_runner {
	const sb_runner_ops *ops;
	unsigned caps;
	void *impl;
};

/* Run one command. Returns an error when the command could not be started (SB_E_SPAWN, message
 * `failed to start "<cmd>" in "<cwd>": <reason>`), when a callback failed or the cancel token
 * fired before a result existed, or when the request is invalid. A command that ran (whatever its
 * exit) fills *res and returns NULL. res must have been initialised with sb_exec_result_init.
 * Safe to call from several threads at once on the same runner. cancel may be NULL. */
sb_err *sb_runner_execute(sb_runner *r, const sb_exec_request *req, const sb_exec_callbacks *cb,
                          sb_cancel *cancel, sb_exec_result *res);
unsigned sb_runner_caps(const sb_runner *r);
const char *sb_runner_name(const sb_runner *r);
sb_err *sb_runner_sync_in(sb_runner *r, const char *remote_dir, char *const *preserve, int tar_fd,
                          sb_progress_fn progress, void *progress_ud);
sb_err *sb_runner_sync_out(sb_runner *r, const char *remote_dir, const sb_excludes *ex, int tar_fd,
                           sb_progress_fn progress, void *progress_ud);
/* Whether r has SB_RUNNER_CAP_DELTA and every one of its ops (a wrapper that copies an inner
 * runner's caps without passing the ops on has not). */
bool sb_runner_can_delta(const sb_runner *r);
/* The SB_RUNNER_CAP_DELTA ops (SB_E_UNSUPPORTED on a runner without them). */
sb_err *sb_runner_manifest(sb_runner *r, const char *remote_dir, const sb_excludes *ex,
                           const sb_manifest_opts *o, sb_manifest *out);
sb_err *sb_runner_sync_out_paths(sb_runner *r, const char *remote_dir, char *const *paths,
                                 int tar_fd, sb_progress_fn progress, void *progress_ud);
sb_err *sb_runner_sync_in_delta(sb_runner *r, const char *remote_dir, char *const *dels, int tar_fd,
                                sb_progress_fn progress, void *progress_ud);
sb_err *sb_runner_file_read(sb_runner *r, const char *path, size_t max, sb_buf *out);
sb_err *sb_runner_file_write(sb_runner *r, const char *path, const void *data, size_t len);
void sb_runner_free(sb_runner *r);

/* ---- local runner: child processes on this host. */
typedef struct sb_local_runner_opts {
	bool file_transfer;      /* offer sync_in/sync_out on the local file system */
	const char *default_cwd; /* NULL = the current directory */
} sb_local_runner_opts;

sb_runner *sb_local_runner_new(const sb_local_runner_opts *opts);

/* ---- prefix runner: runs a request elsewhere through a command prefix that runs commands
 * there: `ssh -T host --`, `kubectl exec -i pod --`, `docker exec -i c`, `sh -c`. The request
 * becomes one POSIX sh command line (cd to cwd, env additions, every argument single-quoted) run
 * by `sh -c` on the far side, so arguments arrive byte for byte. Two kinds of prefix:
 *  - argv prefixes (kubectl, docker, bwrap) exec their trailing arguments directly: the runner
 *    appends "sh", "-c", <command line>;
 *  - shell prefixes (ssh, sh -c) hand one string to a shell: the runner appends a single
 *    argument, `sh -c '<command line>'` quoted once more (set prefix_is_shell).
 * The prefix itself runs through an inner local runner (timeouts, streaming, stdin). */
typedef struct sb_prefix_runner_opts {
	char *const *prefix; /* NULL-terminated, required */
	bool prefix_is_shell;
	bool no_stdin; /* the far side cannot take stdin: SB_RUNNER_CAP_STDIN off */
} sb_prefix_runner_opts;

sb_err *sb_prefix_runner_new(const sb_prefix_runner_opts *opts, sb_runner **out);

/* ---- bridge client and runner: a lease on a remote `sandbar serve`, or on any server that
 * speaks Paperclip's sandbox bridge protocol (paperclip-bridge-protocol.md), over HTTP(S) with
 * libcurl. The client performs the lease operations; the runner executes requests on one
 * acquired lease through POST /exec (streamed as SSE when the caller wants output as it comes).
 * When the server is a sandbar that advertises its native workspace routes, the runner also
 * offers SB_RUNNER_CAP_FILE_TRANSFER (tar streams through PUT/GET /v1/leases/{id}/workspace);
 * otherwise the managed runtime moves files with commands. Requests carry the bearer token, or
 * are HMAC-signed when a key is configured and the server advertises signing. */
typedef struct sb_bridge_opts {
	const char *base_url;    /* required: "https://host:port" (http only for loopback) */
	const char *token;       /* bearer token; required unless an HMAC key is given */
	const char *hmac_key_id; /* optional HMAC key (id and secret together) */
	const char *hmac_secret;
	const char *expected_host;  /* Host header to send and sign; NULL = the URL's authority */
	const char *ca_file;        /* PEM bundle to trust (self-signed servers); NULL = system */
	bool insecure;              /* skip TLS verification (tests only) */
	const char *unix_socket;    /* connect through this unix socket instead of TCP */
	int64_t request_timeout_ms; /* non-exec requests and the acquire budget; 0 = 300000 */
} sb_bridge_opts;

typedef struct sb_bridge sb_bridge;

/* What GET /health advertised. */
typedef struct sb_bridge_health {
	char *provider; /* "cloudflare" for the stock bridge, "sandbar" for ours */
	char *bridge_version;
	bool reuse_lease, named_sessions, acquisition_replay, scoped_reuse;
	bool sandbar;       /* the server is sandbar (native routes below may exist) */
	bool hmac;          /* it verifies SANDBAR-HMAC-SHA256 signatures */
	bool workspace_tar; /* it serves PUT/GET /v1/leases/{id}/workspace */
	bool cancel;        /* an exec named by sandbarExecId can be signalled (native API) */
} sb_bridge_health;

void sb_bridge_health_deinit(sb_bridge_health *h);

/* Lease parameters (the plugin's acquire/resume/release/destroy bodies). Zeroed fields take the
 * protocol's defaults; strings are borrowed. */
typedef struct sb_bridge_lease_params {
	const char *acquisition_id; /* required for acquire; also sent on every later call */
	const char *environment_id; /* required for acquire */
	const char *run_id;         /* required for acquire */
	const char *issue_id;
	bool reuse_lease;
	const char *reuse_scope_id; /* 32 hex; required when reuse_lease */
	bool keep_alive;
	const char *sleep_after;      /* NULL = "1h" */
	const char *requested_cwd;    /* NULL = "/workspace/paperclip" */
	const char *session_strategy; /* "named" (default) or "default" */
	const char *session_id;       /* NULL = "paperclip" */
	int64_t timeout_ms;           /* command timeout sent to the bridge; 0 = 300000 */
} sb_bridge_lease_params;

/* An acquired (or resumed) lease. */
typedef struct sb_bridge_lease {
	char *provider_lease_id;
	char *acquisition_id;
	char *remote_cwd;
	char *session_strategy;
	char *session_id;
	bool resumed;
	/* Set on a failed acquire when the server reported a sandbox that survived and must be
	 * destroyed by the caller (details.providerLeaseId); NULL otherwise. */
	char *orphan_lease_id;
} sb_bridge_lease;

void sb_bridge_lease_deinit(sb_bridge_lease *l);

/* A client; safe to use from several threads at once. */
sb_err *sb_bridge_new(const sb_bridge_opts *opts, sb_bridge **out);
void sb_bridge_free(sb_bridge *b);
/* GET /health. Also decides whether later requests are HMAC-signed. */
sb_err *sb_bridge_health_get(sb_bridge *b, sb_bridge_health *out);
/* POST /probe: the operator's connection test; *summary_out (optional) gets the summary. */
sb_err *sb_bridge_probe(sb_bridge *b, const sb_bridge_lease_params *p, char **summary_out);
/* GET /health (refusing servers without acquisitionReplay, or without scopedReuse when reuse
 * is asked for), then POST /v2/leases/acquire, replayed with the same acquisition id on
 * network errors, 503 acquisition_in_progress and 5xx other than acquisition_failed, with
 * delays of min(250 * 2^(n-1), 5000) ms, all within one budget of
 * max(p->timeout_ms, request_timeout_ms). Errors: SB_E_CONFLICT (acquisition_conflict),
 * SB_E_BUSY (still in progress when the budget ran out), SB_E_INVAL, SB_E_AUTH, ... *out must
 * be zeroed; on failure out->orphan_lease_id may be set. */
sb_err *sb_bridge_acquire(sb_bridge *b, const sb_bridge_lease_params *p, sb_bridge_lease *out);
/* POST /v2/leases/resume of lease_id (p->acquisition_id is checked against the answer).
 * SB_E_STATE_LOST when the sandbox is gone (409): acquire again. SB_E_UNSUPPORTED for a bridge
 * without the v2 ownership API. */
sb_err *sb_bridge_resume(sb_bridge *b, const char *lease_id, const sb_bridge_lease_params *p,
                         sb_bridge_lease *out);
/* POST /v2/leases/release: kept when p->reuse_lease, destroyed otherwise. */
sb_err *sb_bridge_release(sb_bridge *b, const char *lease_id, const sb_bridge_lease_params *p);
/* DELETE /v2/leases/{id}: forced teardown (idempotent). SB_E_CONFLICT while an exec runs or
 * when another acquisition owns the sandbox. */
sb_err *sb_bridge_destroy(sb_bridge *b, const char *lease_id, const sb_bridge_lease_params *p);

typedef struct sb_bridge_runner_opts {
	sb_bridge_opts bridge;         /* connection (copied) */
	const char *provider_lease_id; /* the lease to run on (from sb_bridge_acquire) */
	const char *acquisition_id;    /* its owner */
	const char *remote_cwd;        /* default cwd of requests without one; NULL = "/" */
	const char *session_strategy;  /* NULL = "named" */
	const char *session_id;        /* NULL = "paperclip" */
	/* Never ask for native file transfer even when the server offers it (forces the
	 * command path; for tests and for servers behind proxies that mangle bodies). */
	bool no_file_transfer;
} sb_bridge_runner_opts;

/* A runner on one lease. Asks GET /health once to learn the server's capabilities. Requests
 * whose env holds PAPERCLIP_SANDBOX_EXEC_CHANNEL=bridge run in the session "<session_id>-bridge"
 * without that variable and are never streamed (as the stock plugin does). stdin must be valid
 * UTF-8 (the protocol carries it as a JSON string); clear_env is not supported. */
sb_err *sb_bridge_runner_new(const sb_bridge_runner_opts *opts, sb_runner **out);

#ifdef __cplusplus
}
#endif
#endif
