# provision-hang: a hook that never ends is killed at its limit (20 s in the
# test configuration) with the child it started; the recovery fails with a
# line naming the hook, the layout is not marked complete, and the boot goes
# on into the golden. The same failure from the disk's own root (as its
# "Recover to factory default" entry boots) does not boot that half-made
# root: zshield says what to do and stops (here: powers off). The next
# factory reset with the golden's own provisioning finishes the disk.
target=$ZT_DIR/target.img
zt_new_disk "$target"

zt_vm hang --cf "$ZT_CF" --disk "$target" --append \
    "zshield_recovery=default zshield.after=poweroff zshield.provision=/usr/local/share/zshield-test/provision-hang"
zt_assert_line "hook 10_hang.sh: waiting forever"
zt_assert_line "hook 10_hang.sh: ran past its limit of 20 s and was killed"
zt_assert_line_with "zshield: error:" "hook 10_hang.sh ran past its limit of 20 s and was killed"
zt_assert_no_line "zshield: done:"
zt_assert_no_line "] mark the layout on vgroup as complete" # a step run, not the plan's line
zt_assert_line_with "zshield: error:" "the normal boot continues"
zt_assert_value root-source /dev/sda2

zt_vm from-disk-root --cf "$ZT_CF" --disk "$target" --append \
    "root=/dev/mapper/vgroup-lv--root zshield.golden=LABEL=golden-root zshield_recovery=default zshield.after=poweroff zshield.provision=/usr/local/share/zshield-test/provision-hang"
zt_assert_line_with "zshield: error:" "hook 10_hang.sh ran past its limit"
zt_assert_no_line "the normal boot continues"
zt_assert_line "the root of this boot is on /dev/sdb, which is partly written: it is not booted"
zt_assert_line "to finish: boot with the CompactFlash card"
zt_assert_no_line ZTEST-BEGIN

zt_recover again "$target"
zt_assert_line "holds a zshield layout cut off before its end, to be finished"
zt_assert_line "factory test 90_factory_test.sh: passed"
