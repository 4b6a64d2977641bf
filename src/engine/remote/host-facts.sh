nl='
'
sshd_config=@SSHD_CONFIG@
# The first line of $rest in $line, and $rest without it: a loop over a
# variable's lines without `read`, which takes a byte per system call (a
# here-document is read back that way too).
next_line() {
  line=${rest%%"$nl"*}; rest=${rest#"$line"}; rest=${rest#"$nl"}
}
# `command -v` without the subshell that takes its answer (a fork each):
# the first executable file of that name on PATH, in $found.
on_path() {
  found=; ifs=$IFS; IFS=:; set -f
  for d in $PATH; do [ -f "$d/$1" ] && [ -x "$d/$1" ] && { found=$d/$1; break; }; done
  IFS=$ifs; set +f
}
# ssh, sshd and dockerd as the host's PATH finds them.
programs_on_path() {
  on_path ssh; ssh_bin=$found; on_path sshd; sshd_bin=$found; on_path dockerd; dockerd_bin=$found
}
# What the host's programs can do: the key exchanges its OpenSSH has (its
# client's list; its version where no client is installed), the docker
# package's version, whether an unpackaged dockerd validates a file.
program_facts() {
  kex=; [ -n "$ssh_bin" ] && kex=$("$ssh_bin" -Q kex 2>/dev/null); set -f
  # shellcheck disable=SC2086 # one word each
  set -- $kex; set +f; printf 'ssh_kex %s\n' "$*"
  [ -z "$kex" ] && [ -n "$sshd_bin" ] && { v=$("$sshd_bin" -V 2>&1); set -f; for w in $v; do case $w in OpenSSH_*) printf 'openssh_version %s\n' "$w"; break ;; esac; done; set +f; }
  dockerd_packaged=
  case $dockerd_bin in /usr/bin/dockerd|/usr/sbin/dockerd)
    pkgs=$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}\n' docker.io docker-ce moby-engine 2>/dev/null)
    rest=$pkgs
    while [ -n "$rest" ]; do
      next_line
      # `ii ` (wanted, installed, no error), a blank, the version.
      case $line in 'ii '*) v=${line#ii }; printf 'dockerd_package %s\n' "${v#"${v%%[! ]*}"}"; dockerd_packaged=yes ;; esac
    done
  ;; esac
  if [ -z "$dockerd_packaged" ] && [ -n "$dockerd_bin" ] && "$dockerd_bin" --help 2>/dev/null | grep -q -- '--validate'; then echo 'dockerd_validate yes'; fi
}
# What `sshd -T` reads besides the files every host has: every file an
# Include names (followed as sshd follows it, relative to @SSHD_DIR@), every
# HostKey, and the default host keys, as the patterns they were written
# in, in $patterns: each run expands them again, so a new file a glob
# matches is a new input. "unsure" where a line says what this walk does
# not follow as sshd would (quotes, `~`, `%`, a backslash, a comment):
# there sshd is asked every time, as past @MAX_CONTENT@ bytes of them (the
# shell's read takes a byte per system call).
sshd_patterns() {
  patterns=@SSHD_DIR@/'ssh_host_*_key'; rest=$sshd_config; walked=; n=0
  while [ -n "$rest" ]; do
    next_line; f=$line
    case "$nl$walked$nl" in *"$nl$f$nl"*) continue ;; esac
    walked="$walked$nl$f"
    [ -f "$f" ] && [ -r "$f" ] || continue
    while IFS= read -r l || [ -n "$l" ]; do
      n=$((n + ${#l} + 1))
      [ "$n" -gt @MAX_CONTENT@ ] && { patterns=unsure; return; }
      l=${l#"${l%%[! 	]*}"}; kw=${l%%[ 	=]*}
      case $kw in
        [Ii][Nn][Cc][Ll][Uu][Dd][Ee]) follow=yes ;;
        [Hh][Oo][Ss][Tt][Kk][Ee][Yy]) follow= ;;
        *) continue ;;
      esac
      a=${l#"$kw"}; a=${a#"${a%%[! 	]*}"}; a=${a#=}
      case $a in *[\"\'\\~%#]*) patterns=unsure; return ;; esac
      set -f
      for w in $a; do
        case $w in /*) ;; *) w=@SSHD_DIR@/$w ;; esac
        patterns="$patterns $w"
        [ -n "$follow" ] || continue
        # Names as the glob gives them, blanks and all.
        set +f; ifs=$IFS; IFS=
        # shellcheck disable=SC2086 # a pattern, expanded as sshd expands it
        for g in $w; do [ -f "$g" ] && rest="$rest$nl$g"; done
        IFS=$ifs; set -f
      done
      set +f
    done < "$f"
  done
}
# The files the key of what the programs said names, one a line, in
# $inputs: ssh, sshd, dockerd, dpkg's status; for systemd's view of the
# units (see units_asked) the directories a daemon-reload or a boot makes
# anew (@SYSTEMD_RUN@/generator) and those `systemctl set-property` writes
# into; and for `sshd -T` also the privilege separation user
# (/etc/passwd), its configuration and what $patterns match now.
key_inputs() {
  inputs=; odd_name=
  for f in "$ssh_bin" "$sshd_bin" "$dockerd_bin" /var/lib/dpkg/status @SYSTEMD_RUN@/generator \
    @SYSTEMD_RUN@/system.control/docker.service.d @SYSTEMD_ETC@/system.control/docker.service.d; do
    [ -n "$f" ] && inputs="$inputs$f$nl"
  done
  if [ "$patterns" != unsure ]; then
    inputs="$inputs/etc/passwd$nl$sshd_config$nl"
    set -f
    for p in $patterns; do
      set +f; ifs=$IFS; IFS=
      # shellcheck disable=SC2086 # a pattern, expanded as sshd expands it
      for g in $p; do
        [ -e "$g" ] || continue
        # A name a line: one that holds a newline could change unseen.
        case $g in *"$nl"*) odd_name=yes ;; *) inputs="$inputs$g$nl" ;; esac
      done
      IFS=$ifs; set -f
    done
    set +f
  fi
}
# The key: `stat`'s device, inode, size, mtime and ctime to the nanosecond
# of each of $inputs (a package upgrade renames a new file in, an edit or a
# copy over one changes its ctime), following links; whether sshd's
# privilege separation directory is there. The gather's own `stat` of the
# managed paths gives it where it can (see gather-paths.sh).
facts_key() {
  key_inputs
  ifs=$IFS; IFS=$nl; set -f
  # shellcheck disable=SC2086 # a name a line
  key=$(stat -L --printf '%d:%i:%s:%.9Y:%.9Z:%n\t' -- $inputs 2>/dev/null)
  IFS=$ifs; set +f
  key_end
}
key_end() {
  if [ -d /run/sshd ]; then key="$key run_sshd"; fi
  # Never the same twice: asked on every run.
  if [ -n "$odd_name" ]; then key="$key odd_name $$"; fi
}
# What systemd says of the docker and ssh units, in $units_show: the
# unit's files, ExecStart and environment files as it loaded them (what a
# restart runs), their cgroups, whether each is active. Kept with the
# programs' answers (keep_facts) unless systemd has files to load again:
# its view changes when it loads them (a daemon-reload, a boot), which
# the key sees. Whether a unit runs is not kept (see gather-facts.sh).
units_asked() {
  units_show=$(systemctl show -p Id -p ExecStart -p DropInPaths -p FragmentPath -p EnvironmentFiles -p ActiveState -p ControlGroup -p NeedDaemonReload docker.service sshd.service 2>/dev/null)
}
# Whether $units_show may be kept: not while systemd owes a daemon-reload
# (NeedDaemonReload=yes: what it holds is not what it will run), nor an
# answer without a unit's Id.
units_keepable() {
  case "$nl$units_show$nl" in *"${nl}NeedDaemonReload=yes$nl"*|*"${nl}Id=$nl"*) return 1 ;; esac
}
# $1 as one single-quoted shell word, in $quoted.
quote() {
  quoted=; rest=$1
  while :; do
    case $rest in
      *\'*) quoted="$quoted${rest%%\'*}'\\''"; rest=${rest#*\'} ;;
      *) quoted="'$quoted$rest'"; return ;;
    esac
  done
}
# Keeps what the managed regular files said ($files_said) under their
# identities ($files_key), as keep_facts keeps the programs' answers.
# shellcheck disable=SC2317,SC2154 # called where there are managed paths
keep_files() {
  {
    quote "$files_key"; printf 'kept_files_key=%s\n' "$quoted"
    quote "$files_said"; printf 'kept_files_said=%s\n' "$quoted"
  } > @FILES@.$$ && mv -f -- @FILES@.$$ @FILES@
}
# Keeps what the programs said ($answers, and `sshd -T` when it answered
# and $patterns are sure) under $key, for the next run, as assignments the
# next run reads with `.`: the shell reads a file it sources by blocks,
# where `read` takes a byte per system call (a 5 KB file cost a host 3 ms
# that way). Written beside and renamed, so a reader sees the old file or
# the new one; root's alone, in root's directory.
keep_facts() {
  settings=
  if [ "$patterns" != unsure ] && [ "$sshd_status" = 0 ]; then settings=$sshd_out; fi
  units=; units_keepable && units=$units_show
  {
    quote "$key"; printf 'kept_key=%s\n' "$quoted"
    quote "$ssh_bin|$sshd_bin|$dockerd_bin"; printf 'kept_programs=%s\n' "$quoted"
    quote "$patterns"; printf 'kept_patterns=%s\n' "$quoted"
    quote "$answers"; printf 'kept_answers=%s\n' "$quoted"
    quote "$settings"; printf 'kept_settings=%s\n' "$quoted"
    quote "$units"; printf 'kept_units=%s\n' "$quoted"
  } > @FACTS@.$$ && mv -f -- @FACTS@.$$ @FACTS@
  # What an earlier dockhand kept (the programs' facts alone) goes.
  if [ -e @STATE_DIR@/program-facts ]; then rm -f -- @STATE_DIR@/program-facts; fi
}
