//go:build unix

package auth

import (
	"os"
	"syscall"
)

// keepOwner gives tmp the owner and group of the file at path, when there
// is one and the process may (root running `duplex passwd` on a file the
// broker's user reads). Failures are ignored: the file keeps the caller's
// ownership.
func keepOwner(tmp *os.File, path string) {
	fi, err := os.Stat(path)
	if err != nil {
		return
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		_ = tmp.Chown(int(st.Uid), int(st.Gid))
	}
}
