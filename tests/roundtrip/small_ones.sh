# The smaller items: `sandbar help run` shows the run help; `--memory 10` is "too small";
# --dry-run shows names with control characters escaped.
. "$SB_RT_LIB"
"$SB" help run | grep -q '^usage: sandbar run' || fail "sandbar help run does not show the run help"
if "$SB" run --memory 10 -- true 2>"$T/err"; then fail "--memory 10 accepted"; fi
grep -q 'too small' "$T/err" || fail "no 'too small': $(cat "$T/err")"
W="$T/ws"; mkdir -p "$W" && cd "$W"
printf x >"$(printf 'e\033[31m')"; printf x >"$(printf 'n\nsandbar: forged')"
"$SB" run --dry-run >"$T/plan"
grep -q 'stage "e\\033\[31m"' "$T/plan" || fail "ESC not escaped: $(cat -v "$T/plan")"
grep -q 'stage "n\\nsandbar: forged"' "$T/plan" || fail "LF not escaped: $(cat -v "$T/plan")"
grep -q '^sandbar: forged' "$T/plan" && fail "a name forged a line"
echo ok
