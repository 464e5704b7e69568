package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/compression"
	"github.com/imgfs/imgfs/internal/tartest"
)

// TestDetectPlain is the detection table: image archives stay images (TestOpenFormats has every kind;
// here one of each marker, bare and wrapped), any other valid tar is a plain tarball, and what is not a
// tar is refused (TestDetectRefused).
func TestDetectPlain(t *testing.T) {
	ctx := context.Background()
	rootfs := tartest.Tar(t, tartest.Dir("etc"), tartest.File("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
		tartest.File("manifest.json.bak", "[]"), tartest.File("etc/index.json", "{}"))
	// A manifest.json reachable only as "../manifest.json" is no marker: the members are ignored.
	dotdot := tartest.Concat(
		tartest.RawHeader("../manifest.json", tar.TypeReg, 2, ""), tartest.Pad([]byte("[]")),
		tartest.RawHeader("a/../manifest.json", tar.TypeReg, 2, ""), tartest.Pad([]byte("[]")),
		tartest.End())
	var many []tartest.Member
	for i := range maxMembers + 5 {
		many = append(many, tartest.File(fmt.Sprintf("d/f%05d", i), ""))
	}
	// A tar with more members than any image archive is plain even with a marker in it.
	manyMarked := tartest.Tar(t, append(many, tartest.File("manifest.json", "[]"))...)
	ds := &dockerSave{}
	ds.image(t, styleDocker, []string{"foo:latest"}, linuxAMD64, threeLayers(t, ""))
	ds.finish(t)
	legacy := ds.tarBytes(t, tarOpts{})
	o := newOCI()
	o.finish(t, named(o.image(t, linuxAMD64, threeLayers(t, "gzip")), "latest", ""))
	oci := o.tarBytes(t, tarOpts{})

	cases := []struct {
		name   string
		data   []byte
		format Format
		comp   compression.Format
	}{
		{"rootfs tar", rootfs, FormatPlainTar, compression.None},
		{"rootfs tar.gz", tartest.Gzip(t, rootfs), FormatPlainTar, compression.Gzip},
		{"rootfs tar.zst", tartest.Zstd(t, rootfs), FormatPlainTar, compression.Zstd},
		{"tar of zero members", tartest.End(), FormatPlainTar, compression.None},
		{"gzip of a tar of zero members", tartest.Gzip(t, tartest.End()), FormatPlainTar, compression.Gzip},
		{"dotdot markers", dotdot, FormatPlainTar, compression.None},
		{"many members", manyMarked, FormatPlainTar, compression.None},
		{"many members zstd", tartest.Zstd(t, manyMarked), FormatPlainTar, compression.Zstd},
		{"docker-archive", legacy, FormatDockerArchive, compression.None},
		{"docker-archive gzip", tartest.Gzip(t, legacy), FormatDockerArchive, compression.Gzip},
		{"oci-archive", oci, FormatOCIArchive, compression.None},
		{"oci-archive zstd", tartest.Zstd(t, oci), FormatOCIArchive, compression.Zstd},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeTemp(t, "x", c.data)
			cache := t.TempDir()
			for round := range 2 { // the second from the remembered claims
				a, err := Open(ctx, path, Options{CacheDir: cache})
				if err != nil {
					t.Fatal(err)
				}
				if a.Format() != c.format || a.Compression() != c.comp {
					t.Fatalf("round %d: format %s/%s, want %s/%s", round, a.Format(), a.Compression(), c.format, c.comp)
				}
				if c.format == FormatPlainTar {
					checkPlainImage(t, a, c.data, c.comp)
				}
				a.Close()
			}
		})
	}
}

// checkPlainImage checks the synthesized image: one layer that is the file, claims that are the hashes.
func checkPlainImage(t *testing.T, a *Archive, data []byte, c compression.Format) {
	t.Helper()
	ctx := context.Background()
	img, err := a.Image(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	tarBytes := data
	if c != compression.None {
		r, _, err := compression.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if tarBytes, err = io.ReadAll(r); err != nil {
			t.Fatal(err)
		}
	}
	if len(img.Layers) != 1 {
		t.Fatalf("%d layers", len(img.Layers))
	}
	l := img.Layers[0]
	if want := digest.FromBytes(data); l.Digest != want || img.Manifest.Layers[0].Digest != want {
		t.Errorf("digest %s, want %s", l.Digest, want)
	}
	if want := digest.FromBytes(tarBytes); l.DiffID != want || len(img.Config.RootFS.DiffIDs) != 1 || img.Config.RootFS.DiffIDs[0] != want {
		t.Errorf("diff_id %s (config %v), want %s", l.DiffID, img.Config.RootFS.DiffIDs, want)
	}
	if l.MediaType != LayerMediaType(c) || l.Size != int64(len(data)) {
		t.Errorf("layer %s %d bytes, want %s %d", l.MediaType, l.Size, LayerMediaType(c), len(data))
	}
	b, err := l.Blob()
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.NewSectionReader(b.R, b.Off, b.Size))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("blob is not the file (%v)", err)
	}
	if img.ConfigDigest != digest.FromBytes(img.RawConfig) || img.ManifestDigest != digest.FromBytes(img.RawManifest) {
		t.Error("config or manifest digest does not match its bytes")
	}
	var cfg ispec.Image
	if err := json.Unmarshal(img.RawConfig, &cfg); err != nil {
		t.Fatal(err)
	}
	hp := HostPlatform()
	if cfg.OS != hp.OS || cfg.Architecture != hp.Architecture || len(cfg.History) != 1 ||
		cfg.History[0].CreatedBy != "imported from "+filepath.Base(a.Path()) {
		t.Errorf("config %s", img.RawConfig)
	}
	p := ispec.Platform{OS: "linux", Architecture: "riscv64"}
	img2, err := a.Image(ctx, "", &p)
	if err != nil {
		t.Fatal(err)
	}
	if img2.Config.Architecture != "riscv64" || img2.Platform.Architecture != "riscv64" {
		t.Errorf("--platform not applied: %s", img2.RawConfig)
	}
}

// TestPlainSumTrust: a remembered claim is used only for the very file it was made from.
func TestPlainSumTrust(t *testing.T) {
	ctx := context.Background()
	cache := t.TempDir()
	path := writeTemp(t, "r.tar", tartest.Tar(t, tartest.File("a", "one")))
	open := func() digest.Digest {
		t.Helper()
		a, err := Open(ctx, path, Options{CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		img, err := a.Image(ctx, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		return img.Layers[0].Digest
	}
	first := open()
	ents, err := os.ReadDir(plainSumDir(cache))
	if err != nil || len(ents) != 1 {
		t.Fatalf("remembered claims: %v %v", ents, err)
	}
	// Rewrite the file in place with other bytes of the same size: its ctime changes, the claim is not used.
	other := tartest.Tar(t, tartest.File("a", "two"))
	if err := os.WriteFile(path, other, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := open(), digest.FromBytes(other); got != want || got == first {
		t.Errorf("after rewrite: digest %s, want %s (was %s)", got, want, first)
	}
	// A damaged record is ignored.
	for _, e := range ents {
		os.WriteFile(filepath.Join(plainSumDir(cache), e.Name()), []byte("{"), 0o600)
	}
	if got, want := open(), digest.FromBytes(other); got != want {
		t.Errorf("after damage: %s, want %s", got, want)
	}
}
