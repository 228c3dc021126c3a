package stomp

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// parseHeartBeat reads a heart-beat header "cx,cy" (STOMP 1.2
// §Heart-beating). An absent header means 0,0.
func parseHeartBeat(v string, present bool) (cx, cy time.Duration, err error) {
	if !present {
		return 0, 0, nil
	}
	a, b, ok := strings.Cut(v, ",")
	if !ok {
		return 0, 0, fmt.Errorf("heart-beat %q is not two comma-separated numbers", v)
	}
	x, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 31)
	y, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 31)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("heart-beat %q is not two non-negative integers", v)
	}
	return time.Duration(x) * time.Millisecond, time.Duration(y) * time.Millisecond, nil
}

// negotiateHeartBeat applies STOMP 1.2 §Heart-beating: the client offers cx
// (it can send every cx) and cy (it wants to receive every cy); the server
// can send and wants to receive no more often than min. Each direction is
// off when either side says 0, otherwise the larger of the two values.
// The CONNECTED header carries the results, so the client's own max()
// computation arrives at the same intervals.
func negotiateHeartBeat(cx, cy, min time.Duration) (send, recv time.Duration) {
	if min < 0 {
		return 0, 0
	}
	if cy > 0 {
		send = max(cy, min)
	}
	if cx > 0 {
		recv = max(cx, min)
	}
	return send, recv
}

func formatHeartBeat(send, recv time.Duration) string {
	return strconv.FormatInt(send.Milliseconds(), 10) + "," + strconv.FormatInt(recv.Milliseconds(), 10)
}
