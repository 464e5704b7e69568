//go:build !linux

package layerdiff

import (
	"context"
	"errors"
	"fmt"
	"github.com/imgfs/imgfs/overlay"
	"os"

	"github.com/imgfs/imgfs/index"
)

// changeDir is an open directory of an upper directory tree; reading one needs Linux.
type changeDir struct{}

var errChangeOS = fmt.Errorf("reading an upper directory needs Linux: %w", errors.ErrUnsupported)

func openChangeRoot(string) (*changeDir, error) { return nil, errChangeOS }

func (d *changeDir) join(name string) string                     { return name }
func (d *changeDir) close()                                      {}
func (d *changeDir) list(context.Context) ([]changeEntry, error) { return nil, errChangeOS }
func (d *changeDir) xattrs(*changeEntry) ([]index.Xattr, error)  { return nil, errChangeOS }
func (d *changeDir) sub(*changeEntry) (*changeDir, error)        { return nil, errChangeOS }
func (d *changeDir) open(*changeEntry) (*os.File, error)         { return nil, errChangeOS }
func (d *changeDir) readlink(*changeEntry) (string, error)       { return "", errChangeOS }
