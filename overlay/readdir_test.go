package overlay

import (
	"fmt"
	"slices"
	"testing"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/tartest"
)

// flatLayers returns layers with a 100,000-entry directory "flat": layer 0 holds the files, layer 1
// (when layers > 1) whites out every 100th and adds 1,000 new ones, layer 2 (when layers > 2) replaces
// every 10th by a directory.
func flatLayers(nlayers int) []Layer {
	const n = 100_000
	var stacks []members
	l0 := make(members, 0, n)
	for i := range n {
		l0 = append(l0, tartest.File(fmt.Sprintf("flat/file-%07d", i), ""))
	}
	stacks = append(stacks, l0)
	if nlayers > 1 {
		var l1 members
		for i := 0; i < n; i += 100 {
			l1 = append(l1, tartest.Whiteout("flat", fmt.Sprintf("file-%07d", i)),
				tartest.File(fmt.Sprintf("flat/new-%07d", i), "n"))
		}
		stacks = append(stacks, l1)
	}
	if nlayers > 2 {
		var l2 members
		for i := 5; i < n; i += 10 {
			l2 = append(l2, tartest.Dir(fmt.Sprintf("flat/file-%07d", i)))
		}
		stacks = append(stacks, l2)
	}
	return layersOf(stacks...)
}

func TestReadDir100k(t *testing.T) {
	t.Parallel()
	v, err := New(flatLayers(3), Options{})
	if err != nil {
		t.Fatal(err)
	}
	flat, err := v.Lookup(Root, "flat")
	if err != nil {
		t.Fatal(err)
	}
	d, err := v.ReadDir(flat.Node)
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 100_000 {
		t.Fatalf("%d entries, want 100000 (99000 files + 1000 new)", d.Len())
	}
	names := make([]string, d.Len())
	dirs := 0
	for i := range names {
		e := d.Entry(i)
		names[i] = e.Name
		if e.Type == index.TypeDir {
			dirs++
			a, err := v.Lookup(flat.Node, e.Name)
			if err != nil || a.Node != e.Node {
				t.Fatalf("%s: lookup %v %v, readdir node %#x", e.Name, a.Node, err, e.Node)
			}
		}
	}
	if !slices.IsSorted(names) {
		t.Error("not sorted")
	}
	if dirs != 10_000 {
		t.Errorf("%d directories, want 10000", dirs)
	}
	if _, ok := slices.BinarySearch(names, "file-0000100"); ok {
		t.Error("whited-out file-0000100 listed")
	}
	if _, ok := slices.BinarySearch(names, "new-0000100"); !ok {
		t.Error("new-0000100 missing")
	}
}

func BenchmarkReadDir100k(b *testing.B) {
	for _, nl := range []int{1, 3} {
		b.Run(fmt.Sprintf("layers=%d", nl), func(b *testing.B) {
			v, err := New(flatLayers(nl), Options{})
			if err != nil {
				b.Fatal(err)
			}
			flat, err := v.Lookup(Root, "flat")
			if err != nil {
				b.Fatal(err)
			}
			d, _ := v.ReadDir(flat.Node)
			var nameBytes int64
			for i := 0; i < d.Len(); i++ {
				nameBytes += int64(len(d.Entry(i).Name))
			}
			b.SetBytes(nameBytes)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := v.ReadDir(flat.Node); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(d.Len()), "ns/entry")
		})
	}
}

func BenchmarkLookup100k(b *testing.B) {
	v, err := New(flatLayers(3), Options{})
	if err != nil {
		b.Fatal(err)
	}
	flat, err := v.Lookup(Root, "flat")
	if err != nil {
		b.Fatal(err)
	}
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("file-%07d", i*100+1) // never whited out (i%100 == 0)
	}
	b.SetBytes(int64(len(names[0])))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := v.Lookup(flat.Node, names[i%len(names)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkNewHardlinks measures New on 20,000 hard links into a lower layer and 20,000 within a layer,
// spread over 200 directories: New walks only the hard links.
func BenchmarkNewHardlinks(b *testing.B) {
	var l0, l1 members
	for i := range 20_000 {
		p := fmt.Sprintf("usr/d%03d/f%05d", i%200, i)
		l0 = append(l0, tartest.File(p, "x"), tartest.Hardlink(fmt.Sprintf("opt/d%03d/g%05d", i%200, i), p))
		l1 = append(l1, tartest.Hardlink(fmt.Sprintf("srv/d%03d/h%05d", i%200, i), p))
	}
	layers := layersOf(l0, l1)
	b.SetBytes(40_000)
	b.ReportAllocs()
	for b.Loop() {
		v, err := New(layers, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if a, err := lookupPath(v, "usr/d007/f00007"); err != nil || a.Nlink != 3 {
			b.Fatalf("%+v %v", a, err)
		}
	}
}

// BenchmarkDirAttr100k measures Attr of a directory of 100,000 files that one layer alone holds: its
// link count is counted from the layer's children on each call (as overlayfs reports it).
func BenchmarkDirAttr100k(b *testing.B) {
	v, err := New(flatLayers(1), Options{})
	if err != nil {
		b.Fatal(err)
	}
	flat, err := v.Lookup(Root, "flat")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Attr(flat.Node); err != nil {
			b.Fatal(err)
		}
	}
}
