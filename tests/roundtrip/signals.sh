# SIGTERM and SIGHUP of `sandbar run` stop the command, bring back what it made, release the
# sandbox (no process left) and exit 128+N; SIGKILL leaves no running sandbox either.
. "$SB_RT_LIB"
W="$T/ws"
mkdir -p "$W" && cd "$W"
for sig in TERM HUP; do
	rm -f made
	"$SB" run -- sh -c 'echo work >made; echo ready; exec sleep 300' >"$T/out.$sig" 2>"$T/err.$sig" &
	pid=$!
	i=0; while ! grep -q ready "$T/out.$sig" && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
	grep -q ready "$T/out.$sig" || { kill -KILL $pid; fail "$sig: the command never started"; }
	kill -$sig $pid
	rc=0; wait $pid || rc=$?
	case $sig in TERM) want=143 ;; HUP) want=129 ;; esac
	[ $rc = $want ] || fail "$sig: exit $rc, want $want: $(cat "$T/err.$sig")"
	[ "$(cat made)" = work ] || fail "$sig: the change did not come back"
	grep -q "SIG$sig" "$T/err.$sig" || fail "$sig: no line says what happened"
	[ "$(sandbox_procs)" = 0 ] || fail "$sig: $(sandbox_procs) sandbox processes left running"
done
echo ok
