echo '@stat'
# One `stat` for the managed paths and, after `/`, the files the kept
# facts' key names (see host-facts.sh), and for an apply, after `//`, the
# state directory and its lock: programs' starts fewer. Each line starts
# with the file's identity as the key takes it, then what the parser reads;
# a link among the key's files has the key taken again, through it.
ifs=$IFS; IFS=$nl; set -f
# shellcheck disable=SC2086 # a name a line
st=$(stat -c '%d:%i:%s:%.9Y:%.9Z|%F|%a|%U|%G|%s|%n' -- @PATHS@ ${inputs:+/$nl$inputs} @STATE@ 2>/dev/null)
IFS=$ifs; set +f
shown=; section=paths
rest=$st
while [ -n "$rest" ]; do
  next_line
  name=${line#*|*|*|*|*|*|}
  if [ "$name" = / ] && [ -n "$inputs" ]; then section=key; key=; key_ready=yes; continue; fi
  if [ "$name" = // ]; then section=state; continue; fi
  case $section in
    paths) shown="$shown${line#*|}$nl" ;;
    key)
      case ${line#*|} in 'symbolic link|'*) key_ready=no ;; esac
      key="$key${line%%|*}:$name	" ;;
    *)
      mode=${line#*|*|}; mode=${mode%%|*}
      case $mode in
        *00|0) ;;
        *) chmod go= -- "$name" || { echo 'dockhand: the state directory could not be made private' >&2; exit 1; } ;;
      esac ;;
  esac
done
[ "$key_ready" = yes ] && key_end
[ -n "$shown" ] && printf '%s' "$shown"
set --
rest=$shown
while [ -n "$rest" ]; do
  next_line
  case $line in regular*) ;; *) continue ;; esac
  name=${line#*|*|*|*|*|}
  if [ -r "$name" ]; then set -- "$@" "$name"; else printf '@unreadable %s\n' "$name"; fi
done
echo '@sha256'
[ $# -gt 0 ] && sha256sum -- "$@"
set --
rest=$shown
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
