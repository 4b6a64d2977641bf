# umask 077 makes them 0700 and 0600 when they are new; one chmod takes
# group's and others' access from both when they are not (an apply's
# gather, riding on the lock, does it where its `stat` found them open:
# a descriptor opened before stays open either way). (`mkdir` only the
# first time: every program started is a millisecond of the host's.)
{ [ -d @DIR@ ] || mkdir -p -- @DIR@; } && exec 9>> @LOCK@ || exit 1
flock -w @WAIT@ -E @BUSY@ 9 || exit $?
@PRIVATE@said=
@STOP_COMMIT@for t in @TRANSIENT@/dockhand-sshd-revert-*.timer; do
  [ -e "$t" ] || continue
  u=${t##*/}; u=${u%.timer}
  # --wait: the switch's service is a plain one, so a bare start returns
  # once it is spawned, and its restore and ssh reload could land in the
  # middle of this run's gather, commit or reload.
  if systemctl start --wait "$u.service" >/dev/null 2>&1; then said="$said honoured=$u"; else said="$said failed=$u"; fi
  systemctl stop "$u.timer" >/dev/null 2>&1
done
set -- @DIRS@
if [ -f @PENDING@ ]; then
  for d in "$@"; do
    for b in "$d"/.*.dockhand-backup; do
      [ -e "$b" ] || continue
      f=${b##*/}; f=${f#.}; f="$d/${f%.dockhand-backup}"
      mv -f -- "$b" "$f" && said="$said restored=$f"
    done
    for a in "$d"/.*.dockhand-backup.dockhand-absent; do
      [ -e "$a" ] || continue
      f=${a##*/}; f=${f#.}; f="$d/${f%.dockhand-backup.dockhand-absent}"
      rm -f -- "$f" "$a" && said="$said restored=$f"
    done
  done
fi
for d in "$@"; do
  for f in @LEFTOVERS@; do
    [ -e "$f" ] && rm -f -- "$f" && said="$said removed=$f"
  done
done
printf 'locked%s\n' "$said"
@THEN@printf '%s\n' @HOLDING@
# Held until the channel closes: the shell's own read waits on stdin, where
# nothing more comes (a `cat` cost the host a program's start on every run).
while IFS= read -r _; do :; done
