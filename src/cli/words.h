/* Shell-like word splitting for command prefixes (see words.c). */
#ifndef SB_CLI_WORDS_H
#define SB_CLI_WORDS_H

#include <sandbar/base.h>

/* Split s into a NULL-terminated vector (caller frees with sb_strv_free). */
sb_err *cli_split_words(const char *s, char ***out);

#endif
