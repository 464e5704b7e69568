package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// node is everything the tests compare about one path of a tree.
type node struct {
	Type     string
	Mode     uint32 // 07777 bits
	UID, GID uint32
	Size     int64 // regular files and symlinks
	Mtime    int64 // ns; directories excluded (see compareTrees)
	Rdev     uint64
	Link     string
	SHA256   string
	Xattrs   string
	Nlink    uint64 // regular files only
	linkSet  string // the sorted names sharing this file's inode
	ino      uint64
}

// walkTree stats every path below root without following symlinks.
func walkTree(t *testing.T, root string, withContent bool) map[string]*node {
	t.Helper()
	out := map[string]*node{}
	byIno := map[uint64][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		n := &node{Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, Mtime: st.Mtim.Nano(), ino: st.Ino}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			n.Type, n.Size, n.Nlink = "file", st.Size, uint64(st.Nlink)
			byIno[st.Ino] = append(byIno[st.Ino], rel)
			if withContent {
				n.SHA256 = fileSHA(t, p)
			}
		case unix.S_IFDIR:
			n.Type = "dir"
		case unix.S_IFLNK:
			n.Type, n.Size = "symlink", st.Size
			n.Link, _ = os.Readlink(p)
		case unix.S_IFCHR:
			n.Type, n.Rdev = "char", st.Rdev
		case unix.S_IFBLK:
			n.Type, n.Rdev = "block", st.Rdev
		case unix.S_IFIFO:
			n.Type = "fifo"
		case unix.S_IFSOCK:
			n.Type = "socket"
		}
		n.Xattrs = xattrs(t, p)
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	for _, names := range byIno {
		sort.Strings(names)
		for _, name := range names {
			out[name].linkSet = strings.Join(names, ",")
		}
	}
	return out
}

func fileSHA(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func xattrs(t *testing.T, p string) string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ENODATA) {
			return ""
		}
		t.Fatalf("listxattr %s: %v", p, err)
	}
	names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		if name == "" {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", p, name, err)
		}
		fmt.Fprintf(&b, "%s=%x;", name, v[:m])
	}
	return b.String()
}

// compareTrees fails for every difference between two trees. Directory mtimes are compared too unless
// skipDirMtime (a directory's mtime changes when extraction writes into it).
func compareTrees(t *testing.T, want, got map[string]*node, skipDirMtime bool) {
	t.Helper()
	var problems []string
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			problems = append(problems, "missing: "+p)
			continue
		}
		wc, gc := *w, *g
		wc.ino, gc.ino = 0, 0
		if skipDirMtime && w.Type == "dir" {
			wc.Mtime, gc.Mtime = 0, 0
		}
		if wc != gc {
			problems = append(problems, fmt.Sprintf("%s:\n    want %+v\n    got  %+v", p, wc, gc))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			problems = append(problems, "extra: "+p)
		}
	}
	sort.Strings(problems)
	for i, p := range problems {
		if i == 25 {
			t.Errorf("... and %d more differences", len(problems)-25)
			break
		}
		t.Error(p)
	}
}
