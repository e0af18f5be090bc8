/* Byte progress lines and status events (spec §5.1, §5.2). A reporter throttles to one line per
 * 10% step or per 2 s, always emits the first report and the terminal 100% exactly once, and
 * mirrors every line into the status sink without the "[sandbar] " prefix.
 */
#include "rt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const phase_names[] = {
    [SB_PHASE_GIT_SYNC] = "git_sync",
    [SB_PHASE_CONFIG_SYNC] = "config_sync",
    [SB_PHASE_ADAPTER_STARTUP] = "adapter_startup",
    [SB_PHASE_RESTORE] = "restore",
    [SB_PHASE_EXPORT] = "export",
    [SB_PHASE_FINALIZE] = "finalize",
    [SB_PHASE_RUN_ACTIVITY] = "run_activity",
};

const char *sb_runtime_phase_name(sb_runtime_phase phase)
{
	if ((unsigned)phase >= sizeof phase_names / sizeof phase_names[0])
		return "unknown";
	return phase_names[phase];
}

void sb_rt_status(const sb_runtime_status_sink *s, sb_runtime_phase phase, const char *msg)
{
	if (s && s->fn)
		s->fn(s->ud, phase, msg);
}

void sb_rt_say(const sb_runtime_progress_sink *s, const char *text)
{
	if (!s || !s->fn) {
		sb_warn("%s", text);
		return;
	}
	char *line = sb_strfmt("%s %s\n", SB_RUNTIME_LOG_PREFIX, text);
	s->fn(s->ud, line);
	free(line);
}

void sb_rt_progress_init(sb_rt_progress *p, const sb_runtime_progress_sink *sink,
                         const sb_runtime_status_sink *status, sb_runtime_phase phase,
                         const char *verb, const char *label, const char *direction)
{
	memset(p, 0, sizeof *p);
	if (sink) {
		p->sink = *sink;
		p->on_bytes = sink->bytes;
		p->bytes_ud = sink->ud;
	}
	if (status)
		p->status = *status;
	p->phase = phase;
	p->verb = verb;
	p->label = label;
	p->direction = direction;
	p->step_percent = 10;
	p->min_interval_ms = 2000;
	p->clock_ms = sb_mono_ms;
}

static unsigned percent_of(uint64_t done, uint64_t total)
{
	if (total == 0)
		return 100;
	if (done >= total)
		return 100;
	/* round(done / total * 100) without overflow for any realistic size */
	long double r = (long double)done * 100.0L / (long double)total;
	unsigned pc = (unsigned)(r + 0.5L);
	return pc > 100 ? 100 : pc;
}

static void emit(sb_rt_progress *p, const char *tail)
{
	sb_buf body = SB_BUF_INIT;
	sb_buf_appends(&body, p->verb);
	if (p->label && p->label[0])
		sb_buf_appendf(&body, " %s", p->label);
	sb_buf_appendf(&body, " %s sandbox: %s", p->direction, tail);
	if (p->sink.fn) {
		char *line = sb_strfmt("%s %s\n", SB_RUNTIME_LOG_PREFIX, sb_buf_cstr(&body));
		p->sink.fn(p->sink.ud, line);
		free(line);
	}
	sb_rt_status(&p->status, p->phase, sb_buf_cstr(&body));
	sb_buf_deinit(&body);
	p->last_emit_ms = p->clock_ms();
	p->started = true;
}

static double mb(uint64_t n)
{
	return (double)n / 1048576.0;
}

static void emit_known(sb_rt_progress *p, uint64_t done, uint64_t total)
{
	char tail[96];
	snprintf(tail, sizeof tail, "%u%% (%.1f/%.1f MB)", percent_of(done, total), mb(done),
	         mb(total));
	emit(p, tail);
}

static bool active(const sb_rt_progress *p)
{
	return p && (p->sink.fn || p->status.fn) && !p->finished;
}

void sb_rt_progress_report(sb_rt_progress *p, uint64_t done, uint64_t total)
{
	if (p && p->on_bytes)
		p->on_bytes(p->bytes_ud, done, total);
	if (!active(p))
		return;
	p->last_done = done;
	p->last_total = total;
	int64_t now = p->clock_ms();
	bool interval = p->started && now - p->last_emit_ms >= p->min_interval_ms;
	if (total == 0) {
		if (!p->started || interval) {
			char tail[64];
			snprintf(tail, sizeof tail, "%.1f MB", mb(done));
			emit(p, tail);
		}
		return;
	}
	unsigned bucket = percent_of(done, total) / p->step_percent;
	bool terminal = done >= total;
	if (!p->started || bucket > p->last_bucket || interval || terminal) {
		emit_known(p, done, total);
		p->last_bucket = bucket;
		if (terminal)
			p->finished = true;
	}
}

void sb_rt_progress_complete(sb_rt_progress *p, uint64_t done, uint64_t total)
{
	if (total == 0)
		total = done;
	if (p && p->on_bytes && !p->finished)
		p->on_bytes(p->bytes_ud, total, total);
	if (!active(p))
		return;
	emit_known(p, total, total);
	p->finished = true;
}

void sb_rt_progress_fail(sb_rt_progress *p)
{
	if (!active(p))
		return;
	char tail[96];
	if (p->last_total > 0)
		snprintf(tail, sizeof tail, "failed at %u%% (%.1f/%.1f MB)",
		         percent_of(p->last_done, p->last_total), mb(p->last_done),
		         mb(p->last_total));
	else
		snprintf(tail, sizeof tail, "failed after %.1f MB", mb(p->last_done));
	emit(p, tail);
	p->finished = true;
}

void sb_rt_timer_start(sb_rt_timer *t, const sb_runtime_progress_sink *sink, const char *phase,
                       const char *artifact, bool native)
{
	memset(t, 0, sizeof *t);
	if (sink)
		t->sink = *sink;
	t->phase = phase;
	t->artifact = artifact;
	t->native = native;
	t->t0 = t->last = sb_mono_ms();
}

void sb_rt_timer_mark(sb_rt_timer *t, const char *step)
{
	int64_t now = sb_mono_ms();
	sb_buf_appendf(&t->steps, "%s%s %lldms", t->steps.len ? ", " : "", step,
	               (long long)(now - t->last));
	t->last = now;
}

void sb_rt_timer_finish(sb_rt_timer *t, bool failed)
{
	if (t->finished)
		return;
	t->finished = true;
	char *text = sb_strfmt("sync %s %s: %s%s(total %lldms)%s [transport=%s]", t->phase,
	                       t->artifact, sb_buf_cstr(&t->steps), t->steps.len ? " " : "",
	                       (long long)(sb_mono_ms() - t->t0), failed ? " failed" : "",
	                       t->native ? "native" : "fallback");
	if (t->sink.fn)
		sb_rt_say(&t->sink, text);
	else
		sb_debug("%s", text);
	free(text);
	sb_buf_deinit(&t->steps);
}

void sb_rt_progress_fn(void *ud, uint64_t done, uint64_t total)
{
	sb_rt_progress_report(ud, done, total);
}
