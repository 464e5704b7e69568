package evidence

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/tartest"
	"github.com/imgfs/imgfs/overlay"
)

func timelineMD5(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }

// bodyLine is one bodyfile line split into its 11 fields.
type bodyLine struct {
	md5, name, inode, mode string
	uid, gid, size         int64
	atime, mtime, ctime    int64
	crtime                 int64
}

func parseBodyfile(t *testing.T, body string) []bodyLine {
	t.Helper()
	var out []bodyLine
	for _, ln := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		f := strings.Split(ln, "|")
		if len(f) != 11 {
			t.Fatalf("%d fields: %q", len(f), ln)
		}
		var n [7]int64
		for i := range n {
			v, err := strconv.ParseInt(f[4+i], 10, 64)
			if err != nil {
				t.Fatalf("field %d of %q: %v", 5+i, ln, err)
			}
			n[i] = v
		}
		out = append(out, bodyLine{f[0], f[1], f[2], f[3], n[0], n[1], n[2], n[3], n[4], n[5], n[6]})
	}
	return out
}

func timelineHistory() []ispec.History {
	c1 := time.Date(2023, 6, 1, 12, 0, 0, 0, time.UTC)
	c2 := time.Date(2023, 6, 2, 12, 0, 0, 0, time.UTC)
	return []ispec.History{
		{Created: &c1, CreatedBy: "/bin/sh -c debootstrap | tee log"},
		{Created: &c2, CreatedBy: "ENV A=b", EmptyLayer: true},
		{Created: &c2, CreatedBy: "COPY changes /", Comment: "second"},
		{Created: &c2, CreatedBy: "RUN rm /etc/motd"},
	}
}

func TestTimelineDeletionFixture(t *testing.T) {
	for _, gz := range []map[int]bool{nil, {1: true}} {
		fx := newLayered(t, timelineHistory(), gz, deletionLayers(t)...)
		var buf bytes.Buffer
		st, err := WriteTimeline(context.Background(), &buf, fx.img, TimelineOptions{})
		if err != nil {
			t.Fatal(err)
		}
		lines := parseBodyfile(t, buf.String())
		byInode := map[string]bodyLine{}
		for _, l := range lines {
			byInode[l.inode] = l
		}
		want := map[string]bodyLine{
			"1-1":  {md5: "0", name: "/", mode: "d/drwxr-xr-x", mtime: fixT0.Unix()},
			"1-3":  {md5: timelineMD5("hello\n"), name: "/etc/motd (deleted)", mode: "r/rrw-r--r--", size: 6, atime: fixT0.Unix() + 3600, mtime: fixT0.Unix(), ctime: fixT0.Unix() + 7200},
			"1-4":  {md5: timelineMD5("root:x:0:0\n"), name: "/etc/passwd (deleted-realloc)", mode: "r/rrw-r--r--", size: 11, mtime: fixT0.Unix()},
			"1-5":  {md5: timelineMD5("root:x:0:0:again\n"), name: "/etc/passwd (deleted-realloc)", mode: "r/rrw-r--r--", size: 17, mtime: fixT0.Unix()},
			"1-8":  {md5: timelineMD5("v1"), name: "/usr/bin/tool (deleted-realloc)", mode: "r/rrwsr-xr-x", size: 2, mtime: fixT0.Unix()},
			"1-9":  {md5: timelineMD5("a"), name: "/usr/lib/x/a (deleted)", mode: "r/rrw-r--r--", size: 1, mtime: fixT0.Unix()},
			"1-10": {md5: timelineMD5("k1"), name: "/data/keep (deleted-realloc)", mode: "r/rrw-r--r--", size: 2, mtime: fixT0.Unix()},
			"1-11": {md5: timelineMD5("T"), name: "/links/target", mode: "r/rrw-r--r--", size: 1, mtime: fixT0.Unix()},
			"1-12": {md5: timelineMD5("T"), name: "/links/hl", mode: "r/rrw-r--r--", size: 1, mtime: fixT0.Unix()},
			"1-13": {md5: timelineMD5("o"), name: "/optdir/old (deleted)", mode: "r/rrw-r--r--", size: 1, mtime: fixT0.Unix()},
			"1-14": {md5: "0", name: "/bin -> usr/bin", mode: "l/lrwxrwxrwx", size: 7, mtime: fixT0.Unix()},
			"1-15": {md5: timelineMD5("d"), name: "/gone/deep/f (deleted)", mode: "r/rrw-r--r--", size: 1, mtime: fixT0.Unix()},
			"1-16": {md5: timelineMD5("odd"), name: "/pipe%7Cname^", mode: "r/rrw-r--r--", size: 3, mtime: fixT0.Unix()},
			"2-1":  {md5: timelineMD5("v1"), name: "/usr/bin/tool", mode: "r/rrwxr-xr-x", size: 2, mtime: fixT1.Unix()},
			"2-3":  {md5: timelineMD5(""), name: "/optdir/.wh..wh..opq (deleted)", mode: "w/rrw-r--r--", mtime: fixT0.Unix()},
			"2-5":  {md5: timelineMD5("T"), name: "/links/hl2", mode: "r/rrw-r--r--", size: 1, mtime: fixT0.Unix()},
			"2-6":  {md5: timelineMD5(""), name: "/data/.wh.keep (deleted)", mode: "w/rrw-r--r--", mtime: fixT0.Unix()},
			"3-1":  {md5: timelineMD5(""), name: "/etc/.wh.motd (deleted)", mode: "w/rrw-r--r--", mtime: fixT2.Unix()},
			"3-2":  {md5: timelineMD5("k3"), name: "/data/keep", mode: "r/rrw-r--r--", size: 2, mtime: fixT2.Unix()},
			"3-4":  {md5: timelineMD5("now a file"), name: "/usr/lib/x", mode: "r/rrw-r--r--", size: 10, mtime: fixT0.Unix()},
			"0-1": {md5: "0", name: "[image history 1/4, layer 1 " + string(fx.img.Desc.Layers[0].Digest) + "] /bin/sh -c debootstrap %7C tee log",
				mode: "v/v---------", mtime: 1685620800, crtime: 1685620800},
			"0-2": {md5: "0", name: "[image history 2/4, empty layer] ENV A=b", mode: "v/v---------", mtime: 1685707200, crtime: 1685707200},
			"0-3": {md5: "0", name: "[image history 3/4, layer 2 " + string(fx.img.Desc.Layers[1].Digest) + "] COPY changes / (comment: second)",
				mode: "v/v---------", mtime: 1685707200, crtime: 1685707200},
		}
		for inode, w := range want {
			w.inode = inode
			if got := byInode[inode]; got != w {
				t.Errorf("%s:\n got %+v\nwant %+v", inode, got, w)
			}
		}
		members := 0
		for _, raw := range fx.raw {
			members += countTarMembers(t, raw)
		}
		if st.Members != int64(members) || st.History != 4 || len(lines) != members+4 || st.Deleted != 8 || st.Realloc != 4 {
			t.Errorf("stats %+v, %d lines, %d members", st, len(lines), members)
		}
		checkLiveAgainstView(t, fx, lines)
	}
}

// countTarMembers counts the members of a tar with the index's own scan.
func countTarMembers(t *testing.T, raw []byte) int {
	l, err := index.Open(context.Background(), index.Blob{R: bytes.NewReader(raw), Size: int64(len(raw))}, index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	n := 0
	if err := l.Scan(context.Background(), func(*index.Member, io.Reader) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkLiveAgainstView checks the deletion marks of regular files against the merged view: a line is
// unmarked exactly when the view's file at its path is that member (same layer, same data offset).
func checkLiveAgainstView(t *testing.T, fx *layeredFixture, lines []bodyLine) {
	t.Helper()
	for j, l := range fx.img.Layers {
		n := 0
		err := l.Scan(context.Background(), func(m *index.Member, _ io.Reader) error {
			n++
			if m.Type != index.TypeRegular {
				return nil
			}
			var line bodyLine
			for _, x := range lines {
				if x.inode == strconv.Itoa(j+1)+"-"+strconv.Itoa(n) {
					line = x
				}
			}
			live := !strings.HasSuffix(line.name, ")")
			p, _ := index.CleanPath(m.Name)
			owner := false
			node := overlay.Root
			var a overlay.Attr
			var err error
			for _, c := range splitNorm(p) {
				if a, err = fx.img.View.Lookup(node, c); err != nil {
					break
				}
				node = a.Node
			}
			if err == nil && a.Layer == j && fx.img.Layers[j].Entry(index.ID(uint32(a.Node))).Offset == m.Offset {
				owner = true
			}
			if live != owner {
				t.Errorf("%s (layer %d member %d): line %q, view owner %v", m.Name, j+1, n, line.name, owner)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestTimelineNoMD5(t *testing.T) {
	fx := newLayered(t, nil, nil, deletionLayers(t)...)
	var with, without bytes.Buffer
	if _, err := WriteTimeline(context.Background(), &with, fx.img, TimelineOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteTimeline(context.Background(), &without, fx.img, TimelineOptions{NoMD5: true}); err != nil {
		t.Fatal(err)
	}
	a, b := parseBodyfile(t, with.String()), parseBodyfile(t, without.String())
	if len(a) != len(b) {
		t.Fatalf("%d and %d lines", len(a), len(b))
	}
	hashed := 0
	for i := range a {
		if b[i].md5 != "0" {
			t.Errorf("--no-md5 line %q has MD5 %s", b[i].name, b[i].md5)
		}
		if a[i].md5 != "0" {
			hashed++
		}
		a[i].md5, b[i].md5 = "", ""
		if a[i] != b[i] {
			t.Errorf("lines differ beyond the MD5: %+v / %+v", a[i], b[i])
		}
	}
	if hashed == 0 {
		t.Errorf("no line hashed")
	}
}

// TestTimelineMactime runs the Sleuth Kit's mactime over the bodyfile: it must read it and print the
// deleted file, its access time, and the history events at their dates.
func TestTimelineMactime(t *testing.T) {
	mactime, err := exec.LookPath("mactime")
	if err != nil {
		t.Fatalf("mactime (Debian package sleuthkit, installed by scripts/install-deps.sh): %v", err)
	}
	fx := newLayered(t, timelineHistory(), nil, deletionLayers(t)...)
	var buf bytes.Buffer
	if _, err := WriteTimeline(context.Background(), &buf, fx.img, TimelineOptions{}); err != nil {
		t.Fatal(err)
	}
	body := filepath.Join(t.TempDir(), "body.txt")
	if err := os.WriteFile(body, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(mactime, "-b", body, "-y", "-z", "UTC", "-d").Output()
	if err != nil {
		t.Fatalf("mactime: %v", err)
	}
	for _, want := range []string{
		`2024-01-01T00:00:00Z,6,m...,r/rrw-r--r--,0,0,1-3,"/etc/motd (deleted)"`,
		`2024-01-01T01:00:00Z,6,.a..,r/rrw-r--r--,0,0,1-3,"/etc/motd (deleted)"`,
		`2024-01-01T02:00:00Z,6,..c.,r/rrw-r--r--,0,0,1-3,"/etc/motd (deleted)"`,
		`2024-03-01T00:00:00Z,0,m...,w/rrw-r--r--,0,0,3-1,"/etc/.wh.motd (deleted)"`,
		`2024-03-01T00:00:00Z,2,m...,r/rrw-r--r--,0,0,3-2,"/data/keep"`,
		`2024-01-01T00:00:00Z,2,m...,r/rrw-r--r--,0,0,1-10,"/data/keep (deleted-realloc)"`,
		`2023-06-01T12:00:00Z,0,m..b,v/v---------,0,0,0-1,"[image history 1/4, layer 1 ` + string(fx.img.Desc.Layers[0].Digest) + `] /bin/sh -c debootstrap | tee log"`,
		`2023-06-02T12:00:00Z,0,m..b,v/v---------,0,0,0-4,"[image history 4/4, layer 3 ` + string(fx.img.Desc.Layers[2].Digest) + `] RUN rm /etc/motd"`,
	} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("mactime output lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("mactime output:\n%s", out)
	}
}

// TestTimelineDanglingHardlink: a hard link whose target no layer has is not in the merged view, so
// its line is marked deleted; a resolvable one is not; neither is AUFS metadata shown.
func TestTimelineDanglingHardlink(t *testing.T) {
	fx := newLayered(t, nil, nil, tartest.Tar(t, tartest.File("f", "x"), tartest.Hardlink("ok", "f"), tartest.Hardlink("dangling", "missing"),
		tartest.File(".wh..wh.plnk/1.2", "aufs")))
	var buf bytes.Buffer
	if _, err := WriteTimeline(context.Background(), &buf, fx.img, TimelineOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{timelineMD5("x") + "|/ok|1-2|", "0|/dangling (deleted)|1-3|", "|/.wh..wh.plnk/1.2 (deleted)|1-4|"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("timeline lacks %q:\n%s", want, buf.String())
		}
	}
}
