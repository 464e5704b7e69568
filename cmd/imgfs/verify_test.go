package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/verify"
)

// TestVerifyOutput: a result that does not hold names the blob, its place, who claims it and the broken
// claim with both values; the JSON form is one object per line, then a summary.
func TestVerifyOutput(t *testing.T) {
	bad := verify.Result{Kind: "layer", Layer: 2, Digest: "sha256:aa", Where: "x.tar: member l/layer.tar at offset 1536",
		ClaimedBy: "manifest.json", Verdict: verify.Mismatch, Checks: []verify.Check{
			{Claim: "size", Expected: "", Actual: "10", OK: true},
			{Claim: "digest", Expected: "sha256:aa", Actual: "sha256:bb", OK: false},
		}}
	line := verifyLine(bad)
	for _, want := range []string{"MISMATCH", "layer 2", "sha256:aa", "digest BROKEN: expected sha256:aa, actual sha256:bb",
		"at x.tar: member l/layer.tar at offset 1536", "claimed by manifest.json", "size 10"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	good := verify.Result{Kind: "config", Digest: "sha256:cc", Verdict: verify.OK, Checks: []verify.Check{{Claim: "digest", Expected: "sha256:cc", Actual: "sha256:cc", OK: true}}}
	if line := verifyLine(good); line != "OK       config   sha256:cc: digest ok" {
		t.Errorf("ok line %q", line)
	}
	arc := verify.Result{Kind: "archive", Where: "x.tar", Verdict: verify.Error, Error: "archive x.tar: index.json: bad"}
	if line := verifyLine(arc); line != "ERROR    archive; archive x.tar: index.json: bad" {
		t.Errorf("archive error line %q", line)
	}
	var buf bytes.Buffer
	rep := &verify.Report{Archive: "x.tar", Results: []verify.Result{good, bad}, Failed: 1}
	if err := printVerifyJSON(&buf, rep); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d JSON lines:\n%s", len(lines), buf.String())
	}
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[2]), &last); err != nil || last["kind"] != "summary" || last["ok"] != false || last["failed"] != 1.0 {
		t.Errorf("summary %s (%v)", lines[2], err)
	}
}
