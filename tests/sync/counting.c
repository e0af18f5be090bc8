/* The counting command prefix of the sync tests (see counting.h). */
#include "counting.h"

#include <stdlib.h>
#include <string.h>

char *synct_wrapper(clit *t, char **calls_out)
{
	char *calls = sbt_path(t->root, "calls");
	char *path = sbt_path(t->root, "path");
	char *script = sb_strfmt("#!/bin/sh\necho call >> '%s'\n"
	                         "if [ -d '%s' ]; then PATH='%s'; export PATH; fi\nexec \"$@\"\n",
	                         calls, path, path);
	sbt_write(t->root, "count-prefix", script, strlen(script), 0755);
	free(script);
	free(path);
	*calls_out = calls;
	return sbt_path(t->root, "count-prefix");
}

int synct_count_lines(const char *path)
{
	char *n = sbt_sh_out("cat '%s' 2>/dev/null | wc -l", path);
	int c = atoi(n);
	free(n);
	return c;
}

/* root/path: every tool of /usr/bin and /bin but the one named drop (the wrapper then runs the
 * far side with that PATH). Freed by the caller with sbt_rmtree. */
char *synct_far_path_without(clit *t, const char *drop)
{
	char *path = sbt_path(t->root, "path");
	int rc = sbt_sh("mkdir -p '%s' && { [ -L /bin ] || ln -sf /bin/* '%s/'; } && "
	                "ln -sf /usr/bin/* '%s/' 2>/dev/null; rm -f '%s/%s'",
	                path, path, path, path, drop);
	assert_int_equal(rc, 0);
	return path;
}
