package integration

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// stamp is what an examiner must find unchanged of an archive file: its three times.
type stamp struct{ atime, mtime, ctime unix.Timespec }

// ageFiles sets the atime and mtime of every file and directory under path into the past (so that
// relatime would update an atime on the next read) and returns their stamps.
func ageFiles(t *testing.T, path string) map[string]stamp {
	t.Helper()
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	var paths []string
	filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		return nil
	})
	// Children first: setting a child's times does not change its directory's, but keep it plain.
	for i := len(paths) - 1; i >= 0; i-- {
		if err := os.Chtimes(paths[i], old, old); err != nil {
			t.Fatal(err)
		}
	}
	return stamps(t, paths)
}

func stamps(t *testing.T, paths []string) map[string]stamp {
	t.Helper()
	out := map[string]stamp{}
	for _, p := range paths {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		out[p] = stamp{st.Atim, st.Mtim, st.Ctim}
	}
	return out
}

func checkStamps(t *testing.T, before map[string]stamp) {
	t.Helper()
	var paths []string
	for p := range before {
		paths = append(paths, p)
	}
	after := stamps(t, paths)
	for p, b := range before {
		if a := after[p]; a != b {
			t.Errorf("%s: times changed: atime %v mtime %v ctime %v -> atime %v mtime %v ctime %v", p,
				b.atime, b.mtime, b.ctime, a.atime, a.mtime, a.ctime)
		}
	}
}

// archiveSHA256 is the archive's sha256 as an examiner computes it with coreutils: sha256sum of a
// file, or of the sorted sha256sum listing of a directory's files.
func archiveSHA256(t *testing.T, path string) string {
	t.Helper()
	script := `sha256sum < "$1"`
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		script = `cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum`
	}
	out, err := exec.Command("sh", "-c", script, "sh", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))[0]
}

// custodyLog reads a custody log's records as generic JSON objects.
func custodyLog(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("custody log %s: %v: %s", path, err, sc.Bytes())
		}
		recs = append(recs, r)
	}
	return recs
}

// waitRecords waits until the custody log has n records (a daemon records the end of its mount when
// the kernel lets go, whoever unmounted it).
func waitRecords(t *testing.T, path string, n int) []map[string]any {
	t.Helper()
	for i := 0; ; i++ {
		recs := custodyLog(t, path)
		if len(recs) >= n || i == 200 {
			if len(recs) != n {
				t.Fatalf("custody log %s: %d records, want %d", path, len(recs), n)
			}
			return recs
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func field(r map[string]any, path ...string) any {
	var v any = r
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// evidenceLayout writes a one-layer OCI layout directory and returns its path and layer files.
func evidenceLayout(t *testing.T) (string, map[string]string) {
	a, _ := trustLayers(t)
	dir := filepath.Join(t.TempDir(), "layout")
	writeOCI(t, dir, storedGzip(a), digest.FromBytes(storedGzip(a)), digest.FromBytes(a), false)
	return dir, tarFiles(t, a)
}

// TestEvidenceMount mounts a docker-save tar and an OCI layout directory with --evidence and
// --custody, browses and reads everything, and checks what an examiner relies on: the kernel's mount
// flags, writes, exec, symlink following and device opens refused, the archive's times and sha256
// unchanged, and the custody records of mount and unmount naming that sha256.
func TestEvidenceMount(t *testing.T) {
	requireFUSE(t)
	_, sampleTar := writeSample(t, "sample.tar")
	layout, _ := evidenceLayout(t)
	for _, archive := range []string{sampleTar, layout} {
		t.Run(filepath.Base(archive), func(t *testing.T) {
			sum := archiveSHA256(t, archive)
			before := ageFiles(t, archive)
			log := filepath.Join(t.TempDir(), "custody.jsonl")
			mnt := mountImage(t, archive, "--evidence", "--custody", log)

			opts := mountOptions(t, mnt)
			for _, o := range []string{"ro", "nosuid", "nodev", "noexec", "nosymfollow"} {
				if !opts[o] {
					t.Errorf("mount options %v lack %s", opts, o)
				}
			}
			readAll(t, mnt)
			// --evidence implies --layers: each layer alone, the hidden files and the image's documents
			// are there too, and browsing them leaves the archive as untouched as the merged view does.
			for _, p := range []string{".imgfs/layers", ".imgfs/hidden", ".imgfs/image/manifest.json", ".imgfs/image/config.json"} {
				if _, err := os.Stat(filepath.Join(mnt, p)); err != nil {
					t.Errorf("evidence mount without its layer tree: %v", err)
				}
			}
			readAll(t, filepath.Join(mnt, ".imgfs"))
			if archive == sampleTar {
				refusals(t, mnt)
			}

			_, stderr, code := imgfs(t, "unmount", "--custody", log, mnt)
			if code != 0 {
				t.Fatalf("unmount: %s", stderr)
			}
			// imgfs unmount returns once the daemon recorded the end: no waiting needed.
			recs := custodyLog(t, log)
			checkStamps(t, before)
			if got := archiveSHA256(t, archive); got != sum {
				t.Fatalf("archive sha256 %s after the mount, %s before", got, sum)
			}
			if len(recs) != 3 {
				t.Fatalf("%d custody records, want mount, unmount (daemon), unmount (command): %v", len(recs), recs)
			}
			for i, want := range []string{"mount", "unmount", "unmount"} {
				if recs[i]["action"] != want || recs[i]["result"] != "ok" {
					t.Errorf("record %d: action %v result %v, want %s ok: %v", i+1, recs[i]["action"], recs[i]["result"], want, recs[i])
				}
			}
			for _, r := range recs[:2] {
				if field(r, "archive", "sha256") != sum {
					t.Errorf("record %v: archive sha256 %v, want %s", r["seq"], field(r, "archive", "sha256"), sum)
				}
			}
			if field(recs[0], "details", "mount_flags") != "ro,nosuid,nodev,noexec,nosymfollow" {
				t.Errorf("mount record flags %v", field(recs[0], "details", "mount_flags"))
			}
			if field(recs[1], "details", "unchanged") != true || field(recs[1], "details", "sha256_at_mount") != sum {
				t.Errorf("unmount record: %v", recs[1]["details"])
			}
			if out, stderr, code := imgfs(t, "custody", "verify", log); code != 0 || !strings.Contains(out, "3 record(s)") {
				t.Fatalf("custody verify: exit %d: %s%s", code, out, stderr)
			}
		})
	}
}

// mountOptions returns the per-mount options of the mount at mnt from /proc/self/mountinfo.
func mountOptions(t *testing.T, mnt string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(mnt)
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 5 && unescapeMount(f[4]) == abs {
			out := map[string]bool{}
			for _, o := range strings.Split(f[5], ",") {
				out[o] = true
			}
			return out
		}
	}
	t.Fatalf("%s is not in the mount table", mnt)
	return nil
}

// readAll lists every directory of the mount, reads every regular file to its end and every link.
func readAll(t *testing.T, mnt string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.Type().IsRegular():
			if _, err := os.ReadFile(p); err != nil {
				return err
			}
			files++
		case d.Type()&fs.ModeSymlink != 0:
			if _, err := os.Readlink(p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("browsing %s: %v", mnt, err)
	}
	if files == 0 {
		t.Fatalf("no files read in %s", mnt)
	}
}

// refusals checks what an evidence mount of the sample image refuses.
func refusals(t *testing.T, mnt string) {
	t.Helper()
	expect := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: got %v, want %v", what, err, want)
		}
	}
	expect("create", os.WriteFile(filepath.Join(mnt, "new"), []byte("x"), 0o644), syscall.EROFS)
	_, err := os.OpenFile(filepath.Join(mnt, "etc/os-release"), os.O_WRONLY, 0)
	expect("open for writing", err, syscall.EROFS)
	expect("mkdir", os.Mkdir(filepath.Join(mnt, "etc/new"), 0o755), syscall.EROFS)
	expect("chmod", os.Chmod(filepath.Join(mnt, "etc/os-release"), 0o777), syscall.EROFS)

	// usr/bin/hello is an executable script: noexec refuses it.
	hello := filepath.Join(mnt, "usr/bin/hello")
	if st, err := os.Stat(hello); err != nil || st.Mode().Perm()&0o111 == 0 {
		t.Fatalf("%s: %v %v, want an executable", hello, st, err)
	}
	expect("exec", exec.Command(hello).Run(), syscall.EACCES)

	// bin -> usr/bin and app/current -> /app/v2: nosymfollow refuses to follow them; they still read.
	for _, link := range []string{"bin", "bin/hello", "app/current/VERSION"} {
		_, err := os.Stat(filepath.Join(mnt, link))
		expect("following "+link, err, syscall.ELOOP)
	}
	if target, err := os.Readlink(filepath.Join(mnt, "bin")); err != nil || target != "usr/bin" {
		t.Errorf("readlink bin: %q %v", target, err)
	}

	// dev/null is a character device 1:3: nodev refuses to open it.
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(mnt, "dev/null"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		t.Fatalf("dev/null: mode %o, %v", st.Mode, err)
	}
	_, err = os.Open(filepath.Join(mnt, "dev/null"))
	expect("opening a device", err, syscall.EACCES)
}

// TestEvidenceMountEnds checks that the daemon records the end of a mount however it is unmounted
// (fusermount3 -u, umount, imgfs unmount), and that custody verify finds an edited, removed or swapped
// record of the log so made.
func TestEvidenceMountEnds(t *testing.T) {
	requireFUSE(t)
	requireTool(t, "fusermount3")
	_, archive := writeSample(t, "sample.tar")
	sum := archiveSHA256(t, archive)
	log := filepath.Join(t.TempDir(), "custody.jsonl")
	n := 0
	for _, how := range [][]string{{"fusermount3", "-u"}, {"umount"}} {
		mnt := mountImage(t, archive, "--evidence", "--custody", log)
		if out, err := exec.Command(how[0], append(how[1:], mnt)...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", how, err, out)
		}
		n += 2
		recs := waitRecords(t, log, n)
		end := recs[n-1]
		if end["action"] != "unmount" || end["result"] != "ok" || field(end, "archive", "sha256") != sum {
			t.Fatalf("after %s, the last record is %v", how, end)
		}
	}
	out := filepath.Join(t.TempDir(), "flat.tar")
	if _, stderr, code := imgfs(t, "export", "--quiet", "--cache-dir", cacheDir, "--custody", log, "-o", out, archive); code != 0 {
		t.Fatalf("export: %s", stderr)
	}
	recs := custodyLog(t, log)
	exp := recs[len(recs)-1]
	outSum := sha256.Sum256(mustRead(t, out))
	if exp["action"] != "export" || field(exp, "details", "output", "sha256") != hex.EncodeToString(outSum[:]) {
		t.Fatalf("export record %v", exp)
	}
	if stdout, stderr, code := imgfs(t, "custody", "verify", log); code != 0 {
		t.Fatalf("custody verify of an intact log: exit %d: %s%s", code, stdout, stderr)
	}

	lines := bytes.SplitAfter(mustRead(t, log), []byte("\n"))
	lines = lines[:len(lines)-1]
	if len(lines) != 5 {
		t.Fatalf("%d lines", len(lines))
	}
	clone := func() [][]byte {
		c := make([][]byte, len(lines))
		for i := range lines {
			c[i] = bytes.Clone(lines[i])
		}
		return c
	}
	for _, tc := range []struct {
		name   string
		change func([][]byte) [][]byte
		record string
	}{
		{"edited", func(l [][]byte) [][]byte {
			l[1] = bytes.Replace(l[1], []byte(sum), []byte(strings.Repeat("0", 64)), 1)
			return l
		}, "record 2:"},
		{"deleted", func(l [][]byte) [][]byte { return append(l[:2:2], l[3:]...) }, "record 3:"},
		{"swapped", func(l [][]byte) [][]byte { l[2], l[3] = l[3], l[2]; return l }, "record 3:"},
		{"truncated", func(l [][]byte) [][]byte { l[4] = l[4][:len(l[4])/2]; return l }, "record 5:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "custody.jsonl")
			if err := os.WriteFile(bad, bytes.Join(tc.change(clone()), nil), 0o644); err != nil {
				t.Fatal(err)
			}
			stdout, stderr, code := imgfs(t, "custody", "verify", bad)
			if code != 1 || !strings.Contains(stderr, tc.record) {
				t.Fatalf("custody verify of a log with a record %s: exit %d, want 1 naming %q: %s%s", tc.name, code, tc.record, stdout, stderr)
			}
			// An action refuses to extend a broken log.
			_, stderr, code = imgfs(t, "export", "--quiet", "--cache-dir", cacheDir, "--custody", bad, "-o", filepath.Join(t.TempDir(), "x.tar"), archive)
			if code == 0 || !strings.Contains(stderr, tc.record) {
				t.Fatalf("export with a broken custody log: exit %d: %s", code, stderr)
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEvidenceMountRefusesTampered checks that an evidence mount refuses a layer whose bytes do not
// match its claims, naming the blob; that --no-verify serves it, said on stderr and in the custody
// record; and that the honest image mounted afterwards shows its own content.
func TestEvidenceMountRefusesTampered(t *testing.T) {
	requireFUSE(t)
	honest, _ := trustLayers(t)
	files := tarFiles(t, honest)
	cache := t.TempDir()
	mount := func(archive string, flags ...string) (string, string, int) {
		mnt := t.TempDir()
		args := append([]string{"mount", "--quiet", "--evidence", "--cache-dir", cache}, flags...)
		stdout, stderr, code := imgfs(t, append(args, archive, mnt)...)
		if code == 0 {
			t.Cleanup(func() { unmountOrDie(t, mnt) })
		}
		return mnt, stdout + stderr, code
	}
	// One byte of a file's content flipped, in a plain, a gzip and a zstd layer; the claims are the
	// honest layer's.
	flipped := bytes.Clone(honest)
	i := bytes.Index(flipped, bytes.Repeat([]byte{'a'}, 100))
	flipped[i] = 'z'
	d, x := digest.FromBytes(honest), digest.FromBytes(honest)
	for _, tc := range []struct {
		name   string
		blob   []byte
		digest digest.Digest
	}{
		{"plain", flipped, d},
		{"gzip", storedGzip(flipped), digest.FromBytes(storedGzip(honest))},
		{"zstd", zstdOf(t, flipped), digest.FromBytes(zstdOf(t, honest))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "layout")
			writeOCI(t, dir, tc.blob, tc.digest, x, false)
			refused := filepath.Join(t.TempDir(), "custody.jsonl")
			_, out, code := mount(dir, "--custody", refused)
			if code == 0 || !strings.Contains(out, tc.digest.String()) || !strings.Contains(out, "blobs/sha256/"+tc.digest.Encoded()) ||
				!strings.Contains(out, "mismatch") {
				t.Fatalf("evidence mount of a tampered %s layer: exit %d: %s", tc.name, code, out)
			}
			// The refusal is on record, naming the blob.
			if recs := custodyLog(t, refused); len(recs) != 1 || recs[0]["action"] != "mount" || recs[0]["result"] != "error" ||
				!strings.Contains(recs[0]["error"].(string), tc.digest.String()) {
				t.Fatalf("custody record of the refused mount: %v", recs)
			}
			if tc.name != "plain" {
				return
			}
			log := filepath.Join(t.TempDir(), "custody.jsonl")
			mnt, out, code := mount(dir, "--no-verify", "--custody", log)
			if code != 0 || !strings.Contains(out, "UNVERIFIED") {
				t.Fatalf("--no-verify mount: exit %d: %s", code, out)
			}
			recs := custodyLog(t, log)
			if u, _ := field(recs[0], "details", "unverified_layers").([]any); len(u) != 1 || !strings.Contains(u[0].(string), tc.digest.String()) {
				t.Fatalf("mount record: %v", recs[0]["details"])
			}
			if b, err := os.ReadFile(filepath.Join(mnt, "alpha/file-00")); err != nil || !bytes.HasPrefix(b, []byte("z")) {
				t.Fatalf("the unverified layer's content: %q %v", b, err)
			}
		})
	}
	// The config or the manifest with one byte changed, the layer swapped for another of the same
	// size, the layer cut short: refused, naming the blob.
	_, swap := trustLayers(t)
	for _, tc := range []struct {
		name   string
		change func(name string, b []byte) []byte // of every blob file; nil leaves it
	}{
		{"config", func(_ string, b []byte) []byte {
			if bytes.Contains(b, []byte(`"rootfs"`)) {
				return bytes.Replace(b, []byte(`"amd64"`), []byte(`"amd65"`), 1)
			}
			return nil
		}},
		{"manifest", func(_ string, b []byte) []byte {
			if bytes.Contains(b, []byte(`"layers"`)) {
				return bytes.Replace(b, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":3`), 1)
			}
			return nil
		}},
		{"swapped layer", func(name string, _ []byte) []byte {
			if name == d.Encoded() {
				return swap
			}
			return nil
		}},
		{"truncated layer", func(name string, b []byte) []byte {
			if name == d.Encoded() {
				return b[:len(b)-512]
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "layout")
			writeOCI(t, dir, honest, d, x, false)
			blobs := filepath.Join(dir, "blobs", "sha256")
			ents, _ := os.ReadDir(blobs)
			changed := ""
			for _, e := range ents {
				p := filepath.Join(blobs, e.Name())
				if nb := tc.change(e.Name(), mustRead(t, p)); nb != nil {
					if err := os.WriteFile(p, nb, 0o644); err != nil {
						t.Fatal(err)
					}
					changed = e.Name()
				}
			}
			if changed == "" {
				t.Fatal("nothing changed")
			}
			_, out, code := mount(dir)
			if code == 0 || !strings.Contains(out, changed) {
				t.Fatalf("evidence mount with a changed %s: exit %d, want a refusal naming %s: %s", tc.name, code, changed, out)
			}
			t.Logf("refused: %s", out)
		})
	}

	// The honest image after the tampered ones: its own content, nothing of theirs.
	dir := filepath.Join(t.TempDir(), "layout")
	writeOCI(t, dir, honest, d, x, false)
	mnt, out, code := mount(dir)
	if code != 0 {
		t.Fatalf("evidence mount of the honest image: %s", out)
	}
	for name, body := range files {
		if b, err := os.ReadFile(filepath.Join(mnt, name)); err != nil || string(b) != body {
			t.Errorf("%s: %v, content differs from the honest layer's", name, err)
		}
	}
}

func zstdOf(t *testing.T, b []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(b, nil)
}
