// Package ovstub mirrors the API that package overlay promises (DESIGN.md), so that package fs can be
// written and tested before overlay exists. fs imports it under the name overlay; once overlay builds,
// the import paths switch and this package is deleted.
package ovstub

import (
	"errors"
	iofs "io/fs"
	"os"

	"github.com/imgfs/imgfs/index"
)

// Node identifies a node of the view.
type Node uint64

// Root is the root directory's node.
const Root Node = 1

// Attr is a node's metadata.
type Attr struct {
	Node               Node
	Type               index.Type
	Mode               uint32
	Nlink              uint32
	UID, GID           uint32
	Size               int64
	Blocks             int64
	MtimeSec           int64
	MtimeNsec          uint32
	Devmajor, Devminor uint32
	Layer              int
}

// DirEntry is one entry of a directory listing.
type DirEntry struct {
	Name string
	Node Node
	Type index.Type
}

// File is an open regular file.
type File interface {
	ReadAt(p []byte, off int64) (int, error)
	Size() int64
	FileRange() (*os.File, int64, bool)
}

// Errors of the view.
var (
	ErrNotExist = iofs.ErrNotExist
	ErrNotDir   = errors.New("overlay: not a directory")
	ErrIsDir    = errors.New("overlay: is a directory")
	ErrInvalid  = errors.New("overlay: invalid argument")
)
