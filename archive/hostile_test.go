package archive

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/internal/tartest"
)

// openOrImage opens path and selects ref; it returns the first error and whether it came from Open.
func openOrImage(t *testing.T, path, ref string) (error, bool) {
	t.Helper()
	ctx := context.Background()
	a, err := Open(ctx, path, Options{})
	if err != nil {
		return err, true
	}
	defer a.Close()
	_, err = a.Image(ctx, ref, nil)
	return err, false
}

// hostileCase is an archive that must be refused with an error of kind, containing msg.
type hostileCase struct {
	name   string
	path   string
	kind   error
	msg    string
	atOpen bool // the error must come from Open (not only from Image)
}

func runHostile(t *testing.T, cases []hostileCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err, atOpen := openOrImage(t, c.path, "")
			t.Logf("%v", err)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, c.kind) {
				t.Errorf("error %q is not %v", err, c.kind)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q lacks %q", err, c.msg)
			}
			if c.atOpen && !atOpen {
				t.Errorf("error came from Image, not Open: %v", err)
			}
			if !strings.HasPrefix(err.Error(), "archive "+c.path+": ") || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is not one line naming the archive", err)
			}
		})
	}
}

// rawIndex writes an OCI layout whose index.json is raw, next to the blobs of one good image.
func rawIndex(t *testing.T, raw string) string {
	o := newOCI()
	o.image(t, linuxAMD64, threeLayers(t, ""))
	o.file("index.json", []byte(raw))
	return o.writeDir(t)
}

// tamperedOCI builds a one-image OCI layout and lets edit change its manifest before it is stored.
func tamperedOCI(t *testing.T, layers []testLayer, cfg []byte, edit func(m map[string]any)) string {
	o := newOCI()
	for _, l := range layers {
		o.blob(l.mt, l.blob)
	}
	m := ispec.Manifest{MediaType: ispec.MediaTypeImageManifest, Config: o.blob(ispec.MediaTypeImageConfig, cfg)}
	m.SchemaVersion = 2
	for _, l := range layers {
		m.Layers = append(m.Layers, ispec.Descriptor{MediaType: l.mt, Digest: l.digest, Size: int64(len(l.blob))})
	}
	var mm map[string]any
	if err := json.Unmarshal(mustJSON(t, m), &mm); err != nil {
		t.Fatal(err)
	}
	edit(mm)
	o.finish(t, o.blob(ispec.MediaTypeImageManifest, mustJSON(t, mm)))
	return o.writeDir(t)
}

func TestHostileOCI(t *testing.T) {
	t.Parallel()
	l := threeLayers(t, "")
	cfg := mkConfig(t, linuxAMD64, l)
	good := digest.FromString("x")
	desc := func(d string) string {
		return `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d + `","size":10}]}`
	}
	setLayer := func(i int, k string, v any) func(map[string]any) {
		return func(m map[string]any) { m["layers"].([]any)[i].(map[string]any)[k] = v }
	}

	// Blobs whose content no longer matches their digest.
	badCfg := newOCI()
	d := badCfg.image(t, linuxAMD64, l)
	badCfg.finish(t, d)
	for i, m := range badCfg.members {
		if m.Name == blobPath(digest.FromBytes(cfg)) {
			b := append([]byte(nil), m.Body...)
			b[len(b)-2] ^= 1
			badCfg.members[i].Body = b
		}
	}
	badMan := newOCI()
	d = badMan.image(t, linuxAMD64, l)
	badMan.finish(t, d)
	for i, m := range badMan.members {
		if m.Name == blobPath(d.Digest) {
			badMan.members[i].Body = []byte(strings.Replace(string(m.Body), `"schemaVersion":2`, `"schemaVersion":2 `, 1)[:len(m.Body)])
			badMan.members[i].Body[len(m.Body)-1] = ' '
		}
	}

	// Indexes nested deeper than allowed.
	deep := newOCI()
	top := deep.image(t, linuxAMD64, l)
	for range maxIndexDepth + 1 {
		top = deep.index(t, ispec.MediaTypeImageIndex, withPlatform(top, linuxAMD64))
	}
	deep.finish(t, top)

	// Symlinked blob leading outside the layout.
	escape := newOCI()
	ed := escape.image(t, linuxAMD64, l)
	escape.finish(t, ed)
	for i, m := range escape.members {
		if m.Name == blobPath(l[1].digest) {
			escape.members[i] = tartest.Symlink(m.Name, "../../../../../../../../etc/passwd")
		}
	}

	big := `{"schemaVersion":2,"manifests":[],"annotations":{"x":"` + strings.Repeat("a", maxIndexJSON) + `"}}`
	var schema1 = newOCI()
	s1 := schema1.blob(mediaTypeDockerSchema1JWS, []byte(`{"schemaVersion":1,"fsLayers":[]}`))
	schema1.finish(t, s1)

	runHostile(t, []hostileCase{
		{"digest with ../", rawIndex(t, desc("sha256:../../../../etc/passwd")), ErrInvalid, "invalid digest", true},
		{"digest uppercase", rawIndex(t, desc("sha256:"+strings.ToUpper(good.Encoded()))), ErrInvalid, "invalid digest", true},
		{"digest non-hex", rawIndex(t, desc("sha256:"+strings.Repeat("g", 64))), ErrInvalid, "invalid digest", true},
		{"digest short", rawIndex(t, desc("sha256:abc")), ErrInvalid, "invalid digest", true},
		{"digest long", rawIndex(t, desc(good.String()+"00")), ErrInvalid, "invalid digest", true},
		{"digest md5", rawIndex(t, desc("md5:d41d8cd98f00b204e9800998ecf8427e")), ErrInvalid, "not supported", true},
		{"digest with path", rawIndex(t, desc(good.String()+"/../x")), ErrInvalid, "invalid digest", true},
		{"index with layers", rawIndex(t, `{"schemaVersion":2,"manifests":[],"layers":[]}`), ErrInvalid, "ambiguous", true},
		{"index schemaVersion", rawIndex(t, `{"schemaVersion":1,"manifests":[]}`), ErrInvalid, "schemaVersion", true},
		{"index not JSON", rawIndex(t, `{"schemaVersion":2,`), ErrInvalid, "malformed JSON", true},
		{"index oversized", rawIndex(t, big), ErrInvalid, "more than", true},
		{"negative size", rawIndex(t, strings.Replace(desc(good.String()), `"size":10`, `"size":-1`, 1)), ErrInvalid, "negative", true},
		{"no index.json", func() string { o := newOCI(); return o.writeDir(t) }(), ErrMissingBlob, "index.json: no such file", true},
		{"manifest with manifests", tamperedOCI(t, l, cfg, func(m map[string]any) { m["manifests"] = []any{} }), ErrInvalid, "ambiguous", false},
		{"manifest layer digest uppercase", tamperedOCI(t, l, cfg, setLayer(1, "digest", "sha256:"+strings.ToUpper(l[1].digest.Encoded()))), ErrInvalid, "layer 2: invalid digest", false},
		{"manifest layer digest ../", tamperedOCI(t, l, cfg, setLayer(0, "digest", "sha256:../../../etc/passwd")), ErrInvalid, "invalid digest", false},
		{"layer size mismatch", tamperedOCI(t, l, cfg, setLayer(2, "size", len(l[2].blob)+1)), ErrInvalid, "descriptor says", false},
		{"layer urls not fetched", tamperedOCI(t, l, cfg, func(m map[string]any) {
			setLayer(2, "digest", good.String())(m)
			setLayer(2, "urls", []string{"http://127.0.0.1:1/blob"})(m)
		}), ErrMissingBlob, "never fetched", false},
		{"layer media type", tamperedOCI(t, l, cfg, setLayer(0, "mediaType", "application/vnd.oci.image.layer.v1.tar+encrypted")), ErrUnsupported, "media type", false},
		{"layer count", tamperedOCI(t, l, cfg, func(m map[string]any) { m["layers"] = m["layers"].([]any)[:2] }), ErrInvalid, "2 layers, but config", false},
		{"config size huge", tamperedOCI(t, l, cfg, func(m map[string]any) { m["config"].(map[string]any)["size"] = 1 << 30 }), ErrInvalid, "more than", false},
		{"config size mismatch", tamperedOCI(t, l, cfg, func(m map[string]any) { m["config"].(map[string]any)["size"] = len(cfg) - 1 }), ErrInvalid, "descriptor says", false},
		{"config rootfs type", tamperedOCI(t, l, []byte(strings.Replace(string(cfg), `"type":"layers"`, `"type":"other"`, 1)), func(map[string]any) {}), ErrInvalid, "rootfs.type", false},
		{"config digest mismatch", badCfg.writeDir(t), ErrInvalid, "does not match its digest", false},
		{"manifest digest mismatch", badMan.writeDir(t), ErrInvalid, "does not match its digest", false},
		{"index too deep", deep.writeDir(t), ErrInvalid, "nested more than", true},
		{"blob symlink escapes", escape.writeDir(t), ErrInvalid, "layer 2", false},
		{"schema 1 skipped", schema1.writeDir(t), ErrNotFound, "schema 1", false},
	})
}

// legacyArchive builds a docker-save tar with one three-layer image and lets edit change its members
// and manifest.json entry.
func legacyArchive(t *testing.T, edit func(ds *dockerSave, man map[string]any)) string {
	ds := &dockerSave{}
	ds.image(t, styleSkopeo, []string{"foo:1"}, linuxAMD64, threeLayers(t, ""))
	edit(ds, ds.manifest[0])
	ds.finish(t)
	return writeTemp(t, "hostile.tar", ds.tarBytes(t, tarOpts{}))
}

func TestHostileLegacy(t *testing.T) {
	t.Parallel()
	l := threeLayers(t, "")
	setLayer := func(i int, p string) func(*dockerSave, map[string]any) {
		return func(_ *dockerSave, m map[string]any) { m["Layers"].([]string)[i] = p }
	}
	// A link member in place of a layer: the path is what manifest.json names, the member is a symlink.
	linkLayer := func(i int, target string, typ byte) func(*dockerSave, map[string]any) {
		return func(ds *dockerSave, m map[string]any) {
			name := "link" + string(rune('0'+i)) + "/layer.tar"
			ds.add(tartest.Member{Name: name, Type: typ, Linkname: target})
			m["Layers"].([]string)[i] = name
		}
	}
	missing := legacyArchive(t, setLayer(1, "abc/layer.tar"))
	truncated := func() string {
		ds := &dockerSave{}
		ds.image(t, styleDocker, []string{"foo:1"}, linuxAMD64, l)
		ds.finish(t)
		b := ds.tarBytes(t, tarOpts{})
		return writeTemp(t, "t.tar", b[:len(b)/2])
	}()
	runHostile(t, []hostileCase{
		{"missing member", missing, ErrMissingBlob, `archive ` + missing + `: manifest.json: layer 2 "abc/layer.tar": no such member`, false},
		{"layer path ..", legacyArchive(t, setLayer(0, "../x.tar")), ErrInvalid, "leaves the archive", false},
		{"layer path absolute ..", legacyArchive(t, setLayer(0, "/../../x.tar")), ErrInvalid, "leaves the archive", false},
		{"config path ..", legacyArchive(t, func(_ *dockerSave, m map[string]any) { m["Config"] = "../c.json" }), ErrInvalid, "leaves the archive", true},
		{"config missing", legacyArchive(t, func(_ *dockerSave, m map[string]any) { m["Config"] = "nope.json" }), ErrMissingBlob, `config "nope.json": no such member`, true},
		{"config name digest mismatch", legacyArchive(t, func(ds *dockerSave, m map[string]any) {
			name := strings.Repeat("a", 64) + ".json"
			ds.file(name, mkConfig(t, linuxAMD64, l))
			m["Config"] = name
		}), ErrInvalid, "not the digest its name spells", true},
		{"symlink escape", legacyArchive(t, linkLayer(0, "../../etc/passwd", tar.TypeSymlink)), ErrInvalid, "escapes the archive", false},
		{"symlink absolute", legacyArchive(t, linkLayer(1, "/etc/passwd", tar.TypeSymlink)), ErrInvalid, "absolute target", false},
		{"symlink to dir", legacyArchive(t, linkLayer(1, "..", tar.TypeSymlink)), ErrInvalid, "escapes the archive", false},
		{"symlink cycle", legacyArchive(t, func(ds *dockerSave, m map[string]any) {
			ds.symlink("a/layer.tar", "../b/layer.tar")
			ds.symlink("b/layer.tar", "../a/layer.tar")
			m["Layers"].([]string)[2] = "a/layer.tar"
		}), ErrInvalid, "cycle", false},
		{"symlink parent cycle", legacyArchive(t, func(ds *dockerSave, m map[string]any) {
			ds.symlink("d1", "d2")
			ds.symlink("d2", "d1")
			m["Layers"].([]string)[2] = "d1/layer.tar"
		}), ErrInvalid, "cycle", false},
		{"hardlink escape", legacyArchive(t, linkLayer(0, "../x.tar", tar.TypeLink)), ErrInvalid, "outside the archive", false},
		{"layer is a directory", legacyArchive(t, func(ds *dockerSave, m map[string]any) {
			ds.add(tartest.Dir("adir"))
			m["Layers"].([]string)[0] = "adir"
		}), ErrInvalid, "is a directory", false},
		{"layer count", legacyArchive(t, func(_ *dockerSave, m map[string]any) { m["Layers"] = m["Layers"].([]string)[:2] }), ErrInvalid, "2 layers, but config", false},
	})
	ds := &dockerSave{}
	ds.file("manifest.json", []byte(`{"Config":"x"}`))
	p := writeTemp(t, "m.tar", ds.tarBytes(t, tarOpts{}))
	runHostile(t, []hostileCase{
		{"manifest.json not a list", p, ErrInvalid, "manifest.json: malformed JSON", true},
		{"truncated tar", truncated, ErrInvalid, "truncated", true},
	})
}

func TestLegacyLinks(t *testing.T) {
	t.Parallel()
	// Symlinks and hardlinks that stay inside the archive are followed, also as parent components.
	ctx := context.Background()
	l := threeLayers(t, "")
	ds := &dockerSave{}
	ds.image(t, styleDocker, []string{"foo:1"}, linuxAMD64, l)
	m := ds.manifest[0]
	paths := m["Layers"].([]string)
	ds.add(tartest.Member{Name: "hard/layer.tar", Type: tar.TypeLink, Linkname: "./" + paths[0]})
	ds.symlink("dirlink", strings.Split(paths[1], "/")[0])
	ds.symlink("chain/a", "b")
	ds.symlink("chain/b", "../"+paths[2])
	m["Layers"] = []string{"hard/layer.tar", "dirlink/layer.tar", "./chain/a"}
	ds.finish(t)
	a, err := Open(ctx, writeTemp(t, "l.tar", ds.tarBytes(t, tarOpts{})), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	img, err := a.Image(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, img, l)
	if img.Layers[2].Source != paths[2] {
		t.Errorf("Source = %q, want %q", img.Layers[2].Source, paths[2])
	}
}

func TestHostileOversizedConfig(t *testing.T) {
	t.Parallel()
	// An unpacked docker-save whose config is larger than allowed is refused without reading it.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.json")
	f, err := os.Create(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(maxConfigJSON + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(`[{"Config":"c.json","Layers":[]}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	runHostile(t, []hostileCase{{"config oversized", dir, ErrInvalid, "more than", true}})
}

func TestLegacyLongNames(t *testing.T) {
	t.Parallel()
	// Outer member names longer than ustar's 100 bytes, as PAX path records and as GNU long names.
	ctx := context.Background()
	l := threeLayers(t, "")
	long := strings.Repeat("d", 120) + "/" + strings.Repeat("e", 90)
	for _, format := range []tar.Format{tar.FormatPAX, tar.FormatGNU} {
		p := legacyArchive(t, func(ds *dockerSave, m map[string]any) {
			paths := m["Layers"].([]string)
			ds.add(tartest.Member{Name: long + "/layer.tar", Body: l[1].blob, Format: format})
			ds.add(tartest.Member{Name: long + "/link.tar", Type: tar.TypeSymlink, Linkname: "../../" + paths[2], Format: format})
			m["Layers"] = []string{paths[0], long + "/layer.tar", long + "/link.tar"}
		})
		a, err := Open(ctx, p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		img, err := a.Image(ctx, "foo:1", nil)
		if err != nil {
			t.Fatalf("%v: %v", format, err)
		}
		checkImage(t, img, l)
		a.Close()
	}
}
