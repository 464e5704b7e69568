package index

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/internal/tartest"
)

// The builder is checked against a model of extraction: a map from paths to inodes where the last
// member wins, a hardlink binds its path to the inode its target has at that moment (or to a path of a
// lower layer), and replacing a directory by anything else removes its subtree.

var modelPaths = []string{"a", "a/b", "a/b/c", "b", "b/c", "c", "./a", "a/", "/a/b", "a/../c", "../x", ".",
	"a/./b", "b/../a/b", "d/e/f", "a/b/c/d"}

type modelInode struct {
	typ   Type
	mode  uint32
	body  string // regular files: the member's data
	link  string // symlinks: the target
	lower string // a hardlink into a lower layer: its path
}

type model struct {
	paths map[string]*modelInode
	lower map[string]*modelInode // inodes of lower layers, by path
	root  *modelInode
}

func (m *model) removeSubtree(p string) {
	for k := range m.paths {
		if strings.HasPrefix(k, p+"/") {
			delete(m.paths, k)
		}
	}
}

func (m *model) apply(typ byte, name, target string, mode uint32, body string) {
	pb, ok := cleanPath(nil, []byte(name))
	if !ok {
		return
	}
	p := string(pb)
	if p == "" {
		if typ == '5' {
			m.root = &modelInode{typ: TypeDir, mode: mode}
		}
		return
	}
	// Parents: implied directories; a non-directory in the way makes the member impossible to
	// extract, so it is dropped.
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		if in, ok := m.paths[p[:i]]; ok && in.typ != TypeDir {
			return
		}
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			if _, ok := m.paths[p[:i]]; !ok {
				m.paths[p[:i]] = &modelInode{typ: TypeDir, mode: 0o755}
			}
		}
	}
	var in *modelInode
	switch typ {
	case '0':
		in = &modelInode{typ: TypeRegular, mode: mode, body: body}
	case '5':
		in = &modelInode{typ: TypeDir, mode: mode}
	case '2':
		in = &modelInode{typ: TypeSymlink, mode: mode, link: target}
	case '6':
		in = &modelInode{typ: TypeFIFO, mode: mode}
	case '1':
		tb, ok := cleanPath(nil, []byte(target))
		if !ok || len(tb) == 0 {
			return
		}
		t := m.paths[string(tb)]
		switch {
		case t == nil:
			t = m.lower[string(tb)]
			if t == nil {
				t = &modelInode{lower: string(tb)}
				m.lower[string(tb)] = t
			}
		case t.typ == TypeDir:
			return
		}
		if m.paths[p] == t {
			return
		}
		in = t
	}
	if old, ok := m.paths[p]; ok && old.typ == TypeDir {
		if in.typ == TypeDir {
			old.mode = in.mode
			return
		}
		m.removeSubtree(p)
	}
	m.paths[p] = in
}

// describe lists every path with its kind, metadata, data and the first path sharing its inode.
func (m *model) describe() []string {
	var keys []string
	for k := range m.paths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	first := map[*modelInode]string{}
	out := []string{fmt.Sprintf("/ %o", m.root.mode)}
	for _, k := range keys {
		in := m.paths[k]
		if _, ok := first[in]; !ok {
			first[in] = k
		}
		if in.lower != "" {
			out = append(out, fmt.Sprintf("%s lower:%s same:%s", k, in.lower, first[in]))
			continue
		}
		out = append(out, fmt.Sprintf("%s %v %o %q %q same:%s", k, in.typ, in.mode, in.body, in.link, first[in]))
	}
	return out
}

// describeTable lists a table the way describe lists the model.
func describeTable(t *testing.T, l *Layer) []string {
	type row struct {
		path string
		id   ID
	}
	var rows []row
	for id := ID(1); int(id) < l.Len(); id++ {
		rows = append(rows, row{l.Path(id), id})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].path < rows[j].path })
	first := map[string]string{}
	out := []string{fmt.Sprintf("/ %o", l.Entry(0).Mode)}
	for _, r := range rows {
		id := r.id
		e := l.Entry(id)
		ident := fmt.Sprint(id)
		if e.Type == TypeHardlink {
			if e.Link == NoID {
				ident = "lower:" + l.LinkName(id)
			} else {
				id = e.Link
				ident = fmt.Sprint(id)
				e = l.Entry(id)
			}
		}
		if _, ok := first[ident]; !ok {
			first[ident] = r.path
		}
		if e.Type == TypeHardlink {
			out = append(out, fmt.Sprintf("%s %s same:%s", r.path, ident, first[ident]))
			continue
		}
		var body, link string
		if e.Type == TypeRegular {
			buf := make([]byte, 64)
			n, err := l.ReadAt(id, buf, 0)
			if err != nil && err != io.EOF {
				t.Fatalf("reading %s: %v", r.path, err)
			}
			body = string(buf[:n])
		}
		if e.Type == TypeSymlink {
			link = l.LinkName(id)
		}
		out = append(out, fmt.Sprintf("%s %v %o %q %q same:%s", r.path, e.Type, e.Mode, body, link, first[ident]))
	}
	return out
}

// programTar turns fuzz bytes into a layer: 3 bytes per member (kind, path, target/mode).
func programTar(prog []byte) ([]byte, *model) {
	m := &model{paths: map[string]*modelInode{}, lower: map[string]*modelInode{}, root: &modelInode{typ: TypeDir, mode: 0o755}}
	var data []byte
	kinds := []byte{'0', '5', '1', '2', '6', '0', '1'}
	for i := 0; i+3 <= len(prog) && i < 3*64; i += 3 {
		kind := kinds[int(prog[i])%len(kinds)]
		name := modelPaths[int(prog[i+1])%len(modelPaths)]
		target := modelPaths[int(prog[i+2])%len(modelPaths)]
		mode := uint32(0o600 + int(prog[i+2])%8)
		body := ""
		if kind == '0' {
			body = fmt.Sprintf("m%d", i/3)
		}
		link := ""
		if kind == '1' || kind == '2' {
			link = target
		}
		h := tartest.RawHeader(name, kind, int64(len(body)), link)
		copy(h[100:108], fmt.Sprintf("%07o\x00", mode))
		fixChecksum(h, false)
		data = append(data, h...)
		data = append(data, tartest.Pad([]byte(body))...)
		m.apply(kind, name, target, mode, body)
	}
	return append(data, tartest.End()...), m
}

func checkProgram(t *testing.T, prog []byte) {
	data, m := programTar(prog)
	l, err := Open(context.Background(), Blob{R: bytes.NewReader(data), Size: int64(len(data))}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	checkTable(t, l.Table)
	got, want := describeTable(t, l), m.describe()
	if !slices.Equal(got, want) {
		t.Fatalf("table:\n%s\nmodel:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestBuildModel(t *testing.T) {
	t.Parallel()
	progs := [][]byte{
		{0, 0, 0, 2, 3, 0, 0, 0, 1},                   // a; hardlink b -> a; a again
		{1, 0, 0, 0, 1, 0, 2, 3, 1, 0, 0, 0},          // dir a, a/b, hardlink b -> a/b, file a
		{0, 0, 0, 2, 3, 0, 2, 5, 3, 0, 0, 0, 0, 3, 0}, // chains through a replaced target
		{0, 0, 0, 0, 1, 0},                            // a file then a/b: a becomes a directory
		{2, 0, 14, 2, 3, 0, 0, 14, 0},                 // hardlink to a lower path, chained
		{1, 11, 1, 0, 10, 0, 2, 12, 1},                // root member, .., self-links
	}
	for i, p := range progs {
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkProgram(t, p) })
	}
}

// FuzzBuild checks the builder against the extraction model on generated member sequences.
func FuzzBuild(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, 3, 0, 0, 0, 1})
	f.Add([]byte{1, 0, 0, 0, 1, 0, 2, 3, 1, 0, 0, 0, 2, 5, 3, 6, 0, 0})
	f.Add([]byte{0, 2, 0, 2, 3, 2, 1, 0, 0, 2, 5, 3, 0, 3, 0, 2, 14, 5})
	f.Fuzz(func(t *testing.T, prog []byte) { checkProgram(t, prog) })
}
