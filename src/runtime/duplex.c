/* One far command that answers a question it asked: it prints a listing (manifest records,
 * sb_rt_script_listing) and then reads our answer from its stdin, so that comparing both trees
 * and moving what differs costs one remote command rather than two (#15: at most 4 per run).
 * The command runs on a thread of its own; this side waits for the end of the listing, writes
 * the answer into the command's stdin and closes it. Whatever the command prints after the
 * listing goes to the tail callbacks (an archive for restore), set before the answer.
 *
 * Every streaming runner (local, prefix/ssh, kubectl, the sandbox) carries stdin and stdout
 * concurrently (a poll loop), so the far side can wait for the answer without a deadlock.
 */
#include "rt.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct sb_rt_duplex {
	const sb_rt_ctx *c;
	char *script;
	int in_r, in_w; /* the command's stdin: the runner reads in_r, the answer goes to in_w */
	size_t output_cap;
	pthread_t thread;
	bool started, joined;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	sb_buf out;        /* the listing as it comes */
	size_t scanned;    /* bytes of out split into records; the listing's length once listed */
	bool after_entry;  /* the next record is an entry's link target */
	bool listed, done; /* the listing's end was seen; the command finished */
	const sb_exec_callbacks *tail;
	sb_err *err;
	sb_exec_result res;
	bool sigpipe_blocked; /* by sb_rt_duplex_answer_begin, before */
	sigset_t old_mask;
};

/* With the lock held: split what came into records; true at the listing's end (its "Z", or a
 * lone "U" record). */
static bool scan_listing(sb_rt_duplex *d)
{
	while (d->scanned < d->out.len) {
		const char *rec = d->out.data + d->scanned;
		const char *nul = memchr(rec, '\0', d->out.len - d->scanned);
		if (!nul)
			return false;
		size_t len = (size_t)(nul - rec);
		d->scanned += len + 1;
		if (d->after_entry) {
			d->after_entry = false;
			continue;
		}
		if (len >= 2 && rec[0] == 'E' && rec[1] == ' ')
			d->after_entry = true;
		else if ((len == 1 && rec[0] == 'Z') || (len >= 1 && rec[0] == 'U'))
			return true;
	}
	return false;
}

static sb_err *on_output(void *ud, sb_stream stream, const char *data, size_t len)
{
	sb_rt_duplex *d = ud;
	pthread_mutex_lock(&d->mu);
	const sb_exec_callbacks *tail = d->listed ? d->tail : NULL;
	bool listing = !d->listed && stream == SB_STREAM_STDOUT;
	sb_err *err = NULL;
	if (listing && d->out.len + len > SB_MANIFEST_MAX_BYTES) {
		err = sb_err_new(SB_E_TOO_LARGE, "the far side's manifest exceeds %u bytes",
		                 SB_MANIFEST_MAX_BYTES);
	} else if (listing) {
		sb_buf_append(&d->out, data, len);
		if (scan_listing(d)) {
			d->listed = true;
			/* the far side waits for the answer: nothing follows in this chunk */
			d->out.len = d->scanned;
			pthread_cond_broadcast(&d->cv);
		}
	}
	pthread_mutex_unlock(&d->mu);
	if (!err && tail && tail->on_output)
		err = tail->on_output(tail->ud, stream, data, len);
	return err;
}

static void *run(void *arg)
{
	sb_rt_duplex *d = arg;
	/* the tail writes into a pipe whose reader may fail: EPIPE, not a signal (this thread's
	 * mask dies with it) */
	sigset_t pipe_only;
	sigemptyset(&pipe_only);
	sigaddset(&pipe_only, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_only, NULL);
	sb_rt_stdin in = {.has = true, .stream = true, .fd = d->in_r};
	sb_exec_callbacks cb = {.on_output = on_output, .ud = d};
	sb_err *err = sb_rt_run(d->c, d->script, &in, &cb, d->output_cap, &d->res);
	/* Nobody reads the answer any more: a writer still going gets EPIPE, not a hang on a
	 * full pipe. */
	sb_close(&d->in_r);
	pthread_mutex_lock(&d->mu);
	d->err = err;
	d->done = true;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

sb_err *sb_rt_duplex_start(const sb_rt_ctx *c, const char *script, size_t output_cap,
                           sb_rt_duplex **out)
{
	*out = NULL;
	int fds[2];
	if (sb_rt_stream_pipe(fds) != 0)
		return sb_err_sys(errno, "creating the pipe of a remote command's stdin");
	sb_rt_duplex *d = sb_xcalloc(1, sizeof *d);
	d->c = c;
	d->script = sb_xstrdup(script);
	d->in_r = fds[0];
	d->in_w = fds[1];
	d->output_cap = output_cap;
	sb_buf_init(&d->out);
	sb_exec_result_init(&d->res);
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	int rc = pthread_create(&d->thread, NULL, run, d);
	if (rc != 0) {
		sb_rt_duplex_free(d);
		return sb_err_sys(rc, "starting a remote command");
	}
	d->started = true;
	*out = d;
	return NULL;
}

bool sb_rt_duplex_listing(sb_rt_duplex *d, const char **data, size_t *len)
{
	pthread_mutex_lock(&d->mu);
	while (!d->listed && !d->done)
		pthread_cond_wait(&d->cv, &d->mu);
	bool listed = d->listed;
	pthread_mutex_unlock(&d->mu);
	*data = listed && d->out.data ? d->out.data : "";
	*len = listed ? d->scanned : 0;
	return listed;
}

int sb_rt_duplex_answer_begin(sb_rt_duplex *d, const sb_exec_callbacks *tail)
{
	pthread_mutex_lock(&d->mu);
	d->tail = tail;
	pthread_mutex_unlock(&d->mu);
	/* The command may have stopped reading: a write then fails with EPIPE, not a signal. */
	sigset_t pipe_only;
	sigemptyset(&pipe_only);
	sigaddset(&pipe_only, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_only, &d->old_mask);
	d->sigpipe_blocked = true;
	return d->in_w;
}

sb_err *sb_rt_duplex_finish(sb_rt_duplex *d, sb_exec_result **res)
{
	sb_close(&d->in_w); /* the end of the answer (or no answer: the far side stops) */
	if (d->started && !d->joined)
		pthread_join(d->thread, NULL);
	d->joined = true;
	sb_close(&d->in_r);
	if (d->sigpipe_blocked) {
		d->sigpipe_blocked = false;
		if (!sigismember(&d->old_mask, SIGPIPE)) {
			/* consume a SIGPIPE our writes raised before unblocking it */
			sigset_t pipe_only;
			sigemptyset(&pipe_only);
			sigaddset(&pipe_only, SIGPIPE);
			struct timespec zero = {0, 0};
			while (sigtimedwait(&pipe_only, NULL, &zero) > 0)
				;
		}
		pthread_sigmask(SIG_SETMASK, &d->old_mask, NULL);
	}
	if (res)
		*res = &d->res;
	sb_err *err = d->err;
	d->err = NULL;
	return err;
}

void sb_rt_duplex_free(sb_rt_duplex *d)
{
	if (!d)
		return;
	sb_err_free(sb_rt_duplex_finish(d, NULL));
	sb_err_free(d->err);
	sb_exec_result_deinit(&d->res);
	sb_buf_deinit(&d->out);
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
	free(d->script);
	free(d);
}
