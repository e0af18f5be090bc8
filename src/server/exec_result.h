/* A finished exec's complete result as one JSON document, produced piece by piece: literal
 * JSON text around the command's stdout and stderr, which are read from the spool in chunks
 * and encoded on the way (as text, or base64). Memory stays bounded whatever the output's size,
 * so the JSON exec routes of both protocols return every byte instead of a tail.
 */
#ifndef SB_SERVER_EXEC_RESULT_H
#define SB_SERVER_EXEC_RESULT_H

#include "execs.h"

/* How a stream's bytes become a JSON value. */
typedef enum sbs_text_enc {
	SBS_TEXT_REPAIRED, /* a string; invalid UTF-8 becomes U+FFFD (the bridge protocol) */
	SBS_TEXT_STRICT,   /* a string, or null when the bytes are not valid UTF-8 (native) */
	SBS_TEXT_BASE64,   /* a string of the bytes in base64 */
} sbs_text_enc;

typedef struct sbs_result_json sbs_result_json;

/* A writer over x, which must have finished; borrows x, which must outlive the writer. */
sbs_result_json *sbs_result_json_new(sbs_exec *x);
void sbs_result_json_free(sbs_result_json *w);
/* Append literal JSON text. */
void sbs_result_json_text(sbs_result_json *w, const char *text);
/* Append bytes [0, len) of a stream as a JSON value in enc; suffix (may be NULL) is appended
 * to the string's text (it must be valid UTF-8; not with SBS_TEXT_BASE64). SBS_TEXT_STRICT
 * must decide between a string and null: after the stream's SBS_TEXT_BASE64 value, which
 * checks the bytes as it encodes them, it decides when it is written; otherwise it reads the
 * stream once here. */
sb_err *sbs_result_json_stream(sbs_result_json *w, sb_stream s, uint64_t len, sbs_text_enc enc,
                               const char *suffix);
/* Write up to max bytes of the document into buf: the count, 0 at the end. A spool that
 * cannot be read, or that holds fewer bytes than announced, is an error (the document would
 * be wrong, so the caller must cut the response). */
sb_err *sbs_result_json_read(sbs_result_json *w, char *buf, size_t max, size_t *got);

/* The operator limit on one stream of a JSON result: SB_E_TOO_LARGE naming the stream and the
 * limit when a finished exec's output is over it, or SB_E_IO when the spool itself dropped
 * output (the result could not be complete). */
sb_err *sbs_result_check_size(const sb_sandbox_exec_status *st, uint64_t max_output);

#endif
