/* `sandbar serve`: replaced by the sandbar-serve program (serve_main.c) with the same
 * arguments and process id, so a supervisor that started `sandbar serve` signals the daemon
 * itself. Found like sandbar-init (sb_helper_program): $SANDBAR_SERVE, beside this program (the
 * build tree), in <prefix>/libexec/sandbar/ relative to it (an installed tree), then the path
 * baked in at install. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

char *cli_serve_program(void)
{
	return sb_helper_program("SANDBAR_SERVE", "sandbar-serve", NULL,
	                         SANDBAR_SERVE_INSTALL_PATH);
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
