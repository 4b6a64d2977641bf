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
# Held until the channel closes, running, one at a time and as root,
# the scripts sent on it (see lock.rs): `@run END SIZE INPUT`, the script
# (ending in `#END`), its stdin. Each in a session of its own, as a
# command's: stopping a commit stops nothing of this shell's. Each runs in
# the background, without the lock's descriptor, once its input was read
# here whole: this shell is back in `read` while it runs, so the channel
# closing ends the shell and the lock even while a script hangs (the next
# lock stops a commit left running, as for a command of its own). The
# group is parsed whole before HOLDING goes out: a request must reach
# `read`, never the parser of an `sh -s`.
@THEN@{
ran() {
  # For good, in this background shell: a redirection on the call would
  # leave it a saved copy of the lock's descriptor.
  exec 9>&-
  setsid -w /bin/sh -c "$1"
  printf '%s %s\n' "$end" "$?"
  printf '%s\n' "$end" >&2
}
# On stderr too: what the lock and the gather wrote there before is not
# taken for the first script's.
printf '%s\n' @HOLDING@
printf '%s\n' @HOLDING@ >&2
while IFS=' ' read -r word end size input; do
  case $word in @RUN@) ;; *) exit 1 ;; esac
  case $size in '' | *[!0-9]*) exit 1 ;; esac
  case $input in '' | *[!0-9]*) exit 1 ;; esac
  s=$(dd bs="$size" count=1 iflag=fullblock status=none 9>&-) && [ "${s%"#$end"}" != "$s" ] || exit 1
  if [ "$input" -gt 0 ]; then
    # The pipeline ends once dd has read the input; the script goes on.
    dd bs="$input" count=1 iflag=fullblock status=none 9>&- | { exec 7<&0; ran "$s" <&7 7<&- & }
  else
    ran "$s" < /dev/null &
  fi
done
}
