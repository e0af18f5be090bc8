/* The workspace files of a lease (files.c): what the file and workspace routes call. Paths are
 * relative to the workspace and already checked by the caller (sb_path_check_relative); every
 * function confines them beneath the workspace and acts as the lease owner. */
#ifndef SANDBAR_SERVER_FILES_H
#define SANDBAR_SERVER_FILES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <sandbar/base.h>

#include "leases.h"

/* Write all of src (read from offset 0) to rel atomically with mode, creating parents; a
 * directory at rel is SB_E_CONFLICT. */
sb_err *sbs_files_put(sbs_lease *l, const char *rel, int src, mode_t mode);
/* Copy the regular file rel to dst; *mode_out receives its permission bits. */
sb_err *sbs_files_get(sbs_lease *l, const char *rel, int dst, uint32_t *mode_out);
/* Remove rel; a non-empty directory only when recursive (SB_E_CONFLICT otherwise). */
sb_err *sbs_files_delete(sbs_lease *l, const char *rel, bool recursive);
/* An in-sandbox directory path as a path relative to the workspace (SB_E_INVAL outside). */
sb_err *sbs_files_map_dir(sbs_lease *l, const char *path, char **rel_out);
/* Replace the directory rel ("" = the workspace) with the archive read from src, keeping the
 * top-level names in keep; the old tree survives any failure. */
sb_err *sbs_files_replace_workspace(sbs_lease *l, const char *rel, int src, char **keep);
/* Write a tar of the directory rel ("" = the workspace), without what ex matches, to dst. */
sb_err *sbs_files_workspace_tar(sbs_lease *l, const char *rel, const sb_excludes *ex, int dst);

#endif
