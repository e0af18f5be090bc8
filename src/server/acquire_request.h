/* The body of POST /v1/leases (docs/api.md "acquire"): the lease parameters, the `network`
 * object (allowlist and the operator's secrets by name), the `callback` and the `mounts`
 * (within the operator's mount_allow), parsed and checked into sbs_lease_params. */
#ifndef SB_SERVER_ACQUIRE_REQUEST_H
#define SB_SERVER_ACQUIRE_REQUEST_H

#include "server_int.h"

typedef struct sbs_acquire_req {
	sbs_lease_params p; /* its pointers point into this request and into the body */
	sb_callback_config *cb;
	char *cb_text;
	sb_egress_config *egress;
	char **secret_names;
	sb_sandbox_mount *mounts;
	size_t nmounts;
	int64_t sleep_after_ms;
	/* Set with the error when the request asks for what the operator does not allow (a mount
	 * outside mount_allow): answer 403 with this code instead of the error's own status. */
	const char *forbidden;
} sbs_acquire_req;

/* Parse body b (borrowed: it must outlive the request) into *q (zeroed here). On error *q is
 * deinited already. */
sb_err *sbs_acquire_req_parse(sbs_server *srv, const json_t *b, sbs_acquire_req *q);
void sbs_acquire_req_deinit(sbs_acquire_req *q);

#endif
