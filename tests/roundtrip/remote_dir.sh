# --remote-dir never deletes what sandbar did not create: a non-empty directory is refused.
. "$SB_RT_LIB"
W="$T/ws"; R="$T/precious"
mkdir -p "$W" "$R" && echo keep >"$R/data" && echo x >"$W/f"
cd "$W"
if "$SB" run --via local --remote-dir "$R" -- true 2>"$T/err"; then fail "a non-empty --remote-dir was accepted"; fi
grep -q 'not empty' "$T/err" || fail "message does not say why: $(cat "$T/err")"
[ "$(cat "$R/data")" = keep ] || fail "the directory's content was touched"
# an empty one is fine, and sandbar's own (from that run) can be reused
E="$T/empty"; mkdir "$E"
"$SB" run -q --via local --remote-dir "$E" -- true || fail "an empty --remote-dir was refused"
"$SB" run -q --via local --remote-dir "$E" -- true || fail "sandbar's own --remote-dir was refused"
echo ok
