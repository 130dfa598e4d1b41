# default-blank: factory reset onto a blank disk, then the disk boots alone
# through SeaBIOS and its own GRUB, with the full layout, a faithful copy and
# the golden's provisioning (manifest files and hooks).
target=$ZT_DIR/target.img
zt_new_disk "$target"

zt_recover recover "$target"
zt_keep_provisioned "$target"

zt_assert_line "hook 10_first.sh: succeeded"
zt_assert_line "factory test 90_factory_test.sh: passed"
zt_cmd "$ZT_DIR/restored.cmd" "$ZT_CHECKS/restored.sh" "$ZT_CHECKS/provisioned.sh"
zt_boot_restored restored "$target" "$ZT_DIR/restored.cmd"
zt_info "golden copy (file copy, rsync), from the report: root $(zt_value copy-root-seconds) s, /boot $(zt_value copy-boot-seconds) s"
