package archive

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/compression"
	"github.com/imgfs/imgfs/internal/tartest"
)

// fixture is an archive on disk and what it should give.
type fixture struct {
	name   string
	path   string
	format Format
	comp   compression.Format
	images int
	layers []testLayer // of the image Image(ctx, ref, nil) selects
	ref    string
	names  []string // expected names of that image (any order; subset)
}

func fixtures(t *testing.T) []fixture {
	plain, gz, zs := threeLayers(t, ""), threeLayers(t, "gzip"), threeLayers(t, "zstd")
	var fs []fixture

	o := newOCI()
	od := named(o.image(t, linuxAMD64, gz), "latest", "")
	od.ArtifactType = ispec.MediaTypeImageConfig // as crane writes it on images
	o.finish(t, od)
	fs = append(fs, fixture{name: "oci dir", path: o.writeDir(t), format: FormatOCILayout, images: 1, layers: gz, names: []string{"latest"}})
	fs = append(fs, fixture{name: "oci-archive", path: writeTemp(t, "a.tar", o.tarBytes(t, tarOpts{})), format: FormatOCIArchive, images: 1, layers: gz})
	fs = append(fs, fixture{name: "oci-archive ./ and dirs", path: writeTemp(t, "a.tar", o.tarBytes(t, tarOpts{prefix: "./", dirs: true})), format: FormatOCIArchive, images: 1, layers: gz})

	oz := newOCI()
	oz.finish(t, named(oz.image(t, linuxAMD64, zs), "localhost/corpus/foo:latest", ""))
	fs = append(fs, fixture{name: "oci zstd layers", path: oz.writeDir(t), format: FormatOCILayout, images: 1, layers: zs, ref: "corpus/foo", names: []string{"localhost/corpus/foo:latest"}})

	for _, style := range []string{styleDocker, styleSkopeo} {
		ds := &dockerSave{}
		ds.image(t, style, []string{"docker.io/corpus/foo:latest"}, linuxAMD64, plain)
		ds.finish(t)
		fs = append(fs, fixture{name: "docker-archive " + style, path: writeTemp(t, "d.tar", ds.tarBytes(t, tarOpts{})), format: FormatDockerArchive, images: 1, layers: plain, ref: "corpus/foo:latest"})
		if style == styleSkopeo {
			fs = append(fs, fixture{name: "docker dir " + style, path: ds.writeDir(t), format: FormatDockerDir, images: 1, layers: plain})
		}
	}
	cr := &dockerSave{}
	cr.image(t, styleCrane, []string{"127.0.0.1:5000/corpus/foo:latest"}, linuxAMD64, gz)
	cr.finish(t)
	crTar := cr.tarBytes(t, tarOpts{})
	fs = append(fs, fixture{name: "crane tarball", path: writeTemp(t, "c.tar", crTar), format: FormatDockerArchive, images: 1, layers: gz, ref: "corpus/foo"})
	fs = append(fs, fixture{name: "crane tarball gzip-wrapped", path: writeTemp(t, "c.tar.gz", tartest.Gzip(t, crTar)), format: FormatDockerArchive, comp: compression.Gzip, images: 1, layers: gz})

	ds := &dockerSave{}
	ds.image(t, styleDocker, []string{"foo:latest"}, linuxAMD64, plain)
	ds.finish(t)
	dsTar := ds.tarBytes(t, tarOpts{})
	fs = append(fs, fixture{name: "docker-archive gzip-wrapped", path: writeTemp(t, "d.tar.gz", tartest.Gzip(t, dsTar)), format: FormatDockerArchive, comp: compression.Gzip, images: 1, layers: plain, ref: "foo"})
	fs = append(fs, fixture{name: "oci-archive zstd-wrapped", path: writeTemp(t, "o.tar.zst", tartest.Zstd(t, o.tarBytes(t, tarOpts{}))), format: FormatOCIArchive, comp: compression.Zstd, images: 1, layers: gz})

	d25, _ := docker25(t, map[string][]testLayer{"1": plain, "2": plain[:2]}, []string{"1", "2"})
	fs = append(fs, fixture{name: "docker 25+", path: writeTemp(t, "d25.tar", d25.tarBytes(t, tarOpts{})), format: FormatDockerOCIArchive, images: 2, layers: plain, ref: "foo:1", names: []string{"foo:1", "docker.io/library/foo:1", "1"}})
	return fs
}

func TestOpenFormats(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, f := range fixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			a, err := Open(ctx, f.path, Options{CacheDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if a.Format() != f.format {
				t.Errorf("Format = %q, want %q", a.Format(), f.format)
			}
			if a.Compression() != f.comp {
				t.Errorf("Compression = %v, want %v", a.Compression(), f.comp)
			}
			if n := len(a.Images()); n != f.images {
				t.Fatalf("%d images, want %d: %+v", n, f.images, a.Images())
			}
			img, err := a.Image(ctx, f.ref, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range f.names {
				if !slices.Contains(img.Names, n) {
					t.Errorf("names %q lack %q", img.Names, n)
				}
			}
			checkImage(t, img, f.layers)
			if f.comp == compression.None && !strings.Contains(f.name, "dir") {
				b, _ := img.Layers[0].Blob()
				if b.File == nil {
					t.Errorf("layer blob of an uncompressed archive has no File")
				}
			}
		})
	}
}

// checkImage checks an image against the layers it was built from: digests, diff_ids, sizes, the
// config's diff_ids, and the bytes of every blob.
func checkImage(t *testing.T, img *Image, want []testLayer) {
	t.Helper()
	if len(img.Layers) != len(want) {
		t.Fatalf("%d layers, want %d", len(img.Layers), len(want))
	}
	if len(img.Config.RootFS.DiffIDs) != len(want) || img.ConfigDigest != digest.FromBytes(img.RawConfig) {
		t.Errorf("config: %d diff_ids, digest %s", len(img.Config.RootFS.DiffIDs), img.ConfigDigest)
	}
	if img.Manifest.Config.Digest != img.ConfigDigest || len(img.Manifest.Layers) != len(want) {
		t.Errorf("manifest does not describe the image: %+v", img.Manifest)
	}
	if img.ManifestDigest == "" {
		t.Errorf("no manifest digest")
	}
	for i, l := range img.Layers {
		w := want[i]
		if l.Digest != w.digest || l.DiffID != w.diffID || l.Size != int64(len(w.blob)) || l.MediaType != w.mt {
			t.Errorf("layer %d = {%s %s %d %s}, want {%s %s %d %s}", i, l.Digest, l.DiffID, l.Size, l.MediaType, w.digest, w.diffID, len(w.blob), w.mt)
		}
		if l.DiffID != img.Config.RootFS.DiffIDs[i] {
			t.Errorf("layer %d diff_id %s, config says %s", i, l.DiffID, img.Config.RootFS.DiffIDs[i])
		}
		b, err := l.Blob()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(io.NewSectionReader(b.R, b.Off, b.Size))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, w.blob) {
			t.Errorf("layer %d: blob bytes differ", i)
		}
		if b.File != nil && b.File != b.R {
			t.Errorf("layer %d: File set but R is another reader", i)
		}
	}
}

func TestDetectRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		name string
		path string
		kind error
		msg  string
	}{
		{"gzip of no tar", writeTemp(t, "r.tgz", tartest.Gzip(t, bytes.Repeat([]byte("not a tar\n"), 100))), ErrFormat, "gzip-compressed: not an image archive or a tar"},
		{"json file", writeTemp(t, "x.json", []byte(`{"schemaVersion":2}`+strings.Repeat(" ", 600))), ErrFormat, "not an image archive or a tar"},
		{"empty file", writeTemp(t, "e.tar", nil), ErrFormat, "empty file"},
		{"xz file", writeTemp(t, "x.tar.xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0, 1, 2, 3, 4, 5, 6}), ErrUnsupported, "xz"},
		{"empty dir", t.TempDir(), ErrFormat, "no index.json"},
		{"missing", "/nonexistent/x.tar", nil, "no such file"},
		{"device", "/dev/null", ErrFormat, "not a regular file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := Open(ctx, c.path, Options{})
			if err == nil {
				a.Close()
				t.Fatal("opened")
			}
			if c.kind != nil && !errors.Is(err, c.kind) {
				t.Errorf("error %v is not %v", err, c.kind)
			}
			if !strings.Contains(err.Error(), c.msg) || !strings.HasPrefix(err.Error(), "archive "+c.path+": ") || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line starting with the path and containing %q", err, c.msg)
			}
		})
	}
}

// multiArchives builds archives with several images sharing layers: a legacy docker save (three names
// over two images), an OCI layout with four tags, and a docker 25+ export.
func multiArchives(t *testing.T) map[string]string {
	l := threeLayers(t, "")
	ds := &dockerSave{}
	ds.image(t, styleDocker, []string{"docker.io/library/foo:1", "foo:latest"}, linuxAMD64, l)
	ds.image(t, styleDocker, []string{"bar/baz:2"}, linuxAMD64, l[:2])
	ds.image(t, styleDocker, nil, linuxAMD64, l[:1]) // untagged: RepoTags null
	ds.finish(t)

	o := newOCI()
	d3, d2, d1 := o.image(t, linuxAMD64, l), o.image(t, linuxAMD64, l[:2]), o.image(t, linuxAMD64, l[:1])
	o.finish(t, named(d3, "1", "docker.io/library/foo:1"), named(d3, "latest", "docker.io/library/foo:latest"),
		named(d2, "2", "docker.io/bar/baz:2"), d1)
	return map[string]string{
		"legacy": writeTemp(t, "m.tar", ds.tarBytes(t, tarOpts{})),
		"oci":    o.writeDir(t),
	}
}

func TestSelect(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for kind, p := range multiArchives(t) {
		t.Run(kind, func(t *testing.T) {
			a, err := Open(ctx, p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			refs := a.Images()
			if len(refs) != 3 {
				t.Fatalf("images: %+v", refs)
			}
			for i, r := range refs {
				if r.Index != i || r.Platform == nil || FormatPlatform(*r.Platform) != "linux/amd64" {
					t.Errorf("ref %d: %+v", i, r)
				}
			}
			// Image IDs (config digests) by layer count.
			ids := map[int]digest.Digest{}
			mans := map[int]digest.Digest{}
			for i := range refs {
				img, err := a.Image(ctx, refs[i].ManifestDigest.String(), nil)
				if kind == "legacy" {
					// No stored manifest: select by names or image ID instead.
					img, err = a.Image(ctx, []string{"foo:1", "bar/baz:2", ""}[i], nil)
					if i == 2 {
						continue
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				ids[len(img.Layers)] = img.ConfigDigest
				mans[len(img.Layers)] = img.ManifestDigest
			}
			cases := []struct {
				ref    string
				layers int
				err    error
			}{
				{"foo:1", 3, nil},
				{"docker.io/library/foo:1", 3, nil},
				{"library/foo:1", 3, nil},
				{"foo", 3, nil},
				{"foo:latest", 3, nil},
				{"docker.io/foo", 3, nil},
				{"bar/baz:2", 2, nil},
				{"docker.io/bar/baz:2", 2, nil},
				{"2", 2, nil}, // bare tag
				{ids[3].String(), 3, nil},
				{ids[2].Encoded()[:12], 2, nil},
				{"sha256:" + ids[3].Encoded()[:16], 3, nil},
				{"foo@" + ids[2].String(), 2, nil},
				{"", 0, ErrAmbiguous},
				{"nope", 0, ErrNotFound},
				{"foo:2", 0, ErrNotFound},
				{"bar/baz", 0, ErrNotFound},
				{"sha256:0123", 0, ErrNotFound}, // too short
				{"sha256:" + strings.Repeat("0", 64), 0, ErrNotFound},
				{"foo@sha256:../../x", 0, ErrNotFound},
				{"SHA256:" + strings.ToUpper(ids[3].Encoded()), 0, ErrNotFound},
			}
			if kind == "oci" {
				cases = append(cases, struct {
					ref    string
					layers int
					err    error
				}{mans[3].Encoded()[:12], 3, nil}, struct {
					ref    string
					layers int
					err    error
				}{"1", 3, nil})
			}
			for _, c := range cases {
				img, err := a.Image(ctx, c.ref, nil)
				switch {
				case c.err != nil && !errors.Is(err, c.err):
					t.Errorf("Image(%q): error %v, want %v", c.ref, err, c.err)
				case c.err == nil && err != nil:
					t.Errorf("Image(%q): %v", c.ref, err)
				case c.err == nil && len(img.Layers) != c.layers:
					t.Errorf("Image(%q): %d layers, want %d", c.ref, len(img.Layers), c.layers)
				}
			}
			_, err = a.Image(ctx, "", nil)
			for _, want := range []string{"several images", "foo:1", "bar/baz:2"} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("ambiguous error %v lacks %q", err, want)
				}
			}
		})
	}
}

func TestSelectAmbiguousTag(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := newOCI()
	o.finish(t, named(o.image(t, linuxAMD64, threeLayers(t, "")), "", "docker.io/a/x:v1"),
		named(o.image(t, linuxAMD64, threeLayers(t, "gzip")), "", "docker.io/b/x:v1"))
	a, err := Open(ctx, o.writeDir(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Image(ctx, "v1", nil); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("tag v1: %v, want ambiguous", err)
	}
	if img, err := a.Image(ctx, "b/x:v1", nil); err != nil || img.Layers[0].MediaType != ispec.MediaTypeImageLayerGzip {
		t.Errorf("b/x:v1: %v", err)
	}
}

// otherPlatform is a platform that is not the host's.
func otherPlatform() ispec.Platform {
	if runtime.GOARCH == "arm64" {
		return ispec.Platform{OS: "linux", Architecture: "amd64"}
	}
	return ispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
}

func TestPlatform(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	host, other := HostPlatform(), otherPlatform()
	hostL, otherL := threeLayers(t, "gzip"), []testLayer{mkLayer(t, "o", "other", "gzip")}
	o := newOCI()
	dh := o.image(t, host, hostL)
	dOther := o.image(t, linuxAMD64, otherL) // config says amd64 while the index says other: the index wins
	att := o.blob(ispec.MediaTypeImageManifest, []byte(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:`+strings.Repeat("a", 64)+`","size":2},"layers":[]}`))
	// Entries an index may hold that are not images: an attestation, an artifact, an unknown media type.
	artifact := o.manifestOf(t, ispec.MediaTypeImageManifest, []byte(`{}`), nil)
	artifact.ArtifactType = "application/vnd.example.sbom"
	unknown := ispec.Descriptor{MediaType: "application/vnd.example.thing", Digest: digest.FromString("x"), Size: 1}
	nested := o.index(t, ispec.MediaTypeImageIndex,
		withPlatform(dh, host), withPlatform(dOther, other),
		withPlatform(att, ispec.Platform{OS: "unknown", Architecture: "unknown"}),
		withPlatform(unknown, host))
	single := o.image(t, linuxAMD64, threeLayers(t, "zstd"))
	o.finish(t, artifact, named(nested, "latest", ""), unknown, named(single, "single", ""))
	a, err := Open(ctx, o.writeDir(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	refs := a.Images()
	if len(refs) != 3 || refs[0].Index != 0 || refs[1].Index != 0 || refs[2].Index != 1 {
		t.Fatalf("images: %+v", refs)
	}
	cases := []struct {
		ref      string
		platform *ispec.Platform
		layers   int
		plat     string
		err      error
	}{
		{"", nil, 0, "", ErrAmbiguous},
		{"single", &ispec.Platform{OS: "linux", Architecture: "riscv64"}, 0, "", ErrPlatform}, // explicit: applies to single images too
		{"single", nil, 3, "linux/amd64", nil},
		{"latest", nil, 3, FormatPlatform(host), nil},
		{"latest", &other, 1, FormatPlatform(other), nil},
		{"latest", &ispec.Platform{OS: "linux", Architecture: other.Architecture}, 1, FormatPlatform(other), nil},
		{nested.Digest.String(), &other, 1, FormatPlatform(other), nil},
		{dOther.Digest.String(), nil, 1, FormatPlatform(other), nil},
		{"latest", &ispec.Platform{OS: "linux", Architecture: "riscv64"}, 0, "", ErrPlatform},
		{dh.Digest.String(), &ispec.Platform{OS: "linux", Architecture: "riscv64"}, 0, "", ErrPlatform},
	}
	for _, c := range cases {
		img, err := a.Image(ctx, c.ref, c.platform)
		switch {
		case c.err != nil:
			if !errors.Is(err, c.err) {
				t.Errorf("Image(%q, %v): %v, want %v", c.ref, c.platform, err, c.err)
			}
		case err != nil:
			t.Errorf("Image(%q, %v): %v", c.ref, c.platform, err)
		case len(img.Layers) != c.layers || FormatPlatform(img.Platform) != c.plat:
			t.Errorf("Image(%q, %v): %d layers, %s", c.ref, c.platform, len(img.Layers), FormatPlatform(img.Platform))
		}
	}
	_, err = a.Image(ctx, "latest", &ispec.Platform{OS: "linux", Architecture: "riscv64"})
	if err == nil || !strings.Contains(err.Error(), FormatPlatform(host)) || !strings.Contains(err.Error(), FormatPlatform(other)) {
		t.Errorf("platform error %v does not list the platforms", err)
	}
}

func TestPlatformScore(t *testing.T) {
	t.Parallel()
	p := func(s string) ispec.Platform {
		x, err := ParsePlatform(s)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	cases := []struct {
		want, have string
		ok         bool
	}{
		{"linux/amd64", "linux/amd64", true},
		{"linux/amd64", "linux/x86_64", true},
		{"linux/amd64", "linux/amd64/v3", true},
		{"linux/arm64", "linux/arm64/v8", true},
		{"linux/arm64/v8", "linux/aarch64", true},
		{"linux/arm/v7", "linux/arm", true},
		{"linux/arm/v7", "linux/arm/v6", true},
		{"linux/arm/v6", "linux/arm/v7", false},
		{"linux/amd64", "linux/arm64", false},
		{"linux/amd64", "windows/amd64", false},
	}
	for _, c := range cases {
		if got := platformScore(p(c.want), p(c.have)) > 0; got != c.ok {
			t.Errorf("platformScore(%s, %s) > 0 = %v", c.want, c.have, got)
		}
	}
	if _, err := ParsePlatform("linux"); err == nil {
		t.Error("ParsePlatform(linux) accepted")
	}
}

func TestDockerManifestInOCIIndex(t *testing.T) {
	t.Parallel()
	// containerd exports put docker schema 2 manifests and manifest lists into an OCI index.
	ctx := context.Background()
	l := threeLayers(t, "gzip")
	o := newOCI()
	for _, x := range l {
		o.blob(x.mt, x.blob)
	}
	dm := o.manifestOf(t, mediaTypeDockerManifest, mkConfig(t, HostPlatform(), l), l)
	list := o.index(t, mediaTypeDockerManifestList, withPlatform(dm, HostPlatform()))
	o.finish(t, named(list, "latest", "docker.io/library/foo:latest"))
	a, err := Open(ctx, o.writeDir(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	img, err := a.Image(ctx, "foo", nil)
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, img, l)
	if img.Manifest.MediaType != ispec.MediaTypeImageManifest || img.Manifest.Config.MediaType != ispec.MediaTypeImageConfig {
		t.Errorf("manifest not converted: %+v", img.Manifest)
	}
}

func TestMissingBlobs(t *testing.T) {
	t.Parallel()
	// Blobs of platforms not selected may be missing; the selected one's are needed.
	ctx := context.Background()
	host, other := HostPlatform(), otherPlatform()
	l := threeLayers(t, "gzip")
	o := newOCI()
	dh := o.image(t, host, l)
	missingManifest := ispec.Descriptor{MediaType: ispec.MediaTypeImageManifest, Digest: digest.FromString("gone"), Size: 100}
	ol := []testLayer{mkLayer(t, "x", "missing layer", "gzip")}
	dOther := o.manifestOf(t, ispec.MediaTypeImageManifest, mkConfig(t, other, ol), ol) // layer blob not stored
	nested := o.index(t, ispec.MediaTypeImageIndex, withPlatform(dh, host), withPlatform(missingManifest, ispec.Platform{OS: "linux", Architecture: "s390x"}), withPlatform(dOther, other))
	gone := ispec.Descriptor{MediaType: ispec.MediaTypeImageIndex, Digest: digest.FromString("gone index"), Size: 10}
	o.finish(t, named(nested, "latest", ""), named(gone, "other", ""))
	a, err := Open(ctx, o.writeDir(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Image(ctx, "latest", nil); err != nil {
		t.Fatal(err)
	}
	_, err = a.Image(ctx, "latest", &ispec.Platform{OS: "linux", Architecture: "s390x"})
	if !errors.Is(err, ErrMissingBlob) || !strings.Contains(err.Error(), missingManifest.Digest.String()) {
		t.Errorf("missing manifest: %v", err)
	}
	_, err = a.Image(ctx, "latest", &other)
	if !errors.Is(err, ErrMissingBlob) || !strings.Contains(err.Error(), ol[0].digest.String()) || !strings.Contains(err.Error(), "layer 1") {
		t.Errorf("missing layer: %v", err)
	}
	_, err = a.Image(ctx, "other", nil)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("skipped index: %v", err)
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := newOCI()
	o.finish(t, o.image(t, linuxAMD64, threeLayers(t, "")))
	a, err := Open(ctx, writeTemp(t, "o.tar", o.tarBytes(t, tarOpts{})), Options{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := a.Image(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := img.Layers[0].Blob(); !errors.Is(err, ErrClosed) {
		t.Errorf("Blob after Close: %v", err)
	}
	if _, err := a.Image(ctx, "", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Image after Close: %v", err)
	}
}

func TestLegacyRepositoriesNames(t *testing.T) {
	t.Parallel()
	// With RepoTags null, names come from "repositories" (skopeo layout: through symlinked layer.tar).
	ctx := context.Background()
	l := threeLayers(t, "")
	for _, style := range []string{styleDocker, styleSkopeo} {
		ds := &dockerSave{}
		ds.image(t, style, []string{"foo:1"}, linuxAMD64, l)
		ds.image(t, style, []string{"bar:2"}, linuxAMD64, l[:2])
		for _, m := range ds.manifest {
			m["RepoTags"] = nil
		}
		ds.finish(t)
		a, err := Open(ctx, writeTemp(t, "d.tar", ds.tarBytes(t, tarOpts{})), Options{})
		if err != nil {
			t.Fatal(err)
		}
		refs := a.Images()
		if len(refs) != 2 || !slices.Equal(refs[0].Names, []string{"foo:1"}) || !slices.Equal(refs[1].Names, []string{"bar:2"}) {
			t.Errorf("%s: %+v", style, refs)
		}
		a.Close()
	}
}

func TestLegacyHashesUnnamedCompressedLayer(t *testing.T) {
	t.Parallel()
	// A gzip layer at a path that spells no digest gets its digest by hashing.
	ctx := context.Background()
	l := []testLayer{mkLayer(t, "a", "gz", "gzip")}
	ds := &dockerSave{}
	cfg := mkConfig(t, linuxAMD64, l)
	ds.file("config.json", cfg)
	ds.file("layers/one.tar.gz", l[0].blob)
	ds.manifest = []map[string]any{{"Config": "config.json", "RepoTags": []string{"x:1"}, "Layers": []string{"layers/one.tar.gz"}}}
	ds.finish(t)
	a, err := Open(ctx, writeTemp(t, "d.tar", ds.tarBytes(t, tarOpts{})), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	img, err := a.Image(ctx, "x:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, img, l)
}

func TestDocker25FallsBackToManifestJSON(t *testing.T) {
	t.Parallel()
	// A docker 25+ archive whose index.json lists no image is read through manifest.json.
	ctx := context.Background()
	l := threeLayers(t, "")
	o, _ := docker25(t, map[string][]testLayer{"1": l}, []string{"1"})
	o.replace(t, "index.json", []byte(`{"schemaVersion":2,"manifests":[]}`))
	a, err := Open(ctx, writeTemp(t, "d.tar", o.tarBytes(t, tarOpts{})), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Format() != FormatDockerOCIArchive {
		t.Errorf("Format = %s", a.Format())
	}
	img, err := a.Image(ctx, "foo:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, img, l)
}

func TestConcurrentImages(t *testing.T) {
	t.Parallel()
	// Image and Blob may be called from several goroutines (legacy hashing and directory opens included).
	ctx := context.Background()
	gz := []testLayer{mkLayer(t, "a", "1", "gzip"), mkLayer(t, "b", "2", "gzip")}
	ds := &dockerSave{}
	cfg := mkConfig(t, linuxAMD64, gz)
	ds.file("config.json", cfg)
	ds.file("a.tar.gz", gz[0].blob)
	ds.file("b.tar.gz", gz[1].blob)
	ds.manifest = []map[string]any{{"Config": "config.json", "RepoTags": []string{"x:1"}, "Layers": []string{"a.tar.gz", "b.tar.gz"}}}
	ds.finish(t)
	o := newOCI()
	o.finish(t, o.image(t, linuxAMD64, gz))
	for _, p := range []string{ds.writeDir(t), o.writeDir(t)} {
		a, err := Open(ctx, p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, 8)
		for range 8 {
			go func() {
				img, err := a.Image(ctx, "", nil)
				if err == nil {
					for _, l := range img.Layers {
						if _, err = l.Blob(); err != nil {
							break
						}
					}
				}
				errs <- err
			}()
		}
		for range 8 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		img, err := a.Image(ctx, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, img, gz)
		a.Close()
	}
}
