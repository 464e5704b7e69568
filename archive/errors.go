package archive

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package reads as one line that names the archive and the
// problem; errors.Is tells these kinds apart.
var (
	// ErrFormat means the path is not a container image archive this package can read.
	ErrFormat = errors.New("archive: not a container image archive")
	// ErrInvalid means the archive's content is malformed or hostile (bad digest, oversized document,
	// digest mismatch, escaping symlink, layer count mismatch, ...).
	ErrInvalid = errors.New("archive: invalid archive content")
	// ErrMissingBlob means a blob that is needed is not in the archive.
	ErrMissingBlob = errors.New("archive: blob not in archive")
	// ErrNotFound means no image matches the reference.
	ErrNotFound = errors.New("archive: no matching image")
	// ErrAmbiguous means several images match the reference.
	ErrAmbiguous = errors.New("archive: several images match")
	// ErrPlatform means no image matches the platform.
	ErrPlatform = errors.New("archive: no image for the platform")
	// ErrUnsupported means the content is recognised but not supported (docker schema 1, encrypted layers).
	ErrUnsupported = errors.New("archive: unsupported content")
	// ErrClosed means the archive was closed.
	ErrClosed = errors.New("archive: closed")
)

// kindError carries a message of its own and says which sentinel it is, so that messages do not repeat
// the sentinel's text.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string        { return e.err.Error() }
func (e *kindError) Unwrap() error        { return e.err }
func (e *kindError) Is(target error) bool { return target == e.kind }

// errorf formats an error of the given kind; %w in format wraps as fmt.Errorf does.
func errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}

// invalidf formats an ErrInvalid error.
func invalidf(format string, args ...any) error { return errorf(ErrInvalid, format, args...) }
