package imagewrite

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/compression"
)

// tool finds a command; without it the test is skipped, or fails when CI is set.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is needed in CI: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr)
	}
	return out
}

// skopeoRef is the skopeo reference of an output.
func skopeoRef(f Format, out, tag string) string {
	switch f {
	case FormatOCI, FormatOCIArchive:
		return string(f) + ":" + out + ":" + tag
	}
	return "docker-archive:" + out
}

// TestToolsAccept writes a commit in every format and checks it with skopeo inspect, skopeo copy to an
// OCI layout and umoci unpack of the copy.
func TestToolsAccept(t *testing.T) {
	t.Parallel()
	skopeo, umoci := tool(t, "skopeo"), tool(t, "umoci")
	base := sampleBase(t)
	layerTar := newLayerTar(t)
	cfg := Config{Author: "Jane", Comment: "tools", CreatedBy: "imgfs commit", Created: testEpoch,
		Changes: []string{"ENV STAGE=committed", `ENTRYPOINT ["/usr/bin/hello"]`, "LABEL tested=yes"}}
	for _, f := range allFormats {
		for _, c := range []compression.Format{compression.None, compression.Gzip, compression.Zstd} {
			t.Run(fmt.Sprintf("%s/%s", f, c), func(t *testing.T) {
				t.Parallel() // each writes and checks its own output; base is only read
				dir := t.TempDir()
				out := filepath.Join(dir, "img")
				res, err := Write(context.Background(), out, base, []Layer{bytesLayer(layerTar)}, cfg, Options{Format: f, Compression: c, Tags: []string{"imgfs/tools:1"}})
				if err != nil {
					t.Fatal(err)
				}
				ref := skopeoRef(f, out, "imgfs/tools:1")

				var inspect struct {
					Digest       digest.Digest
					Layers       []digest.Digest
					Architecture string
					Os           string
					Env          []string
					Labels       map[string]string
				}
				if err := json.Unmarshal(run(t, skopeo, "inspect", ref), &inspect); err != nil {
					t.Fatal(err)
				}
				var want []digest.Digest
				for _, l := range res.Layers {
					if f == FormatDockerArchive {
						want = append(want, l.DiffID) // skopeo reports a docker-archive's layers by diff_id
					} else {
						want = append(want, l.Digest)
					}
				}
				if !slices.Equal(inspect.Layers, want) {
					t.Errorf("skopeo layers %v\n want %v", inspect.Layers, want)
				}
				for i, l := range base.Layers {
					if f != FormatDockerArchive && inspect.Layers[i] != l.Digest {
						t.Errorf("base layer %d is %s, was %s", i, inspect.Layers[i], l.Digest)
					}
				}
				if f != FormatDockerArchive && inspect.Digest != res.ManifestDigest {
					t.Errorf("skopeo manifest digest %s, want %s", inspect.Digest, res.ManifestDigest)
				}
				if inspect.Architecture != "amd64" || inspect.Os != "linux" || inspect.Labels["tested"] != "yes" || !slices.Contains(inspect.Env, "STAGE=committed") {
					t.Errorf("skopeo inspect: %+v", inspect)
				}
				var config ispec.Image
				if err := json.Unmarshal(run(t, skopeo, "inspect", "--config", ref), &config); err != nil {
					t.Fatal(err)
				}
				h := config.History[len(config.History)-1]
				if h.Author != "Jane" || h.Comment != "tools" || h.CreatedBy != "imgfs commit" || !h.Created.Equal(testEpoch) {
					t.Errorf("history %+v", h)
				}
				if !slices.Equal(config.Config.Entrypoint, []string{"/usr/bin/hello"}) || config.Config.Cmd != nil {
					t.Errorf("entrypoint %v cmd %v", config.Config.Entrypoint, config.Config.Cmd)
				}
				if len(config.RootFS.DiffIDs) != len(res.Layers) || config.RootFS.DiffIDs[len(res.Layers)-1] != digest.FromBytes(layerTar) {
					t.Errorf("diff_ids %v", config.RootFS.DiffIDs)
				}

				copyDir := filepath.Join(dir, "copy")
				args := []string{"copy", "--quiet", ref, "oci:" + copyDir + ":t"}
				if c == compression.Zstd {
					// umoci 0.4 cannot read zstd layers: skopeo decompresses them and writes gzip.
					args = append(args, "--dest-compress", "--dest-compress-format", "gzip")
				}
				run(t, skopeo, args...)
				bundle := filepath.Join(dir, "bundle")
				run(t, umoci, "unpack", "--rootless", "--image", copyDir+":t", bundle)
				checkRootfs(t, filepath.Join(bundle, "rootfs"))
			})
		}
	}
}

// checkRootfs checks the unpacked sample plus the new layer.
func checkRootfs(t *testing.T, root string) {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(root, "app/committed.txt")); err != nil || string(b) != "written by imagewrite\n" {
		t.Errorf("app/committed.txt: %q, %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(root, "app/link")); err != nil || l != "committed.txt" {
		t.Errorf("app/link: %q, %v", l, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/os-release")); !os.IsNotExist(err) {
		t.Errorf("etc/os-release should be whited out: %v", err)
	}
	for _, p := range []string{"usr/bin/hello", "app/v2/VERSION", "var/cache/app/fresh.bin"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Errorf("base file %s: %v", p, err)
		}
	}
}

// TestPodmanLoad loads a docker-archive output into a private podman store (vfs driver, temporary root)
// and checks what podman sees.
func TestPodmanLoad(t *testing.T) {
	t.Parallel()
	podman := tool(t, "podman")
	if os.Geteuid() != 0 {
		t.Skip("podman load into a private store needs root here")
	}
	base := sampleBase(t)
	dir := t.TempDir()
	for _, c := range []compression.Format{compression.None, compression.Gzip} {
		out := filepath.Join(dir, "img-"+c.String()+".tar")
		res, err := Write(context.Background(), out, base, []Layer{bytesLayer(newLayerTar(t))},
			Config{Created: testEpoch, Changes: []string{"CMD /usr/bin/hello"}}, Options{Format: FormatDockerArchive, Compression: c, Tags: []string{"imgfs/podman:" + c.String()}})
		if err != nil {
			t.Fatal(err)
		}
		store := []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "vfs"}
		load := run(t, podman, append(store, "load", "-i", out)...)
		if !strings.Contains(string(load), "imgfs/podman:"+c.String()) {
			t.Errorf("podman load: %s", load)
		}
		var images []struct {
			ID     string `json:"Id"`
			RootFS struct{ Layers []digest.Digest }
			Config struct{ Cmd []string }
		}
		if err := json.Unmarshal(run(t, podman, append(store, "image", "inspect", "imgfs/podman:"+c.String())...), &images); err != nil {
			t.Fatal(err)
		}
		if len(images) != 1 || "sha256:"+images[0].ID != res.ConfigDigest.String() {
			t.Fatalf("podman image %+v, want ID %s", images, res.ConfigDigest)
		}
		if n := len(images[0].RootFS.Layers); n != len(res.Layers) || images[0].RootFS.Layers[n-1] != res.Layers[n-1].DiffID {
			t.Errorf("podman layers %v", images[0].RootFS.Layers)
		}
		if !slices.Equal(images[0].Config.Cmd, []string{"/bin/sh", "-c", "/usr/bin/hello"}) {
			t.Errorf("podman cmd %v", images[0].Config.Cmd)
		}
	}
}
