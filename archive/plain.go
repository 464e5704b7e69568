package archive

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/compression"
	"github.com/imgfs/imgfs/internal/atomicfile"
	"github.com/imgfs/imgfs/internal/digests"
)

// FormatPlainTar is a tar that is not an image archive (a docker export, a release tarball, a backup),
// possibly wrapped whole in gzip or zstd: a one-layer image whose layer blob is the file itself.
const FormatPlainTar Format = "plain-tar"

// errManyMembers ends the outer scan of a tar with more members than any image archive has.
var errManyMembers = errorf(ErrFormat, "more than %d tar members", maxMembers)

// plainImage is the one image of a plain tarball.
type plainImage struct {
	file   *os.File
	size   int64
	comp   compression.Format
	digest digest.Digest // sha256 of the file
	diffID digest.Digest // sha256 of the uncompressed tar
}

// plainSumDir is where the claims of plain tarballs are remembered, by file identity.
func plainSumDir(cacheDir string) string { return filepath.Join(cacheDir, "plain-sum", "v1") }

// plainSum is a remembered pair of claims: what one pass over the file found, for the file as it was.
type plainSum struct {
	Identity string        `json:"identity"`
	Size     int64         `json:"size"`
	Digest   digest.Digest `json:"digest"`
	DiffID   digest.Digest `json:"diff_id"`
}

// loadPlain makes the archive a plain tarball: one image of one layer, the file itself. The claims
// (sha256 of the file, of its uncompressed tar) come from one pass over the file, remembered under
// CacheDir by the file's identity (device, inode, size, mtime, ctime); package index proves them again
// when it indexes the layer, so a wrong remembered claim is refused there, never served.
func (a *Archive) loadPlain(ctx context.Context, ts *tarSource, opts Options) error {
	f := ts.file
	if ts.origin != nil {
		f = ts.origin
	}
	if f == nil || (ts.origin == nil && ts.fileOff != 0) {
		return errorf(ErrFormat, "not an image archive, and not a tar file that can be read as a layer")
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	p := &plainImage{file: f, size: st.Size(), comp: a.comp}
	id, err := compression.FileIdentity(f)
	if err != nil {
		return err
	}
	cache := plainSumPath(opts.CacheDir, id)
	if s, ok := readPlainSum(cache, id, p.size); ok {
		p.digest, p.diffID = s.Digest, s.DiffID
	} else {
		// The outer stream of a compressed file was hashed as it was decompressed (now, or when its
		// checkpoints were made for this very file): its diff ID saves a second decompression.
		var known digest.Digest
		if st, ok := ts.r.(*compression.Stream); ok && a.comp != compression.None {
			if _, err := digests.CheckSHA256(st.DiffID()); err == nil {
				known = st.DiffID()
			}
		}
		if p.digest, p.diffID, err = hashPlain(ctx, f, p.size, a.comp, known); err != nil {
			return fmt.Errorf("hashing the tarball: %w", err)
		}
		if cache != "" {
			if err := writePlainSum(cache, &plainSum{Identity: id, Size: p.size, Digest: p.digest, DiffID: p.diffID}); err != nil {
				a.log.Warn("archive: tarball hashed but not remembered", "path", a.path, "reason", err)
			}
		}
	}
	a.format = FormatPlainTar
	a.addEntry(&entry{ref: ImageRef{Index: a.newGroup()}, plain: p})
	return nil
}

// hashPlain reads the file once: its sha256, and the sha256 of its decompressed stream (unless known,
// the diff ID of a compressed file's stream, is given).
func hashPlain(ctx context.Context, f *os.File, size int64, c compression.Format, known digest.Digest) (d, x digest.Digest, err error) {
	fileHash := sha256.New()
	r := io.TeeReader(&ctxReader{ctx: ctx, r: io.NewSectionReader(f, 0, size)}, fileHash)
	if c == compression.None || known != "" {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return "", "", err
		}
		d = digest.NewDigest(digest.SHA256, fileHash)
		return d, cmp.Or(known, d), nil
	}
	dr, _, err := compression.NewReader(r)
	if err != nil {
		return "", "", err
	}
	defer dr.Close()
	tarHash := sha256.New()
	if _, err := io.Copy(tarHash, dr); err != nil {
		return "", "", fmt.Errorf("%s: %w", c, err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil { // trailing bytes belong to the blob too
		return "", "", err
	}
	return digest.NewDigest(digest.SHA256, fileHash), digest.NewDigest(digest.SHA256, tarHash), nil
}

// ctxReader stops a long read when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// plainSumPath is where the claims of the file of identity id are remembered; "" without a cache.
func plainSumPath(cacheDir, id string) string {
	if cacheDir == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(plainSumDir(cacheDir), fmt.Sprintf("%x.json", sum))
}

// knownPlain says whether f, as it is now, was found to be a plain tarball before.
func knownPlain(f *os.File, size int64, cacheDir string) bool {
	if cacheDir == "" {
		return false
	}
	id, err := compression.FileIdentity(f)
	if err != nil {
		return false
	}
	_, ok := readPlainSum(plainSumPath(cacheDir, id), id, size)
	return ok
}

func readPlainSum(path, id string, size int64) (*plainSum, bool) {
	if path == "" {
		return nil, false
	}
	b, err := os.ReadFile(path)
	if err != nil || len(b) > 4096 {
		return nil, false
	}
	var s plainSum
	if json.Unmarshal(b, &s) != nil || s.Identity != id || s.Size != size {
		return nil, false
	}
	if _, err := digests.CheckSHA256(s.Digest); err != nil {
		return nil, false
	}
	if _, err := digests.CheckSHA256(s.DiffID); err != nil {
		return nil, false
	}
	return &s, true
}

func writePlainSum(path string, s *plainSum) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := atomicfile.Create(path, "")
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}

// plainCreated is the creation time of a plain tarball's synthesized config: fixed, so that the same
// tarball always gives the same image (and config digest).
var plainCreated = time.Unix(0, 0).UTC()

// loadPlainImage synthesizes the image of a plain tarball: a config for the platform asked for (the
// host's by default) whose rootfs.diff_ids is the tar's, with one history entry, and an OCI manifest of
// that config and the one layer.
func (a *Archive) loadPlainImage(e *entry, platform *ispec.Platform) (*Image, error) {
	p := e.plain
	plat := HostPlatform()
	if platform != nil {
		plat = *platform
	}
	cfg := ispec.Image{
		Created:  &plainCreated,
		Platform: plat,
		RootFS:   ispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{p.diffID}},
		History: []ispec.History{{Created: &plainCreated, CreatedBy: "imported from " + filepath.Base(a.path),
			Comment: "imgfs: plain tarball"}},
	}
	rawCfg, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	mt := LayerMediaType(p.comp)
	m := ispec.Manifest{
		MediaType: ispec.MediaTypeImageManifest,
		Config:    ispec.Descriptor{MediaType: ispec.MediaTypeImageConfig, Digest: digest.FromBytes(rawCfg), Size: int64(len(rawCfg))},
		Layers:    []ispec.Descriptor{{MediaType: mt, Digest: p.digest, Size: p.size}},
	}
	m.SchemaVersion = 2
	rawM, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &Image{
		ManifestDigest: digest.FromBytes(rawM),
		Manifest:       m,
		RawManifest:    rawM,
		ConfigDigest:   m.Config.Digest,
		RawConfig:      rawCfg,
		Config:         cfg,
		Platform:       plat,
		Layers: []Layer{{
			Digest: p.digest, DiffID: p.diffID, MediaType: mt, Size: p.size, Source: filepath.Base(a.path),
			a: a, blob: compression.Blob{R: p.file, Size: p.size, File: p.file},
		}},
	}, nil
}
