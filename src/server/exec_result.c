/* A finished exec's result as a JSON document streamed from the spool (see exec_result.h).
 *
 * The document is a list of pieces: literal text, or the bytes of a stream. Reading encodes
 * straight into the caller's buffer: literals are copied, a stream is read from the spool a
 * big window at a time and encoded in one pass (UTF-8 repair and JSON escaping together, plain
 * ASCII runs a word at a time; or base64). Bytes that cannot be encoded yet (an incomplete
 * UTF-8 sequence, base64's 1-2 leftover bytes) stay at the end of the window and move to its
 * start when it is refilled. A character that does not fit the caller's buffer goes through a
 * few bytes of overflow. Memory: the window, whatever the output's size.
 */
#include "exec_result.h"

#include <stdlib.h>
#include <string.h>

#define WINDOW (256u * 1024u) /* spool bytes read at once */
#define UNIT_MAX 8            /* the most one encoded character takes (6: \u00XX) */

typedef struct piece {
	bool is_stream;
	sb_buf text; /* literal */
	sb_stream stream;
	uint64_t len;
	bool b64;
	bool check; /* validate the stream's UTF-8 while reading it (into utf8[stream]) */
	/* Written only when the stream's validity, found by an earlier checked piece, is this:
	 * 1 valid, -1 not (0: always written). */
	int8_t when;
	sb_stream when_stream;
} piece;

struct sbs_result_json {
	sbs_exec *x;
	piece *pieces;
	size_t npieces, next; /* next: the piece being written */
	size_t lit;           /* bytes of the current literal written */
	uint64_t off;         /* bytes of the current stream read from the spool */
	char *win;            /* spool bytes read, [wpos, wlen) not yet encoded */
	size_t wpos, wlen;
	char over[UNIT_MAX]; /* encoded, not yet handed out: [opos, olen) */
	size_t opos, olen;
	/* UTF-8 validity per stream, found while a checked piece reads it: 1 valid, -1 not, 0
	 * not yet; checked: a checked piece of the stream is in the document. */
	int8_t utf8[3]; /* indexed by sb_stream (1 stdout, 2 stderr) */
	bool checked[3];
	char vc[4]; /* an incomplete sequence at the end of the bytes checked so far */
	size_t vclen;
	bool vbad;
};

sbs_result_json *sbs_result_json_new(sbs_exec *x)
{
	sbs_result_json *w = sb_xcalloc(1, sizeof *w);
	w->x = x;
	w->win = sb_xmalloc(WINDOW);
	return w;
}

void sbs_result_json_free(sbs_result_json *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->npieces; i++)
		sb_buf_deinit(&w->pieces[i].text);
	free(w->pieces);
	free(w->win);
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

/* Check the next n bytes of a checked piece's stream (final: its last); the verdict goes to
 * utf8[] after the last. A sequence split between two reads waits in vc. */
static void check_utf8(sbs_result_json *w, const piece *p, const char *d, size_t n, bool final)
{
	size_t i = 0, used = 0;
	if (!w->vbad && w->vclen) {
		/* complete the carried sequence with at most 3 more bytes (a sequence is <= 4) */
		char t[8];
		size_t take = n < 3 ? n : 3;
		memcpy(t, w->vc, w->vclen);
		memcpy(t + w->vclen, d, take);
		size_t tl = w->vclen + take;
		if (!sb_utf8_valid_span(t, tl, final && take == n, &used)) {
			w->vbad = true;
		} else if (used < w->vclen) { /* still incomplete: all of d is in t */
			memmove(w->vc, t + used, tl - used);
			w->vclen = tl - used;
			i = n;
		} else {
			i = used - w->vclen;
			w->vclen = 0;
		}
	}
	if (!w->vbad && i < n) {
		if (!sb_utf8_valid_span(d + i, n - i, final, &used)) {
			w->vbad = true;
		} else {
			w->vclen = n - i - used;
			memcpy(w->vc, d + i + used, w->vclen);
		}
	}
	if (final) {
		w->utf8[p->stream] = w->vbad ? -1 : 1;
		w->vbad = false;
		w->vclen = 0;
	}
}

/* Keep the window's unencoded tail, then fill the rest from the spool at w->off. */
static sb_err *refill(sbs_result_json *w, const piece *p)
{
	size_t keep = w->wlen - w->wpos;
	memmove(w->win, w->win + w->wpos, keep);
	w->wpos = 0;
	w->wlen = keep;
	uint64_t left = p->len - w->off;
	size_t want = WINDOW - keep;
	if (left < want)
		want = (size_t)left;
	size_t got = 0;
	sb_err *err = sbs_exec_read(w->x, p->stream, w->off, w->win + keep, want, &got);
	if (err)
		return err;
	if (got == 0 && want > 0)
		return sb_err_new(
		    SB_E_IO, "the %s spool of exec %s ends at byte %llu of %llu announced",
		    p->stream == SB_STREAM_STDOUT ? "stdout" : "stderr", sbs_exec_id(w->x),
		    (unsigned long long)w->off, (unsigned long long)p->len);
	if (p->check)
		check_utf8(w, p, w->win + keep, got, w->off + got == p->len);
	w->off += got;
	w->wlen += got;
	return NULL;
}

/* Is the stream's [0, len) valid UTF-8? Reads it once, through the window. */
static sb_err *stream_is_utf8(sbs_result_json *w, const piece *p, bool *ok)
{
	sb_err *err = NULL;
	*ok = true;
	w->off = w->wpos = w->wlen = 0;
	while (*ok && !err && (w->off < p->len || w->wpos < w->wlen)) {
		if (w->off < p->len && (err = refill(w, p)))
			break;
		size_t used = 0;
		bool final = w->off == p->len;
		*ok = sb_utf8_valid_span(w->win + w->wpos, w->wlen - w->wpos, final, &used);
		w->wpos += used;
		if (final)
			break;
	}
	w->off = w->wpos = w->wlen = 0;
	return err;
}

sb_err *sbs_result_json_stream(sbs_result_json *w, sb_stream s, uint64_t len, sbs_text_enc enc,
                               const char *suffix)
{
	if (enc == SBS_TEXT_STRICT && w->checked[s]) {
		/* An earlier piece finds the validity while it reads the stream: decide then. */
		piece *p = add_piece(w);
		sb_buf_appends(&p->text, "null");
		p->when = -1;
		p->when_stream = s;
		p = add_piece(w);
		sb_buf_appendc(&p->text, '"');
		p->when = 1;
		p->when_stream = s;
		p = add_piece(w);
		p->is_stream = true;
		p->stream = s;
		p->len = len;
		p->when = 1;
		p->when_stream = s;
		p = add_piece(w);
		if (suffix)
			sb_json_escape(suffix, strlen(suffix), &p->text);
		sb_buf_appendc(&p->text, '"');
		p->when = 1;
		p->when_stream = s;
		return NULL;
	}
	if (enc == SBS_TEXT_STRICT) {
		piece probe = {.is_stream = true, .stream = s, .len = len};
		bool ok = false;
		sb_err *err = stream_is_utf8(w, &probe, &ok);
		if (err)
			return err;
		if (!ok) {
			sbs_result_json_text(w, "null");
			return NULL;
		}
	}
	sbs_result_json_text(w, "\"");
	piece *p = add_piece(w);
	p->is_stream = true;
	p->stream = s;
	p->len = len;
	p->b64 = enc == SBS_TEXT_BASE64;
	if (p->b64 && !w->checked[s]) {
		p->check = true;
		w->checked[s] = true;
		if (len == 0)
			w->utf8[s] = 1;
	}
	p = add_piece(w);
	if (suffix)
		sb_json_escape(suffix, strlen(suffix), &p->text);
	sb_buf_appendc(&p->text, '"');
	return NULL;
}

/* Encode window bytes into out (room bytes): the count written. *more: the window must be
 * refilled before anything else can be encoded. */
static size_t encode(sbs_result_json *w, const piece *p, char *out, size_t room, bool *more)
{
	bool final = w->off == p->len;
	const char *in = w->win + w->wpos;
	size_t n = w->wlen - w->wpos, used = 0, o = 0;
	if (!p->b64) {
		o = sb_json_escape_utf8(in, n, final, out, room, &used);
	} else {
		size_t groups = n / 3 < room / 4 ? n / 3 : room / 4;
		used = groups * 3;
		o = sb_b64_encode_to(in, used, out);
		if (final && used == n - n % 3 && n % 3 && room - o >= 4) {
			o += sb_b64_encode_to(in + used, n % 3, out + o);
			used = n;
		}
	}
	w->wpos += used;
	/* Nothing encodable left but an incomplete tail (UTF-8 sequence, base64 group). */
	*more = !final && (w->wpos == w->wlen || (o == 0 && used == 0));
	return o;
}

/* Write what fits of the current piece into out (room >= UNIT_MAX, or any for a literal). */
static sb_err *produce(sbs_result_json *w, char *out, size_t room, size_t *wrote)
{
	piece *p = &w->pieces[w->next];
	*wrote = 0;
	if (p->when && w->utf8[p->when_stream] != p->when) {
		w->next++; /* the other form of the value */
		return NULL;
	}
	if (!p->is_stream) {
		size_t n = p->text.len - w->lit;
		if (n > room)
			n = room;
		memcpy(out, p->text.data + w->lit, n);
		w->lit += n;
		*wrote = n;
		if (w->lit == p->text.len) {
			w->lit = 0;
			w->next++;
		}
		return NULL;
	}
	if (w->off == p->len && w->wpos == w->wlen) {
		w->off = w->wpos = w->wlen = 0;
		w->next++;
		return NULL;
	}
	if (w->wpos == w->wlen && w->off < p->len) {
		sb_err *err = refill(w, p);
		if (err)
			return err;
	}
	bool more = false;
	*wrote = encode(w, p, out, room, &more);
	if (more && *wrote == 0)
		return refill(w, p);
	return NULL;
}

sb_err *sbs_result_json_read(sbs_result_json *w, char *buf, size_t max, size_t *got)
{
	*got = 0;
	while (*got < max) {
		if (w->opos < w->olen) {
			size_t n = w->olen - w->opos;
			if (n > max - *got)
				n = max - *got;
			memcpy(buf + *got, w->over + w->opos, n);
			w->opos += n;
			*got += n;
			continue;
		}
		if (w->next == w->npieces) {
			sbs_exec_spool_read(w->x); /* only buffered bytes remain */
			break;
		}
		size_t room = max - *got, n = 0;
		sb_err *err = NULL;
		if (room >= UNIT_MAX || !w->pieces[w->next].is_stream) {
			err = produce(w, buf + *got, room, &n);
			*got += n;
		} else {
			err = produce(w, w->over, sizeof w->over, &n);
			w->opos = 0;
			w->olen = n;
		}
		if (err)
			return err;
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
