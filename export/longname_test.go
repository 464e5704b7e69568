package export

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/tartest"
	"github.com/imgfs/imgfs/overlay"
)

// longNameLayers holds names of 255, 256 and 65,535 bytes (one a directory with a child), a hardlink
// to a file behind a long name, and symlinks with targets of 4095, 4096 and 5000 bytes; a second
// layer whites out a 255-byte name (the whiteout's own name is 259 bytes).
func longNameLayers() (l []overlay.Layer, n255, n256, n64k string) {
	n255, n256, n64k = strings.Repeat("a", 255), strings.Repeat("b", 256), strings.Repeat("c", 65535)
	return layersOf(
		[]tartest.Member{
			tartest.File(n255, "ok"), tartest.File(n256, "hidden"), tartest.File(n64k, "hidden too"),
			tartest.Dir("d/" + n256), tartest.File("d/"+n256+"/f", "under a long name"),
			tartest.Hardlink("h", "d/"+n256+"/f"),
			tartest.Symlink("s4095", strings.Repeat("t", 4095)),
			tartest.Symlink("s4096", strings.Repeat("u", 4096)),
			tartest.Symlink("s5000", strings.Repeat("v", 5000)),
			tartest.File("gone-"+strings.Repeat("g", 250), "x"),
		},
		[]tartest.Member{tartest.Whiteout("", "gone-"+strings.Repeat("g", 250))},
	), n255, n256, n64k
}

// TestLongNames checks what the view shows of names over NAME_MAX (nothing: not listed, lookups give
// ErrNameTooLong, not exported) and of symlink targets of PATH_MAX bytes or more (listed, with their
// size, but Readlink gives ErrNameTooLong; exported verbatim).
func TestLongNames(t *testing.T) {
	t.Parallel()
	layers, n255, n256, n64k := longNameLayers()
	v, err := overlay.New(layers, overlay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := v.ReadDir(overlay.Root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range d.Len() {
		names = append(names, d.Entry(i).Name)
	}
	if want := []string{n255, "d", "h", "s4095", "s4096", "s5000"}; !slices.Equal(names, want) {
		t.Errorf("root lists %d names %.40q, want %.40q", len(names), names, want)
	}
	if a, err := v.Lookup(overlay.Root, n255); err != nil || a.Size != 2 {
		t.Errorf("lookup of the 255-byte name: %+v, %v", a, err)
	}
	for _, n := range []string{n256, n64k} {
		if _, err := v.Lookup(overlay.Root, n); !errors.Is(err, overlay.ErrNameTooLong) {
			t.Errorf("lookup of a %d-byte name: %v, want ErrNameTooLong", len(n), err)
		}
	}
	dd, _ := v.Lookup(overlay.Root, "d")
	if l, err := v.ReadDir(dd.Node); err != nil || l.Len() != 0 {
		t.Errorf("d lists %d entries (%v), want none", l.Len(), err)
	}
	if h, err := v.Lookup(overlay.Root, "h"); err != nil || h.Type != index.TypeRegular || h.Size != 17 {
		t.Errorf("hardlink to a file behind a long name: %+v, %v", h, err)
	}
	for _, tc := range []struct {
		name string
		size int64
		err  error
	}{{"s4095", 4095, nil}, {"s4096", 4096, overlay.ErrNameTooLong}, {"s5000", 5000, overlay.ErrNameTooLong}} {
		a, err := v.Lookup(overlay.Root, tc.name)
		if err != nil || a.Type != index.TypeSymlink || a.Size != tc.size {
			t.Errorf("%s: %+v, %v", tc.name, a, err)
			continue
		}
		target, err := v.Readlink(a.Node)
		if !errors.Is(err, tc.err) || (err == nil && len(target) != int(tc.size)) {
			t.Errorf("readlink %s: %d bytes, %v; want error %v", tc.name, len(target), err, tc.err)
		}
	}

	var out bytes.Buffer
	if _, err := Write(context.Background(), v, &out, Options{}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range tarRecs(t, out.Bytes()) {
		got = append(got, r.String())
	}
	joined := strings.Join(got, "\n")
	if strings.Contains(joined, n256) || strings.Contains(joined, "cccc") || !strings.Contains(joined, n255) ||
		!strings.Contains(joined, strings.Repeat("v", 5000)) || !strings.Contains(joined, strings.Repeat("u", 4096)) {
		t.Errorf("export:\n%.2000s", joined)
	}
}
