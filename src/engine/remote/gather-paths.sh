echo '@stat'
st=$(stat -c '%F|%a|%U|%G|%s|%n' -- @PATHS@ 2>/dev/null)
[ -n "$st" ] && printf '%s\n' "$st"
set --
rest=$st
while [ -n "$rest" ]; do
  next_line
  case $line in regular*) ;; *) continue ;; esac
  name=${line#*|*|*|*|*|}
  if [ -r "$name" ]; then set -- "$@" "$name"; else printf '@unreadable %s\n' "$name"; fi
done
echo '@sha256'
[ $# -gt 0 ] && sha256sum -- "$@"
set --
rest=$st
while [ -n "$rest" ]; do
  next_line
  case $line in regular*) ;; *) continue ;; esac
  name=${line#*|*|*|*|*|}; size=${line#*|*|*|*|}; size=${size%%|*}
  case $name in @SECRETS@) continue ;; esac
  [ -r "$name" ] && [ "$size" -le @MAX_CONTENT@ ] && set -- "$@" "$name"
done
echo '@content'
[ $# -gt 0 ] && printf '%s\n' "$@"
echo '@blob'
[ $# -gt 0 ] && cat -- "$@" | base64 -w0
echo
