package compression

// Test-only entry points: exported for the tests of this package, not part of its API.

import "github.com/opencontainers/go-digest"

// Format returns the compression format of the underlying blob. Only tests ask; the callers chose or
// detected the format themselves.
func (s *Stream) Format() Format { return s.c }

// DiffID returns the sha256 digest of the decompressed bytes when it is known (the stream was indexed,
// or loaded from an index that recorded it), else "". Only tests ask; Indexer.DiffID is what index
// checks.
func (s *Stream) DiffID() digest.Digest { return s.diffID }
