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
@VALIDATE@@REMOVE_CHECK_COPIES@@RECORD_PENDING@@REMOVE_BACKUPS@@BACKUP@@LIVE_RESTORE@@RENAME@@ATTRIBUTES@sync
printf 'ok committed\n'
@POST_CHECK@@HANDLERS@[ "$handler_failed" = 0 ] || exit 1
rm -f -- @PENDING@ "$group_file"; trap - EXIT
printf 'ok handlers\n'
