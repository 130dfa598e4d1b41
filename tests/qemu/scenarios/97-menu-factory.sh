# menu-factory: the CF booted through the firmware; at its GRUB menu a person
# picks "Recover to factory default" and gives the recovery password. zshield
# provisions the blank disk and reboots; the machine, now booting from the
# hard disk (the CF still in its slot), comes up as the restored system without
# a key pressed. (SeaBIOS tries only its first hard disk, so the reboot ends
# this VM and the next run boots the disk first.)
target=$ZT_DIR/target.img
zt_new_disk "$target"

zt_vm menu --cf "$ZT_CF" --disk "$target" --pick "$(zt_menu_index "Recover to factory default") $(zt_grub_login)"
zt_assert_menu
zt_assert_line "Enter password:"
zt_assert_booted_with "zshield_recovery=default"
zt_assert_line "zshield: done:"
zt_assert_no_line "zshield: error:"
zt_assert_line "reboot: Restarting system"

zt_cmd "$ZT_DIR/restored.cmd" "$ZT_CHECKS/restored.sh" - <<'SCRIPT'
check booted-without-recovery bash -c '! grep -q zshield_recovery /proc/cmdline'
check disk-menu-has-recovery grep -q "^menuentry 'Recover to latest backup'" /boot/grub/grub.cfg
check disk-factory-default-names-the-golden grep -q "zshield_recovery=default zshield.golden=UUID=$GOLDEN_ROOT_UUID" /boot/grub/grub.cfg
check disk-menu-has-the-password grep -q '^password_pbkdf2 zshield grub.pbkdf2.sha512.' /boot/grub/grub.cfg
check golden-only-options-gone bash -c '! grep -q fsck.mode=skip /boot/grub/grub.cfg && test ! -e /etc/default/grub.d/zshield-golden.cfg'
SCRIPT
zt_vm restored --cf "$ZT_CF" --disk "$target" --boot-from disk --cmd "$ZT_DIR/restored.cmd"
zt_assert_menu
zt_assert_value root-source /dev/mapper/vgroup-lv--root
zt_assert_checks "$ZT_DIR/restored.cmd"
