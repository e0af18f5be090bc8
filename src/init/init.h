/* sandbar-init internals: the state of the supervisor that runs as PID 1 in every sandbox.
 * main.c owns the event loop and the control connections; exec.c spawns commands, copies their
 * output to the spool and records their status; ps.c lists processes. */
#ifndef SANDBAR_INIT_H
#define SANDBAR_INIT_H

#include <linux/filter.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "proto.h"

/* One command started by a host request. It stays in the table until its process has exited and
 * both output pipes have reached end of file (background children may keep them open). */
typedef struct sbi_exec {
	char id[65];
	pid_t pid; /* also its process group and session id */
	int dirfd; /* spool/<id> */
	/* Host readers following this exec: each gets a byte on its wake pipe when output was
	 * spooled, and at the exit an "exit" message on its connection, then a last byte. */
	struct sbi_watcher {
		int notify_fd, wake_fd;
	} * watchers;
	size_t nwatchers;
	int pipe[2];  /* read ends for stdout, stderr (a tty's master, and -1); -1 once at EOF */
	int file[2];  /* spool files stdout, stderr */
	off_t off[2]; /* bytes spooled so far */
	int64_t started_ms, finished_ms;
	int64_t deadline_ms; /* 0 = none */
	int64_t grace_ms;
	int64_t kill_at_ms; /* SIGKILL due (after TERM on timeout); 0 = none */
	bool exited, timed_out;
	int wstatus;       /* once exited */
	bool oom;          /* once exited: the memory limit killed it */
	bool truncated[2]; /* output past spool_max, or after a spool write failed, was dropped */
	bool
	    spool_failed[2]; /* a spool write failed (disk full): the rest is dropped, not gapped */
	int64_t status_due_ms; /* when to write the "running" record; 0 = done */
	bool dir_failed;       /* its spool directory could not be made */
	int pending_records;   /* status records queued to the writer thread (records.c) */
	long long oom_before;
	/* A streamed input the host may re-attach to after it restarts (input.c): for a pipe,
	 * a copy of its write end (-1 none, or released); for a terminal, its master (pipe[0]),
	 * until the host released it. */
	int input;
	bool tty, input_released;
	struct sbi_exec *next;
} sbi_exec;

typedef struct sbi_state {
	int spool_fd; /* <lease>/spool, the only way into it: it is not mounted in the sandbox */
	int oom_fd;   /* memory.oom_control (v1) or memory.events (v2), -1 when no memory limit */
	struct sock_fprog seccomp;
	unsigned long long nofile, nproc;
	unsigned long long spool_max; /* bytes kept per stream of an exec */
	struct rlimit limits[3];      /* NOFILE, NPROC, CORE for commands, clamped once */
	int devnull;                  /* stdin of commands without a stdin pipe */
	int oom_adj_fd;               /* our /proc/self/oom_score_adj, opened while dumpable */
	sbi_exec *execs;
} sbi_state;

int64_t sbi_wall_ms(void);
int64_t sbi_mono_ms(void);
/* Log a line to init's stderr (a host-side file outside the sandbox). */
void sbi_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* records.c: start the record writer; returns the descriptor the main loop polls for
 * completions (then calls sbi_records_reap), or -1. */
int sbi_records_start(void);
/* Queue an exec's status record (text of len bytes) for writing. */
void sbi_records_put(const sbi_state *st, sbi_exec *x, const char *text, size_t len);
void sbi_records_reap(void);

/* Once at start: compute the commands' rlimits and open /dev/null. -1 on failure (errno). */
int sbi_exec_setup(sbi_state *st);
/* Handle an exec request: start the command, fill reply. stdin_fd, notify_fd and wake_fd (or
 * -1) are consumed; the latter two make the first watcher (see sbi_exec). With tty=1 the
 * command runs on a new pseudo-terminal (stdin_fd is then unused) and *reply_fd receives a
 * duplicate of its master for the host (the caller sends it with the reply, then closes it);
 * otherwise it stays -1. */
void sbi_exec_start(sbi_state *st, const sbi_msg *req, int stdin_fd, int held_fd, int notify_fd,
                    int wake_fd, sbi_msg *reply, int *reply_fd);
/* input.c: {op:input, id, action:attach|release}. attach answers a copy of a running exec's
 * held input in *reply_fd (its stdin pipe's write end, or its terminal's master); release
 * lets go of it (a pipe's copy is closed, so the command sees EOF once the host's is). */
void sbi_input_request(sbi_state *st, const sbi_msg *req, sbi_msg *reply, int *reply_fd);
/* Reap exited children (after SIGCHLD) and record the status of the ones that are execs. */
void sbi_exec_reap(sbi_state *st);
/* spool.c: move available output from pipes to spool files; close pipes at EOF. */
void sbi_exec_pump(sbi_state *st, sbi_exec *x, int stream);
/* The exec's spool directory, made on first need; false when it cannot be (logged once). */
bool sbi_exec_ensure_dir(const sbi_state *st, sbi_exec *x);
/* Wake every reader following x (a byte on each wake pipe, never blocking). */
void sbi_exec_wake_watchers(sbi_exec *x);
/* Apply due timeouts and deferred records; returns the ms until the next deadline (-1 = none). */
int sbi_exec_timeouts(sbi_state *st);
/* Free finished execs whose pipes are closed. */
void sbi_exec_gc(sbi_state *st);
sbi_exec *sbi_exec_find(sbi_state *st, const char *id);
/* Add a watcher to a running exec (both fds consumed). false when it has exited already. */
bool sbi_exec_watch(sbi_exec *x, int notify_fd, int wake_fd);
/* The exec's state as message fields (running, pid, exit_code, signal, ...). */
void sbi_exec_describe(const sbi_exec *x, sbi_msg *m);
/* tty.c: a pseudo-terminal for an exec request with tty=1 ("rows", "cols" optional): the
 * master (non-blocking) and the slave, both close-on-exec. -1 with errno and why filled. */
#define SBI_TTY_ROWS_DEFAULT 24
#define SBI_TTY_COLS_DEFAULT 80
#define SBI_TTY_DIM_MAX 10000
int sbi_tty_open(const sbi_msg *req, int *master, int *slave, char *why, size_t why_len);
/* List processes into reply ("proc" fields). */
void sbi_ps(sbi_state *st, sbi_msg *reply);

/* forward.c: loopback listeners whose connections go to the host (see there). */
/* op "listen" on connection cfd; *attached says whether cfd became an attachment (then call
 * sbi_forward_attached after the reply went out, to hand it the connections held). */
void sbi_forward_listen(int cfd, const sbi_msg *req, sbi_msg *reply, bool *attached);
void sbi_forward_attached(int cfd);
void sbi_forward_mark(const sbi_msg *req);    /* op "mark": no reply */
void sbi_forward_release(const sbi_msg *req); /* op "release": no reply */
/* cfd is going away: forwards attached to it wait for the next attachment. */
void sbi_forward_detach(int cfd);
size_t sbi_forward_count(void);
/* Fill sbi_forward_count() entries (fd -1 while a forward must not accept). */
size_t sbi_forward_pollfds(struct pollfd *p);
/* Accept what the listeners in p have pending and hand it to the attachments. */
void sbi_forward_ready(const struct pollfd *p);

#endif
