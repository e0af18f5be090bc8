/* The daemon's listening sockets: TCP on "host:port" or "[v6]:port", and a unix socket (mode
 * 0660; a stale socket of a dead daemon is replaced, a live daemon's never). */
#include "server_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* "host:port", "[v6]:port" */
sb_err *sbs_listen_tcp(const char *spec, int *fd_out, int *port_out)
{
	char *host = NULL, *port = NULL;
	if (spec[0] == '[') {
		const char *e = strchr(spec, ']');
		if (!e || e[1] != ':')
			return sb_err_new(SB_E_INVAL, "bad listen address \"%s\": use [v6]:port",
			                  spec);
		host = sb_xstrndup(spec + 1, (size_t)(e - spec - 1));
		port = sb_xstrdup(e + 2);
	} else {
		const char *c = strrchr(spec, ':');
		if (!c)
			return sb_err_new(SB_E_INVAL, "bad listen address \"%s\": use HOST:PORT",
			                  spec);
		host = sb_xstrndup(spec, (size_t)(c - spec));
		port = sb_xstrdup(c + 1);
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
	sb_err *err = NULL;
	if (rc) {
		err = sb_err_new(SB_E_INVAL, "listen address \"%s\": %s", spec, gai_strerror(rc));
		goto out;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = sb_err_sys(errno, "socket for %s", spec);
		goto out;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 512) < 0) {
		err = sb_err_sys(errno, "listening on %s", spec);
		close(fd);
		goto out;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                           : ((struct sockaddr_in *)&ss)->sin_port);
	*fd_out = fd;
out:
	if (ai)
		freeaddrinfo(ai);
	free(host);
	free(port);
	return err;
}

sb_err *sbs_listen_unix(const char *path, int *fd_out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path)
		return sb_err_new(SB_E_INVAL, "socket path %s is longer than %zu bytes", path,
		                  sizeof sa.sun_path - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return sb_err_sys(errno, "socket for %s", path);
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			close(fd);
			return sb_err_new(SB_E_EXISTS, "%s exists and is not a socket", path);
		}
		/* Remove a stale socket of an earlier run, never a live one. */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
		if (probe >= 0)
			close(probe);
		if (live) {
			close(fd);
			return sb_err_new(SB_E_EXISTS,
			                  "another daemon is listening on %s; stop it or choose "
			                  "another --socket",
			                  path);
		}
		unlink(path);
	}
	mode_t old = umask(0117);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (rc < 0 || listen(fd, 512) < 0) {
		sb_err *err = sb_err_sys(errno, "listening on %s", path);
		close(fd);
		return err;
	}
	*fd_out = fd;
	return NULL;
}
