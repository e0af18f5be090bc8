/* sandbar-serve-test: the real daemon from the library, for the server tests and benchmarks
 * (the CLI's `sandbar serve` is the production wrapper). Options mirror `sandbar serve`, plus
 * --port-file (written once listening, for tests using port 0) and a few limit knobs. */
#include <sandbar/server.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(void)
{
	fprintf(
	    stderr,
	    "usage: sandbar-serve-test [--listen HOST:PORT] [--socket PATH] "
	    "[--no-tcp] [--state-dir DIR] [--token-file FILE] [--hmac-keys FILE] "
	    "[--expected-host HOST] [--tls-cert FILE --tls-key FILE] "
	    "[--port-file FILE] [--keepalive-ms N] [--max-json-bytes N] "
	    "[--max-upload-bytes N] [--reap-ms N] [--max-connections N] [--max-waiting-per-peer N] "
	    "[--header-timeout-ms N] [--max-output N] [--warm N] [--no-access-log]\n");
}

int main(int argc, char **argv)
{
	sb_server_config cfg;
	sb_server_config_init(&cfg);
	const char *port_file = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool takes = true;
		if (!strcmp(a, "--listen"))
			cfg.listen = v;
		else if (!strcmp(a, "--socket"))
			cfg.socket_path = v;
		else if (!strcmp(a, "--state-dir"))
			cfg.state_dir = v;
		else if (!strcmp(a, "--token-file"))
			cfg.token_file = v;
		else if (!strcmp(a, "--hmac-keys"))
			cfg.hmac_keys_file = v;
		else if (!strcmp(a, "--expected-host"))
			cfg.expected_host = v;
		else if (!strcmp(a, "--tls-cert"))
			cfg.tls_cert_file = v;
		else if (!strcmp(a, "--tls-key"))
			cfg.tls_key_file = v;
		else if (!strcmp(a, "--port-file"))
			port_file = v;
		else if (!strcmp(a, "--keepalive-ms") && v)
			cfg.limits.keepalive_ms = atoll(v);
		else if (!strcmp(a, "--max-json-bytes") && v)
			cfg.limits.max_json_bytes = (size_t)atoll(v);
		else if (!strcmp(a, "--max-upload-bytes") && v)
			cfg.limits.max_upload_bytes = (uint64_t)atoll(v);
		else if (!strcmp(a, "--reap-ms") && v)
			cfg.limits.reap_ms = atoll(v);
		else if (!strcmp(a, "--max-connections") && v)
			cfg.limits.max_connections = (unsigned)atoi(v);
		else if (!strcmp(a, "--max-waiting-per-peer") && v)
			cfg.limits.max_waiting_per_peer = (unsigned)atoi(v);
		else if (!strcmp(a, "--header-timeout-ms") && v)
			cfg.limits.header_timeout_ms = atoll(v);
		else if (!strcmp(a, "--max-output") && v)
			cfg.limits.output_cap = (uint64_t)atoll(v);
		else if (!strcmp(a, "--warm") && v)
			cfg.warm = (unsigned)atoi(v);
		else {
			takes = false;
			if (!strcmp(a, "--no-tcp"))
				cfg.listen_tcp = false;
			else if (!strcmp(a, "--no-access-log"))
				cfg.access_log = false;
			else {
				usage();
				return 2;
			}
		}
		if (takes) {
			if (!v) {
				usage();
				return 2;
			}
			i++;
		}
	}
	if (getenv("SANDBAR_DEBUG"))
		sb_log_set_level(SB_LOG_DEBUG);
	sb_server *s = NULL;
	sb_err *err = sb_server_new(&cfg, &s);
	if (!err)
		err = sb_server_start(s);
	if (err) {
		fprintf(stderr, "sandbar-serve-test: %s\n", err->msg);
		sb_err_free(err);
		sb_server_free(s);
		return 1;
	}
	if (port_file) {
		char buf[32];
		int n = snprintf(buf, sizeof buf, "%d\n", sb_server_port(s));
		err = sb_fs_write_atomic(port_file, buf, (size_t)n, 0644);
		if (err) {
			fprintf(stderr, "sandbar-serve-test: %s\n", err->msg);
			sb_err_free(err);
			sb_server_free(s);
			return 1;
		}
	}
	err = sb_server_run_until_signal(s);
	sb_server_free(s);
	if (err) {
		fprintf(stderr, "sandbar-serve-test: %s\n", err->msg);
		sb_err_free(err);
		return 1;
	}
	return 0;
}
