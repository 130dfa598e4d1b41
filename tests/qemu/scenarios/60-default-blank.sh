# default-blank: factory reset onto a blank disk, then the disk boots alone
# through SeaBIOS and its own GRUB, with the full layout, a faithful copy and
# the golden's provisioning (manifest files and hooks).
target=$ZT_DIR/target.img
zt_new_disk "$target"

zt_recover recover "$target"
zt_assert_line "copy the golden root /dev/sda2 onto /dev/mapper/vgroup-lv--root block by block, checking each range"
zt_assert_line "copy the golden /boot /dev/sda1 onto /dev/sdb2 block by block, checking each range"
zt_keep_provisioned "$target"

zt_assert_line "hook 10_first.sh: succeeded"
zt_assert_line "factory test 90_factory_test.sh: passed"
zt_cmd "$ZT_DIR/restored.cmd" "$ZT_CHECKS/restored.sh" "$ZT_CHECKS/provisioned.sh"
zt_boot_restored restored "$target" "$ZT_DIR/restored.cmd"
zt_info "golden copy block by block, checked, from the report: root $(zt_value copy-root-blocks-seconds) s (copy and check $(zt_value copy_seconds) s, resize2fs $(zt_value resize_seconds) s, e2fsck -fn $(zt_value check_seconds) s); /boot $(zt_value copy-boot-blocks-seconds) s; its copy in the root for backups (rsync) $(zt_value keep-boot-copy-seconds) s"
