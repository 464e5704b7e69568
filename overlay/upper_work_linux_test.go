package overlay

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/tartest"
	"golang.org/x/sys/unix"
)

// gateLayer blocks data reads on gate until the test lets them go.
type gateLayer struct {
	Layer
	started chan struct{}
	gate    chan struct{}
}

func (g *gateLayer) ReadAt(id index.ID, p []byte, off int64) (int, error) {
	select {
	case g.started <- struct{}{}:
	default:
	}
	<-g.gate
	return g.Layer.ReadAt(id, p, off)
}

// workEntries lists the names in directory p.
func workEntries(t *testing.T, p string) []string {
	t.Helper()
	ents, err := os.ReadDir(p)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestUpperWorkDirectory: entries being made (here a copy-up caught half-way) live in a work directory
// beside the upper directory, never in it, so a crash or the kernel's overlayfs never shows them; a
// clean close removes the work directory, and the next open reclaims what a killed mount left in it.
func TestUpperWorkDirectory(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("x"), 4<<20)
	g := &gateLayer{Layer: newFakeLayer(tartest.Member{Name: "d/big", Body: data}), started: make(chan struct{}, 1),
		gate: make(chan struct{})}
	parent := upTempDir(t)
	dir := filepath.Join(parent, "upper")
	work := filepath.Join(parent, ".upper"+workSuffix)
	v, u := upOpen(t, dir, []Layer{g})
	a, err := lookupPath(v, "d/big")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		f, err := v.OpenFile(a.Node, true, false)
		if err == nil {
			err = f.Close()
		}
		done <- err
	}()
	<-g.started
	// Copy-up under way: its temporary is in the work directory; the upper directory has none.
	if names := workEntries(t, work); len(names) != 1 || !strings.HasPrefix(names[0], tmpPrefix) {
		t.Errorf("work directory during a copy-up: %q", names)
	}
	upCheckDisk(t, dir)
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if strings.HasPrefix(d.Name(), ".wh.") {
			t.Errorf("marker-named entry in the upper directory during a copy-up: %s", p)
		}
		return nil
	})
	close(g.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if names := workEntries(t, work); len(names) != 0 {
		t.Errorf("work directory after the copy-up: %q", names)
	}
	if st, err := os.Stat(filepath.Join(dir, "d/big")); err != nil || st.Size() != int64(len(data)) {
		t.Errorf("copied-up file: %v %v", st, err)
	}
	u.Close()
	if _, err := os.Lstat(work); !os.IsNotExist(err) {
		t.Errorf("work directory left after a clean close: %v", err)
	}

	// What a killed mount leaves in the work directory goes at the next open.
	if err := os.MkdirAll(filepath.Join(work, tmpPrefix+"1.2/sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{tmpPrefix + "1.1", tmpPrefix + "1.2/sub/f"} {
		if err := os.WriteFile(filepath.Join(work, p), []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc", filepath.Join(work, tmpPrefix+"1.3")); err != nil {
		t.Fatal(err)
	}
	u2, err := OpenUpper(UpperOptions{Dir: dir, Base: "sha256:base"})
	if err != nil {
		t.Fatal(err)
	}
	if names := workEntries(t, work); len(names) != 0 {
		t.Errorf("leftovers not reclaimed: %q", names)
	}
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Errorf("reclaiming followed a symlink: %v", err)
	}
	// One mount at a time uses a work directory.
	if _, err := OpenUpper(UpperOptions{Dir: dir, Base: "sha256:base"}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second open of a busy upper directory: %v", err)
	}
	u2.Close()
}

// TestUpperWorkInside: when the upper directory is a mount point (its parent on another mount, where
// rename(2) cannot reach), the work directory is inside it under a name the view and diff hide, and
// goes at a clean close.
func TestUpperWorkInside(t *testing.T) {
	t.Parallel()
	upNeedRoot(t)
	dir := filepath.Join(t.TempDir(), "upper")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=16m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	layers := layersOf(members{file("d/f", "lower"), file("d/g", "g")})
	v, u := upOpen(t, dir, layers)
	if _, err := os.Lstat(filepath.Join(filepath.Dir(dir), ".upper"+workSuffix)); !os.IsNotExist(err) {
		t.Errorf("work directory made on another mount: %v", err)
	}
	if names := workEntries(t, dir); !slices.Contains(names, workInName) {
		t.Errorf("no work directory inside: %q", names)
	}
	for _, st := range []string{"write d/f@0=upper", "mv d e", "touch n=new"} {
		if err := upDo(v, st); err != nil {
			t.Fatalf("%s: %v", st, err)
		}
	}
	if got := upPaths(upRender(t, v)); slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, "imgfs") }) {
		t.Errorf("the view shows the work directory: %q", got)
	}
	upCheckDisk(t, dir)
	u.Close()
	if names := workEntries(t, dir); slices.Contains(names, workInName) {
		t.Errorf("work directory left after a clean close: %q", names)
	}
}
