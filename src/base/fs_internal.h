/* Private helpers shared by the file-system files of the base layer (fs.c, walk.c, confine.c,
 * tar.c). Not part of the public API: the signatures may change with their callers. */
#ifndef SB_BASE_FS_INTERNAL_H
#define SB_BASE_FS_INTERNAL_H

#include <sandbar/base.h>

/* Size of the copy buffers used for file contents and archive streams. */
#define SB_FS_COPY_BUF (1u << 20)

/* Walk below the open directory dirfd (not closed) like sb_fs_walk. Relative paths are reported
 * as prefix + "/" + name (just name when prefix is NULL or ""); display names the directory in
 * error messages. */
sb_err *sb_fs_walk_fd(int dirfd, const char *display, const char *prefix, sb_walk_fn fn, void *ud);

/* The names in the open directory dfd (not closed), without "." and "..", sorted by strcmp.
 * Free with sb_strv_free(). */
sb_err *sb_fs_read_names(int dfd, const char *display, char ***names_out, size_t *n_out);

/* Copy the whole content of src_fd into the empty dst_fd, both at offset 0 (reflink, then
 * copy_file_range, then read/write). display names the source in error messages. */
sb_err *sb_fs_copy_fd(int src_fd, int dst_fd, const char *display);

/* Commit an atomic file, with or without the fsync of its data (copies skip it for speed; the
 * rename is still atomic). */
sb_err *sb_atomic_commit_opt(sb_atomic_file *af, bool durable);

#endif
