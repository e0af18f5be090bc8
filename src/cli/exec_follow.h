/* Copies an exec's stdout and stderr from given byte offsets to our stdout and stderr, either
 * what is there now or following until the exec finishes. Shared by `exec` and `logs`. */
#ifndef SB_CLI_EXEC_FOLLOW_H
#define SB_CLI_EXEC_FOLLOW_H

#include <sandbar/sandbox.h>

/* streams: bit 1 stdout, bit 2 stderr. On return *st holds the last status read. */
sb_err *cli_exec_follow(sb_sandbox_exec *x, unsigned streams, uint64_t out_offset,
                        uint64_t err_offset, bool follow, sb_sandbox_exec_status *st);

#endif
