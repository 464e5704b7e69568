package overlay

import (
	"bytes"
	"context"
	"testing"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/tartest"
)

// TestHasXattrs checks that a view of indexed layers reports extended attributes, and one of them by
// name, exactly when one of its layers holds it, and that a view of layers that cannot tell reports them.
func TestHasXattrs(t *testing.T) {
	open := func(ms ...tartest.Member) Layer {
		t.Helper()
		b, err := tartest.Build(ms...)
		if err != nil {
			t.Fatal(err)
		}
		l, err := index.Open(context.Background(), index.Blob{R: bytes.NewReader(b), Size: int64(len(b))}, index.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	plain := open(tartest.Dir("d"), tartest.File("d/f", "x"))
	tagged := open(tartest.Member{Name: "g", Body: []byte("y"), Xattrs: map[string]string{"user.k": "v"}})
	for _, tt := range []struct {
		name   string
		layers []Layer
		want   bool
	}{
		{"none", nil, false},
		{"plain", []Layer{plain}, false},
		{"plain twice", []Layer{plain, plain}, false},
		{"tagged below", []Layer{tagged, plain}, true},
		{"tagged above", []Layer{plain, tagged}, true},
		{"cannot tell", []Layer{newFakeLayer(tartest.File("f", "x"))}, true},
	} {
		v, err := New(tt.layers, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := v.HasXattrs(); got != tt.want {
			t.Errorf("%s: HasXattrs = %v, want %v", tt.name, got, tt.want)
		}
		if got := v.HasXattr("user.k"); got != tt.want {
			t.Errorf("%s: HasXattr(user.k) = %v, want %v", tt.name, got, tt.want)
		}
		if got, want := v.HasXattr("security.selinux"), tt.name == "cannot tell"; got != want {
			t.Errorf("%s: HasXattr(security.selinux) = %v, want %v", tt.name, got, want)
		}
	}
}
