# default-blank: factory reset onto a blank disk, then the disk boots alone
# through SeaBIOS and its own GRUB, with the full layout and a faithful copy.
target=$ZT_DIR/target.img
zt_new_disk "$target"

zt_recover recover "$target"

zt_cmd "$ZT_DIR/restored.cmd" "$ZT_CHECKS/restored.sh"
zt_boot_restored restored "$target" "$ZT_DIR/restored.cmd"
