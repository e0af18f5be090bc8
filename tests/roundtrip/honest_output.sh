# Honest output (issue 13 items 8 and 9): a timeout and an OOM kill are named in the summary
# and in --json; -q still prints conflicts and warnings; skipped FIFOs and hard-linked files are
# counted and named; no change summary after a failed staging; a run from a subdirectory of a
# repository says what it stages; an expired lease lists as expired; one unit (MiB).
. "$SB_RT_LIB"
W="$T/ws"
mkdir -p "$W" && cd "$W"
echo base >a.txt

# A timeout, in words and in --json.
rc=0; "$SB" run --timeout 2s -- sleep 60 >/dev/null 2>"$T/to" || rc=$?
[ $rc = 124 ] || fail "timeout: exit $rc, want 124: $(cat "$T/to")"
grep -q '^sandbar: command timed out after 2s$' "$T/to" || fail "timeout not named: $(cat "$T/to")"
grep -q ' MiB up, .* MiB down' "$T/to" || fail "summary not in MiB: $(cat "$T/to")"
rc=0; "$SB" run --json --timeout 2s -- sleep 60 >"$T/to.json" 2>/dev/null || rc=$?
grep -q '"outcome": *"timed out after 2s"' "$T/to.json" || fail "timeout not in --json: $(cat "$T/to.json")"
grep -q '"timed_out": *true' "$T/to.json" || fail "timed_out not true: $(cat "$T/to.json")"

# An OOM kill, in words and in --json.
rc=0; "$SB" run --memory 64M -- tail /dev/zero >/dev/null 2>"$T/oom" || rc=$?
[ $rc = 137 ] || fail "oom: exit $rc, want 137: $(cat "$T/oom")"
grep -q '^sandbar: command killed: out of memory (limit 64M)$' "$T/oom" || fail "OOM not named: $(cat "$T/oom")"
rc=0; "$SB" run --json --memory 64M -- tail /dev/zero >"$T/oom.json" 2>/dev/null || rc=$?
grep -q '"oom_killed": *true' "$T/oom.json" || fail "oom_killed not in --json: $(cat "$T/oom.json")"
grep -q '"outcome": *"killed: out of memory (limit 64M)"' "$T/oom.json" || fail "OOM outcome not in --json"

# -q: a conflict (both sides changed a.txt during the run) is still printed on stderr.
: >"$T/q.out"
"$SB" run -q -- sh -c 'echo remote >a.txt; echo ready; while [ ! -e go ]; do sleep 0.1; done' \
	>"$T/q.out" 2>"$T/q.err" &
pid=$!
wait_ready "$T/q.out" $pid -q
echo local >a.txt
# the sandbox waits for `go`, which only its own workspace can hold: made through sandbar exec
lease=$(ls "$SANDBAR_STATE_DIR/leases" | grep '^run-' | head -n 1)
"$SB" exec --lease "$lease" -- touch /workspace/go >/dev/null 2>&1 || { kill -KILL $pid; fail "-q: cannot release the command"; }
rc=0; wait $pid || rc=$?
grep -q '^sandbar: conflict: a.txt' "$T/q.err" || fail "-q hid the conflict: $(cat "$T/q.err")"
grep -q 'added' "$T/q.err" && fail "-q printed the summary: $(cat "$T/q.err")"
[ "$(cat a.txt)" = local ] || fail "-q: the local edit was overwritten"
rm -f a.txt.sandbar-remote go

# FIFOs skipped and hard links that become copies: counted and named (and -q warns).
mkfifo pipe1
echo linked >h1 && ln h1 h2
"$SB" run -- true 2>"$T/sp" || fail "run with a FIFO failed: $(cat "$T/sp")"
grep -q 'not staged: 1 FIFOs, sockets or devices' "$T/sp" || fail "FIFO not counted: $(cat "$T/sp")"
grep -q '^sandbar:   ! pipe1$' "$T/sp" || fail "FIFO not named: $(cat "$T/sp")"
grep -q '2 hard-linked files staged as copies' "$T/sp" || fail "hard links not counted: $(cat "$T/sp")"
grep -q '^sandbar:   = h1$' "$T/sp" && grep -q '^sandbar:   = h2$' "$T/sp" || fail "hard links not named: $(cat "$T/sp")"
"$SB" run -q -- true 2>"$T/spq" || fail "run -q failed"
grep -q 'warning: 1 FIFOs' "$T/spq" && grep -q 'warning: 2 hard-linked' "$T/spq" || fail "-q hid the warnings: $(cat "$T/spq")"
"$SB" run --json -- true >"$T/sp.json" 2>/dev/null || fail "json run failed"
grep -q '"hard_links_copied": *{"count": *2' "$T/sp.json" || fail "hard links not in --json: $(cat "$T/sp.json")"
rm -f pipe1 h1 h2

# A failed staging prints why, and no "0 added ... 0 ms" summary.
rc=0; "$SB" run --via local --remote-dir /proc/sandbar-nowhere --force -- true 2>"$T/st" || rc=$?
[ $rc = 125 ] || fail "failed staging: exit $rc, want 125: $(cat "$T/st")"
grep -q 'staging' "$T/st" || fail "failed staging not explained: $(cat "$T/st")"
grep -q 'added\|acquire [0-9]*ms' "$T/st" && fail "a summary after a failed staging: $(cat "$T/st")"

# From a subdirectory of a git repository: says which directory it stages.
make_repo "$T/repo"
mkdir -p "$T/repo/sub" && cd "$T/repo/sub"
"$SB" run -- true 2>"$T/sub" || fail "run from a subdirectory failed: $(cat "$T/sub")"
grep -q "staging $T/repo/sub only, a subdirectory of the git repository $T/repo" "$T/sub" \
	|| fail "subdirectory not named: $(cat "$T/sub")"
cd "$W"

# An expired lease lists as expired (its TTL is recorded; `serve` enforces it).
exp=$("$SB" lease acquire --ttl 1s)
i=0; while ! "$SB" lease list | grep -q "^$exp  *expired" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
"$SB" lease list | grep -q "^$exp  *expired" || fail "expired lease not shown as expired: $("$SB" lease list)"
"$SB" lease destroy "$exp" || fail "cannot destroy $exp"
echo ok
