/* Shared benchmark helpers: timing, medians, and the row format scripts/bench reads. */
#ifndef SB_BENCHUTIL_H
#define SB_BENCHUTIL_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Median of n samples (sorts in place). */
double sbb_median(double *v, size_t n);
/* The q-quantile (0..1) of n samples, nearest rank (sorts in place). */
double sbb_percentile(double *v, size_t n, double q);
/* Print one row: figure, ours, baseline, ratio (ratio = ours/baseline unless given). */
void sbb_row(const char *figure, const char *ours, const char *baseline, const char *ratio);
/* Seconds from a monotonic clock. */
double sbb_now(void);
/* Print a row of two durations in seconds as milliseconds, ratio ours/baseline; base_name, when
 * given and not empty, is shown in parentheses after the baseline. */
void sbb_row_ms(const char *figure, double ours_s, double base_s, const char *base_name);
/* The bare baseline: seconds for posix_spawnp(argv[0]) + waitpid. Exits 1 if the command cannot
 * be started or does not exit 0 (a failed baseline would make every ratio meaningless). */
double sbb_spawn_wait(char *const *argv);
/* nfiles files under src (created): nfiles - nlarge small ones (2-14 KiB) and nlarge large ones
 * making up the rest of exactly total bytes, spread over 50 directories of 3 subdirectories,
 * each file at another offset of one pseudo-random buffer (no two alike). */
typedef struct sb_err sb_err;
sb_err *sbb_make_tree(const char *src, int nfiles, int nlarge, size_t total);
/* A fresh temp directory under $TMPDIR (or /tmp) named prefix-XXXXXX (sb_fs_mkdtemp), with
 * mode (sandboxes bind from below it: 0711 or 0755); exits 1 when it cannot be made. */
char *sbb_tmpdir(const char *prefix, mode_t mode);
#endif
