# power-cut: work cut off by a power loss is finished at the next power-ons
# without a person: the card first in the boot order, no key pressed, its
# start entry finds no complete system on the disk and boots the automatic
# mode. The power goes at moments drawn from a seed, printed first (the same
# moments again: ZT_SEED=N tests/qemu/run.sh power-cut): a step of the plan
# zshield printed, then up to 3 s into it (qemu/vm.sh --cut-in-plan); QEMU is
# killed, so what the guest had not written is lost.
# - zshield's process dies (a crash: the failpoint aborts it) right after its
#   first write, in the automatic mode: the boot stops at the failure screen;
# - the next power-on of the factory line is cut, the one after finishes. From
#   that power-on on, the unit is a UEFI board with Secure Boot (OVMF, its
#   NVRAM kept), whose firmware gets an entry for the disk;
# - a factory reset of that disk from the card's menu (a person gives the
#   recovery password) is cut, the next power-on finishes it: it keeps the data
#   volumes the first reset made (the event log on lv-audit tells both resets,
#   lv-user's file system is older than the end of the first) and replaces
#   the firmware's entry of the first reset with one in its place, right after
#   the card's; the disk then boots on its own.
# A rollback cut at a drawn moment: rollback-interrupted; a backup: menu-disk.
target=$ZT_DIR/target.img
zt_new_disk "$target"

zt_seed
cuts=0
uefi=(--firmware uefi --vars "$ZT_DIR/nvram.fd")
# cut_in_plan NAME FROM VM-ARGS...: a boot whose zshield is cut at a drawn
# moment, in step FROM of its plan or a later one.
cut_in_plan() {
    local name=$1 from=$2
    shift 2
    zt_draw
    zt_vm "$name" --cut-in-plan "$ZT_DRAW $ZT_DRAW_SECS $from" "$@"
    zt_assert_line "vm: power cut $ZT_DRAW_SECS s after 'zshield: ["
    zt_assert_no_line "zshield: done:"
    zt_assert_no_line "zshield: error:"
    zt_assert_no_line ZTEST-BEGIN
    cuts=$((cuts + 1))
    zt_info "cut $cuts: $(grep -a '^vm: power cut' "$ZT_LOG" | tr -d '\r')"
}
# finished NAME: the power-on after a cut, which must finish the work.
finished() {
    zt_vm "$1" "${uefi[@]}" --cf "$ZT_CF" --disk "$target"
    zt_assert_booted_with "zshield_recovery=auto"
    zt_assert_line "holds a zshield layout cut off before its end, to be finished"
    zt_assert_line "zshield: FACTORY TEST: PASS"
    zt_assert_line "zshield: done: auto recovery finished; powering off"
    zt_assert_no_line "zshield: error:"
}

# The crash: only the partition table is there.
zt_vm crash-after-partition --cf "$ZT_CF" --disk "$target" \
    --append "zshield_recovery=auto zshield.test.crash_after=partition" \
    --until "the machine is halted here"
zt_assert_line "test failpoint zshield.test.crash_after: zshield dies after step"
zt_assert_line "zshield: error: the auto recovery ended without finishing after it began to write"
zt_assert_line "the machine is halted here: turn it off"
zt_assert_no_line ZTEST-BEGIN

cut_in_plan factory-line-1 1 --cf "$ZT_CF" --disk "$target"
zt_assert_booted_with "zshield_recovery=auto"
finished finish
first_entry=$(grep -aoE "boot entry Boot[0-9A-F]{4} 'zshield' is made" "$ZT_LOG" | cut -d' ' -f3 || :)
[ -n "$first_entry" ] || zt_fail "the finished reset made no firmware boot entry"
zt_info "the first reset's firmware entry: $first_entry"

# Once the layout is marked as being provisioned (step 3; the steps before
# check the card): a cut before it leaves the disk's system, which boots.
cut_in_plan reprovision 4 "${uefi[@]}" --cf "$ZT_CF" --disk "$target" \
    --pick "$(zt_menu_index "Recover to factory default") $(zt_grub_login)"
zt_assert_booted_with "zshield_recovery=default"
zt_assert_line "holds a complete zshield layout (kept with their data: lv-user, lv-audit)"
zt_assert_line_with "zshield: [3/" "] mark vgroup as being provisioned"
finished finish-again
# The new entry takes the place right after the entry this power-on started
# from, the card's; the old one goes: this reset removes it, or the cut one
# replaced it already, or (seen with OVMF) the firmware dropped it itself once
# the cut reset had formatted the ESP it led to.
card_entry=$(grep -aoE "next in its boot order after Boot[0-9A-F]{4}, the entry this machine started from" "$ZT_LOG" | head -n 1 | sed -E 's/.* after (Boot[0-9A-F]{4}),.*/\1/' || :)
new_entry=$(grep -aoE "boot entry Boot[0-9A-F]{4} 'zshield' is made" "$ZT_LOG" | cut -d' ' -f3 || :)
[[ -n "$card_entry" && -n "$new_entry" ]] || zt_fail "the finished reset made no firmware boot entry after the card's"
zt_assert_line "'zshield' is made; read back, the boot order is $card_entry, $new_entry"
zt_info "the firmware's entry of the finishing reset: $new_entry ($(grep -aoE "the entries of earlier resets removed: [^;]*" "$ZT_LOG" || echo "none left to remove"))"

{
    echo "new_entry=$new_entry"
    cat <<'SCRIPT'
entries=$(efibootmgr | sed -nE 's/^(Boot[0-9A-F]{4})\* zshield\b.*/\1/p' | paste -sd' ')
echo "ZTEST zshield-entries=$entries"
check one-entry-for-the-disk-the-new-one expect_eq "entries named zshield" "$entries" "$new_entry"
check secure-boot-enforced bash -c 'mokutil --sb-state | grep -qx "SecureBoot enabled"'
events=/var/log/audit/zshield/events.jsonl
done_times() { grep '"event":"factory-reset","status":"done"' "$events" | sed 's/.*"time":"\([^"]*\)".*/\1/'; }
check event-log-kept-both-resets expect_eq "factory resets done" "$(done_times | wc -l)" 2
user_fs_made_by_the_first() {
    local created made first
    created=$(dumpe2fs -h /dev/mapper/vgroup-lv--user 2>/dev/null | sed -n 's/^Filesystem created: *//p')
    [ -n "$created" ] || { echo "no creation time in lv-user's superblock"; return 1; }
    made=$(date -d "$created" +%s)
    first=$(date -d "$(done_times | head -n 1)" +%s)
    echo "lv-user's file system made at $made, the first reset done at $first"
    [ "$made" -le "$first" ]
}
check user-volume-kept user_fs_made_by_the_first
SCRIPT
} | zt_cmd "$ZT_DIR/kept.cmd" "$ZT_CHECKS/restored.sh" -
# The disk alone (OVMF starts its own entry for the disk, first in its order
# without the card: the removable-media path).
zt_vm kept "${uefi[@]}" --disk "$target" --cmd "$ZT_DIR/kept.cmd"
zt_assert_value root-source /dev/mapper/vgroup-lv--root
zt_assert_checks "$ZT_DIR/kept.cmd"
zt_info "$cuts power cuts at drawn moments (seed $ZT_SEED)"
