port=$(sshd -T 2>/dev/null | awk '$1=="port" {printf "%04X", $2; exit}')
listeners() { awk -v p=":${port:-0016}" '$4=="0A" && substr($2, length($2)-4)==p {printf "%s ", $10}' /proc/net/tcp /proc/net/tcp6 2>/dev/null; }
before=$(listeners)
sshd -t && systemctl reload @UNIT@ || exit 1
if [ -n "$before" ] && [ "$(systemctl is-active ssh.socket sshd.socket 2>/dev/null | grep -c '^active')" = 0 ]; then
  renewed() {
    [ -n "$now" ] || return 1
    for old in $before; do case " $now " in *" $old "*) return 1;; esac; done
    # shellcheck disable=SC2086 # the words are the inodes
    { set -- $now; n=$#; set -- $before; [ "$n" -ge $# ]; }
  }
  i=0
  while now=$(listeners); ! renewed; do
    i=$((i+1)); [ $i -lt 100 ] || { echo 'sshd did not listen again within 10s of the reload'; exit 1; }; sleep 0.1
  done
fi
