/* Loading a shared library on first use instead of linking it: sandbar's optional libraries
 * (libarchive, libgit2) bring dependency trees that would cost every process milliseconds of
 * dynamic linking. sb_dl_bind opens a library by soname and fills a table of its functions;
 * each library's loader (archive_loader.c, git_loader.c) calls it once. */
#ifndef SB_DL_H
#define SB_DL_H

#include <stdbool.h>
#include <stddef.h>

/* Open soname (never closed: the library lives as long as the process) and set *slots[i] to
 * its function names[i], for i < n. On failure answer false with why (of why_len bytes) saying
 * which library or function is missing and which Debian package provides it. */
bool sb_dl_bind(const char *soname, const char *package, const char *const *names,
                void **const *slots, size_t n, char *why, size_t why_len);

#endif
