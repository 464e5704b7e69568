package integration

import (
	"archive/tar"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/imgfs/imgfs/internal/sample"
	"github.com/imgfs/imgfs/internal/tartest"
)

// TestHostileLayer mounts an image whose layers try to escape the root with "..", absolute names,
// members written through symlinks and hardlinks to host files. The view must hold only what is safely
// inside, with symlink targets verbatim, and nothing may appear outside.
func TestHostileLayer(t *testing.T) {
	requireFUSE(t)
	dir := t.TempDir()
	archive := filepath.Join(dir, "hostile.tar")
	layers := [][]tartest.Member{
		{
			tartest.File("../escape.txt", "escaped"),
			tartest.File("./dot/../../up.txt", "up"),
			tartest.File("/abs.txt", "absolute names land in the root"),
			tartest.Symlink("evil", "/etc"),
			tartest.File("evil/passwd", "written through a symlink"),
			tartest.Symlink("rel-evil", "../../../../etc"),
			tartest.Hardlink("hl-up", "../../etc/shadow"),
			tartest.Hardlink("hl-abs", "/etc/passwd"),
			{Name: "./", Type: tar.TypeSymlink, Linkname: "/"},
		},
		{
			tartest.File("rel-evil/x", "a directory above shadows the symlink below; nothing goes through it"),
		},
	}
	if err := sample.WriteArchive(archive, "hostile:latest", layers, false); err != nil {
		t.Fatal(err)
	}
	mnt := mountImage(t, archive)
	var got []string
	filepath.Walk(mnt, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			t.Errorf("walk: %v", err)
			return nil
		}
		rel, _ := filepath.Rel(mnt, p)
		if rel != "." {
			got = append(got, rel+" "+info.Mode().Type().String())
		}
		return nil
	})
	sort.Strings(got)
	want := []string{"abs.txt ----------", "evil L---------", "rel-evil d---------", "rel-evil/x ----------"}
	if !slices.Equal(got, want) {
		t.Errorf("view:\n got  %q\n want %q", got, want)
	}
	if target, err := os.Readlink(filepath.Join(mnt, "evil")); err != nil || target != "/etc" {
		t.Errorf("evil: %q, %v; want the target verbatim", target, err)
	}
	if st, err := os.Stat(mnt); err != nil || !st.IsDir() {
		t.Errorf("the root must stay a directory (a '.' symlink member is ignored): %v", err)
	}
	for _, p := range []string{"/escape.txt", filepath.Join(dir, "escape.txt"), filepath.Join(filepath.Dir(mnt), "escape.txt"),
		filepath.Join(filepath.Dir(mnt), "up.txt")} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after mounting a hostile archive", p)
		}
	}
}

// TestInspectAgainstSkopeo compares `imgfs inspect --json` with skopeo's view of the same archive.
func TestInspectAgainstSkopeo(t *testing.T) {
	requireTool(t, "skopeo")
	_, archive := writeSample(t, "sample.tar")
	out, stderr, code := imgfs(t, "inspect", "--json", "--quiet", "--cache-dir", cacheDir, archive)
	if code != 0 {
		t.Fatalf("inspect: exit %d: %s", code, stderr)
	}
	var in struct {
		Archive struct{ Format string }
		Image   struct {
			Names        []string
			ConfigDigest string
			Config       struct{ Cmd []string }
			Layers       []struct {
				Digest, DiffID, MediaType string
				Entries                   int64
			}
			History []struct{ Comment string }
		}
	}
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, out)
	}
	cfgOut, err := exec.Command("skopeo", "inspect", "--config", "docker-archive:"+archive).Output()
	if err != nil {
		t.Fatalf("skopeo inspect --config: %v", err)
	}
	var cfg struct {
		Rootfs struct {
			DiffIDs []string `json:"diff_ids"`
		}
		Config struct{ Cmd []string }
	}
	if err := json.Unmarshal(cfgOut, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(in.Image.Layers) != len(cfg.Rootfs.DiffIDs) {
		t.Fatalf("%d layers, skopeo says %d", len(in.Image.Layers), len(cfg.Rootfs.DiffIDs))
	}
	for i, l := range in.Image.Layers {
		if l.DiffID != cfg.Rootfs.DiffIDs[i] || l.Entries == 0 || l.Digest == "" {
			t.Errorf("layer %d: %+v, skopeo diff_id %s", i+1, l, cfg.Rootfs.DiffIDs[i])
		}
	}
	if !slices.Equal(in.Image.Config.Cmd, cfg.Config.Cmd) || len(in.Image.History) != 3 ||
		!slices.Contains(in.Image.Names, sample.Name) || in.Archive.Format == "" {
		t.Errorf("inspect: %+v", in)
	}
}
