#!/bin/bash
# Runs one virtual appliance under QEMU/TCG and returns when the guest powers
# off or reboots (-no-reboot turns a reboot into QEMU's exit) or the timeout hits.
#
# usage: qemu/vm.sh --log FILE [--timeout SECS] [--golden DIR]
#                   [--cf IMG [--cf-bus ide|scsi]] [--disk IMG [--disk-bus scsi|ide]]
#                   [--spare IMG]
#                   [--boot-from cf|disk] [--reboot yes|cold] [--pick "KEYS"]
#                   [--firmware bios|uefi [--vars FILE]] [--watchdog yes]
#                   [--cmd FILE] [--append "ARGS"] [--until TEXT]
#                   [--stall SECS] [--cut "TEXT SECS" | --cut-in-plan "DRAW SECS [FROM]"]
#                   [--cpus N] [--disk-cache unsafe|none]
#
#   --cpus N      the guest's vCPUs (default 2)
#   --disk-cache none  the target disk without this machine's page cache (QEMU
#                 cache=none; default unsafe, as every other disk): for a
#                 boot that times first writes. Through the page cache a
#                 guest's write to an image offset not written lately costs
#                 this machine more (new pages, their writeback beside the
#                 emulator) than a rewrite of a recent one, a difference a
#                 real disk does not have, and restore points send first
#                 writes to new offsets. Give a written image (zt_fill).
#   --cf IMG      the CompactFlash disk; IDE by default, as a real CF card is
#                 (virtio-scsi on a UEFI or watchdog board)
#   --disk IMG    the target hard disk; virtio-scsi by default, serial ZTARGET
#   --spare IMG   a second hard disk on virtio-scsi, serial ZSPARE
#   --boot-from   the firmware's boot disk (default cf); SeaBIOS boots from
#                 its first hard disk only, and does not go on to the other
#   --reboot yes  a guest reboot boots again instead of ending QEMU
#   --reboot cold a guest reboot (or a reset of the board's) boots again in a
#                 new QEMU: the board powered off and on, its disks and UEFI
#                 variables kept. Under TCG a warm reset slows the next boot:
#                 its kernel has unpacked the initramfs in 35-150 s instead of
#                 4 s (the translated code of the boot before is still there).
#                 The run ends when the guest powers off, or as below
#   --firmware uefi  the board of a current unit: UEFI (OVMF) with Secure Boot
#                 enforced and Microsoft's keys enrolled, on a q35 machine
#                 with SMM (what keeps the OS from changing the variables
#                 that hold the keys); bios (SeaBIOS) is the default. The
#                 kernel has no driver for q35's AHCI: every disk goes on
#                 virtio-scsi. OVMF, as UEFI firmware does, goes on to the
#                 next disk of its boot order when one does not boot
#   --vars FILE   the UEFI board's variable store (its NVRAM: boot entries,
#                 keys), kept between runs of one unit; made from OVMF's
#                 store with Microsoft's keys when FILE does not exist
#                 (default: a fresh one for this run)
#   --watchdog yes  a board with a hardware watchdog, as an appliance's has:
#                 a q35 (ICH9) machine whose TCO watchdog its firmware
#                 describes in an ACPI WDAT table (the interface the
#                 product's kernel drives, wdat_wdt), allowed to reset the
#                 board (ICH9-LPC.noreboot=false). The firmware's table is
#                 made here at the I/O base both firmwares give the TCO
#                 (PMBASE 0x600); every disk goes on virtio-scsi (see uefi).
#                 QEMU's trace of each time the timer ran out: LOG.watchdog
#   --pick KEYS   at GRUB's menu, as a person at the serial console would,
#                 words in turn: N presses Down N times and Enter, `e' and `c'
#                 press that key (edit, command line), each once the menu is
#                 drawn (again); USER:PASSWORD answers GRUB's login prompt
#   --cmd FILE    a bash script for the golden's test probe, on a 1 MiB
#                 virtio-blk disk with serial "ztestcmd" (padded with NULs)
#   --append ARGS boot the golden's kernel and initrd directly with
#                 "root=LABEL=golden-root ro console=ttyS0,115200 ... ARGS";
#                 without it SeaBIOS boots from the first disk given.
#                 fsck.mode=skip is part of it: e2fsck -a rewrites the
#                 superblock of even a clean file system (s_wtime), and the
#                 golden on the CF must stay byte-identical across boots
#   --initrd NAME the initrd in the golden directory for --append boots
#                 (default initrd.img; initrd-nosystemd.img has no systemd)
#   --golden DIR  where vmlinuz and initrd.img are (default <repo>/build/golden)
#   --until TEXT  end QEMU once the console shows TEXT: a screen that waits
#                 for a person (a GRUB menu without countdown) ends the run
#   --stall SECS  end QEMU when a boot stalls before its initramfs: the console
#                 (and the firmware's log) showed nothing for SECS seconds
#                 (default 150, 0: never) and is empty or its last kernel start
#                 ("Linux version") has no start of init, panic or reboot after
#                 it. That is the emulator's stall, not the guest's: the kernel
#                 prints steadily until it runs the initramfs's /init, and TCG
#                 has sat at one line of it for good. A menu that waits for a
#                 person comes before any kernel and never counts.
#   --cut "TEXT SECS"  cut the power SECS seconds (a decimal) after the
#                 console first shows TEXT: QEMU is killed (SIGKILL), so what
#                 the guest had not written yet never reaches a disk; its
#                 writes are not reordered or torn (cache=unsafe writes each
#                 one through to the image). The console log ends with
#                 "vm: power cut SECS s after 'TEXT'".
#   --cut-in-plan "DRAW SECS [FROM]"  the same, after the start of step K of
#                 the plan zshield prints: of its M steps, K = FROM + DRAW %
#                 max(1, M - FROM - 1) (FROM defaults to 1), so that two steps
#                 are left when FROM leaves room: the cut comes while zshield
#                 works, never after it ended
#
# Exit status: QEMU's (0 after a guest poweroff or reboot), 124 on timeout
# and on a stall (--stall) in a later boot of a --reboot yes run, whose
# earlier boots ran the guest's own code; 125 on a stall in the run's first
# boot, where nothing but the firmware, GRUB and the kernel ran: boot again.
# Judge a boot by the markers in its log, never by this status or its duration.
# QEMU's own syntax puts commas inside single arguments.
# shellcheck disable=SC2054
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() { sed -n '4,/^# Judge/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2; }
die() { echo "vm: error: $*" >&2; exit 2; }

log="" timeout=900 golden=${ZSHIELD_GOLDEN:-$repo/build/golden}
cf="" cf_bus="" disk="" disk_bus=scsi spare="" cmd="" append="" direct=no initrd=initrd.img
boot_from=cf reboot=no pick="" until="" stall=150 cut="" cut_in_plan="" watchdog=no
firmware=bios vars="" cpus=2 disk_cache=unsafe
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || usage
    case "$1" in
        --log) log=$2 ;;
        --timeout) timeout=$2 ;;
        --golden) golden=$2 ;;
        --cf) cf=$2 ;;
        --cf-bus) cf_bus=$2 ;;
        --disk) disk=$2 ;;
        --disk-bus) disk_bus=$2 ;;
        --spare) spare=$2 ;;
        --cmd) cmd=$2 ;;
        --append) append=$2 direct=yes ;;
        --initrd) initrd=$2 ;;
        --boot-from) boot_from=$2 ;;
        --reboot) reboot=$2 ;;
        --watchdog) watchdog=$2 ;;
        --firmware) firmware=$2 ;;
        --vars) vars=$2 ;;
        --pick) pick=$2 ;;
        --until) until=$2 ;;
        --stall) stall=$2 ;;
        --cut) cut=$2 ;;
        --cut-in-plan) cut_in_plan=$2 ;;
        --cpus) cpus=$2 ;;
        --disk-cache) disk_cache=$2 ;;
        *) usage ;;
    esac
    shift 2
done
[ -n "$log" ] || usage
[ -n "$cf$disk" ] || die "give --cf and/or --disk"
[[ "$stall" =~ ^[0-9]+$ ]] || die "--stall takes a number of seconds"
[[ "$cpus" =~ ^[1-9][0-9]*$ ]] || die "--cpus takes a number"
cut_text=${cut% *} cut_delay=${cut##* }
[ -z "$cut" ] || [[ "$cut" == *" "* && "$cut_delay" =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
    die "--cut takes \"TEXT SECONDS\""
if [ -n "$cut_in_plan" ]; then
    [ -z "$cut" ] || die "give --cut or --cut-in-plan, not both"
    read -r cut_draw cut_delay cut_from <<<"$cut_in_plan"
    cut_from=${cut_from:-1}
    [[ "$cut_draw $cut_from" =~ ^[0-9]+\ [0-9]+$ && "$cut_delay" =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
        die "--cut-in-plan takes \"NUMBER SECONDS [STEP]\""
    cut=$cut_in_plan
fi
case "$watchdog" in yes | no) ;; *) die "--watchdog takes yes" ;; esac
case "$reboot" in yes | no | cold) ;; *) die "--reboot takes yes or cold" ;; esac
case "$disk_cache" in unsafe | none) ;; *) die "--disk-cache takes unsafe or none" ;; esac
# A new QEMU would forget what the board keeps over its own reset (the
# watchdog's status), and a new serial pipe would end the key presser's.
[ "$reboot" != cold ] || [ "$watchdog:$pick" = no: ] || die "--reboot cold does not go with --watchdog or --pick"
case "$firmware" in bios | uefi) ;; *) die "--firmware takes bios or uefi" ;; esac
[ -z "$vars" ] || [ "$firmware" = uefi ] || die "--vars is the store of --firmware uefi"
q35=no
[ "$firmware:$watchdog" = bios:no ] || q35=yes
[ -n "$cf_bus" ] || cf_bus=$([ "$q35" = yes ] && echo scsi || echo ide)
[[ "$q35:$cf_bus:$disk_bus" != yes:*ide* ]] ||
    die "a UEFI or watchdog board is a q35 machine, whose IDE (AHCI) the kernel has no driver for: give --cf-bus scsi"
for f in "$cf" "$disk" "$spare" "$cmd"; do
    [ -z "$f" ] || [ -f "$f" ] || die "no such file: $f"
done

keys_shown="" # --pick without its passwords
for key in $pick; do
    [[ "$key" =~ ^([0-9]+|e|c|[^:]+:.+)$ ]] || die "--pick: '$key' is not N, e, c or USER:PASSWORD"
    keys_shown+=" ${key%%:*}"
    [[ "$key" != *:* ]] || keys_shown+=":***"
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/zshield-vm.XXXXXX")
args=(
    -accel tcg -cpu max -smp "$cpus" -m 2048
    -display none -monitor none -nic none
    # No default CD-ROM, floppy or VGA: nothing but the disks given here.
    -nodefaults
    -pidfile "$tmp/qemu.pid"
)
[ "$reboot" = yes ] || args+=(-no-reboot)
# QEMU traces a power-off the guest asked for (not a reset that -no-reboot
# turns into its exit): what ends a --reboot cold run.
[ "$reboot" != cold ] || args+=(-trace qemu_system_shutdown_request -D "$tmp/shutdown.trace")

# wdat_table FILE: the body of the ACPI WDAT table (the Watchdog Action
# Table of Microsoft's Hardware Watchdog Timers Design Specification) that
# describes ICH9's TCO timer at the I/O base SeaBIOS gives it (PMBASE 0x600
# + 0x60): its 10-bit count in ticks of 0.6 s, started and halted by
# TCO_TMR_HLT, reloaded by any write to TCO_RLD; the board resets at the
# second time it runs out, once the OS clears NO_REBOOT in the chipset's
# GCS register (RCBA 0xfed1c000 + 0x3410); SECOND_TO_STS tells that it did.
wdat_table() {
    local tco=0x660 gcs=0xfed1f410 io=1 memory=0 preserve=0x80
    local read_value=0 read_countdown=1 write_value=2 write_countdown=3
    {
        # Header: its length, no PCI device, period 600 ms, counts 4 to
        # 1023, enabled and stopped in sleep states, 11 instructions.
        le 32 4 && le 0xff 2 && le 0xff 1 && le 0xff 1 && le 0xff 1 && le 0 3
        le 600 4 && le 0x3ff 4 && le 4 4 && le 0x81 1 && le 0 3 && le 11 4
        # ACTION INSTRUCTION SPACE BITS ADDRESS VALUE MASK
        wdat_entry 1 $write_value $io 16 $((tco + 0x00)) 1 0x1ff                    # reset (ping)
        wdat_entry 5 $read_countdown $io 16 $((tco + 0x12)) 0 0x3ff                 # countdown
        wdat_entry 6 $((write_countdown | preserve)) $io 16 $((tco + 0x12)) 0 0x3ff # set countdown
        wdat_entry 8 $read_value $io 16 $((tco + 0x08)) 0 0x800                     # running?
        wdat_entry 9 $((write_value | preserve)) $io 16 $((tco + 0x08)) 0 0x800     # run
        wdat_entry 10 $read_value $io 16 $((tco + 0x08)) 0x800 0x800                # stopped?
        wdat_entry 11 $((write_value | preserve)) $io 16 $((tco + 0x08)) 0x800 0x800 # stop
        wdat_entry 16 $read_value $memory 32 $gcs 0 0x20                            # resets?
        wdat_entry 17 $((write_value | preserve)) $memory 32 $gcs 0 0x20            # let it reset
        wdat_entry 32 $read_value $io 16 $((tco + 0x06)) 0x2 0x2                    # did it reset?
        wdat_entry 33 $write_value $io 16 $((tco + 0x06)) 0x2 0x2                   # clear that
    } >"$1"
}
# wdat_entry ACTION INSTRUCTION SPACE BITS ADDRESS VALUE MASK: one
# instruction, its register as an ACPI generic address (word or dword access).
wdat_entry() {
    le "$1" 1 && le "$2" 1 && le 0 2
    le "$3" 1 && le "$4" 1 && le 0 1 && le $(($4 == 32 ? 3 : 2)) 1 && le "$5" 8
    le "$6" 4 && le "$7" 4
}
# le VALUE BYTES: VALUE as BYTES bytes, little-endian.
le() {
    local i
    for ((i = 0; i < $2; i++)); do
        # shellcheck disable=SC2059  # the format is the byte's octal escape
        printf "\\$(printf '%03o' $((($1 >> (8 * i)) & 0xff)))"
    done
}
if [ "$firmware" = uefi ]; then
    ovmf=/usr/share/OVMF
    for f in "$ovmf/OVMF_CODE_4M.secboot.fd" "$ovmf/OVMF_VARS_4M.ms.fd"; do
        [ -f "$f" ] || die "no $f (the ovmf package: scripts/install-deps.sh)"
    done
    if [ -z "$vars" ]; then
        vars=$tmp/OVMF_VARS.fd
    fi
    [ -f "$vars" ] || cp "$ovmf/OVMF_VARS_4M.ms.fd" "$vars"
    args+=(-machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on
        -drive "if=pflash,format=raw,unit=0,readonly=on,file=$ovmf/OVMF_CODE_4M.secboot.fd"
        -drive "if=pflash,format=raw,unit=1,file=$vars")
elif [ "$q35" = yes ]; then
    args+=(-machine q35)
fi
if [ "$watchdog" = yes ]; then
    wdat_table "$tmp/wdat.bin"
    # QEMU's trace of the timer beside the console log: each time it ran out,
    # and whether it was allowed to reset the board then.
    args+=(-global ICH9-LPC.noreboot=false
        -acpitable "sig=WDAT,rev=1,oem_id=ZTEST,oem_table_id=ZTESTTCO,data=$tmp/wdat.bin"
        -trace tco_timer_expired -D "$log.watchdog")
fi
if [ -z "$pick" ]; then
    # Appended to: the boots of a --reboot cold run are one console.
    args+=(-chardev "file,id=serial0,path=$log,append=on" -serial chardev:serial0)
else
    # Keys go in through a FIFO (QEMU opens both ends read-write, so neither
    # side blocks); the console comes out through another into the log.
    mkfifo "$tmp/serial.in" "$tmp/serial.out"
    args+=(-chardev "pipe,id=serial0,path=$tmp/serial" -serial chardev:serial0)
fi

# The disks in the firmware's boot order as they are added (--boot-from
# says which comes first): SeaBIOS boots only the first, OVMF goes down the
# list. A direct kernel boot holds boot index 0 itself.
bootindex=0 boot_disk=""
[ "$direct" = no ] || bootindex=1
scsi=no ide_unit=0
add_disk() { # add_disk IMAGE BUS ID SERIAL [CACHE]
    # cache=unsafe: QEMU exits cleanly, or is killed as a power cut (--cut:
    # each write it got is in the image, what the guest held back is lost),
    # or the run is void; TCG boots should not wait for the host to flush.
    args+=(-drive "file=$1,format=raw,if=none,id=$3,cache=${5:-unsafe}")
    local boot=",bootindex=$bootindex"
    [ -n "$boot_disk" ] || boot_disk=$3
    bootindex=$((bootindex + 1))
    case "$2" in
        ide)
            # Both IDE disks on the first channel, master then slave: one port
            # probes its devices in order, so the names follow the order here.
            [ "$ide_unit" -le 1 ] || die "at most two IDE disks"
            args+=(-device "ide-hd,drive=$3,bus=ide.0,unit=$ide_unit,serial=$4$boot")
            ide_unit=$((ide_unit + 1))
            ;;
        scsi)
            if [ "$scsi" = no ]; then
                args+=(-device virtio-scsi-pci,id=scsi0)
                scsi=yes
            fi
            args+=(-device "scsi-hd,drive=$3,bus=scsi0.0,serial=$4$boot")
            ;;
        *) die "unknown bus: $2 (ide or scsi)" ;;
    esac
}
case "$boot_from" in
    cf)
        [ -z "$cf" ] || add_disk "$cf" "$cf_bus" cf ZGOLDEN
        [ -z "$disk" ] || add_disk "$disk" "$disk_bus" target ZTARGET "$disk_cache"
        ;;
    disk)
        [ -z "$disk" ] || add_disk "$disk" "$disk_bus" target ZTARGET "$disk_cache"
        [ -z "$cf" ] || add_disk "$cf" "$cf_bus" cf ZGOLDEN
        ;;
    *) die "--boot-from takes cf or disk" ;;
esac
[ -z "$spare" ] || add_disk "$spare" scsi spare ZSPARE

# shellcheck disable=SC2317  # called by the trap
cleanup() {
    jobs -p | xargs -r kill 2>/dev/null || :
    rm -rf "$tmp"
}
trap cleanup EXIT
if [ -n "$cmd" ]; then
    [ "$(stat -c %s "$cmd")" -lt $((1024 * 1024)) ] || die "--cmd script must be under 1 MiB"
    cmd_img=$tmp/cmd.img
    truncate -s 1M "$cmd_img"
    dd if="$cmd" of="$cmd_img" conv=notrunc status=none
    args+=(-drive "file=$cmd_img,format=raw,if=none,id=cmd"
        -device virtio-blk-pci,drive=cmd,serial=ztestcmd)
fi

if [ "$direct" = no ]; then
    # A disk SeaBIOS cannot boot makes it retry forever; let it reboot after
    # 5 s instead, which -no-reboot turns into QEMU's exit. SeaBIOS writes
    # nothing to the serial port: its own log (debug port 0x402, where OVMF
    # writes its own too) goes beside ours.
    args+=(-boot reboot-timeout=5000
        -chardev "file,id=firmware,path=$log.firmware,append=on" -device isa-debugcon,iobase=0x402,chardev=firmware)
else
    for f in vmlinuz "$initrd"; do
        [ -f "$golden/$f" ] || die "no $golden/$f (run qemu/build-golden.sh)"
    done
    args+=(-kernel "$golden/vmlinuz" -initrd "$golden/$initrd"
        -append "root=LABEL=golden-root ro console=ttyS0,115200 rd.driver.pre=ata_piix panic=10 rd.shell=0 rd.emergency=reboot fsck.mode=skip${append:+ $append}")
fi

# press_keys: types --pick's words into the serial console, each once GRUB
# shows what it answers: the menu (the first time, its countdown; after that,
# a new draw of it), or the login prompt.
press_keys() {
    local key i draws=0 logins=0
    for key in $pick; do
        case "$key" in
            *:*)
                logins=$((logins + 1))
                wait_for "Enter username:" "$logins" || return 0
                type_line "${key%%:*}"
                wait_for "Enter password:" "$logins" || return 0
                type_line "${key#*:}"
                echo "vm: typed the GRUB login ${key%%:*}:***"
                ;;
            *)
                draws=$((draws + 1))
                if [ "$draws" = 1 ]; then
                    wait_for "will be executed automatically" 1 || return 0
                else
                    wait_for "Use the ^ and v keys" "$draws" || return 0
                    sleep 1 # the rest of the draw
                fi
                case "$key" in
                    e | c) printf '%s' "$key" >"$tmp/serial.in" ;;
                    *)
                        for ((i = 0; i < key; i++)); do
                            printf '\033[B' >"$tmp/serial.in"
                            sleep 0.3
                        done
                        printf '\r' >"$tmp/serial.in"
                        ;;
                esac
                echo "vm: pressed $([ "$key" = e ] || [ "$key" = c ] && echo "'$key'" || echo "Down x$key, Enter") at GRUB's menu"
                ;;
        esac
    done
}
# wait_for TEXT N: until the console has shown TEXT N times.
wait_for() {
    local i
    for ((i = 0; i < timeout * 10; i++)); do
        [ "$(grep -aoF -- "$1" "$log" | wc -l)" -lt "$2" ] || return 0
        sleep 0.1
    done
    return 1
}
type_line() {
    local i
    for ((i = 0; i < ${#1}; i++)); do
        printf '%s' "${1:i:1}" >"$tmp/serial.in"
        sleep 0.05
    done
    printf '\r' >"$tmp/serial.in"
}

# The kernel's first line, "[    0.000000] Linux version 6.1.0-... (builder@host)
# (gcc...": a boot's kernel starts (not a `uname -a` or ZTEST line).
kernel_start='(^|[]] )Linux version [0-9][^ ]* [(]'
# Lines that show a kernel got past its own start: it runs the initramfs's
# /init (the kernel's "Run /init as init process", and "Freeing unused kernel
# image" just before it; systemd's "Welcome to"; zshield's own lines), or it
# stopped on its own (a panic, a reboot or power-off).
past_kernel_start='Run /init as init process|Freeing unused kernel|Welcome to |zshield: |Kernel panic|reboot: '
# stalled_before_initramfs LOG SECS: LOG (and LOG.firmware, if any) has not
# changed for SECS seconds, and the boot on it is before its initramfs: LOG is
# empty, or its last kernel start has no $past_kernel_start line after it.
# A console that waits for a person (GRUB's menu without countdown, its login)
# comes before its boot's kernel, after the panic or reboot of any earlier
# one, and is never stalled by this rule; nor is a kernel with `quiet`, which
# prints no "Linux version" (its stall waits for the timeout).
stalled_before_initramfs() {
    local f t newest=0
    for f in "$1" "$1.firmware"; do
        [ -f "$f" ] || continue
        t=$(stat -c %Y "$f")
        [ "$t" -le "$newest" ] || newest=$t
    done
    [ $(($(date +%s) - newest)) -ge "$2" ] || return 1
    [ -s "$1" ] || return 0
    awk -v start="$kernel_start" -v past="$past_kernel_start" '
        $0 ~ start { kernel = 1; init = 0 }
        kernel && $0 ~ past { init = 1 }
        END { exit !(kernel && !init) }' "$1"
}
# stall_watch: ends QEMU once stalled_before_initramfs holds, and says so in
# $tmp/stalled.
stall_watch() {
    until stalled_before_initramfs "$log" "$stall"; do
        sleep 5
    done
    : >"$tmp/stalled"
    kill "$(cat "$tmp/qemu.pid")" 2>/dev/null || return 0
    sleep 10
    kill -KILL "$(cat "$tmp/qemu.pid")" 2>/dev/null || :
}

mkdir -p "$(dirname "$log")"
: >"$log"
[ "$direct" = yes ] || : >"$log.firmware"
echo "vm: start: $firmware, ${cf:+cf=$cf($cf_bus) }${disk:+disk=$disk($disk_bus) }${cmd:+cmd=$cmd }$([ "$direct" = yes ] && echo "kernel args: $append" || echo "firmware boot from $boot_disk${pick:+, GRUB keys:$keys_shown}")"
t0=$SECONDS
rc=0
if [ -n "$pick" ]; then
    cat "$tmp/serial.out" >"$log" &
    press_keys &
fi
watcher=""
if [ -n "$until" ]; then
    (wait_for "$until" 1 && sleep 2 && kill "$(cat "$tmp/qemu.pid")") &
    watcher=$!
fi
# cut_step: once zshield has printed its plan, sets cut_text to the start of
# step K of it (see --cut-in-plan). The console holds one plan: a cut boot is
# one boot.
cut_step() {
    local steps span
    wait_for "zshield: phase validate" 1 || return 1
    steps=$(grep -acE 'zshield: plan: +[0-9]+\. ' "$log" || :)
    span=$((steps - cut_from - 1))
    [ "$span" -ge 1 ] || span=1
    cut_text="zshield: [$((cut_from + 10#$cut_draw % span))/$steps]"
}
cutter=""
if [ -n "$cut" ]; then
    # No $(...) in here: what it starts must end with it.
    (
        if [ -n "$cut_in_plan" ]; then
            cut_step || exit 0
        fi
        wait_for "$cut_text" 1 || exit 0
        sleep "$cut_delay"
        echo "$cut_text" >"$tmp/cut"
        kill -KILL "$(cat "$tmp/qemu.pid")" 2>/dev/null || rm -f "$tmp/cut"
    ) &
    cutter=$!
fi
stall_watcher=""
if [ "$stall" != 0 ]; then
    # Away from our output: its last sleep may outlive it.
    stall_watch >/dev/null 2>&1 &
    stall_watcher=$!
fi
# run_qemu: one power-on; with --reboot cold, one more for each reset the
# guest or its board asked for, within the one --timeout.
run_qemu() {
    local deadline=$((SECONDS + timeout))
    while :; do
        rm -f "$tmp/shutdown.trace"
        rc=0
        timeout -k 10 $((deadline - SECONDS)) qemu-system-x86_64 "${args[@]}" || rc=$?
        [[ "$reboot" == cold && "$rc" == 0 && ! -e "$tmp/cut" && ! -e "$tmp/stalled" ]] || return 0
        [ -z "$until" ] || ! grep -aqF -- "$until" "$log" || return 0
        ! grep -q qemu_system_shutdown_request "$tmp/shutdown.trace" 2>/dev/null || return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            rc=124
            return 0
        fi
        printf '\nvm: the guest reset the board after %s s: powering it on again (a new QEMU)\n' $((SECONDS - t0)) >>"$log"
    done
}
run_qemu
[ -z "$watcher" ] || kill "$watcher" 2>/dev/null || :
[ -z "$cutter" ] || kill "$cutter" 2>/dev/null || :
[ -z "$stall_watcher" ] || kill "$stall_watcher" 2>/dev/null || :
[ -z "$pick" ] || wait %1 2>/dev/null || :
if [ -e "$tmp/cut" ]; then
    rc=0
    cut_text=$(cat "$tmp/cut")
    # On a line of its own: the guest's last line may have been cut mid-way.
    printf "\nvm: power cut %s s after '%s'\n" "$cut_delay" "$cut_text" >>"$log"
fi

stalled=""
if [ -e "$tmp/stalled" ]; then
    boots=$(grep -acE "$kernel_start" "$log" || :)
    if [ "$boots" -le 1 ]; then
        stalled="before the initramfs started"
        rc=125
    else
        stalled="before the initramfs of boot $boots of this run started"
        rc=124
    fi
    echo "vm: emulator stall: no console output for $stall s $stalled: QEMU stopped$([ "$rc" = 124 ] && echo " (the earlier boots ran: not one to boot again)")"
fi

# How the guest ended, as far as its console tells.
how="qemu exit $rc"
if [ -n "$stalled" ]; then
    how="emulator stall $stalled"
elif [ "$rc" = 124 ]; then
    how="timed out after $timeout s"
elif [ -e "$tmp/cut" ]; then
    how="power cut $cut_delay s after '$cut_text'"
elif [ -n "$until" ] && grep -aqF -- "$until" "$log"; then
    how="ended at '$until'"
elif ! grep -q 'Linux version' "$log"; then
    how="no kernel started$([ "$direct" = no ] && echo " (firmware log: $log.firmware)")"
elif grep -q 'Kernel panic' "$log"; then
    how="kernel panic"
elif grep -q 'reboot: Power down' "$log"; then
    how="guest powered off"
elif grep -q 'reboot: Restarting system' "$log"; then
    how="guest rebooted"
fi
echo "vm: end: $how, $((SECONDS - t0)) s, log $log"
exit "$rc"
