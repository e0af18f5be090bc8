/* sync.warm_pool_matches_exactly: which acquires may claim a warm sandbox of a configuration
 * (sbs_warm_matches, the only gate sbs_warm_take has). The configurations are the daemon's:
 * the native default (network none) and the Paperclip bridge's (network full, with or without
 * the operator's compat_callback). Any difference in network mode, egress allowlist, mounts,
 * named secrets, a limit or the callback never claims; what is set at the claim (lease id, TTL,
 * audit fields, metadata) does not matter. */
#include <string.h>

#include "server/warm_pool.h"
#include "srvtest.h"

#define CB_JSON "{\"name\":\"pc\",\"preset\":\"paperclip\"}"

static sb_callback_config cb, other_cb;
static const sbs_warm_config def = {.name = "default"};
static const sbs_warm_config bridge = {
    .name = "paperclip", .network = true, .callback = &cb, .callback_json = CB_JSON};
static const sbs_warm_config bridge_plain = {.name = "paperclip", .network = true};

/* Which of the three configurations p matches, as "dbp" letters ("" = none). */
static const char *which(const sbs_lease_params *p)
{
	static char s[4];
	size_t n = 0;
	if (sbs_warm_matches(&def, p))
		s[n++] = 'd';
	if (sbs_warm_matches(&bridge, p))
		s[n++] = 'b';
	if (sbs_warm_matches(&bridge_plain, p))
		s[n++] = 'p';
	s[n] = '\0';
	return s;
}

static void claim_time_fields_do_not_matter(void **state)
{
	(void)state;
	sbs_lease_params p = {.acquisition_id = "a"};
	assert_string_equal(which(&p), "d");
	json_t *md = json_pack("{s:s}", "k", "v");
	p = (sbs_lease_params){.acquisition_id = "a",
	                       .lease_id = "mine-1",
	                       .fingerprint = "fp",
	                       .ttl_s = 600,
	                       .issue_id = "i",
	                       .run_id = "r",
	                       .reuse_scope = "s",
	                       .reuse_key = "k",
	                       .metadata = md};
	assert_string_equal(which(&p), "d");
	char *none[] = {NULL};
	p.secret_names = none; /* an empty list is no secret */
	assert_string_equal(which(&p), "d");
	p.network = true;
	assert_string_equal(which(&p), "p");
	p.callback = &cb;
	p.callback_json = CB_JSON;
	assert_string_equal(which(&p), "b");
	json_decref(md);
}

static void the_network_mode_must_match(void **state)
{
	(void)state;
	int dummy = 0;
	const sb_egress_config *egress = (const sb_egress_config *)(void *)&dummy;
	/* allowlist: network false with a proxy; never the default's none */
	sbs_lease_params p = {.acquisition_id = "a", .egress = egress};
	assert_string_equal(which(&p), "");
	p.network = true; /* not a mode the API makes, and still no match */
	assert_string_equal(which(&p), "");
	p.callback = &cb;
	p.callback_json = CB_JSON;
	assert_string_equal(which(&p), "");
	p.egress = NULL;
	p.network = false; /* none with the bridge's callback: neither */
	assert_string_equal(which(&p), "");
}

static void the_callback_must_be_the_same(void **state)
{
	(void)state;
	sbs_lease_params p = {.acquisition_id = "a", .network = true};
	p.callback = &other_cb;
	p.callback_json = "{\"name\":\"other\",\"preset\":\"paperclip\"}";
	assert_string_equal(which(&p), "");
	p.callback_json = CB_JSON; /* the same JSON: the same configuration */
	assert_string_equal(which(&p), "b");
	p.callback_json = NULL; /* a callback without its JSON cannot be compared */
	assert_string_equal(which(&p), "");
	p.callback = NULL;
	p.callback_json = CB_JSON; /* nor JSON without a callback */
	assert_string_equal(which(&p), "");
}

static void mounts_secrets_and_every_limit_must_be_the_default(void **state)
{
	(void)state;
	for (int net = 0; net < 2; net++) {
		sbs_lease_params base = {.acquisition_id = "a", .network = net == 1};
		if (net) {
			base.callback = &cb;
			base.callback_json = CB_JSON;
		}
		const char *match = net ? "b" : "d";
		assert_string_equal(which(&base), match);

		sbs_lease_params p = base;
		sb_sandbox_mount m = {.host = "/srv", .target = "/srv"};
		p.mounts = &m;
		p.nmounts = 1;
		assert_string_equal(which(&p), "");

		p = base;
		char *secrets[] = {"token", NULL};
		p.secret_names = secrets;
		assert_string_equal(which(&p), "");

		uint64_t *fields[] = {&p.limits.memory_bytes, &p.limits.pids,
		                      &p.limits.cpu_weight,   &p.limits.nofile,
		                      &p.limits.nproc,        &p.limits.spool_bytes};
		for (size_t k = 0; k < sizeof fields / sizeof *fields; k++) {
			p = base; /* fields point into p, which stays where it is */
			*fields[k] = 1;
			assert_string_equal(which(&p), "");
		}
		p = base;
		p.limits.ttl_s = 60; /* the TTL is set at the claim */
		assert_string_equal(which(&p), match);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(claim_time_fields_do_not_matter),
	    cmocka_unit_test(the_network_mode_must_match),
	    cmocka_unit_test(the_callback_must_be_the_same),
	    cmocka_unit_test(mounts_secrets_and_every_limit_must_be_the_default),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
