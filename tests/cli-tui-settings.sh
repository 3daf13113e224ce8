#!/bin/sh
# cli-tui-settings.sh - the settings file ($XDG_CONFIG_HOME/qnext/config)
# in the full-screen chat and on the command line: flags override the file
# and the file the defaults (/show says which), /set is for this chat and
# /set --save writes the file with its comments kept, a bad file stops
# qnext with FILE:LINE, and /model lists the models found and reloads one.
# Run from the repository root.
. tests/tui-lib.sh

conf="$tmp/config/qnext/config"
mkdir -p "$tmp/config/qnext"
printf '# mine\ntemp = 0.9\ntop_k = 7\nthinking = show\n' >"$conf"

# ---- flags over the file over the defaults, in /show -----------------------
start share/tiny "--temp 0.3 --max-tokens 5"
expect "loads with a settings file" "ready in"
send_line "/show"
expect "the flag wins over the file" "temp  *0.30  *flag"
expect "a key only the file sets is the file's" "top_k  *7  *config"
expect "the rest are the model's defaults" "top_p  *0.95  *model default"
expect "thinking from the file" "thinking  *show  *config"

# ---- /set for this chat, /set --save into the file -------------------------
send_line "/set min_p 0.2"
expect "/set says it is for this chat" "min_p set for this chat only"
grep -q min_p "$conf" && bad "/set without --save wrote the file" || ok "/set alone leaves the file"
send_line "/set --save repeat 1.5"
expect "/set --save says where" "repeat_penalty = 1.5, saved in"
if [ "$(cat "$conf")" = "$(printf '# mine\ntemp = 0.9\ntop_k = 7\nthinking = show\nrepeat_penalty = 1.5')" ]
then ok "the file keeps its lines and gains the key"; else bad "file after --save: $(cat "$conf")"; fi
send_line "/set --save top_k 3"
expect "a second save" "top_k = 3, saved in"
grep -q '^top_k = 3$' "$conf" && ! grep -q 'top_k = 7' "$conf" &&
	ok "a saved key replaces its line" || bad "top_k line: $(cat "$conf")"
send_line "/show"
expect "/show names this chat's choices" "min_p  *0.20  *this chat"

# ---- /model: the list and a reload -------------------------------------------
send_line "/model"
expect "/model lists the loaded model with its verdict" "1\\. share/tiny .* MB .*fits.*(loaded)"
send_line "/model 9"
expect "/model N out of range" "no model 9"
send_line "/model 1"
expect "/model N reloads in the background" "loading share/tiny"
expect "the reload finishes" "ready in"
send_line "hello"
expect "the reloaded model answers" "token limit\|end of turn"
quit_ok "quit"

# ---- a bad file: one line naming file, line, key; exit status 2 ------------
printf 'temp = 0.5\n\n\n\n\n\ntemp = 2x\n' >"$conf"
out=$("$Q" -m share/tiny -p hi 2>&1); st=$?
[ $st = 2 ] && ok "a bad settings file is a usage error (2)" || bad "exit $st: $out"
case $out in *"config/qnext/config:7: temp: '2x' is not a number"*) ok "the message names file:line: key";;
	*) bad "message: $out";; esac
printf 'tmep = 0.5\n' >"$conf"
out=$("$Q" -m share/tiny -p hi 2>&1)
case $out in *"config:1: unknown key 'tmep'"*) ok "an unknown key is named";; *) bad "message: $out";; esac
printf 'expert_cache = lots\n' >"$conf"
out=$("$Q" -m share/tiny -p hi 2>&1)
case $out in *"config:1: expert_cache:"*) ok "a bad expert_cache is named with its line";;
	*) bad "message: $out";; esac
# The file's max_tokens reaches `qnext -p`, and the flag beats it.
printf 'max_tokens = 3\nmodel = share/tiny\n' >"$conf"
# Greedy: the tiny model reasons on past these limits, where a sampled reply may end its turn.
out=$(QNEXT_MODEL= "$Q" -p hi --temp 0 2>&1 >/dev/null)
case $out in *"3 tokens"*) ok "-p takes max_tokens and model from the file";; *) bad "-p: $out";; esac
out=$(QNEXT_MODEL= "$Q" -p hi --temp 0 --max-tokens 2 2>&1 >/dev/null)
case $out in *"2 tokens"*) ok "a flag beats the file in -p";; *) bad "-p flag: $out";; esac
finish
