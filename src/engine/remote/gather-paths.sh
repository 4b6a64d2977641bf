echo '@stat'
st=$(stat -c '%F|%a|%U|%G|%s|%n' -- @PATHS@ 2>/dev/null)
[ -n "$st" ] && printf '%s\n' "$st"
set --
while IFS='|' read -r type _ _ _ _ name; do
  case $type in regular*) ;; *) continue ;; esac
  if [ -r "$name" ]; then set -- "$@" "$name"; else printf '@unreadable %s\n' "$name"; fi
done <<STAT
$st
STAT
echo '@sha256'
[ $# -gt 0 ] && sha256sum -- "$@"
set --
while IFS='|' read -r type _ _ _ size name; do
  case $type in regular*) ;; *) continue ;; esac
  case $name in @SECRETS@) continue ;; esac
  [ -r "$name" ] && [ "$size" -le @MAX_CONTENT@ ] && set -- "$@" "$name"
done <<STAT
$st
STAT
echo '@content'
[ $# -gt 0 ] && printf '%s\n' "$@"
echo '@blob'
[ $# -gt 0 ] && cat -- "$@" | base64 -w0
echo
