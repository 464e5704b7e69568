package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dockerd starts Debian's docker daemon privately (its own data root, a unix socket, no networking, in
// a private mount namespace so that its /etc/docker writes stay in a temp dir), as the corpus build
// does, and returns a function running the docker client against it.
func dockerd(t *testing.T) func(args ...string) (string, error) {
	t.Helper()
	requireTool(t, "dockerd")
	requireTool(t, "docker")
	requireTool(t, "unshare")
	d, err := os.MkdirTemp("", "imgfs-dockerd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	os.MkdirAll(filepath.Join(d, "etc-docker"), 0o755)
	os.MkdirAll("/etc/docker", 0o755)
	sock := filepath.Join(d, "docker.sock")
	script := "mount --bind " + d + "/etc-docker /etc/docker && exec dockerd --data-root " + d + "/data --exec-root " + d +
		"/exec --pidfile " + d + "/pid -H unix://" + sock +
		" --bridge=none --iptables=false --ip6tables=false --ip-masq=false --storage-driver overlay2"
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	logf, _ := os.Create(filepath.Join(d, "dockerd.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting dockerd: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		logf.Close()
		os.Remove("/run/docker/plugins") // left by dockerd, as the corpus build notes
		os.Remove("/run/docker")
	})
	bin := "docker"
	if _, err := os.Stat("/usr/bin/docker"); err == nil {
		bin = "/usr/bin/docker" // Debian's client, the daemon's version
	}
	client := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"-H", "unix://" + sock}, args...)...).CombinedOutput()
		return string(out), err
	}
	for i := 0; ; i++ {
		if _, err := client("version"); err == nil {
			break
		}
		if i == 100 {
			log, _ := os.ReadFile(filepath.Join(d, "dockerd.log"))
			if inCI() {
				t.Fatalf("dockerd did not start:\n%s", log)
			}
			t.Skipf("dockerd did not start:\n%s", log)
		}
		time.Sleep(300 * time.Millisecond)
	}
	return client
}

// TestDockerLoad checks that a real docker daemon loads what commit and import write.
func TestDockerLoad(t *testing.T) {
	corpus := corpusDir(t)
	requireFUSE(t)
	docker := dockerd(t)
	dir := t.TempDir()
	base := filepath.Join(corpus, "artifacts", "debian-layered", "docker-save-20.10.tar")

	upper := filepath.Join(dir, "upper")
	mnt := mountImage(t, base, "--upper", upper)
	if err := os.WriteFile(filepath.Join(mnt, "etc", "motd"), []byte("committed by imgfs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(mnt, "srv", "corpus", "tree")); err != nil {
		t.Fatal(err)
	}
	unmountOrDie(t, mnt)
	committed := filepath.Join(dir, "committed.tar")
	if _, stderr, code := imgfs(t, "commit", "-q", "--cache-dir", cacheDir, "--upper", upper, "-t", "imgfs/committed:1",
		"-o", committed, base); code != 0 {
		t.Fatalf("commit: exit %d: %s", code, stderr)
	}
	flat := filepath.Join(dir, "flat.tar")
	if _, stderr, code := imgfs(t, "export", "-q", "--cache-dir", cacheDir, "-o", flat, committed); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	imported := filepath.Join(dir, "imported.tar")
	if _, stderr, code := imgfs(t, "import", "-q", "-t", "imgfs/imported:1", "-o", imported, flat); code != 0 {
		t.Fatalf("import: exit %d: %s", code, stderr)
	}
	for _, c := range []struct{ file, ref string }{{committed, "imgfs/committed:1"}, {imported, "imgfs/imported:1"}} {
		out, err := docker("load", "-i", c.file)
		if err != nil {
			t.Fatalf("docker load %s: %v\n%s", filepath.Base(c.file), err, out)
		}
		out, err = docker("image", "inspect", "--format", "{{len .RootFS.Layers}}", c.ref)
		if err != nil {
			t.Fatalf("docker image inspect %s: %v\n%s", c.ref, err, out)
		}
		t.Logf("docker loaded %s: %s layer(s)", c.ref, strings.TrimSpace(out))
		// docker export of a container of the loaded image is the view imgfs showed.
		id, err := docker("create", c.ref, "/bin/true")
		if err != nil {
			t.Fatalf("docker create %s: %v\n%s", c.ref, err, id)
		}
		dflat := filepath.Join(dir, "docker-export-"+strings.ReplaceAll(c.ref, "/", "_")+".tar")
		if out, err := docker("export", "-o", dflat, strings.TrimSpace(id)); err != nil {
			t.Fatalf("docker export: %v\n%s", err, out)
		}
		got := extract(t, dflat)
		for _, p := range []string{"etc/motd"} {
			b, err := os.ReadFile(filepath.Join(got, p))
			if err != nil || string(b) != "committed by imgfs\n" {
				t.Errorf("%s in docker's view of %s: %q, %v", p, c.ref, b, err)
			}
		}
		if _, err := os.Stat(filepath.Join(got, "srv", "corpus", "tree")); !os.IsNotExist(err) {
			t.Errorf("srv/corpus/tree still in docker's view of %s: %v", c.ref, err)
		}
	}
}
