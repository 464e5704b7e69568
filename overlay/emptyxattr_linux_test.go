package overlay

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// TestEmptyXattrsSkipped: an xattr with an empty value cannot travel in a tar (pax reads an empty
// record as a deletion, and Go's archive/tar, umoci and imgfs's mounts drop it), so commit and export
// leave it out with a warning instead of writing a record readers disagree on.
func TestEmptyXattrsSkipped(t *testing.T) {
	t.Parallel()
	layers := layersOf(members{file("f", "1")})
	dir := filepath.Join(upTempDir(t), "upper")
	v, u := upOpen(t, dir, layers)
	for _, st := range []string{"touch n=new", "setx n user.empty=", "setx n user.full=v"} {
		if err := upDo(v, st); err != nil {
			t.Fatalf("%s: %v", st, err)
		}
	}
	check := func(what string, b []byte, logs *bytes.Buffer) {
		t.Helper()
		tr := tar.NewReader(bytes.NewReader(b))
		found := false
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Name != "n" {
				continue
			}
			found = true
			if _, ok := h.PAXRecords["SCHILY.xattr.user.empty"]; ok {
				t.Errorf("%s: empty xattr written as a record", what)
			}
			if h.PAXRecords["SCHILY.xattr.user.full"] != "v" {
				t.Errorf("%s: records %q", what, h.PAXRecords)
			}
		}
		if !found {
			t.Fatalf("%s: no member n", what)
		}
		if !strings.Contains(logs.String(), "empty value") || !strings.Contains(logs.String(), "user.empty") {
			t.Errorf("%s: no warning: %s", what, logs)
		}
	}
	var exp, logs bytes.Buffer
	if _, err := ExportTar(context.Background(), v, &exp, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	check("export", exp.Bytes(), &logs)
	u.Close()
	lower, err := New(layers, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var layer bytes.Buffer
	logs.Reset()
	if err := CommitTar(context.Background(), &layer, lower, dir, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	check("commit layer", layer.Bytes(), &logs)
}
