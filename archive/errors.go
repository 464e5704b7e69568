package archive

import (
	"errors"

	"github.com/imgfs/imgfs/internal/kinderr"
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

// errorf formats an error of the given kind (a sentinel of this package); %w wraps as fmt.Errorf does.
func errorf(kind error, format string, args ...any) error {
	return kinderr.Errorf(kind, format, args...)
}

// invalidf formats an ErrInvalid error.
func invalidf(format string, args ...any) error { return errorf(ErrInvalid, format, args...) }
