#!/usr/bin/env bash
# record-trace.sh - record a Linux page-allocator trace for `memdesc validate`.
#
# Usage: record-trace.sh [options] OUTDIR [-- COMMAND [ARGS...]]
#
# Writes OUTDIR in the layout of /work/shared/traces/* (see tools/README.md):
#   trace.txt.xz              the tracefs `trace` file (kmem page events + CAPTURE markers)
#   {zoneinfo,pagetypeinfo,buddyinfo,meminfo,vmstat}-{start,end}.txt
#   markers.txt, ringbuffer-stats.txt, settings.txt, event-formats.txt, event-counts.txt,
#   kernel-version.txt, cmdline.txt, config-facts.txt, README.md
# COMMAND (default: sleep 10) runs between the start and the end snapshots.
# Needs root (tracefs).  Uses tracefs directly; with --trace-cmd and trace-cmd
# installed, trace-cmd records instead and `trace-cmd report` produces the text.

set -euo pipefail

BUF_KB=$((96 * 1024))    # per-CPU ring buffer size
EXTRA_EVENTS=1           # compaction/migrate context events
USE_TRACE_CMD=0
XZ_LEVEL=6

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    cat <<EOF

Options:
  --buffer-kb N      per-CPU ring buffer size in KiB (default $BUF_KB); the buffer is
                     in no-overwrite mode, so when it fills the NEWEST events are
                     dropped: size it for the workload (about 120 bytes per event)
  --no-context       only the kmem events (no compaction/migrate events)
  --trace-cmd        record with trace-cmd instead of writing tracefs files directly
  --xz-level N       xz compression level (default $XZ_LEVEL)
  -h, --help         this text
EOF
}

die() { echo "record-trace: $*" >&2; exit 1; }

OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --buffer-kb) BUF_KB="${2:?}"; shift 2 ;;
        --no-context) EXTRA_EVENTS=0; shift ;;
        --trace-cmd) USE_TRACE_CMD=1; shift ;;
        --xz-level) XZ_LEVEL="${2:?}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [ -z "$OUT" ] || die "more than one OUTDIR"; OUT="$1"; shift ;;
    esac
done
[ -n "$OUT" ] || { usage >&2; exit 2; }
if [ $# -gt 0 ]; then CMD=("$@"); else CMD=(sleep 10); fi

[ "$(id -u)" -eq 0 ] || die "needs root (tracefs and /proc/pagetypeinfo)"
command -v xz >/dev/null || die "xz not found"

T=""
for d in /sys/kernel/tracing /sys/kernel/debug/tracing; do
    if [ -e "$d/trace_marker" ]; then T="$d"; break; fi
done
if [ -z "$T" ]; then
    mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
    [ -e /sys/kernel/tracing/trace_marker ] && T=/sys/kernel/tracing
fi
[ -n "$T" ] || die "tracefs not found (mount -t tracefs nodev /sys/kernel/tracing)"

if [ "$USE_TRACE_CMD" -eq 1 ] && ! command -v trace-cmd >/dev/null; then
    die "--trace-cmd given but trace-cmd is not installed"
fi

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

KMEM_EVENTS="mm_page_alloc mm_page_free mm_page_free_batched mm_page_alloc_zone_locked mm_page_pcpu_drain mm_page_alloc_extfrag"
CONTEXT_EVENTS="compaction:mm_compaction_begin compaction:mm_compaction_end compaction:mm_compaction_isolate_freepages migrate:mm_migrate_pages"

mark() {
    # CAPTURE markers, as the shipped traces have them
    echo "CAPTURE: $*" > "$T/trace_marker"
    echo "$(date +%s.%N) CAPTURE: $*" >> "$OUT/.markers-local"
}

snapshot() {  # snapshot start|end
    local when="$1" f
    for f in zoneinfo pagetypeinfo buddyinfo meminfo vmstat; do
        cat "/proc/$f" > "$OUT/$f-$when.txt"
    done
    dmesg > "$OUT/dmesg-$when.txt" 2>/dev/null || true
    cat /proc/iomem > "$OUT/iomem-$when.txt" 2>/dev/null || true
}

restore() {
    echo 0 > "$T/tracing_on" 2>/dev/null || true
    echo 0 > "$T/events/enable" 2>/dev/null || true
    if [ -n "${OLD_BUF:-}" ]; then echo "$OLD_BUF" > "$T/buffer_size_kb" 2>/dev/null || true; fi
    if [ -n "${OLD_OVERWRITE:-}" ]; then echo "$OLD_OVERWRITE" > "$T/options/overwrite" 2>/dev/null || true; fi
}

OLD_BUF="$(sed 's/ .*//' "$T/buffer_size_kb" 2>/dev/null || true)"
OLD_OVERWRITE="$(cat "$T/options/overwrite" 2>/dev/null || true)"
trap restore EXIT

# static facts
uname -a > "$OUT/kernel-version.txt"
cat /proc/cmdline > "$OUT/cmdline.txt"
{
    echo "recorded by tools/record-trace.sh on $(date -u +%Y-%m-%dT%H:%MZ)"
    for c in /boot/config-"$(uname -r)" /proc/config.gz; do
        [ -e "$c" ] || continue
        { if [ "${c##*.}" = gz ]; then zcat "$c"; else cat "$c"; fi; } |
            grep -E '^(# )?CONFIG_(NUMA|SWAP|ZSWAP|SHUFFLE_PAGE_ALLOCATOR|COMPACTION|MIGRATION|CMA|CONTIG_ALLOC|TRANSPARENT_HUGEPAGE[A-Z_]*|DEFERRED_STRUCT_PAGE_INIT|ZONE_DMA|ZONE_DMA32|HIGHMEM[A-Z0-9_]*|MEMORY_HOTPLUG|MEMORY_HOTREMOVE|INIT_ON_ALLOC_DEFAULT_ON|INIT_ON_FREE_DEFAULT_ON|PAGE_OWNER)[ =]' || true
        break
    done
    grep -m1 '^Page block order' /proc/pagetypeinfo | sed 's/Page block order:/pageblock order (pagetypeinfo):/'
    grep -m1 '^Pages per block' /proc/pagetypeinfo | sed 's/Pages per block:/pages per block (pagetypeinfo):/'
} > "$OUT/config-facts.txt"
{
    echo "== tracing"; echo "buffer_size_kb: $BUF_KB"; echo "overwrite: 0"; echo "trace_clock: global"
    echo "== /sys/kernel/mm/transparent_hugepage"
    for f in /sys/kernel/mm/transparent_hugepage/enabled /sys/kernel/mm/transparent_hugepage/defrag; do
        [ -e "$f" ] && echo "$(basename "$f"): $(cat "$f")"
    done
    echo "== /proc/sys/vm"
    for f in /proc/sys/vm/*; do [ -r "$f" ] && echo "$(basename "$f"): $(tr '\n' ' ' < "$f")"; done 2>/dev/null
} > "$OUT/settings.txt"
: > "$OUT/.markers-local"

EVENTS=""
for e in $KMEM_EVENTS; do EVENTS="$EVENTS kmem:$e"; done
if [ "$EXTRA_EVENTS" -eq 1 ]; then EVENTS="$EVENTS $CONTEXT_EVENTS"; fi

: > "$OUT/event-formats.txt"
for e in $EVENTS; do
    f="$T/events/${e%%:*}/${e#*:}/format"
    if [ -e "$f" ]; then { echo "== $e"; cat "$f"; } >> "$OUT/event-formats.txt"; fi
done

RAW="$OUT/trace.txt"
if [ "$USE_TRACE_CMD" -eq 1 ]; then
    # trace-cmd: record to trace.dat in the background, report to text afterwards
    TC_ARGS=()
    for e in $EVENTS; do TC_ARGS+=(-e "$e"); done
    trace-cmd record -b "$BUF_KB" -C global -o "$OUT/trace.dat" "${TC_ARGS[@]}" \
        -O nooverwrite >"$OUT/trace-cmd.log" 2>&1 &
    TC_PID=$!
    sleep 2  # let trace-cmd enable the events
else
    echo 0 > "$T/tracing_on"
    echo 0 > "$T/events/enable"
    echo nop > "$T/current_tracer"
    echo global > "$T/trace_clock"
    echo 0 > "$T/options/overwrite"   # nooverwrite: drop newest, never overwrite old events
    echo "$BUF_KB" > "$T/buffer_size_kb"
    : > "$T/trace"                    # clear
    for e in $EVENTS; do
        echo 1 > "$T/events/${e%%:*}/${e#*:}/enable"
    done
    echo 1 > "$T/tracing_on"
fi

mark "init start mode=record-trace"
mark "snapshot-start begin"
snapshot start
mark "snapshot-start end"
mark "workload begin cmd=${CMD[*]}"
set +e
"${CMD[@]}"
RC=$?
set -e
mark "workload end rc=$RC"
mark "workload exited rc=$RC"
mark "snapshot-end (tracing off now)"

if [ "$USE_TRACE_CMD" -eq 1 ]; then
    kill -INT "$TC_PID" 2>/dev/null || true
    wait "$TC_PID" || true
    snapshot end
    trace-cmd report -i "$OUT/trace.dat" > "$RAW"
    trace-cmd report -i "$OUT/trace.dat" --stat > "$OUT/ringbuffer-stats.txt" 2>&1 || true
else
    echo 0 > "$T/tracing_on"
    snapshot end
    {
        head -n 5 "$T/trace" | sed -n '/entries-in-buffer/p'
        for c in "$T"/per_cpu/cpu*; do echo "== $(basename "$c")"; cat "$c/stats"; done
    } > "$OUT/ringbuffer-stats.txt"
    cat "$T/trace" > "$RAW"
fi

grep -a ' CAPTURE: ' "$RAW" | sed 's/^ *//' > "$OUT/markers.txt" || true
{
    for e in $EVENTS; do
        n="${e#*:}"
        printf '%-32s %s\n' "$n" "$(grep -ac " $n: " "$RAW" || true)"
    done
    printf '%-32s %s\n' tracing_mark_write "$(grep -ac ' tracing_mark_write: ' "$RAW" || true)"
} > "$OUT/event-counts.txt"
{
    for e in $KMEM_EVENTS; do grep -a -m 5 " $e: " "$RAW" | sed "1i == $e" || true; done
} > "$OUT/event-samples.txt"
wc -c < "$RAW" > "$OUT/trace-bytes.txt"
head -n 12 "$RAW" > "$OUT/trace-header.txt"
xz -T0 "-$XZ_LEVEL" -f "$RAW"
rm -f "$OUT/.markers-local"

LOST=$(grep -E '^(overrun|dropped events):' "$OUT/ringbuffer-stats.txt" | awk '{s += $NF} END {print s + 0}')
cat > "$OUT/README.md" <<EOF
# Page allocator trace: $(basename "$OUT")

Recorded $(date -u +%Y-%m-%dT%H:%MZ) with \`tools/record-trace.sh\` on
$(uname -srmv), $(nproc) CPUs.  Workload: \`${CMD[*]}\` (exit status $RC).

Events: kmem ${KMEM_EVENTS// /, }$( [ "$EXTRA_EVENTS" -eq 1 ] && echo " and, as context, ${CONTEXT_EVENTS// /, }").
Ring buffer $BUF_KB KiB per CPU, no-overwrite, trace_clock=global; events lost: $LOST
(ringbuffer-stats.txt).  Tracing was switched on at run time, so everything the kernel
allocated before (boot, earlier processes) is not in the trace: its frees show up as
frees of never-allocated pfns; \`memdesc validate\` calibrates the start state from the
\`*-start.txt\` snapshots (taken between the CAPTURE markers
\`snapshot-start begin\` / \`end\`, tracing on).  \`*-end.txt\` were taken after
\`CAPTURE: snapshot-end (tracing off now)\` with tracing off.

Event counts: see event-counts.txt.
EOF

echo "record-trace: wrote $OUT (events lost: $LOST)"
[ "$LOST" -eq 0 ] || echo "record-trace: WARNING: $LOST events lost; rerun with a larger --buffer-kb" >&2
