package compression

// Test-only entry points: exported for the tests of this package, not part of its API.

// Format returns the compression format of the underlying blob. Only tests ask; the callers chose or
// detected the format themselves.
func (s *Stream) Format() Format { return s.c }
