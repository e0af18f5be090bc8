# SIGTERM and SIGHUP of `sandbar run` stop the command, bring back what it made, release the
# sandbox (no process left) and exit 128+N. SIGKILL leaves no running sandbox either: its
# sandbar-init sees its creator die and stops the sandbox within seconds; the lease is then
# orphaned, `sandbar pull` brings its work back and then removes it.
. "$SB_RT_LIB"
W="$T/ws"
mkdir -p "$W" && cd "$W"
for sig in TERM HUP; do
	rm -f made
	: >"$T/out.$sig"
	"$SB" run -- sh -c 'echo work >made; echo ready; exec sleep 300' >"$T/out.$sig" 2>"$T/err.$sig" &
	pid=$!
	wait_ready "$T/out.$sig" $pid "$sig"
	kill -$sig $pid
	rc=0; wait $pid || rc=$?
	case $sig in TERM) want=143 ;; HUP) want=129 ;; esac
	[ $rc = $want ] || fail "$sig: exit $rc, want $want: $(cat "$T/err.$sig")"
	[ "$(cat made)" = work ] || fail "$sig: the change did not come back"
	grep -q "SIG$sig" "$T/err.$sig" || fail "$sig: no line says what happened"
	[ "$(sandbox_procs)" = 0 ] || fail "$sig: $(sandbox_procs) sandbox processes left running"
done

rm -f made
: >"$T/out.KILL"
"$SB" run -- sh -c 'echo killed-work >made; echo ready; exec sleep 300' >"$T/out.KILL" 2>"$T/err.KILL" &
pid=$!
wait_ready "$T/out.KILL" $pid KILL
[ "$(sandbox_procs)" -gt 0 ] || fail "KILL: no sandbox process to count before the kill"
kill -KILL $pid
wait $pid || true
# Counted every 0.1 s; the sandbox must be gone within 10 s (init's grace is 2 s).
i=0; while [ "$(sandbox_procs)" != 0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ "$(sandbox_procs)" = 0 ] || fail "KILL: $(sandbox_procs) sandbox processes still running 10 s later"
echo "KILL: sandbox gone $((i * 100)) ms after the kill"
[ ! -e made ] || fail "KILL: a change came back although nothing restored it"
lease=$(ls "$SANDBAR_STATE_DIR/leases" | grep '^run-')
[ "$(echo "$lease" | wc -l)" = 1 ] || fail "KILL: want one lease left, have: $lease"
"$SB" lease list >"$T/list"
grep -q "^$lease  *orphaned" "$T/list" || fail "KILL: lease not listed as orphaned: $(cat "$T/list")"
grep -q "finish with: sandbar pull $lease" "$T/list" || fail "KILL: no pull command: $(cat "$T/list")"
# pruning keeps it: it holds work
"$SB" lease prune >/dev/null 2>"$T/prune"
[ -d "$SANDBAR_STATE_DIR/leases/$lease" ] || fail "KILL: prune removed a lease holding work"
"$SB" pull "$lease" 2>"$T/pull" || fail "KILL: sandbar pull failed: $(cat "$T/pull")"
[ "$(cat made)" = killed-work ] || fail "KILL: the work did not come back through sandbar pull"
# its work is home: the pull removed it, and says so
grep -q "lease $lease removed" "$T/pull" || fail "KILL: the pull did not say it removed $lease: $(cat "$T/pull")"
[ ! -d "$SANDBAR_STATE_DIR/leases/$lease" ] || fail "KILL: the pull left lease $lease"
"$SB" run -- true 2>"$T/next" || fail "KILL: the next run failed: $(cat "$T/next")"

# `sandbar lease prune` removes a lease whose sandbox died (here: its init killed) and that
# holds no work, and leaves a live one alone.
dead=$("$SB" lease acquire)
live=$("$SB" lease acquire)
ipid=$(sed -n 's/.*"init_pid": *\([0-9]*\).*/\1/p' "$SANDBAR_STATE_DIR/leases/$dead/lease.json")
[ -n "$ipid" ] || fail "prune: no init pid in the lease record"
kill -KILL "$ipid"
i=0; while kill -0 "$ipid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
"$SB" lease prune >"$T/pruned" 2>&1 || fail "prune failed: $(cat "$T/pruned")"
[ ! -d "$SANDBAR_STATE_DIR/leases/$dead" ] || fail "prune left the dead lease $dead: $(cat "$T/pruned")"
[ -d "$SANDBAR_STATE_DIR/leases/$live" ] || fail "prune removed the live lease $live"
"$SB" lease destroy "$live" || fail "cannot destroy $live"
[ "$(sandbox_procs)" = 0 ] || fail "$(sandbox_procs) sandbox processes left at the end"
echo ok
