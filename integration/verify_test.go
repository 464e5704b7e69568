package integration

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"
)

// verifyResult is one JSON object of `imgfs verify --json`, as README documents it.
type verifyResult struct {
	Kind      string `json:"kind"`
	Image     string `json:"image"`
	Layer     int    `json:"layer"`
	Digest    string `json:"digest"`
	Where     string `json:"where"`
	ClaimedBy string `json:"claimed_by"`
	Checks    []struct {
		Claim    string `json:"claim"`
		Expected string `json:"expected"`
		Actual   string `json:"actual"`
		OK       bool   `json:"ok"`
	} `json:"checks"`
	Verdict string   `json:"verdict"`
	Error   string   `json:"error"`
	Notes   []string `json:"notes"`
	// summary
	OK             bool   `json:"ok"`
	Failed         int    `json:"failed"`
	ChainID        string `json:"chain_id"`
	ManifestDigest string `json:"manifest_digest"`
	ImageID        string `json:"image_id"`
}

// broken lists the claims a result says are broken.
func (r verifyResult) broken() []string {
	var out []string
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c.Claim)
		}
	}
	return out
}

// runVerify runs imgfs verify --json with the cache and returns its results, its summary and exit code.
func runVerify(t *testing.T, cache string, args ...string) ([]verifyResult, verifyResult, int, string) {
	t.Helper()
	all := append([]string{"verify", "--json", "--quiet", "--cache-dir", cache}, args...)
	stdout, stderr, code := imgfs(t, all...)
	var res []verifyResult
	var sum verifyResult
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r verifyResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("imgfs %s: line %q: %v", strings.Join(all, " "), sc.Text(), err)
		}
		if r.Kind == "summary" {
			sum = r
			continue
		}
		res = append(res, r)
	}
	if sum.Kind != "summary" {
		t.Fatalf("imgfs %s: exit %d, no summary object:\n%s\n%s", strings.Join(all, " "), code, stdout, stderr)
	}
	return res, sum, code, stderr
}

// fileStamp is what verify must leave as it was: size, mtime, ctime, atime and content hash.
type fileStamp struct {
	size                int64
	mtime, ctime, atime syscall.Timespec
	sum                 string
}

func fileStamps(t *testing.T, path string, withSum bool) map[string]fileStamp {
	t.Helper()
	out := map[string]fileStamp{}
	filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		s := fileStamp{size: st.Size, mtime: st.Mtim, ctime: st.Ctim, atime: st.Atim}
		if withSum && d.Type().IsRegular() {
			s.sum = fileSHA256(t, p)
		}
		out[p] = s
		return nil
	})
	return out
}

func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestVerifyCorpus verifies every format of the corpus image: exit 0, every JSON result ok, the same
// chain ID everywhere, and each archive's bytes and times (atime too) as they were. A later inspect
// with the same cache loads every table instead of hashing again; --digest pins right and wrong.
func TestVerifyCorpus(t *testing.T) {
	dir := filepath.Join(corpusDir(t), "artifacts", "debian-layered")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		t.Run(e.Name(), func(t *testing.T) {
			withSum := e.Name() == "docker-save-20.10.tar" || e.Name() == "oci-zstd"
			before := fileStamps(t, path, withSum)
			res, sum, code, stderr := runVerify(t, cache, path)
			if code != 0 || !sum.OK || sum.Failed != 0 {
				t.Errorf("exit %d, summary %+v\n%s", code, sum, stderr)
			}
			kinds := map[string]int{}
			for _, r := range res {
				kinds[r.Kind]++
				if r.Verdict != "ok" {
					t.Errorf("%s %s: %s %s", r.Kind, r.Digest, r.Verdict, r.Error)
				}
				if r.Kind == "layer" && (len(r.Checks) != 3 || r.Where == "") {
					t.Errorf("layer %d: checks %+v, where %q", r.Layer, r.Checks, r.Where)
				}
			}
			if kinds["layer"] < 2 || kinds["config"] < 1 || kinds["chain_id"] < 1 {
				t.Errorf("results by kind %v", kinds)
			}
			if after := fileStamps(t, path, withSum); !maps2Equal(before, after) {
				t.Errorf("archive changed by verify:\nbefore %v\nafter  %v", before, after)
			}
			if !strings.Contains(e.Name(), "multi") && e.Name() != "oci-umoci-src" {
				// The proof is remembered: the layers load from the cache, none is built again.
				_, stderr, code := imgfs(t, "inspect", "--debug", "--cache-dir", cache, path)
				if code != 0 || strings.Contains(stderr, "index: built table") || !strings.Contains(stderr, "index: loaded table") {
					t.Errorf("inspect after verify: exit %d, tables not from the cache:\n%s", code, grepLines(stderr, "table"))
				}
			}
		})
	}

	// Every platform of a multi-platform index, unless one is chosen.
	nested := filepath.Join(dir, "oci-nested-index")
	res, _, _, _ := runVerify(t, cache, nested)
	images := map[string]bool{}
	for _, r := range res {
		images[r.Image] = true
	}
	if len(images) != 2 {
		t.Errorf("oci-nested-index verified as %d images, want both platforms: %v", len(images), images)
	}
	res, _, _, _ = runVerify(t, cache, "--platform", "linux/amd64", nested)
	digests := map[string]string{}
	for _, r := range res {
		digests[r.Kind] = r.Digest
	}
	for _, pin := range []string{digests["index"], digests["manifest"], digests["config"]} {
		_, sum, code, stderr := runVerify(t, cache, "--digest", pin, nested)
		if code != 0 || !sum.OK {
			t.Errorf("--digest %s: exit %d %+v %s", pin, code, sum, stderr)
		}
	}
	wrong := digest.FromString("not this image").String()
	res, sum, code, _ := runVerify(t, cache, "--platform", "linux/amd64", "--digest", wrong, nested)
	last := res[len(res)-1]
	if code != 1 || sum.OK || last.Kind != "pin" || last.Verdict != "mismatch" || last.Checks[0].Expected != wrong ||
		last.Checks[0].Actual != digests["manifest"] {
		t.Errorf("wrong --digest: exit %d, last result %+v", code, last)
	}
	save := filepath.Join(dir, "docker-save-20.10.tar")
	res, _, _, _ = runVerify(t, cache, save)
	for _, r := range res {
		if r.Kind == "config" {
			if _, sum, code, stderr := runVerify(t, cache, "--digest", r.Digest, save); code != 0 || !sum.OK {
				t.Errorf("docker-save --digest image ID: exit %d %s", code, stderr)
			}
		}
	}
	if _, _, code := imgfs(t, "verify", "--digest", "sha256:abc", save); code != 1 {
		t.Errorf("a malformed --digest: exit %d", code)
	}
}

func maps2Equal(a, b map[string]fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// copyTree copies a file or a directory tree (regular files and directories only).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// rewrite replaces the file at p by a new file (a new inode, as an attacker's copy would be) holding
// what edit makes of its bytes.
func rewrite(t *testing.T, p string, edit func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b = edit(b)
	tmp := p + ".new"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

func flipAt(off int64) func([]byte) []byte {
	return func(b []byte) []byte { b[off] ^= 0x20; return b }
}

// flipJSON changes the case of the first letter of a JSON document's first key: valid JSON, other bytes.
func flipJSON(b []byte) []byte {
	i := bytes.IndexByte(b, '"')
	b[i+1] ^= 0x20
	return b
}

// mountedSum mounts archive with the cache and returns the sha256 of a file of its merged view.
func mountedSum(t *testing.T, cache, archive, file string) string {
	t.Helper()
	requireFUSE(t)
	mnt := t.TempDir()
	_, stderr, code := imgfs(t, "mount", "--quiet", "--cache-dir", cache, archive, mnt)
	if code != 0 {
		t.Fatalf("mount of the honest %s: exit %d: %s", archive, code, stderr)
	}
	defer unmountOrDie(t, mnt)
	return fileSHA256(t, filepath.Join(mnt, file))
}

// mountRefused checks that a plain mount of archive with the cache fails.
func mountRefused(t *testing.T, cache, archive string) {
	t.Helper()
	requireFUSE(t)
	mnt := t.TempDir()
	_, stderr, code := imgfs(t, "mount", "--quiet", "--cache-dir", cache, archive, mnt)
	if code == 0 {
		unmountOrDie(t, mnt)
		t.Errorf("mount of the tampered %s succeeded", archive)
		return
	}
	if strings.Count(strings.TrimSpace(stderr), "\n") > 0 && !strings.Contains(stderr, "mismatch") {
		t.Logf("mount refused with: %s", stderr)
	}
}

// TestVerifyTamperCorpus tampers with copies of the corpus image, one blob at a time (a byte of a plain
// layer inside a docker-save tar, of a gzip layer, of a zstd layer, of the config, of the manifest):
// verify exits 1 naming the blob, its place and the broken claim; a mount refuses; and once the copy
// holds its honest bytes again, a mount with the same cache shows the honest content.
func TestVerifyTamperCorpus(t *testing.T) {
	requireFUSE(t)
	dir := filepath.Join(corpusDir(t), "artifacts", "debian-layered")
	const file, fileSum = "etc/debian_version", "bb50b118280793a700072152791fe86bc3251a7db1e40c6f45630bf8f87e2c49" // from L3
	cache := t.TempDir()
	work := t.TempDir()
	for _, name := range []string{"docker-save-20.10.tar", "oci-gzip", "oci-zstd"} {
		copyTree(t, filepath.Join(dir, name), filepath.Join(work, name))
	}
	honest := map[string]map[string]verifyResult{} // archive -> kind/layer -> result
	for _, name := range []string{"docker-save-20.10.tar", "oci-gzip", "oci-zstd"} {
		res, sum, code, stderr := runVerify(t, cache, filepath.Join(work, name))
		if code != 0 || !sum.OK {
			t.Fatalf("honest copy of %s: exit %d: %s", name, code, stderr)
		}
		honest[name] = map[string]verifyResult{}
		for _, r := range res {
			honest[name][fmt.Sprintf("%s%d", r.Kind, r.Layer)] = r
		}
	}
	blobFile := func(arc, key string) string {
		return filepath.Join(work, arc, "blobs", "sha256", strings.TrimPrefix(honest[arc][key].Digest, "sha256:"))
	}
	memberOff := regexp.MustCompile(`: member (\S+) at offset (\d+)$`)

	for _, tc := range []struct {
		name, arc, key string // the archive copy and the result (kind + layer) that must break
		claims         []string
		tamper         func(t *testing.T) (path string, restore func())
	}{
		{"plain layer byte in a docker-save tar", "docker-save-20.10.tar", "layer3", []string{"digest", "diff_id"}, func(t *testing.T) (string, func()) {
			r := honest["docker-save-20.10.tar"]["layer3"]
			m := memberOff.FindStringSubmatch(r.Where)
			if m == nil {
				t.Fatalf("where %q names no member and offset", r.Where)
			}
			off, _ := strconv.ParseInt(m[2], 10, 64)
			size, _ := strconv.ParseInt(r.Checks[0].Actual, 10, 64)
			p := filepath.Join(work, "docker-save-20.10.tar")
			rewrite(t, p, flipAt(off+size/2))
			return p, func() { rewrite(t, p, flipAt(off+size/2)) }
		}},
		{"gzip layer byte", "oci-gzip", "layer3", []string{"digest"}, func(t *testing.T) (string, func()) {
			p := blobFile("oci-gzip", "layer3")
			st, _ := os.Stat(p)
			rewrite(t, p, flipAt(st.Size()/2))
			return filepath.Join(work, "oci-gzip"), func() { rewrite(t, p, flipAt(st.Size()/2)) }
		}},
		{"zstd layer byte", "oci-zstd", "layer3", []string{"digest"}, func(t *testing.T) (string, func()) {
			p := blobFile("oci-zstd", "layer3")
			st, _ := os.Stat(p)
			rewrite(t, p, flipAt(st.Size()/2))
			return filepath.Join(work, "oci-zstd"), func() { rewrite(t, p, flipAt(st.Size()/2)) }
		}},
		{"config byte", "oci-gzip", "config0", []string{"digest"}, func(t *testing.T) (string, func()) {
			p := blobFile("oci-gzip", "config0")
			rewrite(t, p, flipJSON)
			return filepath.Join(work, "oci-gzip"), func() { rewrite(t, p, flipJSON) }
		}},
		{"manifest byte", "oci-gzip", "manifest0", []string{"digest"}, func(t *testing.T) (string, func()) {
			p := blobFile("oci-gzip", "manifest0")
			rewrite(t, p, flipJSON)
			return filepath.Join(work, "oci-gzip"), func() { rewrite(t, p, flipJSON) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, restore := tc.tamper(t)
			res, sum, code, stderr := runVerify(t, cache, path)
			if code != 1 || sum.OK {
				t.Errorf("verify of the tampered copy: exit %d, summary %+v", code, sum)
			}
			want := honest[tc.arc][tc.key]
			var found *verifyResult
			for i, r := range res {
				if fmt.Sprintf("%s%d", r.Kind, r.Layer) == tc.key {
					found = &res[i]
				}
			}
			if found == nil {
				t.Fatalf("no %s result:\n%+v\n%s", tc.key, res, stderr)
			}
			if found.Verdict != "mismatch" || found.Digest != want.Digest || found.Where != want.Where {
				t.Errorf("result %+v, want a mismatch of %s at %s", *found, want.Digest, want.Where)
			}
			for _, c := range tc.claims {
				if !slices.Contains(found.broken(), c) {
					t.Errorf("broken claims %v, want %s among them: %+v", found.broken(), c, found.Checks)
				}
			}
			// The text form names the same.
			stdout, _, code := imgfs(t, "verify", "--quiet", "--cache-dir", cache, path)
			if code != 1 || !strings.Contains(stdout, "MISMATCH") || !strings.Contains(stdout, want.Digest) ||
				!strings.Contains(stdout, want.Where) || !strings.Contains(stdout, tc.claims[0]+" BROKEN") {
				t.Errorf("text output (exit %d) does not name the blob, its place and the claim:\n%s", code, stdout)
			}
			mountRefused(t, cache, path)
			restore()
			if got := mountedSum(t, cache, path, file); got != fileSum {
				t.Errorf("honest mount after the tampered one: %s has sha256 %s, want %s", file, got, fileSum)
			}
			if _, sum, code, stderr := runVerify(t, cache, path); code != 0 || !sum.OK {
				t.Errorf("verify of the restored copy: exit %d: %s", code, stderr)
			}
		})
	}
}

// TestVerifyTamperFixtures covers what the corpus cannot: a layer swapped for another of the same
// size, a diff_id claimed by two archives (sharing the cache) with different content, and truncated
// blobs. verify fails naming the blob and the claim, a mount refuses, and the honest image mounted
// afterwards shows its own content.
func TestVerifyTamperFixtures(t *testing.T) {
	requireFUSE(t)
	tarA, tarB := trustLayers(t)
	gzA, gzB := storedGzip(tarA), storedGzip(tarB)
	dA := digest.FromBytes(tarA)
	wantA := tarFileSums(t, tarA)
	dir := t.TempDir()
	cache := t.TempDir()
	check := func(t *testing.T, path string, claim string, digestWant string) {
		t.Helper()
		res, sum, code, stderr := runVerify(t, cache, path)
		if code != 1 || sum.OK {
			t.Fatalf("verify %s: exit %d %+v", path, code, sum)
		}
		ok := false
		for _, r := range res {
			if r.Verdict == "ok" {
				continue
			}
			named := r.Digest == digestWant || strings.Contains(r.Error, digestWant)
			if named && (slices.Contains(r.broken(), claim) || strings.Contains(r.Error, claim)) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("verify %s does not name %s and claim %q:\n%+v\n%s", path, digestWant, claim, res, stderr)
		}
		mountRefused(t, cache, path)
	}
	honestA := filepath.Join(dir, "honest-a")
	writeOCI(t, honestA, gzA, digest.FromBytes(gzA), dA, false)
	if _, sum, code, stderr := runVerify(t, cache, honestA); code != 0 || !sum.OK {
		t.Fatalf("honest fixture: exit %d: %s", code, stderr)
	}
	honestMount := func(t *testing.T) {
		t.Helper()
		for name, want := range wantA {
			if got := mountedSum(t, cache, honestA, name); got != want {
				t.Errorf("honest mount: %s has sha256 %s, want %s", name, got, want)
			}
			break
		}
	}

	t.Run("layer swapped for another of the same size", func(t *testing.T) {
		p := filepath.Join(dir, "swapped")
		writeOCI(t, p, gzA, digest.FromBytes(gzA), dA, false)
		rewrite(t, filepath.Join(p, "blobs", "sha256", digest.FromBytes(gzA).Encoded()), func([]byte) []byte { return gzB })
		check(t, p, "digest", digest.FromBytes(gzA).String())
		honestMount(t)
	})
	t.Run("diff_id claimed by another archive with other content", func(t *testing.T) {
		p := filepath.Join(dir, "claims-a")
		writeOCI(t, p, gzB, digest.FromBytes(gzB), dA, false) // B's bytes, honest digest, A's diff_id
		check(t, p, "diff_id", digest.FromBytes(gzB).String())
		plain := filepath.Join(dir, "claims-a-plain.tar")
		writeOCI(t, plain, tarB, dA, dA, true) // B's tar claiming to be A's (digest = diff_id)
		check(t, plain, "diff_id", dA.String())
		honestMount(t)
	})
	t.Run("truncated blob", func(t *testing.T) {
		p := filepath.Join(dir, "truncated")
		writeOCI(t, p, gzA, digest.FromBytes(gzA), dA, false)
		rewrite(t, filepath.Join(p, "blobs", "sha256", digest.FromBytes(gzA).Encoded()), func(b []byte) []byte { return b[:len(b)-100] })
		check(t, p, "size", digest.FromBytes(gzA).String())
		// In a tar, a layer member cut short (the tar is rewritten around it).
		tp := filepath.Join(dir, "truncated.tar")
		writeLegacy(t, tp, tarA[:len(tarA)-1536], dA)
		check(t, tp, "diff_id", dA.String())
		honestMount(t)
	})
}

// tarFileSums lists the sha256 of each regular file of a tar.
func tarFileSums(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			s := sha256.Sum256(body)
			out[h.Name] = hex.EncodeToString(s[:])
		}
	}
}
