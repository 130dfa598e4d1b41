# swapped: the CF on virtio-scsi and the target on IDE, so that the CF comes up
# as /dev/sdb, the configured target. zshield must see that sdb holds the
# golden, refuse, and let the golden boot go on; neither disk is written.
target=$ZT_DIR/target.img
zt_new_disk "$target"
target_sha=$(zt_sha "$target")

zt_vm boot --cf "$ZT_CF" --cf-bus scsi --disk "$target" --disk-bus ide \
    --append "zshield_recovery=default zshield.after=poweroff"

zt_assert_line ZTEST-END
# Without this the scenario would prove nothing: the CF really was sdb.
zt_assert_value root-source /dev/sdb2
zt_assert_line "zshield: error:"
zt_assert_no_line "zshield: done:"
zt_assert_same_sha "$target" "$target_sha" "target disk"
