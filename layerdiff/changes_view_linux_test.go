package layerdiff

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/internal/tartest"
	"github.com/imgfs/imgfs/overlay"
	"golang.org/x/sys/unix"
)

// TestChangesAgreeWithView: the change set lists exactly what the view over the same upper directory
// shows differently from the lower view, also for hand-made ".wh." names (which the view neither shows
// nor takes as whiteouts). Sockets, which the view shows but a layer cannot hold, are listed as the commit
// writes them: a whiteout of the lower path they replace, nothing else.
func TestChangesAgreeWithView(t *testing.T) {
	t.Parallel()
	clRequireRoot(t)
	lowerMembers := []tartest.Member{tartest.File("etc/motd", "m"), tartest.File("etc/keep", "k"),
		tartest.File("srv/sock", "s")}
	lower, layers := clLower(t, lowerMembers)
	up := clUpper(t, clF("etc/.wh.motd", ""), clF("etc/.wh.new", "x"), clD("etc/.wh.dir"),
		clF("etc/.wh.dir/f", "f"), clEnt{path: "srv/sock", kind: 's'}, clEnt{path: "run/s", kind: 's'},
		clF(".wh.keep", ""))
	if err := unix.Lsetxattr(up, "trusted.imgfs.base", []byte("sha256:base"), 0); err != nil {
		t.Fatal(err)
	}
	got, err := Changes(context.Background(), lower, up)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, c := range got {
		lines = append(lines, c.String())
	}
	want := []string{"C /etc", "A /run", "C /srv", "D /srv/sock"}
	if !slices.Equal(lines, want) {
		t.Errorf("changes: %q, want %q", lines, want)
	}
	u, err := overlay.OpenUpper(overlay.UpperOptions{Dir: up, Base: "sha256:base", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	v, err := overlay.New(layers, overlay.Options{Upper: u})
	if err != nil {
		t.Fatal(err)
	}
	// Every path either view shows, and every change's path: the kinds must agree.
	paths := map[string]bool{}
	for _, w := range []*overlay.View{lower, v} {
		clWalkView(t, w, func(p string, _ overlay.Attr) { paths[strings.TrimSuffix("/"+strings.TrimPrefix(p, "/"), "/")] = true })
	}
	for _, c := range got {
		paths[c.Path] = true
	}
	exists := func(w *overlay.View, p string) bool {
		_, err := lookupPath(w, strings.TrimPrefix(p, "/"))
		if err != nil && !errors.Is(err, overlay.ErrNotExist) && !errors.Is(err, overlay.ErrNotDir) {
			t.Fatalf("lookup %s: %v", p, err)
		}
		return err == nil
	}
	sockets := map[string]bool{"/run/s": true, "/srv/sock": true}
	for p := range paths {
		inLow, inUp := exists(lower, p), exists(v, p)
		if sockets[p] {
			inUp = false // what the commit keeps of a socket
		}
		i := slices.IndexFunc(got, func(c Change) bool { return c.Path == p })
		switch {
		case inUp && !inLow && i < 0:
			t.Errorf("%s is new in the view but not listed as added", p)
		case !inUp && inLow && (i < 0 || got[i].Kind != Deleted):
			t.Errorf("%s is gone from the view but not listed as deleted", p)
		case i >= 0 && got[i].Kind == Added && !(inUp && !inLow):
			t.Errorf("%s listed as added: in the view %v, below %v", p, inUp, inLow)
		case i >= 0 && got[i].Kind == Changed && !(inUp && inLow):
			t.Errorf("%s listed as changed: in the view %v, below %v", p, inUp, inLow)
		}
	}
}
