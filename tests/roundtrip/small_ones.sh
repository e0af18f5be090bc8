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
# Names made by the remote: escaped in the summary, every one present in --json.
W2="$T/ws2"; mkdir -p "$W2" && cd "$W2"
"$SB" run -- sh -c 'printf x >"$(printf "r\033]0;t\007")"; printf x >"$(printf "c\rr")"; printf x >"$(printf "bad\377")"' \
	>/dev/null 2>"$T/sum" || fail "run failed: $(cat "$T/sum")"
grep -q '+ "r\\033\]0;t\\007"' "$T/sum" || fail "ESC not escaped in the summary: $(cat -v "$T/sum")"
grep -q '+ "c\\rr"' "$T/sum" || fail "CR not escaped in the summary: $(cat -v "$T/sum")"
grep -q '+ "bad\\377"' "$T/sum" || fail "invalid UTF-8 not escaped: $(cat -v "$T/sum")"
rm -f ./*
"$SB" run --json -- sh -c 'printf x >"$(printf "bad\377")"; printf x >"$(printf "e\033x")"' >"$T/json" 2>/dev/null \
	|| fail "json run failed"
grep -q '"b64": *"YmFk/w=="' "$T/json" || fail "non-UTF-8 name missing from --json: $(cat "$T/json")"
grep -qi '"e\\u001bx"' "$T/json" || fail "ESC name missing from --json: $(cat "$T/json")"
echo ok
