systemctl reset-failed docker.service docker.socket 2>/dev/null
systemctl stop docker.service
props=$(systemctl show -p Type -p ExecStart docker.service)
case $props in *fd://*) systemctl cat docker.socket >/dev/null 2>&1 && systemctl restart docker.socket ;; esac
@START_DOCKER@
case $props in *Type=notify*) exit 0 ;; esac
if command -v curl >/dev/null; then answers() { curl -sf --max-time 2 --unix-socket /var/run/docker.sock http://docker/_ping >/dev/null; }
elif command -v docker >/dev/null; then answers() { docker version >/dev/null 2>&1; }
else answers() { systemctl is-active --quiet docker.service; }; fi
i=0
until answers; do
  i=$((i+1)); [ $i -lt 120 ] || { echo 'docker did not answer on its socket within 60s'; exit 1; }; sleep 0.5
done
