package store

import "errors"

// Errors returned by both implementations. Callers compare with errors.Is.
var (
	// ErrLocked is returned by Open when another process (or another Open
	// in this process) holds the data file. Open fails after
	// Options.LockTimeout instead of waiting forever.
	ErrLocked = errors.New("store: data file is in use by another process")

	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("store: closed")

	// ErrNotFound is returned by GetSession for an unknown session.
	ErrNotFound = errors.New("store: not found")

	// ErrSchema is returned by Open when the file was written by a newer
	// (or unknown) schema version than this build understands.
	ErrSchema = errors.New("store: unsupported schema version")

	// ErrCorrupt is returned when a stored record cannot be decoded.
	ErrCorrupt = errors.New("store: corrupt record")

	// ErrInvalidKey is returned for an empty identifier or one containing
	// a 0x00 byte (the separator of composite keys).
	ErrInvalidKey = errors.New("store: invalid key")
)
