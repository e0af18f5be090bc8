# A restore refuses a tree that unpacks to more file data than the limit, before applying any
# of it (issue 13 item 7): hard links made inside become copies on the way back, so a small
# archive can expand without bound. The lease is kept, the message says how to raise the
# limit, and `sandbar pull` with a larger one brings the work back whole.
. "$SB_RT_LIB"
W="$T/ws"
mkdir -p "$W" && echo before >"$W/a.txt" && cd "$W"
# 1 MiB of data and 40 hard links to it: 41 MiB once extracted, ~1 MiB on the wire.
rc=0
"$SB" run --max-restore-size 8M -- sh -c \
	'head -c 1048576 /dev/urandom >one && i=0; while [ $i -lt 40 ]; do ln one link$i; i=$((i+1)); done; echo after >a.txt' \
	2>"$T/err" || rc=$?
[ $rc = 125 ] || fail "exit $rc after a refused restore, want 125: $(cat "$T/err")"
grep -q 'expands to more than the limit of 8388608 bytes' "$T/err" || fail "limit not named: $(cat "$T/err")"
grep -q -- '--max-restore-size' "$T/err" || fail "no advice on raising the limit: $(cat "$T/err")"
[ "$(cat a.txt)" = before ] || fail "a.txt was applied although the restore was refused"
[ ! -e one ] && [ ! -e link0 ] || fail "part of the refused tree reached the workspace"
lease=$(sed -n 's/.*finish with `sandbar pull \([^ `]*\).*/\1/p' "$T/err" | head -n 1)
[ -n "$lease" ] || fail "no sandbar pull command in: $(cat "$T/err")"
# the same limit refuses again, through pull
rc=0
"$SB" pull "$lease" -q --max-restore-size 8M 2>"$T/err2" || rc=$?
[ $rc != 0 ] || fail "pull applied a tree over its limit"
grep -q -- '--max-restore-size' "$T/err2" || fail "pull gave no advice: $(cat "$T/err2")"
# a malformed limit is refused before anything happens
rc=0
"$SB" pull "$lease" -q --max-restore-size lots 2>"$T/err3" || rc=$?
[ $rc = 2 ] || [ $rc = 125 ] || fail "exit $rc for --max-restore-size lots: $(cat "$T/err3")"
grep -q 'max_restore_size = lots' "$T/err3" || fail "bad size not named: $(cat "$T/err3")"
# a larger limit (from the environment, as the config key's variable) finishes the job
SANDBAR_MAX_RESTORE_SIZE=64M "$SB" pull "$lease" -q 2>"$T/err4" || fail "pull failed: $(cat "$T/err4")"
[ "$(cat a.txt)" = after ] || fail "a.txt did not come back"
[ "$(stat -c %s link39)" = 1048576 ] || fail "the links did not come back whole"
cmp -s one link17 || fail "a link's copy differs from its target"
cd /
"$SB" lease destroy "$lease" >/dev/null 2>&1 || fail "cannot destroy the kept lease"
echo ok
