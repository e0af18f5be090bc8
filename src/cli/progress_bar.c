/* Terminal progress bar (see progress_bar.h). Redraws are throttled to 10 per second because a
 * fast local copy reports progress thousands of times a second and each redraw is a write(2). */
#include "progress_bar.h"

#include <sandbar/base.h>

#include <stdio.h>
#include <string.h>

#define BAR_WIDTH 24
#define MIN_REDRAW_MS 100

void cli_bar_init(cli_bar *bar, int fd, bool enabled)
{
	memset(bar, 0, sizeof *bar);
	bar->fd = fd;
	bar->enabled = enabled;
	bar->label = "";
}

void cli_bar_phase(cli_bar *bar, const char *label)
{
	bar->label = label;
	bar->started_ms = sb_mono_ms();
	bar->last_draw_ms = 0;
	bar->done = 0;
	bar->total = 0;
}

static double mb(uint64_t bytes)
{
	return (double)bytes / (1024.0 * 1024.0);
}

void cli_bar_render(const cli_bar *bar, int64_t now_ms, char *out, size_t outlen)
{
	char cells[BAR_WIDTH + 1];
	int filled = 0;
	if (bar->total > 0) {
		uint64_t d = bar->done > bar->total ? bar->total : bar->done;
		filled = (int)((double)d / (double)bar->total * BAR_WIDTH);
	}
	for (int i = 0; i < BAR_WIDTH; i++)
		cells[i] = i < filled ? '#' : '.';
	cells[BAR_WIDTH] = '\0';
	double secs = (double)(now_ms - bar->started_ms) / 1000.0;
	double rate = secs > 0.05 ? mb(bar->done) / secs : 0.0;
	if (bar->total > 0)
		snprintf(out, outlen, "%-10s [%s] %.1f/%.1f MiB %.1f MiB/s", bar->label, cells,
		         mb(bar->done), mb(bar->total), rate);
	else
		snprintf(out, outlen, "%-10s [%s] %.1f MiB %.1f MiB/s", bar->label, cells,
		         mb(bar->done), rate);
}

static void draw(cli_bar *bar, int64_t now)
{
	char text[160];
	cli_bar_render(bar, now, text, sizeof text);
	char line[192];
	int n = snprintf(line, sizeof line, "\r%s\033[K", text);
	if (n > 0)
		sb_err_free(sb_write_all(bar->fd, line,
		                         (size_t)n < sizeof line ? (size_t)n : sizeof line - 1));
	bar->drawn = true;
	bar->last_draw_ms = now;
}

void cli_bar_update(cli_bar *bar, uint64_t done, uint64_t total)
{
	bar->done = done;
	bar->total = total;
	if (!bar->enabled)
		return;
	/* The bar is erased when the phase ends, so skipping a final frame loses nothing. */
	int64_t now = sb_mono_ms();
	if (bar->drawn && now - bar->last_draw_ms < MIN_REDRAW_MS)
		return;
	draw(bar, now);
}

void cli_bar_clear(cli_bar *bar)
{
	if (!bar->enabled || !bar->drawn)
		return;
	static const char erase[] = "\r\033[K";
	sb_err_free(sb_write_all(bar->fd, erase, sizeof erase - 1));
	bar->drawn = false;
}
