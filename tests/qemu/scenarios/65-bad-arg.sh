# bad-arg: zshield_recovery=bogus, and a misspelled option (the CLI's
# zshield.dry-run for zshield.dry_run), are refused with one error line that
# names both, and the normal boot of the golden goes on with nothing written:
# a recovery asked for with an argument zshield does not know never runs.
target=$ZT_DIR/target.img
zt_new_disk "$target"
target_sha=$(zt_sha "$target")

zt_vm boot --cf "$ZT_CF" --disk "$target" --append "zshield_recovery=bogus zshield.dry-run"

zt_assert_line_with "zshield: error:" bogus
zt_assert_line_with "zshield: error:" "unknown argument zshield.dry-run (did you mean zshield.dry_run?)"
zt_assert_line_with "zshield: error:" "no disk was changed"
zt_assert_line ZTEST-END
zt_assert_value root-source /dev/sda2
zt_assert_same_sha "$target" "$target_sha" "target disk"
