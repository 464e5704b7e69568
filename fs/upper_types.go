package fs

import (
	"errors"
	iofs "io/fs"
	"time"

	"github.com/imgfs/imgfs/overlay"
)

// The types and errors below mirror the writable API that package overlay is gaining (Caller, SetAttrIn,
// RenameFlags, WFile and its sentinel errors). They live here only until overlay has them; then they
// become overlay's own.

// Caller is the owner of a new entry: the user and group of the process that made the request.
type Caller struct{ UID, GID uint32 }

// SetAttrIn says which attributes SetAttr changes: nil fields stay as they are.
type SetAttrIn struct {
	Mode         *uint32 // 07777 bits
	UID, GID     *uint32
	Size         *int64
	Atime, Mtime *time.Time
}

// RenameFlags modify Rename.
type RenameFlags uint32

// Rename flags: fail if the new name exists; swap the two names.
const (
	RenameNoReplace RenameFlags = 1 << iota
	RenameExchange
)

// WFile is a regular file open for reading and writing.
type WFile interface {
	overlay.File
	WriteAt(p []byte, off int64) (int, error)
	Truncate(size int64) error
	Sync() error
	Close() error
}

var (
	errExist        = iofs.ErrExist
	errNotEmpty     = errors.New("overlay: directory not empty")
	errReadOnly     = errors.New("overlay: read-only view")
	errReservedName = errors.New("overlay: reserved name")
	errCrossDevice  = errors.New("overlay: cross-device rename")
)
