package index

import "github.com/imgfs/imgfs/internal/digests"

// ErrInvalidDigest means a digest is not one the cache accepts (digests.Check, sha256 only).
var ErrInvalidDigest = digests.ErrInvalid

// checkSHA256 is the cache's digest check: digests.CheckSHA256.
var checkSHA256 = digests.CheckSHA256
