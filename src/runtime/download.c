/* Downloading one file through remote commands (spec §2.3): a `wc -c` size probe (a byte limit
 * rejects before any content is read), then `dd bs=3145728 skip=i count=1 | base64` chunks so
 * that no single command prints more than ~4.2 MiB, decoded as they stream in and written at
 * their offsets (two chunks in flight), each checked against the size the probe announced.
 */
#include "rt.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* stdout of a chunk is consumed by the callback; the kept tail only feeds error messages. */
#define CHUNK_OUTPUT_CAP (64u * 1024u)

typedef struct chunk_sink {
	sb_b64dec dec;
	sb_buf data;
	sb_err *err;
} chunk_sink;

static sb_err *on_chunk_output(void *ud, sb_stream stream, const char *data, size_t len)
{
	chunk_sink *k = ud;
	if (stream != SB_STREAM_STDOUT || k->err)
		return NULL;
	k->err = sb_b64dec_update(&k->dec, data, len, &k->data);
	if (k->data.len > SB_RT_DD_BS && !k->err)
		k->err = sb_err_new(SB_E_PROTOCOL, "a download chunk decoded to more than %u bytes",
		                    SB_RT_DD_BS);
	return k->err ? sb_err_new(k->err->code, "%s", k->err->msg) : NULL;
}

static sb_err *probe_size(const sb_rt_ctx *c, const char *path, uint64_t *size)
{
	sb_buf s = SB_BUF_INIT;
	sb_buf_appends(&s, "wc -c < ");
	sb_shell_quote(&s, path);
	sb_exec_result res;
	sb_exec_result_init(&res);
	sb_err *err = sb_rt_run(c, sb_buf_cstr(&s), NULL, NULL, CHUNK_OUTPUT_CAP, &res);
	if (!err) {
		/* wc pads with spaces on some systems (BSD, busybox): trim before parsing. */
		const char *b = sb_buf_cstr(&res.out);
		while (*b == ' ' || *b == '\t')
			b++;
		char *t = sb_xstrdup(b);
		size_t n = strlen(t);
		while (n && (t[n - 1] == '\n' || t[n - 1] == ' ' || t[n - 1] == '\r'))
			t[--n] = '\0';
		int64_t v;
		sb_err *perr = sb_parse_int64(t, 0, INT64_MAX, &v);
		if (perr) {
			sb_err_free(perr);
			err = sb_err_new(SB_E_PROTOCOL,
			                 "Could not determine remote file size for %s "
			                 "(wc -c printed \"%.80s\")",
			                 path, t);
		} else {
			*size = (uint64_t)v;
		}
		free(t);
	}
	sb_exec_result_deinit(&res);
	sb_buf_deinit(&s);
	return err;
}

static sb_err *read_chunk(const sb_rt_ctx *c, const char *path, uint64_t i, sb_buf *out)
{
	sb_buf s = SB_BUF_INIT;
	sb_buf_appends(&s, "dd if=");
	sb_shell_quote(&s, path);
	sb_buf_appendf(&s, " bs=%u skip=%" PRIu64 " count=1 2>/dev/null | base64", SB_RT_DD_BS, i);
	chunk_sink k;
	sb_b64dec_init(&k.dec);
	k.data = *out;
	k.err = NULL;
	sb_exec_callbacks cb = {.on_output = on_chunk_output, .ud = &k};
	sb_err *err = sb_rt_run(c, sb_buf_cstr(&s), NULL, &cb, CHUNK_OUTPUT_CAP, NULL);
	if (k.err) {
		sb_err_free(err);
		err = sb_err_prefix(k.err, "decoding download chunk %" PRIu64 " of %s", i, path);
	} else if (!err) {
		err = sb_b64dec_final(&k.dec, &k.data);
		if (err)
			err = sb_err_prefix(err, "decoding download chunk %" PRIu64 " of %s", i,
			                    path);
	}
	*out = k.data;
	sb_buf_deinit(&s);
	return err;
}

/* Chunks are independent commands, so two run at once: one on the caller's thread (which alone
 * reports progress, as the sinks expect) and one on a helper thread. That overlaps one
 * command's process start-up and transfer with the other's decoding. */
#define DOWNLOAD_WORKERS 2

typedef struct dl_shared {
	const sb_rt_ctx *c;
	const char *path;
	int out_fd;
	uint64_t size, nchunks;
	pthread_mutex_t mu;
	uint64_t next, done;
	sb_err *err;
} dl_shared;

static bool take_chunk(dl_shared *s, uint64_t *i)
{
	pthread_mutex_lock(&s->mu);
	bool ok = !s->err && s->next < s->nchunks;
	if (ok)
		*i = s->next++;
	pthread_mutex_unlock(&s->mu);
	return ok;
}

static sb_err *pwrite_all(int fd, const char *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return sb_err_sys(errno, "storing a download chunk");
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return NULL;
}

/* Fetch chunk i; every chunk but the last must be exactly SB_RT_DD_BS bytes. */
static sb_err *fetch_chunk(dl_shared *s, uint64_t i, sb_buf *chunk)
{
	uint64_t off = i * SB_RT_DD_BS;
	uint64_t want = s->size - off < SB_RT_DD_BS ? s->size - off : SB_RT_DD_BS;
	sb_buf_clear(chunk);
	sb_err *err = read_chunk(s->c, s->path, i, chunk);
	if (!err && chunk->len != want)
		err = sb_err_new(SB_E_PROTOCOL,
		                 "Remote file read was truncated for %s: chunk %" PRIu64
		                 " has %zu of "
		                 "%" PRIu64 " bytes (did the file change during the read?)",
		                 s->path, i, chunk->len, want);
	if (!err)
		err = pwrite_all(s->out_fd, chunk->data, chunk->len, off);
	pthread_mutex_lock(&s->mu);
	if (err && !s->err)
		s->err = err;
	else if (err)
		sb_err_free(err);
	else
		s->done += chunk->len;
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void *dl_worker(void *arg)
{
	dl_shared *s = arg;
	sb_buf chunk = SB_BUF_INIT;
	uint64_t i;
	while (take_chunk(s, &i))
		fetch_chunk(s, i, &chunk);
	sb_buf_deinit(&chunk);
	return NULL;
}

sb_err *sb_rt_download(const sb_rt_ctx *c, const char *path, int64_t max_bytes, int out_fd,
                       uint64_t *size_out, sb_rt_progress *p)
{
	uint64_t size = 0;
	sb_err *err = probe_size(c, path, &size);
	if (err)
		return err;
	if (max_bytes > 0 && size > (uint64_t)max_bytes) {
		err = sb_err_new(SB_E_FILE_TOO_LARGE,
		                 "Remote file %s is %" PRIu64 " bytes, exceeding the %" PRId64
		                 " byte limit",
		                 path, size, max_bytes);
		err->actual_bytes = size > INT64_MAX ? INT64_MAX : (int64_t)size;
		err->limit_bytes = max_bytes;
		return err;
	}
	sb_rt_progress_report(p, 0, size);
	dl_shared s = {
	    .c = c,
	    .path = path,
	    .out_fd = out_fd,
	    .size = size,
	    .nchunks = (size + SB_RT_DD_BS - 1) / SB_RT_DD_BS,
	};
	pthread_mutex_init(&s.mu, NULL);
	pthread_t helpers[DOWNLOAD_WORKERS - 1];
	size_t nhelpers = 0;
	for (size_t k = 0; k + 1 < DOWNLOAD_WORKERS && k + 1 < s.nchunks; k++) {
		if (pthread_create(&helpers[nhelpers], NULL, dl_worker, &s) != 0)
			break; /* fewer workers only means slower */
		nhelpers++;
	}
	sb_buf chunk = SB_BUF_INIT;
	uint64_t i;
	while (take_chunk(&s, &i)) {
		fetch_chunk(&s, i, &chunk);
		pthread_mutex_lock(&s.mu);
		uint64_t done = s.done;
		pthread_mutex_unlock(&s.mu);
		sb_rt_progress_report(p, done, size);
	}
	sb_buf_deinit(&chunk);
	for (size_t k = 0; k < nhelpers; k++)
		pthread_join(helpers[k], NULL);
	pthread_mutex_destroy(&s.mu);
	err = s.err;
	if (err) {
		sb_rt_progress_fail(p);
		return err;
	}
	sb_rt_progress_complete(p, size, size);
	if (size_out)
		*size_out = size;
	return NULL;
}
