/* The egress proxy's worker threads: a connection is served on an idle worker when there is
 * one, else on a new thread, up to a bound; a worker idle for a while ends. Creating and ending
 * a thread per connection (a stack mapped, unmapped and the TLB shootdown that goes with it)
 * was most of what a small request through the proxy cost beyond its two extra hops. */
#include "proxy_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#define IDLE_S 30

typedef struct task {
	void (*fn)(void *);
	void *arg;
	struct task *next;
} task;

struct sbpx_pool {
	pthread_mutex_t mu;
	pthread_cond_t work, gone;
	task *head, *tail;
	size_t idle, wake, threads, max, stack; /* idle: waiting and not claimed */
	bool stopping;
};

sbpx_pool *sbpx_pool_new(size_t max_threads, size_t stack)
{
	sbpx_pool *p = sb_xcalloc(1, sizeof *p);
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->work, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&p->gone, NULL);
	p->max = max_threads;
	p->stack = stack;
	return p;
}

static void *worker(void *arg)
{
	sbpx_pool *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		if (p->head) {
			task *t = p->head;
			p->head = t->next;
			if (!p->head)
				p->tail = NULL;
			pthread_mutex_unlock(&p->mu);
			t->fn(t->arg);
			free(t);
			pthread_mutex_lock(&p->mu);
			continue;
		}
		if (p->stopping)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += IDLE_S;
		p->idle++;
		int rc = pthread_cond_timedwait(&p->work, &p->mu, &ts);
		if (p->wake) { /* claimed by sbpx_pool_run, which counted us busy already */
			p->wake--;
			continue;
		}
		p->idle--;
		if (rc == ETIMEDOUT)
			break;
	}
	p->threads--;
	pthread_cond_broadcast(&p->gone);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

bool sbpx_pool_run(sbpx_pool *p, void (*fn)(void *), void *arg)
{
	task *t = sb_xcalloc(1, sizeof *t);
	t->fn = fn;
	t->arg = arg;
	pthread_mutex_lock(&p->mu);
	bool ok = !p->stopping;
	if (ok && p->idle) {
		/* every task has a worker of its own that looks at the queue after it is queued:
		 * a claimed idle one, or a new one, so none waits behind another's long relay */
		p->idle--;
		p->wake++;
		pthread_cond_signal(&p->work);
	} else if (ok) {
		ok = p->threads < p->max;
		if (ok) {
			pthread_attr_t a;
			pthread_attr_init(&a);
			pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
			pthread_attr_setstacksize(&a, p->stack);
			pthread_t th;
			ok = pthread_create(&th, &a, worker, p) == 0;
			pthread_attr_destroy(&a);
			if (ok)
				p->threads++;
		}
	}
	if (ok) {
		if (p->tail)
			p->tail->next = t;
		else
			p->head = t;
		p->tail = t;
	}
	pthread_mutex_unlock(&p->mu);
	if (!ok)
		free(t);
	return ok;
}

void sbpx_pool_free(sbpx_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->work);
	while (p->threads)
		pthread_cond_wait(&p->gone, &p->mu);
	pthread_mutex_unlock(&p->mu);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->gone);
	free(p);
}
