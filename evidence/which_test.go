package evidence

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/tartest"
)

func whichSHA256(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// eventsOf renders a report's events as "layer action[/reason]" strings.
func eventsOf(r *WhichReport) []string {
	var out []string
	for _, e := range r.Events {
		s := strings.Join([]string{string(rune('0' + e.Layer)), e.Action}, " ")
		if e.Reason != "" {
			s += "/" + e.Reason
		}
		out = append(out, s)
	}
	return out
}

func TestWhichDeletionFixture(t *testing.T) {
	for _, gz := range []map[int]bool{nil, {0: true, 2: true}} {
		fx := newLayered(t, nil, gz, deletionLayers(t)...)
		tests := []struct {
			path     string
			resolved string
			events   []string
			present  bool
			owner    int
			names    []string // member names as stored, per event
			sha      []string // content sha256 per event ("" for none)
		}{
			{"/etc/motd", "/etc/motd", []string{"1 added", "3 hidden/whiteout"}, false, 0,
				[]string{"./etc/motd", "etc/.wh.motd"}, []string{whichSHA256("hello\n"), whichSHA256("")}},
			{"etc/passwd", "/etc/passwd", []string{"1 added", "2 changed"}, true, 2,
				[]string{"./etc/passwd", "etc/passwd"}, []string{whichSHA256("root:x:0:0:again\n"), whichSHA256("root:x:0:0:two\n")}},
			{"/usr/bin/tool", "/usr/bin/tool", []string{"1 added", "2 changed"}, true, 2, nil, nil},
			{"/bin/tool", "/usr/bin/tool", []string{"1 added", "2 changed"}, true, 2, nil, nil},
			{"/data/keep", "/data/keep", []string{"1 added", "2 hidden/whiteout", "3 re-created"}, true, 3,
				[]string{"data/keep", "data/.wh.keep", "data/keep"}, []string{whichSHA256("k1"), whichSHA256(""), whichSHA256("k3")}},
			{"/optdir/old", "/optdir/old", []string{"1 added", "2 hidden/opaque-parent"}, false, 0,
				[]string{"optdir/old", "optdir/.wh..wh..opq"}, nil},
			{"/gone/deep/f", "/gone/deep/f", []string{"1 added", "3 hidden/parent-whiteout"}, false, 0,
				[]string{"gone/deep/f", ".wh.gone"}, nil},
			{"/usr/lib/x/a", "/usr/lib/x/a", []string{"1 added", "3 hidden/parent-replaced"}, false, 0,
				[]string{"usr/lib/x/a", "usr/lib/x"}, nil},
			{"/usr/lib/x", "/usr/lib/x", []string{"1 added", "3 changed"}, true, 3, []string{"", "usr/lib/x"}, nil},
			{"/links/hl", "/links/hl", []string{"1 added"}, true, 1, []string{"links/hl"}, []string{whichSHA256("T")}},
			{"/links/hl2", "/links/hl2", []string{"2 added"}, true, 1, []string{"links/hl2"}, []string{whichSHA256("T")}},
			{"/srv", "/srv", []string{"3 added"}, true, 0, []string{""}, nil},
			{"/bin", "/bin", []string{"1 added"}, true, 1, []string{"bin"}, nil},
			{"/", "/", []string{"1 added"}, true, 1, []string{"./"}, nil},
			{"/pipe|name\n", "/pipe|name\n", []string{"1 added"}, true, 1, nil, nil},
			{"/../etc/./motd", "/etc/motd", []string{"1 added", "3 hidden/whiteout"}, false, 0, nil, nil},
		}
		for _, tc := range tests {
			rep, err := Which(context.Background(), fx.img, tc.path)
			if err != nil {
				t.Fatalf("%s: %v", tc.path, err)
			}
			if rep.Resolved != tc.resolved || !slices.Equal(eventsOf(rep), tc.events) {
				t.Errorf("%s: resolved %s, events %q; want %s, %q", tc.path, rep.Resolved, eventsOf(rep), tc.resolved, tc.events)
				continue
			}
			if rep.Final.Present != tc.present || rep.Final.Layer != tc.owner {
				t.Errorf("%s: final %+v, want present %v layer %d", tc.path, rep.Final, tc.present, tc.owner)
			}
			for i, e := range rep.Events {
				if e.Digest != fx.img.Desc.Layers[e.Layer-1].Digest || e.DiffID != fx.img.Desc.Layers[e.Layer-1].DiffID {
					t.Errorf("%s: event %d digest %s", tc.path, i, e.Digest)
				}
				m := e.Member
				if m == nil {
					t.Errorf("%s: event %d has no member", tc.path, i)
					continue
				}
				if i < len(tc.names) && m.Name != tc.names[i] {
					t.Errorf("%s: event %d member %q, want %q", tc.path, i, m.Name, tc.names[i])
				}
				if i < len(tc.sha) && tc.sha[i] != "" && m.SHA256 != tc.sha[i] {
					t.Errorf("%s: event %d sha256 %s, want %s", tc.path, i, m.SHA256, tc.sha[i])
				}
				if !m.Implied {
					checkMemberOffsets(t, fx.raw[e.Layer-1], m)
				}
			}
		}
		// Details: modes, the symlink hop, hard-link names, the member stored twice.
		if rep, _ := Which(context.Background(), fx.img, "/../etc/./motd"); rep.Path != "/etc/motd" {
			t.Errorf("path %q asked as /../etc/./motd", rep.Path)
		}
		rep, _ := Which(context.Background(), fx.img, "/bin/tool")
		if len(rep.Symlinks) != 1 || rep.Symlinks[0] != (WhichSymlink{Path: "/bin", Target: "usr/bin"}) {
			t.Errorf("symlinks %+v", rep.Symlinks)
		}
		if rep.Events[0].Member.Mode != "4755" || rep.Events[1].Member.Mode != "0755" || rep.Final.Mode != "0755" {
			t.Errorf("modes %s %s %s", rep.Events[0].Member.Mode, rep.Events[1].Member.Mode, rep.Final.Mode)
		}
		rep, _ = Which(context.Background(), fx.img, "/links/target")
		if got := rep.Events[0].Member.HardlinkedAs; !slices.Equal(got, []string{"/links/hl"}) || rep.Final.Nlink != 3 {
			t.Errorf("hardlinked as %q, nlink %d", got, rep.Final.Nlink)
		}
		rep, _ = Which(context.Background(), fx.img, "/etc/passwd")
		if rep.Events[0].Member.Replaced != 1 || rep.Events[1].Member.Replaced != 0 {
			t.Errorf("replaced %d %d", rep.Events[0].Member.Replaced, rep.Events[1].Member.Replaced)
		}
		rep, _ = Which(context.Background(), fx.img, "/usr/lib/x")
		if !rep.Events[0].Member.Implied || rep.Events[0].Member.HeaderOffset != -1 {
			t.Errorf("implied parent: %+v", rep.Events[0].Member)
		}
		rep, _ = Which(context.Background(), fx.img, "/links/hl2")
		if m := rep.Events[0].Member; m.Type != "hardlink" || m.LinkTarget != "links/target" || m.Size != 1 {
			t.Errorf("cross-layer hard link: %+v", m)
		}
		if _, err := Which(context.Background(), fx.img, "/no/such"); !errors.Is(err, ErrNotInAnyLayer) {
			t.Errorf("absent path: %v", err)
		}
	}
}

// checkMemberOffsets proves a member's offsets against the raw layer tar: a tar reader started at the header
// offset reads the member's name, and the data offset holds its content.
func checkMemberOffsets(t *testing.T, raw []byte, m *WhichMember) {
	t.Helper()
	if m.HeaderOffset < 0 || m.DataOffset < m.HeaderOffset+512 {
		t.Errorf("%s: offsets %d %d", m.Path, m.HeaderOffset, m.DataOffset)
		return
	}
	h, err := tar.NewReader(bytes.NewReader(raw[m.HeaderOffset:])).Next()
	if err != nil || h.Name != m.Name {
		t.Errorf("%s: header at %d: %v, %v", m.Path, m.HeaderOffset, h, err)
	}
	if m.Type == "file" {
		sum := sha256.Sum256(raw[m.DataOffset : m.DataOffset+m.Size])
		if hex.EncodeToString(sum[:]) != m.SHA256 {
			t.Errorf("%s: data at %d does not hash to %s", m.Path, m.DataOffset, m.SHA256)
		}
	}
}

// TestWhichAgreesWithView checks, for every path of every layer, that the events end the way the
// merged view says: present exactly when the last event is not a hiding one, owned by its layer.
func TestWhichAgreesWithView(t *testing.T) {
	fx := newLayered(t, nil, nil, deletionLayers(t)...)
	for _, l := range fx.img.Layers {
		for id := index.ID(0); int(id) < l.Len(); id++ {
			p := l.Path(id)
			if strings.Contains("/"+p, "/.wh.") {
				continue
			}
			// Asked literally: no symlink in the way (bin is one, but nothing lies below it).
			rep, err := Which(context.Background(), fx.img, p)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			last := rep.Events[len(rep.Events)-1]
			if got := last.Action != ActionHidden; got != rep.Final.Present {
				t.Errorf("%s: events %q, final %+v", p, eventsOf(rep), rep.Final)
			}
			if rep.Final.Present && rep.Final.Layer != 0 && last.Member.Type != "dir" && last.Member.Type != "hardlink" && rep.Final.Layer != last.Layer {
				t.Errorf("%s: owner %d, last event in layer %d", p, rep.Final.Layer, last.Layer)
			}
		}
	}
}

// TestWhichOverlayStyleMarkers covers the overlayfs forms the union also reads: a directory made opaque
// by trusted.overlay.opaque=y, and a character device 0/0 as a whiteout; the timeline marks the device
// as a whiteout marker.
func TestWhichOverlayStyleMarkers(t *testing.T) {
	l1 := tartest.Tar(t, tartest.File("a/x", "x"), tartest.File("b/y", "y"))
	l2 := tartest.Tar(t,
		tartest.Member{Name: "a/", Type: tar.TypeDir, Xattrs: map[string]string{"trusted.overlay.opaque": "y"}},
		tartest.Member{Name: "b/y", Type: tar.TypeChar},
	)
	fx := newLayered(t, nil, nil, l1, l2)
	rep, err := Which(context.Background(), fx.img, "/a/x")
	if err != nil || !slices.Equal(eventsOf(rep), []string{"1 added", "2 hidden/opaque-parent"}) || rep.Events[1].Member != nil || rep.Final.Present {
		t.Errorf("/a/x: %v %q %+v", err, eventsOf(rep), rep.Final)
	}
	rep, err = Which(context.Background(), fx.img, "/b/y")
	if err != nil || !slices.Equal(eventsOf(rep), []string{"1 added", "2 hidden/whiteout"}) || rep.Events[1].Member.Type != "char" || rep.Final.Present {
		t.Errorf("/b/y: %v %q %+v", err, eventsOf(rep), rep.Final)
	}
	rep, err = Which(context.Background(), fx.img, "/a")
	if err != nil || !slices.Equal(eventsOf(rep), []string{"1 added", "2 changed"}) || rep.Events[0].Member.Opaque ||
		!rep.Events[0].Member.Implied || !rep.Events[1].Member.Opaque {
		t.Errorf("/a: %v %q", err, eventsOf(rep))
	}
	var buf bytes.Buffer
	if _, err := WriteTimeline(context.Background(), &buf, fx.img, TimelineOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"|/a/x (deleted)|1-", "|/b/y (deleted)|1-", "|/b/y (deleted)|2-2|w/c", "|/a|2-1|d/d"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("timeline lacks %q:\n%s", want, buf.String())
		}
	}
}

// TestWhichParentBecameSymlink covers a directory replaced by a symlink in a higher layer: the path
// resolves through the link, and the literal path's history (the file the link hid) is kept beside.
func TestWhichParentBecameSymlink(t *testing.T) {
	l1 := tartest.Tar(t, tartest.File("a/b", "old"))
	l2 := tartest.Tar(t, tartest.Symlink("a", "c"), tartest.File("c/b", "new"))
	fx := newLayered(t, nil, nil, l1, l2)
	rep, err := Which(context.Background(), fx.img, "/a/b")
	if err != nil {
		t.Fatal(err)
	}
	lit := &WhichReport{Events: rep.LiteralEvents}
	if rep.Resolved != "/c/b" || !slices.Equal(eventsOf(rep), []string{"2 added"}) || !rep.Final.Present || rep.Final.Layer != 2 ||
		!slices.Equal(eventsOf(lit), []string{"1 added", "2 hidden/parent-replaced"}) ||
		rep.LiteralEvents[0].Member.SHA256 != whichSHA256("old") || rep.LiteralEvents[1].Member.Type != "symlink" {
		t.Errorf("resolved %s, events %q, literal %q, final %+v", rep.Resolved, eventsOf(rep), eventsOf(lit), rep.Final)
	}
	// Only the literal path exists: still found.
	l3 := tartest.Tar(t, tartest.Whiteout("c", "b"))
	fx = newLayered(t, nil, nil, l1, l2, l3)
	rep, err = Which(context.Background(), fx.img, "/a/b")
	if err != nil || !slices.Equal(eventsOf(rep), []string{"2 added", "3 hidden/whiteout"}) || rep.Final.Present {
		t.Errorf("%v: events %q, final %+v", err, eventsOf(rep), rep.Final)
	}
}
