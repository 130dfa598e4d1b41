# provision-bad: a golden whose install manifest has a malformed line. The
# factory reset refuses in its probe, naming the file and the line, and the
# blank target stays byte-identical.
target=$ZT_DIR/target.img
zt_new_disk "$target"
target_sha=$(zt_sha "$target")

zt_vm bad --cf "$ZT_CF" --disk "$target" --append \
    "zshield_recovery=default zshield.after=poweroff zshield.provision=/usr/local/share/zshield-test/provision-bad" \
    --until "no disk was changed"
zt_assert_line_with "zshield: error:" '/usr/local/share/zshield-test/provision-bad/files.install line 3: bad mode "0999"'
zt_assert_line_with "zshield: error:" "no disk was changed"
zt_assert_no_line "zshield: [1/"
zt_assert_same_sha "$target" "$target_sha" "target disk"
