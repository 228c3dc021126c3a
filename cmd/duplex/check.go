package main

import (
	"io"
	"log/slog"
)

// runConfigCheck is duplex config check FILE: it reads FILE as the broker
// would (without flags and DUPLEX_* variables), checks the values and the
// listeners, and loads the password, ACL, JWT key and TLS files through the
// same constructors the broker uses. It neither opens the store nor listens.
func runConfigCheck(args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 || args[0] == "" {
		return usagef("usage: duplex config check FILE")
	}
	file := args[0]
	noEnv := func(string) (string, bool) { return "", false }
	o, err := parseOptions([]string{"-config", file}, noEnv)
	if err != nil {
		return err
	}
	if err := o.checkExposure(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if _, err := newSecurity(o, log); err != nil {
		return err
	}
	_, err = io.WriteString(stdout, file+": ok\n")
	return err
}
