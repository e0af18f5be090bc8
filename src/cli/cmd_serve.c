/* `sandbar serve`: the daemon. Parses flags into an sb_server_config and hands over to the
 * server library; everything else (auth, routes, leases, recovery) lives there. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <sandbar/server.h>

#include "cli.h"

static const char serve_help[] =
    "usage: sandbar serve [options]\n"
    "\n"
    "Run the sandbox daemon: the native API under /v1 and the Paperclip sandbox bridge\n"
    "protocol under /api/paperclip-sandbox/v1 and /v2. Every route except GET /v1/health needs\n"
    "a bearer token or an HMAC-signed request; with neither configured every request is\n"
    "refused. SIGTERM drains requests and exits, leaving sandboxes running; the next start\n"
    "re-adopts them.\n"
    "\n"
    "options:\n"
    "      --listen HOST:PORT   TCP address (default 127.0.0.1:7469; '[::1]:7469' for IPv6)\n"
    "      --socket PATH        also listen on a unix socket\n"
    "      --no-tcp             listen only on --socket\n"
    "      --state-dir DIR      leases, spools and sandbar.db (default: SANDBAR_STATE_DIR, the\n"
    "                           config file, then $XDG_STATE_HOME/sandbar or /var/lib/sandbar)\n"
    "      --token-file FILE    bearer token (also SANDBAR_TOKEN_FILE; SANDBAR_TOKEN holds the\n"
    "                           token itself)\n"
    "      --hmac-keys FILE     `key-id secret` lines for HMAC-SHA256 signed requests\n"
    "      --expected-host HOST the Host signed requests must carry (pinning)\n"
    "      --tls-cert FILE      serve HTTPS with this PEM certificate ...\n"
    "      --tls-key FILE       ... and this PEM private key\n"
    "      --max-output SIZE    most output per stream a JSON exec result returns whole\n"
    "                           (default and maximum 1G, the sandbox spool); a longer one\n"
    "                           is answered 413 output_too_large, never cut\n"
    "      --max-connections N  connections served at once (a thread each), and as many more\n"
    "                           still sending their request (default 8192); one peer may hold\n"
    "                           at most 3/4 of the waiting ones, its oldest go first\n"
    "      --header-timeout S   seconds a connection has to send its request head (default 10)\n"
    "      --warm N             keep N sandboxes (0..64, default 0) started for each acquire\n"
    "                           configuration the daemon serves by default, 2N in all: the\n"
    "                           native one (POST /v1/leases with network none and no mounts,\n"
    "                           callback or limits) and the Paperclip bridge's (network full\n"
    "                           and the compat callback, if any: every /api/paperclip-sandbox\n"
    "                           acquire, and so `sandbar run --bridge`). An acquire of exactly\n"
    "                           one of them, by whichever route, claims one instead of starting\n"
    "                           a sandbox (lease id, ttl_s and metadata do not matter), and\n"
    "                           that pool refills in the background; any other configuration\n"
    "                           starts its own. A claimed sandbox is never used again; the\n"
    "                           waiting ones are not leases and go when the daemon stops\n"
    "      --log-json           log as JSON lines\n"
    "  -v, --verbose            debug logging\n"
    "  -h, --help               this text\n"
    "\n"
    "The config file's [serve] section also takes (docs/api.md):\n"
    "  mount_allow = PATH                 host paths API clients may mount below (repeatable;\n"
    "                                     none by default: no mounts through the API)\n"
    "  secret.NAME = env:VAR|file:PATH    a secret clients name in network.secrets, with\n"
    "  secret.NAME.hosts = HOST[,HOST]    the hosts it goes to (required),\n"
    "  secret.NAME.header = HEADER        its header (default Authorization: Bearer) and\n"
    "  secret.NAME.env = VAR              the placeholder variable inside (default VAR)\n"
    "  warm = N                           like --warm: N per configuration (the command\n"
    "                                     line wins)\n";

/* Every followed exec holds a few descriptors (spool files, the init connection, the client
 * socket): the usual soft limit of 1024 would cap the daemon at about 200 streams. */
static void raise_nofile_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	/* The hard limit (an unlimited one taken as 1Mi, the kernel's usual nr_open). */
	rlim_t want = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;
	if (rl.rlim_cur >= want)
		return;
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		sb_warn("could not raise the open-file limit to %llu: %s", (unsigned long long)want,
		        strerror(errno));
}

int cmd_serve(int argc, char **argv)
{
	enum {
		OPT_LISTEN = 256,
		OPT_SOCKET,
		OPT_NO_TCP,
		OPT_TOKEN_FILE,
		OPT_HMAC,
		OPT_HOST,
		OPT_CERT,
		OPT_KEY,
		OPT_LOG_JSON,
		OPT_MAX_OUTPUT,
		OPT_MAX_CONN,
		OPT_HEADER_TIMEOUT,
		OPT_WARM
	};
	static const struct option longopts[] = {
	    {"listen", required_argument, NULL, OPT_LISTEN},
	    {"socket", required_argument, NULL, OPT_SOCKET},
	    {"no-tcp", no_argument, NULL, OPT_NO_TCP},
	    {"state-dir", required_argument, NULL, CLI_OPT_STATE_DIR},
	    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
	    {"hmac-keys", required_argument, NULL, OPT_HMAC},
	    {"expected-host", required_argument, NULL, OPT_HOST},
	    {"tls-cert", required_argument, NULL, OPT_CERT},
	    {"tls-key", required_argument, NULL, OPT_KEY},
	    {"log-json", no_argument, NULL, OPT_LOG_JSON},
	    {"max-output", required_argument, NULL, OPT_MAX_OUTPUT},
	    {"max-connections", required_argument, NULL, OPT_MAX_CONN},
	    {"header-timeout", required_argument, NULL, OPT_HEADER_TIMEOUT},
	    {"warm", required_argument, NULL, OPT_WARM},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	sb_server_config scfg;
	sb_server_config_init(&scfg);
	cli_config cfg = {.program = "serve"};
	int rc = 0, c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":vh", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_LISTEN:
			scfg.listen = optarg;
			break;
		case OPT_SOCKET:
			scfg.socket_path = optarg;
			break;
		case OPT_NO_TCP:
			scfg.listen_tcp = false;
			break;
		case OPT_TOKEN_FILE:
			free(cfg.token_file);
			cfg.token_file = sb_xstrdup(optarg);
			break;
		case OPT_HMAC:
			scfg.hmac_keys_file = optarg;
			break;
		case OPT_HOST:
			scfg.expected_host = optarg;
			break;
		case OPT_CERT:
			scfg.tls_cert_file = optarg;
			break;
		case OPT_KEY:
			scfg.tls_key_file = optarg;
			break;
		case OPT_LOG_JSON:
			sb_log_set_json(true);
			break;
		case OPT_MAX_OUTPUT: {
			uint64_t v = 0;
			sb_err *e = sb_parse_size(optarg, &v);
			if (e || v == 0) {
				sb_err_free(e);
				rc = cli_usage_error(
				    "serve",
				    "--max-output needs a size such as 512M or 1G, not \"%s\"",
				    optarg);
				goto out;
			}
			scfg.limits.output_cap = v;
			break;
		}
		case OPT_MAX_CONN: {
			char *end = NULL;
			unsigned long v = strtoul(optarg, &end, 10);
			if (!end || *end || v < 16 || v > 1000000) {
				rc = cli_usage_error(
				    "serve", "--max-connections takes 16..1000000, not \"%s\"",
				    optarg);
				goto out;
			}
			scfg.limits.max_connections = scfg.limits.max_waiting = (unsigned)v;
			break;
		}
		case OPT_HEADER_TIMEOUT: {
			char *end = NULL;
			unsigned long v = strtoul(optarg, &end, 10);
			if (!end || *end || v < 1 || v > 300) {
				rc = cli_usage_error(
				    "serve", "--header-timeout takes 1..300 seconds, not \"%s\"",
				    optarg);
				goto out;
			}
			scfg.limits.header_timeout_ms = (int64_t)v * 1000;
			break;
		}
		case OPT_WARM:
			if (!cli_parse_warm(optarg, &cfg.warm)) {
				rc = cli_usage_error("serve",
				                     "--warm takes 0..%d sandboxes, not \"%s\"",
				                     CLI_WARM_MAX, optarg);
				goto out;
			}
			cfg.warm_origin = "command line"; /* over the config file's */
			break;
		case 'v':
			sb_log_set_level(SB_LOG_DEBUG);
			break;
		default: {
			int done = cli_common_option("serve", c, argv, &cfg, serve_help);
			if (done >= 0) {
				rc = done;
				goto out;
			}
			break;
		}
		}
	}
	if (optind < argc) {
		rc = cli_usage_error("serve", "unexpected argument \"%s\"", argv[optind]);
		goto out;
	}
	if (!scfg.tls_cert_file != !scfg.tls_key_file) {
		rc = cli_usage_error("serve", "--tls-cert and --tls-key go together");
		goto out;
	}
	if (!scfg.listen_tcp && !scfg.socket_path) {
		rc = cli_usage_error("serve", "--no-tcp needs --socket");
		goto out;
	}
	sb_err *err = cli_config_resolve(&cfg);
	if (err) {
		rc = cli_fail_err("serve", err);
		goto out;
	}
	char *state = cli_state_dir(&cfg);
	scfg.state_dir = state;
	scfg.token_file = cfg.token_file;
	scfg.sandbox.default_memory_bytes = cfg.memory_bytes;
	scfg.compat_callback = cfg.compat_callback;
	scfg.callbacks = cfg.callbacks;
	scfg.ncallbacks = cfg.ncallbacks;
	scfg.secrets = cfg.secrets;
	scfg.nsecrets = cfg.nsecrets;
	scfg.mount_allow = (const char *const *)cfg.mount_allow;
	scfg.warm = cfg.warm;
	/* test options: a hosts file for the proxies' resolver, a CA for upstreams */
	const char *hf = getenv("SANDBAR_TEST_PROXY_HOSTS"),
	           *ca = getenv("SANDBAR_TEST_PROXY_UPSTREAM_CA");
	scfg.egress_hosts_file = hf && *hf ? hf : NULL;
	scfg.egress_upstream_ca = ca && *ca ? ca : NULL;
	/* The server waits for SIGTERM/SIGINT on a signalfd: block them in every thread. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	raise_nofile_limit();
	/* A thread per served connection would otherwise get an arena each (up to 8 per core),
	 * and their free memory is hard to give back. */
	mallopt(M_ARENA_MAX, 4);
	sb_server *srv = NULL;
	err = sb_fs_mkdir_p(state, 0700);
	if (!err) {
		/* what cannot work is said at start, not at the first acquire */
		sb_sandbox_config hc = scfg.sandbox;
		hc.state_dir = state;
		sb_sandbox_health h;
		sb_sandbox_health_check(&hc, &h);
		if (!h.ok)
			err = sb_err_new(SB_E_UNSUPPORTED,
			                 "sandboxes cannot be created on this host: %s (`sandbar "
			                 "doctor` names the fix for each piece)",
			                 h.message ? h.message : "unknown reason");
		sb_sandbox_health_deinit(&h);
	}
	if (!err)
		err = sb_server_new(&scfg, &srv);
	if (!err)
		err = sb_server_start(srv);
	if (!err) {
		if (scfg.listen_tcp)
			sb_info("listening on %s (port %d)%s%s",
			        scfg.listen ? scfg.listen : SB_SERVER_LISTEN_DEFAULT,
			        sb_server_port(srv), scfg.socket_path ? " and " : "",
			        scfg.socket_path ? scfg.socket_path : "");
		err = sb_server_run_until_signal(srv);
	}
	if (err)
		rc = cli_fail_err("serve", err);
	sb_server_free(srv);
	free(state);
out:
	cli_config_deinit(&cfg);
	return rc;
}
