/* sandbar base layer: the small things every other layer leans on.
 *
 * Errors, memory, growable buffers, strings, logging, time, base64, hashing, random ids,
 * shell quoting, bounded JSON, cancellation tokens, file-system helpers (atomic write, safe
 * walk, path confinement, copies), the exclude matcher and tar archives (libarchive).
 *
 * Conventions: a fallible function returns `sb_err *` (NULL on success) and the caller owns and
 * frees the error with sb_err_free(). Out-of-memory aborts the process with a message (as Redis
 * does): every allocation below goes through sb_xmalloc() and friends, so callers never see NULL
 * from them.
 */
#ifndef SANDBAR_BASE_H
#define SANDBAR_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SB_VERSION "0.1.0"

#if defined(__GNUC__)
#define SB_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define SB_NODISCARD __attribute__((warn_unused_result))
#else
#define SB_PRINTF(fmt, args)
#define SB_NODISCARD
#endif

/* ---------------------------------------------------------------- errors */

typedef enum sb_errcode {
	SB_E_OK = 0,
	SB_E_INVAL,          /* bad input from the caller or from outside */
	SB_E_IO,             /* a system call failed; sys_errno says which */
	SB_E_NOTFOUND,       /* no such file, lease, exec, ... */
	SB_E_EXISTS,         /* already there */
	SB_E_TOO_LARGE,      /* a bound was crossed (body, JSON, path, ...) */
	SB_E_FILE_TOO_LARGE, /* remote file over the caller's byte limit (actual/limit set) */
	SB_E_ESCAPE,         /* a path tried to leave its confinement root */
	SB_E_TIMEOUT,        /* a deadline passed */
	SB_E_CANCELED,       /* cancelled by the caller or by a callback */
	SB_E_PROTOCOL,       /* the far side broke the protocol */
	SB_E_CONFLICT,       /* state conflict (acquisition, merge, lease busy) */
	SB_E_AUTH,           /* authentication failed */
	SB_E_BUSY,           /* try again later */
	SB_E_UNSUPPORTED,    /* this host or runner cannot do that */
	SB_E_STATE_LOST,     /* the sandbox behind a lease is gone */
	SB_E_SPAWN,          /* a command could not be started */
	SB_E_COMMAND,        /* a remote command ran and failed */
	SB_E_INTERNAL,       /* a bug: an invariant did not hold */
} sb_errcode;

typedef struct sb_err {
	sb_errcode code;
	int sys_errno;        /* errno when code == SB_E_IO (or 0) */
	char *msg;            /* human message, never NULL */
	int64_t actual_bytes; /* SB_E_FILE_TOO_LARGE: the size found */
	int64_t limit_bytes;  /* SB_E_FILE_TOO_LARGE: the limit */
} sb_err;

/* New error with a printf message. Never returns NULL. */
sb_err *sb_err_new(sb_errcode code, const char *fmt, ...) SB_PRINTF(2, 3);
/* New SB_E_IO error; appends ": strerror(errnum)" and records errnum. */
sb_err *sb_err_sys(int errnum, const char *fmt, ...) SB_PRINTF(2, 3);
/* Prefix the message with context ("reading config: <old message>"); returns err. */
sb_err *sb_err_prefix(sb_err *err, const char *fmt, ...) SB_PRINTF(2, 3);
void sb_err_free(sb_err *err);
/* Stable machine name of a code, e.g. "ERR_SANDBOX_FILE_TOO_LARGE", "invalid_request". */
const char *sb_errcode_name(sb_errcode code);

/* --------------------------------------------------------------- memory */

void *sb_xmalloc(size_t n);
void *sb_xcalloc(size_t count, size_t size);
void *sb_xrealloc(void *p, size_t n);
char *sb_xstrdup(const char *s);
char *sb_xstrndup(const char *s, size_t n);
void *sb_xmemdup(const void *p, size_t n);

/* --------------------------------------------------------------- buffers */

/* Growable byte buffer. data is always NUL-terminated past len (when data != NULL), so a buffer
 * of text can be used as a C string; it may also hold arbitrary bytes. */
typedef struct sb_buf {
	char *data;
	size_t len;
	size_t cap;
} sb_buf;

#define SB_BUF_INIT                                                                                \
	{                                                                                          \
		NULL, 0, 0                                                                         \
	}

void sb_buf_init(sb_buf *b);
void sb_buf_deinit(sb_buf *b);
void sb_buf_reserve(sb_buf *b, size_t extra);
void sb_buf_append(sb_buf *b, const void *p, size_t n);
void sb_buf_appends(sb_buf *b, const char *s);
void sb_buf_appendc(sb_buf *b, char c);
void sb_buf_appendf(sb_buf *b, const char *fmt, ...) SB_PRINTF(2, 3);
void sb_buf_vappendf(sb_buf *b, const char *fmt, va_list ap) SB_PRINTF(2, 0);
void sb_buf_clear(sb_buf *b);
/* Drop the first n bytes (n <= len). */
void sb_buf_consume(sb_buf *b, size_t n);
/* Always a valid C string (empty when nothing was appended). */
const char *sb_buf_cstr(sb_buf *b);
/* Hand the memory to the caller (free() it); the buffer is left empty. Never NULL. */
char *sb_buf_steal(sb_buf *b, size_t *len_out);

/* Keeps the LAST cap bytes written to it (output tails). */
typedef struct sb_tail {
	sb_buf buf; /* ring storage, cap bytes once full */
	size_t cap;
	size_t start;   /* ring start once full */
	uint64_t total; /* bytes ever appended */
} sb_tail;

void sb_tail_init(sb_tail *t, size_t cap);
void sb_tail_deinit(sb_tail *t);
void sb_tail_append(sb_tail *t, const void *p, size_t n);
/* Move the kept bytes, in order, into out (replacing its content). When bytes were dropped, the
 * kept tail is advanced to a UTF-8 code point boundary (at most 3 bytes) and *truncated is set. */
void sb_tail_finish(sb_tail *t, sb_buf *out, bool *truncated);

/* --------------------------------------------------------------- UTF-8 */

/* Append the valid UTF-8 prefix of carry+data to out, replacing invalid sequences with U+FFFD.
 * An incomplete sequence at the very end stays in carry (at most 3 bytes) unless final, when it
 * becomes U+FFFD too. carry is a buffer the caller keeps per stream. */
void sb_utf8_feed(sb_buf *carry, const char *data, size_t len, bool final, sb_buf *out);
/* Whole-buffer form of sb_utf8_feed. */
void sb_utf8_repair(const char *data, size_t len, sb_buf *out);
/* Streaming validity check of carry+data: false at the first invalid sequence (or, when final,
 * an incomplete one at the end); an incomplete tail otherwise waits in carry. */
bool sb_utf8_check(sb_buf *carry, const char *data, size_t len, bool final);
/* Validity of data[0, len): false at the first invalid sequence (or, when final, an incomplete
 * one at the end). *used: the bytes found valid; when true and not final, data[*used, len) is an
 * incomplete sequence (at most 3 bytes) to check again with the bytes that follow. */
bool sb_utf8_valid_span(const char *data, size_t len, bool final, size_t *used);
/* Append data (valid UTF-8, NULs allowed) escaped as the inside of a JSON string. */
void sb_json_escape(const char *data, size_t len, sb_buf *out);
/* sb_utf8_feed then sb_json_escape in one pass, into a plain buffer: data as the inside of a
 * JSON string, invalid UTF-8 as U+FFFD, written to out (room bytes). Stops before a character
 * that does not fit (an escape takes up to 6 bytes) and, unless final, before an incomplete
 * sequence at the end of data (*used then leaves it, at most 3 bytes, to join the next bytes).
 * Returns the bytes written; *used, the bytes of data consumed. */
size_t sb_json_escape_utf8(const char *data, size_t len, bool final, char *out, size_t room,
                           size_t *used);

/* --------------------------------------------------------------- strings */

bool sb_str_has_prefix(const char *s, const char *prefix);
bool sb_str_has_suffix(const char *s, const char *suffix);
/* malloc'd printf. */
char *sb_strfmt(const char *fmt, ...) SB_PRINTF(1, 2);
/* NULL-terminated vectors of strings (argv, env). */
size_t sb_strv_len(char *const *v);
char **sb_strv_dup(char *const *v);
void sb_strv_free(char **v);
/* Append a copy of s; *v may be NULL. */
void sb_strv_push(char ***v, const char *s);
/* The value of the first KEY=VALUE entry of env whose key is key[0..klen), or NULL. */
const char *sb_env_get(char *const *env, const char *key, size_t klen);
/* Parse a size "512", "64k", "256M", "2G" (binary units) into bytes. */
sb_err *sb_parse_size(const char *s, uint64_t *out);
/* Parse a duration "500ms", "30s", "5m", "1h", plain number = seconds, into milliseconds. */
sb_err *sb_parse_duration_ms(const char *s, int64_t *out);
/* Strict decimal parse of a whole string into [min, max]. */
sb_err *sb_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);
/* Hex of bytes into out (2n+1 chars incl. NUL). */
void sb_hex_encode(const void *p, size_t n, char *out);
/* Decode n bytes from the 2n hex digits (either case) at s into out. Returns false, with out
 * partly written, if any of those characters is not a hex digit. */
bool sb_hex_decode(const char *s, size_t n, unsigned char *out);

/* --------------------------------------------------------------- URL encoding */

/* Percent-decode src[0..len) into out; SB_E_INVAL on a malformed escape or a NUL byte. '+' is
 * decoded to ' ' when plus_is_space (query strings). */
sb_err *sb_url_decode(const char *src, size_t len, bool plus_is_space, sb_buf *out);

typedef struct sb_query_pair {
	char *key;
	char *value; /* "" when the pair had no '=' */
} sb_query_pair;

typedef struct sb_query {
	sb_query_pair *pairs;
	size_t n;
} sb_query;

#define SB_QUERY_MAX_PAIRS 256
/* Parse a raw query string (no '?'): '&'-separated, percent-decoded, in order, duplicates kept.
 * SB_E_INVAL for a malformed escape or NUL; SB_E_TOO_LARGE past SB_QUERY_MAX_PAIRS. */
sb_err *sb_query_parse(const char *raw, size_t len, sb_query *out);
void sb_query_deinit(sb_query *q);
/* First value of key, NULL when absent. */
const char *sb_query_get(const sb_query *q, const char *key);

/* --------------------------------------------------------------- shell */

/* Append s single-quoted for POSIX sh: each ' becomes '"'"'. */
void sb_shell_quote(sb_buf *out, const char *s);
/* malloc'd single-quoted copy. */
char *sb_shell_quoted(const char *s);
/* One sh command line from argv: every word quoted, separated by spaces. */
char *sb_shell_join(char *const *argv);

/* --------------------------------------------------------------- logging */

typedef enum sb_log_level {
	SB_LOG_ERROR = 0,
	SB_LOG_WARN = 1,
	SB_LOG_INFO = 2,
	SB_LOG_DEBUG = 3,
} sb_log_level;

void sb_log_set_level(sb_log_level level);
sb_log_level sb_log_get_level(void);
/* JSON lines ({"ts","level","msg"}) instead of text. */
void sb_log_set_json(bool json);
/* Redirect output (default stderr, fd 2). */
void sb_log_set_fd(int fd);
void sb_log(sb_log_level level, const char *fmt, ...) SB_PRINTF(2, 3);
#define sb_error(...) sb_log(SB_LOG_ERROR, __VA_ARGS__)
#define sb_warn(...) sb_log(SB_LOG_WARN, __VA_ARGS__)
#define sb_info(...) sb_log(SB_LOG_INFO, __VA_ARGS__)
#define sb_debug(...) sb_log(SB_LOG_DEBUG, __VA_ARGS__)

/* --------------------------------------------------------------- time */

#define SB_ISO8601_LEN 32 /* "2026-11-26T13:07:25.123Z" plus room */

int64_t sb_mono_ms(void);
int64_t sb_mono_ns(void);
/* Milliseconds since the epoch. */
int64_t sb_wall_ms(void);
/* ISO-8601 UTC with milliseconds: "2026-11-26T13:07:25.123Z". */
void sb_iso8601(int64_t wall_ms, char out[SB_ISO8601_LEN]);
sb_err *sb_iso8601_parse(const char *s, int64_t *wall_ms_out);
/* Sleep, retrying on EINTR. */
void sb_sleep_ms(int64_t ms);

/* --------------------------------------------------------------- base64 */

/* Streaming encoder (standard alphabet, padded). */
typedef struct sb_b64enc {
	unsigned char carry[3];
	size_t ncarry;
} sb_b64enc;

void sb_b64enc_init(sb_b64enc *e);
void sb_b64enc_update(sb_b64enc *e, const void *in, size_t n, sb_buf *out);
void sb_b64enc_final(sb_b64enc *e, sb_buf *out);

/* Streaming decoder: skips ASCII white space anywhere; rejects any other character outside the
 * alphabet, data after padding, and a final group that is incomplete or has non-zero pad bits. */
typedef struct sb_b64dec {
	uint32_t acc;
	unsigned nacc;   /* sextets in acc */
	unsigned npad;   /* '=' seen */
	uint64_t offset; /* characters consumed, for error messages */
} sb_b64dec;

void sb_b64dec_init(sb_b64dec *d);
sb_err *sb_b64dec_update(sb_b64dec *d, const void *in, size_t n, sb_buf *out);
sb_err *sb_b64dec_final(sb_b64dec *d, sb_buf *out);

size_t sb_b64_encoded_len(size_t n);
void sb_b64_encode(const void *in, size_t n, sb_buf *out);
/* The same into a plain buffer of sb_b64_encoded_len(n) bytes (not terminated): that length. */
size_t sb_b64_encode_to(const void *in, size_t n, char *out);
sb_err *sb_b64_decode(const void *in, size_t n, sb_buf *out);

/* --------------------------------------------------------------- crypto */

#define SB_SHA256_LEN 32
#define SB_SHA256_HEX_LEN 65

typedef struct sb_sha256 sb_sha256; /* opaque streaming context */

sb_sha256 *sb_sha256_new(void);
void sb_sha256_update(sb_sha256 *c, const void *p, size_t n);
/* Writes the digest and resets the context for reuse. */
void sb_sha256_final(sb_sha256 *c, unsigned char out[SB_SHA256_LEN]);
void sb_sha256_free(sb_sha256 *c);
void sb_sha256_once(const void *p, size_t n, unsigned char out[SB_SHA256_LEN]);
void sb_sha256_hex(const void *p, size_t n, char out[SB_SHA256_HEX_LEN]);
sb_err *sb_sha256_file(const char *path, unsigned char out[SB_SHA256_LEN]);
/* The SHA-256 of what fd gives until its end (display names it in errors); fd stays open. */
sb_err *sb_sha256_fd(int fd, const char *display, unsigned char out[SB_SHA256_LEN]);
void sb_hmac_sha256(const void *key, size_t keylen, const void *p, size_t n,
                    unsigned char out[SB_SHA256_LEN]);
/* Constant-time comparison of two equal-length byte strings. */
bool sb_ct_equal(const void *a, const void *b, size_t n);
/* Constant-time comparison of two strings of possibly different lengths (via SHA-256 digests,
 * so the time does not depend on where or whether they differ). */
bool sb_ct_streq(const char *a, const char *b);
/* CSPRNG bytes (getrandom). */
sb_err *sb_random_bytes(void *p, size_t n);
/* prefix + 32 hex characters from 16 random bytes. Aborts if the kernel CSPRNG fails. */
char *sb_random_id(const char *prefix);

/* --------------------------------------------------------------- cancellation */

/* A flag that another thread can set, with an eventfd so poll loops wake up. */
typedef struct sb_cancel sb_cancel;

sb_cancel *sb_cancel_new(void);
void sb_cancel_free(sb_cancel *c);
void sb_cancel_trigger(sb_cancel *c);
bool sb_cancel_is_set(const sb_cancel *c);
/* Readable once triggered. -1 when c is NULL. */
int sb_cancel_fd(const sb_cancel *c);

/* --------------------------------------------------------------- I/O */

/* Full writes and reads, retrying EINTR and short transfers. sb_read_full stops at EOF and
 * reports the count in *got. */
sb_err *sb_write_all(int fd, const void *p, size_t n);
sb_err *sb_read_full(int fd, void *p, size_t n, size_t *got);
/* Read a whole fd or file, failing with SB_E_TOO_LARGE past max bytes. */
sb_err *sb_read_fd_all(int fd, size_t max, sb_buf *out);
sb_err *sb_read_file(const char *path, size_t max, sb_buf *out);
/* sb_read_file for a file that may be missing: then *found is false, out stays empty and that
 * is no error. */
sb_err *sb_read_file_if_any(const char *path, size_t max, sb_buf *out, bool *found);
/* The start time of process pid (field 22 of /proc/PID/stat, clock ticks since boot), or -1
 * when there is no such process or it has ended (a zombie its parent has not reaped yet: on a
 * host whose PID 1 reaps late, an ended sandbox's init can stay one for seconds). The pid and
 * this together name one living process for good. */
long long sb_proc_start_time(int pid);
/* Where one of sandbar's own programs (sandbar-init, sandbar-serve) is: $env_var when set (as
 * is), else name beside the running program (a build tree puts them side by side), else
 * ../libexec/sandbar/name relative to it (an installed tree, wherever it was installed), else
 * build_path when executable (may be NULL), else install_path. malloc'd. */
char *sb_helper_program(const char *env_var, const char *name, const char *build_path,
                        const char *install_path);
/* A secret reference, `env:VAR` (set and non-empty) or `file:PATH` (one trailing newline
 * dropped), read into *out (free it after clearing it), at most max bytes. */
sb_err *sb_secret_ref_read(const char *ref, size_t max, char **out);
sb_err *sb_fd_set_nonblock(int fd, bool on);
sb_err *sb_fd_set_cloexec(int fd, bool on);
void sb_close(int *fd); /* close if >= 0, set to -1, keep errno */

/* --------------------------------------------------------------- file system */

/* Atomic replace: temp file in the same directory, fsync, rename, fsync of the directory. */
sb_err *sb_fs_write_atomic(const char *path, const void *p, size_t n, mode_t mode);

/* Streaming atomic write: write to fd, then commit (fsync+rename+dir fsync) or abort (unlink). */
typedef struct sb_atomic_file {
	int fd;
	char *tmp_path;
	char *path;
} sb_atomic_file;

sb_err *sb_atomic_open(const char *path, mode_t mode, sb_atomic_file *af);
sb_err *sb_atomic_commit(sb_atomic_file *af);
void sb_atomic_abort(sb_atomic_file *af);
/* sb_atomic_commit without the fsyncs: the new content survives a crash of the process (never
 * half a file), not a power cut. For records rewritten often on a latency-critical path. */
sb_err *sb_atomic_commit_nosync(sb_atomic_file *af);

sb_err *sb_fs_mkdir_p(const char *path, mode_t mode);
/* Remove a tree without following symlinks; a missing path is success. */
sb_err *sb_fs_rm_rf(const char *path);
/* Remove every entry of the open directory dfd (not closed) except the names in keep
 * (NULL-terminated, may be NULL), each the way sb_fs_rm_rf does (never following a symlink).
 * display names the directory in error messages. */
sb_err *sb_fs_clear_dir(int dfd, const char *display, char *const *keep);
/* Remove rel (relative, lexically checked) below the open directory rootfd (not closed), a tree
 * whole, the way sb_fs_rm_rf does; every directory on the way is opened without following a
 * symlink (SB_E_ESCAPE when one is a link). A missing rel is success. */
sb_err *sb_fs_remove_below(int rootfd, const char *rel, const char *display);
/* Copy a regular file's bytes (FICLONE reflink when possible, else copy_file_range/read-write)
 * to dst atomically (temp + rename) with the given mode. Never a hard link. */
sb_err *sb_fs_copy_file(const char *src, const char *dst, mode_t mode);
/* Make a fresh private temp directory under $TMPDIR (or /tmp) named prefix-XXXXXX. */
sb_err *sb_fs_mkdtemp(const char *prefix, char **out);

typedef enum sb_ftype {
	SB_FT_FILE,
	SB_FT_DIR,
	SB_FT_SYMLINK,
	SB_FT_OTHER, /* FIFO, socket, device */
} sb_ftype;

typedef struct sb_walk_entry {
	const char *relpath; /* relative to the root, '/'-separated, never "" */
	const char *name;    /* last segment */
	sb_ftype type;
	mode_t mode; /* full st_mode */
	uint64_t size;
	int64_t mtime_sec; /* st_mtim.tv_sec */
	int dirfd;         /* open directory holding the entry (valid during the callback only) */
	const struct stat *st; /* the entry's full lstat (valid during the callback only) */
} sb_walk_entry;

enum {
	SB_WALK_CONTINUE = 0,
	SB_WALK_SKIP = 1, /* for a directory: do not descend */
	SB_WALK_STOP = 2,
};

/* Called for every entry, parents before children, siblings sorted by name (strcmp); set *err
 * and return SB_WALK_STOP to fail the walk with that error. */
typedef int (*sb_walk_fn)(const sb_walk_entry *e, void *ud, sb_err **err);

/* Depth-first walk below root (root itself is not reported). Never follows symlinks: a link is
 * reported as SB_FT_SYMLINK. A directory that cannot be read is an error. */
sb_err *sb_fs_walk(const char *root, sb_walk_fn fn, void *ud);

/* A tree manifest as a far side prints it (src/base/manifest.c documents the format): per entry
 * its relative path, kind, permission bits, size, mtime seconds, symlink target and, for the
 * files the far side hashed, their plain SHA-256. The text is outside input: every field is
 * bounded and checked, paths are lexically relative, none twice. */
typedef struct sb_manifest_entry {
	char *path;
	sb_ftype type;
	uint32_t mode; /* permission bits (07777) */
	uint64_t size;
	int64_t mtime_sec;
	char *target; /* symlinks only, else NULL */
	bool hashed;
	unsigned char sha[SB_SHA256_LEN]; /* plain SHA-256 of the bytes; valid when hashed */
} sb_manifest_entry;

typedef struct sb_manifest {
	sb_manifest_entry *v; /* sorted by strcmp(path), unique */
	size_t n, cap;
	int64_t now_sec; /* the far side's clock when it started listing */
	/* Set when the far side said it cannot list (a tool missing): the reason, else NULL. */
	char *untrusted;
} sb_manifest;

#define SB_MANIFEST_MAX_BYTES (512u * 1024u * 1024u)
#define SB_MANIFEST_MAX_ENTRIES 4000000u

void sb_manifest_init(sb_manifest *m);
void sb_manifest_deinit(sb_manifest *m);
/* Parse data[0, len) into out (initialised here). SB_E_PROTOCOL on anything malformed or
 * truncated (the end record is required), SB_E_TOO_LARGE past the bounds above. */
sb_err *sb_manifest_parse(const char *data, size_t len, sb_manifest *out);
sb_manifest_entry *sb_manifest_find(const sb_manifest *m, const char *path);

/* Lexical check of a relative path from outside: not empty, not absolute, no "." / ".." / empty
 * segments, no NUL, at most PATH_MAX bytes. */
sb_err *sb_path_check_relative(const char *rel);

/* Open rel beneath the directory rootfd, refusing anything that would resolve outside it (".."
 * or symlinks pointing out): openat2(RESOLVE_BENEATH) where the kernel has it, else a
 * component-by-component walk. flags are open(2) flags; O_CREAT creates only the last component.
 * With SB_OPEN_MKDIRS, missing parent directories are created (mode 0755 adjusted by umask). */
#define SB_OPEN_MKDIRS 0x1
sb_err *sb_fs_open_beneath(int rootfd, const char *rel, int flags, mode_t mode, unsigned sbflags,
                           int *out_fd);
/* Force the fallback resolver (for tests). */
void sb_fs_beneath_force_fallback(bool on);
/* Open the directory rel beneath rootfd one component at a time with O_NOFOLLOW, stricter than
 * sb_fs_open_beneath: any symlink on the way, even one that stays inside, and any non-directory
 * fail with ENOTDIR or ELOOP (sb_err_sys: sys_errno says which). With create, missing components
 * are made (mode 0755 adjusted by umask). rel holds no "." or ".." components (callers pass paths
 * they read from a directory or checked); "" opens rootfd itself again. */
sb_err *sb_fs_open_dir_nofollow(int rootfd, const char *rel, bool create, int *out_fd);

/* A nameless temp file in dir (O_TMPFILE, or created and unlinked at once where the file system
 * lacks it), O_RDWR|O_CLOEXEC, mode 0600. */
sb_err *sb_fs_tmpfile(const char *dir, int *fd_out);

/* --------------------------------------------------------------- excludes */

/* The one exclude matcher (managed-runtime spec §2.8) that drives archives, snapshots and
 * restores alike. Patterns: "*\/X/\*" or "*\/X" match segment X at any depth; "X/\*" matches
 * under X; anything else is a literal path prefix (p == X or p starts with "X/"). No globbing. */
typedef struct sb_matcher sb_matcher;

typedef struct sb_excludes {
	char **patterns; /* NULL-terminated */
	/* Optional (borrowed): gitignore-syntax rules evaluated after the literal patterns. Never
	 * consulted below ".git/": git's own directory is staged whole or not at all. */
	sb_matcher *matcher;
} sb_excludes;

void sb_excludes_init(sb_excludes *ex);
void sb_excludes_deinit(sb_excludes *ex);
/* Add one raw pattern (deduplicated). */
void sb_excludes_add(sb_excludes *ex, const char *pattern);
/* Add a directory name in all four forms X, X/\*, *\/X, *\/X/\*. */
void sb_excludes_add_dir(sb_excludes *ex, const char *dir);
/* Validate a caller-supplied exclude: a plain relative path, no glob characters (* ? [ \),
 * no "." / ".." / empty segments. */
sb_err *sb_excludes_check_user(const char *path);
bool sb_excludes_match(const sb_excludes *ex, const char *relpath);
/* Same, knowing whether relpath is a directory (the matcher's "dir/" rules need it). */
bool sb_excludes_match_entry(const sb_excludes *ex, const char *relpath, bool is_dir);

/* How sb_manifest_take lists a tree: what the far side's listing script does (find -printf,
 * sha256sum), done by a runner that reaches the tree itself. */
typedef struct sb_manifest_opts {
	/* Hash every regular file whose mtime is after this second (find's -newermt @X: the
	 * sub-second part counts), or every one with hash_all. */
	int64_t hash_newer_than;
	/* > 0: also hash every regular file whose ctime (ns since the epoch) is at or after this.
	 * Nothing can set a ctime back, so a file rewritten since that moment is hashed even when
	 * its mtime was set back (cp -p, tar x, npm's fixed 1985 mtimes). */
	int64_t hash_ctime_since_ns;
	bool hash_all;
	bool list_pruned; /* list an excluded entry itself (not what is below it) */
	/* Optional: of the files the rules above choose, hash only those it says yes to (the path
	 * relative to the root, the size): a file nothing will compare needs no hash. Honoured
	 * where the manifest is taken in this process; a far side hashes them all. */
	bool (*want_hash)(void *ud, const char *relpath, uint64_t size);
	void *want_hash_ud;
} sb_manifest_opts;

/* The manifest of the tree below root (root itself not listed): every entry but "._*" names
 * and what ex (may be NULL) matches, never following a symlink; now_sec is this host's clock
 * when the walk starts. Entries come sorted as sb_manifest_parse gives them. */
sb_err *sb_manifest_take(const char *root, const sb_excludes *ex, const sb_manifest_opts *o,
                         sb_manifest *out);

/* ------------------------------------------------------- exclude matcher (DESIGN.md §9.4)
 * The one matcher of user exclusion rules, in gitignore syntax (globs, "**", trailing "/",
 * leading "/" anchors, "!" re-includes), evaluated on the host with libgit2's ignore rules. The
 * rules form one ordered list in which a later rule wins: the repository's ignore files (with
 * --gitignore: every .gitignore, .git/info/exclude and core.excludesFile, exactly as git reads
 * them), then the preset, then .sandbarignore, then --exclude. As in git, nothing below an
 * excluded directory can be re-included, because walks do not descend into it. */
typedef enum sb_rule_source {
	SB_RULE_NONE = 0,
	SB_RULE_GITIGNORE,
	SB_RULE_PRESET,
	SB_RULE_SANDBARIGNORE,
	SB_RULE_EXCLUDE,
	SB_RULE_N_SOURCES,
} sb_rule_source;

/* "gitignore", "preset", ".sandbarignore", "--exclude" ("" for SB_RULE_NONE). */
const char *sb_rule_source_name(sb_rule_source s);

/* A matcher for the tree at root (an existing directory). Free with sb_matcher_free. */
sb_err *sb_matcher_new(const char *root, sb_matcher **out);
void sb_matcher_free(sb_matcher *m);
/* Append rules: text holds one gitignore line per line (blank lines and # comments ignored).
 * src is SB_RULE_PRESET, SB_RULE_SANDBARIGNORE or SB_RULE_EXCLUDE. */
sb_err *sb_matcher_add_rules(sb_matcher *m, sb_rule_source src, const char *text);
/* The rules of a named preset ("paperclip": the spec's heavy build directories at any depth and
 * the top-level .git); NULL for an unknown name. */
const char *sb_matcher_preset_rules(const char *name);
/* Honour the ignore files of the git repository that contains root (SB_E_NOTFOUND when root
 * is in none). */
sb_err *sb_matcher_use_gitignore(sb_matcher *m);
bool sb_matcher_uses_gitignore(const sb_matcher *m);
/* The rules added for src, in order, one per line ("" when none; owned by m). */
const char *sb_matcher_rules(const sb_matcher *m, sb_rule_source src);
/* SB_RULE_NONE when relpath (relative to root, no leading "/") is kept; else the source of the
 * rule that excludes it. Thread-safe. A rule that cannot be evaluated keeps the path. */
sb_rule_source sb_matcher_match(sb_matcher *m, const char *relpath, bool is_dir);
/* Names that a far-side `tar --exclude NAME` may drop at any depth without ever dropping more
 * than sb_matcher_match: the preset's plain names, only while no rule re-includes ("!") and no
 * repository ignore file takes part. NULL-terminated, caller frees (NULL when none). */
char **sb_matcher_far_side_names(const sb_matcher *m);

/* ------------------------------------------------------------------ git (DESIGN.md §9.4)
 * The repository operations sandbar needs, with libgit2 hidden. Object ids are 40-hex
 * strings. */
/* Start git support in the background now and keep it until the process exits, when dir may
 * hold a repository (a work tree with .git, a git dir) or dir is NULL (it will be needed in any
 * case): its start (~7 ms) then overlaps other work and is paid once rather than at each call.
 * Idempotent; optional. */
void sb_git_prewarm(const char *dir);
/* HEAD's commit id of the repository whose work tree or git dir is dir, resolved without
 * searching parent directories; *out is "" when dir holds no repository or HEAD is unborn. */
sb_err *sb_git_head(const char *dir, char out[41]);
/* Fetch the commit src_head from the repository at src_dir (a work tree holding .git) into the
 * repository at host_dir as refs/heads/<branch> (replacing a branch of that name), touching
 * neither HEAD, nor the index, nor any other ref. *n_commits receives the number of commits
 * reachable from the branch and not from base (a commit id or ""). */
sb_err *sb_git_fetch_branch(const char *host_dir, const char *src_dir, const char *src_head,
                            const char *branch, const char *base, size_t *n_commits);

/* --------------------------------------------------------------- tar */

typedef void (*sb_progress_fn)(void *ud, uint64_t done, uint64_t total);

/* Write a ustar/pax archive of dir's contents to fd: entries named relative to dir (never "." or
 * "./"), sorted, excluding "._*" files and whatever ex matches, no xattrs/ACLs. Symlinks are kept
 * as links unless follow_symlinks. An empty selection yields a valid empty archive (1024 zero
 * bytes). *bytes_out (optional) receives the archive size. */
sb_err *sb_tar_create(const char *dir, const sb_excludes *ex, bool follow_symlinks, int fd,
                      uint64_t *bytes_out);

/* What a pick function says of an entry the walk reached (after the excludes). */
enum {
	SB_TAR_PICK_SKIP = 0, /* leave it out, and a directory's contents with it */
	SB_TAR_PICK_DESCEND,  /* leave it out, but walk a directory's contents */
	SB_TAR_PICK_ADD,      /* archive it (and walk a directory's contents) */
};
typedef int (*sb_tar_pick_fn)(void *ud, const char *relpath, sb_ftype type);
/* sb_tar_create of only the entries pick (NULL: all) chooses: a delta of a tree. */
sb_err *sb_tar_create_pick(const char *dir, const sb_excludes *ex, bool follow_symlinks, int fd,
                           uint64_t *bytes_out, sb_tar_pick_fn pick, void *pick_ud);

/* Told of a regular file an archive holds: its path relative to the tree ("a/b", no "./"), its
 * size, its ctime (nanoseconds; a later write changes it, and nothing sets it back) and the plain
 * SHA-256 of its bytes (holes as zeros), taken from the bytes as they went into, or came out of,
 * the archive: never a second read of the file. */
typedef void (*sb_tar_file_fn)(void *ud, const char *relpath, uint64_t size, int64_t ctime_ns,
                               const unsigned char sha[SB_SHA256_LEN]);
/* Whether the file at relpath is to be hashed as it is archived. */
typedef bool (*sb_tar_want_fn)(void *ud, const char *relpath);

/* How sb_tar_create_ex archives (zeroed: sb_tar_create's choices with no excludes). */
typedef struct sb_tar_create_opts {
	const sb_excludes *ex; /* NULL: none */
	bool follow_symlinks;
	sb_tar_pick_fn pick; /* NULL: every entry */
	void *pick_ud;
	/* NULL: no hashing. Else told of each regular file archived that want_hash (NULL: all)
	 * chose, with the size and ctime fstat gave when it was opened and the hash of the member
	 * as archived: a file that shrank while it was read is archived, and hashed, with zeros
	 * up to that size; one that grew, up to that size. */
	sb_tar_file_fn on_file;
	sb_tar_want_fn want_hash;
	void *on_file_ud;
} sb_tar_create_opts;
sb_err *sb_tar_create_ex(const char *dir, const sb_tar_create_opts *o, int fd, uint64_t *bytes_out);

/* A tar of exactly the entries paths names (relative files and symlinks below dir,
 * NULL-terminated, any order; no recursion), with the directories on their way walked but not
 * archived: the far half of an incremental transfer. An entry that is not there is left out. */
sb_err *sb_tar_create_paths(const char *dir, char *const *paths, int fd, uint64_t *bytes_out);

/* Extract an archive read from fd into dir (created if missing). Every member is confined to dir:
 * absolute names, ".." segments and writes through symlinks are refused (SB_E_ESCAPE). Hard links
 * inside the tree become independent copies (one pointing outside is SB_E_ESCAPE); device, FIFO
 * and socket members are skipped with a warning. Modes are kept (permission bits only), owners
 * are not. */
sb_err *sb_tar_extract(int fd, const char *dir, uint64_t *bytes_out);

/* What sb_tar_extract_ex does with a device, FIFO or socket member. */
typedef enum sb_tar_special {
	SB_TAR_SPECIAL_SKIP = 0, /* skip it with a warning, count it (sb_tar_extract's choice) */
	SB_TAR_SPECIAL_REFUSE,   /* stop with SB_E_INVAL naming the member */
} sb_tar_special;

/* sb_tar_extract_ex tells on_file of each regular file member it wrote (a hard link member,
 * which becomes a copy, is not told), with its path below the target directory, its size, its
 * ctime once written and the SHA-256 of the bytes as they were written (see sb_tar_file_fn). */
/* How sb_tar_extract_ex extracts. */
typedef struct sb_tar_extract_opts {
	sb_tar_special special;
	sb_tar_file_fn on_file; /* NULL: no hashing */
	void *on_file_ud;
	/* > 0: refuse (SB_E_FILE_TOO_LARGE, actual and limit bytes set) a member whose file data
	 * would bring the total written past this many bytes, before writing any of it. Holes of
	 * sparse members cost nothing; a hard link member costs its target's size, since it
	 * becomes a copy (that is how a small archive can expand without bound). */
	uint64_t max_bytes;
} sb_tar_extract_opts;

/* sb_tar_extract with options (NULL: sb_tar_extract's); *specials_out (optional) receives how
 * many special members were skipped. */
sb_err *sb_tar_extract_ex(int fd, const char *dir, const sb_tar_extract_opts *opts,
                          uint64_t *bytes_out, uint64_t *specials_out);

/* Apply an incremental transfer to the directory dir: remove each relative path of dels
 * (NULL-terminated, may be NULL) as sb_fs_remove_below does, then extract the archive read from
 * tar_fd (-1: none) over what remains, with xo (NULL: sb_tar_extract's choices). */
sb_err *sb_tree_apply_delta(const char *dir, char *const *dels, int tar_fd,
                            const sb_tar_extract_opts *xo, uint64_t *bytes_out,
                            uint64_t *specials_out);

#ifdef __cplusplus
}
#endif
#endif
