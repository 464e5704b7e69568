package integration

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/imgfs/imgfs/internal/sample"
	"github.com/imgfs/imgfs/internal/tartest"
)

// TestArchiveChangedUnderLiveMount changes, truncates or deletes the archive under a live read-only
// and a live writable mount, with the file's layer stored plain and gzip-compressed, and then reads the
// file (first read after the change, so no page cache holds it), and in the writable mount copies it
// up: every read gives the original bytes or EIO, never other bytes (a deleted archive, still open,
// gives its bytes), and a copy-up that cannot read the original fails rather than keeping a wrong copy.
func TestArchiveChangedUnderLiveMount(t *testing.T) {
	requireFUSE(t)
	r := rand.New(rand.NewPCG(7, 9))
	body := make([]byte, 8<<20)
	for i := range body {
		body[i] = byte(r.Uint32())
	}
	want := sha256.Sum256(body)
	for _, gz := range []bool{false, true} {
		for _, how := range []string{"changed", "truncated", "deleted"} {
			for _, writable := range []bool{false, true} {
				name := map[bool]string{false: "plain", true: "gzip"}[gz] + "/" + how + "/" + map[bool]string{false: "ro", true: "rw"}[writable]
				t.Run(name, func(t *testing.T) {
					dir := t.TempDir()
					archive := filepath.Join(dir, "img.tar")
					ms := []tartest.Member{tartest.File("small.txt", "small\n"), {Name: "data.bin", Body: body, Mode: 0o644}}
					if err := sample.WriteArchive(archive, "faults:1", [][]tartest.Member{ms}, gz); err != nil {
						t.Fatal(err)
					}
					var flags []string
					if writable {
						flags = []string{"--upper", filepath.Join(dir, "upper")}
					}
					mnt := mountImage(t, archive, flags...)
					if b, err := os.ReadFile(filepath.Join(mnt, "small.txt")); err != nil || string(b) != "small\n" {
						t.Fatalf("small.txt before the change: %q %v", b, err)
					}
					raw, err := os.ReadFile(archive)
					if err != nil {
						t.Fatal(err)
					}
					// Where to damage: the middle of data.bin's bytes (plain), the middle of the archive (gzip).
					mid := len(raw) / 2
					if !gz {
						at := bytes.Index(raw, body[:4096])
						if at < 0 {
							t.Fatal("data.bin's bytes not found in the archive")
						}
						mid = at + len(body)/2
					}
					switch how {
					case "changed":
						f, err := os.OpenFile(archive, os.O_WRONLY, 0)
						if err != nil {
							t.Fatal(err)
						}
						junk := bytes.Repeat([]byte{0x5a}, 64<<10)
						if _, err := f.WriteAt(junk, int64(mid)); err != nil {
							t.Fatal(err)
						}
						f.Close()
					case "truncated":
						if err := os.Truncate(archive, int64(mid)); err != nil {
							t.Fatal(err)
						}
					case "deleted":
						if err := os.Remove(archive); err != nil {
							t.Fatal(err)
						}
					}
					check := func(what string, b []byte, err error) {
						t.Helper()
						switch {
						case err != nil && !errors.Is(err, syscall.EIO):
							t.Errorf("%s: %v, want EIO or the original bytes", what, err)
						case err == nil && sha256.Sum256(b) != want:
							t.Errorf("%s: %d bytes that are not the original's", what, len(b))
						default:
							t.Logf("%s: %v", what, err)
						}
					}
					b, err := os.ReadFile(filepath.Join(mnt, "data.bin"))
					check("read", b, err)
					if how == "deleted" && err != nil {
						t.Errorf("read of a deleted archive (its bytes are still behind the open file): %v", err)
					}
					if !writable {
						return
					}
					// A copy-up (open for writing) reads the whole lower file.
					f, err := os.OpenFile(filepath.Join(mnt, "data.bin"), os.O_WRONLY|os.O_APPEND, 0)
					if err == nil {
						_, err = f.Write([]byte("appended"))
						if cerr := f.Close(); err == nil {
							err = cerr
						}
					}
					if err != nil {
						check("copy-up", nil, err)
						if b, err := os.ReadFile(filepath.Join(dir, "upper", "data.bin")); err == nil {
							t.Errorf("a failed copy-up left data.bin (%d bytes) in the upper directory", len(b))
						}
						return
					}
					b, err = os.ReadFile(filepath.Join(mnt, "data.bin"))
					if err == nil && !bytes.HasSuffix(b, []byte("appended")) {
						t.Errorf("after the append: no appended bytes at the end")
					}
					if err == nil {
						b = b[:len(b)-len("appended")]
					}
					check("read after the copy-up", b, err)
				})
			}
		}
	}
}
