#!/usr/bin/env bash
# Keep a NIC's interrupts off the CPUs that run ringside shards.
#
#   irq-affinity.sh [--dry-run] IFACE SHARD_CPUS
#   irq-affinity.sh --dry-run eth0 0-3,6
#
# Finds IFACE's IRQs in /proc/interrupts: lines whose name contains the
# interface name (eth0-TxRx-0, i40e-eth0-rx-1, ...), the device's MSI/MSI-X
# vectors (/sys/class/net/IFACE/device/msi_irqs, which catches mlx5_comp*@pci
# names), and virtio-net queues (virtioN-input.*, virtioN-output.*).
# Sets /proc/irq/N/smp_affinity_list to the online CPUs that are NOT in
# SHARD_CPUS. irqbalance would move the IRQs back, so a running irqbalance
# is stopped (systemctl stop), with a warning.
#
# Exit: 0 done (or dry run), 1 nothing to do / some writes failed / no CPU
# left for IRQs, 2 usage error. Settings last until reboot or driver reload.

set -euo pipefail

PROG=${0##*/}
DRY_RUN=0

usage() {
    cat <<EOF
usage: $PROG [--dry-run] IFACE SHARD_CPUS

  IFACE       network interface whose IRQs to move, e.g. eth0
  SHARD_CPUS  CPUs that run ringside shards, e.g. 0-3 or 0-3,6
  --dry-run   print what would change, change nothing (no root needed)

Moves IFACE's IRQs to the online CPUs not in SHARD_CPUS.
EOF
}

# die [EXIT_CODE] MESSAGE...
die() {
    local code=1
    if [[ $1 =~ ^[0-9]+$ ]]; then code=$1; shift; fi
    echo "$PROG: error: $*" >&2
    exit "$code"
}
warn() { echo "$PROG: warning: $*" >&2; }

# parse_cpulist "0-3,6" -> prints "0 1 2 3 6" (sorted, unique); fails on bad input.
parse_cpulist() {
    local list=$1 part lo hi cpu
    local -a out=()
    [[ -n $list ]] || return 1
    local IFS=,
    for part in $list; do
        if [[ $part =~ ^([0-9]+)-([0-9]+)$ ]]; then
            lo=$((10#${BASH_REMATCH[1]})); hi=$((10#${BASH_REMATCH[2]}))
            ((lo <= hi)) || return 1
        elif [[ $part =~ ^[0-9]+$ ]]; then
            lo=$((10#$part)); hi=$lo
        else
            return 1
        fi
        for ((cpu = lo; cpu <= hi; cpu++)); do out+=("$cpu"); done
    done
    printf '%s\n' "${out[@]}" | sort -n -u | tr '\n' ' ' | sed 's/ $//'
}

# format_cpulist "0 1 2 3 6" -> prints "0-3,6"
format_cpulist() {
    local cpu start=-1 prev=-1 res=""
    for cpu in $1 end; do
        if [[ $cpu != end ]] && ((start >= 0 && cpu == prev + 1)); then
            prev=$cpu
            continue
        fi
        if ((start >= 0)); then
            res+="${res:+,}$start"
            ((prev == start)) || res+="-$prev"
        fi
        [[ $cpu == end ]] || { start=$cpu; prev=$cpu; }
    done
    echo "$res"
}

# irq_name N -> the last column of /proc/interrupts for IRQ N (the device name)
irq_name() {
    awk -v irq="$1:" '$1 == irq { print $NF; exit }' /proc/interrupts
}

# irq_lines -> "IRQ NAMES" for every numbered IRQ; NAMES is all text after the
# per-CPU counters and chip columns, so shared IRQs list every device.
irq_lines() {
    awk -v ncpu="$(head -1 /proc/interrupts | wc -w)" '
        NR > 1 && $1 ~ /^[0-9]+:$/ {
            irq = $1; sub(":", "", irq)
            names = ""
            for (i = ncpu + 2; i <= NF; i++) names = names " " $i
            print irq names
        }' /proc/interrupts
}

# ---- arguments --------------------------------------------------------------

ARGS=()
while (($#)); do
    case $1 in
        --dry-run|-n) DRY_RUN=1 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; ARGS+=("$@"); break ;;
        -*) usage >&2; die 2 "unknown option: $1" ;;
        *) ARGS+=("$1") ;;
    esac
    shift
done
((${#ARGS[@]} == 2)) || { usage >&2; exit 2; }
IFACE=${ARGS[0]}
SHARD_SPEC=${ARGS[1]}

[[ -e /sys/class/net/$IFACE ]] || die 2 "no such network interface: $IFACE (see: ip -br link)"
SHARDS=$(parse_cpulist "$SHARD_SPEC") || die 2 "bad CPU list '$SHARD_SPEC' (expected e.g. 0-3,6)"
ONLINE=$(parse_cpulist "$(cat /sys/devices/system/cpu/online)") \
    || die "cannot parse /sys/devices/system/cpu/online"

if ((DRY_RUN == 0 && EUID != 0)); then
    die "writing IRQ affinity needs root; try --dry-run to see the plan"
fi

# ---- CPUs left for interrupts -----------------------------------------------

declare -A IS_SHARD=()
for cpu in $SHARDS; do IS_SHARD[$cpu]=1; done
for cpu in $SHARDS; do
    [[ " $ONLINE " == *" $cpu "* ]] || warn "shard CPU $cpu is not online; ignoring it"
done
HOUSEKEEPING=""
for cpu in $ONLINE; do
    [[ -n ${IS_SHARD[$cpu]:-} ]] || HOUSEKEEPING+="$cpu "
done
HOUSEKEEPING=${HOUSEKEEPING% }
ONLINE_LIST=$(format_cpulist "$ONLINE")

if [[ -z $HOUSEKEEPING ]]; then
    echo "$PROG: every online CPU ($ONLINE_LIST) is a shard CPU; no CPU is left for $IFACE's interrupts." >&2
    echo "$PROG: run ringside with fewer shards (--shards N below the CPU count) to leave cores for IRQs." >&2
    exit 1
fi
TARGET=$(format_cpulist "$HOUSEKEEPING")

echo "interface:      $IFACE"
echo "online CPUs:    $ONLINE_LIST"
echo "shard CPUs:     $(format_cpulist "$SHARDS")"
echo "IRQs go to:     $TARGET"

# ---- find the interface's IRQs ----------------------------------------------

declare -A FOUND=()   # irq -> how it was found

# 1. /proc/interrupts names containing IFACE as a whole word
#    (eth0 matches "eth0-TxRx-0" and "i40e-eth0-rx-1", not "veth0" or "eth01").
iface_re=$(printf '%s' "$IFACE" | sed 's/[][\.*^$+?(){}|/]/\\&/g')
while read -r irq name; do
    if [[ $name =~ (^|[^[:alnum:]])${iface_re}([^[:alnum:]]|$) ]]; then
        FOUND[$irq]="name"
    fi
done < <(irq_lines)

# 2. the device behind the interface (none for lo, veth, bridges, ...)
if dev=$(readlink -f "/sys/class/net/$IFACE/device" 2>/dev/null) && [[ -d $dev ]]; then
    devname=${dev##*/}
    if [[ $devname =~ ^virtio[0-9]+$ ]]; then
        # virtio-net: queue vectors are named virtioN-input.Q / virtioN-output.Q
        while read -r irq name; do
            if [[ $name =~ (^|[[:space:]])${devname}-(input|output)\. ]]; then
                FOUND[$irq]=${FOUND[$irq]:-virtio}
            fi
        done < <(irq_lines)
    elif [[ -d $dev/msi_irqs ]]; then
        # PCI NIC: every MSI/MSI-X vector of the device
        for f in "$dev"/msi_irqs/*; do
            [[ -e $f ]] || continue
            irq=${f##*/}
            [[ -d /proc/irq/$irq ]] && FOUND[$irq]=${FOUND[$irq]:-msi}
        done
    fi
fi

if ((${#FOUND[@]} == 0)); then
    echo
    echo "No IRQs found for $IFACE (checked /proc/interrupts names and the device's MSI/MSI-X vectors)."
    echo "It is probably a virtual interface (lo, veth, bridge, tunnel): its packets are processed"
    echo "on the CPU that sends them, so there is no interrupt to move. Nothing to do."
    if ((DRY_RUN)); then exit 0; fi
    exit 1
fi

# ---- irqbalance ---------------------------------------------------------------

irqbalance_running() {
    local c
    for c in /proc/[0-9]*/comm; do
        [[ $(cat "$c" 2>/dev/null) == irqbalance ]] && return 0
    done
    return 1
}

echo
if irqbalance_running; then
    if ((DRY_RUN)); then
        echo "irqbalance is running: would stop it (systemctl stop irqbalance), or it moves the IRQs back."
    elif command -v systemctl >/dev/null && systemctl is-active --quiet irqbalance; then
        warn "stopping irqbalance (it would move the IRQs back)"
        systemctl stop irqbalance
        warn "irqbalance will start again at boot: 'systemctl disable irqbalance', or keep it and set"
        warn "IRQBALANCE_BANNED_CPULIST=$(format_cpulist "$SHARDS") in /etc/default/irqbalance (irqbalance >= 1.8)"
    else
        warn "irqbalance is running outside systemd; stop it yourself or it will undo these settings"
    fi
else
    echo "irqbalance: not running"
fi

# ---- apply ------------------------------------------------------------------

echo
((DRY_RUN)) && echo "dry run: nothing is changed"
printf '%-6s %-28s %-8s %-14s %s\n' IRQ NAME FOUND-BY CURRENT NEW
failed=0
changed=0
while read -r irq; do
    name=$(irq_name "$irq")
    cur=$(cat "/proc/irq/$irq/smp_affinity_list" 2>/dev/null || echo "?")
    printf '%-6s %-28s %-8s %-14s %s' "$irq" "${name:-?}" "${FOUND[$irq]}" "$cur" "$TARGET"
    if ((DRY_RUN)); then
        echo "  (would set)"
    elif [[ $cur == "$TARGET" ]]; then
        echo "  (already)"
    elif echo "$TARGET" > "/proc/irq/$irq/smp_affinity_list" 2>/dev/null; then
        echo "  set"
        changed=$((changed + 1))
    else
        # Kernel-managed IRQs (many multi-queue drivers) refuse with EIO.
        echo "  FAILED (kernel-managed IRQ?)"
        failed=$((failed + 1))
    fi
done < <(printf '%s\n' "${!FOUND[@]}" | sort -n)

if ((DRY_RUN)); then
    exit 0
fi
echo
echo "$changed IRQ(s) changed, $failed failed."
for f in "/sys/class/net/$IFACE"/queues/rx-*/rps_cpus; do
    if [[ -r $f && -n $(tr -d '0,\n' < "$f") ]]; then
        warn "RPS is on for $IFACE ($f); it can still steer packet processing to shard CPUs"
        break
    fi
done
((failed == 0)) || exit 1
