/* Internals shared by the runner implementations in src/runner/: the normalisation that
 * sb_runner_execute applies before dispatching, and the local runner's native file transfer.
 */
#ifndef SANDBAR_RUNNER_INT_H
#define SANDBAR_RUNNER_INT_H

#include <sandbar/runner.h>

/* The PATH a command gets when its environment has none (same list as Debian's login.defs). */
#define SB_RUNNER_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* grace_ms as runners apply it: 0 means SB_GRACE_MS_DEFAULT, and never below 1000 ms. Requests
 * reaching a runner's ops->execute through sb_runner_execute already carry this value, and an
 * output_cap that is never 0. */
int64_t sb_runner_effective_grace_ms(int64_t grace_ms);

/* A started local command: its pid (leader of its own process group) and our non-blocking ends
 * of its pipes (in_fd is -1 when the request has no stdin). */
typedef struct sb_local_child {
	pid_t pid;
	int in_fd, out_fd, err_fd;
} sb_local_child;

/* Start a validated request in cwd (NULL = this process's cwd) (local_spawn.c). On an error with
 * child->pid != 0 the process was started and the caller must kill and reap it. */
sb_err *sb_local_spawn(const sb_exec_request *req, const char *cwd, sb_local_child *child);

/* The local file-system transfer behind sb_local_runner_opts.file_transfer (local_sync.c). */
sb_err *sb_local_sync_in(const char *remote_dir, char *const *preserve, int tar_fd,
                         sb_progress_fn progress, void *progress_ud);
sb_err *sb_local_sync_out(const char *remote_dir, const sb_excludes *ex, int tar_fd,
                          sb_progress_fn progress, void *progress_ud);
/* Its incremental ops (sb_runner_ops: manifest, sync_out_paths, sync_in_delta, file_read,
 * file_write) on the same directories. */
sb_err *sb_local_manifest(sb_runner *r, const char *remote_dir, const sb_excludes *ex,
                          const sb_manifest_opts *o, sb_manifest *out);
sb_err *sb_local_sync_out_paths(sb_runner *r, const char *remote_dir, char *const *paths,
                                int tar_fd, sb_progress_fn progress, void *progress_ud);
sb_err *sb_local_sync_in_delta(sb_runner *r, const char *remote_dir, char *const *dels, int tar_fd,
                               sb_progress_fn progress, void *progress_ud);
sb_err *sb_local_file_read(sb_runner *r, const char *path, size_t max, sb_buf *out);
sb_err *sb_local_file_write(sb_runner *r, const char *path, const void *data, size_t len);

#endif
