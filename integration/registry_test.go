package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testRegistry is Debian's docker-registry serving plain HTTP on 127.0.0.1, its storage in a temp dir.
type testRegistry struct {
	t      *testing.T
	config string
	addr   string
	cmd    *exec.Cmd
}

func startRegistry(t *testing.T) *testRegistry {
	t.Helper()
	requireTool(t, "docker-registry")
	requireTool(t, "skopeo")
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := filepath.Join(dir, "config.yml")
	y := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n",
		filepath.Join(dir, "storage"), addr)
	if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &testRegistry{t: t, config: cfg, addr: addr}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *testRegistry) start() {
	r.t.Helper()
	r.cmd = exec.Command("docker-registry", "serve", r.config)
	r.cmd.Stdout, r.cmd.Stderr = io.Discard, io.Discard
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if resp, err := http.Get("http://" + r.addr + "/v2/"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.t.Fatalf("docker-registry on %s did not come up", r.addr)
}

func (r *testRegistry) stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

// push copies an image of the corpus (src in skopeo's transport syntax) to repo:tag.
func (r *testRegistry) push(src, ref string, all bool) {
	r.t.Helper()
	args := []string{"copy", "--quiet", "--dest-tls-verify=false"}
	if all {
		args = append(args, "--all")
	}
	args = append(args, src, "docker://"+r.addr+"/"+ref)
	if b, err := exec.Command("skopeo", args...).CombinedOutput(); err != nil {
		r.t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, b)
	}
}

// proxy is a loopback reverse proxy in front of a registry that counts the blob bytes it passes and
// can inject faults.
type proxy struct {
	addr      string
	blobBytes atomic.Int64
	tooMany   atomic.Int32 // answer this many blob requests with 429 Retry-After: 1
	got429    atomic.Int32
	mu        sync.Mutex
	corrupt   string // flip a byte of every response for a blob whose path contains this
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	u, _ := url.Parse("http://" + target)
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &proxy{}
	rp.ModifyResponse = func(resp *http.Response) error {
		if strings.Contains(resp.Request.URL.Path, "/blobs/") && resp.Request.Method == http.MethodGet {
			p.mu.Lock()
			// Ranged reads (the layers), not the config.
			c := p.corrupt != "" && resp.StatusCode == http.StatusPartialContent && strings.Contains(resp.Request.URL.Path, p.corrupt)
			p.mu.Unlock()
			resp.Body = &countingBody{ReadCloser: resp.Body, n: &p.blobBytes, corrupt: c}
		}
		return nil
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.Contains(req.URL.Path, "/blobs/") && p.tooMany.Load() > 0 {
			p.tooMany.Add(-1)
			p.got429.Add(1)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		rp.ServeHTTP(w, req)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	p.addr = l.Addr().String()
	return p
}

type countingBody struct {
	io.ReadCloser
	n       *atomic.Int64
	corrupt bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.corrupt {
		for i := 0; i < n; i += 4096 {
			p[i] ^= 0xff
		}
	}
	b.n.Add(int64(n))
	return n, err
}

// TestRegistryViews pushes corpus images (gzip, zstd:chunked, uncompressed, a multi-platform index)
// to a local registry and mounts them by reference: the tree must equal umoci unpack's of the image.
func TestRegistryViews(t *testing.T) {
	corpus := corpusDir(t)
	requireTool(t, "getfattr")
	reg := startRegistry(t)
	d := filepath.Join(corpus, "artifacts", "debian-layered")
	for _, c := range []struct {
		name, src, ref string
		all            bool
		flags          []string
		want           string
	}{
		{"gzip", "oci:" + d + "/oci-gzip:latest", "corpus/gzip:l3", false, nil, "l3"},
		{"uncompressed-by-digest", "oci:" + d + "/oci-uncompressed:latest", "corpus/plain:l3", false, nil, "l3"},
		{"zstd-chunked", "oci:" + d + "/oci-zstd-chunked:latest", "corpus/chunked:l3", false, nil, "l3"},
		{"index/arm64", "oci:" + d + "/oci-nested-index:latest", "corpus/multi:l3", true, []string{"--platform", "linux/arm64/v8"}, "l3-umoci"},
		{"index/amd64", "", "corpus/multi:l3", false, []string{"--platform", "linux/amd64"}, "l3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.src != "" {
				reg.push(c.src, c.ref, c.all)
			}
			ref := "docker://" + reg.addr + "/" + c.ref
			if strings.Contains(c.name, "by-digest") {
				out, err := exec.Command("skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", ref).Output()
				if err != nil {
					t.Fatalf("skopeo inspect: %v", err)
				}
				ref = "docker://" + reg.addr + "/corpus/plain@" + strings.TrimSpace(string(out))
			}
			mnt := mountImage(t, ref, append([]string{"--tls-verify=false", "--cache-dir", t.TempDir()}, c.flags...)...)
			compareWithReference(t, mnt, filepath.Join(corpus, "listings", "debian-layered."+c.want))
		})
	}
}

// TestRegistryLazy counts the blob bytes a loopback proxy passes: after the mount indexed the layers,
// cat of one small file of an uncompressed image fetches at most one chunk.
func TestRegistryLazy(t *testing.T) {
	corpus := corpusDir(t)
	reg := startRegistry(t)
	reg.push("oci:"+filepath.Join(corpus, "artifacts", "debian-layered", "oci-uncompressed")+":latest", "corpus/plain:l3", false)
	px := startProxy(t, reg.addr)
	mnt := mountImage(t, "docker://"+px.addr+"/corpus/plain:l3", "--tls-verify=false", "--cache-dir", t.TempDir())
	indexing := px.blobBytes.Load()
	px.blobBytes.Store(0)
	b, err := os.ReadFile(filepath.Join(mnt, "etc", "debian_version"))
	if err != nil || len(b) == 0 {
		t.Fatalf("reading etc/debian_version: %v (%d bytes)", err, len(b))
	}
	got := px.blobBytes.Load()
	t.Logf("indexing fetched %d blob bytes; cat of etc/debian_version fetched %d", indexing, got)
	if got > 1<<20 {
		t.Fatalf("cat of one small file fetched %d blob bytes, want at most %d (one chunk)", got, 1<<20)
	}
	// Again: from the chunk cache, nothing fetched.
	px.blobBytes.Store(0)
	if _, err := os.ReadFile(filepath.Join(mnt, "etc", "debian_version")); err != nil {
		t.Fatal(err)
	}
	if n := px.blobBytes.Load(); n != 0 {
		t.Errorf("second read fetched %d blob bytes, want 0 (page cache or chunk cache)", n)
	}
}

// TestRegistryFaults: the registry stopped mid-read gives EIO (no hang) and works again once it is
// back; 429 with Retry-After is waited out; a blob whose bytes do not match its digest is refused and
// leaves nothing in the chunk cache.
func TestRegistryFaults(t *testing.T) {
	corpus := corpusDir(t)
	reg := startRegistry(t)
	reg.push("oci:"+filepath.Join(corpus, "artifacts", "debian-layered", "oci-uncompressed")+":latest", "corpus/plain:l3", false)
	px := startProxy(t, reg.addr)
	cache := t.TempDir()
	mnt := mountImage(t, "docker://"+px.addr+"/corpus/plain:l3", "--tls-verify=false", "--cache-dir", cache, "--registry-timeout", "2s")

	t.Run("stopped", func(t *testing.T) {
		reg.stop()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "cat", filepath.Join(mnt, "etc", "adduser.conf")).CombinedOutput()
		if ctx.Err() != nil {
			t.Fatal("cat hung on a stopped registry")
		}
		if err == nil || !strings.Contains(string(out), "Input/output error") {
			t.Fatalf("cat with the registry stopped: err %v, output %q; want EIO", err, out)
		}
		reg.start()
		if _, err := os.ReadFile(filepath.Join(mnt, "etc", "adduser.conf")); err != nil {
			t.Fatalf("after the registry is back: %v", err)
		}
	})
	t.Run("429", func(t *testing.T) {
		px.tooMany.Store(2)
		if _, err := os.ReadFile(filepath.Join(mnt, "usr", "share", "common-licenses", "GPL-3")); err != nil {
			t.Fatalf("read through 429s: %v", err)
		}
		if px.got429.Load() != 2 {
			t.Fatalf("proxy answered %d 429s, want 2", px.got429.Load())
		}
	})
	t.Run("bad-digest", func(t *testing.T) {
		reg.push("oci:"+filepath.Join(corpus, "artifacts", "debian-layered", "oci-gzip")+":latest", "corpus/gzip:l3", false)
		px.mu.Lock()
		px.corrupt = "sha256:"
		px.mu.Unlock()
		defer func() { px.mu.Lock(); px.corrupt = ""; px.mu.Unlock() }()
		c2 := t.TempDir()
		_, stderr, code := imgfs(t, "inspect", "--quiet", "--tls-verify=false", "--cache-dir", c2, "--registry-timeout", "2s", "docker://"+px.addr+"/corpus/gzip:l3")
		if code == 0 {
			t.Fatal("inspect of corrupted blobs succeeded")
		}
		t.Logf("refused: %s", stderr)
		if strings.Contains(stderr, "panic") {
			t.Errorf("panic: %s", stderr)
		}
		if ents, _ := os.ReadDir(filepath.Join(c2, "chunks", "v1", "sha256")); len(ents) != 0 {
			t.Errorf("chunk cache holds %d blob(s) after a digest mismatch", len(ents))
		}
	})
}
