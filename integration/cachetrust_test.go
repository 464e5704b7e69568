package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"

	"github.com/imgfs/imgfs/internal/tartest"
)

// trustImage is an image archive written for TestCacheTrust, and whether its claims are true.
type trustImage struct {
	name   string
	path   string
	honest bool
}

// trustLayers returns two layer tars of the same length with different names and contents.
func trustLayers(t *testing.T) (a, b []byte) {
	mk := func(prefix string, fill byte) []byte {
		var ms []tartest.Member
		for i := range 8 {
			ms = append(ms, tartest.Member{Name: fmt.Sprintf("%s/file-%02d", prefix, i), Body: bytes.Repeat([]byte{fill + byte(i)}, 5000+i*41)})
		}
		return tartest.Tar(t, ms...)
	}
	a, b = mk("alpha", 'a'), mk("bravo", 'A')
	if len(a) != len(b) {
		t.Fatalf("layer tars of %d and %d bytes", len(a), len(b))
	}
	return a, b
}

func storedGzip(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.NoCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// writeOCI writes a one-layer OCI layout holding blob under the name of digest d, with diff_id x in the
// config, as a directory (dir) or as an oci-archive tar.
func writeOCI(t *testing.T, path string, blob []byte, d, x digest.Digest, asTar bool) {
	t.Helper()
	mt := "application/vnd.oci.image.layer.v1.tar"
	if bytes.HasPrefix(blob, []byte{0x1f, 0x8b}) {
		mt += "+gzip"
	} else if bytes.HasPrefix(blob, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		mt += "+zstd"
	}
	cfg := mustJSON(t, map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []digest.Digest{x}},
	})
	man := mustJSON(t, map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(cfg), "size": len(cfg)},
		"layers": []any{map[string]any{"mediaType": mt, "digest": d, "size": len(blob)}},
	})
	idx := mustJSON(t, map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
		"manifests": []any{map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json",
			"digest": digest.FromBytes(man), "size": len(man),
			"annotations": map[string]string{"org.opencontainers.image.ref.name": "latest"}}},
	})
	files := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", idx},
		{"blobs/sha256/" + digest.FromBytes(cfg).Encoded(), cfg},
		{"blobs/sha256/" + digest.FromBytes(man).Encoded(), man},
		{"blobs/sha256/" + d.Encoded(), blob},
	}
	if !asTar {
		for _, f := range files {
			p := filepath.Join(path, f.name)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, f.data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	var ms []tartest.Member
	for _, f := range files {
		ms = append(ms, tartest.Member{Name: f.name, Body: f.data})
	}
	if err := os.WriteFile(path, tartest.Tar(t, ms...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeLegacy writes a docker-save archive of one uncompressed layer with diff_id x in its config.
func writeLegacy(t *testing.T, path string, layer []byte, x digest.Digest) {
	t.Helper()
	cfg := mustJSON(t, map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []digest.Digest{x}},
	})
	cfgName := digest.FromBytes(cfg).Encoded() + ".json"
	man := mustJSON(t, []any{map[string]any{"Config": cfgName, "RepoTags": []string{"trust:latest"}, "Layers": []string{"layer/layer.tar"}}})
	b := tartest.Tar(t, tartest.File("layer/layer.tar", string(layer)), tartest.File(cfgName, string(cfg)),
		tartest.File("manifest.json", string(man)))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// archiveBlobs returns every file of an archive (an OCI directory or a tar) by the sha256 of its bytes:
// what the archive holds under each digest, whatever its names claim.
func archiveBlobs(t *testing.T, path string) map[digest.Digest][]byte {
	t.Helper()
	out := map[digest.Digest][]byte{}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				b, _ := os.ReadFile(p)
				out[digest.FromBytes(b)] = b
			}
			return nil
		})
		return out
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			out[digest.FromBytes(b)] = b
		}
	}
}

// layerFiles decompresses a layer blob and lists its regular files with their contents.
func layerFiles(t *testing.T, blob []byte) ([]byte, map[string]string) {
	t.Helper()
	var r io.Reader = bytes.NewReader(blob)
	switch {
	case bytes.HasPrefix(blob, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case bytes.HasPrefix(blob, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return raw, tarFiles(t, raw)
}

func tarFiles(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		if h.Typeflag == tar.TypeReg {
			out[strings.TrimPrefix(h.Name, "./")] = string(body)
		}
	}
}

// openTrust mounts img with the cache, and exports it; it checks that whatever is shown is what the
// archive holds under the digest the mount reports, and returns whether the image opened.
func openTrust(t *testing.T, img *trustImage, cache, step string) bool {
	t.Helper()
	mnt := t.TempDir()
	_, stderr, code := imgfs(t, "mount", "--quiet", "--cache-dir", cache, img.path, mnt)
	exp := filepath.Join(t.TempDir(), "export.tar")
	_, xerr, xcode := imgfs(t, "export", "--quiet", "--cache-dir", cache, "-o", exp, img.path)
	if code != 0 {
		if img.honest {
			t.Errorf("%s: %s: an honest image was refused: %s", step, img.name, stderr)
		}
		if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.Contains(stderr, "mismatch") {
			t.Errorf("%s: %s: want one line about a mismatch, got:\n%s", step, img.name, stderr)
		}
		if xcode == 0 {
			t.Errorf("%s: %s: mount refused it, export did not", step, img.name)
		}
		return false
	}
	t.Cleanup(func() { unmountOrDie(t, mnt) })
	defer unmountOrDie(t, mnt)
	if xcode != 0 {
		t.Errorf("%s: %s: mounted, but export failed: %s", step, img.name, xerr)
	}
	out, stderr, code := imgfs(t, "inspect", "--json", "--quiet", "--cache-dir", cache, img.path)
	if code != 0 {
		t.Fatalf("%s: inspect %s: %s", step, img.name, stderr)
	}
	var info struct {
		Image struct {
			Layers []struct {
				Digest digest.Digest `json:"digest"`
				DiffID digest.Digest `json:"diffID"`
			} `json:"layers"`
		} `json:"image"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil || len(info.Image.Layers) != 1 {
		t.Fatalf("%s: inspect %s: %v\n%s", step, img.name, err, out)
	}
	l := info.Image.Layers[0]
	blob, ok := archiveBlobs(t, img.path)[l.Digest]
	if !ok {
		t.Errorf("%s: %s: mounted, but the archive holds nothing under its layer digest %s", step, img.name, l.Digest)
		return true
	}
	raw, want := layerFiles(t, blob)
	if digest.FromBytes(raw) != l.DiffID {
		t.Errorf("%s: %s: mounted, but the layer %s decompresses to %s, not its diff_id %s", step, img.name, l.Digest, digest.FromBytes(raw), l.DiffID)
	}
	if !img.honest {
		t.Errorf("%s: %s: a forged or tampered image mounted", step, img.name)
	}
	got := map[string]string{}
	filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(mnt, p)
			b, rerr := os.ReadFile(p)
			if rerr != nil {
				b = []byte("read error: " + rerr.Error())
			}
			got[rel] = string(b)
		}
		return nil
	})
	compareFiles(t, step+": "+img.name+": mount", got, want)
	if xcode == 0 {
		b, _ := os.ReadFile(exp)
		compareFiles(t, step+": "+img.name+": export", tarFiles(t, b), want)
	}
	return true
}

func compareFiles(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	names := func(m map[string]string) []string {
		var s []string
		for k := range m {
			s = append(s, k)
		}
		slices.Sort(s)
		return s
	}
	if !slices.Equal(names(got), names(want)) {
		t.Errorf("%s shows %v, the archive holds %v", what, names(got), names(want))
		return
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s holds other bytes than the archive's", what, k)
		}
	}
}

// TestCacheTrust mounts and exports forged, honest and tampered images against one cache, in both
// orders of every pair of an honest image and a forger, and after editing every cache file by hand:
// never a name or a byte that the archive does not hold under the digest the mount reports.
func TestCacheTrust(t *testing.T) {
	requireFUSE(t)
	tarA, tarB := trustLayers(t)
	gzA, gzB := storedGzip(tarA), storedGzip(tarB)
	zsA, zsB := tartest.Zstd(t, tarA), tartest.Zstd(t, tarB)
	dA, wrong := digest.FromBytes(tarA), digest.FromString("a diff_id nobody has")
	dir := t.TempDir()
	n := 0
	oci := func(name string, blob []byte, d, x digest.Digest, asTar, honest bool) *trustImage {
		n++
		img := &trustImage{name: name, path: filepath.Join(dir, fmt.Sprintf("img%d", n)), honest: honest}
		if asTar {
			img.path += ".tar"
		}
		writeOCI(t, img.path, blob, d, x, asTar)
		return img
	}
	honest := []*trustImage{
		oci("A gzip (oci dir)", gzA, digest.FromBytes(gzA), dA, false, true),
		oci("A zstd (oci-archive)", zsA, digest.FromBytes(zsA), dA, true, true),
		oci("A plain (oci-archive)", tarA, dA, dA, true, true),
	}
	legacyB := &trustImage{name: "B plain claiming A's diff_id (docker-save)", path: filepath.Join(dir, "legacy-b.tar")}
	writeLegacy(t, legacyB.path, tarB, dA)
	forged := []*trustImage{
		oci("B gzip claiming A's diff_id (oci dir)", gzB, digest.FromBytes(gzB), dA, false, false),
		oci("B gzip under A's digest and diff_id (oci-archive)", gzB, digest.FromBytes(gzA), dA, true, false),
		oci("B zstd claiming A's diff_id (oci-archive)", zsB, digest.FromBytes(zsB), dA, true, false),
		oci("B plain claiming A's diff_id (oci dir)", tarB, digest.FromBytes(tarB), dA, false, false),
		legacyB,
	}
	// Two honest images (true blob digests) with plain layers claiming the same wrong diff_id.
	wrongA := oci("A plain claiming a wrong diff_id (oci dir)", tarA, dA, wrong, false, false)
	wrongB := oci("B plain claiming the same wrong diff_id (oci-archive)", tarB, digest.FromBytes(tarB), wrong, true, false)

	t.Run("pairs", func(t *testing.T) {
		var pairs [][2]*trustImage
		for _, h := range honest {
			for _, f := range forged {
				pairs = append(pairs, [2]*trustImage{h, f}, [2]*trustImage{f, h})
			}
		}
		pairs = append(pairs, [2]*trustImage{wrongA, wrongB}, [2]*trustImage{wrongB, wrongA})
		for _, p := range pairs {
			cache := t.TempDir()
			step := p[0].name + ", then " + p[1].name
			for k, img := range []*trustImage{p[0], p[1], p[1], p[0]} {
				if got := openTrust(t, img, cache, fmt.Sprintf("%s (open %d)", step, k+1)); got != img.honest {
					t.Errorf("%s (open %d): %s opened %v", step, k+1, img.name, got)
				}
			}
		}
	})

	t.Run("tampered in place", func(t *testing.T) {
		cache := t.TempDir()
		for _, tc := range []struct {
			name       string
			blob, with []byte
			asTar      bool
		}{
			{"gzip layer in an oci dir", gzA, gzB, false},
			{"gzip layer in an oci-archive", gzA, gzB, true},
			{"plain layer in an oci dir", tarA, tarB, false},
			{"plain layer in an oci-archive", tarA, tarB, true},
			{"gzip layer in a gzip-compressed oci-archive", gzA, gzB, true},
		} {
			img := oci("A "+tc.name, tc.blob, digest.FromBytes(tc.blob), dA, tc.asTar, true)
			outer := strings.Contains(tc.name, "compressed")
			if outer {
				// The whole archive stored in gzip: the blob is a range of its decompressed stream.
				b, _ := os.ReadFile(img.path)
				os.WriteFile(img.path, storedGzip(b), 0o644)
			}
			if !openTrust(t, img, cache, "before") {
				continue
			}
			// Overwrite the blob's bytes where they are, same length: B's layer under A's digest.
			file, off := img.path, int64(0)
			if !tc.asTar {
				file = filepath.Join(img.path, "blobs", "sha256", digest.FromBytes(tc.blob).Encoded())
			} else if !outer {
				b, _ := os.ReadFile(file)
				off = int64(bytes.Index(b, tc.blob))
			}
			with := tc.with
			if outer {
				// The same archive with B's blob, compressed again (stored: the same length).
				b, _ := os.ReadFile(img.path)
				zr, _ := gzip.NewReader(bytes.NewReader(b))
				inner, _ := io.ReadAll(zr)
				copy(inner[bytes.Index(inner, tc.blob):], tc.with)
				with = storedGzip(inner)
			}
			f, err := os.OpenFile(file, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(with, off); err != nil {
				t.Fatal(err)
			}
			f.Close()
			img.honest = false
			for k := range 2 {
				if openTrust(t, img, cache, fmt.Sprintf("%s tampered (open %d)", tc.name, k+1)) {
					t.Errorf("%s tampered in place: mounted", tc.name)
				}
			}
		}
	})

	t.Run("cache edited by hand", func(t *testing.T) {
		cache := t.TempDir()
		for _, img := range honest {
			openTrust(t, img, cache, "before")
		}
		var files []string
		filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && (strings.Contains(p, "/index/") || strings.Contains(p, "/verified/") ||
				strings.Contains(p, "/stream/")) {
				files = append(files, p)
			}
			return nil
		})
		if len(files) < 6 {
			t.Fatalf("cache files %v", files)
		}
		for _, p := range files {
			orig, _ := os.ReadFile(p)
			for _, at := range []int{len(orig) / 3, len(orig) - 2} {
				b := bytes.Clone(orig)
				b[at] ^= 0x08
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
				for _, img := range append(slices.Clone(honest), forged[0], wrongB) {
					openTrust(t, img, cache, fmt.Sprintf("%s edited at %d", strings.TrimPrefix(p, cache), at))
				}
			}
		}
	})
}
