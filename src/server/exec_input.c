/* Input to running execs (exec_input.h): the table of open stdins and the writes into them.
 *
 * An entry is reference-counted: the table holds one reference until the stdin is closed by a
 * client, the exec ends or its lease goes; a write or a resize holds another while it runs,
 * so a drop never closes a descriptor under a writer. Writes to one exec are serialised by
 * the entry's own lock (the bodies of concurrent requests never interleave). */
#include "exec_input.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sandbar/sandbox.h>

typedef struct input {
	struct input *next;
	char *lease_id, *exec_id;
	int fd;
	bool tty;
	int refs;            /* under the table's lock */
	pthread_mutex_t wmu; /* one writer at a time */
} input;

struct sbs_exec_inputs {
	pthread_mutex_t mu;
	input *list;
};

sb_err *sbs_exec_spec_input_from_json(const json_t *body, sbs_exec_spec *out)
{
	sb_err *err = sb_json_get_bool(body, "stdin_stream", false, &out->stdin_stream);
	if (err)
		return err;
	const json_t *t = json_object_get(body, "tty");
	if (!t || json_is_null(t) || json_is_false(t))
		goto check;
	out->tty = out->stdin_stream = true;
	if (json_is_true(t))
		goto check;
	if (!json_is_object(t))
		return sb_err_new(SB_E_INVAL, "\"tty\" must be true or {\"rows\", \"cols\", "
		                              "\"term\"}");
	int64_t rows = 0, cols = 0;
	const char *term = NULL;
	if ((err = sb_json_get_int(t, "rows", false, 1, 10000, &rows)) ||
	    (err = sb_json_get_int(t, "cols", false, 1, 10000, &cols)) ||
	    (err = sb_json_get_str(t, "term", false, &term)))
		return sb_err_prefix(err, "\"tty\"");
	out->tty_rows = (unsigned)rows;
	out->tty_cols = (unsigned)cols;
	if (term) {
		size_t n = strlen(term);
		bool ok = n > 0 && n <= SBS_TTY_TERM_MAX;
		for (size_t i = 0; ok && i < n; i++)
			ok = (term[i] >= 'a' && term[i] <= 'z') ||
			     (term[i] >= 'A' && term[i] <= 'Z') ||
			     (term[i] >= '0' && term[i] <= '9') || strchr("-_.+", term[i]);
		if (!ok)
			return sb_err_new(SB_E_INVAL,
			                  "\"tty\".\"term\" must be a terminal type name of 1..%d "
			                  "characters [A-Za-z0-9._+-]",
			                  SBS_TTY_TERM_MAX);
		out->tty_term = sb_xstrdup(term);
	}
check:
	if (out->stdin_stream && out->has_stdin)
		return sb_err_new(SB_E_INVAL,
		                  "give \"stdin\" (all of it, base64) or \"stdin_stream\" / "
		                  "\"tty\" (sent later to .../stdin), not both");
	return NULL;
}

sbs_exec_inputs *sbs_exec_inputs_new(void)
{
	sbs_exec_inputs *in = sb_xcalloc(1, sizeof *in);
	pthread_mutex_init(&in->mu, NULL);
	return in;
}

static void input_free(input *e)
{
	if (e->fd >= 0)
		close(e->fd);
	pthread_mutex_destroy(&e->wmu);
	free(e->lease_id);
	free(e->exec_id);
	free(e);
}

void sbs_exec_inputs_free(sbs_exec_inputs *in)
{
	if (!in)
		return;
	for (input *e = in->list, *next; e; e = next) {
		next = e->next;
		input_free(e); /* no request runs any more */
	}
	pthread_mutex_destroy(&in->mu);
	free(in);
}

void sbs_exec_inputs_add(sbs_exec_inputs *in, const char *lease_id, const char *exec_id, int fd,
                         bool tty)
{
	input *e = sb_xcalloc(1, sizeof *e);
	e->lease_id = sb_xstrdup(lease_id);
	e->exec_id = sb_xstrdup(exec_id);
	e->fd = fd;
	e->tty = tty;
	e->refs = 1;
	pthread_mutex_init(&e->wmu, NULL);
	sb_err_free(sb_fd_set_nonblock(fd, true)); /* the writes wait with poll, bounded */
	pthread_mutex_lock(&in->mu);
	e->next = in->list;
	in->list = e;
	pthread_mutex_unlock(&in->mu);
}

static void unref_locked(input *e)
{
	if (--e->refs == 0)
		input_free(e);
}

/* Take the entry out of the table (its reference goes with it); under in->mu. */
static input *unlink_locked(sbs_exec_inputs *in, const char *lease_id, const char *exec_id)
{
	for (input **pp = &in->list; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->exec_id, exec_id) && !strcmp((*pp)->lease_id, lease_id)) {
			input *e = *pp;
			*pp = e->next;
			return e;
		}
	return NULL;
}

void sbs_exec_inputs_drop(sbs_exec_inputs *in, const char *lease_id, const char *exec_id)
{
	pthread_mutex_lock(&in->mu);
	input *e = unlink_locked(in, lease_id, exec_id);
	if (e)
		unref_locked(e);
	pthread_mutex_unlock(&in->mu);
}

bool sbs_exec_inputs_has(sbs_exec_inputs *in, const char *lease_id, const char *exec_id)
{
	pthread_mutex_lock(&in->mu);
	bool has = false;
	for (input *e = in->list; e && !has; e = e->next)
		has = !strcmp(e->exec_id, exec_id) && !strcmp(e->lease_id, lease_id);
	pthread_mutex_unlock(&in->mu);
	return has;
}

static sb_err *get(sbs_exec_inputs *in, const char *lease_id, const char *exec_id, input **out)
{
	pthread_mutex_lock(&in->mu);
	for (input *e = in->list; e; e = e->next)
		if (!strcmp(e->exec_id, exec_id) && !strcmp(e->lease_id, lease_id)) {
			e->refs++;
			*out = e;
			pthread_mutex_unlock(&in->mu);
			return NULL;
		}
	pthread_mutex_unlock(&in->mu);
	return sb_err_new(SB_E_NOTFOUND,
	                  "exec %s of lease %s has no open stdin (start it with \"stdin_stream\" "
	                  "or \"tty\"; it may have ended or its stdin been closed)",
	                  exec_id, lease_id);
}

static void put(sbs_exec_inputs *in, input *e)
{
	pthread_mutex_lock(&in->mu);
	unref_locked(e);
	pthread_mutex_unlock(&in->mu);
}

/* Write n bytes to fd (non-blocking), waiting for room; fails after SBS_STDIN_STALL_MS without
 * progress. */
static sb_err *write_stalling(const input *e, const char *p, size_t n, uint64_t *written)
{
	int64_t stall_at = sb_mono_ms() + SBS_STDIN_STALL_MS;
	while (n > 0) {
		ssize_t w = write(e->fd, p, n); /* SIGPIPE is blocked on connection threads */
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			*written += (uint64_t)w;
			stall_at = sb_mono_ms() + SBS_STDIN_STALL_MS;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN)
			return sb_err_new(
			    SB_E_STATE_LOST,
			    "exec %s: its %s is closed (the command ended or closed its "
			    "input): %s",
			    e->exec_id, e->tty ? "terminal" : "stdin", strerror(errno));
		int64_t left = stall_at - sb_mono_ms();
		if (left <= 0)
			return sb_err_new(
			    SB_E_TIMEOUT,
			    "exec %s took no input for %d s (it is not reading its %s)", e->exec_id,
			    SBS_STDIN_STALL_MS / 1000, e->tty ? "terminal" : "stdin");
		struct pollfd pf = {.fd = e->fd, .events = POLLOUT};
		(void)poll(&pf, 1, left > 1000 ? 1000 : (int)left);
	}
	return NULL;
}

sb_err *sbs_exec_inputs_write(sbs_exec_inputs *in, const char *lease_id, const char *exec_id,
                              int src, uint64_t len, bool eof, uint64_t *written)
{
	*written = 0;
	input *e = NULL;
	sb_err *err = get(in, lease_id, exec_id, &e);
	if (err)
		return err;
	pthread_mutex_lock(&e->wmu);
	char buf[64 * 1024];
	uint64_t left = len;
	while (!err && left > 0) {
		ssize_t n = read(src, buf, left < sizeof buf ? (size_t)left : sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? sb_err_sys(errno, "reading the request body")
			            : sb_err_new(SB_E_IO, "the request body ended early");
			break;
		}
		left -= (uint64_t)n;
		err = write_stalling(e, buf, (size_t)n, written);
	}
	pthread_mutex_unlock(&e->wmu);
	if (!err && eof) {
		/* EOF: the table's reference goes; the descriptor closes with the last one. A
		 * terminal gets its end-of-file character instead (a terminal cannot be closed
		 * from the keyboard side while its command runs). */
		pthread_mutex_lock(&in->mu);
		input *gone = unlink_locked(in, lease_id, exec_id);
		if (gone)
			unref_locked(gone);
		pthread_mutex_unlock(&in->mu);
	}
	put(in, e);
	return err;
}

sb_err *sbs_exec_inputs_resize(sbs_exec_inputs *in, const char *lease_id, const char *exec_id,
                               unsigned rows, unsigned cols)
{
	input *e = NULL;
	sb_err *err = get(in, lease_id, exec_id, &e);
	if (err)
		return err;
	char what[160];
	snprintf(what, sizeof what, "exec %s", exec_id);
	err = e->tty ? sb_sandbox_tty_resize(e->fd, what, rows, cols)
	             : sb_err_new(SB_E_INVAL, "exec %s has no terminal (start it with \"tty\")",
	                          exec_id);
	put(in, e);
	return err;
}
