# noop: no zshield_recovery argument. zshield must stay silent and touch
# nothing; the golden boots as always, read-only, from the CF's second partition.
target=$ZT_DIR/target.img
zt_new_disk "$target"
target_sha=$(zt_sha "$target")

zt_cmd "$ZT_DIR/noop.cmd" - <<'SCRIPT'
echo "ZTEST root-ro=$(findmnt -no OPTIONS / | tr ',' '\n' | grep -qx ro && echo yes || echo no)"
SCRIPT
zt_vm boot --cf "$ZT_CF" --disk "$target" --cmd "$ZT_DIR/noop.cmd" --append ""

zt_assert_line ZTEST-END
zt_assert_value root-source /dev/sda2
zt_assert_value root-ro yes
zt_assert_line "ZTEST-RC=0"
zt_assert_no_line "zshield: "
zt_assert_same_sha "$target" "$target_sha" "target disk"
