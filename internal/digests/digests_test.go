package digests

import (
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestCheck holds the one digest rule: sha256 or sha512, lowercase hex of the exact length; the
// cache's own check adds that it keys by sha256 only.
func TestCheck(t *testing.T) {
	s256 := "sha256:" + strings.Repeat("a1", 32)
	s512 := "sha512:" + strings.Repeat("0f", 64)
	for _, c := range []struct {
		d          string
		ok, sha256 bool
	}{
		{s256, true, true},
		{s512, true, false},
		{"sha256:" + strings.Repeat("A1", 32), false, false},
		{"sha256:" + strings.Repeat("g", 64), false, false},
		{s256 + "00", false, false},
		{s256[:70], false, false},
		{"sha256:../../../etc/passwd", false, false},
		{s256 + "/../x", false, false},
		{"md5:d41d8cd98f00b204e9800998ecf8427e", false, false},
		{strings.Repeat("a", 64), false, false},
		{"", false, false},
	} {
		err := Check(digest.Digest(c.d))
		if (err == nil) != c.ok || err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("Check(%q) = %v, want ok %v", c.d, err, c.ok)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "invalid digest ") {
			t.Errorf("Check(%q) = %q, want a message starting \"invalid digest \"", c.d, err)
		}
		h, err := CheckSHA256(digest.Digest(c.d))
		if (err == nil) != c.sha256 || err != nil && !errors.Is(err, ErrInvalid) || err == nil && "sha256:"+h != c.d {
			t.Errorf("CheckSHA256(%q) = %q, %v, want ok %v", c.d, h, err, c.sha256)
		}
	}
}
