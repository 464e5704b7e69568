package layerdiff

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/imgfs/imgfs/internal/tartest"
	"github.com/imgfs/imgfs/overlay"
	"golang.org/x/sys/unix"
)

// clT0 is the default modification time of everything in a hand-built upper directory.
var clT0 = time.Date(2024, 2, 1, 12, 0, 0, 123456789, time.UTC)

// clEnt is one entry of an upper directory built by hand, in the kernel overlayfs format.
type clEnt struct {
	path string // relative to the upper directory; "" for the directory itself (attributes only)
	// kind: 'f' file, 'd' directory, 'l' symlink to body, 'h' hard link to the upper path body,
	// 'p' FIFO, 'c' / 'b' device dev, 's' socket, 'w' whiteout (character device 0/0), 'W' whiteout of a
	// non-root user (empty file with user.overlay.whiteout, its directory marked), 'T' the same with
	// trusted.overlay.whiteout.
	kind     byte
	body     string
	mode     uint32 // 0: 0644 for files, 0755 for directories
	uid, gid int
	xattrs   map[string]string
	mtime    time.Time // zero: clT0
	dev      [2]uint32
}

func clF(p, body string) clEnt { return clEnt{path: p, kind: 'f', body: body} }
func clD(p string) clEnt       { return clEnt{path: p, kind: 'd'} }
func clW(p string) clEnt       { return clEnt{path: p, kind: 'w'} }
func clOpaque(p string) clEnt {
	return clEnt{path: p, kind: 'd', xattrs: map[string]string{"trusted.overlay.opaque": "y"}}
}

// clUpper builds an upper directory from ents, in order, as root. Missing parents are created; every
// modification time is set at the end, so that creating children does not change them.
func clUpper(t testing.TB, ents ...clEnt) string {
	t.Helper()
	dir := t.TempDir()
	mtimes := map[string]time.Time{}
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	markDir := func(d string, xs ...string) {
		for i := 0; i < len(xs); i += 2 {
			check(unix.Lsetxattr(d, xs[i], []byte(xs[i+1]), 0))
		}
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.path)
		check(os.MkdirAll(filepath.Dir(p), 0o755))
		mode := e.mode
		switch e.kind {
		case 'f', 'W', 'T':
			if mode == 0 {
				mode = 0o644
			}
			check(os.WriteFile(p, []byte(e.body), 0o600))
		case 'd':
			if mode == 0 {
				mode = 0o755
			}
			if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				t.Fatal(err)
			}
		case 'l':
			check(os.Symlink(e.body, p))
		case 'h':
			check(os.Link(filepath.Join(dir, e.body), p))
		case 'p':
			check(unix.Mkfifo(p, 0o600))
		case 'c', 'b', 'w', 's':
			typ := map[byte]uint32{'c': unix.S_IFCHR, 'b': unix.S_IFBLK, 'w': unix.S_IFCHR, 's': unix.S_IFSOCK}[e.kind]
			check(unix.Mknod(p, typ|0o600, int(unix.Mkdev(e.dev[0], e.dev[1]))))
		}
		switch e.kind {
		case 'W':
			check(unix.Lsetxattr(p, "user.overlay.whiteout", nil, 0))
			markDir(filepath.Dir(p), "user.overlay.whiteouts", "", "user.overlay.opaque", "x")
		case 'T':
			check(unix.Lsetxattr(p, "trusted.overlay.whiteout", nil, 0))
			markDir(filepath.Dir(p), "trusted.overlay.opaque", "x")
		}
		if e.kind != 'h' {
			check(os.Lchown(p, e.uid, e.gid))
			if e.kind != 'l' && mode != 0 {
				check(unix.Fchmodat(unix.AT_FDCWD, p, mode, 0))
			}
		}
		for k, v := range e.xattrs {
			check(unix.Lsetxattr(p, k, []byte(v), 0))
		}
		if !e.mtime.IsZero() {
			mtimes[p] = e.mtime
		}
	}
	check(filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mt, ok := mtimes[p]
		if !ok {
			mt = clT0
		}
		ts := []unix.Timespec{unix.NsecToTimespec(mt.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	}))
	return dir
}

// clRequireRoot skips tests that build upper directories: they need root (devices, trusted xattrs).
func clRequireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("building upper directories needs root")
	}
}

// clLower returns the view of fake layers, bottom first.
func clLower(t testing.TB, stacks ...[]tartest.Member) (*overlay.View, []overlay.Layer) {
	t.Helper()
	ls := layersOf(stacks...)
	v, err := overlay.New(ls, overlay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return v, ls
}

// clCase is one upper directory over a lower view, with its expected change set and layer.
type clCase struct {
	name    string
	lower   [][]tartest.Member
	upper   []clEnt
	changes []string // "C /etc"
	layer   []string // members, as clListing renders them
	// userxattr: mount the kernel oracle with overlayfs's user.overlay.* xattrs.
	userxattr bool
	// noKernel: the kernel cannot show this upper directory the way a layer can (sockets).
	// Names must not hold commas: the temporary directories named after them go into mount options.
	noKernel bool
}

var clTS = time.Date(2023, 5, 6, 7, 8, 9, 987654321, time.UTC)

var clCases = []clCase{
	{
		name:  "empty",
		lower: [][]tartest.Member{{tartest.File("etc/motd", "hello")}},
	},
	{
		name:    "add file",
		lower:   [][]tartest.Member{{tartest.Dir("etc"), tartest.File("etc/motd", "hello")}},
		upper:   []clEnt{clD("etc"), clF("etc/new", "new file")},
		changes: []string{"C /etc", "A /etc/new"},
		layer:   []string{"d etc/", "f etc/new"},
	},
	{
		name:    "change content",
		lower:   [][]tartest.Member{{tartest.Dir("etc"), tartest.File("etc/motd", "hello")}},
		upper:   []clEnt{clD("etc"), clF("etc/motd", "changed")},
		changes: []string{"C /etc", "C /etc/motd"},
		layer:   []string{"d etc/", "f etc/motd"},
	},
	{
		name:  "chmod only",
		lower: [][]tartest.Member{{tartest.Dir("etc"), tartest.File("etc/motd", "hello")}},
		upper: []clEnt{clD("etc"),
			{path: "etc/motd", kind: 'f', body: "hello", mode: 0o4711, uid: 7, gid: 8}},
		changes: []string{"C /etc", "C /etc/motd"},
		layer:   []string{"d etc/", "f etc/motd"},
	},
	{
		name:    "delete lower file",
		lower:   [][]tartest.Member{{tartest.Dir("etc"), tartest.File("etc/motd", "hello"), tartest.File("etc/keep", "k")}},
		upper:   []clEnt{clD("etc"), clW("etc/motd")},
		changes: []string{"C /etc", "D /etc/motd"},
		layer:   []string{"d etc/", "f etc/.wh.motd"},
	},
	{
		name: "delete lower dir",
		lower: [][]tartest.Member{
			{tartest.File("usr/share/doc/a", "a"), tartest.File("usr/share/doc/b/c", "c")},
			{tartest.File("usr/share/doc/d", "d"), tartest.File("usr/share/man", "m")},
		},
		upper:   []clEnt{clD("usr"), clD("usr/share"), clW("usr/share/doc")},
		changes: []string{"C /usr", "C /usr/share", "D /usr/share/doc"},
		layer:   []string{"d usr/", "d usr/share/", "f usr/share/.wh.doc"},
	},
	{
		name: "delete then recreate dir (opaque)",
		lower: [][]tartest.Member{{tartest.File("opt/app/a", "a"), tartest.File("opt/app/b", "b"),
			tartest.File("opt/app/sub/c", "c"), tartest.File("opt/other", "o")}},
		upper:   []clEnt{clD("opt"), clOpaque("opt/app"), clF("opt/app/b", "new b"), clF("opt/app/n", "n")},
		changes: []string{"C /opt", "C /opt/app", "D /opt/app/a", "C /opt/app/b", "A /opt/app/n", "D /opt/app/sub"},
		layer:   []string{"d opt/", "d opt/app/", "f opt/app/.wh..wh..opq", "f opt/app/b", "f opt/app/n"},
	},
	{
		// a/b needs no opaque marker of its own: a's already hides the lower a/b.
		name: "opaque dir with a lower dir inside",
		lower: [][]tartest.Member{{tartest.File("a/b/c", "c"), tartest.File("a/b/d", "d"),
			tartest.File("a/e", "e")}},
		upper: []clEnt{clOpaque("a"), clOpaque("a/b"), clF("a/b/c", "new c"),
			clW("a/e")}, // redundant below an opaque directory
		changes: []string{"C /a", "C /a/b", "C /a/b/c", "D /a/b/d", "D /a/e"},
		layer:   []string{"d a/", "f a/.wh..wh..opq", "d a/b/", "f a/b/c"},
	},
	{
		name:    "new dir (no opaque)",
		lower:   [][]tartest.Member{{tartest.File("etc/motd", "hello")}},
		upper:   []clEnt{clD("srv"), clF("srv/data/f", "f"), clOpaque("new")},
		changes: []string{"A /new", "A /srv", "A /srv/data", "A /srv/data/f"},
		layer:   []string{"d new/", "d srv/", "d srv/data/", "f srv/data/f"},
	},
	{
		name:    "rename",
		lower:   [][]tartest.Member{{tartest.File("etc/old", "content")}},
		upper:   []clEnt{clD("etc"), clW("etc/old"), clF("etc/new", "content")},
		changes: []string{"C /etc", "A /etc/new", "D /etc/old"},
		layer:   []string{"d etc/", "f etc/.wh.old", "f etc/new"},
	},
	{
		name:  "hardlinks in the upper directory",
		lower: [][]tartest.Member{{tartest.File("bin/a", "old")}},
		upper: []clEnt{clF("bin/a", "x"), {path: "bin/b", kind: 'h', body: "bin/a"},
			{path: "lib/c", kind: 'h', body: "bin/a"}, clF("lib/single", "s")},
		changes: []string{"C /bin", "C /bin/a", "A /bin/b", "A /lib", "A /lib/c", "A /lib/single"},
		layer:   []string{"d bin/", "f bin/a", "h bin/b => bin/a", "d lib/", "h lib/c => bin/a", "f lib/single"},
	},
	{
		name:  "hardlinked whiteouts",
		lower: [][]tartest.Member{{tartest.File("a", "a"), tartest.File("b", "b")}},
		upper: []clEnt{clW("a"), {path: "b", kind: 'h', body: "a"}, {path: "c", kind: 'h', body: "a"}},
		// Overlayfs may share one whiteout inode between several names.
		changes: []string{"D /a", "D /b"},
		layer:   []string{"f .wh.a", "f .wh.b"},
	},
	{
		name:  "symlinks",
		lower: [][]tartest.Member{{tartest.File("usr/lib/x", "x"), tartest.File("etc/motd", "m")}},
		upper: []clEnt{{path: "lib", kind: 'l', body: "usr/lib"},
			{path: "abs", kind: 'l', body: "/etc/passwd"},
			{path: "etc", kind: 'l', body: "/etc"}, // never followed: it is an entry like any other
			{path: "dots", kind: 'l', body: "../../../../x", mtime: clTS}},
		changes: []string{"A /abs", "A /dots", "C /etc", "A /lib"},
		layer:   []string{"l abs -> /etc/passwd", "l dots -> ../../../../x", "l etc -> /etc", "l lib -> usr/lib"},
	},
	{
		name:  "fifo and devices",
		lower: [][]tartest.Member{{tartest.Dir("dev")}},
		upper: []clEnt{
			{path: "dev/null", kind: 'c', dev: [2]uint32{1, 3}, mode: 0o666},
			{path: "dev/sda", kind: 'b', dev: [2]uint32{8, 0}, mode: 0o660, gid: 6},
			{path: "dev/big", kind: 'c', dev: [2]uint32{4095, 1048575}},
			{path: "run/fifo", kind: 'p', mode: 0o620}},
		changes: []string{"C /dev", "A /dev/big", "A /dev/null", "A /dev/sda", "A /run", "A /run/fifo"},
		layer:   []string{"d dev/", "c dev/big 4095,1048575", "c dev/null 1,3", "b dev/sda 8,0", "d run/", "p run/fifo"},
	},
	{
		name:  "xattrs",
		lower: [][]tartest.Member{{tartest.File("bin/ping", "p")}},
		upper: []clEnt{
			{path: "", xattrs: map[string]string{"user.imgfs.base": "sha256:abc", "trusted.imgfs.x": "y"}},
			{path: "bin", kind: 'd', xattrs: map[string]string{"user.dir": "d", "trusted.overlay.impure": "y"}},
			{path: "bin/ping", kind: 'f', body: "p", xattrs: map[string]string{
				"security.capability":    "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
				"user.empty":             "",
				"trusted.overlay.origin": "\x00\xfb",
				"trusted.something":      "t",
				"user.overlay.origin":    "z",
			}}},
		changes: []string{"C /bin", "C /bin/ping"},
		layer:   []string{"d bin/", "f bin/ping"},
	},
	{
		name:    "whiteout of a missing path is dropped",
		lower:   [][]tartest.Member{{tartest.File("etc/motd", "m")}},
		upper:   []clEnt{clD("etc"), clW("etc/ghost"), clW("ghost"), clD("new"), clW("new/ghost")},
		changes: []string{"C /etc", "A /new"},
		layer:   []string{"d etc/", "d new/"},
	},
	{
		name:  "non-root whiteouts",
		lower: [][]tartest.Member{{tartest.File("etc/a", "a"), tartest.File("etc/b", "b"), tartest.File("d/x", "x"), tartest.File("d/y", "y")}},
		upper: []clEnt{{path: "etc/a", kind: 'W'}, clF("etc/c", "c"),
			{path: "etc/notwh", kind: 'f'}, // an empty file without the xattr is a file
			{path: "d", kind: 'd', xattrs: map[string]string{"user.overlay.opaque": "y"}}, clF("d/x", "new")},
		changes:   []string{"C /d", "C /d/x", "D /d/y", "C /etc", "D /etc/a", "A /etc/c", "A /etc/notwh"},
		layer:     []string{"d d/", "f d/.wh..wh..opq", "f d/x", "d etc/", "f etc/.wh.a", "f etc/c", "f etc/notwh"},
		userxattr: true,
	},
	{
		name:    "trusted xattr whiteouts",
		lower:   [][]tartest.Member{{tartest.File("etc/a", "a"), tartest.File("etc/b", "b")}},
		upper:   []clEnt{{path: "etc/a", kind: 'T'}, {path: "etc/z", kind: 'T'}},
		changes: []string{"C /etc", "D /etc/a"},
		layer:   []string{"d etc/", "f etc/.wh.a"},
	},
	{
		name: "type changes",
		lower: [][]tartest.Member{{tartest.File("x/y", "y"), tartest.File("f", "f"),
			tartest.Symlink("lnk", "x"), tartest.File("o/p", "p")}},
		upper: []clEnt{clF("x", "file now"), clF("f/z", "z"),
			{path: "lnk", kind: 'd', xattrs: map[string]string{"trusted.overlay.opaque": "y"}}, clF("lnk/q", "q"),
			{path: "o", kind: 'p'}},
		changes: []string{"C /f", "A /f/z", "C /lnk", "A /lnk/q", "C /o", "C /x"},
		layer:   []string{"d f/", "f f/z", "d lnk/", "f lnk/q", "p o", "f x"},
	},
	{
		// Overlayfs always merges the root: an opaque xattr on it means nothing.
		name:    "opaque root is merged all the same",
		lower:   [][]tartest.Member{{tartest.File("a", "a"), tartest.File("b/c", "c"), tartest.File("b/d", "d")}},
		upper:   []clEnt{{path: "", xattrs: map[string]string{"trusted.overlay.opaque": "y"}}, clD("b"), clF("b/d", "new"), clF("n", "n")},
		changes: []string{"C /b", "C /b/d", "A /n"},
		layer:   []string{"d b/", "f b/d", "f n"},
	},
	{
		name:  "sockets are skipped",
		lower: [][]tartest.Member{{tartest.File("etc/motd", "m"), tartest.File("etc/x", "x")}},
		upper: []clEnt{{path: "etc/motd", kind: 's'}, {path: "run/s", kind: 's'}},
		// A socket that replaces a lower path deletes it from the layer's point of view.
		// The view hides sockets as whiteouts: so does the change set.
		changes:  []string{"C /etc", "D /etc/motd", "A /run"},
		layer:    []string{"d etc/", "f etc/.wh.motd", "d run/"},
		noKernel: true,
	},
	{
		// A writable View's temporaries (left by a crash) and AUFS metadata are not changes.
		name:  "metadata names are skipped",
		lower: [][]tartest.Member{{tartest.File("etc/motd", "m")}},
		upper: []clEnt{clD("etc"), clF("etc/.wh..wh..imgfs.12.3", "tmp"), clD(".wh..wh.plnk"),
			clF(".wh..wh.plnk/1", "x"), clF(".wh..wh..opq", ""), clW(".wh..wh.x")},
		changes: []string{"C /etc"},
		layer:   []string{"d etc/"},
		// The kernel shows these names as ordinary entries.
		noKernel: true,
	},
	{
		name:    "whiteouts come before their siblings",
		lower:   [][]tartest.Member{{tartest.File("d/a", "a"), tartest.File("d/z", "z"), tartest.File("d/.b", "b")}},
		upper:   []clEnt{clF("d/-", "-"), clF("d/.a", "a"), clW("d/z"), clW("d/.b"), clF("d/b/c", "c"), clW("d/a")},
		changes: []string{"C /d", "A /d/-", "A /d/.a", "D /d/.b", "D /d/a", "A /d/b", "A /d/b/c", "D /d/z"},
		layer: []string{"d d/", "f d/.wh..b", "f d/.wh.a", "f d/.wh.z", "f d/-", "f d/.a", "d d/b/",
			"f d/b/c"},
	},
	{
		name:  "odd names owners and times",
		lower: [][]tartest.Member{{tartest.Dir("d")}},
		upper: []clEnt{
			{path: "d/long-" + string(slices.Repeat([]byte("n"), 150)), kind: 'f', body: "l"},
			{path: "d/\xff\xfe name", kind: 'f', body: "bytes", uid: 70000, gid: 3000000, mtime: clTS},
			{path: "d/old", kind: 'f', mtime: time.Date(1960, 1, 1, 0, 0, 0, 5, time.UTC)},
			{path: "d/future", kind: 'f', mtime: time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC)},
		},
		changes: []string{"C /d", "A /d/future", "A /d/long-" + string(slices.Repeat([]byte("n"), 150)),
			"A /d/old", "A /d/\xff\xfe name"},
		layer: []string{"d d/", "f d/future", "f d/long-" + string(slices.Repeat([]byte("n"), 150)), "f d/old",
			"f d/\xff\xfe name"},
	},
}

func TestChanges(t *testing.T) {
	t.Parallel()
	clRequireRoot(t)
	for _, tc := range clCases {
		t.Run(tc.name, func(t *testing.T) {
			lower, _ := clLower(t, tc.lower...)
			up := clUpper(t, tc.upper...)
			got, err := Changes(context.Background(), lower, up)
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, c := range got {
				lines = append(lines, c.String())
			}
			if !slices.Equal(lines, tc.changes) {
				t.Errorf("changes:\n got %q\nwant %q", lines, tc.changes)
			}
		})
	}
}

func TestChangesWithoutLower(t *testing.T) {
	t.Parallel()
	clRequireRoot(t)
	up := clUpper(t, clF("etc/motd", "m"), clW("gone"), clOpaque("o"))
	got, err := Changes(context.Background(), nil, up)
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{{"/etc", Added}, {"/etc/motd", Added}, {"/o", Added}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestChangesRefusesRedirectedDirs(t *testing.T) {
	t.Parallel()
	clRequireRoot(t)
	lower, _ := clLower(t, []tartest.Member{tartest.File("a/x", "x")})
	up := clUpper(t, clW("a"), clEnt{path: "b", kind: 'd', xattrs: map[string]string{"trusted.overlay.redirect": "/a"}})
	if _, err := Changes(context.Background(), lower, up); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Changes: %v, want ErrUnsupported", err)
	}
	if _, err := Write(context.Background(), &clDiscard{}, lower, up, Options{}); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("WriteLayer: %v, want ErrUnsupported", err)
	}
}

func TestChangesErrors(t *testing.T) {
	t.Parallel()
	if _, err := Changes(context.Background(), nil, filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing dir: %v", err)
	}
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Changes(context.Background(), nil, f); err == nil {
		t.Error("a file as the upper directory: no error")
	}
	clRequireRoot(t)
	up := clUpper(t, clF("a/b", "b"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Changes(ctx, nil, up); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

// clDiscard is an io.Writer that keeps nothing.
type clDiscard struct{ n int64 }

func (d *clDiscard) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }

// TestChangeDirSwappedEntry replaces entries between the listing and their opening, the way a symlink
// swap attack would (CVE-2018-15664): nothing outside the upper directory may be read.
func TestChangeDirSwappedEntry(t *testing.T) {
	t.Parallel()
	clRequireRoot(t)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	up := clUpper(t, clF("f", "f"), clF("g", "g"), clD("d"), clF("d/x", "x"))
	root, err := openChangeRoot(up)
	if err != nil {
		t.Fatal(err)
	}
	defer root.close()
	ents, err := root.list(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*changeEntry{}
	for i := range ents {
		byName[ents[i].name] = &ents[i]
	}
	swap := func(name, target string) {
		t.Helper()
		p := filepath.Join(up, name)
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	swap("f", filepath.Join(outside, "secret"))
	swap("d", outside)
	if f, err := root.open(byName["f"]); err == nil {
		f.Close()
		t.Error("opened a file swapped for a symlink")
	}
	if d, err := root.sub(byName["d"]); err == nil {
		d.close()
		t.Error("opened a directory swapped for a symlink")
	}
	// The same file under another inode (replaced by rename) is refused too.
	if err := os.WriteFile(filepath.Join(up, "g.new"), []byte("G"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(up, "g.new"), filepath.Join(up, "g")); err != nil {
		t.Fatal(err)
	}
	if f, err := root.open(byName["g"]); err == nil {
		f.Close()
		t.Error("opened a file replaced after the listing")
	}
	// A symlink met by the walk is written as a symlink, never followed.
	var buf bytes.Buffer
	if _, err := Write(context.Background(), &buf, nil, up, Options{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"l d -> " + outside, "l f -> " + filepath.Join(outside, "secret"), "f g"}
	if got := clListing(t, buf.Bytes(), time.Unix(0, 0)); !slices.Equal(got, want) {
		t.Errorf("layer %q, want %q", got, want)
	}
}
