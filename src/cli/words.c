/* Splits a command prefix given as one string ("ssh -T 'my host' --") into words the way a
 * POSIX shell would for quotes and backslashes, without expansions of any kind. Bounded: at
 * most 256 words of at most 4096 bytes each. */
#include "words.h"

#include <stdlib.h>
#include <string.h>

#define WORDS_MAX 256
#define WORD_MAX 4096

sb_err *cli_split_words(const char *s, char ***out)
{
	*out = NULL;
	char **words = NULL;
	size_t nwords = 0;
	sb_buf w = SB_BUF_INIT;
	bool in_word = false;
	sb_err *err = NULL;
	for (const char *p = s;; p++) {
		char c = *p;
		if (c == '\0' || c == ' ' || c == '\t' || c == '\n') {
			if (in_word) {
				if (++nwords > WORDS_MAX) {
					err = sb_err_new(SB_E_TOO_LARGE, "more than %d words",
					                 WORDS_MAX);
					break;
				}
				sb_strv_push(&words, sb_buf_cstr(&w));
				sb_buf_clear(&w);
				in_word = false;
			}
			if (c == '\0')
				break;
			continue;
		}
		in_word = true;
		if (c == '\'') {
			const char *end = strchr(p + 1, '\'');
			if (!end) {
				err = sb_err_new(SB_E_INVAL, "unterminated single quote");
				break;
			}
			sb_buf_append(&w, p + 1, (size_t)(end - p - 1));
			p = end;
		} else if (c == '"') {
			p++;
			while (*p && *p != '"') {
				/* Inside double quotes a backslash escapes only these. */
				if (*p == '\\' && p[1] && strchr("\"\\$`", p[1]))
					p++;
				sb_buf_appendc(&w, *p++);
			}
			if (*p != '"') {
				err = sb_err_new(SB_E_INVAL, "unterminated double quote");
				break;
			}
		} else if (c == '\\') {
			if (p[1] == '\0') {
				err = sb_err_new(SB_E_INVAL, "trailing backslash");
				break;
			}
			sb_buf_appendc(&w, *++p);
		} else {
			sb_buf_appendc(&w, c);
		}
		if (w.len > WORD_MAX) {
			err =
			    sb_err_new(SB_E_TOO_LARGE, "a word is longer than %d bytes", WORD_MAX);
			break;
		}
	}
	sb_buf_deinit(&w);
	if (err) {
		sb_strv_free(words);
		return err;
	}
	if (!words)
		words = sb_xcalloc(1, sizeof *words);
	*out = words;
	return NULL;
}
