# menu-factory: the firmware boots the hard disk first; a blank one falls
# through to the CF. At the CF's GRUB menu a person picks "Recover to factory
# default": zshield provisions the disk and reboots, the firmware now boots
# the disk, and the restored system is up - all in one run of the VM.
target=$ZT_DIR/target.img
zt_new_disk "$target"
pick=$(zt_menu_index "Recover to factory default")

zt_cmd "$ZT_DIR/restored.cmd" "$ZT_CHECKS/restored.sh" - <<'SCRIPT'
check booted-without-recovery bash -c '! grep -q zshield_recovery /proc/cmdline'
check disk-menu-has-recovery grep -q "^menuentry 'Recover to latest backup'" /boot/grub/grub.cfg
check disk-factory-default-names-the-golden grep -q "zshield_recovery=default zshield.golden=UUID=$GOLDEN_ROOT_UUID" /boot/grub/grub.cfg
check golden-only-options-gone bash -c '! grep -q fsck.mode=skip /boot/grub/grub.cfg && test ! -e /etc/default/grub.d/zshield-golden.cfg'
SCRIPT
zt_vm menu --cf "$ZT_CF" --disk "$target" --boot-from disk --reboot yes --pick "$pick" --cmd "$ZT_DIR/restored.cmd"
zt_assert_menu
zt_assert_booted_with "zshield_recovery=default"
zt_assert_line "zshield: done:"
zt_assert_no_line "zshield: error:"
zt_assert_line "reboot: Restarting system"
zt_assert_value root-source /dev/mapper/vgroup-lv--root
zt_assert_checks "$ZT_DIR/restored.cmd"
