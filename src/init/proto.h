/* The control protocol between the host (src/sandbox) and sandbar-init, shared by both sides.
 *
 * A message is a frame: a 4-byte little-endian length, then that many bytes of fields, each a
 * NUL-terminated key followed by a NUL-terminated value ("op\0exec\0arg\0ls\0..."); a key may
 * repeat (argv, env). File descriptors travel as SCM_RIGHTS with the frame. Only libc is used
 * here, because sandbar-init is linked statically without libsandbar.
 */
#ifndef SANDBAR_INIT_PROTO_H
#define SANDBAR_INIT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SBI_FRAME_MAX (4u * 1024u * 1024u) /* argv + env of one exec fit easily */
#define SBI_MAX_FDS 4

typedef struct sbi_msg {
	char *data; /* fields; NULL while empty */
	size_t len, cap;
} sbi_msg;

void sbi_msg_init(sbi_msg *m);
void sbi_msg_deinit(sbi_msg *m);
void sbi_msg_clear(sbi_msg *m);
/* Append a field. Returns -1 when it would exceed SBI_FRAME_MAX or memory runs out. */
int sbi_msg_add(sbi_msg *m, const char *key, const char *value);
int sbi_msg_addi(sbi_msg *m, const char *key, long long value);
/* Take ownership of a received payload after checking its shape (every field NUL-terminated,
 * keys and values paired). Returns -1 (and frees nothing) when malformed. */
int sbi_msg_adopt(sbi_msg *m, char *data, size_t len);
/* First value of key, NULL when absent. */
const char *sbi_msg_get(const sbi_msg *m, const char *key);
/* Parse the first value of key as an integer in [min, max]; -1 when absent or invalid. */
int sbi_msg_geti(const sbi_msg *m, const char *key, long long min, long long max, long long *out);
/* Iterate: start with *pos = 0; returns false at the end. */
bool sbi_msg_next(const sbi_msg *m, size_t *pos, const char **key, const char **value);
/* Count of fields named key. */
size_t sbi_msg_count(const sbi_msg *m, const char *key);

/* Send one frame with optional fds (blocking; EINTR and short writes handled, MSG_NOSIGNAL).
 * Returns 0 or -errno. */
int sbi_send(int sock, const sbi_msg *m, const int *fds, int nfds);

/* Incremental frame reader for a stream socket: feed it with sbi_reader_fill, take complete
 * frames with sbi_reader_take. Received fds are collected in order. */
typedef struct sbi_reader {
	char *buf;
	size_t len, cap;
	int fds[SBI_MAX_FDS];
	size_t fd_at[SBI_MAX_FDS]; /* buffer offset of the bytes each fd came with */
	int nfds;
} sbi_reader;

void sbi_reader_init(sbi_reader *r);
/* Closes any fds still held. */
void sbi_reader_deinit(sbi_reader *r);
/* One recvmsg on sock (honouring its blocking mode). Returns bytes read (> 0), 0 on EOF, or
 * -errno (-EAGAIN when non-blocking and empty, -EPROTO on an oversized frame). */
long sbi_reader_fill(sbi_reader *r, int sock);
/* When a complete frame is buffered: fill *m with it, move the fds that came with its bytes
 * to fds (up to *nfds on input; extra ones are closed; fds of later frames stay) and return 1. 0
 * when incomplete, -1 when malformed. */
int sbi_reader_take(sbi_reader *r, sbi_msg *m, int *fds, int *nfds);

/* Is s a valid lease or exec id: [A-Za-z0-9_-]{1,64}? */
bool sbi_id_valid(const char *s);

#endif
