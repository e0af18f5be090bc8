/* Fuzz target: the frame reader and field decoder of the host <-> sandbar-init protocol must
 * never crash or read out of bounds, and every frame they accept must re-encode to the same
 * bytes field by field. The input is streamed through a real socket pair in two writes. */
#include "../src/init/proto.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_frame(const sbi_msg *m)
{
	sbi_msg again;
	sbi_msg_init(&again);
	size_t pos = 0;
	const char *k, *v;
	while (sbi_msg_next(m, &pos, &k, &v))
		if (sbi_msg_add(&again, k, v) < 0)
			abort();
	if (again.len != m->len || (m->len && memcmp(again.data, m->data, m->len)))
		abort();
	long long n;
	(void)sbi_msg_geti(m, "pid", 0, 1 << 30, &n);
	(void)sbi_msg_get(m, "op");
	(void)sbi_msg_count(m, "arg");
	(void)sbi_id_valid(sbi_msg_get(m, "id") ? sbi_msg_get(m, "id") : "x");
	sbi_msg_deinit(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 60000)
		size = 60000; /* stays within one socket buffer: no writer thread needed */
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	size_t cut = size ? data[0] % (size + 1) : 0;
	if ((cut && write(sv[0], data, cut) != (ssize_t)cut) ||
	    (size > cut && write(sv[0], data + cut, size - cut) != (ssize_t)(size - cut)))
		abort();
	shutdown(sv[0], SHUT_WR);
	sbi_reader rd;
	sbi_reader_init(&rd);
	for (;;) {
		sbi_msg m;
		sbi_msg_init(&m);
		int fds[SBI_MAX_FDS], nfds = SBI_MAX_FDS;
		int got = sbi_reader_take(&rd, &m, fds, &nfds);
		if (got == 1) {
			check_frame(&m);
			sbi_msg_deinit(&m);
			continue;
		}
		sbi_msg_deinit(&m);
		if (got < 0)
			break;
		if (sbi_reader_fill(&rd, sv[1]) <= 0)
			break;
	}
	sbi_reader_deinit(&rd);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
