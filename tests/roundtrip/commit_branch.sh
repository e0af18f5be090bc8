# A commit made inside the sandbox arrives as a branch; the host's HEAD, index and other refs
# are untouched, and .git is never copied back file by file.
. "$SB_RT_LIB"
W="$T/ws"
make_repo "$W"
cd "$W"
echo staged-change >a.txt && git add a.txt
head0=$(git rev-parse HEAD); idx0=$(git ls-files -s | sha256sum); refs0=$(git for-each-ref | sha256sum)
"$SB" run $GITID --branch sandbar/work -- sh -c 'git log --oneline >/dev/null || exit 9
  echo new >b.txt && git add b.txt && git commit -qm one && echo more >>b.txt && git commit -qam two' \
	>"$T/out" 2>"$T/err" || fail "run failed: $(cat "$T/err")"
[ "$(git rev-parse HEAD)" = "$head0" ] || fail "HEAD moved"
[ "$(git ls-files -s | sha256sum)" = "$idx0" ] || fail "index changed"
[ "$(git rev-list --count "$head0"..sandbar/work)" = 2 ] || fail "branch does not hold 2 commits"
[ "$(git show sandbar/work:b.txt)" = "$(printf 'new\nmore')" ] || fail "branch content wrong"
[ "$(git for-each-ref | grep -v refs/heads/sandbar/work | sha256sum)" = "$refs0" ] || fail "other refs changed"
grep -q '2 commits made in the sandbox on branch sandbar/work' "$T/err" || fail "summary does not name the branch: $(cat "$T/err")"
[ -f b.txt ] || fail "working-tree change did not come back"
echo ok
