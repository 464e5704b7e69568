package depcheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/imgfs/imgfs"

// rule says what one package of the module may import. Paths are relative to the module.
type rule struct {
	// imports lists the module's packages it may import directly; any other import of the module's
	// packages is an arrow against the design.
	imports []string
	// deny lists import paths (a path also covers the packages under it) that must not appear among
	// its dependencies, direct or not.
	deny []string
	// denyImports lists paths it must not import directly (its dependencies may).
	denyImports []string
}

var (
	// Only cmd/imgfs talks to the user.
	cliOnly = []string{"github.com/urfave/cli", "golang.org/x/term"}
	// Only fs speaks FUSE.
	fuse = []string{"github.com/hanwen/go-fuse"}
	// internal/tartest and internal/fakelayer are test support; production code must not link them.
	testOnly = []string{"testing", module + "/internal/tartest", module + "/internal/fakelayer"}
)

func concat(lists ...[]string) []string { return slices.Concat(lists...) }

// rules is DESIGN.md's map: `cmd → fs → overlay → index → compression`, `cmd → archive → compression`,
// `cmd → imagewrite → archive`; only cmd wires an archive to an overlay. A package may import what lies
// further down its own chain (fs uses index's types, imagewrite index's and compression's), never across.
// Every package of the module must have a rule, so a new package is placed on the map deliberately.
var rules = map[string]rule{
	"compression/internal/flate": {deny: concat(cliOnly, fuse, testOnly)},
	// compression knows bytes of streams, not tar members, tables, unions, images or FUSE.
	"compression": {imports: []string{"compression/internal/flate", "internal/atomicfile", "internal/digests", "internal/kinderr"},
		deny: concat(cliOnly, fuse, testOnly, []string{module + "/index", module + "/overlay", module + "/archive",
			module + "/imagewrite", module + "/fs"})},
	// index must not know unions, images, FUSE or the writers.
	"index": {imports: []string{"compression", "internal/atomicfile", "internal/digests", "internal/posixacl"},
		deny: concat(cliOnly, fuse, testOnly, []string{module + "/overlay", module + "/archive",
			module + "/imagewrite", module + "/fs"})},
	// overlay "must not import go-fuse ... or parse manifests" (overlay/doc.go); it never sees an archive.
	"overlay": {imports: []string{"index", "internal/ovlfmt"},
		deny: concat(cliOnly, fuse, testOnly, []string{module + "/archive", module + "/imagewrite",
			module + "/fs", "github.com/opencontainers/image-spec"})},
	// export writes a view as a tar over the view's public API; it knows no archive, image or FUSE.
	"export": {imports: []string{"index", "overlay"},
		deny: concat(cliOnly, fuse, testOnly, []string{module + "/archive", module + "/imagewrite",
			module + "/fs", "github.com/opencontainers/image-spec"})},
	// layerdiff reads an upper directory over a view into a change set or a layer tar; no archive,
	// image or FUSE. It shares the tar note of export and the format reader of overlay.
	"layerdiff": {imports: []string{"export", "index", "internal/ovlfmt", "overlay"},
		deny: concat(cliOnly, fuse, testOnly, []string{module + "/archive", module + "/imagewrite",
			module + "/fs", "github.com/opencontainers/image-spec"})},
	// layertree stacks the examiner's tree (each layer, what whiteouts hid, the image's files) and the
	// provenance attributes on a view, over its public API and the layers' tables; no archive, FUSE or
	// manifest parsing (cmd hands it the bytes).
	"layertree": {imports: []string{"index", "internal/ovlfmt", "overlay"},
		deny: concat(cliOnly, fuse, testOnly, []string{module + "/archive", module + "/imagewrite",
			module + "/fs", "github.com/opencontainers/image-spec"})},
	// fs "must not hold union logic or touch tar" (fs/doc.go): it gets a view and never an archive.
	"fs": {imports: []string{"overlay", "index", "internal/posixacl"},
		deny:        concat(cliOnly, testOnly, []string{module + "/archive", module + "/imagewrite"}),
		denyImports: []string{"archive/tar"}},
	// archive "must not know inodes, FUSE or union rules" (archive/doc.go).
	"archive": {imports: []string{"compression", "internal/atomicfile", "internal/digests", "internal/kinderr"},
		deny: concat(cliOnly, fuse, testOnly, []string{module + "/overlay", module + "/fs", module + "/imagewrite"})},
	// registry fetches and pushes images; it must not know inodes, FUSE, unions or the writers.
	"registry": {imports: []string{"archive", "compression", "internal/atomicfile"},
		deny: concat(cliOnly, fuse, testOnly, []string{module + "/overlay", module + "/fs", module + "/imagewrite", module + "/index"})},
	// imagewrite "must not know FUSE, union rules or tar member semantics" (imagewrite/doc.go).
	"imagewrite": {imports: []string{"archive", "compression", "index", "internal/atomicfile", "internal/digests", "internal/kinderr"},
		deny: concat(cliOnly, fuse, testOnly, []string{module + "/overlay", module + "/fs"})},
	// verify proves an image's claims against its bytes (archive's blobs, index's proofs and records).
	"verify": {imports: []string{"archive", "compression", "index", "internal/digests", "internal/kinderr"},
		deny: concat(cliOnly, fuse, testOnly, []string{module + "/overlay", module + "/fs", module + "/imagewrite"})},
	// evidence reads layers and views for an examiner (which, timeline, hashes, image diff); no FUSE,
	// and it writes no image.
	"evidence": {imports: []string{"archive", "compression", "index", "internal/atomicfile", "internal/digests", "internal/ovlfmt", "overlay"},
		deny: concat(cliOnly, fuse, testOnly, []string{module + "/fs", module + "/imagewrite"})},
	// custody is the chain-of-custody log; it knows nothing of images.
	// cache lists and prunes the cache directory by its file names and records; it opens no table or stream.
	"cache": {imports: []string{"internal/atomicfile", "internal/digests"},
		deny: concat(cliOnly, fuse, testOnly, []string{module + "/archive", module + "/index", module + "/overlay",
			module + "/fs", module + "/imagewrite", module + "/compression"})},
	"custody": {imports: []string{"internal/atomicfile"},
		deny: concat(cliOnly, fuse, testOnly, []string{module + "/archive", module + "/index", module + "/overlay",
			module + "/fs", module + "/imagewrite"})},
	"cmd/imgfs": {imports: []string{"archive", "cache", "compression", "custody", "evidence", "export", "fs", "imagewrite", "index", "internal/atomicfile", "layerdiff", "layertree", "overlay", "registry", "verify"},
		deny: testOnly},

	// internal helpers import nothing of the module, except the demo image writer, which is built on
	// the test tar builder (and writes through atomicfile) and used only by `make demo` and tests.
	"internal/kinderr":         {deny: concat(cliOnly, fuse, testOnly)},
	"internal/atomicfile":      {deny: concat(cliOnly, fuse, testOnly)},
	"internal/digests":         {deny: concat(cliOnly, fuse, testOnly)},
	"internal/tartest":         {deny: concat(cliOnly, fuse)},
	"internal/sample":          {imports: []string{"internal/atomicfile", "internal/tartest"}, deny: concat(cliOnly, fuse)},
	"internal/sample/mksample": {imports: []string{"internal/sample"}, deny: concat(cliOnly, fuse)},
	"internal/depcheck":        {},
	"internal/ovlfmt":          {deny: concat(cliOnly, fuse, testOnly)},
	"internal/posixacl":        {deny: concat(cliOnly, fuse, testOnly)},
	"internal/fakelayer":       {imports: []string{"index", "internal/tartest"}, deny: concat(cliOnly, fuse)},

	// Stand-alone programs (a key ending in "/..." covers every package below it) and test-only
	// packages: nothing of the module.
	"bench/...":   {deny: concat(cliOnly, fuse, testOnly)},
	"integration": {},
}

// ruleFor returns the rule of package rel: its own, else that of the nearest "dir/..." above it.
func ruleFor(rules map[string]rule, rel string) (rule, bool) {
	if r, ok := rules[rel]; ok {
		return r, true
	}
	for dir := rel; strings.Contains(dir, "/"); {
		dir = dir[:strings.LastIndex(dir, "/")]
		if r, ok := rules[dir+"/..."]; ok {
			return r, true
		}
	}
	return rule{}, false
}

// pkg is one package of `go list -json`: its direct imports and all its dependencies (not tests').
type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
	Error      *struct{ Err string }
}

// check returns one line per violation of rules in graph, sorted.
func check(graph map[string]pkg, rules map[string]rule) []string {
	var bad []string
	for path, p := range graph {
		rel, ok := strings.CutPrefix(path, module+"/")
		if !ok {
			continue
		}
		r, ok := ruleFor(rules, rel)
		if !ok {
			bad = append(bad, rel+": no rule; add the package to rules in internal/depcheck (and to DESIGN.md)")
			continue
		}
		for _, imp := range p.Imports {
			irel, ok := strings.CutPrefix(imp, module+"/")
			if ok && !slices.Contains(r.imports, irel) {
				bad = append(bad, rel+" imports "+irel+", an arrow DESIGN.md does not allow")
			}
			for _, d := range r.denyImports {
				if imp == d || strings.HasPrefix(imp, d+"/") {
					bad = append(bad, rel+" imports "+imp+", which its rule denies")
				}
			}
		}
		for _, dep := range p.Deps {
			for _, d := range r.deny {
				if dep == d || strings.HasPrefix(dep, d+"/") {
					bad = append(bad, rel+" depends on "+dep+", which its rule denies")
				}
			}
		}
	}
	for rel := range rules {
		dir, wild := strings.CutSuffix(rel, "/...")
		found := false
		for path := range graph {
			if path == module+"/"+rel || wild && strings.HasPrefix(path, module+"/"+dir+"/") {
				found = true
				break
			}
		}
		if !found {
			bad = append(bad, rel+": rule for a package that does not exist")
		}
	}
	slices.Sort(bad)
	return bad
}

// loadGraph lists every package of the module with `go list`.
func loadGraph(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,Deps,Error", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, stderr.Bytes())
	}
	graph := map[string]pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		if p.Error != nil {
			t.Fatalf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		graph[p.ImportPath] = p
	}
	if len(graph) == 0 {
		t.Fatal("go list listed no packages")
	}
	return graph
}

func TestImportRules(t *testing.T) {
	for _, v := range check(loadGraph(t), rules) {
		t.Error(v)
	}
}

// TestCheckReports holds the checker to a fake graph with arrows against the rules, so that
// TestImportRules passing means something.
func TestCheckReports(t *testing.T) {
	m := func(rel string) string { return module + "/" + rel }
	graph := map[string]pkg{
		m("index"):       {ImportPath: m("index"), Imports: []string{"io", m("overlay")}, Deps: []string{"io", m("overlay")}},
		m("overlay"):     {ImportPath: m("overlay"), Imports: []string{m("index"), "github.com/hanwen/go-fuse/v2/fuse"}, Deps: []string{m("index"), "github.com/hanwen/go-fuse/v2/fuse"}},
		m("fs"):          {ImportPath: m("fs"), Imports: []string{"archive/tar", m("archive"), m("overlay")}, Deps: []string{"archive/tar", m("archive"), m("index"), m("overlay")}},
		m("archive"):     {ImportPath: m("archive"), Imports: []string{m("compression")}, Deps: []string{m("compression")}},
		m("compression"): {ImportPath: m("compression"), Imports: []string{"io"}, Deps: []string{"io"}},
		m("newpkg"):      {ImportPath: m("newpkg")},
		m("tools/a"):     {ImportPath: m("tools/a")},
		m("tools/b"):     {ImportPath: m("tools/b"), Imports: []string{m("fs")}, Deps: []string{m("fs")}},
	}
	rules := map[string]rule{
		"index":       rules["index"],
		"overlay":     rules["overlay"],
		"fs":          rules["fs"],
		"archive":     rules["archive"],
		"compression": rules["compression"],
		"gone":        {},
		"tools/...":   {},
		"none/...":    {},
	}
	want := []string{
		"fs depends on " + m("archive") + ", which its rule denies",
		"fs imports archive, an arrow DESIGN.md does not allow",
		"fs imports archive/tar, which its rule denies",
		"gone: rule for a package that does not exist",
		"index depends on " + m("overlay") + ", which its rule denies",
		"index imports overlay, an arrow DESIGN.md does not allow",
		"newpkg: no rule; add the package to rules in internal/depcheck (and to DESIGN.md)",
		"none/...: rule for a package that does not exist",
		"overlay depends on github.com/hanwen/go-fuse/v2/fuse, which its rule denies",
		"tools/b imports fs, an arrow DESIGN.md does not allow",
	}
	if got := check(graph, rules); !slices.Equal(got, want) {
		t.Errorf("check reported\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	// The clean part of the fake graph alone passes.
	delete(graph, m("newpkg"))
	delete(graph, m("fs"))
	graph[m("index")] = pkg{ImportPath: m("index"), Imports: []string{"io"}, Deps: []string{"io"}}
	graph[m("overlay")] = pkg{ImportPath: m("overlay"), Imports: []string{m("index")}, Deps: []string{m("index")}}
	delete(graph, m("tools/b"))
	delete(rules, "gone")
	delete(rules, "none/...")
	delete(rules, "fs")
	if got := check(graph, rules); len(got) != 0 {
		t.Errorf("check reported a clean graph: %q", got)
	}
}
