mkdir -p -- @DIR@ && chmod 0700 @DIR@ && exec 9>> @LOCK@ && chmod 0600 @LOCK@ || exit 1
flock -w @WAIT@ -E @BUSY@ 9 || exit $?
said=
for t in @TRANSIENT@/dockhand-sshd-revert-*.timer; do
  [ -e "$t" ] || continue
  u=${t##*/}; u=${u%.timer}
  if systemctl start "$u.service" >/dev/null 2>&1; then said="$said honoured=$u"; else said="$said failed=$u"; fi
  systemctl stop "$u.timer" >/dev/null 2>&1
done
set -- @DIRS@
for d in "$@"; do
  for f in "$d"/.*.dockhand-new-* "$d"/.dockhand-new-* "$d"/.*.dockhand-backup*; do
    [ -e "$f" ] && rm -f -- "$f" && said="$said removed=$f"
  done
done
printf 'locked%s\n' "$said"
exec cat >/dev/null
