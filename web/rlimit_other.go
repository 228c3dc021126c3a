//go:build !unix

package web

// derivedMaxConnections is a fixed cap where there is no RLIMIT_NOFILE.
func derivedMaxConnections() int { return fallbackMaxConnections }
