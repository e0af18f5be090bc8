# Disk full during the restore (a small tmpfs holds the workspace): the lease is kept, the
# message says "no space left on device" and names the `sandbar pull` that finishes the job,
# and once there is room that pull brings the work back.
. "$SB_RT_LIB"
[ "$(id -u)" = 0 ] || fail "this test mounts a tmpfs and needs root"
FS="$T/fs"
mkdir -p "$FS"
mount -t tmpfs -o size=4m sb-roundtrip "$FS" || fail "cannot mount a tmpfs on $FS"
W="$FS/ws"
mkdir -p "$W" && echo small >"$W/a.txt" && cd "$W"
rc=0
"$SB" run -- sh -c 'head -c 8000000 /dev/urandom >big.bin && echo edit >a.txt' 2>"$T/err" || rc=$?
[ $rc = 125 ] || fail "exit $rc after a failed restore, want 125: $(cat "$T/err")"
grep -qi 'no space left on device' "$T/err" || fail "ENOSPC not named: $(cat "$T/err")"
lease=$(sed -n 's/.*finish with `sandbar pull \([^ `]*\).*/\1/p' "$T/err" | head -n 1)
[ -n "$lease" ] || fail "no sandbar pull command in: $(cat "$T/err")"
[ ! -e big.bin ] || fail "a partial file reached the workspace"
[ -d "$SANDBAR_STATE_DIR/leases/$lease" ] || fail "lease $lease was not kept"
mount -o remount,size=64m "$FS" || fail "cannot grow the tmpfs"
"$SB" pull "$lease" -q 2>"$T/err2" || fail "sandbar pull failed: $(cat "$T/err2")"
[ "$(stat -c %s big.bin)" = 8000000 ] || fail "big.bin did not come back whole"
[ "$(cat a.txt)" = edit ] || fail "a.txt did not come back"
cd /
"$SB" lease destroy "$lease" >/dev/null 2>&1 || fail "cannot destroy the kept lease"
echo ok
