# Run as root on a workspace owned by someone else: changed and new files (and new
# directories, and the git objects of a fetched branch) keep that owner.
. "$SB_RT_LIB"
[ "$(id -u)" = 0 ] || fail "this test needs root (it checks what root leaves behind)"
W="$T/ws"
make_repo "$W"
chown -R nobody:nogroup "$W"
cd "$W"
"$SB" run $GITID -q -- sh -c 'echo changed >a.txt && mkdir -p new/dir && echo n >new/dir/f && git add -A && git commit -qm c' \
	|| fail "run failed"
[ "$(cat a.txt)" = changed ] || fail "change not restored"
bad=$(find . -user root | head -5)
[ -z "$bad" ] || fail "root-owned files left in the workspace: $bad"
echo ok
