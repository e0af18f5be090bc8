/* Fuzz target: the route matcher over the daemon's native route table. Any raw path either
 * fails cleanly or matches with decoded parameters that contain no NUL and, for single-segment
 * parameters, no '/'; "." and ".." never come through as segments. */
#include <stdlib.h>
#include <string.h>

#include "../src/server/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void noop(sbs_req *r, void *ud)
{
	(void)r;
	(void)ud;
}

static sbs_router *table(void)
{
	static sbs_router *rt;
	if (rt)
		return rt;
	rt = sbs_router_new();
	const char *pats[] = {
	    "/v1/health",
	    "/metrics",
	    "/v1/leases",
	    "/v1/leases/{id}",
	    "/v1/leases/{id}/renew",
	    "/v1/leases/{id}/exec",
	    "/v1/leases/{id}/execs/{exec_id}",
	    "/v1/leases/{id}/execs/{exec_id}/output",
	    "/v1/leases/{id}/files/{path...}",
	    "/v1/leases/{id}/workspace",
	};
	for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++)
		sbs_router_add(rt, "GET", pats[i], 0, noop, NULL);
	sbs_router_set_fallback(rt, "/api/", noop, NULL);
	return rt;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *path = sb_xstrndup((const char *)data, size);
	sbs_match m;
	sb_err *err = NULL;
	bool ok = sbs_router_match(table(), "GET", path, &m, &err);
	if (ok) {
		for (size_t i = 0; i < m.nparams; i++) {
			const char *v = m.values[i];
			bool rest = strstr(m.names[i], "...}") != NULL;
			if (!rest && strchr(v, '/'))
				abort();
			if (!strcmp(v, ".") || !strcmp(v, ".."))
				abort();
			if (rest && (strstr(v, "/../") || !strncmp(v, "../", 3)))
				abort();
		}
	}
	if (ok && err)
		abort();
	sb_err_free(err);
	sbs_match_deinit(&m);
	free(path);
	return 0;
}
