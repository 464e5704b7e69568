package fs

import (
	"bytes"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// memMember is one member of a memLayer.
type memMember struct {
	path string
	typ  index.Type
	mode uint32
	data string // regular files: contents; symlinks and hard links: target
}

// memLayer is an in-memory index table holding the given members, numbered the way index numbers them
// (breadth first, children contiguous and sorted), so that a real overlay.View can be mounted without
// tar files.
type memLayer struct {
	entries  []index.Entry
	names    []string
	paths    []string
	links    []string
	data     []string
	first    []index.ID
	nkids    []int
	hardlink []index.ID
}

func newMemLayer(members ...memMember) *memLayer {
	byDir := map[string][]memMember{}
	kinds := map[string]memMember{"": {typ: index.TypeDir, mode: 0o755}}
	for _, m := range members {
		kinds[m.path] = m
		for p := m.path; p != ""; p = parentDir(p) {
			if _, ok := kinds[parentDir(p)]; !ok {
				kinds[parentDir(p)] = memMember{path: parentDir(p), typ: index.TypeDir, mode: 0o755}
			}
		}
	}
	for p, m := range kinds {
		if p != "" {
			byDir[parentDir(p)] = append(byDir[parentDir(p)], m)
		}
	}
	l := &memLayer{}
	add := func(m memMember, parent index.ID) index.ID {
		id := index.ID(len(l.entries))
		e := index.Entry{Parent: parent, Type: m.typ, Mode: m.mode, UID: 0, GID: 0, MtimeSec: fakeMtime, Link: index.NoID}
		if m.typ == index.TypeRegular {
			e.Size = int64(len(m.data))
		}
		l.entries = append(l.entries, e)
		l.names = append(l.names, path.Base(m.path))
		l.paths = append(l.paths, m.path)
		l.data = append(l.data, m.data)
		l.links = append(l.links, m.data)
		l.first = append(l.first, 0)
		l.nkids = append(l.nkids, 0)
		if m.typ == index.TypeHardlink {
			l.hardlink = append(l.hardlink, id)
		}
		return id
	}
	add(memMember{typ: index.TypeDir, mode: 0o755}, 0)
	l.names[0] = ""
	for queue := []index.ID{0}; len(queue) > 0; queue = queue[1:] {
		dir := queue[0]
		kids := byDir[l.paths[dir]]
		slices.SortFunc(kids, func(a, b memMember) int { return strings.Compare(a.path, b.path) })
		l.first[dir], l.nkids[dir] = index.ID(len(l.entries)), len(kids)
		for _, k := range kids {
			if id := add(k, dir); k.typ == index.TypeDir {
				queue = append(queue, id)
			}
		}
	}
	for _, id := range l.hardlink {
		if i := slices.Index(l.paths, l.links[id]); i >= 0 {
			l.entries[id].Link = index.ID(i)
		}
	}
	return l
}

func parentDir(p string) string {
	if d := path.Dir(p); d != "." {
		return d
	}
	return ""
}

func (l *memLayer) Len() int                                      { return len(l.entries) }
func (l *memLayer) Entry(id index.ID) index.Entry                 { return l.entries[id] }
func (l *memLayer) Name(id index.ID) string                       { return l.names[id] }
func (l *memLayer) LinkName(id index.ID) string                   { return l.links[id] }
func (l *memLayer) Path(id index.ID) string                       { return l.paths[id] }
func (l *memLayer) Xattrs(id index.ID) []index.Xattr              { return nil }
func (l *memLayer) Hardlinks() []index.ID                         { return l.hardlink }
func (l *memLayer) Children(dir index.ID) (index.ID, int)         { return l.first[dir], l.nkids[dir] }
func (l *memLayer) FileRange(id index.ID) (*os.File, int64, bool) { return nil, 0, false }

func (l *memLayer) Lookup(dir index.ID, name string) (index.ID, bool) {
	first, n := l.Children(dir)
	i, ok := slices.BinarySearchFunc(l.names[first:int(first)+n], name, strings.Compare)
	return first + index.ID(i), ok
}

func (l *memLayer) ReadAt(id index.ID, p []byte, off int64) (int, error) {
	return strings.NewReader(l.data[id]).ReadAt(p, off)
}

// TestMountOverlay serves a real union of two layers: what a container would see.
func TestMountOverlay(t *testing.T) {
	t.Parallel()
	lower := newMemLayer(
		memMember{"etc/passwd", index.TypeRegular, 0o644, "root:x:0:0\n"},
		memMember{"etc/shadow", index.TypeRegular, 0o600, "secret\n"},
		memMember{"bin/sh", index.TypeRegular, 0o755, "#!binary"},
		memMember{"bin/bash", index.TypeHardlink, 0, "bin/sh"},
		memMember{"tmp/old/file", index.TypeRegular, 0o644, "old"},
	)
	upper := newMemLayer(
		memMember{"etc/.wh.shadow", index.TypeRegular, 0o644, ""},
		memMember{"etc/hosts", index.TypeRegular, 0o644, "127.0.0.1 localhost\n"},
		memMember{"tmp/.wh..wh..opq", index.TypeRegular, 0o644, ""},
		memMember{"tmp/new", index.TypeSymlink, 0o777, "../etc/hosts"},
	)
	view, err := overlay.New([]overlay.Layer{lower, upper}, overlay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mnt, _ := mountFS(t, newFileSystem(view, Options{}))
	list := func(dir string) []string {
		t.Helper()
		f, err := os.Open(filepath.Join(mnt, dir))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		names, err := f.Readdirnames(-1)
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	for dir, want := range map[string][]string{
		"":    {"bin", "etc", "tmp"},
		"etc": {"hosts", "passwd"},
		"bin": {"bash", "sh"},
		"tmp": {"new"},
	} {
		if got := list(dir); !slices.Equal(got, want) {
			t.Errorf("ls /%s = %q, want %q", dir, got, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(mnt, "etc/shadow")); !os.IsNotExist(err) {
		t.Errorf("whited-out file: %v", err)
	}
	for name, want := range map[string]string{"etc/hosts": "127.0.0.1 localhost\n", "tmp/new": "127.0.0.1 localhost\n", "bin/bash": "#!binary"} {
		f, err := os.Open(filepath.Join(mnt, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(f)
		f.Close()
		if err != nil || !bytes.Equal(got, []byte(want)) {
			t.Errorf("%s = %q, %v", name, got, err)
		}
	}
	var sh, bash syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(mnt, "bin/sh"), &sh); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Lstat(filepath.Join(mnt, "bin/bash"), &bash); err != nil {
		t.Fatal(err)
	}
	if sh.Ino != bash.Ino || sh.Nlink != 2 || sh.Mode != syscall.S_IFREG|0o755 {
		t.Errorf("hard link: ino %d and %d, nlink %d, mode %o", sh.Ino, bash.Ino, sh.Nlink, sh.Mode)
	}
}
