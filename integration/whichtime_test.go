package integration

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// whichOut is the part of `imgfs which --json` the tests read.
type whichOut struct {
	Path     string `json:"path"`
	Resolved string `json:"resolved"`
	Events   []struct {
		Layer  int    `json:"layer"`
		Digest string `json:"digest"`
		Action string `json:"action"`
		Reason string `json:"reason"`
		Member *struct {
			Name         string `json:"name"`
			Path         string `json:"path"`
			Type         string `json:"type"`
			Size         int64  `json:"size"`
			HeaderOffset int64  `json:"headerOffset"`
			DataOffset   int64  `json:"dataOffset"`
			SHA256       string `json:"sha256"`
		} `json:"member"`
	} `json:"events"`
	Final struct {
		Present bool `json:"present"`
		Layer   int  `json:"layer"`
	} `json:"final"`
}

func runWhich(t *testing.T, args ...string) (whichOut, string, int) {
	t.Helper()
	out, stderr, code := imgfs(t, append([]string{"which", "-q", "--json", "--cache-dir", cacheDir}, args...)...)
	var w whichOut
	if err := json.Unmarshal([]byte(out), &w); err != nil {
		t.Fatalf("which %v: %v (exit %d, stderr %s)\n%s", args, err, code, stderr, out)
	}
	return w, stderr, code
}

func (w whichOut) summary() string {
	var s []string
	for _, e := range w.Events {
		x := string(rune('0'+e.Layer)) + " " + e.Action
		if e.Reason != "" {
			x += "/" + e.Reason
		}
		s = append(s, x)
	}
	return strings.Join(s, ", ")
}

// TestWhichCorpus asks which layers did what to paths of the debian-layered image, in an uncompressed
// OCI layout whose blobs the test reads itself: the offsets are checked against the layer blobs
// (archive/tar reads the member's header at the header offset, the data offset holds bytes with the
// reported sha256), and the deleted-file case (added in layer 1, whited out in layer 3) is absent.
func TestWhichCorpus(t *testing.T) {
	dir := corpusDir(t)
	arc := filepath.Join(dir, "artifacts/debian-layered/oci-uncompressed")
	blob := func(d string) []byte {
		b, err := os.ReadFile(filepath.Join(arc, "blobs/sha256", strings.TrimPrefix(d, "sha256:")))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		path, resolved, events string
		present                bool
	}{
		{"/etc/motd", "/etc/motd", "1 added, 3 hidden/whiteout", false},
		{"/bin/rgrep", "/usr/bin/rgrep", "1 added, 3 hidden/whiteout", false},
		{"/etc/debian_version", "/etc/debian_version", "1 added, 3 changed", true},
		{"/usr/share/man/man1/bash.1.gz", "/usr/share/man/man1/bash.1.gz", "1 added, 3 hidden/parent-whiteout", false},
		{"/etc/apt/apt.conf.d/01autoremove", "/etc/apt/apt.conf.d/01autoremove", "1 added, 3 hidden/opaque-parent", false},
		{"/srv/corpus/links/hard-b", "/srv/corpus/links/hard-b", "2 added, 3 hidden/whiteout", false},
		{"/usr/bin/newgrp", "/usr/bin/newgrp", "1 added, 3 changed", true},
	}
	for _, tc := range cases {
		w, stderr, code := runWhich(t, arc, tc.path)
		if code != 0 || w.Resolved != tc.resolved || w.summary() != tc.events || w.Final.Present != tc.present {
			t.Errorf("which %s: exit %d (%s), resolved %s, events %q, final %+v; want %s, %q, present %v",
				tc.path, code, stderr, w.Resolved, w.summary(), w.Final, tc.resolved, tc.events, tc.present)
			continue
		}
		for _, e := range w.Events {
			m := e.Member
			if m == nil {
				continue
			}
			raw := blob(e.Digest)
			h, err := tar.NewReader(bytes.NewReader(raw[m.HeaderOffset:])).Next()
			if err != nil || h.Name != m.Name {
				t.Errorf("%s layer %d: tar header at %d: %v %v, want %q", tc.path, e.Layer, m.HeaderOffset, h, err, m.Name)
			}
			if m.Type == "file" {
				sum := sha256.Sum256(raw[m.DataOffset : m.DataOffset+m.Size])
				if hex.EncodeToString(sum[:]) != m.SHA256 {
					t.Errorf("%s layer %d: data at %d does not hash to %s", tc.path, e.Layer, m.DataOffset, m.SHA256)
				}
			}
		}
	}
	// Every whiteout of layer 3, as the corpus lists them, hides its path in layer 3.
	for _, wh := range readWhiteouts(t, filepath.Join(dir, "listings/debian-layered.l3.whiteouts.txt"), 3) {
		d, base := filepath.Split(wh)
		if base == ".wh..wh..opq" {
			continue
		}
		p := "/" + d + strings.TrimPrefix(base, ".wh.")
		w, _, code := runWhich(t, arc, p)
		last := w.Events[len(w.Events)-1]
		if code != 0 || last.Layer != 3 || last.Action != "hidden" || last.Reason != "whiteout" || last.Member.Name != wh || w.Final.Present {
			t.Errorf("which %s: exit %d, events %q, final %+v", p, code, w.summary(), w.Final)
		}
	}
	// umoci's L3 writes a whiteout below a path it turns into a file: the file hides the old child.
	w, _, _ := runWhich(t, "--image", "l3-umoci", filepath.Join(dir, "artifacts/debian-layered/oci-umoci-src"),
		"/srv/corpus/typechange/dir-becomes-file/child")
	if w.summary() != "2 added, 3 hidden/parent-replaced" || w.Final.Present {
		t.Errorf("dir-becomes-file/child: %q, %+v", w.summary(), w.Final)
	}
	// The text form: the resolved path, one row per event, the final state.
	out, stderr, code := imgfs(t, "which", "-q", "--cache-dir", cacheDir, arc, "/bin/rgrep")
	rows := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(rows) != 5 || rows[0] != "/bin/rgrep = /usr/bin/rgrep (via /bin -> usr/bin)" ||
		!strings.Contains(rows[2], `added`) || !strings.Contains(rows[2], `"usr/bin/rgrep"`) ||
		!strings.Contains(rows[3], `hidden (whiteout)`) || !strings.Contains(rows[3], `"usr/bin/.wh.rgrep"`) ||
		rows[4] != "merged view: absent" {
		t.Errorf("which text: exit %d (%s)\n%s", code, stderr, out)
	}
	// A path no layer has: exit 1 and one line that says so.
	_, stderr, code = imgfs(t, "which", "-q", "--cache-dir", cacheDir, arc, "/no/such/file")
	if code != 1 || !strings.Contains(stderr, "/no/such/file: no layer has this path") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("absent path: exit %d, stderr %q", code, stderr)
	}
	// Trouble is not "not found": exit 2, as grep.
	_, stderr, code = imgfs(t, "which", "-q", "--cache-dir", cacheDir, filepath.Join(t.TempDir(), "missing.tar"), "/etc")
	if code != 2 || !strings.Contains(stderr, "missing.tar") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("missing archive: exit %d, stderr %q", code, stderr)
	}
}

// readWhiteouts returns the whiteout names a corpus whiteout listing gives for layer n.
func readWhiteouts(t *testing.T, path string, n int) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	layer := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ln := sc.Text()
		if strings.HasPrefix(ln, "## layer ") {
			layer++
			continue
		}
		if layer == n && ln != "" {
			fs := strings.Fields(ln)
			out = append(out, fs[len(fs)-1])
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no whiteouts in layer %d", path, n)
	}
	return out
}

// tvfEntry is one line of a `tar -tvf` listing.
type tvfEntry struct{ mode, size, name string }

func readTVF(t *testing.T, path string) []tvfEntry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []tvfEntry
	for _, ln := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		// mode owner size date time name: the name starts after the fifth field.
		fs := strings.Fields(ln)
		idx := 0
		for i := 0; i < 5; i++ {
			idx += strings.Index(ln[idx:], fs[i]) + len(fs[i])
		}
		name := strings.TrimPrefix(ln[idx:], " ")
		switch {
		case fs[0][0] == 'l':
			name = name[:strings.Index(name, " -> ")]
		case fs[0][0] == 'h':
			name = name[:strings.Index(name, " link to ")]
		}
		out = append(out, tvfEntry{mode: fs[0], size: fs[2], name: name})
	}
	return out
}

// TestTimelineCorpus writes the timeline of the debian-layered image (uncompressed and gzip layers)
// and checks it against GNU tar's listing of each layer (one line per member, in order, with its
// type, permissions, size and path) and the corpus whiteout listing, then runs mactime over it: the
// known file's date and name, the deleted file, a whiteout marker and a history event.
func TestTimelineCorpus(t *testing.T) {
	requireTool(t, "mactime")
	dir := corpusDir(t)
	for _, name := range []string{"oci-uncompressed", "oci-gzip"} {
		t.Run(name, func(t *testing.T) {
			arc := filepath.Join(dir, "artifacts/debian-layered", name)
			body := filepath.Join(t.TempDir(), "body.txt")
			if _, stderr, code := imgfs(t, "timeline", "-q", "--cache-dir", cacheDir, "-o", body, arc); code != 0 {
				t.Fatalf("timeline: exit %d: %s", code, stderr)
			}
			b, err := os.ReadFile(body)
			if err != nil {
				t.Fatal(err)
			}
			perLayer := map[string][][]string{}
			var history [][]string
			for _, ln := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
				f := strings.Split(ln, "|")
				if len(f) != 11 {
					t.Fatalf("%d fields: %q", len(f), ln)
				}
				l := f[2][:strings.IndexByte(f[2], '-')]
				if l == "0" {
					history = append(history, f)
					continue
				}
				perLayer[l] = append(perLayer[l], f)
			}
			for n := 1; n <= 3; n++ {
				l := string(rune('0' + n))
				tvf := readTVF(t, filepath.Join(dir, "listings/debian-layered.l3.layer"+l+".tvf.txt"))
				got := perLayer[l]
				if len(got) != len(tvf) {
					t.Errorf("layer %d: %d lines, tar lists %d members", n, len(got), len(tvf))
					continue
				}
				for i, e := range tvf {
					f := got[i]
					want := strings.TrimSuffix(strings.TrimPrefix(e.name, "./"), "/")
					if want == "." {
						want = ""
					}
					name := f[1]
					for _, s := range []string{" (deleted)", " (deleted-realloc)"} {
						name = strings.TrimSuffix(name, s)
					}
					if k := strings.Index(name, " -> "); k >= 0 && f[3][0] == 'l' {
						name = name[:k]
					}
					name = strings.ReplaceAll(strings.ReplaceAll(name, "%7C", "|"), "%25", "%")
					typ := map[byte]byte{'-': 'r', 'h': 'r'}[e.mode[0]]
					if typ == 0 {
						typ = e.mode[0]
					}
					if name != "/"+want || f[3][2] != typ || f[3][3:] != e.mode[1:] && e.mode[0] != 'l' ||
						(e.mode[0] == '-' && f[6] != e.size) {
						t.Errorf("layer %d member %d: %v; tar lists %+v", n, i+1, f, e)
					}
				}
			}
			lines := string(b)
			for _, want := range []string{
				"|/etc/motd (deleted)|1-", "|/etc/.wh.motd (deleted)|3-", "|/usr/bin/rgrep (deleted)|1-",
				"|/usr/share/locale (deleted)|1-", "|/etc/debian_version (deleted-realloc)|1-", "|/etc/debian_version|3-",
			} {
				if !strings.Contains(lines, want) {
					t.Errorf("timeline lacks %q", want)
				}
			}
			for _, wh := range readWhiteouts(t, filepath.Join(dir, "listings/debian-layered.l3.whiteouts.txt"), 3) {
				if !strings.Contains(lines, "|/"+wh+" (deleted)|3-") {
					t.Errorf("whiteout %s not marked deleted in layer 3", wh)
				}
			}
			if len(history) != 3 {
				t.Errorf("%d history lines", len(history))
			}

			out, err := exec.Command("mactime", "-b", body, "-y", "-z", "UTC", "-d").Output()
			if err != nil {
				t.Fatalf("mactime: %v", err)
			}
			mac := string(out)
			for _, want := range []string{
				`2020-01-29T12:09:`,
				`,30,m...,r/rrwxr-xr-x,0,0,1-`,
				`"/usr/bin/rgrep (deleted)"`,
				`,286,m...,r/rrw-r--r--,0,0,1-`,
				`"/etc/motd (deleted)"`,
				`,0,m...,w/r---------,0,0,3-`,
				`"/etc/.wh.motd (deleted)"`,
				`,0,m..b,v/v---------,0,0,0-1,"[image history 1/3, layer 1 sha256:`,
				`] debootstrap --variant=minbase bookworm (comment: L1: debootstrap rootfs) (author: corpus builder)"`,
			} {
				if !strings.Contains(mac, want) {
					t.Errorf("mactime output lacks %s", want)
				}
			}
			// The lines as a whole: rgrep's at its tar date, motd's at its own.
			if !containsLine(mac, "2020-01-29T12:09:17Z,30,m...,r/rrwxr-xr-x,0,0,", `"/usr/bin/rgrep (deleted)"`) ||
				!containsLine(mac, "2026-07-02T19:05:00Z,286,m...,r/rrw-r--r--,0,0,", `"/etc/motd (deleted)"`) {
				t.Errorf("mactime lines of rgrep and motd missing")
			}
		})
	}
}

// containsLine reports whether some line of s starts with prefix and ends with suffix.
func containsLine(s, prefix, suffix string) bool {
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) && strings.HasSuffix(sc.Text(), suffix) {
			return true
		}
	}
	return false
}

// TestTimelineOutputAtomic checks that -o replaces FILE only with a complete timeline: a failing run
// leaves the old file as it was and no temporary beside it.
func TestTimelineOutputAtomic(t *testing.T) {
	_, arc := writeSample(t, "sample.tar")
	out := filepath.Join(t.TempDir(), "body.txt")
	if err := os.WriteFile(out, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, code := imgfs(t, "timeline", "-q", "--cache-dir", cacheDir, "--image", "no-such-image", "-o", out, arc); code == 0 {
		t.Fatal("timeline of a missing image succeeded")
	}
	if b, _ := os.ReadFile(out); string(b) != "old\n" {
		t.Fatalf("failed run changed %s: %q", out, b)
	}
	if _, stderr, code := imgfs(t, "timeline", "-q", "--cache-dir", cacheDir, "-o", out, arc); code != 0 {
		t.Fatalf("timeline: exit %d: %s", code, stderr)
	}
	b, _ := os.ReadFile(out)
	stdout, _, _ := imgfs(t, "timeline", "-q", "--cache-dir", cacheDir, arc)
	if len(b) == 0 || string(b) != stdout || strings.Count(string(b), "\n") != strings.Count(stdout, "|")/10 {
		t.Errorf("-o and stdout differ, or lines are not 11 fields:\n%s", b)
	}
	ents, _ := os.ReadDir(filepath.Dir(out))
	if len(ents) != 1 {
		t.Errorf("left beside the output: %v", ents)
	}
}
