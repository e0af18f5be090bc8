/* Private to the request pipeline (http.c) and its replies (http_reply.c): the request object.
 * Route files see it only as the opaque sbs_req of http.h. */
#ifndef SB_SERVER_HTTP_REQ_H
#define SB_SERVER_HTTP_REQ_H

#include <stdatomic.h>

#include "http_int.h"
#include "sb_json.h"

typedef struct hdr {
	char *name, *value;
} hdr;

/* Where a request is in its life: MHD calls the access handler again and again, and the phase
 * says what that call means. NEW -> BODY -> REPLIED, or straight to REPLIED when a reply is queued
 * early (a refusal); never backwards. */
typedef enum sbs_req_phase {
	SBS_REQ_NEW,     /* headers seen, nothing begun */
	SBS_REQ_BODY,    /* begun: the body (if any) is arriving */
	SBS_REQ_REPLIED, /* a reply is queued: any further body is dropped */
} sbs_req_phase;

struct sbs_req {
	atomic_int refs;
	sbs_server *srv;
	struct MHD_Connection *conn;
	char *raw_target;
	char *method;
	char *path; /* decoded */
	sb_query query;
	sbs_match match;
	bool matched;
	sbs_req_phase phase;
	bool refused;         /* reply queued early or pending: swallow the body */
	unsigned pend_status; /* a refusal to send at the final call */
	char *pend_code, *pend_msg;
	uint64_t discarded;
	sbs_auth_state auth;
	sb_sha256 *hash;
	sb_buf body;
	int spool_fd;
	uint64_t body_size;
	hdr *hdrs;
	size_t nhdrs;
	void (*done_fn)(void *ud);
	void *done_ud;
	unsigned status;
	atomic_uint_fast64_t bytes_out;
	int64_t start_ns;
	char lease[SB_SANDBOX_ID_MAX + 1];
};

/* Drops one reference; the last one writes the access-log line and frees the request. */
void sbs_http_req_unref(sbs_req *r);

#endif
