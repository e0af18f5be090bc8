/* File-descriptor I/O that does what callers assume: whole writes and reads despite EINTR and
 * short transfers, bounded whole-file reads, and small fd flag helpers. */
#include <sandbar/base.h>

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

sb_err *sb_write_all(int fd, const void *p, size_t n)
{
	const char *s = p;
	while (n > 0) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return sb_err_sys(errno, "writing to fd %d", fd);
		s += w;
		n -= (size_t)w;
	}
	return NULL;
}

sb_err *sb_read_full(int fd, void *p, size_t n, size_t *got)
{
	char *d = p;
	size_t total = 0;
	while (total < n) {
		ssize_t r = read(fd, d + total, n - total);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			if (got)
				*got = total;
			return sb_err_sys(errno, "reading from fd %d", fd);
		}
		if (r == 0)
			break;
		total += (size_t)r;
	}
	if (got)
		*got = total;
	return NULL;
}

sb_err *sb_read_fd_all(int fd, size_t max, sb_buf *out)
{
	for (;;) {
		sb_buf_reserve(out, 64 * 1024);
		size_t room = out->cap - out->len - 1;
		ssize_t r = read(fd, out->data + out->len, room);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return sb_err_sys(errno, "reading from fd %d", fd);
		if (r == 0) {
			out->data[out->len] = '\0'; /* reserve() does not terminate */
			break;
		}
		out->len += (size_t)r;
		out->data[out->len] = '\0';
		if (out->len > max)
			return sb_err_new(SB_E_TOO_LARGE, "input is over the %zu byte limit", max);
	}
	return NULL;
}

sb_err *sb_read_file(const char *path, size_t max, sb_buf *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sb_err_sys(errno, "opening %s", path);
	sb_err *err = sb_read_fd_all(fd, max, out);
	close(fd);
	return err ? sb_err_prefix(err, "reading %s", path) : NULL;
}

sb_err *sb_read_file_if_any(const char *path, size_t max, sb_buf *out, bool *found)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	*found = fd >= 0;
	if (fd < 0)
		return errno == ENOENT ? NULL : sb_err_sys(errno, "opening %s", path);
	sb_err *err = sb_read_fd_all(fd, max, out);
	close(fd);
	return err ? sb_err_prefix(err, "reading %s", path) : NULL;
}

static sb_err *set_flag(int fd, int get, int set, int flag, bool on)
{
	int flags = fcntl(fd, get);
	if (flags < 0)
		return sb_err_sys(errno, "fcntl on fd %d", fd);
	int want = on ? (flags | flag) : (flags & ~flag);
	if (want != flags && fcntl(fd, set, want) < 0)
		return sb_err_sys(errno, "fcntl on fd %d", fd);
	return NULL;
}

sb_err *sb_fd_set_nonblock(int fd, bool on)
{
	return set_flag(fd, F_GETFL, F_SETFL, O_NONBLOCK, on);
}

sb_err *sb_fd_set_cloexec(int fd, bool on)
{
	return set_flag(fd, F_GETFD, F_SETFD, FD_CLOEXEC, on);
}

void sb_close(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
		*fd = -1;
	}
}
