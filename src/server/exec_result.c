/* A finished exec's result as a JSON document streamed from the spool (see exec_result.h).
 *
 * The document is a list of pieces, literal text or a stream of the exec. Reading produces one
 * staging chunk at a time: a literal whole, a stream 48 KiB of spool at a time (a multiple of
 * 3, so base64 needs no carry within a stream but at its end), encoded into the staging buffer,
 * which the caller drains. UTF-8 sequences split between two spool reads wait in a carry.
 */
#include "server/exec_result.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define SPOOL_CHUNK (48u * 1024u)

typedef struct piece {
	bool is_stream;
	sb_buf text; /* literal, or the stream's suffix */
	sb_stream stream;
	uint64_t len;
	sbs_text_enc enc;
} piece;

struct sbs_result_json {
	sbs_exec *x;
	piece *pieces;
	size_t npieces, next; /* next: the piece the next staging chunk comes from */
	bool in_stream;       /* the current stream piece has begun (its '"' is out) */
	uint64_t off;         /* read position in the current stream */
	sb_buf carry;         /* an incomplete UTF-8 sequence, or base64's 1-2 leftover bytes */
	sb_buf staging;       /* encoded, not yet handed out */
	size_t pos;
	sb_buf scratch;
	char *chunk;
};

sbs_result_json *sbs_result_json_new(sbs_exec *x)
{
	sbs_result_json *w = sb_xcalloc(1, sizeof *w);
	w->x = x;
	w->chunk = sb_xmalloc(SPOOL_CHUNK);
	return w;
}

void sbs_result_json_free(sbs_result_json *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->npieces; i++)
		sb_buf_deinit(&w->pieces[i].text);
	free(w->pieces);
	sb_buf_deinit(&w->carry);
	sb_buf_deinit(&w->staging);
	sb_buf_deinit(&w->scratch);
	free(w->chunk);
	free(w);
}

static piece *add_piece(sbs_result_json *w)
{
	w->pieces = sb_xrealloc(w->pieces, (w->npieces + 1) * sizeof *w->pieces);
	piece *p = &w->pieces[w->npieces++];
	memset(p, 0, sizeof *p);
	return p;
}

void sbs_result_json_text(sbs_result_json *w, const char *text)
{
	piece *p = add_piece(w);
	sb_buf_appends(&p->text, text);
}

static sb_err *read_spool(sbs_result_json *w, sb_stream s, uint64_t off, uint64_t len, size_t *got)
{
	uint64_t left = len - off;
	size_t want = left < SPOOL_CHUNK ? (size_t)left : SPOOL_CHUNK;
	sb_err *err = sbs_exec_read(w->x, s, off, w->chunk, want, got);
	if (err)
		return err;
	if (*got == 0 && want > 0)
		return sb_err_new(SB_E_IO,
		                  "the %s spool of exec %s ends at byte %llu of %llu announced",
		                  s == SB_STREAM_STDOUT ? "stdout" : "stderr", sbs_exec_id(w->x),
		                  (unsigned long long)off, (unsigned long long)len);
	return NULL;
}

/* Is the stream's [0, len) valid UTF-8? Reads it once. */
static sb_err *stream_is_utf8(sbs_result_json *w, sb_stream s, uint64_t len, bool *ok)
{
	sb_buf carry = SB_BUF_INIT;
	sb_err *err = NULL;
	*ok = true;
	for (uint64_t off = 0; off < len && *ok;) {
		size_t got = 0;
		if ((err = read_spool(w, s, off, len, &got)))
			break;
		off += got;
		*ok = sb_utf8_check(&carry, w->chunk, got, off == len);
	}
	if (!err && len == 0)
		*ok = true;
	sb_buf_deinit(&carry);
	return err;
}

sb_err *sbs_result_json_stream(sbs_result_json *w, sb_stream s, uint64_t len, sbs_text_enc enc,
                               const char *suffix)
{
	assert(enc != SBS_TEXT_BASE64 || !suffix);
	if (enc == SBS_TEXT_STRICT) {
		bool ok = false;
		sb_err *err = stream_is_utf8(w, s, len, &ok);
		if (err)
			return err;
		if (!ok) {
			sbs_result_json_text(w, "null");
			return NULL;
		}
	}
	piece *p = add_piece(w);
	p->is_stream = true;
	p->stream = s;
	p->len = len;
	p->enc = enc;
	if (suffix)
		sb_buf_appends(&p->text, suffix);
	return NULL;
}

static void encode_text(sbs_result_json *w, const char *d, size_t n, bool final)
{
	sb_buf_clear(&w->scratch);
	sb_utf8_feed(&w->carry, d, n, final, &w->scratch);
	sb_json_escape(w->scratch.data ? w->scratch.data : "", w->scratch.len, &w->staging);
}

static void encode_b64(sbs_result_json *w, const char *d, size_t n, bool final)
{
	sb_buf_append(&w->carry, d, n);
	size_t whole = final ? w->carry.len : w->carry.len / 3 * 3;
	if (whole == 0)
		return;
	sb_b64_encode(w->carry.data, whole, &w->staging);
	memmove(w->carry.data, w->carry.data + whole, w->carry.len - whole);
	w->carry.len -= whole;
}

/* Produce the next staging chunk from the current piece. */
static sb_err *produce(sbs_result_json *w)
{
	piece *p = &w->pieces[w->next];
	if (!p->is_stream) {
		sb_buf_append(&w->staging, p->text.data, p->text.len);
		w->next++;
		return NULL;
	}
	if (!w->in_stream) {
		w->in_stream = true;
		w->off = 0;
		sb_buf_clear(&w->carry);
		sb_buf_appendc(&w->staging, '"');
	}
	size_t got = 0;
	if (w->off < p->len) {
		sb_err *err = read_spool(w, p->stream, w->off, p->len, &got);
		if (err)
			return err;
		w->off += got;
	}
	bool final = w->off == p->len;
	if (p->enc == SBS_TEXT_BASE64)
		encode_b64(w, w->chunk, got, final);
	else
		encode_text(w, w->chunk, got, final);
	if (final) {
		sb_json_escape(p->text.data ? p->text.data : "", p->text.len, &w->staging);
		sb_buf_appendc(&w->staging, '"');
		w->in_stream = false;
		w->next++;
	}
	return NULL;
}

sb_err *sbs_result_json_read(sbs_result_json *w, char *buf, size_t max, size_t *got)
{
	*got = 0;
	while (*got < max) {
		if (w->pos == w->staging.len) {
			sb_buf_clear(&w->staging);
			w->pos = 0;
			if (w->next == w->npieces)
				break;
			sb_err *err = produce(w);
			if (err)
				return err;
			continue;
		}
		size_t n = w->staging.len - w->pos;
		if (n > max - *got)
			n = max - *got;
		memcpy(buf + *got, w->staging.data + w->pos, n);
		w->pos += n;
		*got += n;
	}
	return NULL;
}

sb_err *sbs_result_check_size(const sb_sandbox_exec_status *st, uint64_t max_output)
{
	const char *names[2] = {"stdout", "stderr"};
	uint64_t sizes[2] = {st->stdout_size, st->stderr_size};
	bool cut[2] = {st->stdout_truncated, st->stderr_truncated};
	for (int i = 0; i < 2; i++) {
		if (cut[i])
			return sb_err_new(SB_E_IO,
			                  "the %s of exec %s passed the sandbox's spool limit and "
			                  "was cut at %llu bytes; no complete result exists",
			                  names[i], st->exec_id, (unsigned long long)sizes[i]);
		if (max_output && sizes[i] > max_output)
			return sb_err_new(SB_E_TOO_LARGE,
			                  "the %s of exec %s is %llu bytes, over the daemon's "
			                  "--max-output limit of %llu bytes per stream; read it "
			                  "with the exec output route, or raise --max-output",
			                  names[i], st->exec_id, (unsigned long long)sizes[i],
			                  (unsigned long long)max_output);
	}
	return NULL;
}
