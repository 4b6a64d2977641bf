handler_failed=0
group_file=@COMMIT_GROUP@
{ [ -d @STATE_DIR@ ] || mkdir -p -- @STATE_DIR@; } && read -r _ _ _ _ g _ < /proc/$$/stat && @READ_START@ \
  && printf '%s %s\n' "$g" "$start" > "$group_file" 2>/dev/null || :
trap 'rm -f -- "$group_file"' EXIT
cleanup() {
@REMOVE_TEMPS@:
}
rollback() {
@RESTORE@:
}
refused() {
cleanup
@REMOVE_CREATED@:
}
# Handlers owed before this commit; a rollback before any handler ran owes
# no more than that.
pending_before=$(cat @PENDING@ 2>/dev/null) || pending_before=
unowe() {
  if [ -n "$pending_before" ]; then printf '%s\n' "$pending_before" > @PENDING@; else rm -f -- @PENDING@; fi
}
@VALIDATE@@REMOVE_CHECK_COPIES@@RECORD_PENDING@@REMOVE_BACKUPS@@BACKUP@@LIVE_RESTORE@@RENAME@@ATTRIBUTES@@GROUP@sync
printf 'ok committed\n'
@POST_CHECK@@HANDLERS@[ "$handler_failed" = 0 ] || exit 1
rm -f -- @PENDING@ "$group_file"; trap - EXIT
printf 'ok handlers\n'
