fail() { printf 'error %s\n' "$*"; exit 1; }
# A directory another account can write to is no place for root's files:
# that account could swap a temp for a link between two writes. Root's
# own, writable by root alone, or sticky and root's (as /tmp), is.
checked=
safe_dir() {
  case " $checked " in *" $1 "*) return 0 ;; esac
  st=$(stat -c '%u %a' -- "$1") || fail "cannot look at $1"
  uid=${st% *}; mode=${st#* }; m=$((0$mode))
  if { [ "$uid" != 0 ] && [ $((m & 0200)) != 0 ]; } || { [ $((m & 022)) != 0 ] && { [ $((m & 01000)) = 0 ] || [ "$uid" != 0 ]; }; }; then
    fail "$1 can be written to by another account (owner uid $uid, mode $mode): dockhand writes no file there, where a link could be swapped in; make it root's and 0755 or narrower"
  fi
  checked="$checked $1"
}
while IFS=' ' read -r kind a b c _ e path; do
  case "$kind" in
    D) if [ "$a" != - ]; then mkdir -p -- "$path" && chown -- "$b:$c" "$path" && chmod -- "$a" "$path" || fail "directory $path"; fi
       for old in "$path"/.*@TEMP_MARK@* "$path"/.*@BACKUP_MARK@*; do [ -e "$old" ] && rm -f -- "$old"; done
       printf 'dir %s\n' "$path" ;;
    F) dir=${path%/*}
       [ -d "${dir:-/}" ] || fail "no directory for $path"
       safe_dir "${dir:-/}"
       e="$dir/$e"
       set -C; if true 2>/dev/null > "$e"; then set +C; else set +C; fail "cannot create a temp file beside $path"; fi
       if [ "$a" -gt 0 ]; then dd bs="$a" count=1 iflag=fullblock of="$e" conv=notrunc status=none || fail "write $path"; fi
       printf 'staged %s\n' "$path" ;;
    END) staged; printf 'done\n'; @AFTER@ ;;
    *) fail "bad record $kind" ;;
  esac
done
fail "input ended early"
