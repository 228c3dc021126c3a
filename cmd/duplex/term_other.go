//go:build !linux

package main

import "os"

// isTerminal is false where Duplex cannot turn echo off: the password is
// read as one line of stdin.
func isTerminal(*os.File) bool { return false }

func readNoEcho(f *os.File) (string, error) { return readLine(f) }
