# swapped: the CF on virtio-scsi and the target on IDE, so that the CF comes up
# as /dev/sdb, the target this boot names. zshield must see that sdb holds the
# golden, refuse, and let the golden boot go on; neither disk is written.
target=$ZT_DIR/target.img
zt_new_disk "$target"
target_sha=$(zt_sha "$target")

zt_vm boot --cf "$ZT_CF" --cf-bus scsi --disk "$target" --disk-bus ide \
    --append "zshield_recovery=default zshield.after=poweroff zshield.target=/dev/sdb"

zt_assert_line ZTEST-END
# Without this the scenario would prove nothing: the CF really was sdb.
zt_assert_value root-source /dev/sdb2
zt_assert_line "zshield: error:"
zt_assert_no_line "zshield: done:"
zt_assert_same_sha "$target" "$target_sha" "target disk"

# target = "auto" (the test golden's) with a second blank hard disk: which one
# is the target is a doubt, so neither is touched. (The golden's boot after
# the refusal, proven above and in bad-arg, is not waited for.)
spare=$ZT_DIR/spare.img
zt_new_disk "$spare"
zt_vm two-disks --cf "$ZT_CF" --disk "$target" --spare "$spare" \
    --append "zshield_recovery=default zshield.after=poweroff" --until "no disk was changed"
zt_assert_line_with "zshield: error: target auto: 2 disks could be the target" "serial ZSPARE"
zt_assert_line_with "zshield: error: target auto:" "no disk was changed"
zt_assert_no_line "zshield: done:"
zt_assert_same_sha "$target" "$target_sha" "target disk"
zt_assert_same_sha "$spare" "$target_sha" "second disk"
