# power-cut: work cut off by a power loss is finished at the next power-ons
# without a person: the card first in the boot order, no key pressed, its
# start entry finds no complete system on the disk and boots the automatic
# mode. The power goes at moments drawn from a seed, printed first (the same
# moments again: ZT_SEED=N tests/qemu/run.sh power-cut): a step of the plan
# zshield printed, then up to 3 s into it (qemu/vm.sh --cut-in-plan); QEMU is
# killed, so what the guest had not written is lost.
# - zshield's process dies (a crash: the failpoint aborts it) right after its
#   first write, in the automatic mode: the boot stops at the failure screen;
# - the next two power-ons of the factory line are cut, the third finishes;
# - the disk boots and keeps a file on lv-user;
# - a re-provisioning of that disk (zshield_recovery=default) is cut, the next
#   power-on finishes it: lv-user's file is kept.
# A rollback cut at a drawn moment: merge-interrupted; a backup: menu-disk.
target=$ZT_DIR/target.img
zt_new_disk "$target"

zt_seed
cuts=0
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
    zt_vm "$1" --cf "$ZT_CF" --disk "$target"
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
cut_in_plan factory-line-2 1 --cf "$ZT_CF" --disk "$target"
finished finish

zt_cmd "$ZT_DIR/restored.cmd" "$ZT_CHECKS/restored.sh" - <<'SCRIPT'
echo keep >/home/ztest-keep
sync
SCRIPT
zt_boot_restored restored "$target" "$ZT_DIR/restored.cmd"

# Once the layout is marked as being provisioned (step 3; the steps before
# check the card): a cut before it leaves the disk's system, which boots.
cut_in_plan reprovision 4 --cf "$ZT_CF" --disk "$target" \
    --append "zshield_recovery=default zshield.after=poweroff"
zt_assert_line "holds a complete zshield layout (kept with their data: lv-user, lv-audit)"
zt_assert_line_with "zshield: [3/" "] mark vgroup as being provisioned"
finished finish-again

zt_cmd "$ZT_DIR/kept.cmd" "$ZT_CHECKS/restored.sh" - <<'SCRIPT'
check user-file-kept grep -qx keep /home/ztest-keep
SCRIPT
zt_boot_restored kept "$target" "$ZT_DIR/kept.cmd"
zt_info "$cuts power cuts at drawn moments (seed $ZT_SEED)"
