//go:build unix

package web

import "syscall"

// nofileLimit is the RLIMIT_NOFILE soft limit (Go raises it to the hard
// limit at startup), or 0 when it cannot be read.
func nofileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return int(min(rl.Cur, 1<<30)) // RLIM_INFINITY
}
