/* Secret references: where an operator's config or a callback definition says a credential
 * lives (`env:VAR` or `file:PATH`), read at the moment it is needed, so the value itself is
 * never written into a config, the lease store or a log. */
#include <sandbar/base.h>

#include <stdlib.h>
#include <string.h>

sb_err *sb_secret_ref_read(const char *ref, size_t max, char **out)
{
	*out = NULL;
	if (strncmp(ref, "env:", 4) == 0) {
		const char *v = getenv(ref + 4);
		if (!v || !*v)
			return sb_err_new(SB_E_INVAL, "%s is not set in this process's environment",
			                  ref);
		if (strlen(v) > max)
			return sb_err_new(SB_E_TOO_LARGE, "%s holds more than %zu bytes", ref, max);
		*out = sb_xstrdup(v);
		return NULL;
	}
	if (strncmp(ref, "file:", 5) == 0) {
		sb_buf b = SB_BUF_INIT;
		sb_err *err = sb_read_file(ref + 5, max, &b);
		if (err) {
			sb_buf_deinit(&b);
			return sb_err_prefix(err, "reading %s", ref);
		}
		/* a trailing newline is the editor's, not the secret's */
		while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
			b.data[--b.len] = '\0';
		*out = sb_xstrdup(sb_buf_cstr(&b));
		memset(b.data, 0, b.len);
		sb_buf_deinit(&b);
		return NULL;
	}
	return sb_err_new(SB_E_INVAL, "\"%s\" must be env:VAR or file:PATH", ref);
}
