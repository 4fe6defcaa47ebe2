#!/bin/sh
# chassis_control program for OpenIPMI ipmi_sim (petguard functional tests).
#
# ipmi_sim runs it synchronously:  <this> <state-dir> <mc-addr> get power
#                                  <this> <state-dir> <mc-addr> set power 0|1 [name value ...]
# "get power" must print "power:0|1"; a non-zero exit becomes completion code 0xff.
# State lives in <state-dir>: power (0|1), mode (normal|stuck_on|fail_set|fail_get),
# delay_get / delay_set (seconds to sleep), calls.log (one line per call).
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
    for item in "$@"; do
        case "$item" in
        power) echo "power:$(cat "$dir/power")" ;;
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
            # stuck_on: the BMC acknowledges power-off but the host stays on.
            if [ "$mode" = stuck_on ] && [ "$value" = 0 ]; then
                continue
            fi
            echo "$value" > "$dir/power"
            ;;
        esac
    done
    ;;
esac
exit 0
