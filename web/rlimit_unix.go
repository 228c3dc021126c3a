//go:build unix

package web

import "syscall"

// derivedMaxConnections is 95% of the RLIMIT_NOFILE soft limit (Go raises
// it to the hard limit at startup), leaving ~5% of the descriptors for
// files, the store and sockets past the cap that Server.Listener accepts
// only to close.
func derivedMaxConnections() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return fallbackMaxConnections
	}
	n := min(rl.Cur, 1<<30) // RLIM_INFINITY
	return max(int(n/100*95+n%100*95/100), 1)
}
