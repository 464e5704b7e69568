package archive

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/internal/tartest"
)

// seedJSON adds the JSON documents of testdata/json (real tool output) whose name starts with prefix.
func seedJSON(f *testing.F, prefix string) {
	paths, err := filepath.Glob(filepath.Join("testdata", "json", prefix+"*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// fixtureDocs returns the JSON documents of a built OCI layout and docker-save archive.
func fixtureDocs(f *testing.F) [][]byte {
	l := threeLayers(f, "gzip")
	o := newOCI()
	d := o.image(f, linuxAMD64, l)
	dm := o.manifestOf(f, mediaTypeDockerManifest, mkConfig(f, linuxAMD64, l), l)
	o.index(f, mediaTypeDockerManifestList, withPlatform(dm, linuxAMD64))
	o.finish(f, named(d, "latest", "docker.io/library/foo:latest"))
	ds := &dockerSave{}
	ds.image(f, styleSkopeo, []string{"foo:1"}, linuxAMD64, l)
	ds.image(f, styleCrane, nil, linuxAMD64, l)
	ds.finish(f)
	var docs [][]byte
	for _, m := range append(o.members, ds.members...) {
		if bytes.HasPrefix(m.Body, []byte("{")) || bytes.HasPrefix(m.Body, []byte("[")) {
			docs = append(docs, m.Body)
		}
	}
	return docs
}

func FuzzManifestJSON(f *testing.F) {
	seedJSON(f, "manifest")
	seedJSON(f, "legacy")
	seedJSON(f, "config")
	for _, d := range fixtureDocs(f) {
		f.Add(d)
	}
	f.Add([]byte(`{"schemaVersion":2,"config":{},"manifests":[]}`))
	f.Add([]byte(`{"schemaVersion":1,"fsLayers":[]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if m, err := parseManifest(raw); err == nil {
			if err := checkDigest(m.Config.Digest); err != nil {
				t.Fatalf("accepted config digest %q", m.Config.Digest)
			}
			for _, l := range m.Layers {
				if err := checkDigest(l.Digest); err != nil || strings.Contains(blobPath(l.Digest), "..") {
					t.Fatalf("accepted layer digest %q", l.Digest)
				}
			}
		}
		if es, err := parseLegacyManifest(raw); err == nil {
			for _, e := range es {
				if e.Config == "" {
					t.Fatal("accepted an entry without Config")
				}
			}
		}
		if c, err := parseConfig(raw); err == nil {
			for _, d := range c.RootFS.DiffIDs {
				if checkDigest(d) != nil {
					t.Fatalf("accepted diff_id %q", d)
				}
			}
		}
		configPlatform(raw)
		parseRepositories(raw)
	})
}

func FuzzIndexJSON(f *testing.F) {
	seedJSON(f, "index")
	for _, d := range fixtureDocs(f) {
		f.Add(d)
	}
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"digest":"sha256:../../x"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		idx, err := parseIndex(raw)
		if err != nil {
			return
		}
		for _, d := range idx.Manifests {
			if checkDigest(d.Digest) != nil || strings.Contains(blobPath(d.Digest), "..") {
				t.Fatalf("accepted digest %q", d.Digest)
			}
		}
	})
}

func FuzzOpenTar(f *testing.F) {
	// The outer tar scan, member resolution and the whole open of any tar never panic. The seeds are
	// kept small (layers that are not tars, GNU-format headers) so that the engine can minimise inputs.
	cfg := `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:` + strings.Repeat("0", 64) + `"]}}`
	f.Add(tartest.Tar(f,
		tartest.File("c.json", cfg),
		tartest.File("l.tar", "x"),
		tartest.Symlink("id/layer.tar", "../l.tar"),
		tartest.File("manifest.json", `[{"Config":"c.json","RepoTags":["a:1"],"Layers":["id/layer.tar"]}]`)))
	idx := `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("1", 64) + `","size":2,"platform":{"os":"linux","architecture":"amd64"}}]}`
	f.Add(tartest.Tar(f,
		tartest.File("oci-layout", `{"imageLayoutVersion":"1.0.0"}`),
		tartest.File("index.json", idx),
		tartest.File("blobs/sha256/"+strings.Repeat("1", 64), "{}")))
	f.Add(tartest.Tar(f, tartest.Dir("etc"), tartest.File("etc/passwd", "root"), tartest.Whiteout("etc", "x")))
	f.Add(tartest.End())
	log := slog.New(slog.DiscardHandler)
	p := filepath.Join(f.TempDir(), "f.tar") // each worker runs inputs one at a time
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		members, err := scanTar(ctx, bytes.NewReader(data), int64(len(data)), log)
		if err != nil {
			return
		}
		src := &tarSource{r: bytes.NewReader(data), members: members}
		for name := range members {
			b, real, err := src.open(name)
			if err == nil && (b.Off < 0 || b.Off+b.Size > int64(len(data)) || strings.HasPrefix(real, "..")) {
				t.Fatalf("member %q -> %q: range %d+%d outside %d bytes", name, real, b.Off, b.Size, len(data))
			}
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		a, err := Open(ctx, p, Options{})
		if err != nil {
			return
		}
		defer a.Close()
		if a.Format() == FormatPlainTar {
			// A plain tarball is one image whose one layer is the whole file, claims hashed from it.
			img, err := a.Image(ctx, "", nil)
			if err != nil {
				t.Fatalf("plain tarball without its image: %v", err)
			}
			if len(img.Layers) != 1 || img.Layers[0].Size != int64(len(data)) || img.Layers[0].Digest != digest.FromBytes(data) {
				t.Fatalf("plain tarball layer %+v is not the file", img.Layers)
			}
		}
		for _, r := range a.Images() {
			a.Image(ctx, r.ManifestDigest.String(), &ispec.Platform{OS: "linux", Architecture: "amd64"})
		}
		a.Image(ctx, "", nil)
	})
}

func FuzzPlainSum(f *testing.F) {
	// A remembered claim is read back only when it is whole and for this very file.
	id := "dev:1 ino:2"
	f.Add([]byte(`{"identity":"dev:1 ino:2","size":3,"digest":"sha256:` + strings.Repeat("a", 64) + `","diff_id":"sha256:` + strings.Repeat("b", 64) + `"}`))
	f.Add([]byte(`{"identity":"dev:1 ino:2","size":3,"digest":"sha256:../x","diff_id":""}`))
	p := filepath.Join(f.TempDir(), "sum.json")
	f.Fuzz(func(t *testing.T, raw []byte) {
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		s, ok := readPlainSum(p, id, 3)
		if !ok {
			return
		}
		if s.Identity != id || s.Size != 3 || checkDigest(s.Digest) != nil || checkDigest(s.DiffID) != nil || !strings.HasPrefix(string(s.Digest), "sha256:") {
			t.Fatalf("accepted %+v", s)
		}
	})
}
