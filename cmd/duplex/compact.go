package main

import "errors"

// compact is `duplex compact`: it rewrites the data file offline.
// Placeholder until implemented.
func compact(args []string) error { return errors.New("compact: not implemented yet") }
