# noop: no zshield_recovery argument. zshield must stay silent and touch
# nothing; the golden boots as always, read-only, from the CF's second partition.
target=$ZT_DIR/target.img
zt_new_disk "$target"
target_sha=$(zt_sha "$target")

zt_cmd "$ZT_DIR/noop.cmd" - <<'SCRIPT'
echo "ZTEST root-ro=$(findmnt -no OPTIONS / | tr ',' '\n' | grep -qx ro && echo yes || echo no)"
# What zshield costs a normal boot: `zshield recover` without the argument,
# as the initramfs runs it, 200 times (a figure for the notes, not a test).
out=$(for _ in $(seq 200); do /usr/sbin/zshield recover || echo "rc=$?"; done 2>&1)
echo "ZTEST noop-output=${out:-none}"
start=$(date +%s%N)
for _ in $(seq 200); do /usr/sbin/zshield recover; done
echo "ZTEST noop-cost-us=$((($(date +%s%N) - start) / 200000))"
start=$(date +%s%N)
for _ in $(seq 200); do /bin/true; done
echo "ZTEST true-cost-us=$((($(date +%s%N) - start) / 200000))"
SCRIPT
zt_vm boot --cf "$ZT_CF" --disk "$target" --cmd "$ZT_DIR/noop.cmd" --append ""

zt_assert_line ZTEST-END
zt_assert_value root-source /dev/sda2
zt_assert_value root-ro yes
zt_assert_line "ZTEST-RC=0"
zt_assert_value noop-output none
zt_info "normal-boot cost of zshield in the guest: $(zt_value noop-cost-us) µs a run (/bin/true: $(zt_value true-cost-us) µs)"
zt_assert_no_line "zshield: "
zt_assert_same_sha "$target" "$target_sha" "target disk"
