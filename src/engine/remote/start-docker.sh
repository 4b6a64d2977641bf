if ! systemctl start docker.service; then
  st=$(systemctl show -p ExecMainStatus --value docker.service)
  case $st in
    [1-9]|[1-9][0-9]|1[0-9][0-9]) false ;;
    *) echo "docker did not start, and dockerd did not fail (exit status ${st:-none}): starting it once more"
       sleep 1; systemctl reset-failed docker.service docker.socket; systemctl start docker.service ;;
  esac || { journalctl -u docker.service -u docker.socket -n 4 --no-pager -o cat; exit 1; }
fi
