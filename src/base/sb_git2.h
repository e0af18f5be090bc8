/* libgit2, loaded when first needed (sb_git_lib_init) instead of at the start of every sandbar
 * process: its dependency tree (mbedtls, libssh2, Kerberos, PCRE2, http-parser) costs each
 * process ~5 ms of dynamic linking, and only runs with a repository or ignore rules use it.
 * git.c and ignore.c include this header instead of <git2.h>: the types and constants are
 * libgit2's, and after a successful sb_git_lib_init the git_* names below call into the loaded
 * library. */
#ifndef SB_GIT2_H
#define SB_GIT2_H

#include <git2.h>
#include <sandbar/base.h>

#define SB_GIT2_SONAME "libgit2.so.1.5"
#define SB_GIT2_PACKAGE "libgit2-1.5"

/* Every libgit2 function sandbar calls, each named once; the table's entries have the types
 * <git2.h> declares. */
#define SB_GIT2_FUNCTIONS(X)                                                                       \
	X(git_config_free)                                                                         \
	X(git_config_set_string)                                                                   \
	X(git_error_last)                                                                          \
	X(git_fetch_options_init)                                                                  \
	X(git_ignore_add_rule)                                                                     \
	X(git_ignore_path_is_ignored)                                                              \
	X(git_libgit2_init)                                                                        \
	X(git_libgit2_opts)                                                                        \
	X(git_libgit2_shutdown)                                                                    \
	X(git_oid_equal)                                                                           \
	X(git_oid_fromstr)                                                                         \
	X(git_oid_tostr)                                                                           \
	X(git_reference_is_valid_name)                                                             \
	X(git_reference_name_to_id)                                                                \
	X(git_remote_create_options_init)                                                          \
	X(git_remote_create_with_opts)                                                             \
	X(git_remote_fetch)                                                                        \
	X(git_remote_free)                                                                         \
	X(git_repository_config)                                                                   \
	X(git_repository_free)                                                                     \
	X(git_repository_init)                                                                     \
	X(git_repository_open_ext)                                                                 \
	X(git_repository_path)                                                                     \
	X(git_repository_workdir)                                                                  \
	X(git_revwalk_free)                                                                        \
	X(git_revwalk_hide)                                                                        \
	X(git_revwalk_new)                                                                         \
	X(git_revwalk_next)                                                                        \
	X(git_revwalk_push)

typedef struct sb_git2_api {
#define SB_GIT2_ENTRY(fn) __typeof__(fn) *fn;
	SB_GIT2_FUNCTIONS(SB_GIT2_ENTRY)
#undef SB_GIT2_ENTRY
} sb_git2_api;

/* Set once, by the first successful load; never changed after. */
extern const sb_git2_api *sb_git2_api_loaded;

/* Load libgit2 (libgit2.so.1.5) once per process, then take one reference on its global state
 * (git_libgit2_init), with repository ownership validation off: sandbar, often root, reads
 * users' repositories but runs nothing from them. The caller drops the reference with
 * git_libgit2_shutdown. SB_E_UNSUPPORTED, taking no reference, when the library cannot be
 * loaded: the error names it and the package that provides it. Thread-safe. */
sb_err *sb_git_lib_init(void);

/* libgit2's names, through the loaded table (not in the loader itself, which fills it). A
 * function listed above but missing here fails to link, since sandbar does not link libgit2;
 * one here but not above fails to compile. */
#ifndef SB_GIT2_LOADER
#define SB_GIT2(fn) (sb_git2_api_loaded->fn)
#define git_config_free SB_GIT2(git_config_free)
#define git_config_set_string SB_GIT2(git_config_set_string)
#define git_error_last SB_GIT2(git_error_last)
#define git_fetch_options_init SB_GIT2(git_fetch_options_init)
#define git_ignore_add_rule SB_GIT2(git_ignore_add_rule)
#define git_ignore_path_is_ignored SB_GIT2(git_ignore_path_is_ignored)
#define git_libgit2_init SB_GIT2(git_libgit2_init)
#define git_libgit2_opts SB_GIT2(git_libgit2_opts)
#define git_libgit2_shutdown SB_GIT2(git_libgit2_shutdown)
#define git_oid_equal SB_GIT2(git_oid_equal)
#define git_oid_fromstr SB_GIT2(git_oid_fromstr)
#define git_oid_tostr SB_GIT2(git_oid_tostr)
#define git_reference_is_valid_name SB_GIT2(git_reference_is_valid_name)
#define git_reference_name_to_id SB_GIT2(git_reference_name_to_id)
#define git_remote_create_options_init SB_GIT2(git_remote_create_options_init)
#define git_remote_create_with_opts SB_GIT2(git_remote_create_with_opts)
#define git_remote_fetch SB_GIT2(git_remote_fetch)
#define git_remote_free SB_GIT2(git_remote_free)
#define git_repository_config SB_GIT2(git_repository_config)
#define git_repository_free SB_GIT2(git_repository_free)
#define git_repository_init SB_GIT2(git_repository_init)
#define git_repository_open_ext SB_GIT2(git_repository_open_ext)
#define git_repository_path SB_GIT2(git_repository_path)
#define git_repository_workdir SB_GIT2(git_repository_workdir)
#define git_revwalk_free SB_GIT2(git_revwalk_free)
#define git_revwalk_hide SB_GIT2(git_revwalk_hide)
#define git_revwalk_new SB_GIT2(git_revwalk_new)
#define git_revwalk_next SB_GIT2(git_revwalk_next)
#define git_revwalk_push SB_GIT2(git_revwalk_push)
#endif

#endif
