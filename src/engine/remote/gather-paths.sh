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
shown=; section=paths; files_key=
rest=$st
while [ -n "$rest" ]; do
  next_line
  name=${line#*|*|*|*|*|*|}
  if [ "$name" = / ] && [ -n "$inputs" ]; then section=key; key=; key_ready=yes; continue; fi
  if [ "$name" = // ]; then section=state; continue; fi
  case $section in
    paths)
      shown="$shown${line#*|}$nl"
      case ${line#*|} in 'regular file|'*) files_key="$files_key${line%%|*}:$name	" ;; esac ;;
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
# What the regular files say (their digests, and the contents shown)
# changes only when one of them does: an apply keeps it (host-files) under
# their identities (as the kept facts' key takes them, see host-facts.sh),
# and the next run says it again without the digest's and the
# contents' three programs. Any file changed, come or gone asks again;
# verify's fresh login keeps what a converge left.
if [ -n "$files_key" ] && [ "$files_key" = "$kept_files_key" ]; then
  printf '%s' "$kept_files_said"
else
  # The trailing dot keeps the newlines a command substitution drops.
  files_said=$(
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
  echo; echo .
  )
  files_said=${files_said%.}
  printf '%s' "$files_said"
  # Kept up to 64 KiB (the next run sources it): past that, asked every run.
  # shellcheck disable=SC2050 # filled in per run: an apply, not a plan
  if [ @REMEMBER@ = yes ] && [ -n "$files_key" ] && [ ${#files_said} -le 65536 ]; then keep_files; fi
fi
