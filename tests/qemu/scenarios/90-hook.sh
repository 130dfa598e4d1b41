# hook: in an initramfs without systemd the dracut module runs zshield from a
# pre-mount hook; the factory reset works there too and the disk boots.
target=$ZT_DIR/target.img
zt_new_disk "$target"

zt_vm recover --cf "$ZT_CF" --disk "$target" --initrd initrd-nosystemd.img \
    --append "zshield_recovery=default zshield.after=poweroff"
# A systemd initramfs would print the unit's name when it starts it.
zt_assert_no_line "zshield-recovery"
zt_assert_line "zshield: done:"
zt_assert_no_line "zshield: error:"
zt_assert_no_line ZTEST-BEGIN

zt_cmd "$ZT_DIR/restored.cmd" "$ZT_CHECKS/restored.sh"
zt_boot_restored restored "$target" "$ZT_DIR/restored.cmd"
