package overlay

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/imgfs/imgfs/index"
)

// The packages over the view (export, layerdiff) import overlay, so an internal test of overlay
// cannot import them; the tests here that run a view or an upper directory through them call these,
// which viewapi_ext_test.go (package overlay_test, which may import them) sets.

// ExportStats are export.Stats.
type ExportStats struct{ Entries, Bytes int64 }

var (
	// ExportTar is export.Write with a logger.
	ExportTar func(ctx context.Context, v *View, w io.Writer, log *slog.Logger) (ExportStats, error)
	// DiffLines is layerdiff.Changes, each change as its String.
	DiffLines func(ctx context.Context, lower *View, dir string) ([]string, error)
	// CommitTar is layerdiff.Write with a logger.
	CommitTar func(ctx context.Context, w io.Writer, lower *View, dir string, log *slog.Logger) error
)

// walkView calls fn on every path below the root of v, depth first.
func walkView(t *testing.T, v *View, fn func(p string, a Attr)) {
	t.Helper()
	var walk func(n Node, dir string)
	walk = func(n Node, dir string) {
		d, err := v.ReadDir(n)
		if err != nil {
			t.Fatal(err)
		}
		for i := range d.Len() {
			de := d.Entry(i)
			a, err := v.Attr(de.Node)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, de.Name)
			fn(p, a)
			if a.Type == index.TypeDir {
				walk(de.Node, p)
			}
		}
	}
	walk(Root, "")
}

// readWhole reads regular file a of v whole.
func readWhole(t *testing.T, v *View, a Attr) {
	t.Helper()
	f, err := v.Open(a.Node)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, f.Size())
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
}
