// Command duplex runs the Duplex broker: STOMP and MQTT over WebSocket on
// one endpoint, and over TCP and TLS, with zero configuration.
//
//	duplex [-config duplex.toml] [-addr 127.0.0.1:8080] [-data ./data] [flags]
//	duplex config check FILE
//	duplex passwd [-b] FILE USER [PASSWORD] | duplex passwd -D FILE USER
//	duplex compact [-config FILE | -data DIR | -db FILE]
//
// Every setting is a key of the TOML config file, a flag and an environment
// variable DUPLEX_<FLAG> with dashes as underscores (DUPLEX_ADDR,
// DUPLEX_MAX_FRAME_SIZE). Built-in defaults < the file < the environment <
// flags. settingsTable (table.go) lists them all; run duplex -h for the
// list, and see duplex.example.toml.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"time"
)

func main() {
	os.Exit(exitCode(run(os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr), os.Stderr))
}

// exitCode prints err and maps it to the exit status: 0 for success and
// help, 2 for a mistake on the command line, 1 for everything else.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintln(stderr, "duplex:", err)
		fmt.Fprintln(stderr, "Run duplex -h for help.")
		return 2
	default:
		fmt.Fprintln(stderr, "duplex:", err)
		return 1
	}
}

// run is the whole command: a subcommand, or the broker.
func run(args []string, env lookupEnv, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "compact":
			return runCompact(args[1:], stdout, stderr)
		case "passwd":
			return runPasswd(args[1:], os.Stdin, stdout, stderr)
		case "config":
			if len(args) < 2 || args[1] != "check" {
				return usagef("usage: duplex config check FILE")
			}
			return runConfigCheck(args[2:], stdout, stderr)
		case "help":
			printUsage(stdout)
			return nil
		case "version":
			fmt.Fprintln(stdout, versionString())
			return nil
		}
	}
	opts, err := parseOptions(args, env)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout)
		return err
	}
	if err != nil {
		return err
	}
	if opts.version {
		fmt.Fprintln(stdout, versionString())
		return nil
	}
	if err := opts.checkExposure(); err != nil {
		return err
	}
	return serve(opts, stdout, stderr)
}

// serveDebug serves net/http/pprof on its own listener, never on the public
// address.
func serveDebug(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("debug profiles", "addr", addr)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		log.Error("debug listener", "err", err)
	}
}
