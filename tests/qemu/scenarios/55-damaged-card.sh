# damaged-card: a CompactFlash card with one byte changed inside a block the
# golden root uses, and a disk holding a complete system. The factory reset
# checks the card against its block map before anything is removed and refuses
# ("replace the CompactFlash card"): the disk, its system and its data volumes
# stay byte-identical, and `zshield verify-golden` finds the damage as well.
# The damaged card is a copy: this scenario's own CF stays pristine. Then a
# forged card (a changed file and a map of its own, signed with another key)
# is refused the same way.
target=$ZT_DIR/target.img
zt_provisioned "$target"
target_sha=$(zt_sha "$target")

# A byte in the first block of the golden root's fifth range, from the map.
read -r fs_offset block < <(awk '
    /"label": "golden-root"/ { root = 1 }
    root && /"offset":/ { gsub(/[^0-9]/, ""); offset = $0 }
    root && /"block":/ && ++n == 5 { gsub(/[^0-9]/, ""); print offset, $0; exit }
' "$ZT_GOLDEN/cf.blockmap")
damaged=$ZT_DIR/damaged-cf.img
cp --sparse=always "$ZT_CF" "$damaged"
at=$((fs_offset + block * 4096 + 100))
printf '\x5a' | dd of="$damaged" bs=1 seek="$at" conv=notrunc status=none
zt_info "damaged card: byte $at changed (golden root block $block)"

zt_cmd "$ZT_DIR/refused.cmd" - <<'SCRIPT'
verify=$(zshield verify-golden /dev/sda 2>&1)
echo "ZTEST verify-golden=$(tail -n 1 <<<"$verify" | sed "s/^zshield: //")"
check verify-golden-finds-the-damage grep -q "replace the CompactFlash card" <<<"$verify"
SCRIPT
zt_vm refused --cf "$damaged" --disk "$target" --cmd "$ZT_DIR/refused.cmd" \
    --append "zshield_recovery=default zshield.after=poweroff"
zt_assert_line "check golden-root /dev/sda2 against the card's block map"
zt_assert_line_with "zshield: error:" "the card is damaged; replace the CompactFlash card"
zt_assert_line_with "zshield: error:" "no disk was changed"
zt_assert_no_line "zshield: done:"
zt_assert_checks "$ZT_DIR/refused.cmd"
zt_info "verify-golden: $(zt_value verify-golden)"
zt_assert_same_sha "$target" "$target_sha" "target disk (its system and data volumes)"

# A forged card: a changed file in the golden root and a block map made anew
# for it (so it matches), signed with a key that is not the vendor's. The
# golden's zshield takes only cards the vendor signed (require_signed_map, on
# since the image ships the vendor's keys): refused, the disk byte-identical.
forged=$ZT_DIR/forged-cf.img
cp --sparse=always "$ZT_CF" "$forged"
printf '\x5a' | dd of="$forged" bs=1 seek="$at" conv=notrunc status=none
keys=$ZT_DIR/forger
rm -rf "$keys"
mkdir -p "$keys"
minisign -G -W -p "$keys/forger.pub" -s "$keys/forger.key" >/dev/null
"$ZT_GOLDEN/work/product/usr/sbin/zshield" golden-map --sign-with "$keys/forger.key" "$forged" >/dev/null 2>&1 ||
    zt_fail "zshield golden-map could not map the forged card"
zt_vm forged --cf "$forged" --disk "$target" \
    --append "zshield_recovery=default zshield.after=poweroff"
zt_assert_line_with "zshield: error:" "is signed with a key that is not among the vendor's keys (/etc/zshield/keys/ztest-vendor.pub), and this unit takes only cards whose map the vendor signed"
zt_assert_line_with "zshield: error:" "no disk was changed"
zt_assert_no_line "zshield: done:"
zt_assert_same_sha "$target" "$target_sha" "target disk after the forged card"
