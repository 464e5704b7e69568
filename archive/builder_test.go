package archive

import (
	"archive/tar"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/internal/tartest"
)

// This file builds the container layouts the tests open: OCI layouts (as directories and tars), legacy
// docker-save tars in the styles of docker, skopeo/podman and crane, and docker 25+ exports.

// testLayer is a layer tar and the blob stored for it.
type testLayer struct {
	tar    []byte // uncompressed tar
	blob   []byte // as stored: tar, gzip or zstd
	diffID digest.Digest
	digest digest.Digest
	mt     string
}

// mkLayer builds a layer holding one file; comp is "", "gzip" or "zstd".
func mkLayer(t testing.TB, name, body, comp string) testLayer {
	t.Helper()
	tb := tartest.Tar(t, tartest.Dir("etc"), tartest.File("etc/"+name, body))
	l := testLayer{tar: tb, blob: tb, diffID: digest.FromBytes(tb), mt: ispec.MediaTypeImageLayer}
	switch comp {
	case "gzip":
		l.blob, l.mt = tartest.Gzip(t, tb), ispec.MediaTypeImageLayerGzip
	case "zstd":
		l.blob, l.mt = tartest.Zstd(t, tb), ispec.MediaTypeImageLayerZstd
	}
	l.digest = digest.FromBytes(l.blob)
	return l
}

// threeLayers is the usual fixture image.
func threeLayers(t testing.TB, comp string) []testLayer {
	return []testLayer{mkLayer(t, "one", "1", comp), mkLayer(t, "two", "22", comp), mkLayer(t, "three", "333", comp)}
}

// mkConfig is an image config for the layers.
func mkConfig(t testing.TB, p ispec.Platform, layers []testLayer) []byte {
	t.Helper()
	c := ispec.Image{Platform: p, RootFS: ispec.RootFS{Type: "layers"}}
	c.Config.Cmd = []string{"/bin/sh"}
	for _, l := range layers {
		c.RootFS.DiffIDs = append(c.RootFS.DiffIDs, l.diffID)
	}
	return mustJSON(t, c)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var linuxAMD64 = ispec.Platform{OS: "linux", Architecture: "amd64"}

// tree is a list of files, symlinks and directories, written as a tar or into a directory.
type tree struct {
	members []tartest.Member
	seen    map[string]bool
}

func (tr *tree) add(m tartest.Member) {
	if tr.seen == nil {
		tr.seen = map[string]bool{}
	}
	if m.Type == 0 && tr.seen[m.Name] {
		return
	}
	tr.seen[m.Name] = true
	tr.members = append(tr.members, m)
}

func (tr *tree) file(name string, body []byte) {
	tr.add(tartest.Member{Name: name, Body: body})
}

// replace changes the body of the member name.
func (tr *tree) replace(t testing.TB, name string, body []byte) {
	t.Helper()
	for i := range tr.members {
		if tr.members[i].Name == name {
			tr.members[i].Body = body
			return
		}
	}
	t.Fatalf("no member %q", name)
}

func (tr *tree) symlink(name, target string) {
	tr.add(tartest.Symlink(name, target))
}

// tarOpts vary how a tree is written as a tar.
type tarOpts struct {
	prefix string // "./" prefixes every name
	dirs   bool   // explicit directory entries for parents
}

// tarBytes writes the tree as a tar.
func (tr *tree) tarBytes(t testing.TB, o tarOpts) []byte {
	t.Helper()
	var ms []tartest.Member
	dirSeen := map[string]bool{}
	for _, m := range tr.members {
		if o.dirs {
			parts := strings.Split(m.Name, "/")
			for i := 1; i < len(parts); i++ {
				d := strings.Join(parts[:i], "/")
				if !dirSeen[d] {
					dirSeen[d] = true
					ms = append(ms, tartest.Dir(o.prefix+d+"/"))
				}
			}
		}
		m.Name = o.prefix + m.Name
		ms = append(ms, m)
	}
	return tartest.Tar(t, ms...)
}

// writeDir writes the tree into a new temporary directory.
func (tr *tree) writeDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, m := range tr.members {
		p := filepath.Join(dir, filepath.FromSlash(m.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch m.Type {
		case tar.TypeSymlink:
			err = os.Symlink(m.Linkname, p)
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		default:
			err = os.WriteFile(p, m.Body, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// writeTemp writes data to a new file and returns its path.
func writeTemp(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// ociLayout builds an OCI image layout.
type ociLayout struct {
	tree
	top []ispec.Descriptor
}

func newOCI() *ociLayout {
	o := &ociLayout{}
	o.file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	return o
}

// blob stores data under blobs/sha256 and returns its descriptor.
func (o *ociLayout) blob(mt string, data []byte) ispec.Descriptor {
	d := digest.FromBytes(data)
	o.file(blobPath(d), data)
	return ispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(data))}
}

// manifestOf stores a config and a manifest for the layers (without storing the layers) and returns the
// manifest's descriptor.
func (o *ociLayout) manifestOf(t testing.TB, mt string, cfg []byte, layers []testLayer) ispec.Descriptor {
	t.Helper()
	cmt, lmt := ispec.MediaTypeImageConfig, func(l testLayer) string { return l.mt }
	if mt == mediaTypeDockerManifest {
		cmt = mediaTypeDockerConfig
		lmt = func(l testLayer) string {
			if l.mt == ispec.MediaTypeImageLayerGzip {
				return mediaTypeDockerLayerGzip
			}
			return mediaTypeDockerLayer
		}
	}
	m := ispec.Manifest{MediaType: mt, Config: o.blob(cmt, cfg)}
	m.SchemaVersion = 2
	for _, l := range layers {
		m.Layers = append(m.Layers, ispec.Descriptor{MediaType: lmt(l), Digest: l.digest, Size: int64(len(l.blob))})
	}
	return o.blob(mt, mustJSON(t, m))
}

// image stores layers, config and manifest, and returns the manifest's descriptor.
func (o *ociLayout) image(t testing.TB, p ispec.Platform, layers []testLayer) ispec.Descriptor {
	t.Helper()
	for _, l := range layers {
		o.blob(l.mt, l.blob)
	}
	return o.manifestOf(t, ispec.MediaTypeImageManifest, mkConfig(t, p, layers), layers)
}

// index stores an image index of the descriptors and returns its descriptor.
func (o *ociLayout) index(t testing.TB, mt string, descs ...ispec.Descriptor) ispec.Descriptor {
	t.Helper()
	idx := ispec.Index{MediaType: mt, Manifests: descs}
	idx.SchemaVersion = 2
	return o.blob(mt, mustJSON(t, idx))
}

// named returns d with an org.opencontainers.image.ref.name (and, with full set, containerd's name).
func named(d ispec.Descriptor, ref, full string) ispec.Descriptor {
	d.Annotations = map[string]string{}
	if ref != "" {
		d.Annotations[ispec.AnnotationRefName] = ref
	}
	if full != "" {
		d.Annotations[annotationContainerdName] = full
	}
	return d
}

// withPlatform returns d with a platform.
func withPlatform(d ispec.Descriptor, p ispec.Platform) ispec.Descriptor {
	d.Platform = &p
	return d
}

// finish writes index.json listing top.
func (o *ociLayout) finish(t testing.TB, top ...ispec.Descriptor) *ociLayout {
	t.Helper()
	idx := ispec.Index{MediaType: ispec.MediaTypeImageIndex, Manifests: top}
	idx.SchemaVersion = 2
	o.file("index.json", mustJSON(t, idx))
	return o
}

// dockerSave builds a legacy docker-save archive.
type dockerSave struct {
	tree
	manifest []map[string]any
	repos    map[string]map[string]string
}

// Styles of legacy archives.
const (
	styleDocker = "docker" // <v1id>/layer.tar files, <config hex>.json (docker save <= 24)
	styleSkopeo = "skopeo" // <diffid>.tar files, <v1id>/layer.tar symlinks to them (skopeo, podman)
	styleCrane  = "crane"  // <digest>.tar.gz, config named sha256:<hex>, no repositories (crane tarball)
)

// v1ID is a made-up v1 layer ID for a layer of an image.
func v1ID(parent string, l testLayer) string {
	return digest.FromString(parent + "\n" + l.diffID.String()).Encoded()
}

// image adds an image in the given style.
func (ds *dockerSave) image(t testing.TB, style string, tags []string, p ispec.Platform, layers []testLayer) digest.Digest {
	t.Helper()
	cfg := mkConfig(t, p, layers)
	cd := digest.FromBytes(cfg)
	cfgName := cd.Encoded() + ".json"
	if style == styleCrane {
		cfgName = cd.String()
	}
	ds.file(cfgName, cfg)
	var paths []string
	parent := ""
	for _, l := range layers {
		id := v1ID(parent, l)
		parent = id
		switch style {
		case styleDocker:
			ds.file(id+"/VERSION", []byte("1.0"))
			ds.file(id+"/layer.tar", l.blob)
			paths = append(paths, id+"/layer.tar")
		case styleSkopeo:
			ds.file(l.diffID.Encoded()+".tar", l.blob)
			ds.symlink(id+"/layer.tar", "../"+l.diffID.Encoded()+".tar")
			paths = append(paths, l.diffID.Encoded()+".tar")
		case styleCrane:
			ds.file(l.digest.Encoded()+".tar.gz", l.blob)
			paths = append(paths, l.digest.Encoded()+".tar.gz")
		}
	}
	var rt any
	if tags != nil {
		rt = tags
	}
	ds.manifest = append(ds.manifest, map[string]any{"Config": cfgName, "RepoTags": rt, "Layers": paths})
	if style != styleCrane {
		if ds.repos == nil {
			ds.repos = map[string]map[string]string{}
		}
		for _, tag := range tags {
			repo, tg := splitName(tag)
			if ds.repos[repo] == nil {
				ds.repos[repo] = map[string]string{}
			}
			ds.repos[repo][tg] = parent
		}
	}
	return cd
}

// finish writes manifest.json (and repositories).
func (ds *dockerSave) finish(t testing.TB) *dockerSave {
	t.Helper()
	ds.file("manifest.json", mustJSON(t, ds.manifest))
	if ds.repos != nil {
		ds.file("repositories", mustJSON(t, ds.repos))
	}
	return ds
}

// docker25 builds a docker 25+ / containerd export: an OCI layout plus manifest.json.
func docker25(t testing.TB, images map[string][]testLayer, order []string) (*ociLayout, map[string]ispec.Descriptor) {
	t.Helper()
	o := newOCI()
	descs := map[string]ispec.Descriptor{}
	var man []map[string]any
	var top []ispec.Descriptor
	for _, tag := range order {
		layers := images[tag]
		d := o.image(t, linuxAMD64, layers)
		descs[tag] = d
		var m ispec.Manifest
		var raw []byte
		for _, mm := range o.members {
			if mm.Name == blobPath(d.Digest) {
				raw = mm.Body
			}
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		var paths []string
		for _, l := range layers {
			paths = append(paths, blobPath(l.digest))
		}
		man = append(man, map[string]any{"Config": blobPath(m.Config.Digest), "RepoTags": []string{"foo:" + tag}, "Layers": paths})
		top = append(top, named(d, tag, "docker.io/library/foo:"+tag))
	}
	o.file("manifest.json", mustJSON(t, man))
	o.finish(t, top...)
	return o, descs
}
