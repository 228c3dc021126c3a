//go:build !unix

package web

// nofileLimit is 0 (unknown) where there is no RLIMIT_NOFILE.
func nofileLimit() int { return 0 }
