abandon() { rm -f -- @TEMP@; printf 'error live-restore first: %s\n' "$1"; cleanup; rollback; unowe; printf 'rolled-back\n'; exit 1; }
rm -f -- @TEMP@ && cat > @TEMP@ <<'DOCKHAND_LIVE_RESTORE'
@INTERIM@DOCKHAND_LIVE_RESTORE
chown root:root @TEMP@ && chmod 0644 @TEMP@ && mv -f -- @TEMP@ @PATH@ || abandon "cannot write "@PATH@
since=$(date +%s)
{ systemctl reload docker.service 2>/dev/null || kill -HUP "$(systemctl show -p MainPID --value docker.service)"; } \
  || abandon 'dockerd could not be asked to reload'
i=0
while :; do
  said=$(journalctl -u docker.service --since "@$since" -o cat 2>/dev/null | grep -E 'Reloaded configuration|Error reconfiguring' | tail -n 1)
  case $said in *Reloaded*) break ;; ?*) abandon "$said" ;; esac
  i=$((i+1)); [ $i -lt 50 ] || abandon 'dockerd did not reload its configuration within 10s'; sleep 0.2
done
printf 'ok live-restore\n'
