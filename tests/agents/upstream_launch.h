/* Starting tests/agents/upstream.py, the real HTTP(S) upstream of the agents tests. */
#ifndef SB_AGENTS_UPSTREAM_LAUNCH_H
#define SB_AGENTS_UPSTREAM_LAUNCH_H

#include <sys/types.h>

/* Start it on addr:port as name, logging requests to log; inside the network namespace netns
 * when not NULL; TLS when cert and key are given. Its stdout goes to ready_path; returns once
 * it says it listens (the test fails after 30 s). */
pid_t agt_upstream_start(const char *netns, const char *addr, int port, const char *name,
                         const char *log, const char *cert, const char *key,
                         const char *ready_path);

#endif
