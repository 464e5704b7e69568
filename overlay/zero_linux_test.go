package overlay

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"slices"
	"testing"
)

// TestZeroLayersUpper writes through a writable view over no layers, then lists, exports and writes
// the commit layer of the upper directory.
func TestZeroLayersUpper(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	v, _ := upOpen(t, dir, nil)
	for _, s := range []string{"mkdir d", "touch d/f=hello", "sym l->d/f", "touch g=x", "rm g"} {
		if err := upDo(v, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	want := []string{". dir 0755 0:0", "d dir 0755 1000:1000", "d/f file 0644 1000:1000 =hello",
		"l symlink 0777 1000:1000 ->d/f"}
	if got := upRender(t, v); !slices.Equal(got, want) {
		t.Errorf("view:\n%q\nwant\n%q", got, want)
	}
	var ex bytes.Buffer
	if st, err := ExportTar(context.Background(), v, &ex, nil); err != nil || st.Entries != 3 {
		t.Errorf("export: %+v, %v", st, err)
	}
	lower, err := New(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := DiffLines(context.Background(), lower, dir)
	if err != nil || len(ch) != 3 {
		t.Errorf("changes: %v, %v", ch, err)
	}
	var layer bytes.Buffer
	if err := CommitTar(context.Background(), &layer, lower, dir, nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	for tr := tar.NewReader(&layer); ; {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(rune(h.Typeflag))+" "+h.Name+" "+h.Linkname)
	}
	if want := []string{"5 d/ ", "0 d/f ", "2 l d/f"}; !slices.Equal(got, want) {
		t.Errorf("layer %q, want %q", got, want)
	}
}
