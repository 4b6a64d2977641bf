echo '@facts'
# shellcheck source=/dev/null
. /etc/os-release 2>/dev/null; printf 'os %s %s\n' "${ID:-unknown}" "${VERSION_ID:-unknown}"
# `command -v` without the subshell that takes its answer (a fork each):
# the first executable file of that name on PATH, in $found.
on_path() {
  found=; ifs=$IFS; IFS=:; set -f
  for d in $PATH; do [ -f "$d/$1" ] && [ -x "$d/$1" ] && { found=$d/$1; break; }; done
  IFS=$ifs; set +f
}
on_path dockerd; dockerd_bin=$found
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
if [ -n "$nft_bin" ] && table=$("$nft_bin" list table inet dockhand 2>/dev/null); then
  while read -r tcp dport port drop rest; do
    [ "$tcp $dport $drop" = 'tcp dport drop' ] && [ -z "$rest" ] && case $port in *[!0-9]*|'') ;; *) printf 'fenced_port %s\n' "$port" ;; esac
  done <<TABLE
$table
TABLE
fi
units_show=$(systemctl show -p Id -p ExecStart -p DropInPaths -p FragmentPath -p EnvironmentFiles -p ActiveState docker.service sshd.service 2>/dev/null)
drop_ins=; fragment=; env_files=; docker_state=; ssh_unit=; ssh_state=; unit=docker
while IFS= read -r l; do
  case $unit/$l in
    docker/) unit=ssh ;;
    docker/ExecStart=*argv*) l=${l#*argv\[\]=}; printf 'exec_start %s\n' "${l%% ;*}" ;;
    docker/DropInPaths=*) drop_ins=${l#DropInPaths=} ;;
    docker/FragmentPath=*) fragment=${l#FragmentPath=} ;;
    docker/EnvironmentFiles=/*) l=${l#EnvironmentFiles=}; env_files="$env_files ${l%% (ignore_errors*}" ;;
    docker/ActiveState=*) docker_state=${l#ActiveState=} ;;
    ssh/Id=*) ssh_unit=${l#Id=} ;;
    ssh/ActiveState=*) ssh_state=${l#ActiveState=} ;;
  esac
done <<UNITS_SHOW
$units_show
UNITS_SHOW
for f in $drop_ins; do case $f in /*) printf 'docker_drop_in %s\n' "$f" ;; esac; done
# The unit's files and its environment files line by line, by the shell's
# own read (a `base64` each cost the host a program's start); systemd reads
# them by lines too. `IFS=` and `-r` keep each line as it is.
show_lines() {
  printf '%s %s\n' "$1" "$2"
  while IFS= read -r l || [ -n "$l" ]; do printf '%s_line %s\n' "$1" "$l"; done < "$2"
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
    while read -r status version; do
      case $status in ii) printf 'dockerd_package %s\n' "$version"; dockerd_packaged=yes ;; esac
    done <<PKGS
$pkgs
PKGS
  ;; esac
  if [ -z "$dockerd_packaged" ] && [ -n "$dockerd_bin" ] && "$dockerd_bin" --help 2>/dev/null | grep -q -- '--validate'; then echo 'dockerd_validate yes'; fi
}
# They change only when a program does, and asking costs the host three
# programs' start on every run: an apply keeps the answer in @FACTS@,
# under the identity of every file it came from (device, inode, size,
# mtime and ctime to the nanosecond: a package upgrade renames a new file
# in, a copy over one changes its ctime), and any difference asks again.
# The key's `stat` only where it is compared or kept: a plan of a host no
# apply has kept anything on does without it.
on_path ssh; ssh_bin=$found; on_path sshd; sshd_bin=$found
key=
# shellcheck disable=SC2050 # filled in per run: an apply, not a plan
if [ -f @FACTS@ ] || [ @REMEMBER@ = yes ]; then
  key=$(stat -L --printf '%d:%i:%s:%.9Y:%.9Z:%n\t' -- ${ssh_bin:+"$ssh_bin"} ${sshd_bin:+"$sshd_bin"} ${dockerd_bin:+"$dockerd_bin"} /var/lib/dpkg/status 2>/dev/null)
fi
known=
if [ -f @FACTS@ ]; then
  { IFS= read -r k && [ "$k" = "key $key" ] && known=yes && while IFS= read -r l; do printf '%s\n' "$l"; done; } < @FACTS@
fi
if [ -z "$known" ]; then
  answers=$(program_facts)
  [ -n "$answers" ] && printf '%s\n' "$answers"
  # shellcheck disable=SC2050 # filled in per run: an apply, not a plan
  [ @REMEMBER@ = yes ] && printf 'key %s\n%s\n' "$key" "$answers" > @FACTS@.new && mv -f -- @FACTS@.new @FACTS@
fi
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
# shellcheck disable=SC2086 # lists of paths, one word each
[ -z "$holds" ] && grep -qsE -e '"(data-root|graph)"' -e '--data-root|--graph|(^|[ "=])-g ' /etc/docker/daemon.json /etc/default/docker $fragment $drop_ins $env_files && holds=yes
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
echo '@sshd'
sshd -T 2>&1; printf '@sshd_status %s\n' "$?"
