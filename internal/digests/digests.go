// Package digests holds the one rule for what a digest string read from an image may be. It imports
// nothing of the module.
package digests

import (
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

// ErrInvalid means a digest is not "sha256:" + 64 or "sha512:" + 128 lowercase hex digits, or
// (for the cache, which keys by sha256) not a sha256 digest.
var ErrInvalid = errors.New("invalid digest")

// Check accepts exactly "sha256:" + 64 or "sha512:" + 128 lowercase hex digits; anything else
// gives an error matching ErrInvalid. It is the one check every digest read from an image passes
// before it is used, and in particular before it becomes part of a path (CVE-2024-3727:
// "sha256:../../x").
func Check(d digest.Digest) error {
	s := string(d)
	alg, enc, ok := strings.Cut(s, ":")
	if !ok {
		return digestErrorf("invalid digest %q", clipDigest(s))
	}
	var n int
	switch alg {
	case "sha256":
		n = 64
	case "sha512":
		n = 128
	default:
		return digestErrorf("invalid digest %q: algorithm %q not supported", clipDigest(s), clipDigest(alg))
	}
	if len(enc) != n || !isLowerHex(enc) {
		return digestErrorf("invalid digest %q: want %d lowercase hex digits", clipDigest(s), n)
	}
	return nil
}

// CheckSHA256 is Check for a cache, whose file names and tables hold sha256 digests only; it returns
// the hex digits.
func CheckSHA256(d digest.Digest) (string, error) {
	if err := Check(d); err != nil {
		return "", err
	}
	if d.Algorithm() != digest.SHA256 {
		return "", digestErrorf("invalid digest %q: the cache keys by sha256 only", clipDigest(string(d)))
	}
	return d.Encoded(), nil
}

// digestError is a message that matches ErrInvalid without repeating its text.
type digestError struct{ msg string }

func (e *digestError) Error() string        { return e.msg }
func (e *digestError) Is(target error) bool { return target == ErrInvalid }

func digestErrorf(format string, args ...any) error {
	return &digestError{msg: fmt.Sprintf(format, args...)}
}

// clipDigest shortens a hostile string for an error message.
func clipDigest(s string) string {
	const n = 100
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// isLowerHex says whether s is made of 0-9 and a-f only.
func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
