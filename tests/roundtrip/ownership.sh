# Run as root on a workspace owned by someone else: changed and new files (and new
# directories, empty ones too, and the git objects of a fetched branch) keep that owner, on the
# default (incremental) restore and on the full one.
. "$SB_RT_LIB"
[ "$(id -u)" = 0 ] || fail "this test needs root (it checks what root leaves behind)"
W="$T/ws"
make_repo "$W"
chown -R nobody:nogroup "$W"
cd "$W"
"$SB" run $GITID -q -- sh -c 'echo changed >a.txt && mkdir -p new/dir new/empty/deeper && echo n >new/dir/f && git add -A && git commit -qm c' \
	|| fail "run failed"
[ -d new/empty/deeper ] || fail "the new empty directory did not come back"
SANDBAR_SYNC=full "$SB" run -q -- sh -c 'mkdir -p full/empty && echo f >full/f && mkdir -p new/dir/more' \
	|| fail "full run failed"
[ -d full/empty ] && [ -d new/dir/more ] || fail "the new empty directories did not come back (full)"
[ "$(cat a.txt)" = changed ] || fail "change not restored"
bad=$(find . -user root | head -5)
[ -z "$bad" ] || fail "root-owned files left in the workspace: $bad"
echo ok
