# provision-hang: a hook that never ends is killed at its limit (20 s in the
# test configuration) with the child it started. In the automatic mode the
# unit shows FAIL naming the hook, records the failure on the disk's VG and
# stops (here: powers off, as zshield.after=poweroff asks); the layout is not
# marked complete. The same failure from the disk's own root (as its "Recover
# to factory default" entry boots) does not boot that half-made root: zshield
# says what to do and stops. The automatic mode then refuses to run the failed
# reset again (the golden boots); an explicit factory reset with the golden's
# own provisioning clears the record and finishes the disk.
target=$ZT_DIR/target.img
zt_new_disk "$target"

zt_vm hang --cf "$ZT_CF" --disk "$target" --append \
    "zshield_recovery=auto zshield.after=poweroff zshield.provision=/usr/local/share/zshield-test/provision-hang"
zt_assert_line "hook 10_hang.sh: waiting forever"
zt_assert_line "hook 10_hang.sh: ran past its limit of 20 s and was killed"
zt_assert_line "zshield: FACTORY TEST: FAIL (10_hang.sh was killed at its time limit)"
zt_assert_line_with "zshield: error:" "hook 10_hang.sh ran past its limit of 20 s and was killed"
zt_assert_line "the failure is recorded on volume group vgroup"
zt_assert_no_line "zshield: done:"
zt_assert_no_line "] mark the layout on vgroup as complete" # a step run, not the plan's line
zt_assert_no_line "the normal boot continues"
zt_assert_line "reboot: Power down"
zt_assert_no_line ZTEST-BEGIN

zt_vm from-disk-root --cf "$ZT_CF" --disk "$target" --append \
    "root=/dev/mapper/vgroup-lv--root zshield.golden=LABEL=golden-root zshield_recovery=default zshield.after=poweroff zshield.provision=/usr/local/share/zshield-test/provision-hang"
zt_assert_line_with "zshield: error:" "hook 10_hang.sh ran past its limit"
zt_assert_no_line "the normal boot continues"
zt_assert_line "the root of this boot is on /dev/sdb, which is partly written: it is not booted"
zt_assert_line "to finish: boot with the CompactFlash card"
zt_assert_no_line ZTEST-BEGIN

zt_vm auto-again --cf "$ZT_CF" --disk "$target" --append "zshield_recovery=auto zshield.after=poweroff"
zt_assert_line_with "zshield: error:" "the automatic mode does not run it again"
zt_assert_line_with "zshield: error:" "no disk was changed; the normal boot continues"
zt_assert_value root-source /dev/sda2

zt_recover again "$target"
zt_assert_line "] clear the record of the last reset's failure on vgroup"
zt_assert_line "holds a zshield layout cut off before its end, to be finished"
zt_assert_line "factory test 90_factory_test.sh: passed"
zt_assert_line "event log: failure-cleared done"
