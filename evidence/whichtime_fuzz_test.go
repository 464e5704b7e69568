package evidence

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/tartest"
)

// FuzzTimelineWhich puts any tar the index accepts on top of a fixed lower layer and checks that the
// timeline is a well-formed bodyfile with one line per member (no name breaks a line or a field), and
// that which answers for every path of the fuzzed layer as the merged view does.
func FuzzTimelineWhich(f *testing.F) {
	for _, l := range deletionLayers(f) {
		f.Add(l)
	}
	f.Add(tartest.Tar(f, tartest.Whiteout("d", "x"), tartest.Opaque("o"), tartest.File("d/x/y", "z"),
		tartest.Symlink("s", "../../d"), tartest.File("n|a%m\te", ""), tartest.Hardlink("h", "o/f")))
	lower := tartest.Tar(f, tartest.File("d/x", "1"), tartest.File("o/f", "2"), tartest.Symlink("l", "d"),
		tartest.File("s/q", "3"))
	f.Fuzz(func(t *testing.T, data []byte) {
		top, err := index.Open(context.Background(), index.Blob{R: bytes.NewReader(data), Size: int64(len(data))}, index.Options{})
		if err != nil {
			return
		}
		// A sparse member can claim any size; hashing it is reading it. Keep the inputs small.
		var total int64
		for id := index.ID(0); int(id) < top.Len(); id++ {
			total += top.Entry(id).Size
		}
		top.Close()
		if total > 16<<20 {
			return
		}
		fx := newLayered(t, nil, nil, lower, data)
		var buf bytes.Buffer
		st, err := WriteTimeline(context.Background(), &buf, fx.img, TimelineOptions{})
		if err != nil {
			t.Fatalf("timeline: %v", err)
		}
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if int64(len(lines)) != st.Members {
			t.Fatalf("%d lines, %d members", len(lines), st.Members)
		}
		for _, ln := range lines {
			if strings.Count(ln, "|") != 10 || strings.ContainsFunc(ln, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("malformed line %q", ln)
			}
		}
		l := fx.img.Layers[1]
		for id := index.ID(0); int(id) < l.Len(); id++ {
			p := l.Path(id)
			if strings.Contains("/"+p, "/.wh.") || strings.ContainsAny(p, "\x00") {
				continue
			}
			rep, err := Which(context.Background(), fx.img, p)
			if err != nil && !errors.Is(err, ErrNotInAnyLayer) {
				t.Fatalf("which %q: %v", p, err)
			}
			if len(rep.Events) == 0 || rep.Resolved != rep.Path {
				continue // through a symlink: the events are about another path
			}
			last := rep.Events[len(rep.Events)-1]
			long := false
			for _, c := range strings.Split(p, "/") {
				long = long || len(c) > 255
			}
			if last.Member == nil || last.Member.Type == "hardlink" || long {
				continue // unresolvable links and names Linux cannot hold are absent from the view
			}
			if (last.Action != ActionHidden) != rep.Final.Present {
				t.Fatalf("which %q: events %q, final %+v", p, eventsOf(rep), rep.Final)
			}
		}
	})
}
