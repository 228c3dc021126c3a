package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// compactLockTimeout is how long compact waits for the data file's lock
// before concluding that another process (normally the broker) holds it.
const compactLockTimeout = 500 * time.Millisecond

// compactTmpSuffix names the temporary copy, next to the data file so that
// the final rename stays within one filesystem.
const compactTmpSuffix = ".compact-tmp"

// compact is `duplex compact`: it rewrites the data file offline so that
// the free pages bbolt keeps after deletes are given back to the filesystem.
//
//	duplex compact [-config FILE] [-data DIR] [-db PATH] [-tx-max-size BYTES]
//
// The broker must be stopped first: compact takes bbolt's exclusive lock on
// the file and fails within half a second ("is the broker running?") if any
// process holds it. It refuses a missing or empty file rather than creating
// one. The live data are copied with bolt.Compact, in transactions of at
// most -tx-max-size bytes, into PATH.compact-tmp in the same directory; that
// copy is fsynced, both files are closed, the copy (with the original's
// permission bits) is renamed over PATH and the directory is fsynced. On any
// failure before the rename the temporary file is removed and the original
// is left untouched. It prints one line to stdout:
//
//	compacted PATH: BEFORE -> AFTER bytes (PCT% smaller) in DURATION
//
// Like the broker, each flag may also be set by environment variable
// (DUPLEX_DATA, DUPLEX_DB, DUPLEX_TX_MAX_SIZE, DUPLEX_CONFIG); a flag given
// on the command line wins. With -config, the broker's config file gives
// data and db under the environment and the flags.
func compact(args []string) error {
	return runCompact(args, os.Stdout, os.Stderr)
}

// runCompact is compact with its output streams as parameters.
func runCompact(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("duplex compact", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: duplex compact [-config FILE] [-data DIR] [-db PATH] [-tx-max-size BYTES]")
		fmt.Fprintln(fs.Output(), "Rewrites the data file without its free pages. Stop the broker first.")
		fs.PrintDefaults()
	}
	dataDir := fs.String("data", "data", "data folder")
	dbPath := fs.String("db", "", "database file (default <data>/duplex.db)")
	txMaxSize := fs.Int64("tx-max-size", 64<<20, "bytes copied per compaction transaction (0: one transaction)")
	configFile := fs.String("config", "", "the broker's TOML config file: its data and db keys are the defaults")

	// Environment first, so that flags on the command line win. A malformed
	// variable is an error unless its flag is given.
	envErrs := map[string]error{}
	fs.VisitAll(func(f *flag.Flag) {
		env := "DUPLEX_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := f.Value.Set(v); err != nil {
				envErrs[f.Name] = fmt.Errorf("compact: %s=%q: %w", env, v, err)
			}
		}
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("compact: %w", err)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { delete(envErrs, f.Name); given[f.Name] = true })
	for _, err := range envErrs {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("compact: unexpected argument %q (use -db PATH or -data DIR)", fs.Arg(0))
	}
	if *txMaxSize < 0 {
		return fmt.Errorf("compact: -tx-max-size must not be negative")
	}
	// The broker's config file (-config or DUPLEX_CONFIG) says where the
	// data are, under the environment and the flags.
	if *configFile != "" {
		o, err := parseOptions([]string{"-config", *configFile}, os.LookupEnv)
		if err != nil {
			return fmt.Errorf("compact: %w", err)
		}
		if !given["data"] {
			*dataDir = o.v.Data
		}
		if !given["db"] {
			*dbPath = o.v.DB
		}
	}
	path := *dbPath
	if path == "" {
		path = filepath.Join(*dataDir, "duplex.db")
	}

	start := time.Now()
	before, after, err := compactFile(path, *txMaxSize, compactLockTimeout)
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	took := time.Since(start)
	if took >= time.Millisecond {
		took = took.Round(time.Millisecond)
	} else {
		took = took.Round(time.Microsecond)
	}
	change := "smaller"
	pct := 0.0
	if before > 0 {
		pct = float64(before-after) / float64(before) * 100
	}
	if pct < 0 {
		change, pct = "larger", -pct
	}
	fmt.Fprintf(stdout, "compacted %s: %d -> %d bytes (%.1f%% %s) in %v\n", path, before, after, pct, change, took)
	return nil
}

// compactFile compacts the bbolt file at path in place and returns its size
// before and after. The original is replaced only once the compacted copy
// is complete and on disk.
func compactFile(path string, txMaxSize int64, lockTimeout time.Duration) (before, after int64, err error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, fmt.Errorf("%s does not exist (nothing to compact; check -data or -db)", path)
	}
	if err != nil {
		return 0, 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, 0, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() == 0 {
		return 0, 0, fmt.Errorf("%s is empty, not a Duplex data file", path)
	}
	mode := fi.Mode().Perm()

	// Opened read-write for bbolt's exclusive lock, so that no other process,
	// reader or writer, has the file while it is copied and replaced. bbolt
	// does not write to an existing, valid file on open or close. O_CREATE is
	// masked so that a file removed since the Stat is not recreated.
	src, err := bolt.Open(path, mode, &bolt.Options{
		Timeout: lockTimeout,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			return os.OpenFile(name, flag&^os.O_CREATE, perm)
		},
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return 0, 0, fmt.Errorf("%s is locked by another process (is the broker running? stop it first): lock not acquired within %v: %w", path, lockTimeout, err)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer func() {
		if src != nil {
			src.Close()
		}
	}()
	// Size under the lock: the file cannot change from here on.
	if fi, err = os.Stat(path); err != nil {
		return 0, 0, err
	}
	before = fi.Size()

	tmp := path + compactTmpSuffix
	// A leftover from an interrupted run. No other compact can be using it:
	// that one would hold the lock we hold.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, 0, fmt.Errorf("remove stale %s: %w", tmp, err)
	}
	// NoSync: the copy is fsynced once, at the end, not on each commit.
	dst, err := bolt.Open(tmp, mode, &bolt.Options{
		Timeout:  lockTimeout,
		NoSync:   true,
		PageSize: src.Info().PageSize,
	})
	if err != nil {
		return 0, 0, fmt.Errorf("create %s: %w", tmp, err)
	}
	renamed := false
	defer func() {
		if dst != nil {
			dst.Close()
		}
		if !renamed {
			os.Remove(tmp)
		}
	}()
	// bbolt created tmp with mode&^umask; keep exactly the original's bits.
	if err := os.Chmod(tmp, mode); err != nil {
		return 0, 0, fmt.Errorf("chmod %s: %w", tmp, err)
	}

	if err := bolt.Compact(dst, src, txMaxSize); err != nil {
		return 0, 0, fmt.Errorf("copy %s: %w", path, err)
	}
	if err := dst.Sync(); err != nil {
		return 0, 0, fmt.Errorf("sync %s: %w", tmp, err)
	}
	err = dst.Close()
	dst = nil
	if err != nil {
		return 0, 0, fmt.Errorf("close %s: %w", tmp, err)
	}
	err = src.Close()
	src = nil
	if err != nil {
		return 0, 0, fmt.Errorf("close %s: %w", path, err)
	}
	if fi, err = os.Stat(tmp); err != nil {
		return 0, 0, err
	}
	after = fi.Size()

	if err := os.Rename(tmp, path); err != nil {
		return 0, 0, fmt.Errorf("replace %s: %w", path, err)
	}
	renamed = true
	if err := syncDir(filepath.Dir(path)); err != nil {
		return 0, 0, fmt.Errorf("%s replaced, but syncing its directory failed (a power cut may undo the replacement): %w", path, err)
	}
	return before, after, nil
}

// syncDir fsyncs a directory so that a rename inside it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
