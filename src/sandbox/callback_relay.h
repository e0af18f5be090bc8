/* Private to the callback relay (callback.c) and its upstream side (callback_upstream.c): the
 * relay object of one lease and the connections it serves. */
#ifndef SANDBAR_CALLBACK_RELAY_H
#define SANDBAR_CALLBACK_RELAY_H

#include "sb_curl.h"
#include <pthread.h>

#include "callback_int.h"
#include "sandbox_int.h"

#define CURL_POOL_MAX 8 /* idle upstream handles (and their connections) kept per relay */

struct sbcb_relay {
	pthread_mutex_t mu; /* refs, workers, inflight, sends on attach */
	int refs;
	int attach; /* connection to sandbar-init (the forward's attachment) */
	sbi_reader rd;
	int stop[2]; /* pipe: the reader thread stops when it becomes readable */
	pthread_t thread;
	bool thread_started;
	sb_callback_config *cfg;
	char *lease_id;
	char *token;
	int port;
	char *cred_header;          /* "Name: value" or NULL */
	uint32_t workers, inflight; /* connections being served (queued included), upstream calls */
	pthread_cond_t work;        /* a connection queued, or stopping */
	struct cb_conn *queue, *queue_tail;
	uint32_t threads, idle_threads, queued;
	bool stopping;
	sb_callback_stats *stats;
	CURL *idle[CURL_POOL_MAX]; /* finished handles, their connections still open */
	size_t nidle;
};

typedef struct cb_conn {
	struct sbcb_relay *r;
	struct cb_conn *next;
	int fd;
	unsigned long long id;
	bool handed;
	char state[16];
} cb_conn;

/* What serving one connection came to, for the log line and the counters. */
typedef struct sbcb_outcome {
	int status;
	const char *route;
	size_t bytes_in, bytes_out;
	int kind; /* 0 allowed, 1 denied, 2 indeterminate, -1 none */
} sbcb_outcome;

/* Send q upstream and answer the client on fd; the caller has marked an unsafe request "sent"
 * in init first. */
void sbcb_upstream_call(struct sbcb_relay *r, int fd, const sbcb_request *q, const char *body,
                        size_t blen, sbcb_outcome *o);
/* Close the pooled handles (the relay is being freed). */
void sbcb_upstream_pool_drain(struct sbcb_relay *r);

#endif
