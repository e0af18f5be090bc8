/* libarchive, loaded when first needed (sb_archive_load) instead of at the start of every
 * sandbar process: its dependency tree (libxml2, ICU and libstdc++, nettle, lzma, zstd, lz4,
 * bz2, acl) costs each process ~4 ms of dynamic linking, and only the commands that move a
 * tree create or extract archives. tar_create.c and tar_extract.c include this header instead
 * of <archive.h>: the types and constants are libarchive's, and after a successful
 * sb_archive_load the archive_* names below call into the loaded library. */
#ifndef SB_ARCHIVE_H
#define SB_ARCHIVE_H

#include <archive.h>
#include <archive_entry.h>
#include <sandbar/base.h>

#define SB_ARCHIVE_SONAME "libarchive.so.13"
#define SB_ARCHIVE_PACKAGE "libarchive13"

/* Every libarchive function sandbar calls, each named once; the table's entries have the
 * types <archive.h> declares. */
#define SB_ARCHIVE_FUNCTIONS(X)                                                                    \
	X(archive_entry_clear)                                                                     \
	X(archive_entry_copy_pathname)                                                             \
	X(archive_entry_copy_symlink)                                                              \
	X(archive_entry_filetype)                                                                  \
	X(archive_entry_free)                                                                      \
	X(archive_entry_hardlink)                                                                  \
	X(archive_entry_mtime)                                                                     \
	X(archive_entry_mtime_nsec)                                                                \
	X(archive_entry_new)                                                                       \
	X(archive_entry_pathname)                                                                  \
	X(archive_entry_perm)                                                                      \
	X(archive_entry_set_filetype)                                                              \
	X(archive_entry_set_gid)                                                                   \
	X(archive_entry_set_mtime)                                                                 \
	X(archive_entry_set_perm)                                                                  \
	X(archive_entry_set_size)                                                                  \
	X(archive_entry_set_uid)                                                                   \
	X(archive_entry_size)                                                                      \
	X(archive_entry_sparse_add_entry)                                                          \
	X(archive_entry_sparse_next)                                                               \
	X(archive_entry_sparse_reset)                                                              \
	X(archive_entry_symlink)                                                                   \
	X(archive_error_string)                                                                    \
	X(archive_read_data_block)                                                                 \
	X(archive_read_free)                                                                       \
	X(archive_read_new)                                                                        \
	X(archive_read_next_header)                                                                \
	X(archive_read_open)                                                                       \
	X(archive_read_support_format_tar)                                                         \
	X(archive_set_error)                                                                       \
	X(archive_write_close)                                                                     \
	X(archive_write_data)                                                                      \
	X(archive_write_free)                                                                      \
	X(archive_write_header)                                                                    \
	X(archive_write_new)                                                                       \
	X(archive_write_open2)                                                                     \
	X(archive_write_set_bytes_in_last_block)                                                   \
	X(archive_write_set_bytes_per_block)                                                       \
	X(archive_write_set_format_pax_restricted)

typedef struct sb_archive_api {
#define SB_ARCHIVE_ENTRY(fn) __typeof__(fn) *fn;
	SB_ARCHIVE_FUNCTIONS(SB_ARCHIVE_ENTRY)
#undef SB_ARCHIVE_ENTRY
} sb_archive_api;

/* Set once, by the first successful sb_archive_load; never changed after. */
extern const sb_archive_api *sb_archive_api_loaded;

/* Load libarchive (libarchive.so.13), once per process; later calls answer the first one's
 * result. SB_E_UNSUPPORTED when it cannot be loaded, naming the library and the package that
 * provides it. Thread-safe; a call made while another thread loads waits for it. */
sb_err *sb_archive_load(void);

/* libarchive's names, through the loaded table (not in the loader itself, which fills it). A
 * function listed above but missing here fails to link, since sandbar does not link
 * libarchive; one here but not above fails to compile. */
#ifndef SB_ARCHIVE_LOADER
#define SB_AR(fn) (sb_archive_api_loaded->fn)
#define archive_entry_clear SB_AR(archive_entry_clear)
#define archive_entry_copy_pathname SB_AR(archive_entry_copy_pathname)
#define archive_entry_copy_symlink SB_AR(archive_entry_copy_symlink)
#define archive_entry_filetype SB_AR(archive_entry_filetype)
#define archive_entry_free SB_AR(archive_entry_free)
#define archive_entry_hardlink SB_AR(archive_entry_hardlink)
#define archive_entry_mtime SB_AR(archive_entry_mtime)
#define archive_entry_mtime_nsec SB_AR(archive_entry_mtime_nsec)
#define archive_entry_new SB_AR(archive_entry_new)
#define archive_entry_pathname SB_AR(archive_entry_pathname)
#define archive_entry_perm SB_AR(archive_entry_perm)
#define archive_entry_set_filetype SB_AR(archive_entry_set_filetype)
#define archive_entry_set_gid SB_AR(archive_entry_set_gid)
#define archive_entry_set_mtime SB_AR(archive_entry_set_mtime)
#define archive_entry_set_perm SB_AR(archive_entry_set_perm)
#define archive_entry_set_size SB_AR(archive_entry_set_size)
#define archive_entry_set_uid SB_AR(archive_entry_set_uid)
#define archive_entry_size SB_AR(archive_entry_size)
#define archive_entry_sparse_add_entry SB_AR(archive_entry_sparse_add_entry)
#define archive_entry_sparse_next SB_AR(archive_entry_sparse_next)
#define archive_entry_sparse_reset SB_AR(archive_entry_sparse_reset)
#define archive_entry_symlink SB_AR(archive_entry_symlink)
#define archive_error_string SB_AR(archive_error_string)
#define archive_read_data_block SB_AR(archive_read_data_block)
#define archive_read_free SB_AR(archive_read_free)
#define archive_read_new SB_AR(archive_read_new)
#define archive_read_next_header SB_AR(archive_read_next_header)
#define archive_read_open SB_AR(archive_read_open)
#define archive_read_support_format_tar SB_AR(archive_read_support_format_tar)
#define archive_set_error SB_AR(archive_set_error)
#define archive_write_close SB_AR(archive_write_close)
#define archive_write_data SB_AR(archive_write_data)
#define archive_write_free SB_AR(archive_write_free)
#define archive_write_header SB_AR(archive_write_header)
#define archive_write_new SB_AR(archive_write_new)
#define archive_write_open2 SB_AR(archive_write_open2)
#define archive_write_set_bytes_in_last_block SB_AR(archive_write_set_bytes_in_last_block)
#define archive_write_set_bytes_per_block SB_AR(archive_write_set_bytes_per_block)
#define archive_write_set_format_pax_restricted SB_AR(archive_write_set_format_pax_restricted)
#endif

#endif
