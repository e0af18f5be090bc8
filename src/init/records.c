/* sandbar-init: writing the status records (status.json) on a thread of their own.
 *
 * A record is a temp file and a rename in the exec's spool directory (made if missing): on a
 * busy disk that takes milliseconds, during which a single-threaded init would answer no
 * request and notice no exit. The main loop hands finished texts to this thread through a
 * pipe (in order, so an exec's running record precedes its final one) and learns of each
 * completion through another; an exec stays in init's table, answering status requests from
 * memory, until its records are on disk.
 */
#include "init.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct record {
	sbi_exec *x; /* stays alive while x->pending_records > 0 */
	int spool_fd;
	char id[65];
	size_t len;
	char text[512];
} record;

static int jobs[2] = {-1, -1}, done[2] = {-1, -1};

static bool read_ptr(int fd, record **r)
{
	size_t got = 0;
	while (got < sizeof *r) {
		ssize_t n = read(fd, (char *)r + got, sizeof *r - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

static void write_ptr(int fd, record *r)
{
	size_t put = 0;
	while (put < sizeof r) {
		ssize_t n = write(fd, (const char *)&r + put, sizeof r - put);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			sbi_log("record queue: %s", strerror(errno));
			return;
		}
		put += (size_t)n;
	}
}

static void write_record(const record *r)
{
	if (mkdirat(r->spool_fd, r->id, 0700) < 0 && errno != EEXIST) {
		sbi_log("exec %s: creating its spool directory: %s", r->id, strerror(errno));
		return;
	}
	int dir = openat(r->spool_fd, r->id, O_DIRECTORY | O_PATH | O_CLOEXEC);
	int fd = dir < 0 ? -1
	                 : openat(dir, "status.json.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	                          0600);
	if (fd < 0) {
		sbi_log("exec %s: cannot write status: %s", r->id, strerror(errno));
		if (dir >= 0)
			close(dir);
		return;
	}
	size_t put = 0;
	while (put < r->len) {
		ssize_t n = write(fd, r->text + put, r->len - put);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			sbi_log("exec %s: writing status: %s", r->id, strerror(errno));
			break;
		}
		put += (size_t)n;
	}
	close(fd);
	if (put == r->len && renameat(dir, "status.json.tmp", dir, "status.json") < 0)
		sbi_log("exec %s: renaming status: %s", r->id, strerror(errno));
	close(dir);
}

static void *writer(void *arg)
{
	(void)arg;
	record *r;
	while (read_ptr(jobs[0], &r)) {
		write_record(r);
		write_ptr(done[1], r);
	}
	return NULL;
}

int sbi_records_start(void)
{
	if (pipe2(jobs, O_CLOEXEC) < 0 || pipe2(done, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	pthread_t th;
	int rc = pthread_create(&th, NULL, writer, NULL);
	if (rc != 0) {
		errno = rc;
		return -1;
	}
	pthread_detach(th);
	return done[0];
}

void sbi_records_put(const sbi_state *st, sbi_exec *x, const char *text, size_t len)
{
	record *r = calloc(1, sizeof *r);
	if (!r || len > sizeof r->text) {
		sbi_log("exec %s: cannot queue its status record", x->id);
		free(r);
		return;
	}
	r->x = x;
	r->spool_fd = st->spool_fd;
	snprintf(r->id, sizeof r->id, "%s", x->id);
	memcpy(r->text, text, len);
	r->len = len;
	x->pending_records++;
	write_ptr(jobs[1], r);
}

void sbi_records_reap(void)
{
	record *r;
	/* done[0] is non-blocking: a pointer is written whole (8 bytes < PIPE_BUF) */
	while (read(done[0], &r, sizeof r) == (ssize_t)sizeof r) {
		r->x->pending_records--;
		free(r);
	}
}
