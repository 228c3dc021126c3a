//go:build unix && !linux

package web

import "golang.org/x/sys/unix"

// pollOut reports whether fd has room to write now: poll(2) with a zero
// timeout says POLLOUT.
func pollOut(fd uintptr) bool {
	fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	n, err := unix.Poll(fds[:], 0)
	return err == nil && n == 1 && fds[0].Revents&(unix.POLLOUT|unix.POLLERR|unix.POLLHUP) == unix.POLLOUT
}
