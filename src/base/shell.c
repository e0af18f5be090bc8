/* POSIX sh quoting. Single quotes preserve every byte except the quote itself, which is closed,
 * emitted inside double quotes and reopened: ' becomes '"'"'. This is the only quoting any
 * remote script in sandbar uses, so there is one place to get it right. */
#include <sandbar/base.h>

#include <string.h>

void sb_shell_quote(sb_buf *out, const char *s)
{
	sb_buf_appendc(out, '\'');
	for (const char *p = s; *p; p++) {
		if (*p == '\'')
			sb_buf_appends(out, "'\"'\"'");
		else
			sb_buf_appendc(out, *p);
	}
	sb_buf_appendc(out, '\'');
}

char *sb_shell_quoted(const char *s)
{
	sb_buf b = SB_BUF_INIT;
	sb_shell_quote(&b, s);
	return sb_buf_steal(&b, NULL);
}

char *sb_shell_join(char *const *argv)
{
	sb_buf b = SB_BUF_INIT;
	for (size_t i = 0; argv && argv[i]; i++) {
		if (i)
			sb_buf_appendc(&b, ' ');
		sb_shell_quote(&b, argv[i]);
	}
	return sb_buf_steal(&b, NULL);
}
