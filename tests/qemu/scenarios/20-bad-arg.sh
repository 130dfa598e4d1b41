# bad-arg: zshield_recovery=bogus is refused with an error that names it, and
# the normal boot of the golden goes on with nothing written.
target=$ZT_DIR/target.img
zt_new_disk "$target"
target_sha=$(zt_sha "$target")

zt_vm boot --cf "$ZT_CF" --disk "$target" --append "zshield_recovery=bogus"

zt_assert_line_with "zshield: error:" bogus
zt_assert_line ZTEST-END
zt_assert_value root-source /dev/sda2
zt_assert_same_sha "$target" "$target_sha" "target disk"
