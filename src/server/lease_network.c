/* A lease's network and mounts as the API shows them (issue 14): the normalised network object
 * and the mounts list (fingerprint and record), the live counters of its egress proxy (lease
 * info and /v1/metrics), and the access-log line for each destination a proxy denies. */
#include "leases_int.h"
#include "server_int.h"

#include <stdlib.h>
#include <string.h>
#include "sb_json.h"

json_t *sbs_lease_params_network_json(const sbs_lease_params *p)
{
	sb_net_mode m = p->network ? SB_NET_FULL : p->egress ? SB_NET_ALLOWLIST : SB_NET_NONE;
	json_t *net = json_pack("{s:s}", "mode", sb_net_mode_name(m));
	if (p->egress) {
		json_t *allow = json_array();
		for (size_t i = 0; p->egress->allow && p->egress->allow[i]; i++)
			json_array_append_new(allow, json_string(p->egress->allow[i]));
		json_object_set_new(net, "allow", allow);
		/* by name only: only when given, so other fingerprints stay as they were */
		if (p->secret_names && p->secret_names[0]) {
			json_t *names = json_array();
			for (size_t i = 0; p->secret_names[i]; i++)
				json_array_append_new(names, json_string(p->secret_names[i]));
			json_object_set_new(net, "secrets", names);
		}
	}
	return net;
}

json_t *sbs_lease_params_mounts_json(const sbs_lease_params *p)
{
	if (!p->nmounts)
		return NULL;
	json_t *a = json_array();
	for (size_t i = 0; i < p->nmounts; i++)
		json_array_append_new(a, json_pack("{s:s, s:s, s:s}", "host", p->mounts[i].host,
		                                   "path", p->mounts[i].target, "mode",
		                                   p->mounts[i].rw ? "rw" : "ro"));
	return a;
}

/* A referenced live lease with a sandbox, or NULL. */
static sbs_lease *find_live(sbs_leases *ls, const char *id)
{
	pthread_mutex_lock(&ls->mu);
	sbs_lease *l = sbs_lt_find(ls, id);
	if (l && l->sb)
		l->refs++;
	else
		l = NULL;
	pthread_mutex_unlock(&ls->mu);
	return l;
}

void sbs_leases_annotate_network(sbs_leases *ls, json_t *lease)
{
	const char *id = json_string_value(json_object_get(lease, "id"));
	json_t *net = json_object_get(lease, "network");
	if (!id || !json_is_object(net))
		return;
	sbs_lease *l = find_live(ls, id);
	if (!l)
		return;
	sb_egress_stats st;
	if (sb_sandbox_egress_stats(l->sb, &st)) {
		json_object_set_new(net, "connections_allowed",
		                    json_integer((json_int_t)st.conns_allowed));
		json_object_set_new(net, "connections_denied",
		                    json_integer((json_int_t)st.conns_denied));
		json_object_set_new(net, "bytes_up", json_integer((json_int_t)st.bytes_up));
		json_object_set_new(net, "bytes_down", json_integer((json_int_t)st.bytes_down));
		json_t *d = json_array();
		for (size_t i = 0; st.denied && st.denied[i]; i++)
			json_array_append_new(d, json_string(st.denied[i]));
		json_object_set_new(net, "denied", d);
		json_object_set_new(net, "denied_more", json_integer((json_int_t)st.denied_more));
		sb_egress_stats_deinit(&st);
	}
	sbs_lease_unref(l);
}

void sbs_leases_egress_metrics(sbs_leases *ls, sb_buf *out)
{
	char **ids = NULL;
	pthread_mutex_lock(&ls->mu);
	for (size_t i = 0; i < ls->n; i++)
		if (ls->v[i]->sb)
			sb_strv_push(&ids, ls->v[i]->info.id);
	pthread_mutex_unlock(&ls->mu);
	sb_buf conns = SB_BUF_INIT, bytes = SB_BUF_INIT;
	for (size_t i = 0; ids && ids[i]; i++) {
		sbs_lease *l = find_live(ls, ids[i]);
		sb_egress_stats st;
		if (l && sb_sandbox_egress_stats(l->sb, &st)) {
			/* lease ids are [A-Za-z0-9_-]: nothing to escape in a label */
			sb_buf_appendf(&conns,
			               "sandbar_egress_connections_total{lease=\"%s\",outcome="
			               "\"allowed\"} %llu\n"
			               "sandbar_egress_connections_total{lease=\"%s\",outcome="
			               "\"denied\"} %llu\n",
			               ids[i], (unsigned long long)st.conns_allowed, ids[i],
			               (unsigned long long)st.conns_denied);
			sb_buf_appendf(
			    &bytes,
			    "sandbar_egress_bytes_total{lease=\"%s\",direction=\"up\"} %llu\n"
			    "sandbar_egress_bytes_total{lease=\"%s\",direction=\"down\"} "
			    "%llu\n",
			    ids[i], (unsigned long long)st.bytes_up, ids[i],
			    (unsigned long long)st.bytes_down);
			sb_egress_stats_deinit(&st);
		}
		if (l)
			sbs_lease_unref(l);
	}
	sb_strv_free(ids);
	sb_buf_appends(out, "# HELP sandbar_egress_connections_total Connections through each "
	                    "allowlist lease's egress proxy, allowed or denied (since its proxy "
	                    "started in this daemon).\n"
	                    "# TYPE sandbar_egress_connections_total counter\n");
	sb_buf_append(out, conns.data ? conns.data : "", conns.len);
	sb_buf_appends(out, "# HELP sandbar_egress_bytes_total Bytes relayed by each allowlist "
	                    "lease's egress proxy: up = sandbox to upstream, down = back.\n"
	                    "# TYPE sandbar_egress_bytes_total counter\n");
	sb_buf_append(out, bytes.data ? bytes.data : "", bytes.len);
	sb_buf_deinit(&conns);
	sb_buf_deinit(&bytes);
}

void sbs_egress_denied_log(void *ud, const char *lease_id, const char *what)
{
	sbs_server *srv = ud;
	if (!srv->access_log)
		return;
	json_t *j = json_pack("{s:s, s:s, s:s}", "type", "egress_denied", "lease", lease_id,
	                      "destination", what);
	char *s = sb_json_dumps(j);
	sb_info("%s", s);
	free(s);
	json_decref(j);
}
