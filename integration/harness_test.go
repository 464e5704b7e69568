package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/internal/sample"
)

var (
	imgfsBin string // the binary under test
	cacheDir string // one index cache shared by the tests, as a user's would be
)

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	tmp, err := os.MkdirTemp("", "imgfs-integration-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	imgfsBin = os.Getenv("IMGFS_BIN")
	if imgfsBin == "" {
		imgfsBin = filepath.Join(tmp, "imgfs")
		_, file, _, _ := runtime.Caller(0)
		cmd := exec.Command("go", "build", "-o", imgfsBin, "./cmd/imgfs")
		cmd.Dir = filepath.Dir(filepath.Dir(file))
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("building imgfs: %v\n%s", err, out)
		}
	}
	cacheDir = filepath.Join(tmp, "cache")
	return m.Run(), nil
}

// inCI reports whether missing prerequisites must fail the tests rather than skip them.
func inCI() bool { return os.Getenv("CI") != "" }

// requireFUSE fails (in CI) or skips the test when this machine cannot mount FUSE as root.
func requireFUSE(t *testing.T) {
	t.Helper()
	why := ""
	if _, err := os.Stat("/dev/fuse"); err != nil {
		why = "no /dev/fuse"
	} else if os.Geteuid() != 0 {
		why = "not root"
	}
	if why == "" {
		return
	}
	if inCI() {
		t.Fatalf("FUSE mounts are required in CI: %s", why)
	}
	t.Skipf("cannot mount FUSE here: %s", why)
}

// requireTool fails (in CI) or skips when a command is missing.
func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if inCI() {
			t.Fatalf("%s is required in CI (make deps installs it)", name)
		}
		t.Skipf("%s not installed", name)
	}
}

// corpusDir returns the corpus root made by ../shared/corpus/make-corpus.sh.
func corpusDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("IMGFS_CORPUS")
	if dir == "" {
		dir = "/var/lib/imgfs-corpus"
	}
	if _, err := os.Stat(filepath.Join(dir, "listings", "debian-layered.l3.meta.txt")); err != nil {
		if inCI() {
			t.Fatalf("the corpus is required in CI (make corpus): %v", err)
		}
		t.Skipf("no corpus at %s (make corpus)", dir)
	}
	return dir
}

// imgfs runs the binary and returns its stdout, stderr and exit code.
func imgfs(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, imgfsBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("imgfs %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

// mountImage mounts archive with extra flags and returns the mount point; it is unmounted at cleanup.
func mountImage(t *testing.T, archive string, flags ...string) string {
	t.Helper()
	requireFUSE(t)
	mnt := t.TempDir()
	args := append([]string{"mount", "--quiet", "--cache-dir", cacheDir}, flags...)
	args = append(args, archive, mnt)
	start := time.Now()
	_, stderr, code := imgfs(t, args...)
	if code != 0 {
		t.Fatalf("imgfs %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	t.Logf("mounted %s in %v", filepath.Base(archive), time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() { unmountOrDie(t, mnt) })
	if !isMountpoint(mnt) {
		t.Fatalf("imgfs mount returned but %s is not a mount point", mnt)
	}
	return mnt
}

func unmountOrDie(t *testing.T, mnt string) {
	t.Helper()
	if !isMountpoint(mnt) {
		return
	}
	_, stderr, code := imgfs(t, "unmount", mnt)
	if code != 0 {
		unix.Unmount(mnt, unix.MNT_DETACH)
		t.Errorf("imgfs unmount %s: exit %d: %s", mnt, code, stderr)
	}
	// The daemon exits once the kernel lets go; wait briefly so temp dirs can be removed.
	for i := 0; i < 50 && isMountpoint(mnt); i++ {
		time.Sleep(100 * time.Millisecond)
	}
}

func isMountpoint(dir string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	abs, _ := filepath.Abs(dir)
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMount(f[4]) == abs {
			return true
		}
	}
	return false
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// writeSample writes the demo sample archive into a new temp dir and returns the dir and the archive.
func writeSample(t *testing.T, name string) (dir, archive string) {
	t.Helper()
	dir = t.TempDir()
	archive = filepath.Join(dir, name)
	if err := sample.Write(archive); err != nil {
		t.Fatal(err)
	}
	return dir, archive
}
