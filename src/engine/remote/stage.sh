fail() { printf 'error %s\n' "$*"; exit 1; }
while IFS=' ' read -r kind a b c _ e path; do
  case "$kind" in
    D) if [ "$a" != - ]; then mkdir -p -- "$path" && chown -- "$b:$c" "$path" && chmod -- "$a" "$path" || fail "directory $path"; fi
       for old in "$path"/.*@TEMP_MARK@* "$path"/.*@BACKUP_MARK@*; do [ -e "$old" ] && rm -f -- "$old"; done
       printf 'dir %s\n' "$path" ;;
    F) dir=${path%/*}
       [ -d "${dir:-/}" ] || fail "no directory for $path"
       e="$dir/$e"
       set -C; if true 2>/dev/null > "$e"; then set +C; else set +C; fail "cannot create a temp file beside $path"; fi
       if [ "$a" -gt 0 ]; then dd bs="$a" count=1 iflag=fullblock of="$e" conv=notrunc status=none || fail "write $path"; fi
       printf 'staged %s\n' "$path" ;;
    END) staged; printf 'done\n'; exit 0 ;;
    *) fail "bad record $kind" ;;
  esac
done
fail "input ended early"
