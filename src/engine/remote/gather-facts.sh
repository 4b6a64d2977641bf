echo '@facts'
# shellcheck source=/dev/null
. /etc/os-release 2>/dev/null; printf 'os %s %s\n' "${ID:-unknown}" "${VERSION_ID:-unknown}"
printf 'dockerd %s\n' "$dockerd_bin"
on_path docker; printf 'docker_cli %s\n' "$found"
# /etc/group by the shell's own read (getent costs the host a program's
# start); getent for a group that only another NSS source has.
group_seen=
while IFS=: read -r name _ _ members; do
  [ "$name" = docker ] && { printf 'docker_group %s\n' "$members"; group_seen=yes; break; }
done < /etc/group
[ -z "$group_seen" ] && g=$(getent group docker) && printf 'docker_group %s\n' "${g##*:}"
on_path nft; nft_bin=$found
printf 'nft %s\n' "$nft_bin"
# The fence as the kernel holds it, where the playbook puts one up (or an
# audit looks): a run without one has no use for it, and `nft` cost the
# host about 2.5 ms.
# shellcheck disable=SC2050 # filled in per run
if [ @FENCE@ = yes ] && [ -n "$nft_bin" ] && table=$("$nft_bin" list table inet dockhand 2>/dev/null); then
  rest=$table
  while [ -n "$rest" ]; do
    next_line; set -f
    # shellcheck disable=SC2086 # its words
    set -- $line; set +f
    [ $# = 4 ] && [ "$1 $2 $4" = 'tcp dport drop' ] && case $3 in *[!0-9]*|'') ;; *) printf 'fenced_port %s\n' "$3" ;; esac
  done
fi
# What an apply kept holds while its key does (see host-facts.sh): the key
# is taken before anything is asked, so a file changed meanwhile is seen
# on the next run.
kept=
if [ -n "$inputs" ]; then
  # Without managed paths, or with a link among the files, the key's own.
  [ "$key_ready" = yes ] || facts_key
  [ "$key" = "$kept_key" ] && kept=yes
fi
# shellcheck disable=SC2050 # filled in per run: an apply, not a plan
[ -z "$kept" ] && [ @REMEMBER@ = yes ] && { sshd_patterns; facts_key; }
# systemd's view of the units ($units_show) into variables.
units_read() {
  drop_ins=; fragment=; env_files=; docker_state=; ssh_unit=; ssh_state=; docker_cg=; ssh_cg=; exec_lines=; unit=docker
  rest=$units_show
  while [ -n "$rest" ]; do
    next_line; l=$line
    case $unit/$l in
      docker/) unit=ssh ;;
      docker/ExecStart=*argv*) l=${l#*argv\[\]=}; exec_lines="${exec_lines}exec_start ${l%% ;*}$nl" ;;
      docker/DropInPaths=*) drop_ins=${l#DropInPaths=} ;;
      docker/FragmentPath=*) fragment=${l#FragmentPath=} ;;
      docker/EnvironmentFiles=/*) l=${l#EnvironmentFiles=}; env_files="$env_files ${l%% (ignore_errors*}" ;;
      docker/ActiveState=*) docker_state=${l#ActiveState=} ;;
      docker/ControlGroup=/*) docker_cg=${l#ControlGroup=} ;;
      ssh/Id=*) ssh_unit=${l#Id=} ;;
      ssh/ActiveState=*) ssh_state=${l#ActiveState=} ;;
      ssh/ControlGroup=/*) ssh_cg=${l#ControlGroup=} ;;
    esac
  done
}
# Whether anything of the unit whose cgroup is $1 runs: its cgroup says
# so itself (`populated 1`), which costs no program's start (systemctl
# took about 9 ms of a host's on every run).
runs() {
  [ -n "$1" ] && [ -r @CGROUPS@"$1"/cgroup.events ] || return 1
  # The kernel's file is two lines; a few more are looked at, no further
  # (a file put there by hand only spends its host's own time, under the
  # step's deadline).
  n=0
  while [ $n -lt 8 ] && IFS= read -r l; do
    [ "$l" = 'populated 1' ] && return 0; n=$((n+1))
  done < @CGROUPS@"$1"/cgroup.events
  return 1
}
# What was kept, with both units running by their cgroups: active. Any
# doubt (nothing kept, a cgroup not there or empty: stopped, failed,
# cgroups v1) asks systemd, whose answer says which.
units_kept=
if [ -n "$kept" ] && [ -n "$kept_units" ]; then
  units_show=$kept_units; units_read
  if runs "$docker_cg" && runs "$ssh_cg"; then docker_state=active; ssh_state=active; units_kept=yes; fi
fi
[ -n "$units_kept" ] || { units_asked; units_read; }
[ -n "$exec_lines" ] && printf '%s' "$exec_lines"
for f in $drop_ins; do case $f in /*) printf 'docker_drop_in %s\n' "$f" ;; esac; done
# The unit's files and its environment files line by line, by the shell's
# own read (a `base64` each cost the host a program's start); systemd reads
# them by lines too. `IFS=` and `-r` keep each line as it is.
# A line that sets a data root (see below) sets $root_named. The gather's
# lines are printed at its end: past what dockhand takes from a host
# (@MAX_OUTPUT@ bytes, counted short: each line printed is longer than
# counted) it stops reading and says what it has, which is too much, and
# that host fails saying so, as it did when every line went at once.
root_named=; shown_bytes=0
# Whether a line names a data root: daemon.json's `data-root` (or its old
# name), or a flag of dockerd's in the unit or an environment file.
names_data_root() {
  case $1 in *'"data-root"'*|*'"graph"'*|*--data-root*|*--graph*|-g\ *|*[\ \"=]-g\ *) return 0 ;; esac
  return 1
}
show_lines() {
  printf '%s %s\n' "$1" "$2"
  while IFS= read -r l || [ -n "$l" ]; do
    printf '%s_line %s\n' "$1" "$l"
    shown_bytes=$((shown_bytes + ${#l} + 16))
    [ "$shown_bytes" -gt @MAX_OUTPUT@ ] && exit 1
    names_data_root "$l" && root_named=yes
  done < "$2"
}
for f in $fragment $drop_ins; do
  [ -f "$f" ] && [ -r "$f" ] && show_lines docker_unit_file "$f"
done
for f in $env_files; do
  [ -f "$f" ] && [ -r "$f" ] && show_lines docker_env_file "$f"
done
printf 'docker_active %s\n' "${docker_state:-inactive}"
printf 'ssh_unit %s\n' "${ssh_unit:-ssh.service}"
printf 'ssh_active %s\n' "${ssh_state:-inactive}"
for f in /etc/ssh/sshd_config.d/*.conf; do [ -e "$f" ] && printf 'sshd_drop_in %s\n' "$f"; done
for f in /etc/ssh/ssh_host_*_key; do [ -e "$f" ] && printf 'ssh_host_key %s\n' "$f"; done
[ -f @PENDING@ ] && sort -u @PENDING@ | sed 's/^/pending_handler /'
for t in @TRANSIENT@/dockhand-sshd-revert-*.timer; do [ -e "$t" ] && { u=${t##*/}; printf 'armed_switch %s\n' "${u%.timer}"; }; done
set -- @DIRS@
for d in "$@"; do
  for f in @LEFTOVERS@; do [ -e "$f" ] && printf 'leftover %s\n' "$f"; done
done
set -- /var/lib/docker/containers/*; [ -e "$1" ] && printf 'default_root_containers %s\n' $#
holds=
for d in /var/lib/docker /var/lib/docker/*.*; do
  for g in "$d"/containers/* "$d"/image/*/imagedb/content/sha256/* "$d"/volumes/*/; do [ -e "$g" ] && holds=yes && break 2; done
done
# A data root set elsewhere (daemon.json's `data-root`, or its old name,
# or a flag in the unit or an environment file, whose lines were read
# above) may hold anything: dockerd is asked. Read by the shell, as the
# unit's files were: a grep cost the host a program's start on every run.
if [ -z "$holds" ] && [ -n "$root_named" ]; then holds=yes; fi
# A file too big to read by the shell's byte-wise read (past @MAX_CONTENT@
# bytes) may name one too: dockerd is asked.
for f in /etc/docker/daemon.json /etc/default/docker; do
  [ -z "$holds" ] && [ -f "$f" ] && [ -r "$f" ] || continue
  case " $env_files " in *" $f "*) continue ;; esac
  n=0
  while IFS= read -r l || [ -n "$l" ]; do
    n=$((n + ${#l} + 1))
    if [ "$n" -gt @MAX_CONTENT@ ] || names_data_root "$l"; then holds=yes; break; fi
  done < "$f"
done
if [ "$docker_state" = active ] && [ -z "$holds" ]; then
  echo 'docker_holds_nothing'
elif [ "$docker_state" = active ]; then
  if command -v docker >/dev/null 2>&1; then
    printf 'docker_info %s\n' "$(timeout 10 docker info --format '{{json .}}' 2>&1)"
    ids=$(timeout 10 docker ps -aq --no-trunc 2>/dev/null)
    # shellcheck disable=SC2086 # one container ID each
    [ -n "$ids" ] && timeout 10 docker inspect --format '{{json .}}' $ids 2>/dev/null | sed -n 's/^/docker_container /; 1,10000p'
    # shellcheck disable=SC2086 # one volume each
    v=$(timeout 10 docker volume ls -q 2>/dev/null) && { set -f; set -- $v; set +f; printf 'docker_volumes %s\n' $#; }
  elif command -v python3 >/dev/null 2>&1; then
    timeout 20 python3 -c "$DOCKER_PY" 2>&1 | sed -n '1,10000p'
  else
    echo 'docker_unknown neither a docker CLI nor python3 on the host to ask dockerd with'
  fi
fi
# What the host's programs said (their facts, then `sshd -T`) changes only
# when a file they read does: an apply keeps it in @FACTS@ under the
# identity of those files, and any difference asks again (the key was
# taken above). The key's `stat` only where it is compared or kept: a plan
# of a host no apply has kept anything on does without it.
if [ -n "$kept" ]; then
  [ -n "$kept_answers" ] && printf '%s\n' "$kept_answers"
  if [ -n "$kept_settings" ]; then
    printf '@sshd\n%s\n@sshd_status 0\n' "$kept_settings"
  else
    echo '@sshd'
    sshd -T 2>&1; printf '@sshd_status %s\n' "$?"
  fi
  # Kept by a dockhand that did not keep the units, or while systemd had
  # files to load again: kept now that they can be.
  # shellcheck disable=SC2050 # filled in per run: an apply, not a plan
  if [ @REMEMBER@ = yes ] && [ -z "$kept_units" ] && [ -z "$units_kept" ]; then
    answers=$kept_answers; sshd_out=$kept_settings; sshd_status=0; patterns=$kept_patterns
    units_keepable && keep_facts
  fi
else
  answers=$(program_facts)
  [ -n "$answers" ] && printf '%s\n' "$answers"
  sshd_out=$(sshd -T 2>&1); sshd_status=$?
  printf '@sshd\n%s\n@sshd_status %s\n' "$sshd_out" "$sshd_status"
  # shellcheck disable=SC2050 # filled in per run: an apply, not a plan
  if [ @REMEMBER@ = yes ]; then keep_facts; fi
fi
