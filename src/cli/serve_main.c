/* sandbar-serve: the daemon's program. `sandbar serve ARGS` execs it (serve_exec.c), so that the
 * sandbar program itself links neither libmicrohttpd nor SQLite: their dependency trees would
 * cost every other command's start. argv[0] is "sandbar serve" (what ps shows); cmd_serve reads
 * its options from argv[1] on. */
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int main(int argc, char **argv)
{
	/* `sandbar doctor` asks for the HTTP library this program was built with. */
	if (argc == 2 && !strcmp(argv[1], "--libmicrohttpd-info")) {
		const char *v = MHD_get_version();
		printf("%s%s%s\n", v ? v : "?",
		       MHD_is_feature_supported(MHD_FEATURE_TLS) ? ", TLS" : ", no TLS",
		       MHD_is_feature_supported(MHD_FEATURE_EPOLL) ? ", epoll" : "");
		return 0;
	}
	return cmd_serve(argc, argv);
}
