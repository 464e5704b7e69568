package archive

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/compression"
)

// corpusDir holds real archives made by real tools (see /work/shared/corpus/CORPUS.md). The test is
// skipped when it is absent; the integration tests require it.
const corpusDir = "/var/lib/imgfs-corpus/artifacts/debian-layered"

// corpusSelection is one image to select in a corpus artifact and its expected layer count.
type corpusSelection struct {
	ref      string
	platform *ispec.Platform
	layers   int
	umociL3  bool // the L3 layer packed by umoci (not the buildah one the other artifacts share)
}

// corpusExpect lists, for artifacts with more than one image, how many Images() lists and what to
// select. Every other artifact must hold one image of 3 layers.
var corpusExpect = map[string]struct {
	images int
	sel    []corpusSelection
}{
	"podman-docker-archive-multi.tar": {2, []corpusSelection{
		{ref: "localhost/corpus/debian-layered:latest", layers: 3}, {ref: "corpus/debian-layered:l2", layers: 2}}},
	"docker-save-20.10-multi.tar": {2, []corpusSelection{
		{ref: "corpus/debian-layered:latest", layers: 3}, {ref: "corpus/debian-layered:l3", layers: 3},
		{ref: "docker.io/corpus/debian-layered:l2", layers: 2}}},
	"containerd-export-uncompressed-multi.tar": {2, []corpusSelection{
		{ref: "corpus/debian-layered:latest", layers: 3}, {ref: "docker.io/corpus/debian-layered:l3", layers: 3},
		{ref: "corpus/debian-layered:l2", layers: 2}}},
	"oci-umoci-src": {4, []corpusSelection{
		{ref: "l1", layers: 1}, {ref: "l2", layers: 2}, {ref: "l3", layers: 3}, {ref: "l3-umoci", layers: 3, umociL3: true}}},
	"oci-nested-index": {2, []corpusSelection{
		{ref: "latest", platform: &ispec.Platform{OS: "linux", Architecture: "amd64"}, layers: 3},
		{ref: "latest", platform: &ispec.Platform{OS: "linux", Architecture: "arm64"}, layers: 3, umociL3: true}}},
}

func TestCorpus(t *testing.T) {
	t.Parallel()
	entries, err := os.ReadDir(corpusDir)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("no corpus at %s", corpusDir)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var ref []digest.Digest // the diff_ids every l3 image shares
	for _, de := range entries {
		name := de.Name()
		if !de.IsDir() && !strings.HasSuffix(name, ".tar") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			a, err := Open(ctx, filepath.Join(corpusDir, name), Options{CacheDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			want, ok := corpusExpect[name]
			if !ok {
				want.images, want.sel = 1, []corpusSelection{{layers: 3}}
			}
			if got := a.Images(); len(got) != want.images {
				t.Fatalf("%s: %d images, want %d: %+v", a.Format(), len(got), want.images, got)
			}
			for _, s := range want.sel {
				img, err := a.Image(ctx, s.ref, s.platform)
				if err != nil {
					t.Fatal(err)
				}
				checkCorpusImage(t, name, img, s.layers)
				if s.layers != 3 {
					continue
				}
				var ids []digest.Digest
				for _, l := range img.Layers {
					ids = append(ids, l.DiffID)
				}
				switch {
				case s.umociL3:
					if slices.Equal(ids, ref) {
						t.Errorf("%q: umoci L3 has the buildah diff_ids", s.ref)
					}
				case ref == nil:
					ref = ids
				case !slices.Equal(ids, ref):
					t.Errorf("%q: diff_ids %v, other artifacts have %v", s.ref, ids, ref)
				}
			}
		})
	}
}

// checkCorpusImage checks a real image: the layer count, diff_ids equal to the config's, uncompressed
// layers named by their diff_id, blobs inside the source with the magic their media type says (but for
// the artifact mislabelled on purpose), and the smallest blob's bytes hashing to its digest (when small).
func checkCorpusImage(t *testing.T, artifact string, img *Image, layers int) {
	t.Helper()
	if len(img.Layers) != layers || len(img.Config.RootFS.DiffIDs) != layers {
		t.Fatalf("%d layers, %d diff_ids, want %d", len(img.Layers), len(img.Config.RootFS.DiffIDs), layers)
	}
	smallest := 0
	for i, l := range img.Layers {
		if l.DiffID != img.Config.RootFS.DiffIDs[i] {
			t.Errorf("layer %d: diff_id %s, config has %s", i+1, l.DiffID, img.Config.RootFS.DiffIDs[i])
		}
		b, err := l.Blob()
		if err != nil {
			t.Fatal(err)
		}
		if b.Size != l.Size || b.Size <= 0 {
			t.Errorf("layer %d: blob of %d bytes, layer says %d", i+1, b.Size, l.Size)
		}
		c, err := compression.Detect(b.R, b.Off)
		if err != nil {
			t.Fatal(err)
		}
		if c != compression.None && l.MediaType == ispec.MediaTypeImageLayer {
			t.Errorf("layer %d: %s data labelled %s", i+1, c, l.MediaType)
		}
		if c == compression.None {
			hdr := make([]byte, 512)
			if _, err := b.R.ReadAt(hdr, b.Off); err != nil || string(hdr[257:262]) != "ustar" {
				t.Errorf("layer %d: blob at %d is not a tar (%v)", i+1, b.Off, err)
			}
			if l.MediaType == ispec.MediaTypeImageLayer && l.Digest != l.DiffID {
				t.Errorf("layer %d: uncompressed, digest %s != diff_id %s", i+1, l.Digest, l.DiffID)
			}
			if l.MediaType != ispec.MediaTypeImageLayer && !strings.Contains(artifact, "mislabeled") {
				t.Errorf("layer %d: tar data labelled %s", i+1, l.MediaType)
			}
		}
		if l.Size < img.Layers[smallest].Size {
			smallest = i
		}
	}
	l := img.Layers[smallest]
	if l.Size > 1<<20 {
		return // only the small L3 is worth hashing here
	}
	b, _ := l.Blob()
	dg := digest.SHA256.Digester()
	if _, err := io.Copy(dg.Hash(), io.NewSectionReader(b.R, b.Off, b.Size)); err != nil {
		t.Fatal(err)
	}
	if dg.Digest() != l.Digest {
		t.Errorf("layer %d: blob hashes to %s, digest says %s", smallest+1, dg.Digest(), l.Digest)
	}
}
