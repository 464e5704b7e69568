package compression

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestNewReader decodes the sequential fixtures (gzip of several members, zstd of several frames, plain
// data) to the same bytes, and refuses the formats Detect refuses.
func TestNewReader(t *testing.T) {
	t.Parallel()
	want, err := os.ReadFile(filepath.Join("testdata", "stream", "plain.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    Format
	}{
		{"plain.txt", None}, {"concat.txt.gz", Gzip}, {"pigz-independent.txt.gz", Gzip}, {"fname.txt.gz", Gzip},
		{"concat.txt.zst", Zstd}, {"single.txt.zst", Zstd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "stream", tc.name))
			if err != nil {
				t.Fatal(err)
			}
			r, c, err := NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if cerr := r.Close(); err == nil {
				err = cerr
			}
			if err != nil || c != tc.c || !bytes.Equal(got, want) {
				t.Errorf("format %v, %d bytes, %v; want %v, %d bytes", c, len(got), err, tc.c, len(want))
			}
		})
	}
	for _, name := range []string{"plain.txt.bz2", "plain.txt.xz", "plain.txt.lz4"} {
		data, err := os.ReadFile(filepath.Join("testdata", "stream", name))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := NewReader(bytes.NewReader(data)); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
	// A damaged gzip header is an error naming the format.
	if _, _, err := NewReader(bytes.NewReader([]byte{0x1f, 0x8b, 0x08, 0xff, 0, 0, 0, 0, 0, 0})); err == nil {
		t.Error("damaged gzip header accepted")
	}
}
