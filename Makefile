# zshield: build, install, demo and tests.
# `make demo` and `make test` install their own prerequisites (scripts/install-deps.sh).

TARGET      := x86_64-unknown-linux-musl
# FEATURES=failpoints: the QEMU tests' binary, with the test failpoint
# (qemu/build-golden.sh --variant test), built apart from the product's.
FEATURES    ?=
TARGET_DIR  := target$(if $(FEATURES),/$(FEATURES))
BIN         := $(TARGET_DIR)/$(TARGET)/release/zshield
DESTDIR     ?=
SBINDIR     := /usr/sbin
DRACUTDIR   := /usr/lib/dracut/modules.d/90zshield
CONFDIR     := /etc/zshield
UNITDIR     := /usr/lib/systemd/system
SYSTEMDCONF := /usr/lib/systemd/system.conf.d
GRUBDIR     := /etc/grub.d

.PHONY: all build deps install image test test-unit test-host test-image test-qemu lint demo bench clean

all: build

deps:
	scripts/install-deps.sh

build:
	cargo build --release --locked --target $(TARGET) --target-dir $(TARGET_DIR) $(if $(FEATURES),--features $(FEATURES))

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/zshield
	ln -sf zshield $(DESTDIR)$(SBINDIR)/zshield_backup
	install -d $(DESTDIR)$(DRACUTDIR)
	install -m 0755 initramfs/90zshield/module-setup.sh initramfs/90zshield/zshield-recovery.sh $(DESTDIR)$(DRACUTDIR)/
	install -m 0644 initramfs/90zshield/zshield-recovery.service $(DESTDIR)$(DRACUTDIR)/
	install -d $(DESTDIR)$(UNITDIR)
	install -m 0644 systemd/zshield-backup.service systemd/zshield-backup.timer systemd/zshield-boot-ok.service systemd/zshield-boot-deadline.service $(DESTDIR)$(UNITDIR)/
	install -D -m 0644 systemd/zshield-watchdog.conf -t $(DESTDIR)$(SYSTEMDCONF)/
	install -D -m 0755 grub/01_zshield_password grub/05_zshield_card grub/40_zshield -t $(DESTDIR)$(GRUBDIR)/
	# Its old name: both would add the recovery entries and count each boot twice.
	rm -f $(DESTDIR)$(GRUBDIR)/41_zshield
	install -d $(DESTDIR)$(CONFDIR)
	# Never overwrite an operator's or vendor's configuration.
	[ -e $(DESTDIR)$(CONFDIR)/zshield.conf ] || install -m 0644 etc/zshield.conf $(DESTDIR)$(CONFDIR)/zshield.conf

# The golden CF image as an OEM writes it to the card: build/image/cf.img (raw),
# cf.qcow2 and SHA256SUMS.
# VENDOR_KEYS=DIR: the vendor's minisign public keys (*.pub) for /etc/zshield/keys;
# VENDOR_SIGNING_KEY=FILE: the secret key that signs the card's block map.
image: deps build
	ZSHIELD_VENDOR_KEYS=$(VENDOR_KEYS) ZSHIELD_VENDOR_SIGNING_KEY=$(VENDOR_SIGNING_KEY) \
		qemu/build-golden.sh --variant product

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings
	cargo clippy --locked --all-targets --features failpoints -- -D warnings
	shellcheck -x qemu/*.sh tests/qemu/*.sh tests/qemu/scenarios/*.sh tests/qemu/checks/*.sh \
		initramfs/90zshield/*.sh scripts/*.sh scripts/zshield-bundle .ci/run grub/40_zshield grub/05_zshield_card grub/01_zshield_password \
		qemu/image-overlay/etc/grub.d/02_efi_console qemu/test-bundle/data/hooks/*.sh \
		qemu/test-overlay/etc/zshield/provision/hooks/*.sh qemu/test-overlay/usr/local/share/zshield-test/*/hooks/*.sh

test-unit:
	cargo test --locked --lib --bins

# Loop devices and card images, as root; one thread, since the tests share the loop driver.
test-host:
	cargo test --locked --test host_loop --test host_blockmap --test host_bundle -- --test-threads=1

# The product image builds, and its manifest checks out.
test-image: image
	cd build/image && sha256sum --check SHA256SUMS

test-qemu: build
	tests/qemu/run.sh

test: deps lint test-unit test-host test-image test-qemu

# FIRMWARE=uefi: the same on a UEFI board with Secure Boot (OVMF).
FIRMWARE    ?= bios
demo: deps build
	qemu/demo.sh --firmware $(FIRMWARE)

# The golden copy on loop devices: raw write, rsync, block copy (checked and not).
bench: deps
	scripts/bench-copy.sh

clean:
	cargo clean
	rm -rf build
