#!/bin/sh
# chassis_control program for OpenIPMI ipmi_sim (petguard functional tests).
#
# ipmi_sim runs it synchronously:  <this> <state-dir> <mc-addr> get power
#                                  <this> <state-dir> <mc-addr> set power 0|1 [name value ...]
# "get power" must print "power:0|1"; a non-zero exit becomes completion code 0xff.
# State lives in <state-dir>: power (0|1), mode (normal|stuck_on|fail_set|fail_get|flap|optimistic),
# delay_get / delay_set (seconds to sleep), calls.log (one line per call).
#   flap:       power-off is acknowledged and not carried out; "get power" answers 0 and 1 in
#               turn (a flapping reading: OFF once, then ON again).
#   optimistic: power-off is acknowledged and not carried out; "get power" answers 0 for
#               <state-dir>/optimistic seconds from the first reading after it, then the truth
#               (a BMC that reports OFF before the chassis has dropped power, or from a state it
#               updated too early). Timed from that reading, not from the command, so that the
#               first reading is OFF however slowly the reader starts.
dir=$1
shift 2
mode=normal
[ -f "$dir/mode" ] && mode=$(cat "$dir/mode")
echo "$*" >> "$dir/calls.log"
[ -f "$dir/power" ] || echo 1 > "$dir/power"

case "$1" in
get)
    [ "$mode" = fail_get ] && exit 1
    [ -f "$dir/delay_get" ] && sleep "$(cat "$dir/delay_get")"
    shift
    power=$(cat "$dir/power")
    if [ "$mode" = flap ]; then
        turn=$(cat "$dir/flap_turn" 2>/dev/null || echo 0)
        echo $((1 - turn)) > "$dir/flap_turn"
        [ "$turn" = 0 ] && power=0
    fi
    if [ "$mode" = optimistic ] && [ -f "$dir/off_pending" ]; then
        rm -f "$dir/off_pending"
        date +%s.%N > "$dir/off_sent_at"
    fi
    if [ "$mode" = optimistic ] && [ -f "$dir/off_sent_at" ]; then
        lie=$(awk -v sent="$(cat "$dir/off_sent_at")" -v now="$(date +%s.%N)" \
            -v window="$(cat "$dir/optimistic" 2>/dev/null || echo 0)" \
            'BEGIN { print (now - sent < window) ? 1 : 0 }')
        [ "$lie" = 1 ] && power=0
    fi
    for item in "$@"; do
        case "$item" in
        power) echo "power:$power" ;;
        esac
    done
    ;;
set)
    [ -f "$dir/delay_set" ] && sleep "$(cat "$dir/delay_set")"
    shift
    while [ $# -ge 2 ]; do
        name=$1
        value=$2
        shift 2
        case "$name" in
        power)
            [ "$mode" = fail_set ] && exit 1
            # stuck_on, flap, optimistic: the BMC acknowledges power-off but the host stays on.
            if [ "$value" = 0 ]; then
                case "$mode" in
                stuck_on | flap) continue ;;
                optimistic) touch "$dir/off_pending"; continue ;;
                esac
            fi
            echo "$value" > "$dir/power"
            ;;
        esac
    done
    ;;
esac
exit 0
