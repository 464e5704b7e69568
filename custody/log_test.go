package custody

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// writeLog appends n records to a new log and returns its path and lines.
func writeLog(t *testing.T, n int) (string, [][]byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "custody.jsonl")
	for i := range n {
		rec := &Record{Action: "mount", Time: time.Date(2026, 12, 4, 21, 0, i, 0, time.UTC),
			Archive: &Archive{Path: "/evidence/img.tar", Kind: "file", Identity: "dev=1 ino=2", SHA256: strings.Repeat("ab", 32)},
			Details: map[string]any{"mountpoint": "/mnt", "n": i}}
		if err := Append(path, rec); err != nil {
			t.Fatal(err)
		}
		if rec.Seq != int64(i+1) {
			t.Fatalf("record %d got seq %d", i+1, rec.Seq)
		}
	}
	return path, lines(t, path)
}

func lines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

func TestVerifyChain(t *testing.T) {
	_, ls := writeLog(t, 5)
	edit := func(i int, from, to string) func([][]byte) [][]byte {
		return func(l [][]byte) [][]byte {
			if !bytes.Contains(l[i], []byte(from)) {
				panic("no " + from)
			}
			l[i] = bytes.Replace(l[i], []byte(from), []byte(to), 1)
			return l
		}
	}
	// resealed edits record i and recomputes its own sum, as a careful forger would.
	resealed := func(i int) func([][]byte) [][]byte {
		return func(l [][]byte) [][]byte {
			r, err := Parse(bytes.TrimSuffix(l[i], []byte("\n")))
			if err != nil {
				panic(err)
			}
			r.Archive.SHA256 = strings.Repeat("cd", 32)
			line, err := seal(&r)
			if err != nil {
				panic(err)
			}
			l[i] = append(line, '\n')
			return l
		}
	}
	tests := []struct {
		name    string
		change  func([][]byte) [][]byte
		badLine int // 0: the chain holds
		reason  string
	}{
		{"intact", func(l [][]byte) [][]byte { return l }, 0, ""},
		{"empty", func([][]byte) [][]byte { return nil }, 0, ""},
		{"edited middle", edit(2, `"n":2`, `"n":7`), 3, "edited"},
		{"edited last", edit(4, `/evidence/img.tar`, `/evidence/img2.tar`), 5, "edited"},
		{"edited and resealed", resealed(1), 3, "record before was edited"},
		{"resealed last", resealed(4), 0, ""}, // undetectable without the head: see Report.Head
		{"removed first", func(l [][]byte) [][]byte { return l[1:] }, 1, "seq 2"},
		{"removed middle", func(l [][]byte) [][]byte { return append(l[:2:2], l[3:]...) }, 3, "removed"},
		{"swapped", func(l [][]byte) [][]byte { l[1], l[2] = l[2], l[1]; return l }, 2, "seq 3"},
		{"duplicated", func(l [][]byte) [][]byte { return append(l[:3:3], l[2:]...) }, 4, "seq 3 where 4"},
		{"truncated last", func(l [][]byte) [][]byte { l[4] = l[4][:len(l[4])-20]; return l }, 5, "truncated"},
		{"newline dropped", func(l [][]byte) [][]byte { l[4] = l[4][:len(l[4])-1]; return l }, 5, "truncated"},
		{"blank line", func(l [][]byte) [][]byte { return append(l[:2:2], append([][]byte{[]byte("\n")}, l[2:]...)...) }, 3, "does not end with its sum"},
		{"unknown field", edit(0, `"seq":1,`, `"seq":1,"x":1,`), 1, "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := make([][]byte, len(ls))
			for i := range ls {
				l[i] = bytes.Clone(ls[i])
			}
			data := bytes.Join(tt.change(l), nil)
			rep, err := VerifyReader(bytes.NewReader(data))
			if tt.badLine == 0 {
				if err != nil {
					t.Fatalf("chain should hold: %v", err)
				}
				if rep.Records != bytes.Count(data, []byte("\n")) {
					t.Fatalf("%d records reported", rep.Records)
				}
				return
			}
			var bad *BadRecordError
			if !errors.As(err, &bad) {
				t.Fatalf("want a BadRecordError, got %v", err)
			}
			if bad.Line != tt.badLine || !strings.Contains(bad.Reason, tt.reason) {
				t.Fatalf("got %q, want record %d with %q", err, tt.badLine, tt.reason)
			}
		})
	}
}

func TestVerifyHeadPinsTheEnd(t *testing.T) {
	path, ls := writeLog(t, 3)
	rep, err := Verify(path)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 3 || rep.Head != lineHash(bytes.TrimSuffix(ls[2], []byte("\n"))) {
		t.Fatalf("report %+v", rep)
	}
	// Dropping the last record keeps a valid chain, but its head is another.
	short, err := VerifyReader(bytes.NewReader(bytes.Join(ls[:2], nil)))
	if err != nil || short.Head == rep.Head || short.Records != 2 {
		t.Fatalf("shortened log: %+v, %v", short, err)
	}
}

func TestAppendFillsRecord(t *testing.T) {
	path, ls := writeLog(t, 2)
	r, err := Parse(bytes.TrimSuffix(ls[1], []byte("\n")))
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	switch {
	case r.Seq != 2 || r.Prev != lineHash(bytes.TrimSuffix(ls[0], []byte("\n"))):
		t.Errorf("seq %d prev %s", r.Seq, r.Prev)
	case r.Host != host || r.PID != os.Getpid() || !strings.Contains(r.User, fmt.Sprintf("(uid %d)", os.Getuid())):
		t.Errorf("who: %q %q %d", r.User, r.Host, r.PID)
	case len(r.Command) == 0 || r.Command[0] != os.Args[0]:
		t.Errorf("command %q", r.Command)
	case r.Time.Location() != time.UTC || r.Result != ResultOK:
		t.Errorf("time %v result %q", r.Time, r.Result)
	}
	if !bytes.HasPrefix(ls[0], []byte(`{"seq":1,"time":"2026-12-04T21:00:00Z",`)) {
		t.Errorf("line 1: %s", ls[0])
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("log mode: %v %v", st.Mode(), err)
	}
}

func TestAppendRefusesDamagedTail(t *testing.T) {
	for name, tail := range map[string]string{
		"cut short": `{"seq":3,"time":"2026`,
		"garbage":   "not a record\n",
		"edited":    "",
	} {
		t.Run(name, func(t *testing.T) {
			path, ls := writeLog(t, 2)
			data := bytes.Join(ls, nil)
			if name == "edited" {
				data = bytes.Replace(data, []byte(`"n":1`), []byte(`"n":9`), 1)
			}
			data = append(data, tail...)
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			err := Append(path, &Record{Action: "unmount"})
			if err == nil {
				t.Fatal("appended after a damaged last line")
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, data) {
				t.Fatal("the damaged log was changed")
			}
		})
	}
}

func TestAppendConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := Append(path, &Record{Action: "export", Details: map[string]any{"i": i}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	rep, err := Verify(path)
	if err != nil || rep.Records != 20 {
		t.Fatalf("%+v %v", rep, err)
	}
}

func TestAppendErrors(t *testing.T) {
	dir := t.TempDir()
	if err := Append(filepath.Join(dir, "log"), &Record{}); err == nil {
		t.Error("a record without an action was appended")
	}
	if err := Append(dir, &Record{Action: "x"}); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("appending to a directory: %v", err)
	}
	os.Symlink(filepath.Join(dir, "elsewhere"), filepath.Join(dir, "link"))
	if err := Append(filepath.Join(dir, "link"), &Record{Action: "x"}); err == nil {
		t.Error("appended through a symlink")
	}
	if _, err := Verify(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("verify of a missing log: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "log")
	for i := range 3 {
		if err := Append(path, &Record{Action: "verify", Error: fmt.Sprint(i), Details: map[string]any{"k": []int{i}}}); err != nil {
			f.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	f.Add(b)
	f.Add(bytes.SplitAfter(b, []byte("\n"))[0])
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"seq":1,"sum":"` + strings.Repeat("0", 64) + "\"}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := VerifyReader(bytes.NewReader(data))
		if err != nil {
			var bad *BadRecordError
			if !errors.As(err, &bad) || bad.Line < 1 || bad.Line > bytes.Count(data, []byte("\n"))+1 {
				t.Fatalf("error %v", err)
			}
			return
		}
		// A log that verifies: every line parses, and re-sealing a record gives its line back.
		if rep.Records != bytes.Count(data, []byte("\n")) || len(data) > 0 && data[len(data)-1] != '\n' {
			t.Fatalf("%d records in %q", rep.Records, data)
		}
		for _, line := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
			if len(data) == 0 {
				break
			}
			if _, err := Parse(line); err != nil {
				t.Fatalf("line of a valid log does not parse: %v", err)
			}
		}
	})
}
