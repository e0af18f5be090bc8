/* The sandbox layer's JSON views, internal to sandbar (the public sandbox.h exposes no jansson
 * type): the daemon reports the host's health with it. */
#ifndef SANDBAR_SB_SANDBOX_JSON_H
#define SANDBAR_SB_SANDBOX_JSON_H

#include <sandbar/sandbox.h>

#include "sb_json.h"

/* {"ok":..,"message":..,"bwrap":..,"root":..,"uid":..,"gid":..,"cgroup":"v1",
 *  "limits":{"memory":true,"pids":true,"cpu":false,"rlimits":true,"seccomp":true,"ttl":true}} */
json_t *sb_sandbox_health_json(const sb_sandbox_health *h);

#endif
