package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/imgfs/imgfs/custody"
)

// runWrapped runs one wrapped command, whose action is act, with args.
func runWrapped(t *testing.T, act cli.ActionFunc, args ...string) error {
	t.Helper()
	app := &cli.App{Name: "imgfs", ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{withCustody(&cli.Command{Name: "probe", Flags: archiveFlags(), Action: act})}}
	return app.RunContext(context.Background(), append([]string{"imgfs", "probe"}, args...))
}

func TestWithCustody(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(dir, "img.tar")
	if err := os.WriteFile(archive, []byte("archive bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "custody.jsonl")
	cache := filepath.Join(dir, "cache")
	failing := errors.New("layer 2 does not match")
	calls, mode := 0, ""
	act := func(c *cli.Context) error {
		calls++
		custodyOf(c).Note("answer", 42)
		switch mode {
		case "fail":
			return failing
		case "skip":
			custodyOf(c).Skip()
		}
		return nil
	}
	// Without --custody nothing is written and custodyOf is nil (its methods do nothing).
	if err := runWrapped(t, act, "--cache-dir", cache, archive); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(log); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a log without --custody: %v", err)
	}
	for _, m := range []string{"", "fail", "skip"} {
		mode = m
		if err := runWrapped(t, act, "--cache-dir", cache, "--custody", log, archive); (err != nil) != (m == "fail") {
			t.Fatalf("run %q: %v", m, err)
		}
	}
	rep, err := custody.Verify(log)
	if err != nil || rep.Records != 2 {
		t.Fatalf("log: %+v %v (want 2 records: ok, error; the skipped run records nothing)", rep, err)
	}
	b, _ := os.ReadFile(log)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	r1, _ := custody.Parse([]byte(lines[0]))
	r2, _ := custody.Parse([]byte(lines[1]))
	sum := sha256.Sum256([]byte("archive bytes"))
	if r1.Action != "probe" || r1.Result != custody.ResultOK || r1.Details["answer"] != float64(42) ||
		r1.Archive == nil || r1.Archive.SHA256 != hex.EncodeToString(sum[:]) || r1.Archive.Path != archive {
		t.Errorf("record 1: %+v", r1)
	}
	if r2.Result != custody.ResultError || r2.Error != failing.Error() {
		t.Errorf("record 2: %+v", r2)
	}

	// A damaged log is refused before the action runs.
	os.WriteFile(log, append(b, `{"seq":3`...), 0o644)
	before := calls
	err = runWrapped(t, act, "--cache-dir", cache, "--custody", log, archive)
	if err == nil || calls != before || !strings.Contains(err.Error(), "record 3") {
		t.Fatalf("damaged log: err %v, action ran %d more times", err, calls-before)
	}
}

func TestCustodyLogOutsideArchive(t *testing.T) {
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	os.MkdirAll(filepath.Join(layout, "blobs"), 0o755)
	file := filepath.Join(dir, "img.tar")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct {
		log, archive string
		ok           bool
	}{
		{filepath.Join(dir, "log"), layout, true},
		{filepath.Join(dir, "log"), file, true},
		{filepath.Join(layout, "log"), layout, false},
		{filepath.Join(layout, "blobs", "log"), layout, false},
		{file, file, false},
		{filepath.Join(dir, "layout-log"), layout, true},
	} {
		if err := checkLogOutside(tc.log, tc.archive); (err == nil) != tc.ok {
			t.Errorf("log %s, archive %s: %v", tc.log, tc.archive, err)
		}
	}
}
