# A 4 GiB sparse file made in the sandbox comes back sparse (its holes are not transferred as
# data), and the next staging keeps it sparse inside the sandbox (issue 13 item 7).
. "$SB_RT_LIB"
W="$T/ws"
mkdir -p "$W" && cd "$W"
t0=$(date +%s)
"$SB" run -- sh -c 'truncate -s 4G big && printf marker | dd of=big bs=1 seek=1000000 conv=notrunc 2>/dev/null' \
	2>"$T/err" || fail "run failed: $(cat "$T/err")"
t1=$(date +%s)
[ "$(stat -c %s big)" = 4294967296 ] || fail "big came back with size $(stat -c %s big)"
[ "$(dd if=big bs=1 skip=1000000 count=6 2>/dev/null)" = marker ] || fail "the data region was lost"
kib=$(du -k big | cut -f1)
[ "$kib" -lt 1024 ] || fail "big came back dense: $kib KiB allocated"
grep -q '0.0 MiB down' "$T/err" || fail "the holes were transferred: $(cat "$T/err")"
# A bound with wide headroom (well under a second here): holes are neither hashed (runtime.content_hash counts the bytes read) nor transferred (the 0.0 MiB below).
[ $((t1 - t0)) -lt 150 ] || fail "the round trip took $((t1 - t0)) s"
"$SB" run -- sh -c 'du -k big | cut -f1 >inside.kib' 2>"$T/err2" || fail "second run failed: $(cat "$T/err2")"
[ "$(cat inside.kib)" -lt 1024 ] || fail "staged dense into the sandbox: $(cat inside.kib) KiB"
grep -q '0.0 MiB up' "$T/err2" || fail "the holes were staged as data: $(cat "$T/err2")"
echo "sparse round trip: $((t1 - t0)) s"
echo ok
