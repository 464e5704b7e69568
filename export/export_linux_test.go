package export

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/index"
)

// gnuTarExtract extracts tar stream data into a new directory with GNU tar, as root, keeping owners,
// modes, xattrs and devices; it skips the test when that is not possible here.
func gnuTarExtract(t testing.TB, data []byte) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("extracting owners, devices and trusted xattrs needs root")
	}
	tarBin, err := exec.LookPath("tar")
	if err != nil {
		t.Skip("no tar")
	}
	if out, err := exec.Command(tarBin, "--version").Output(); err != nil || !bytes.Contains(out, []byte("GNU tar")) {
		t.Skip("tar is not GNU tar")
	}
	dir := t.TempDir()
	cmd := exec.Command(tarBin, "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", "-", "-C", dir)
	cmd.Stdin = bytes.NewReader(data)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	return dir
}

// treeRecs lists an extracted tree depth first in bytewise order, like viewRecs: a name whose inode
// was met before gets first set to the name it was met by.
func treeRecs(t testing.TB, root string) []expRec {
	t.Helper()
	var out []expRec
	type ino struct{ dev, ino uint64 }
	seen := map[ino]string{}
	var walk func(dir, prefix string)
	walk = func(dir, prefix string) {
		ents, err := os.ReadDir(dir) // sorted by name, bytewise
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range ents {
			p := filepath.Join(dir, de.Name())
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				t.Fatal(err)
			}
			name := prefix + de.Name()
			var typ index.Type
			var link string
			var sum []byte
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFDIR:
				typ = index.TypeDir
				name += "/"
			case unix.S_IFREG:
				typ = index.TypeRegular
				f, err := os.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				h := sha256.New()
				_, err = io.Copy(h, f)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				sum = h.Sum(nil)
			case unix.S_IFLNK:
				typ = index.TypeSymlink
				if link, err = os.Readlink(p); err != nil {
					t.Fatal(err)
				}
			case unix.S_IFCHR:
				typ = index.TypeChar
			case unix.S_IFBLK:
				typ = index.TypeBlock
			case unix.S_IFIFO:
				typ = index.TypeFIFO
			default:
				t.Fatalf("%s: mode %o", p, st.Mode)
			}
			r := expRec{name: name, desc: expDesc(typ, st.Mode&0o7777, st.Uid, st.Gid, st.Size, st.Mtim.Sec,
				uint32(st.Mtim.Nsec), link, unix.Major(st.Rdev), unix.Minor(st.Rdev), lxattrs(t, p), sum)}
			if typ != index.TypeDir {
				k := ino{st.Dev, st.Ino}
				if f, ok := seen[k]; ok {
					r.first = f
				} else {
					seen[k] = name
				}
			}
			out = append(out, r)
			if typ == index.TypeDir {
				walk(p, name)
			}
		}
	}
	walk(root, "")
	return out
}

// lxattrs returns the extended attributes of path itself.
func lxattrs(t testing.TB, path string) map[string]string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(path, buf)
	if err != nil {
		t.Fatalf("listxattr %s: %v", path, err)
	}
	out := map[string]string{}
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		val := make([]byte, 64<<10)
		k, err := unix.Lgetxattr(path, name, val)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", path, name, err)
		}
		out[name] = string(val[:k])
	}
	return out
}

// TestExportGNUTar extracts an export with GNU tar and compares the tree with the view: paths, types,
// modes, owners, sizes, mtimes to the nanosecond, contents, link targets, xattrs, device numbers and
// hard link sets.
func TestExportGNUTar(t *testing.T) {
	t.Parallel()
	v := exportView(t, layersOf(exportTree()...))
	var out bytes.Buffer
	if _, err := Write(context.Background(), v, &out, Options{}); err != nil {
		t.Fatal(err)
	}
	dir := gnuTarExtract(t, out.Bytes())
	diffRecs(t, "extracted by GNU tar", viewRecs(t, v), treeRecs(t, dir))
}
