//go:build !linux

package overlay

import (
	"errors"
	"fmt"

	"github.com/imgfs/imgfs/index"
)

// errUpperOS is the error of writable views where they are not supported.
var errUpperOS = fmt.Errorf("overlay: writable views need Linux: %w", errors.ErrUnsupported)

type upperFS struct {
	dir string
	ro  bool
}

func (u *upperFS) close() error { return nil }

// OpenUpper fails: writable views need Linux.
func OpenUpper(opts UpperOptions) (*Upper, error) { return nil, errUpperOS }

type upperState struct{ fs *upperFS }

func newUpperState(*View, *Upper) (*upperState, error) { return nil, errUpperOS }

func (s *upperState) attr(Node) (Attr, error)                          { return Attr{}, errUpperOS }
func (s *upperState) lookup(Node, string) (Attr, error)                { return Attr{}, errUpperOS }
func (s *upperState) readDir(Node) (*Dir, error)                       { return nil, errUpperOS }
func (s *upperState) readlink(Node) (string, error)                    { return "", errUpperOS }
func (s *upperState) xattrs(Node) ([]index.Xattr, error)               { return nil, errUpperOS }
func (s *upperState) open(Node) (File, error)                          { return nil, errUpperOS }
func (s *upperState) path(Node) (string, bool)                         { return "", false }
func (s *upperState) openFile(Node, bool, bool) (WFile, error)         { return nil, errUpperOS }
func (s *upperState) mkdir(Node, string, uint32, Caller) (Attr, error) { return Attr{}, errUpperOS }
func (s *upperState) symlink(Node, string, string, Caller) (Attr, error) {
	return Attr{}, errUpperOS
}
func (s *upperState) link(Node, Node, string) (Attr, error) { return Attr{}, errUpperOS }
func (s *upperState) unlink(Node, string) error             { return errUpperOS }
func (s *upperState) rmdir(Node, string) error              { return errUpperOS }
func (s *upperState) rename(Node, string, Node, string, RenameFlags) error {
	return errUpperOS
}
func (s *upperState) setAttr(Node, SetAttrIn) (Attr, error)    { return Attr{}, errUpperOS }
func (s *upperState) setXattr(Node, string, []byte, int) error { return errUpperOS }
func (s *upperState) removeXattr(Node, string) error           { return errUpperOS }
func (s *upperState) freeze() func()                           { return func() {} }
func (s *upperState) sync() error                              { return errUpperOS }
func (s *upperState) create(Node, string, uint32, Caller) (Attr, WFile, error) {
	return Attr{}, nil, errUpperOS
}
func (s *upperState) mknod(Node, string, index.Type, uint32, uint32, uint32, Caller) (Attr, error) {
	return Attr{}, errUpperOS
}

// OnDirCopyUp does nothing: there are no writable views.
func (v *View) OnDirCopyUp(fn func(n Node)) {}
