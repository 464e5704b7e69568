package imagewrite

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestWriteReclaimsTemps: the temporaries that writes killed with SIGKILL left beside the output are
// removed by the next write to the same output; a temporary that a running write holds (locked) stays,
// and so do other files.
func TestWriteReclaimsTemps(t *testing.T) {
	t.Parallel()
	base := sampleBase(t)
	for _, f := range []Format{FormatDockerArchive, FormatOCI} {
		t.Run(string(f), func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "app.tar")
			deadFile := filepath.Join(dir, ".app.tar.imgfs-tmp-123")
			deadDir := filepath.Join(dir, ".app.tar.imgfs-tmp-456")
			live := filepath.Join(dir, ".app.tar.imgfs-tmp-789")
			other := filepath.Join(dir, ".other.tar.imgfs-tmp-1")
			for _, p := range []string{deadFile, live, other} {
				if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.MkdirAll(filepath.Join(deadDir, "blobs/sha256"), 0o755); err != nil {
				t.Fatal(err)
			}
			lf, err := os.Open(live)
			if err != nil {
				t.Fatal(err)
			}
			defer lf.Close()
			if err := lockTemp(lf); err != nil {
				t.Fatal(err)
			}
			if _, err := Write(context.Background(), out, base, []Layer{bytesLayer(newLayerTar(t))}, Config{Created: testEpoch},
				Options{Format: f}); err != nil {
				t.Fatal(err)
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			if want := []string{".app.tar.imgfs-tmp-789", ".other.tar.imgfs-tmp-1", "app.tar"}; !slices.Equal(names, want) {
				t.Errorf("beside the output: %q, want %q", names, want)
			}
		})
	}
}
