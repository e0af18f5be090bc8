/* Cancellation tokens: an atomic flag plus an eventfd, so a thread blocked in poll(2) on a
 * command's pipes wakes up the moment another thread cancels. */
#include <sandbar/base.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct sb_cancel {
	atomic_bool set;
	int fd;
};

sb_cancel *sb_cancel_new(void)
{
	sb_cancel *c = sb_xcalloc(1, sizeof *c);
	atomic_init(&c->set, false);
	c->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->fd < 0) {
		/* Without an fd, pollers fall back to checking the flag on their own timeouts. */
		sb_warn("eventfd for a cancel token failed; cancellation will be slower");
	}
	return c;
}

void sb_cancel_free(sb_cancel *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

void sb_cancel_trigger(sb_cancel *c)
{
	if (!c || atomic_exchange(&c->set, true))
		return;
	if (c->fd >= 0) {
		uint64_t one = 1;
		(void)!write(c->fd, &one, sizeof one);
	}
}

bool sb_cancel_is_set(const sb_cancel *c)
{
	return c && atomic_load(&((sb_cancel *)c)->set);
}

int sb_cancel_fd(const sb_cancel *c)
{
	return c ? c->fd : -1;
}
