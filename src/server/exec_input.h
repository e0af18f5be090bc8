/* Input to running execs through the native API (docs/api.md, "Interactive execs"): an exec
 * started with "stdin_stream" or "tty" keeps its stdin (a pipe, or its terminal's master) open
 * here, keyed by lease and exec id, until a client closes it, the exec ends or its lease goes.
 * Clients append with POST .../execs/{exec_id}/stdin (in order; each body is written before
 * the reply, so a command that reads slowly slows the client down) and resize a terminal with
 * POST .../execs/{exec_id}/resize. */
#ifndef SB_SERVER_EXEC_INPUT_H
#define SB_SERVER_EXEC_INPUT_H

#include <stdbool.h>
#include <stdint.h>

#include "execs.h"

/* No progress for this long while writing a body: the command is not reading; 504. */
#define SBS_STDIN_STALL_MS 30000
#define SBS_TTY_TERM_MAX 64

/* The input fields of an exec body: "stdin_stream" (bool) and "tty" (true, or {"rows",
 * "cols", "term"}). SB_E_INVAL naming the field. */
sb_err *sbs_exec_spec_input_from_json(const json_t *body, sbs_exec_spec *out);

typedef struct sbs_exec_inputs sbs_exec_inputs;

sbs_exec_inputs *sbs_exec_inputs_new(void);
void sbs_exec_inputs_free(sbs_exec_inputs *in);
/* Keep fd (consumed) as the stdin of the exec; tty says it is a terminal's master. */
void sbs_exec_inputs_add(sbs_exec_inputs *in, const char *lease_id, const char *exec_id, int fd,
                         bool tty);
/* The exec ended or its lease went: close its stdin (once no write is under way). */
void sbs_exec_inputs_drop(sbs_exec_inputs *in, const char *lease_id, const char *exec_id);
/* Is the exec's input in the table? (After a restart it is not until taken again.) */
bool sbs_exec_inputs_has(sbs_exec_inputs *in, const char *lease_id, const char *exec_id);
/* Append len bytes read from src (a file at its offset) to the exec's stdin, then close it
 * when eof. *written: bytes the command's stdin took. SB_E_NOTFOUND when the exec has no open
 * stdin here; SB_E_TIMEOUT after SBS_STDIN_STALL_MS without progress; SB_E_STATE_LOST when
 * the command's stdin is gone (it exited or closed it). */
sb_err *sbs_exec_inputs_write(sbs_exec_inputs *in, const char *lease_id, const char *exec_id,
                              int src, uint64_t len, bool eof, uint64_t *written);
/* Set the window size of a tty exec. SB_E_NOTFOUND as above, SB_E_INVAL without a terminal. */
sb_err *sbs_exec_inputs_resize(sbs_exec_inputs *in, const char *lease_id, const char *exec_id,
                               unsigned rows, unsigned cols);

#endif
