package export

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// TestExportSkip: a regular file the caller names in Skip (the output being written) is left out
// with GNU tar's warning; nothing else is asked about or left out.
func TestExportSkip(t *testing.T) {
	t.Parallel()
	v := mustNew(t, members{file("a/out.tar", "partial"), file("a/keep", "k"), dir("out.tar")})
	var asked []string
	var out, logs bytes.Buffer
	_, err := Write(context.Background(), v, &out, Options{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Skip: func(name string) bool {
			asked = append(asked, name)
			return name == "a/out.tar" || name == "out.tar"
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range tarRecs(t, out.Bytes()) {
		names = append(names, r.name)
	}
	if want := []string{"a/", "a/keep", "out.tar/"}; !slices.Equal(names, want) {
		t.Errorf("members %q, want %q", names, want)
	}
	if want := []string{"a/keep", "a/out.tar"}; !slices.Equal(asked, want) {
		t.Errorf("asked about %q, want the regular files %q", asked, want)
	}
	if !strings.Contains(logs.String(), "file is the archive; not dumped") || !strings.Contains(logs.String(), "a/out.tar") {
		t.Errorf("no warning: %s", logs.String())
	}
}
