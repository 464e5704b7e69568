package imagewrite

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imgfs/imgfs/archive"
	"github.com/imgfs/imgfs/internal/sample"
	"github.com/imgfs/imgfs/internal/tartest"
)

var testEpoch = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// openImage opens the only image of an archive; the archive is closed at the end of the test.
func openImage(t testing.TB, path string) *archive.Image {
	t.Helper()
	a, err := archive.Open(context.Background(), path, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	img, err := a.Image(context.Background(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// sampleBase writes the demo sample (three layers, the top one gzip) and opens it.
func sampleBase(t testing.TB) *archive.Image {
	t.Helper()
	p := filepath.Join(t.TempDir(), "base.tar")
	if err := sample.Write(p); err != nil {
		t.Fatal(err)
	}
	return openImage(t, p)
}

// bytesLayer is a new layer whose tar is b.
func bytesLayer(b []byte) Layer {
	return Layer{Write: func(ctx context.Context, w io.Writer) error {
		_, err := w.Write(b)
		return err
	}}
}

// newLayerTar is the tar of the new layer the tests add.
func newLayerTar(t testing.TB) []byte {
	return tartest.Tar(t,
		tartest.Dir("app"),
		tartest.File("app/committed.txt", "written by imagewrite\n"),
		tartest.Whiteout("etc", "os-release"),
		tartest.Symlink("app/link", "committed.txt"),
	)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// writeLegacy writes a docker-save archive of one image with the given raw config (its rootfs filled in)
// and uncompressed layers.
func writeLegacy(t testing.TB, path string, cfg map[string]any, layers ...[]byte) {
	t.Helper()
	var ids, files []string
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	for _, l := range layers {
		ids = append(ids, sha(l))
		files = append(files, sha(l)[7:]+".tar")
		add(files[len(files)-1], l)
	}
	if _, ok := cfg["rootfs"]; !ok {
		cfg["rootfs"] = map[string]any{"type": "layers", "diff_ids": ids}
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	add(sha(raw)[7:]+".json", raw)
	man, _ := json.Marshal([]map[string]any{{"Config": sha(raw)[7:] + ".json", "RepoTags": []string{"test/base:1"}, "Layers": files}})
	add("manifest.json", man)
	tw.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
