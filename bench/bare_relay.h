/* A bare TCP relay for bench_proxy: the least any user-space proxy must do (accept, connect,
 * move bytes both ways with splice(), as the egress proxy does), with no parsing and no policy.
 * The sandboxed command's path crosses two TCP connections where the direct client crosses one;
 * this relay measures what that second connection alone costs on the machine. */
#ifndef SANDBAR_BENCH_BARE_RELAY_H
#define SANDBAR_BENCH_BARE_RELAY_H

/* Starts a relay thread on 127.0.0.1 forwarding every connection to 127.0.0.1:upstream_port;
 * returns the port it listens on (the process exits if it cannot listen). */
int bare_relay_start(int upstream_port);

#endif
