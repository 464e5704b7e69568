package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestVersion builds imgfs from a clean clone of this source tree, as `go install` and CI do, and checks
// that --version and inspect --json name the module version, the commit and the Go version from the
// build info (not "dev"); and that the binary under test says where it came from too.
func TestVersion(t *testing.T) {
	requireTool(t, "git")
	src, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	run := func(dir string, env []string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
		out, err := cmd.Output()
		if err != nil {
			stderr := ""
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr)
		}
		return strings.TrimSpace(string(out))
	}
	head := run(src, nil, "git", "rev-parse", "HEAD")
	clone := filepath.Join(t.TempDir(), "imgfs")
	run("", nil, "git", "clone", "-q", "--no-hardlinks", src, clone)
	bin := filepath.Join(t.TempDir(), "imgfs")
	run(clone, []string{"GOFLAGS=-buildvcs=true", "CGO_ENABLED=0"}, "go", "build", "-o", bin, "./cmd/imgfs")

	out := run("", nil, bin, "--version")
	// Go stamps the module version from the commit: a tag, or a pseudo-version v0.0.0-<time>-<commit>.
	if !strings.HasPrefix(out, "imgfs version v") {
		t.Errorf("--version = %q, want a module version (vX...)", out)
	}
	for _, want := range []string{" revision " + head + " of ", runtime.Version()} {
		if !strings.Contains(out, want) {
			t.Errorf("--version = %q, want it to contain %q", out, want)
		}
	}
	if strings.Contains(out, "modified") || strings.Contains(out, " dev") {
		t.Errorf("--version = %q: a clean clone is not modified, and the version is not dev", out)
	}

	_, archive := writeSample(t, "sample.tar")
	js := run("", nil, bin, "inspect", "--json", "--no-index", "--cache-dir", t.TempDir(), archive)
	var in struct {
		ImgfsVersion struct {
			Version, Revision, GoVersion string
			Modified                     bool
		} `json:"imgfsVersion"`
	}
	if err := json.Unmarshal([]byte(js), &in); err != nil {
		t.Fatalf("inspect --json: %v", err)
	}
	if v := in.ImgfsVersion; v.Revision != head || !strings.HasPrefix(v.Version, "v") || v.GoVersion != runtime.Version() || v.Modified {
		t.Errorf("inspect --json imgfsVersion = %+v, want revision %s of a clean build with a module version with %s", v, head, runtime.Version())
	}

	// verify --json's summary (its last line) says the same.
	js = strings.TrimSpace(run("", nil, bin, "verify", "--json", "-q", "--cache-dir", t.TempDir(), archive))
	if err := json.Unmarshal([]byte(js[strings.LastIndex(js, "\n")+1:]), &in); err != nil {
		t.Fatalf("verify --json: %v", err)
	}
	if v := in.ImgfsVersion; v.Revision != head || v.GoVersion != runtime.Version() {
		t.Errorf("verify --json imgfsVersion = %+v, want revision %s with %s", v, head, runtime.Version())
	}

	// The binary under test (make build) names a commit too, stamped by Go or by the Makefile.
	if out := run("", nil, imgfsBin, "--version"); !strings.Contains(out, " revision ") {
		t.Errorf("%s --version = %q: no revision (build it with make build)", imgfsBin, out)
	}
}
