/* `sandbar serve`: replaced by the sandbar-serve program (serve_main.c) with the same
 * arguments and process id, so a supervisor that started `sandbar serve` signals the daemon
 * itself. Found like sandbar-init: $SANDBAR_SERVE, beside this program (the build tree), in
 * <prefix>/libexec/sandbar/ relative to it (an installed tree), then the path baked in at
 * install. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static char *candidate_beside_exe(const char *rel)
{
	char *exe = realpath("/proc/self/exe", NULL);
	char *slash = exe ? strrchr(exe, '/') : NULL;
	char *c = NULL;
	if (slash) {
		*slash = '\0';
		c = sb_strfmt("%s/%s", exe, rel);
	}
	free(exe);
	return c;
}

char *cli_serve_program(void)
{
	const char *env = getenv("SANDBAR_SERVE");
	if (env && *env)
		return sb_xstrdup(env);
	static const char *const rel[] = {"sandbar-serve", "../libexec/sandbar/sandbar-serve"};
	for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) {
		char *c = candidate_beside_exe(rel[i]);
		if (c && access(c, X_OK) == 0)
			return c;
		free(c);
	}
	return sb_xstrdup(SANDBAR_SERVE_INSTALL_PATH);
}

int cmd_serve_exec(int argc, char **argv)
{
	(void)argc;
	char *prog = cli_serve_program();
	/* what ps shows, as before the daemon had a program of its own: `pgrep -f 'sandbar
	 * serve'` still finds it */
	argv[0] = "sandbar serve";
	execv(prog, argv);
	int e = errno;
	int rc = cli_fail("serve",
	                  "cannot start the daemon program %s: %s (set SANDBAR_SERVE to "
	                  "its path, or reinstall sandbar)",
	                  prog, strerror(e));
	free(prog);
	return rc;
}
