package archive

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/imgfs/imgfs/internal/digests"
)

// checkDigest is digests.Check, the one digest rule, as an ErrInvalid error. Nothing else is used
// as a digest, and in particular never as part of a path (CVE-2024-3727: "sha256:../../x").
func checkDigest(d digest.Digest) error {
	if err := digests.Check(d); err != nil {
		return invalidf("%w", err)
	}
	return nil
}

// sha256Of returns the sha256 digest whose hex digits are enc, or "" when enc is not 64 lowercase hex
// digits.
func sha256Of(enc string) digest.Digest {
	d := digest.NewDigestFromEncoded(digest.SHA256, enc)
	if digests.Check(d) != nil {
		return ""
	}
	return d
}

// blobPath is the path of a blob in an OCI layout. d must have passed checkDigest.
func blobPath(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

// newHash returns the hash for a checked digest's algorithm.
func newHash(d digest.Digest) hash.Hash {
	if d.Algorithm() == digest.SHA512 {
		return sha512.New()
	}
	return sha256.New()
}

// verifyBytes says whether b hashes to d (d checked).
func verifyBytes(d digest.Digest, b []byte) bool {
	h := newHash(d)
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)) == d.Encoded()
}

// hashOf is the digest of b with the algorithm of d (d checked).
func hashOf(d digest.Digest, b []byte) digest.Digest {
	h := newHash(d)
	h.Write(b)
	return digest.NewDigestFromEncoded(d.Algorithm(), hex.EncodeToString(h.Sum(nil)))
}

// sha256Digest is the sha256 digest of b.
func sha256Digest(b []byte) digest.Digest {
	s := sha256.Sum256(b)
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(s[:]))
}

// digestFromName extracts a sha256 digest that a legacy archive path spells out: "<64hex>",
// "<64hex>.json", "<64hex>.tar", "<64hex>.tar.gz", "sha256:<64hex>[.ext]" or "blobs/sha256/<64hex>".
// It returns "" when the name carries no digest.
func digestFromName(name string) digest.Digest {
	dir, base := path.Split(name)
	if dir == "blobs/sha256/" {
		return sha256Of(base)
	}
	base = strings.TrimPrefix(base, "sha256:")
	for _, ext := range []string{".tar.gz", ".tar.zst", ".tgz", ".tar", ".json"} {
		if s, ok := strings.CutSuffix(base, ext); ok {
			base = s
			break
		}
	}
	return sha256Of(base)
}

// shortDigest abbreviates a digest for messages: "sha256:0123456789ab".
func shortDigest(d digest.Digest) string {
	s := string(d)
	if i := strings.IndexByte(s, ':'); i >= 0 && len(s) > i+13 {
		return s[:i+13]
	}
	return s
}

// clip bounds untrusted strings quoted in messages.
func clip(s string) string {
	const n = 100
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
