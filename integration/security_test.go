package integration

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/imgfs/imgfs/internal/sample"
	"github.com/imgfs/imgfs/internal/tartest"
)

// accessProbe is run by sh as each user, in the root of a tree: what can be read, listed, executed.
const accessProbe = `
for p in pub/open secret group50 other-only owned owner-denied execonly locked/inside noexec/f searchonly/f grpdir/f grpdir-other/f; do
  if c=$(cat "$p" 2>/dev/null); then echo "read $p ok $(printf %s "$c" | sha256sum | cut -c1-16)"; else echo "read $p denied"; fi
done
for d in . pub locked noexec searchonly grpdir grpdir-other; do
  if ls "$d" >/dev/null 2>&1; then echo "list $d ok"; else echo "list $d denied"; fi
done
if ./execonly >/dev/null 2>&1; then echo "exec execonly ok"; else echo "exec execonly denied"; fi
echo "suid euid $(./usr/bin/id-suid -u)"
echo "sgid egid $(./usr/bin/id-sgid -g)"
if cat dev/null-node >/dev/null 2>&1; then echo "dev open ok"; else echo "dev open denied"; fi
`

// TestUnprivilegedAccess runs the same probe as several users over the allow_other mount and over the
// same layer extracted by GNU tar (the oracle): what modes and owners deny, the mount denies too. The
// mount is nosuid (a setuid-root copy of id in the image keeps the caller's euid) and nodev (a char
// device 1,3 of the image cannot be opened, not even by root); on the oracle both work, which shows the
// probe can tell.
func TestUnprivilegedAccess(t *testing.T) {
	requireFUSE(t)
	requireTool(t, "tar")
	idBin, err := exec.LookPath("id")
	if err != nil {
		t.Fatal(err)
	}
	idBody, err := os.ReadFile(idBin)
	if err != nil {
		t.Fatal(err)
	}
	script := []byte("#!/bin/sh\necho executed\n")
	reg := func(name, body string, mode int64, uid, gid int) tartest.Member {
		return tartest.Member{Name: name, Body: []byte(body), Mode: mode, UID: uid, GID: gid}
	}
	dir := func(name string, mode int64, uid, gid int) tartest.Member {
		return tartest.Member{Name: name, Type: tar.TypeDir, Mode: mode, UID: uid, GID: gid}
	}
	members := []tartest.Member{
		dir("pub", 0o755, 0, 0), reg("pub/open", "anyone", 0o644, 0, 0),
		reg("secret", "root only", 0o600, 0, 0),
		reg("group50", "group 50", 0o640, 0, 50),
		reg("other-only", "others, but not group 50", 0o604, 0, 50),
		reg("owned", "owner 65534", 0o400, 65534, 65534),
		reg("owner-denied", "everyone but the owner", 0o044, 65534, 0),
		{Name: "execonly", Body: script, Mode: 0o711},
		dir("locked", 0o700, 0, 0), reg("locked/inside", "behind a 0700 dir", 0o644, 0, 0),
		dir("noexec", 0o644, 0, 0), reg("noexec/f", "behind a dir without x", 0o644, 0, 0),
		dir("searchonly", 0o711, 0, 0), reg("searchonly/f", "by name only", 0o644, 0, 0),
		dir("grpdir", 0o750, 0, 50), reg("grpdir/f", "group 50's dir", 0o644, 0, 0),
		dir("grpdir-other", 0o705, 0, 50), reg("grpdir-other/f", "not for group 50", 0o644, 0, 0),
		dir("usr", 0o755, 0, 0), dir("usr/bin", 0o755, 0, 0),
		{Name: "usr/bin/id-suid", Body: idBody, Mode: 0o4755},
		{Name: "usr/bin/id-sgid", Body: idBody, Mode: 0o2755},
		dir("dev", 0o755, 0, 0),
		{Name: "dev/null-node", Type: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
	}
	work := t.TempDir()
	layer := filepath.Join(work, "layer.tar")
	if err := os.WriteFile(layer, tartest.Tar(t, members...), 0o644); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(work, "modes.tar")
	if err := sample.WriteArchive(archive, "modes:latest", [][]tartest.Member{members}, false); err != nil {
		t.Fatal(err)
	}
	oracle := t.TempDir()
	run(t, "tar", "--same-owner", "--numeric-owner", "-xpf", layer, "-C", oracle)
	mnt := mountImage(t, archive)
	openToAll(t, oracle)
	openToAll(t, mnt)

	users := []struct {
		name string
		cred *syscall.Credential
	}{
		{"root", &syscall.Credential{Uid: 0, Gid: 0}},
		{"nobody", &syscall.Credential{Uid: 65534, Gid: 65534}},
		{"uid1000-gid50", &syscall.Credential{Uid: 1000, Gid: 50}},
		{"nobody+group50", &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{50}}},
	}
	for _, u := range users {
		t.Run(u.name, func(t *testing.T) {
			want := probeAccess(t, oracle, u.cred)
			got := probeAccess(t, mnt, u.cred)
			t.Logf("%s", strings.Join(got, "; "))
			for i := range want {
				line := want[i]
				switch {
				case strings.HasPrefix(line, "suid "), strings.HasPrefix(line, "sgid "), strings.HasPrefix(line, "dev "):
					continue // differ by design, checked below
				}
				if i >= len(got) || got[i] != line {
					t.Errorf("oracle %q, mount %q", line, at(got, i))
				}
			}
			// On the oracle the setuid bit works: that the probe sees it proves it would see a mount without nosuid.
			if !slices.Contains(want, "suid euid 0") || !slices.Contains(want, "dev open ok") {
				t.Fatalf("the oracle tree (%s) does not honour setuid or device nodes, so it cannot show the difference: %q", oracle, want)
			}
			if wantEuid := "suid euid " + itoa(u.cred.Uid); !slices.Contains(got, wantEuid) {
				t.Errorf("setuid-root binary through the mount: %q, want %q (nosuid)", lineWith(got, "suid "), wantEuid)
			}
			if wantEgid := "sgid egid " + itoa(u.cred.Gid); !slices.Contains(got, wantEgid) {
				t.Errorf("setgid binary through the mount: %q, want %q (nosuid)", lineWith(got, "sgid "), wantEgid)
			}
			if !slices.Contains(got, "dev open denied") {
				t.Errorf("device node through the mount: %q, want denied (nodev)", lineWith(got, "dev "))
			}
		})
	}
	// The errno of opening the device node: EACCES (nodev), as root.
	f, err := os.Open(filepath.Join(mnt, "dev/null-node"))
	if err == nil {
		f.Close()
		t.Errorf("root opened a device node through the mount")
	} else if !errorIs(err, syscall.EACCES, syscall.EPERM) {
		t.Errorf("opening a device node through the mount: %v, want EACCES or EPERM", err)
	}
}

// probeAccess runs accessProbe in root as the given user and returns its lines.
func probeAccess(t *testing.T, root string, cred *syscall.Credential) []string {
	t.Helper()
	cmd := exec.Command("sh", "-c", accessProbe)
	cmd.Dir = root
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe in %s as %d: %v\n%s", root, cred.Uid, err, stderr.String())
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// openToAll lets every user reach dir: t.TempDir makes it and its parent 0700.
func openToAll(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o005 == 0o005 {
			continue
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "<missing>"
}

func lineWith(lines []string, prefix string) string {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return "<missing>"
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

func errorIs(err error, targets ...error) bool {
	for _, e := range targets {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
