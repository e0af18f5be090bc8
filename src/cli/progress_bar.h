/* A one-line terminal progress bar for staging and restore: bytes done of total, rate, label.
 * Drawn on stderr only when it is a terminal, at most 10 times a second, and erased when done. */
#ifndef SB_CLI_PROGRESS_BAR_H
#define SB_CLI_PROGRESS_BAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cli_bar {
	int fd;
	bool enabled;
	bool drawn;
	int64_t started_ms;
	int64_t last_draw_ms;
	const char *label;
	uint64_t done, total;
} cli_bar;

/* enabled = fd is a terminal and the user did not ask for --quiet. */
void cli_bar_init(cli_bar *bar, int fd, bool enabled);
/* Start a new phase ("staging", "restoring"): resets rate and counters. */
void cli_bar_phase(cli_bar *bar, const char *label);
/* Record progress; redraws when 100 ms have passed since the last draw (or at 100%). */
void cli_bar_update(cli_bar *bar, uint64_t done, uint64_t total);
/* Erase the bar so following output starts on a clean line. */
void cli_bar_clear(cli_bar *bar);
/* Render the bar text for the given state into out (for tests). */
void cli_bar_render(const cli_bar *bar, int64_t now_ms, char *out, size_t outlen);

#endif
