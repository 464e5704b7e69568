package depcheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Test knobs are options (a field of the Options the code takes, or an unexported field a test of the
// package sets), never package variables: a test that sets a package variable changes it for every
// test of the package at once, and so none of them can call t.Parallel.

// knobAssignments returns, for the Go package in dir, every place where one of its test files assigns
// to a package-level variable that its non-test files declare (or to a field or element of one), as
// "file:line: name".
func knobAssignments(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	vars := map[string]bool{}
	var tests []*ast.File
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, "_test.go") {
			if !strings.HasSuffix(f.Name.Name, "_test") { // an external test cannot reach unexported variables
				tests = append(tests, f)
			}
			continue
		}
		for _, d := range f.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.VAR {
				for _, s := range g.Specs {
					for _, n := range s.(*ast.ValueSpec).Names {
						if n.Name != "_" {
							vars[n.Name] = true
						}
					}
				}
			}
		}
	}
	var out []string
	report := func(x ast.Expr) {
		for {
			switch e := x.(type) {
			case *ast.SelectorExpr:
				x = e.X
				continue
			case *ast.IndexExpr:
				x = e.X
				continue
			case *ast.StarExpr:
				x = e.X
				continue
			case *ast.ParenExpr:
				x = e.X
				continue
			}
			break
		}
		// The parser resolves names declared in the same file (locals, the test file's own variables);
		// a name it leaves unresolved is declared elsewhere in the package.
		if id, ok := x.(*ast.Ident); ok && id.Obj == nil && vars[id.Name] {
			p := fset.Position(id.Pos())
			out = append(out, filepath.Base(p.Filename)+":"+strconv.Itoa(p.Line)+": "+id.Name)
		}
	}
	for _, f := range tests {
		ast.Inspect(f, func(n ast.Node) bool {
			switch s := n.(type) {
			case *ast.AssignStmt:
				if s.Tok != token.DEFINE {
					for _, l := range s.Lhs {
						report(l)
					}
				}
			case *ast.IncDecStmt:
				report(s.X)
			}
			return true
		})
	}
	slices.Sort(out)
	return out
}

// TestNoTestKnobs fails for every package variable of the module that a test sets.
func TestNoTestKnobs(t *testing.T) {
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if n := d.Name(); p != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "bin") {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(root, p)
		for _, a := range knobAssignments(t, p) {
			t.Errorf("%s/%s: a test sets a package variable; make it an option of what it configures", rel, a)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestKnobCheckReports holds the check to a fixture package whose test sets four package variables
// (and some variables of its own), so that TestNoTestKnobs passing means something.
func TestKnobCheckReports(t *testing.T) {
	got := knobAssignments(t, filepath.Join("testdata", "knobs"))
	want := []string{"knobs_test.go:8: hook", "knobs_test.go:9: size", "knobs_test.go:10: cache", "knobs_test.go:11: conf"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("reported %q, want %q", got, want)
	}
}
