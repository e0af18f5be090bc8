/* Both halves of an incremental transfer on a tree this process reaches (a runner's native
 * delta ops, #15): the far side's selection as one tar (what `tar --no-recursion -T list` does
 * on the command path), and applying removals plus such a tar to a tree (what the staging
 * script's `rm -rf` and `tar -x` do). */
#include <sandbar/base.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct selection {
	char **add;  /* sorted: the entries to archive */
	char **pass; /* sorted, unique: the directories on their way */
	size_t n_add, n_pass;
} selection;

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool in_sorted(char **v, size_t n, const char *s)
{
	return n && bsearch(&s, v, n, sizeof *v, cmp_str) != NULL;
}

static int pick(void *ud, const char *relpath, sb_ftype type)
{
	selection *sel = ud;
	if (type != SB_FT_DIR && in_sorted(sel->add, sel->n_add, relpath))
		return SB_TAR_PICK_ADD;
	if (type == SB_FT_DIR && in_sorted(sel->pass, sel->n_pass, relpath))
		return SB_TAR_PICK_DESCEND;
	return SB_TAR_PICK_SKIP;
}

static size_t sort_unique(char **v)
{
	size_t n = sb_strv_len(v);
	if (n < 2)
		return n;
	qsort(v, n, sizeof *v, cmp_str);
	size_t w = 1;
	for (size_t r = 1; r < n; r++) {
		if (strcmp(v[r], v[w - 1]) == 0)
			free(v[r]);
		else
			v[w++] = v[r];
	}
	v[w] = NULL;
	return w;
}

sb_err *sb_tar_create_paths(const char *dir, char *const *paths, int fd, uint64_t *bytes_out)
{
	selection sel = {0};
	for (size_t i = 0; paths && paths[i]; i++) {
		sb_strv_push(&sel.add, paths[i]);
		char *p = sb_xstrdup(paths[i]);
		for (char *q = strrchr(p, '/'); q; q = strrchr(p, '/')) {
			*q = '\0';
			sb_strv_push(&sel.pass, p);
		}
		free(p);
	}
	sel.n_add = sort_unique(sel.add);
	sel.n_pass = sort_unique(sel.pass);
	sb_err *err = sb_tar_create_pick(dir, NULL, false, fd, bytes_out, pick, &sel);
	sb_strv_free(sel.add);
	sb_strv_free(sel.pass);
	return err;
}

sb_err *sb_tree_apply_delta(const char *dir, char *const *dels, int tar_fd,
                            const sb_tar_extract_opts *xo, uint64_t *bytes_out,
                            uint64_t *specials_out)
{
	if (bytes_out)
		*bytes_out = 0;
	if (specials_out)
		*specials_out = 0;
	sb_err *err = NULL;
	if (dels && dels[0]) {
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			return sb_err_sys(errno, "applying a delta to %s: opening it", dir);
		for (size_t i = 0; dels[i] && !err; i++)
			err = sb_fs_remove_below(dfd, dels[i], dir);
		close(dfd);
	}
	if (!err && tar_fd >= 0)
		err = sb_tar_extract_ex(tar_fd, dir, xo, bytes_out, specials_out);
	return err;
}
