/* The three-way merge's private parts, shared by merge.c (plan and apply) and merge_whole.c (a
 * new directory moved in one rename). */
#ifndef SB_RUNTIME_MERGE_INT_H
#define SB_RUNTIME_MERGE_INT_H

#include "rt.h"

typedef enum action { ACT_APPLY, ACT_DELETE, ACT_CONFLICT } action;

typedef struct item {
	const char *path;
	sb_snap_entry *b, *s, *c;
	action act;
	sb_conflict_kind kind;
	bool placed; /* moved into place with a directory above it (merge_whole.c) */
} item;

typedef struct merger {
	const sb_rt_merge *m;
	sb_snap src, cur;
	int rootfd;
	item *v;
	size_t n, cap;
	sb_restore_report *rep;
	sb_restore_report scratch;
	bool moved_ok;   /* source files may be renamed out of the staging dir */
	char **left_out; /* what the source walk passed over (sorted), when it walked */
	mode_t dir_mode; /* what mkdirat(0755) gives under this process's umask */
	/* The parent directory of the previous entry, kept open: sorted paths mostly share it. */
	char *pc_path;
	int pc_fd;
	size_t cap_added, cap_changed, cap_deleted;
	char **added, **changed, **deleted;
	/* the directories the merge created (the report lists files and links only) */
	char **dirs_made;
	size_t n_dirs_made, cap_dirs_made;
} merger;

/* The parent directory of path below the workspace root, opened without following symlinks
 * (borrowed: valid until the next call), and *name set to the last segment. */
sb_err *sb_rt_merge_open_parent(merger *g, const char *path, int *pfd, const char **name);
/* Record a directory the merge created. */
void sb_rt_merge_made_dir(merger *g, const char *path);
/* Whether an error opening a parent means a local entry blocks the path (a symlink, a file). */
bool sb_rt_merge_blocked(const sb_err *err);

/* ---- merge_whole.c */
/* The mode mkdirat(…, 0755) gives under this process's umask. */
mode_t sb_rt_created_dir_mode(void);
/* Whether the directory item k may be moved whole; [*lo, *hi) are the items below it. */
bool sb_rt_merge_whole_dir_movable(merger *g, size_t k, size_t *lo, size_t *hi);
/* Move it; *moved false when not possible here (the caller goes entry by entry). */
sb_err *sb_rt_merge_move_whole_dir(merger *g, size_t k, size_t lo, size_t hi, bool *moved);

#endif
