package export

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// TestZeroLayers checks the view of an image without layers (a config-only "FROM scratch" image): an
// empty root that lists, looks up and exports without error.
func TestZeroLayers(t *testing.T) {
	t.Parallel()
	v, err := overlay.New(nil, overlay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := v.Attr(overlay.Root)
	if err != nil || a.Type != index.TypeDir || a.Mode != 0o755 {
		t.Fatalf("root attr %+v, %v", a, err)
	}
	d, err := v.ReadDir(overlay.Root)
	if err != nil || d.Len() != 0 {
		t.Fatalf("root listing: %v, %v", d, err)
	}
	if _, err := v.Lookup(overlay.Root, "x"); !errors.Is(err, overlay.ErrNotExist) {
		t.Errorf("lookup x: %v, want ErrNotExist", err)
	}
	var out bytes.Buffer
	st, err := Write(context.Background(), v, &out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != 0 || !bytes.Equal(out.Bytes(), make([]byte, 1024)) {
		t.Errorf("export: %+v, %d bytes, want only the end-of-archive marker", st, out.Len())
	}
	if got := tarRecs(t, out.Bytes()); len(got) != 0 {
		t.Errorf("export members: %v", got)
	}
}
