/* Shared by tar_create.c and tar_extract.c: libarchive, loaded on first use (sb_archive.h), under
 * a thread-local UTF-8 locale (tar_locale.c). */
#ifndef SANDBAR_BASE_TAR_INT_H
#define SANDBAR_BASE_TAR_INT_H

#include <locale.h>

#include "fs_internal.h"
#include "sb_archive.h"

/* Switch this thread to a UTF-8 LC_CTYPE (so libarchive keeps names byte-exact); returns the
 * previous locale for sb_tar_leave_utf8, or 0 (with a warning) when the host has none. */
locale_t sb_tar_enter_utf8(void);
void sb_tar_leave_utf8(locale_t prev);

#endif
