/* Shared benchmark helpers: timing, medians, and the row format scripts/bench reads. */
#ifndef SB_BENCHUTIL_H
#define SB_BENCHUTIL_H
#include <stddef.h>
#include <stdint.h>

/* Median of n samples (sorts in place). */
double sbb_median(double *v, size_t n);
/* Print one row: figure, ours, baseline, ratio (ratio = ours/baseline unless given). */
void sbb_row(const char *figure, const char *ours, const char *baseline, const char *ratio);
/* Seconds from a monotonic clock. */
double sbb_now(void);
#endif
