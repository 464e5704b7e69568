package imagewrite

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/archive"
	"github.com/imgfs/imgfs/compression"
	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/tartest"
)

var (
	allFormats = []Format{FormatDockerArchive, FormatOCI, FormatOCIArchive}
	allComps   = []compression.Format{compression.None, compression.Gzip, compression.Zstd}
)

// imageConfig is the part of a config the tests look at.
type imageConfig struct {
	Architecture string          `json:"architecture"`
	OS           string          `json:"os"`
	Variant      string          `json:"variant"`
	Author       string          `json:"author"`
	Created      time.Time       `json:"created"`
	History      []ispec.History `json:"history"`
	RootFS       ispec.RootFS    `json:"rootfs"`
	Config       map[string]any  `json:"config"`
}

func parseConfig(t testing.TB, raw []byte) imageConfig {
	t.Helper()
	var c imageConfig
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("config: %v\n%s", err, raw)
	}
	return c
}

// readLayer returns the uncompressed bytes of a layer of an image read back.
func readLayer(t testing.TB, l archive.Layer) []byte {
	t.Helper()
	b, err := l.Blob()
	if err != nil {
		t.Fatal(err)
	}
	s, err := compression.Open(context.Background(), b, compression.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out := make([]byte, s.Size())
	if _, err := s.ReadAt(out, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return out
}

func TestWriteCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := sampleBase(t)
	layerTar := newLayerTar(t)
	cfg := Config{
		Author: "Jane <jane@example.com>", Comment: "fix the greeting", CreatedBy: "imgfs commit",
		Created: testEpoch, Changes: []string{"ENV A=1", `CMD ["run", "it"]`, "EXPOSE 8080"},
	}
	for _, f := range allFormats {
		for _, c := range allComps {
			t.Run(fmt.Sprintf("%s/%s", f, c), func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "out")
				res, err := Write(ctx, out, base, []Layer{bytesLayer(layerTar)}, cfg, Options{Format: f, Compression: c, Tags: []string{"example/app:2"}})
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Layers) != len(base.Layers)+1 {
					t.Fatalf("%d layers, want %d", len(res.Layers), len(base.Layers)+1)
				}
				for i, l := range base.Layers {
					got := res.Layers[i]
					if got.Digest != l.Digest || got.DiffID != l.DiffID || got.Size != l.Size {
						t.Errorf("base layer %d: %+v, want %s %s %d", i, got, l.Digest, l.DiffID, l.Size)
					}
				}
				nl := res.Layers[len(base.Layers)]
				if want := digest.FromBytes(layerTar); nl.DiffID != want {
					t.Errorf("new layer diff_id %s, want %s", nl.DiffID, want)
				}
				if want := archive.LayerMediaType(c); nl.MediaType != want {
					t.Errorf("new layer media type %s, want %s", nl.MediaType, want)
				}

				img := openImage(t, out)
				if img.ConfigDigest != res.ConfigDigest || img.ManifestDigest != res.ManifestDigest {
					t.Errorf("read back config %s manifest %s, want %s %s", img.ConfigDigest, img.ManifestDigest, res.ConfigDigest, res.ManifestDigest)
				}
				if !slices.Contains(img.Names, "example/app:2") {
					t.Errorf("names %v lack example/app:2", img.Names)
				}
				for i, l := range img.Layers {
					w := res.Layers[i]
					if l.Digest != w.Digest || l.DiffID != w.DiffID || l.Size != w.Size || l.MediaType != w.MediaType {
						t.Errorf("read back layer %d: %s %s %d %s, want %+v", i, l.Digest, l.DiffID, l.Size, l.MediaType, w)
					}
				}
				top := img.Layers[len(img.Layers)-1]
				if got := readLayer(t, top); !bytes.Equal(got, layerTar) {
					t.Errorf("new layer reads back as %d bytes, want the %d written", len(got), len(layerTar))
				}
				b, _ := top.Blob()
				blob := make([]byte, b.Size)
				b.R.ReadAt(blob, b.Off)
				if d := digest.FromBytes(blob); d != nl.Digest {
					t.Errorf("new blob hashes to %s, result says %s", d, nl.Digest)
				}
				lay, err := index.Open(ctx, b, index.Options{DiffID: top.DiffID, Digest: top.Digest})
				if err != nil {
					t.Fatal(err)
				}
				if app, ok := lay.Lookup(0, "app"); !ok {
					t.Error("index of the new layer has no app")
				} else if _, ok := lay.Lookup(app, "committed.txt"); !ok {
					t.Error("index of the new layer has no app/committed.txt")
				}
				lay.Close()

				got := parseConfig(t, img.RawConfig)
				want := parseConfig(t, base.RawConfig)
				if got.Author != cfg.Author || !got.Created.Equal(testEpoch) {
					t.Errorf("author %q created %s", got.Author, got.Created)
				}
				if len(got.RootFS.DiffIDs) != len(img.Layers) || got.RootFS.DiffIDs[len(img.Layers)-1] != nl.DiffID {
					t.Errorf("diff_ids %v", got.RootFS.DiffIDs)
				}
				if len(got.History) != len(want.History)+1 {
					t.Fatalf("%d history entries, want %d", len(got.History), len(want.History)+1)
				}
				h := got.History[len(got.History)-1]
				if h.Author != cfg.Author || h.Comment != cfg.Comment || h.CreatedBy != cfg.CreatedBy || h.EmptyLayer || h.Created == nil || !h.Created.Equal(testEpoch) {
					t.Errorf("history entry %+v", h)
				}
				if !slices.Equal(toStrings(got.Config["Cmd"]), []string{"run", "it"}) || !slices.Contains(toStrings(got.Config["Env"]), "A=1") {
					t.Errorf("config %v", got.Config)
				}
				if _, ok := got.Config["ExposedPorts"].(map[string]any)["8080/tcp"]; !ok {
					t.Errorf("exposed ports %v", got.Config["ExposedPorts"])
				}
				assertNoTemp(t, filepath.Dir(out))
			})
		}
	}
}

func toStrings(v any) []string {
	var out []string
	a, _ := v.([]any)
	for _, x := range a {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// assertNoTemp fails when dir holds a temporary file of this package.
func assertNoTemp(t testing.TB, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".imgfs-tmp-") {
			t.Errorf("temporary %s left in %s", e.Name(), dir)
		}
	}
}

func TestWriteImport(t *testing.T) {
	t.Parallel()
	layerTar := newLayerTar(t)
	plat := &ispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	for _, f := range allFormats {
		t.Run(string(f), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			res, err := Write(context.Background(), out, nil, []Layer{bytesLayer(layerTar)},
				Config{Comment: "imported", Created: testEpoch, Platform: plat, Changes: []string{"ENTRYPOINT /app/run", "WORKDIR /app"}},
				Options{Format: f, Compression: compression.Gzip, Tags: []string{"imported"}})
			if err != nil {
				t.Fatal(err)
			}
			a, err := archive.Open(context.Background(), out, archive.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			img, err := a.Image(context.Background(), "imported:latest", plat)
			if err != nil {
				t.Fatal(err)
			}
			if img.ConfigDigest != res.ConfigDigest || len(img.Layers) != 1 || img.Layers[0].DiffID != digest.FromBytes(layerTar) {
				t.Fatalf("read back %s with %d layers", img.ConfigDigest, len(img.Layers))
			}
			c := parseConfig(t, img.RawConfig)
			if c.OS != "linux" || c.Architecture != "arm64" || c.Variant != "v8" || c.Author != "" {
				t.Errorf("config %+v", c)
			}
			wantHist := []ispec.History{{Created: &testEpoch, Comment: "imported"}}
			if len(c.History) != 1 || !c.History[0].Created.Equal(testEpoch) || c.History[0].Comment != "imported" ||
				c.History[0].CreatedBy != "" || c.History[0].Author != "" || c.History[0].EmptyLayer {
				t.Errorf("history %+v, want %+v", c.History, wantHist)
			}
			if !slices.Equal(toStrings(c.Config["Entrypoint"]), []string{"/bin/sh", "-c", "/app/run"}) || c.Config["WorkingDir"] != "/app" {
				t.Errorf("container config %v", c.Config)
			}
			if img.Platform.Architecture != "arm64" {
				t.Errorf("platform %+v", img.Platform)
			}
		})
	}
}

func TestWriteNoLayer(t *testing.T) {
	t.Parallel()
	base := sampleBase(t)
	out := filepath.Join(t.TempDir(), "out.tar")
	res, err := Write(context.Background(), out, base, nil, Config{Created: testEpoch, Comment: "config only", Changes: []string{"USER nobody"}}, Options{Format: FormatOCIArchive})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Layers) != len(base.Layers) {
		t.Fatalf("%d layers, want %d", len(res.Layers), len(base.Layers))
	}
	img := openImage(t, out)
	c := parseConfig(t, img.RawConfig)
	h := c.History[len(c.History)-1]
	if !h.EmptyLayer || h.Comment != "config only" || c.Config["User"] != "nobody" {
		t.Errorf("history %+v config %v", h, c.Config)
	}
	if len(c.RootFS.DiffIDs) != len(base.Layers) {
		t.Errorf("diff_ids %v", c.RootFS.DiffIDs)
	}
}

func TestWriteKeepsUnknownFields(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "base.tar")
	writeLegacy(t, p, map[string]any{
		"architecture": "amd64", "os": "linux", "docker_version": "24.0.7",
		"x-vendor":         map[string]any{"nested": []any{1.0, "two", nil}},
		"container_config": map[string]any{"Hostname": "abc", "Cmd": []string{"/bin/sh"}},
		"config":           map[string]any{"Hostname": "h", "Env": []string{"PATH=/bin", "HOME=/root"}, "Cmd": []string{"sh"}, "ArgsEscaped": true, "Shell": []string{"/bin/bash", "-c"}},
		"history":          []any{map[string]any{"created_by": "base", "x-hist": 1.0}},
	}, tartest.Tar(t, tartest.File("a", "a")))
	base := openImage(t, p)
	out := filepath.Join(t.TempDir(), "out")
	_, err := Write(context.Background(), out, base, []Layer{bytesLayer(newLayerTar(t))},
		Config{Created: testEpoch, Changes: []string{"ENV HOME=/home/u PATH=$PATH:/opt/bin", "ENTRYPOINT exec app"}}, Options{Format: FormatOCI})
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(openImage(t, out).RawConfig, &doc); err != nil {
		t.Fatal(err)
	}
	cc := doc["config"].(map[string]any)
	checks := []struct {
		what string
		got  any
		want string
	}{
		{"x-vendor", doc["x-vendor"], `{"nested":[1,"two",null]}`},
		{"docker_version", doc["docker_version"], `"24.0.7"`},
		{"container_config", doc["container_config"], `{"Cmd":["/bin/sh"],"Hostname":"abc"}`},
		{"history[0]", doc["history"].([]any)[0], `{"created_by":"base","x-hist":1}`},
		{"Hostname", cc["Hostname"], `"h"`},
		{"ArgsEscaped", cc["ArgsEscaped"], `true`},
		{"Env", cc["Env"], `["PATH=/bin:/opt/bin","HOME=/home/u"]`},
		{"Entrypoint", cc["Entrypoint"], `["/bin/bash","-c","exec app"]`},
		{"Cmd", cc["Cmd"], `null`},
	}
	for _, c := range checks {
		if b, _ := json.Marshal(c.got); string(b) != c.want {
			t.Errorf("%s = %s, want %s", c.what, b, c.want)
		}
	}
}

// TestWriteDeterministic writes the same image twice into different directories and compares every
// byte; a different Created gives a different image.
func TestWriteDeterministic(t *testing.T) {
	t.Parallel()
	base := sampleBase(t)
	big := bigLayer(t, 3<<20+12345)
	for _, f := range allFormats {
		for _, c := range allComps {
			t.Run(fmt.Sprintf("%s/%s", f, c), func(t *testing.T) {
				write := func(created time.Time) (string, Result) {
					out := filepath.Join(t.TempDir(), "img")
					res, err := Write(context.Background(), out, base, []Layer{bytesLayer(big), bytesLayer(newLayerTar(t))},
						Config{Created: created, Author: "a", Changes: []string{"LABEL x=y"}}, Options{Format: f, Compression: c, Tags: []string{"a:1", "b/c:2"}})
					if err != nil {
						t.Fatal(err)
					}
					return out, res
				}
				out1, res1 := write(testEpoch)
				out2, res2 := write(testEpoch)
				if res1.ManifestDigest != res2.ManifestDigest {
					t.Errorf("manifest digests %s and %s", res1.ManifestDigest, res2.ManifestDigest)
				}
				if a, b := treeSum(t, out1), treeSum(t, out2); a != b {
					t.Errorf("outputs differ:\n%s\n%s", a, b)
				}
				_, res3 := write(testEpoch.Add(time.Second))
				if res3.ConfigDigest == res1.ConfigDigest {
					t.Error("another Created gave the same config")
				}
				if res3.Layers[len(res3.Layers)-1] != res1.Layers[len(res1.Layers)-1] {
					t.Error("another Created changed a layer")
				}
			})
		}
	}
}

// bigLayer is a tar of about n bytes of compressible, not trivially repetitive content.
func bigLayer(t testing.TB, n int) []byte {
	var body strings.Builder
	for i := 0; body.Len() < n; i++ {
		fmt.Fprintf(&body, "line %d %x\n", i, i*2654435761)
	}
	return tartest.Tar(t, tartest.File("big.txt", body.String()))
}

// treeSum lists a file's digest, or a directory's files with their digests and modes.
func treeSum(t testing.TB, p string) string {
	t.Helper()
	var sb strings.Builder
	err := filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(p, q)
		fmt.Fprintf(&sb, "%s %v", rel, fi.Mode())
		if !d.IsDir() {
			b, err := os.ReadFile(q)
			if err != nil {
				return err
			}
			fmt.Fprintf(&sb, " %s", digest.FromBytes(b))
		}
		sb.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

func TestWriteFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	base := sampleBase(t)
	boom := errors.New("boom")
	for _, f := range allFormats {
		t.Run(string(f), func(t *testing.T) {
			for _, c := range []compression.Format{compression.None, compression.Gzip} {
				dir := t.TempDir()
				out := filepath.Join(dir, "out")
				failing := Layer{Write: func(ctx context.Context, w io.Writer) error {
					w.Write(bytes.Repeat([]byte("x"), 3<<20))
					return boom
				}}
				if _, err := Write(context.Background(), out, base, []Layer{failing}, Config{}, Options{Format: f, Compression: c}); !errors.Is(err, boom) {
					t.Fatalf("error %v, want boom", err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				cancelling := Layer{Write: func(ctx context.Context, w io.Writer) error {
					chunk := bytes.Repeat([]byte("y"), 1<<20)
					for i := 0; ; i++ {
						if i == 2 {
							cancel()
						}
						if _, err := w.Write(chunk); err != nil {
							return err
						}
					}
				}}
				if _, err := Write(ctx, out, base, []Layer{cancelling}, Config{}, Options{Format: f, Compression: c}); !errors.Is(err, context.Canceled) {
					t.Fatalf("error %v, want context.Canceled", err)
				}
				if ents, _ := os.ReadDir(dir); len(ents) != 0 {
					t.Errorf("left behind: %v", ents)
				}
			}
		})
	}
}

func TestWriteOutputRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := sampleBase(t)
	layers := []Layer{bytesLayer(newLayerTar(t))}
	dir := t.TempDir()

	// An existing file is replaced; a failed write leaves it as it was.
	file := filepath.Join(dir, "img.tar")
	os.WriteFile(file, []byte("old"), 0o644)
	bad := Layer{Write: func(context.Context, io.Writer) error { return errors.New("no") }}
	if _, err := Write(ctx, file, base, []Layer{bad}, Config{}, Options{Format: FormatDockerArchive}); err == nil {
		t.Fatal("no error")
	}
	if b, _ := os.ReadFile(file); string(b) != "old" {
		t.Fatalf("failed write changed the file: %q", b)
	}
	if _, err := Write(ctx, file, base, layers, Config{}, Options{Format: FormatDockerArchive}); err != nil {
		t.Fatal(err)
	}
	openImage(t, file)

	// The base's own archive is refused.
	if _, err := Write(ctx, file, openImage(t, file), layers, Config{}, Options{Format: FormatDockerArchive}); !errors.Is(err, ErrInvalid) {
		t.Errorf("writing over the base archive: %v, want ErrInvalid", err)
	}
	// A directory is not a file output.
	if _, err := Write(ctx, dir, base, layers, Config{}, Options{Format: FormatOCIArchive}); !errors.Is(err, ErrExists) {
		t.Errorf("tar output onto a directory: %v, want ErrExists", err)
	}
	// An OCI layout goes into a missing or empty directory only.
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	if _, err := Write(ctx, empty, base, layers, Config{}, Options{Format: FormatOCI}); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(ctx, empty, base, layers, Config{}, Options{Format: FormatOCI}); !errors.Is(err, ErrExists) {
		t.Errorf("layout over a layout: %v, want ErrExists", err)
	}
	if _, err := Write(ctx, file, base, layers, Config{}, Options{Format: FormatOCI}); !errors.Is(err, ErrExists) {
		t.Errorf("layout over a file: %v, want ErrExists", err)
	}
	assertNoTemp(t, dir)
}

func TestWriteArguments(t *testing.T) {
	t.Parallel()
	base := sampleBase(t)
	l := []Layer{bytesLayer(newLayerTar(t))}
	far := time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		base   bool
		layers []Layer
		cfg    Config
		opts   Options
		want   error
	}{
		{"no format", true, l, Config{}, Options{}, ErrInvalid},
		{"bad compression", true, l, Config{}, Options{Format: FormatOCI, Compression: 9}, ErrInvalid},
		{"bad tag", true, l, Config{}, Options{Format: FormatOCI, Tags: []string{"Upper/Case"}}, ErrInvalid},
		{"bad change", true, l, Config{Changes: []string{"RUN rm -rf /"}}, Options{Format: FormatOCI}, ErrChange},
		{"change fails to apply", true, []Layer{{Write: func(context.Context, io.Writer) error { panic("written") }}},
			Config{Changes: []string{"ENV A=${UNSET:?needed}"}}, Options{Format: FormatOCI}, ErrChange},
		{"nothing", false, nil, Config{}, Options{Format: FormatOCI}, ErrInvalid},
		{"platform with base", true, l, Config{Platform: &ispec.Platform{OS: "linux", Architecture: "arm"}}, Options{Format: FormatOCI}, ErrInvalid},
		{"nil Write", true, []Layer{{}}, Config{}, Options{Format: FormatOCI}, ErrInvalid},
		{"year 12000", true, l, Config{Created: far}, Options{Format: FormatOCI}, ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			b := base
			if !c.base {
				b = nil
			}
			_, err := Write(context.Background(), filepath.Join(dir, "out"), b, c.layers, c.cfg, c.opts)
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("left behind: %v", ents)
			}
		})
	}
}

func TestWriteBaseDigestMismatch(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "base.tar")
	// The config claims a diff_id the layer does not have; a legacy uncompressed layer's digest is its
	// diff_id, which archive takes on trust.
	lie := digest.FromString("something else")
	writeLegacy(t, p, map[string]any{"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{lie.String()}}}, tartest.Tar(t, tartest.File("a", "a")))
	a, err := archive.Open(context.Background(), p, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	base, err := a.Image(context.Background(), "", nil)
	if err != nil {
		t.Skipf("archive refuses the lying base itself: %v", err)
	}
	dir := t.TempDir()
	_, err = Write(context.Background(), filepath.Join(dir, "out"), base, nil, Config{}, Options{Format: FormatOCI})
	if !errors.Is(err, ErrBase) || !strings.Contains(err.Error(), "hashes to") {
		t.Fatalf("error %v, want ErrBase about the hash", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}

func TestWriteProgress(t *testing.T) {
	t.Parallel()
	big := bigLayer(t, 5<<20)
	l := bytesLayer(big)
	l.Size = int64(len(big))
	var calls [][2]int64
	_, err := Write(context.Background(), filepath.Join(t.TempDir(), "o"), nil, []Layer{l}, Config{Created: testEpoch},
		Options{Format: FormatOCIArchive, Compression: compression.Gzip, Progress: func(done, total int64) { calls = append(calls, [2]int64{done, total}) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) == 0 || calls[len(calls)-1] != [2]int64{l.Size, l.Size} {
		t.Fatalf("progress calls %v, want the last to be %d of %d", calls, l.Size, l.Size)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i][0] < calls[i-1][0] {
			t.Errorf("progress went back: %v", calls)
		}
	}
}

func TestWriteDedupLayers(t *testing.T) {
	t.Parallel()
	// The same new layer twice, and a new layer equal to a base layer, are stored once.
	lt := newLayerTar(t)
	for _, f := range allFormats {
		out := filepath.Join(t.TempDir(), "o")
		res, err := Write(context.Background(), out, nil, []Layer{bytesLayer(lt), bytesLayer(lt)}, Config{Created: testEpoch}, Options{Format: f})
		if err != nil {
			t.Fatal(err)
		}
		if res.Layers[0] != res.Layers[1] {
			t.Errorf("%s: %+v", f, res.Layers)
		}
		img := openImage(t, out)
		if len(img.Layers) != 2 || !bytes.Equal(readLayer(t, img.Layers[1]), lt) {
			t.Errorf("%s: read back %d layers", f, len(img.Layers))
		}
	}
}

func TestNormalizeTag(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want, full string }{
		{"foo", "foo:latest", "docker.io/library/foo:latest"},
		{"foo:1.2", "foo:1.2", "docker.io/library/foo:1.2"},
		{"team/foo:x", "team/foo:x", "docker.io/team/foo:x"},
		{"docker.io/foo:1", "docker.io/foo:1", "docker.io/library/foo:1"},
		{"localhost/foo", "localhost/foo:latest", "localhost/foo:latest"},
		{"registry.example:5000/a/b-c__d:v1_2", "registry.example:5000/a/b-c__d:v1_2", "registry.example:5000/a/b-c__d:v1_2"},
		{"Foo", "", ""},
		{"foo:", "", ""},
		{"foo@sha256:abc", "", ""},
		{"foo:bad tag", "", ""},
		{"", "", ""},
		{"a//b", "", ""},
		{"reg:5000", "reg:5000", "docker.io/library/reg:5000"},
		{"reg:5000/x:", "", ""},
	}
	for _, c := range cases {
		got, err := normalizeTag(c.in)
		if c.want == "" {
			if err == nil {
				t.Errorf("normalizeTag(%q) = %q, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("normalizeTag(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
		if f := fullName(got); f != c.full {
			t.Errorf("fullName(%q) = %q, want %q", got, f, c.full)
		}
	}
}

// TestWriteChain commits on top of an image this package wrote, across formats: the earlier image's
// blobs, media types and annotations carry over unchanged.
func TestWriteChain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	first := filepath.Join(dir, "first")
	res1, err := Write(ctx, first, sampleBase(t), []Layer{bytesLayer(newLayerTar(t))}, Config{Created: testEpoch, Comment: "one"}, Options{Format: FormatOCI, Compression: compression.Zstd})
	if err != nil {
		t.Fatal(err)
	}
	base := openImage(t, first)
	for _, f := range allFormats {
		out := filepath.Join(dir, "second-"+string(f))
		second := tartest.Tar(t, tartest.File("two.txt", "2\n"))
		res2, err := Write(ctx, out, base, []Layer{bytesLayer(second)}, Config{Created: testEpoch, Comment: "two"}, Options{Format: f, Compression: compression.Gzip})
		if err != nil {
			t.Fatal(err)
		}
		if len(res2.Layers) != len(res1.Layers)+1 {
			t.Fatalf("%s: %d layers", f, len(res2.Layers))
		}
		for i, l := range res1.Layers {
			if res2.Layers[i].Digest != l.Digest || res2.Layers[i].DiffID != l.DiffID || res2.Layers[i].MediaType != l.MediaType {
				t.Errorf("%s: layer %d became %+v, was %+v", f, i, res2.Layers[i], l)
			}
		}
		img := openImage(t, out)
		if got := readLayer(t, img.Layers[len(img.Layers)-2]); !bytes.Equal(got, newLayerTar(t)) {
			t.Errorf("%s: the first commit's zstd layer reads back wrong", f)
		}
		c := parseConfig(t, img.RawConfig)
		if n := len(c.History); n < 2 || c.History[n-2].Comment != "one" || c.History[n-1].Comment != "two" {
			t.Errorf("%s: history %+v", f, c.History)
		}
	}
}

// TestWriteFixesLayerMediaType reads a base whose manifest says an uncompressed layer is gzip: the
// output states what the blob is.
func TestWriteFixesLayerMediaType(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if _, err := Write(ctx, src, nil, []Layer{bytesLayer(newLayerTar(t))}, Config{Created: testEpoch}, Options{Format: FormatOCI}); err != nil {
		t.Fatal(err)
	}
	// Mislabel the layer: rewrite the manifest and point index.json at it.
	var idx ispec.Index
	rawIdx, _ := os.ReadFile(filepath.Join(src, "index.json"))
	json.Unmarshal(rawIdx, &idx)
	rawMan, _ := os.ReadFile(filepath.Join(src, blobName(idx.Manifests[0].Digest)))
	var man ispec.Manifest
	json.Unmarshal(rawMan, &man)
	man.Layers[0].MediaType = ispec.MediaTypeImageLayerGzip
	rawMan, _ = json.Marshal(man)
	os.WriteFile(filepath.Join(src, blobName(digest.FromBytes(rawMan))), rawMan, 0o644)
	idx.Manifests[0].Digest, idx.Manifests[0].Size = digest.FromBytes(rawMan), int64(len(rawMan))
	rawIdx, _ = json.Marshal(idx)
	os.WriteFile(filepath.Join(src, "index.json"), rawIdx, 0o644)

	base := openImage(t, src)
	if base.Layers[0].MediaType != ispec.MediaTypeImageLayerGzip {
		t.Fatalf("the base reads as %s", base.Layers[0].MediaType)
	}
	res, err := Write(ctx, filepath.Join(dir, "out")+"/", base, nil, Config{Created: testEpoch}, Options{Format: FormatOCI})
	if err != nil {
		t.Fatal(err)
	}
	if res.Layers[0].MediaType != ispec.MediaTypeImageLayer {
		t.Errorf("media type %s, want %s", res.Layers[0].MediaType, ispec.MediaTypeImageLayer)
	}
	if openImage(t, filepath.Join(dir, "out")).Layers[0].MediaType != ispec.MediaTypeImageLayer {
		t.Error("the output reads back mislabelled")
	}
}
