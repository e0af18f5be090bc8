/* The sync tests' counting command prefix: root/count-prefix appends one line to root/calls per
 * invocation and then execs its arguments (an argv prefix: the runner appends sh -c <line>), as
 * ssh would run them; when root/path exists it is the far side's whole PATH (to take a tool
 * away). */
#ifndef SB_SYNC_COUNTING_H
#define SB_SYNC_COUNTING_H

#include "clitest.h"

/* The wrapper's path (malloc'd); *calls_out: the file it counts in (malloc'd). */
char *synct_wrapper(clit *t, char **calls_out);
/* Lines in path (0 when it does not exist). */
int synct_count_lines(const char *path);

/* root/path: every tool of /usr/bin and /bin but the one named drop (the wrapper then runs the
 * far side with that PATH). Freed by the caller with sbt_rmtree. */
char *synct_far_path_without(clit *t, const char *drop);

#endif
