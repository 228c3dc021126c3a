package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/duplexmq/duplex/broker/auth"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
// Without it, the module version or the VCS revision from the build
// information is shown.
var version = ""

// versionString is what duplex -version prints.
func versionString() string {
	v := version
	if v == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
				v = bi.Main.Version
			}
			var rev, dirty string
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					if s.Value == "true" {
						dirty = "-dirty"
					}
				}
			}
			if v == "" && rev != "" {
				v = "devel-" + rev[:min(12, len(rev))] + dirty
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	return fmt.Sprintf("duplex %s (%s %s/%s)", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// printUsage is duplex -h: the subcommands and every flag with its config
// key and environment variable.
func printUsage(w io.Writer) {
	fmt.Fprint(w, `Duplex: STOMP and MQTT over WebSocket, TCP and TLS.

Usage:
  duplex [-config FILE] [flags]                 run the broker
  duplex config check FILE                      validate a config file and the files it names, without starting
  duplex passwd [-b] FILE USER [PASSWORD]       add a user to a password file, or change its password
                                                (-b: the password is on the command line; without it, prompt)
  duplex passwd -D FILE USER                    delete a user from a password file
  duplex compact [-config FILE | -data DIR | -db FILE]
                                                shrink the data file (stop the broker first)
  duplex help, duplex -h                        this help
  duplex -version                               print the version

Every setting is a key of the TOML config file (see duplex.example.toml), a flag, and an environment variable.
Built-in defaults < config file < DUPLEX_* environment < flags.

  -config FILE
        TOML config file; relative paths in it are relative to its folder (env DUPLEX_CONFIG)
  -version
        print the version and exit
`)
	o := newOptions()
	section := "-"
	for _, s := range o.table {
		if sec := s.section(); sec != section {
			section = sec
			if sec == "" {
				fmt.Fprintln(w, "\nTop-level keys:")
			} else {
				fmt.Fprintf(w, "\n[%s]:\n", sec)
			}
		}
		head := "-" + s.flag
		if a := s.argName(); a != "" {
			head += " " + a
		}
		meta := "key " + s.key + ", env " + s.env()
		if s.def != "" {
			meta += ", default " + s.def
		}
		fmt.Fprintf(w, "  %-40s %s\n        %s\n", head, meta, s.help)
	}
	fmt.Fprint(w, "\nFile only: [[acl]] rules (user | group | anonymous, access, action, topic | queue) and [groups] name = [users].\n")
}

// runPasswd is duplex passwd, Mosquitto's mosquitto_passwd:
//
//	duplex passwd [-b] FILE USER [PASSWORD]
//	duplex passwd -D FILE USER
//
// Without -b the password is asked twice on the terminal, without echo, or
// read from one line of stdin when stdin is not a terminal.
func runPasswd(args []string, stdin *os.File, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("duplex passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	batch := fs.Bool("b", false, "take the password from the command line")
	del := fs.Bool("D", false, "delete the user")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: duplex passwd [-b] FILE USER [PASSWORD]\n       duplex passwd -D FILE USER")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{fmt.Errorf("passwd: %w", err)}
	}
	rest := fs.Args()
	switch {
	case *del && *batch:
		return usagef("passwd: -D and -b do not go together")
	case *del:
		if len(rest) != 2 {
			return usagef("usage: duplex passwd -D FILE USER")
		}
		if err := auth.DeletePassword(rest[0], rest[1]); err != nil {
			return fmt.Errorf("passwd: %w", err)
		}
		fmt.Fprintf(stdout, "%s: deleted user %s\n", rest[0], rest[1])
		return nil
	case *batch:
		if len(rest) != 3 {
			return usagef("usage: duplex passwd -b FILE USER PASSWORD")
		}
	default:
		if len(rest) != 2 {
			return usagef("usage: duplex passwd FILE USER (add -b to give the password as a third argument)")
		}
	}
	file, user := rest[0], rest[1]
	// Refuse a bad name before asking for a password.
	if err := auth.ValidUserName(user); err != nil {
		return fmt.Errorf("passwd: %w", err)
	}
	var password string
	if *batch {
		password = rest[2]
	} else {
		var err error
		if password, err = readPassword(stdin, stderr); err != nil {
			return fmt.Errorf("passwd: %w", err)
		}
	}
	if err := auth.SetPassword(file, user, password); err != nil {
		return fmt.Errorf("passwd: %w", err)
	}
	fmt.Fprintf(stdout, "%s: set the password of %s (send the broker SIGHUP to load it)\n", file, user)
	return nil
}

// readPassword asks for the password twice on a terminal, without echo;
// from a pipe it reads one line.
func readPassword(in *os.File, prompt io.Writer) (string, error) {
	if !isTerminal(in) {
		line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", errors.New("no password on stdin")
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	fmt.Fprint(prompt, "Password: ")
	p1, err := readNoEcho(in)
	fmt.Fprintln(prompt)
	if err != nil {
		return "", err
	}
	fmt.Fprint(prompt, "Reenter password: ")
	p2, err := readNoEcho(in)
	fmt.Fprintln(prompt)
	if err != nil {
		return "", err
	}
	if p1 != p2 {
		return "", errors.New("passwords do not match")
	}
	return p1, nil
}

// readLine reads one line byte by byte (no buffering past the newline, so
// the second prompt gets its own line).
func readLine(in io.Reader) (string, error) {
	var b [1]byte
	var line []byte
	for len(line) < 4096 {
		n, err := in.Read(b[:])
		if n == 1 {
			if b[0] == '\n' {
				return strings.TrimRight(string(line), "\r"), nil
			}
			line = append(line, b[0])
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(line) > 0 {
				return string(line), nil
			}
			return "", err
		}
	}
	return "", errors.New("password line too long")
}
